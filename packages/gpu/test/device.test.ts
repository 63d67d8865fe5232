import { createSim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  ACCESS,
  createGpuDevice,
  type KernelResult,
  makeStreams,
  nvMmuV3,
  PAGE_4K,
  WALK,
} from '../src/index.ts';

describe('GpuDevice and DeviceUpdate', () => {
  it('bundles the parts; an update commits writes, then invalidates the TLB', () => {
    const sim = createSim();
    const dev = createGpuDevice(sim, { vramBytes: 4 * 2 ** 20 });
    expect(dev.format.name).toBe('nv-mmu-v2');
    const pa = dev.vram.alloc(PAGE_4K);
    dev.pageTable.map(0x1000, PAGE_4K, pa);
    // warm the TLB through the engine
    return (async () => {
      await dev.engine.run(makeStreams([[[0x1000, ACCESS.READ]]]));
      expect(dev.tlb.peek(0x1000)).toBeGreaterThanOrEqual(0);
      // unmap without an invalidate: the stale translation stays cached (the bug an oracle must catch)
      const u = dev.beginUpdate('ce');
      dev.pageTable.unmap(0x1000, PAGE_4K, u.pt);
      expect(dev.pageTable.translate(0x1000).status).not.toBe(WALK.MAPPED);
      expect(dev.tlb.peek(0x1000)).toBeGreaterThanOrEqual(0);
      expect(dev.staleTlbEntries()).toEqual([{ va: 0x1000, size: 4096, pa, reason: 'unmapped' }]);
      u.tlb.invalidate(0x1000, PAGE_4K);
      const t0 = sim.now;
      expect(u.end()).toBe(1);
      expect(dev.tlb.peek(0x1000)).toBe(-1);
      expect(dev.staleTlbEntries()).toEqual([]);
      expect(sim.now - t0).toBe(
        sim.costs.pteWriteBatchFixedNs +
          u.pt.pteWrites * sim.costs.pteWriteBatchPerEntryNs +
          u.pt.pdeWrites * sim.costs.pteWriteBatchPerEntryNs +
          sim.costs.tlbInvalidateNs,
      );
    })();
  });

  it('devices with their own counter prefixes keep separate counters', async () => {
    const sim = createSim();
    const a = createGpuDevice(sim, { id: 0, counterPrefix: 'gpu0', vramBytes: 2 * 2 ** 20 });
    const b = createGpuDevice(sim, { id: 1, counterPrefix: 'gpu1', vramBytes: 2 * 2 ** 20 });
    a.pageTable.map(0, PAGE_4K, 0);
    await a.engine.run(
      makeStreams([
        [
          [0, ACCESS.READ],
          [8, ACCESS.READ],
        ],
      ]),
    );
    expect(sim.counters.get('gpu0.tlb.hit')).toBe(1);
    expect(sim.counters.get('gpu0.tlb.miss')).toBe(1);
    expect(sim.counters.get('gpu1.tlb.miss')).toBe(0);
    expect(sim.counters.get('gpu0.pt.pteWrites')).toBe(1);
    expect(b.tlb.occupancy).toBe(0);
  });

  it('a fault buffer that overflows drops faults; the warps refault after replay and still complete', async () => {
    const sim = createSim();
    const dev = createGpuDevice(sim, { faultBufferEntries: 4, vramBytes: 4 * 2 ** 20 });
    const warps = Array.from({ length: 16 }, (_, w) => [
      [0x10_0000 + w * 4096, ACCESS.WRITE] as [number, 0 | 1 | 2 | 3],
    ]);
    let done = false;
    let batches = 0;
    sim.sched.spawn('gpu', async () => {
      const r = await dev.engine.run(makeStreams(warps));
      expect(r.completed).toBe(16);
      done = true;
    });
    sim.sched.spawn('driver', async () => {
      const b = dev.newFaultBatch();
      while (await dev.faultBuffer.waitForFaults(() => done)) {
        dev.faultBuffer.fetch(b);
        batches++;
        const u = dev.beginUpdate();
        for (let i = 0; i < b.count; i++)
          dev.pageTable.map(b.va[i]!, PAGE_4K, dev.vram.alloc(PAGE_4K), {}, u.pt);
        u.end();
        dev.faultBuffer.replay();
      }
    });
    await sim.sched.run();
    expect(sim.counters.get('gpu.fault.overflow')).toBeGreaterThan(0);
    expect(batches).toBeGreaterThanOrEqual(4);
    expect(dev.vram.stats().usedBytes).toBe(16 * 4096);
  });
});

describe('staleTlbEntries', () => {
  it('reports remapped and write-protected translations until they are invalidated', async () => {
    const sim = createSim();
    const dev = createGpuDevice(sim, { vramBytes: 4 * 2 ** 20 });
    dev.pageTable.map(0x1000, PAGE_4K, 0x5000);
    dev.pageTable.map(0x2000, PAGE_4K, 0x6000);
    await dev.engine.run(
      makeStreams([
        [
          [0x1000, ACCESS.WRITE],
          [0x2000, ACCESS.WRITE],
        ],
      ]),
    );
    expect(dev.staleTlbEntries()).toEqual([]);
    dev.pageTable.map(0x1000, PAGE_4K, 0x7000);
    dev.pageTable.map(0x2000, PAGE_4K, 0x6000, { writable: false });
    const stale = dev.staleTlbEntries().map((e) => [e.va, e.reason]);
    expect(stale.sort()).toEqual([
      [0x1000, 'remapped'],
      [0x2000, 'write-protected'],
    ]);
    const u = dev.beginUpdate('bar0');
    u.tlb.invalidate(0x1000, 0x2000);
    u.end();
    expect(dev.staleTlbEntries()).toEqual([]);
  });
});

describe('README example', () => {
  it('runs as written', async () => {
    const sim = createSim();
    const dev = createGpuDevice(sim, { format: nvMmuV3, vramBytes: 64 << 20 });
    let done = false;
    let result: KernelResult | null = null;
    sim.sched.spawn('gpu', async () => {
      result = await dev.engine.run(
        makeStreams([
          [
            [0x10000, ACCESS.READ],
            [0x10008, ACCESS.WRITE],
          ],
        ]),
      );
      done = true;
    });
    sim.sched.spawn('driver', async () => {
      const batch = dev.newFaultBatch();
      while (await dev.faultBuffer.waitForFaults(() => done)) {
        dev.faultBuffer.fetch(batch);
        batch.sort();
        const u = dev.beginUpdate('ce');
        for (let k = 0; k < batch.count; k++) {
          const va = batch.va[batch.order[k]!]!;
          dev.pageTable.map(va, PAGE_4K, dev.vram.alloc(PAGE_4K), {}, u.pt);
          u.tlb.invalidate(va, PAGE_4K);
        }
        u.end();
        dev.faultBuffer.replay();
      }
    });
    await sim.sched.run();
    expect(result!).toMatchObject({ completed: 1, accesses: 2, faults: 1 });
  });

  it('a second context over the same VRAM: its own page table and TLB, the same memory', async () => {
    const sim = createSim();
    const a = createGpuDevice(sim, { vramBytes: 4 * 2 ** 20, counterPrefix: 'ctxA' });
    const b = createGpuDevice(sim, { vram: a.vram, counterPrefix: 'ctxB' });
    expect(b.vram).toBe(a.vram);
    expect(b.pageTable).not.toBe(a.pageTable);
    const pa = a.vram.alloc(PAGE_4K);
    a.pageTable.map(0x1000, PAGE_4K, pa, { writable: true });
    b.pageTable.map(0x7000, PAGE_4K, pa);
    expect(b.pageTable.translate(0x1000).status, 'one address space does not see the other').not.toBe(
      WALK.MAPPED,
    );
    const w = makeStreams([[[0x1000, ACCESS.WRITE, 0x5a5a]]]);
    expect((await a.engine.run(w)).failed).toBe(0);
    const r = makeStreams([[[0x7000, ACCESS.READ, 0]]]);
    expect((await b.engine.run(r)).failed).toBe(0);
    expect(r.data?.[0], 'b reads what a stored: one VRAM').toBe(0x5a5a);
  });
});
