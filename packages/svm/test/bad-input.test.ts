/**
 * Bad input (issue 9): a granule policy's answer is validated, and every rejected call throws a
 * typed ArgumentError that names the function, argument or policy and leaves all state unchanged.
 */
import { ACCESS } from '@hmmkit/gpu';
import { MAP_ANONYMOUS, MAP_FIXED, MAP_HUGETLB, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '@hmmkit/mm';
import { ArgumentError, createSim, Errno, type Sim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import { deviceLoc, type GranulePolicy } from '../src/index.ts';
import { makeWorld, mmapAnon, runKernel, type World } from './helpers/setup.ts';

const M2 = 0x200000;
const P = 4096;

function run<T>(sim: Sim, body: () => Promise<T>): Promise<T> {
  let out: T | undefined;
  sim.sched.spawn('main', async () => {
    out = await body();
  });
  return sim.sched.run().then(() => out as T);
}

const aligned = (a: number): number => (a % M2 === 0 ? a : a - (a % M2) + M2);

/** What a rejected call must leave unchanged. */
function snapshot(w: World) {
  const c = (n: string) => w.sim.counters.get(n);
  return {
    ranges: w.svm.ranges.map((r) => [r.start, r.end]),
    notifiers: c('svm.notifiers.created') - c('svm.notifiers.removed'),
    toVram: c('svm.migrate.toVram.pages'),
    toRam: c('svm.migrate.toRam.pages'),
    attrs: w.svm.attrs.state,
    free: w.svm.devmem.map((d) => d.mem.freePages),
  };
}

/** A policy whose every answer is `bad(va, vmaEnd)`. */
function brokenPolicy(
  name: string,
  bad: (va: number, vmaEnd: number) => { start: number; end: number },
): GranulePolicy {
  return {
    name,
    choose(ctx) {
      const r = bad(ctx.va, ctx.vmaEnd);
      return { start: r.start, end: r.end, faultStart: r.start, faultEnd: r.end, pages: null };
    },
  };
}

describe('granule policy validation', () => {
  for (const [label, policy] of [
    [
      'a range past the VMA end',
      brokenPolicy('past-end', (va, vmaEnd) => ({ start: va - (va % P), end: vmaEnd + 16 * P })),
    ],
    [
      'an unaligned range',
      brokenPolicy('unaligned', (va) => ({ start: va - (va % P), end: va - (va % P) + P + 8 })),
    ],
    [
      'a range that misses the fault',
      brokenPolicy('misses', (va) => ({ start: va - (va % P) + P, end: va - (va % P) + 2 * P })),
    ],
  ] as const) {
    it(`rejects ${label} with an ArgumentError naming the policy, state unchanged`, async () => {
      const sim = createSim({ seed: 9 });
      const w = await makeWorld(sim, { granule: policy });
      await run(sim, async () => {
        const a = aligned(await mmapAnon(w.mm, 2 * M2));
        const before = snapshot(w);
        const err = await w.svm.handleFault(0, a + 3 * P, ACCESS.READ).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ArgumentError);
        expect(String((err as Error).message)).toContain(policy.name);
        expect(snapshot(w)).toEqual(before);
      });
    });
  }
});

describe('bad input leaves state unchanged', () => {
  it('attrs.advise(a, b, null) throws ArgumentError, the map unchanged', async () => {
    const sim = createSim({ seed: 10 });
    const w = await makeWorld(sim);
    const before = w.svm.attrs.state;
    expect(() => w.svm.attrs.advise(0x10000, 0x20000, null as never)).toThrow(ArgumentError);
    expect(() => w.svm.attrs.advise(0x10000, 0x20000, null as never)).toThrow(/update/);
    expect(w.svm.attrs.state).toBe(before);
  });

  it('faultBatchMax = 0 is rejected when the fault handler starts, not mid-run', async () => {
    const sim = createSim({ seed: 11, costs: { faultBatchMax: 0 } });
    const w = await makeWorld(sim);
    await run(sim, async () => {
      const a = aligned(await mmapAnon(w.mm, 2 * M2));
      const before = snapshot(w);
      expect(() => w.svm.startFaultHandler(0, () => true)).toThrow(/faultBatchMax/);
      await expect(runKernel(w, 0, [[[a, ACCESS.READ, 0]]])).rejects.toThrow(ArgumentError);
      expect(snapshot(w)).toEqual(before);
    });
  });

  it('prefetch with a string location throws before migrating anything', async () => {
    const sim = createSim({ seed: 12 });
    const w = await makeWorld(sim, { devmem: { migrate: 'never' } });
    await run(sim, async () => {
      const a = aligned(await mmapAnon(w.mm, 2 * M2));
      for (let i = 0; i < 8; i++) await w.mm.writeU32(a + i * P, i);
      const before = snapshot(w);
      for (const loc of ['1', '0', 1.5, Number.NaN, null]) {
        await expect(w.svm.prefetch(a, a + M2, loc as never)).rejects.toThrow(ArgumentError);
      }
      expect(snapshot(w)).toEqual(before);
      expect(await w.svm.prefetch(a, a + 8 * P, deviceLoc(0))).toBe(8); // the same call with a number works
    });
  });

  it('prefetch over a VMA it cannot migrate returns -EINVAL before moving the VMAs before it', async () => {
    const sim = createSim({ seed: 13 });
    const w = await makeWorld(sim, { devmem: { migrate: 'never' }, thp: 'never' });
    await run(sim, async () => {
      const a = aligned(await mmapAnon(w.mm, 3 * M2));
      const h = await w.mm.mmap(
        a + M2,
        M2,
        PROT_READ | PROT_WRITE,
        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_HUGETLB,
      );
      expect(h).toBe(a + M2);
      for (let i = 0; i < 8; i++) await w.mm.writeU32(a + i * P, i);
      const before = snapshot(w);
      expect(await w.svm.prefetch(a, a + 2 * M2, deviceLoc(0))).toBe(-Errno.EINVAL);
      expect(snapshot(w)).toEqual(before);
    });
  });
});
