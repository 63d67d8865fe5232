/**
 * Regression tests of issue 9, defects 4-8: where prefetch and faults put data and mappings —
 * prefetch to a second GPU, granularity changes on existing ranges, ranges split at attribute
 * boundaries, prefetch that maps, and accessedBy.
 */
import { APERTURE } from '@hmmkit/gpu';
import { createSim, type Sim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import { amdkfdPolicy, deviceLoc, LOC } from '../src/index.ts';
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
/** Index of the device whose SVM memory holds the CPU page of `va`, or -1 (system memory). */
const holder = (w: World, va: number): number => w.svm.devmemIndexOf(w.oracle.cpuLookup(va)[0]);
const reads = (a: number, n: number) => Array.from({ length: n }, (_, i) => [a + i * P, R, 0] as const);

describe('placement (issue 9, defects 4-8)', () => {
  it('defect 4: prefetch to a second GPU moves the pages off the first (through system memory)', async () => {
    const sim = createSim({ seed: 41 });
    const w = await makeWorld(sim, { devices: 2, devmem: { migrate: 'never' } });
    await run(sim, async () => {
      const a = aligned(await mmapAnon(w.mm, 2 * M2));
      for (let i = 0; i < 256; i++) await w.mm.writeU32(a + i * P, 7000 + i);
      expect(await w.svm.prefetch(a, a + M2 / 2, deviceLoc(0))).toBe(256);
      expect(holder(w, a + 9 * P)).toBe(0);
      expect(await w.svm.prefetch(a, a + M2 / 2, deviceLoc(1))).toBe(256);
      for (const i of [0, 9, 255]) expect(holder(w, a + i * P)).toBe(1);
      const r = await runKernel(w, 1, [reads(a, 256)]);
      expect(Array.from(r.data)).toEqual(Array.from({ length: 256 }, (_, i) => 7000 + i));
      expect(w.devs[1]!.pageTable.translate(a).aperture).toBe(APERTURE.VID);
      expect(w.devs[0]!.pageTable.translate(a).status).not.toBe(0); // gpu0 lost its mapping
      expect(await w.mm.readU32(a + 200 * P)).toBe(7200);
      w.oracle.checkAll();
    });
  });

  it('defect 5: a granularity change applies to existing ranges (a CPU read moves 1 page, not 64)', async () => {
    const sim = createSim({ seed: 51 });
    const w = await makeWorld(sim, { devmem: {}, granule: amdkfdPolicy() });
    await run(sim, async () => {
      const a = aligned(await mmapAnon(w.mm, 2 * M2));
      w.svm.attrs.advise(a, a + M2, { granularity: 6 });
      for (let i = 0; i < 64; i++) await w.mm.writeU32(a + i * P, i);
      await runKernel(w, 0, [[[a, R, 0]]]);
      const range = w.svm.rangeFind(a)!;
      expect(range.end - range.start).toBe(64 * P);
      expect(sim.counters.counter('svm.migrate.toVram.pages').value).toBe(64);
      w.svm.attrs.advise(a, a + M2, { granularity: 0 });
      const toRam = sim.counters.counter('svm.migrate.toRam.pages');
      expect(await w.mm.readU32(a + 5 * P)).toBe(5);
      expect(toRam.value).toBe(1);
      expect(holder(w, a + 6 * P)).toBe(0); // the rest of the range stays in VRAM
      expect(w.svm.rangeFind(a)).toBe(range); // the range itself is kept
      w.oracle.checkAll();
    });
  });

  it('defect 6: ranges are split at attribute boundaries (a neighbour prefetched to gpu0 stays)', async () => {
    const sim = createSim({ seed: 61 });
    const w = await makeWorld(sim, { devices: 2, devmem: { migrate: 'preferred' }, granule: amdkfdPolicy() });
    await run(sim, async () => {
      // three adjacent 1-page mappings merge into one VMA
      const base = aligned(await mmapAnon(w.mm, 2 * M2));
      expect(await w.mm.munmap(base, 2 * M2)).toBe(0);
      const [A, B, C] = [base, base + P, base + 2 * P];
      for (const x of [A, B, C]) await mmapAnon(w.mm, P, x);
      for (const x of [A, B, C]) await w.mm.writeU32(x, x === A ? 1 : x === B ? 2 : 3);
      w.svm.attrs.advise(B, B + P, { preferredLoc: deviceLoc(0) });
      expect(await w.svm.prefetch(B, B + P, deviceLoc(0))).toBe(1);
      const r = await runKernel(w, 1, [[[A, R, 0]]]);
      expect(r.data[0]).toBe(1);
      expect(holder(w, B)).toBe(0); // gpu1's fault on A did not pull B back
      const ra = w.svm.rangeFind(A)!;
      expect([ra.start, ra.end]).toEqual([A, B]);
      w.oracle.checkAll();
    });
  });

  it('defect 6: an advise in the middle of an existing range retires it; the next faults create split ranges', async () => {
    const sim = createSim({ seed: 62 });
    const w = await makeWorld(sim, { granule: amdkfdPolicy() });
    await run(sim, async () => {
      const a = aligned(await mmapAnon(w.mm, 2 * M2));
      await runKernel(w, 0, [[[a, R, 0]]]);
      expect(w.svm.rangeFind(a)!.end).toBe(a + M2);
      w.svm.attrs.advise(a + 16 * P, a + 32 * P, { preferredLoc: LOC.SYSMEM });
      expect(w.svm.rangeFind(a)).toBe(null); // retired, waiting for the collector
      // its PTEs stay valid (the CPU mapping did not change) until the collector, which every
      // fault runs first (here, run directly), zaps and removes it
      expect(w.devs[0]!.pageTable.translate(a + 20 * P).status).toBe(0);
      await w.svm.garbageCollect();
      expect(w.devs[0]!.pageTable.translate(a + 20 * P).status).not.toBe(0);
      const r = await runKernel(w, 0, [
        [
          [a + 20 * P, R, 0],
          [a, R, 0],
          [a + 40 * P, R, 0],
        ],
      ]);
      expect(r.failed).toBe(0);
      const spans = [a, a + 20 * P, a + 40 * P].map((x) => {
        const g = w.svm.rangeFind(x)!;
        return [g.start - a, g.end - a].map((v) => v / P);
      });
      expect(spans).toEqual([
        [0, 16],
        [16, 32],
        [32, 512],
      ]);
      w.oracle.checkAll();
    });
  });

  it('defect 7: prefetch maps as well as migrates (no GPU fault afterwards)', async () => {
    const sim = createSim({ seed: 71 });
    const w = await makeWorld(sim, { devmem: { migrate: 'never' } });
    await run(sim, async () => {
      const a = aligned(await mmapAnon(w.mm, 2 * M2));
      for (let i = 0; i < 32; i++) await w.mm.writeU32(a + i * P, i);
      expect(await w.svm.prefetch(a, a + 32 * P, deviceLoc(0))).toBe(32);
      expect(w.devs[0]!.pageTable.translate(a + 31 * P).aperture).toBe(APERTURE.VID);
      const r = await runKernel(w, 0, [reads(a, 32)]);
      expect(r.faults).toBe(0);
      expect(Array.from(r.data)).toEqual(Array.from({ length: 32 }, (_, i) => i));
      w.oracle.checkAll();
    });
  });

  it('defect 8: accessedBy devices are mapped on fault and on prefetch', async () => {
    const sim = createSim({ seed: 81 });
    const w = await makeWorld(sim, { devices: 2, devmem: { migrate: 'never', peer: true } });
    await run(sim, async () => {
      const a = aligned(await mmapAnon(w.mm, 2 * M2));
      const b = a + M2;
      w.svm.attrs.advise(a, a + 2 * M2, { accessedBy: 0b10 });
      // a GPU fault on gpu0 maps the system pages on gpu1 too
      await runKernel(w, 0, [[[a, R, 0]]]);
      expect(w.devs[1]!.pageTable.translate(a + 3 * P).aperture).toBe(APERTURE.SYS);
      expect((await runKernel(w, 1, [reads(a, 8)])).faults).toBe(0);
      // a prefetch to gpu0 maps gpu1 remotely (PEER)
      expect(await w.svm.prefetch(b, b + 16 * P, deviceLoc(0))).toBe(16);
      const t = w.devs[1]!.pageTable.translate(b + 5 * P);
      expect(t.aperture).toBe(APERTURE.PEER);
      expect(t.peerId).toBe(0);
      expect((await runKernel(w, 1, [reads(b, 16)])).faults).toBe(0);
      // a prefetch to system memory maps the accessedBy device
      expect(await w.svm.prefetch(b, b + 16 * P, LOC.SYSMEM)).toBe(16);
      expect(w.devs[1]!.pageTable.translate(b + 5 * P).aperture).toBe(APERTURE.SYS);
      w.oracle.checkAll();
    });
  });
});
