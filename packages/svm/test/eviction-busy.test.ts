/**
 * Eviction from a device pool that several processes share (GpuVmDevice, vm.ts), two mechanisms:
 *
 * 1. Every chunk mid-migration: eviction frees nothing because the victim's device pages are
 *    locked by a migration still in flight. The fault waits for that migration to end and evicts
 *    then (TTM waits for a busy buffer: ttm_mem_evict_wait_busy), and a fault that still cannot get
 *    VRAM falls back visibly (`svm.migrate.fallbacks`, the `svm.migrate.fallback` trace event), as
 *    xe's "VRAM allocation failed, falling back" — never silently.
 * 2. One process's fault evicting another process's pages does it by pfn (migrate_device_range,
 *    as drm_pagemap_evict_to_ram does), without the victim's mmap lock.
 */
import { ACCESS } from '@hmmkit/gpu';
import { createMachine, MAP_ANONYMOUS, MAP_PRIVATE, Mm, PROT_READ, PROT_WRITE } from '@hmmkit/mm';
import { createSim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  type Access,
  deviceLoc,
  drmGpusvmPolicy,
  type EvictionPolicy,
  type GpuVm,
  GpuVmDevice,
  runKernel,
} from '../src/index.ts';
import { expectCoherent, M2, P, pagesAt } from './clients/helpers.ts';

const W = ACCESS.WRITE;

/** Two processes, one VM each, on a device whose shared SVM pool is one 2 MiB chunk. */
async function twoProcesses(
  seed: number,
  body: (a: GpuVm, b: GpuVm, dev: GpuVmDevice) => Promise<void>,
  eviction?: EvictionPolicy,
) {
  const sim = createSim({ seed });
  const machine = createMachine(sim, { thp: 'never' });
  const dev = new GpuVmDevice(machine, {
    vramBytes: 8 << 20,
    svmBytes: M2,
    ...(eviction === undefined ? {} : { eviction }),
  });
  const a = await dev.createVm(new Mm(machine), { granule: drmGpusvmPolicy() });
  const b = await dev.createVm(new Mm(machine), { granule: drmGpusvmPolicy() });
  await sim.sched.runMain(async () => {
    await body(a, b, dev);
    expectCoherent(a.world);
    expectCoherent(b.world);
  });
}

/** A 2 MiB-aligned 2 MiB buffer of `vm`'s process, every page's first word = `tag + page`. */
async function buffer(vm: GpuVm, tag: number): Promise<number> {
  const mm = vm.mm;
  const raw = await mm.mmap(0, 2 * M2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  const at = Math.ceil(raw / M2) * M2;
  for (let i = 0; i < M2 / P; i++) await mm.writeU32(at + i * P, tag + i);
  return at;
}

/** One GPU kernel storing `tag + 0x10000 + page` into word 1 of every page (64 warps of 8). */
function storeAll(vm: GpuVm, at: number, tag: number) {
  const warps: Access[][] = [];
  for (let w = 0; w < 64; w++) {
    warps.push(
      Array.from({ length: 8 }, (_, k): Access => [at + (w * 8 + k) * P + 4, W, tag + 0x10000 + w * 8 + k]),
    );
  }
  return runKernel(vm.world, 0, warps);
}

/** Every page holds its CPU word and its GPU word. */
async function checkData(vm: GpuVm, at: number, tag: number): Promise<void> {
  for (let i = 0; i < M2 / P; i++) {
    expect(await vm.mm.readU32(at + i * P)).toBe(tag + i);
    expect(await vm.mm.readU32(at + i * P + 4)).toBe(tag + 0x10000 + i);
  }
}

describe('eviction from a pool shared by two processes', () => {
  it("the only chunk is mid-migration (a's fault): b's migration waits for it, evicts it, and gets VRAM", () =>
    twoProcesses(1, async (a, b, dev) => {
      const sim = dev.sim;
      const bufA = await buffer(a, 0x1000);
      const bufB = await buffer(b, 0x2000);
      const fallbacks: number[] = [];
      sim.trace.on('svm.migrate.fallback', (_d, start) => fallbacks.push(start));
      const ka = sim.sched.spawn('a', async () => {
        expect((await storeAll(a, bufA, 0x1000)).failed).toBe(0);
      });
      // b faults while a's migration holds every page of the pool (allocated, copy in flight)
      while (dev.pool.inFlight === 0) await sim.sched.sleep(100);
      expect(dev.pool.mem.freePages).toBe(0);
      // b migrates its buffer now (a prefetch: the same ensureFree as a fault, but at once)
      // (the old code evicted nothing, moved nothing and said nothing)
      expect(await b.svm.prefetch(bufB, bufB + M2, deviceLoc(0))).toBe(M2 / P);
      expect(fallbacks).toEqual([]);
      // counters are per sim, shared by both VMs' GpuSvms
      expect(sim.counters.get('svm.evict.busyWaits')).toBeGreaterThanOrEqual(1);
      expect(sim.counters.get('gpu0.vm.evict.foreign.pages')).toBe(M2 / P);
      // then both kernels finish (a's faults take the chunk back: they may thrash, never lose data)
      expect((await storeAll(b, bufB, 0x2000)).failed).toBe(0);
      await sim.sched.join(ka);
      await checkData(a, bufA, 0x1000);
      await checkData(b, bufB, 0x2000);
    }));

  it('a fault that cannot get VRAM falls back visibly: counter and trace event', () =>
    twoProcesses(
      2,
      async (a, b, dev) => {
        const sim = dev.sim;
        const bufA = await buffer(a, 0x1000);
        const bufB = await buffer(b, 0x2000);
        const fallbacks: [number, number, number][] = [];
        sim.trace.on('svm.migrate.fallback', (_d, start, needed, free) =>
          fallbacks.push([start, needed, free]),
        );
        expect((await storeAll(a, bufA, 0x1000)).failed).toBe(0); // a fills the pool
        // the pool's policy evicts nothing: b's fault stays in system memory, and says so
        expect((await storeAll(b, bufB, 0x2000)).failed).toBe(0);
        expect(sim.counters.get('svm.migrate.fallbacks')).toBe(1);
        expect(fallbacks).toEqual([[bufB, M2 / P, 0]]);
        expect(pagesAt(b.world, bufB, bufB + M2, 'sys')).toBe(M2 / P);
        expect(pagesAt(a.world, bufA, bufA + M2, 'gpu0')).toBe(M2 / P);
        await checkData(a, bufA, 0x1000);
        await checkData(b, bufB, 0x2000);
      },
      { name: 'never', pickVictim: () => null },
    ));

  it("b's fault evicts a's pages without a's mmap lock (drm_pagemap_evict_to_ram: by pfn)", () =>
    twoProcesses(3, async (a, b, dev) => {
      const sim = dev.sim;
      const bufA = await buffer(a, 0x1000);
      const bufB = await buffer(b, 0x2000);
      expect((await storeAll(a, bufA, 0x1000)).failed).toBe(0);
      expect(pagesAt(a.world, bufA, bufA + M2, 'gpu0')).toBe(M2 / P);
      // a holds its mmap lock for write for 1 ms (a long mmap/munmap of its own)
      let released = -1;
      const t0 = sim.now;
      await a.mm.mmapLock.write();
      const holder = sim.sched.spawn('a-mmap-writer', async () => {
        await sim.sched.sleep(1_000_000);
        released = sim.now;
        a.mm.mmapLock.writeUnlock();
      });
      expect((await storeAll(b, bufB, 0x2000)).failed).toBe(0);
      const done = sim.now;
      expect(released, "b's fault finished before a released its mmap lock").toBe(-1);
      expect(done).toBeLessThan(t0 + 1_000_000);
      expect(sim.counters.get('gpu0.vm.evict.foreign.pages')).toBe(M2 / P);
      expect(pagesAt(b.world, bufB, bufB + M2, 'gpu0')).toBe(M2 / P);
      await sim.sched.join(holder);
      await checkData(a, bufA, 0x1000);
      await checkData(b, bufB, 0x2000);
    }));
});
