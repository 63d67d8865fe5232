/** The eviction-policy hook of GpuSvm (issue 11's UVMSmart policies plug in here). */
import { ArgumentError, createSim, type Sim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  deviceLoc,
  type EvictionPolicy,
  type EvictionView,
  lruChunkEviction,
  pageMaskNew,
  pageMaskSet,
} from '../src/index.ts';
import { makeWorld, mmapAnon, R, runKernel, type World } from './helpers/setup.ts';

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
const onGpu = (w: World, va: number): boolean => w.svm.devmemIndexOf(w.oracle.cpuLookup(va)[0]) === 0;

/** Least recently *used* chunk (last bind), not least recently allocated. */
const lruUse: EvictionPolicy = {
  name: 'lru-use',
  pickVictim(v: EvictionView) {
    let best = -1;
    for (let c = 0; c < v.chunks; c++) {
      if (v.chunkUsed[c]! > 0 && (best < 0 || v.chunkLastUseNs[c]! < v.chunkLastUseNs[best]!)) best = c;
    }
    return best < 0 ? null : { chunk: best };
  },
};

/** A, B and C (2 MiB each) through a 4 MiB pool: A, B, A again, then C forces one eviction. */
async function abac(policy?: EvictionPolicy): Promise<{ a: boolean; b: boolean; views: EvictionView[] }> {
  const sim = createSim({ seed: 5 });
  const views: EvictionView[] = [];
  const spy: EvictionPolicy | undefined =
    policy === undefined
      ? undefined
      : {
          name: policy.name,
          pickVictim(v, need) {
            views.push({ ...v, chunkUses: v.chunkUses.slice(), chunkLastUseNs: v.chunkLastUseNs.slice() });
            return policy.pickVictim(v, need);
          },
        };
  const w = await makeWorld(sim, {
    devmem: { bytes: 2 * M2, ...(spy === undefined ? {} : { eviction: spy }) },
  });
  return run(sim, async () => {
    const base = aligned(await mmapAnon(w.mm, 4 * M2));
    const [A, B, C] = [base, base + M2, base + 2 * M2];
    await runKernel(w, 0, [[[A, R, 0]]]);
    await runKernel(w, 0, [[[B, R, 0]]]);
    // A is used again: a CPU touch sends it home, the next GPU read brings it back (a new bind)
    await runKernel(w, 0, [[[A + P, R, 0]]]);
    expect(await w.mm.readU32(A + 8 * P)).toBe(0);
    await runKernel(w, 0, [[[A + 2 * P, R, 0]]]);
    await runKernel(w, 0, [[[C, R, 0]]]);
    expect(onGpu(w, C)).toBe(true);
    w.oracle.checkAll();
    return { a: onGpu(w, A + 3 * P), b: onGpu(w, B + 3 * P), views };
  });
}

describe('eviction policy hook', () => {
  it('the default evicts the least recently allocated chunk, as before', async () => {
    const r = await abac();
    expect(r).toMatchObject({ a: true, b: false }); // A was re-allocated after its trip home
    const s = await abac(lruChunkEviction());
    expect([s.a, s.b]).toEqual([r.a, r.b]);
    expect(s.views.length).toBe(1);
  });

  it('a policy sees per-chunk use and frequency and picks the victim', async () => {
    // evicting by last *allocation* and by last *use* differ once a resident chunk is re-bound
    const sim = createSim({ seed: 6 });
    const picks: number[] = [];
    const spy: EvictionPolicy = {
      name: 'lru-use',
      pickVictim(v, need) {
        expect(v.devIndex).toBe(0);
        expect(need).toBeGreaterThan(0);
        const c = lruUse.pickVictim(v, need);
        picks.push(c?.chunk ?? -1);
        return c;
      },
    };
    // placement by prefetch only; read faults map read-only ('access'), so A's read-only entries
    // after mprotect need no upgrade
    const w = await makeWorld(sim, {
      devmem: { bytes: 2 * M2, eviction: spy, migrate: 'never' },
      faultWrite: 'access',
    });
    await run(sim, async () => {
      const base = aligned(await mmapAnon(w.mm, 4 * M2));
      const [A, B, C] = [base, base + M2, base + 2 * M2];
      expect(await w.svm.prefetch(A, A + M2, deviceLoc(0))).toBe(512);
      expect(await w.svm.prefetch(B, B + M2, deviceLoc(0))).toBe(512);
      // re-bind A without migrating it: a protection change zaps A's PTEs, the next read re-binds
      expect(await w.mm.mprotect(A, M2, 1)).toBe(0);
      expect(await w.mm.mprotect(A, M2, 3)).toBe(0);
      await runKernel(w, 0, [[[A + 5 * P, R, 0]]]);
      const sd = w.svm.devmem[0]!;
      const chunkOf = (va: number) => Math.floor((w.oracle.cpuLookup(va)[0] - sd.chunkStartPfn(0)) / 512);
      const ca = chunkOf(A);
      const cb = chunkOf(B);
      expect(sd.chunkUses[ca]).toBe(2);
      expect(sd.chunkUses[cb]).toBe(1);
      expect(sd.chunkLastUseNs[ca]).toBeGreaterThan(sd.chunkLastUseNs[cb]!);
      expect(await w.svm.prefetch(C, C + M2, deviceLoc(0))).toBe(512);
      expect(picks).toEqual([cb]); // LRU by use: B goes, A (allocated first) stays
      expect(onGpu(w, A + 7 * P)).toBe(true);
      expect(onGpu(w, B + 7 * P)).toBe(false);
      w.oracle.checkAll();
    });
  });

  it('a victim may be part of a chunk (a page mask), and only those pages move', async () => {
    const sim = createSim({ seed: 7 });
    const w = await makeWorld(sim, { devmem: { bytes: 2 * M2 } });
    await run(sim, async () => {
      const base = aligned(await mmapAnon(w.mm, 2 * M2));
      for (let i = 0; i < 512; i++) await w.mm.writeU32(base + i * P, i + 1);
      expect(await w.svm.prefetch(base, base + M2, deviceLoc(0))).toBe(512);
      const sd = w.svm.devmem[0]!;
      const c = Math.floor((w.oracle.cpuLookup(base)[0] - sd.chunkStartPfn(0)) / 512);
      const mask = pageMaskNew();
      for (let k = 0; k < 16; k++) pageMaskSet(mask, k);
      const k0 = w.oracle.cpuLookup(base)[0] - sd.chunkStartPfn(c); // page index of base in its chunk
      expect(k0).toBe(0);
      expect(await w.svm.evictChunk(0, c, mask)).toBe(16);
      expect(sd.chunkUsed[c]).toBe(512 - 16);
      for (const i of [0, 15]) expect(onGpu(w, base + i * P)).toBe(false);
      for (const i of [16, 511]) expect(onGpu(w, base + i * P)).toBe(true);
      expect(await w.mm.readU32(base + 15 * P)).toBe(16);
      w.oracle.checkAll();
    });
  });

  it('a victim that names no chunk in use is rejected with an ArgumentError naming the policy', async () => {
    const sim = createSim({ seed: 8 });
    const bad: EvictionPolicy = { name: 'broken-evictor', pickVictim: () => ({ chunk: 99 }) };
    const w = await makeWorld(sim, { devmem: { bytes: M2, eviction: bad } });
    await run(sim, async () => {
      const base = aligned(await mmapAnon(w.mm, 3 * M2));
      expect(await w.svm.prefetch(base, base + M2, deviceLoc(0))).toBe(512);
      const err = await w.svm.prefetch(base + M2, base + 2 * M2, deviceLoc(0)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ArgumentError);
      expect(String((err as Error).message)).toContain('broken-evictor');
      expect(onGpu(w, base)).toBe(true); // nothing was evicted
    });
  });
});
