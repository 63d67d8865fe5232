/**
 * Planted driver bugs on the public API: each must be caught by the coherence oracle within 100
 * seeds, and the seed the violation reports must replay it. The drivers are the hand-written
 * mirror of helpers/planted-driver.ts (one switch per bug) and GpuSvm's own deliberately broken
 * variant; the storm races GPU kernels with data against MADV_DONTNEED, mprotect and CPU stores.
 */
import { createSim, explore } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import { type CoherenceViolation, describeViolation } from '../src/index.ts';
import { type PlantedBug, plantedStorm } from './helpers/planted-driver.ts';
import { svmStorm } from './helpers/svm-storm.ts';

/** The first violation of `bug` within `seeds` seeds (the oracle throws at the first one). */
async function firstCatch(bug: PlantedBug, seeds = 100) {
  const r = await explore((sim) => plantedStorm(sim, bug), { seeds });
  expect(r.failure, `${bug} not caught within ${seeds} seeds`).not.toBeNull();
  const err = r.failure!.error as Error;
  expect(String(err.message)).toMatch(/coherence: /);
  return { seed: r.failure!.seed, message: err.message };
}

/** The InvariantError message inside a failed scheduler run. */
async function messageOf(run: Promise<unknown>): Promise<string> {
  try {
    await run;
  } catch (e) {
    return (e as Error).message;
  }
  return 'no violation';
}

/** The violations of one non-throwing run of `bug` at `seed`. */
async function violationsAt(bug: PlantedBug, seed: number): Promise<CoherenceViolation[]> {
  const r = await plantedStorm(createSim({ seed }), bug, { throwOnViolation: false });
  return r.oracle.violations;
}

describe('planted driver bugs', () => {
  it('the correct mirror gives no violation over 40 seeds, and the storm makes it retry', async () => {
    let retries = 0;
    for (let seed = 1; seed <= 40; seed++) {
      const r = await plantedStorm(createSim({ seed }), 'none');
      expect(r.oracle.violations).toEqual([]);
      expect(r.oracle.checkedAccesses).toBeGreaterThan(0);
      retries += r.driver.retries;
    }
    expect(retries).toBeGreaterThan(0); // read_retry did send snapshots back: the race happened
  });

  for (const bug of [
    'no-read-retry',
    'no-set-seq',
    'no-tlb-flush',
    'zap-first-page',
    'ignore-pfn-write',
  ] as const) {
    it(`${bug} is caught within 100 seeds, and the reported seed replays it`, async () => {
      const { seed, message } = await firstCatch(bug);
      expect(message).toContain(`seed ${seed}`);
      // the seed named in the message replays the same first violation
      const named = Number(/seed (\d+)/.exec(message)![1]);
      expect(await messageOf(plantedStorm(createSim({ seed: named }), bug))).toContain(
        message.slice(message.indexOf('coherence: ')),
      );
    });
  }

  it('no TLB flush: only the TLB rule sees it (the PTEs were zapped)', async () => {
    const { seed } = await firstCatch('no-tlb-flush');
    const v = await violationsAt('no-tlb-flush', seed);
    expect(v.some((x) => x.source === 'tlb')).toBe(true);
    expect(v.filter((x) => x.source === 'pte')).toEqual([]);
  });

  it('a bind that ignores HMM_PFN_WRITE is stopped at the first GPU store into a copy-on-write page', async () => {
    const { message } = await firstCatch('ignore-pfn-write');
    expect(message).toMatch(/write-to-readonly .* on gpu-write/);
  });

  it('a stale bind that a later invalidation zaps is caught where it is used (rule 1 alone stays silent)', async () => {
    // without read_retry the driver binds a frame the CPU already freed and reused; the GPU reads
    // another page's data through it (or writes into it); the final munmap (or an earlier
    // DONTNEED) zaps the bind before any invalidation end or full check could see it
    const seen = new Set<string>();
    let caught = 0;
    for (let seed = 1; seed <= 50; seed++) {
      const v = await violationsAt('no-read-retry', seed);
      if (v.length === 0) continue;
      caught++;
      expect(v.filter((x) => x.source === 'pte' || x.source === 'tlb')).toEqual([]);
      for (const x of v) seen.add(`${x.source}:${x.reason}`);
    }
    expect(caught).toBeGreaterThan(0);
    expect(seen).toContain('access:pfn-mismatch'); // the GPU used another page's frame
    expect(seen).toContain('data:lost-write'); // and loaded what that page held
  });
});

describe("GpuSvm's deliberately broken variant (brokenSkipReadRetry) under GPU kernels", () => {
  const cfg = { placement: 'sys', granule: 'drm', notifiers: 'window' } as const;

  it('is caught within 100 seeds by rules 2 and 3 alone, and the reported seed replays it', async () => {
    const r = await explore((sim) => svmStorm(sim, cfg, true, { brokenSkipReadRetry: true }), { seeds: 100 });
    expect(r.failure).not.toBeNull();
    const msg = (r.failure!.error as Error).message;
    const seed = Number(/seed (\d+)/.exec(msg)![1]);
    expect(seed).toBe(r.failure!.seed);
    const again = await svmStorm(createSim({ seed }), cfg, false, { brokenSkipReadRetry: true });
    const v = again.world.oracle.violations;
    expect(msg).toContain(describeViolation(v[0]!));
    // what rule 1 (PTEs and TLBs at invalidation ends and at the full check) would have seen
    again.world.oracle.checkAll();
    expect(v.filter((x) => x.source === 'pte' || x.source === 'tlb')).toEqual([]);
  });
});
