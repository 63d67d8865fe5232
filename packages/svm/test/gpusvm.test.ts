import { APERTURE, PAGE_2M, PAGE_4K } from '@hmmkit/gpu';
import { MADV_DONTNEED, PROT_READ } from '@hmmkit/mm';
import { createSim, explore, type Sim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  nouveauPolicy,
  perRangeNotifiers,
  uvmTreePolicy,
  wholeMmNotifier,
  windowNotifiers,
} from '../src/index.ts';
import { makeWorld, mmapAnon, R, runKernel, W } from './helpers/setup.ts';

const M2 = 0x200000;

function run<T>(sim: Sim, body: () => Promise<T>): Promise<T> {
  let out: T | undefined;
  sim.sched.spawn('main', async () => {
    out = await body();
  });
  return sim.sched.run().then(() => out as T);
}

describe('GpuSvm fault flow', () => {
  it('faults a 2M chunk in, maps the CPU pages, and the GPU reads what the CPU wrote', async () => {
    const sim = createSim({ seed: 1 });
    const w = await makeWorld(sim);
    await run(sim, async () => {
      const a = await mmapAnon(w.mm, 2 * M2);
      const base = a - (a % M2) === a ? a : a - (a % M2) + M2;
      for (let i = 0; i < 8; i++) await w.mm.writeU32(base + i * 4096, 1000 + i);
      const r = await runKernel(w, 0, [
        Array.from({ length: 8 }, (_, i) => [base + i * 4096, R, 0] as const),
      ]);
      expect(Array.from(r.data)).toEqual([1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007]);
      expect(r.failed).toBe(0);
      const range = w.svm.rangeFind(base)!;
      expect(range.start % M2).toBe(0);
      expect(range.end - range.start).toBe(M2);
      expect(w.svm.ranges.length).toBe(1);
      // drm_gpusvm faults for write on a writable VMA: every page of the 2M chunk is now valid
      expect(range.pageValid.every((v) => v === 1)).toBe(true);
      const t = w.devs[0]!.pageTable.translate(base + 4096);
      expect(t.aperture).toBe(APERTURE.SYS);
      expect(t.writable).toBe(true);
      w.oracle.checkAll();
      expect(sim.counters.counter('svm.ranges.created').value).toBe(1);
      expect(sim.counters.counter('svm.notifiers.created').value).toBe(1);
    });
  });

  it('GPU writes land in the CPU pages byte for byte', async () => {
    const sim = createSim({ seed: 2 });
    const w = await makeWorld(sim, { granule: nouveauPolicy(), faultWrite: 'access' });
    await run(sim, async () => {
      const a = await mmapAnon(w.mm, 64 * 4096);
      const warps = Array.from({ length: 4 }, (_, k) =>
        Array.from({ length: 16 }, (_, i) => [a + (k * 16 + i) * 4096 + 8, W, k * 100 + i] as const),
      );
      const r = await runKernel(w, 0, warps);
      expect(r.failed).toBe(0);
      for (let k = 0; k < 4; k++)
        for (let i = 0; i < 16; i++) {
          expect(await w.mm.readU32(a + (k * 16 + i) * 4096 + 8)).toBe(k * 100 + i);
        }
      // nouveau: one range per page
      expect(w.svm.ranges.length).toBe(64);
      w.oracle.checkAll();
    });
  });

  it('uses 2M device PTEs over a THP and 4K otherwise', async () => {
    const sim = createSim({ seed: 3 });
    const w = await makeWorld(sim, { thp: 'always' });
    await run(sim, async () => {
      const a = await mmapAnon(w.mm, 4 * M2);
      const base = a % M2 === 0 ? a : a - (a % M2) + M2;
      await w.mm.writeU32(base, 7); // THP fault: 2 MiB folio
      const r = await runKernel(w, 0, [[[base + 0x1000, R, 0]]]);
      expect(r.data[0]).toBe(0);
      expect(w.devs[0]!.pageTable.translate(base).pageSize).toBe(PAGE_2M);
      expect(sim.counters.counter('svm.pte.2m').value).toBe(1);
      w.oracle.checkAll();
    });
    const sim2 = createSim({ seed: 3 });
    const w2 = await makeWorld(sim2, { thp: 'never', largePages: false });
    await run(sim2, async () => {
      const a = await mmapAnon(w2.mm, 4 * M2);
      const base = a % M2 === 0 ? a : a - (a % M2) + M2;
      await runKernel(w2, 0, [[[base, R, 0]]]);
      expect(w2.devs[0]!.pageTable.translate(base).pageSize).toBe(PAGE_4K);
      expect(sim2.counters.counter('svm.pte.4k').value).toBe(512);
    });
  });

  it('rejects a bad device index or address before touching anything', async () => {
    const sim = createSim({ seed: 11 });
    const w = await makeWorld(sim);
    await expect(w.svm.handleFault(1, 0x1000, R)).rejects.toThrow(/devIndex/);
    await expect(w.svm.handleFault(0, -4096, R)).rejects.toThrow(/va/);
    expect(sim.counters.counter('svm.faults').value).toBe(0);
    expect(await run(sim, () => w.svm.handleFault(0, 0x1000, R))).toBe(-2); // no VMA: -ENOENT
    expect(w.svm.ranges.length).toBe(0);
  });

  it('read-only VMA: a GPU write is refused with -EPERM and the warp is cancelled', async () => {
    const sim = createSim({ seed: 4 });
    const w = await makeWorld(sim);
    await run(sim, async () => {
      const a = await mmapAnon(w.mm, 16 * 4096);
      await w.mm.mprotect(a, 16 * 4096, PROT_READ);
      expect(await w.svm.handleFault(0, a, W)).toBe(-1);
      const r = await runKernel(w, 0, [[[a, W, 1]], [[a + 4096, R, 0]]]);
      expect(r.failed).toBe(1);
      expect(w.devs[0]!.pageTable.translate(a + 4096).writable).toBe(false);
      w.oracle.checkAll();
    });
  });
});

describe('GpuSvm invalidation', () => {
  it('munmap zaps the device PTEs, marks the range unmapped and the collector removes it', async () => {
    const sim = createSim({ seed: 5 });
    const w = await makeWorld(sim, { notifiers: windowNotifiers(M2) });
    await run(sim, async () => {
      const a0 = await mmapAnon(w.mm, 32 * 4096);
      const a = a0 % 0x10000 === 0 ? a0 : a0 - (a0 % 0x10000) + 0x10000; // 64K aligned inside
      // untouched pages fail drm_gpusvm's check-pages for a 64K chunk: 4K range
      await runKernel(w, 0, [[[a + 0x10000, R, 0]]]);
      expect(w.svm.rangeFind(a + 0x10000)!.end).toBe(a + 0x11000);
      await w.mm.touch(a, 0x10000, true); // CPU-faulted: now the 64K chunk passes
      await runKernel(w, 0, [[[a, W, 5]]]);
      const range = w.svm.rangeFind(a)!;
      expect([range.start, range.end]).toEqual([a, a + 0x10000]);
      await w.mm.munmap(a, 4096); // partial unmap of the range
      expect(range.unmapped).toBe(true);
      expect(range.partialUnmap).toBe(true);
      expect(w.devs[0]!.pageTable.translate(a + 4096).status).not.toBe(0);
      expect(w.svm.gcList).toContain(range);
      await w.svm.garbageCollect();
      expect(w.svm.ranges.length).toBe(1); // the 4K range at a + 64K stays
      await w.mm.munmap(a + 0x10000, 4096);
      await w.svm.garbageCollect();
      expect(w.svm.ranges.length).toBe(0);
      expect(sim.counters.counter('svm.notifiers.removed').value).toBe(1);
      // the rest of the VMA faults back in as a new range
      const r = await runKernel(w, 0, [[[a + 4096, R, 0]]]);
      expect(r.failed).toBe(0);
      expect(w.svm.rangeFind(a + 4096)!.start).toBe(a + 4096);
      w.oracle.checkAll();
    });
  });

  it('MADV_DONTNEED (CLEAR) drops pages but keeps the range; the next access sees the new page', async () => {
    const sim = createSim({ seed: 6 });
    const w = await makeWorld(sim);
    await run(sim, async () => {
      const a = await mmapAnon(w.mm, 16 * 4096);
      await w.mm.writeU32(a, 42);
      expect((await runKernel(w, 0, [[[a, R, 0]]])).data[0]).toBe(42);
      const range = w.svm.rangeFind(a)!;
      await w.mm.madvise(a, 4096, MADV_DONTNEED);
      expect(range.unmapped).toBe(false);
      expect(range.pageValid[0]).toBe(0);
      expect(range.devMapped).toBe(0);
      w.oracle.checkAll();
      expect((await runKernel(w, 0, [[[a, R, 0]]])).data[0]).toBe(0);
      expect(w.svm.rangeFind(a)).toBe(range);
    });
  });

  it('fork write-protects: device mappings become read-only-or-gone, never writable', async () => {
    const sim = createSim({ seed: 7 });
    const w = await makeWorld(sim);
    await run(sim, async () => {
      const a = await mmapAnon(w.mm, 16 * 4096);
      await runKernel(w, 0, [[[a, W, 1]]]);
      await w.mm.fork(); // oracle checks at range end: would throw on a writable device PTE
      expect(w.devs[0]!.pageTable.translate(a).status).not.toBe(0);
      await runKernel(w, 0, [[[a, W, 9]]]); // COW break, remap writable
      expect(await w.mm.readU32(a)).toBe(9);
      w.oracle.checkAll();
    });
  });

  it('notifier policies: per-range creates one notifier per range, whole-mm one in total', async () => {
    for (const [pol, expected] of [
      [perRangeNotifiers(), 3],
      [wholeMmNotifier(), 1],
      [windowNotifiers(), 1],
    ] as const) {
      const sim = createSim({ seed: 8 });
      const w = await makeWorld(sim, { notifiers: pol, granule: nouveauPolicy() });
      await run(sim, async () => {
        const a = await mmapAnon(w.mm, 16 * 4096);
        await runKernel(w, 0, [
          [
            [a, R, 0],
            [a + 4096, R, 0],
            [a + 8192, R, 0],
          ],
        ]);
        expect(w.svm.ranges.length).toBe(3);
        expect(sim.counters.counter('svm.notifiers.created').value).toBe(expected);
        // an invalidation of a page no range covers: per-range notifiers are not even called,
        // a coarse notifier is called for nothing (a false invalidation)
        const inv = sim.counters.counter('svm.invalidations').value;
        await w.mm.touch(a + 8 * 4096, 4096, true);
        await w.mm.madvise(a + 8 * 4096, 4096, MADV_DONTNEED);
        const calls = sim.counters.counter('svm.invalidations').value - inv;
        const falseInv = sim.counters.counter('svm.invalidations.false').value;
        expect([calls, falseInv]).toEqual(expected === 3 ? [0, 0] : [1, 1]);
        w.oracle.checkAll();
      });
    }
  });

  it('the UVM tree policy grows faults within the 2M block', async () => {
    const sim = createSim({ seed: 9 });
    const w = await makeWorld(sim, { granule: uvmTreePolicy(), faultWrite: 'access' });
    await run(sim, async () => {
      const a = await mmapAnon(w.mm, 2 * M2);
      const base = a % M2 === 0 ? a : a - (a % M2) + M2;
      await runKernel(w, 0, [[[base, R, 0]]]);
      const range = w.svm.rangeFind(base)!;
      expect([range.start, range.end]).toEqual([base, base + M2]);
      // the fault was grown to 64K: 16 pages valid and mapped
      expect(range.pageValid.reduce((s, v) => s + v, 0)).toBe(16);
      await runKernel(w, 0, [[[base + 16 * 4096, R, 0]]]);
      expect(range.pageValid.reduce((s, v) => s + v, 0)).toBe(32);
      await runKernel(w, 0, [[[base + 32 * 4096, R, 0]]]);
      expect(range.pageValid.reduce((s, v) => s + v, 0)).toBe(64);
      w.oracle.checkAll();
    });
  });
});

describe('GpuSvm with several devices', () => {
  it('two devices map the same CPU pages at the same VAs; an invalidation zaps both', async () => {
    const sim = createSim({ seed: 10 });
    const w = await makeWorld(sim, { devices: 2 });
    await run(sim, async () => {
      const a = await mmapAnon(w.mm, 16 * 4096);
      await runKernel(w, 0, [[[a, W, 11]]]);
      const r1 = await runKernel(w, 1, [[[a, R, 0]]]);
      expect(r1.data[0]).toBe(11);
      const range = w.svm.rangeFind(a)!;
      expect(range.devMapped).toBe(3);
      expect(w.devs[0]!.pageTable.translate(a).pa).toBe(w.devs[1]!.pageTable.translate(a).pa);
      await w.mm.madvise(a, 4096, MADV_DONTNEED);
      expect(w.devs[0]!.pageTable.translate(a).status).not.toBe(0);
      expect(w.devs[1]!.pageTable.translate(a).status).not.toBe(0);
      w.oracle.checkAll();
    });
  });
});

describe('GpuSvm under the coherence oracle', () => {
  const scenario = (broken: boolean) => async (sim: Sim) => {
    const w = await makeWorld(sim, { granule: nouveauPolicy(), brokenSkipReadRetry: broken });
    const a = await mmapAnon(w.mm, 16 * 4096);
    for (let i = 0; i < 4; i++) await w.mm.writeU32(a + i * 4096, i + 1);
    sim.sched.spawn('gpu-faults', async () => {
      for (let i = 0; i < 4; i++) await w.svm.handleFault(0, a + i * 4096, R);
    });
    sim.sched.spawn('cpu', async () => {
      for (let i = 0; i < 4; i++) {
        await sim.sched.yield();
        await w.mm.madvise(a + i * 4096, 4096, MADV_DONTNEED);
        await w.mm.writeU32(a + (8 + i) * 4096, 1);
        await w.mm.writeU32(a + i * 4096, 100 + i);
      }
    });
    await sim.sched.run();
    w.oracle.checkAll();
  };

  it('the framework keeps coherence across seeds', async () => {
    const r = await explore(scenario(false), { seeds: 30 });
    expect(r.failure).toBeNull();
  });

  it('the broken variant (no readRetry) is caught within 64 seeds and the schedule replays', async () => {
    const r = await explore(scenario(true), { seeds: 64 });
    expect(r.failure).not.toBeNull();
    await expect(scenario(true)(createSim({ replay: r.failure!.schedule }))).rejects.toThrow(/coherence/);
  });
});
