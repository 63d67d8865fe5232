/**
 * The "GPU VA = CPU VA + offset" scheme of the drm_gpuvm-across-devices thread (dri-devel, January
 * 2024) as a GpuSvm option (`gpuVaOffset`) and a GPU VM option: device PTEs of CPU address `va`
 * live at `va + offset`, a fault at GPU VA `g` is serviced for `g - offset`, the notifier zaps
 * at the GPU VA; the oracle judges a device page at `g` against the CPU page at `g - offset`.
 */
import { ACCESS, WALK } from '@hmmkit/gpu';
import { createMachine, Mm } from '@hmmkit/mm';
import { ArgumentError, createSim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  type BufferObject,
  CoherenceOracle,
  createSvmWorld,
  GpuSvm,
  GpuVmDevice,
  mmapAnonymous,
  runKernel,
  worldVerdict,
} from '../src/index.ts';

const OFF = 2 ** 47; // one 128 TiB partition up: the proxy process's second guest
const M2 = 0x200000;
const R = ACCESS.READ;
const W = ACCESS.WRITE;

describe('gpuVaOffset: GPU VA = CPU VA + offset', () => {
  it('kernels use CPU pointers plus the offset; faults, migration, invalidation and the oracle translate', async () => {
    const sim = createSim({ seed: 47 });
    const w = await createSvmWorld(sim, {
      gpuVaOffset: OFF,
      devmem: { migrate: 'fault' },
      vramBytes: 16 << 20,
    });
    const { mm, svm, devs } = w;
    expect(svm.gpuVaOffset).toBe(OFF);
    await sim.sched.runMain(async () => {
      const buf = await mmapAnonymous(mm, M2);
      for (let i = 0; i < 8; i++) await mm.writeU32(buf + i * 4096, 100 + i);
      const reads = await runKernel(w, 0, [
        Array.from({ length: 8 }, (_, i) => [buf + OFF + i * 4096, R, 0] as const),
      ]);
      expect(reads.failed).toBe(0);
      expect([...reads.data]).toEqual([100, 101, 102, 103, 104, 105, 106, 107]);
      const pt = devs[0]!.pageTable;
      expect(pt.translate(buf + OFF).status, 'the PTE is at the GPU VA').toBe(WALK.MAPPED);
      expect(pt.translate(buf).status, 'nothing at the CPU VA').not.toBe(WALK.MAPPED);
      expect(sim.counters.get('svm.migrate.toVram.pages'), 'xe migrates the fault span').toBeGreaterThan(0);
      const st = await runKernel(w, 0, [[[buf + OFF + 64, W, 0xfeed]]]);
      expect(st.failed).toBe(0);
      expect(await mm.readU32(buf + 64), 'the CPU sees the store (migrated back)').toBe(0xfeed);
      // the application's raw CPU pointer is not a GPU address here
      const raw = await runKernel(w, 0, [[[buf, R, 0]]]);
      expect(raw.failed, 'a raw CPU pointer faults and is cancelled').toBe(1);
      // the GPU reads again (re-faults to VRAM), then munmap zaps at the GPU VA
      expect((await runKernel(w, 0, [[[buf + OFF, R, 0]]])).failed).toBe(0);
      expect(pt.translate(buf + OFF).status).toBe(WALK.MAPPED);
      expect(await mm.munmap(buf, M2)).toBe(0);
      expect(pt.translate(buf + OFF).status, 'the invalidation zapped the GPU VA').not.toBe(WALK.MAPPED);
      const v = worldVerdict(w);
      expect(w.oracle.violations).toEqual([]);
      expect(v.checkedAccesses).toBeGreaterThan(0);
      expect(v.checkedLoads).toBeGreaterThan(0);
      // the translation matters: an oracle that assumes GPU VA = CPU VA flags the live mapping
      const buf2 = await mmapAnonymous(mm, M2);
      expect((await runKernel(w, 0, [[[buf2 + OFF, W, 7]]])).failed).toBe(0);
      const naive = new CoherenceOracle(mm, devs, { resolve: svm.resolver, throwOnViolation: false });
      expect(naive.checkAll().length).toBeGreaterThan(0);
      expect(w.oracle.checkAll()).toEqual([]);
    });
  });

  it('bad offsets are rejected with an ArgumentError', async () => {
    const sim = createSim();
    const w = await createSvmWorld(sim);
    const mk = (o: object) => () => new GpuSvm(w.mm, w.devs, o);
    expect(mk({ gpuVaOffset: 4096 })).toThrow(ArgumentError);
    expect(mk({ gpuVaOffset: -M2 })).toThrow(ArgumentError);
    expect(mk({ gpuVaOffset: 2 ** 49 })).toThrow(ArgumentError); // past nv-mmu-v2's 49 VA bits
    expect(mk({ gpuVaOffset: M2, xnack: false })).toThrow(ArgumentError);
    expect(mk({ gpuVaOffset: M2, accessCounters: true })).toThrow(ArgumentError);
  });

  it('a GPU VM with an offset: the mirror and BO binds live at GPU VA', async () => {
    const sim = createSim({ seed: 48 });
    const machine = createMachine(sim, { thp: 'never' });
    const dev = new GpuVmDevice(machine, { vramBytes: 16 << 20 });
    const mm = new Mm(machine);
    const vm = await dev.createVm(mm, { gpuVaOffset: OFF });
    expect(vm.vaStart).toBe(OFF);
    await sim.sched.runMain(async () => {
      const buf = await mmapAnonymous(mm, M2);
      await mm.writeU32(buf, 0x1234);
      expect(vm.isMirrored(buf + OFF)).toBe(true);
      expect(vm.isMirrored(buf)).toBe(false);
      const r = await runKernel(vm.world, 0, [[[buf + OFF, R, 0]]]);
      expect([r.failed, r.data[0]]).toEqual([0, 0x1234]);
      // a BO bound at GPU VA just past the buffer's mirror range
      const bo = dev.createBo(M2) as BufferObject;
      const boVa = buf + OFF + 8 * M2;
      expect(await vm.bindBo(bo, 0, boVa, M2)).toBe(0);
      expect((await runKernel(vm.world, 0, [[[boVa + 4, W, 9]]])).failed).toBe(0);
      expect(bo.read32(4)).toBe(9);
      // the mirror at buf + OFF still holds a range: a BO there is refused
      const bo2 = dev.createBo(M2) as BufferObject;
      expect(await vm.bindBo(bo2, 0, buf + OFF, M2)).toBeLessThan(0);
      bo2.close();
      expect(await vm.bindMirror(boVa, M2)).toBe(0);
      bo.close();
      expect(vm.oracle.checkAll()).toEqual([]);
      expect(vm.oracle.violations).toEqual([]);
    });
  });
});
