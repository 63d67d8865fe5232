import { APERTURE } from '@hmmkit/gpu';
import { ArgumentError, createSim, type Sim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  nouveauPolicy,
  pageMaskNew,
  pageMaskToArray,
  ThrashingDetector,
  UVM_THRASHING_DEFAULTS,
} from '../src/index.ts';
import { makeWorld, mmapAnon, runKernel, W } from './helpers/setup.ts';

describe('ThrashingDetector', () => {
  it('pins a page after threshold events closer than the lapse, and unpins after the pin time', () => {
    const t = new ThrashingDetector();
    expect(UVM_THRASHING_DEFAULTS).toEqual({ threshold: 3, lapseNs: 500_000, pinNs: 150_000_000 });
    const va = 0x40001000;
    expect(t.recordMigration(va, 0)).toBe(false); // first event: no gap yet
    expect(t.recordMigration(va, 100_000)).toBe(false); // 1
    expect(t.recordMigration(va, 200_000)).toBe(false); // 2
    expect(t.recordMigration(va, 300_000)).toBe(true); // 3 -> pinned
    expect(t.isThrashing(va, 300_001)).toBe(true);
    expect(t.isThrashing(va + 4096, 300_001)).toBe(false);
    const m = pageMaskNew();
    expect(t.blockMask(0x40000000, 300_001, m)).toBe(true);
    expect(pageMaskToArray(m)).toEqual([1]);
    expect(t.isThrashing(va, 300_000 + 150_000_000)).toBe(false);
    expect(t.pins).toBe(1);
  });

  it('a gap longer than the lapse resets the count', () => {
    const t = new ThrashingDetector({ threshold: 2 });
    t.recordMigration(0, 0);
    expect(t.recordMigration(0, 100)).toBe(false); // 1
    expect(t.recordMigration(0, 1_000_000)).toBe(false); // gap: reset
    expect(t.recordMigration(0, 1_000_100)).toBe(false); // 1
    expect(t.recordMigration(0, 1_000_200)).toBe(true); // 2
    expect(() => new ThrashingDetector({ threshold: 8 })).toThrow(ArgumentError);
    expect(() => new ThrashingDetector({ lapseNs: 0 })).toThrow(ArgumentError);
  });
});

function run<T>(sim: Sim, body: () => Promise<T>): Promise<T> {
  let out: T | undefined;
  sim.sched.spawn('main', async () => {
    out = await body();
  });
  return sim.sched.run().then(() => out as T);
}

describe('GpuSvm with thrashing detection', () => {
  it('a page ping-ponging between CPU and GPU gets pinned in system memory and mapped remotely', async () => {
    for (const thrashing of [false, true]) {
      const sim = createSim({ seed: 1 });
      const w = await makeWorld(sim, { devmem: {}, granule: nouveauPolicy(), thrashing });
      await run(sim, async () => {
        const a = await mmapAnon(w.mm, 16 * 4096);
        let ap = -1;
        for (let round = 0; round < 6; round++) {
          await w.mm.writeU32(a, round);
          const r = await runKernel(w, 0, [[[a + 4, W, 100 + round]]]);
          expect(r.failed).toBe(0);
          ap = w.devs[0]!.pageTable.translate(a).aperture;
        }
        w.oracle.checkAll();
        expect(await w.mm.readU32(a + 4)).toBe(105);
        expect(await w.mm.readU32(a)).toBe(5);
        const pins = sim.counters.counter('svm.thrashing.pins').value;
        const toVram = sim.counters.counter('svm.migrate.toVram.pages').value;
        if (thrashing) {
          expect(pins).toBe(1);
          expect(toVram).toBeLessThan(6);
          expect(ap).toBe(APERTURE.SYS); // pinned: the GPU maps the system page remotely
        } else {
          expect(pins).toBe(0);
          expect(toVram).toBe(6);
          expect(ap).toBe(APERTURE.VID);
        }
        w.oracle.checkAll();
      });
    }
  });
});
