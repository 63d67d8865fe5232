/**
 * xe_exec_system_allocator (IGT tests/intel/xe_exec_system_allocator.c): the sections that need
 * several GPU VMs on one device or buffer objects bound beside the CPU-address mirror (issue 14
 * §4), on `GpuVmDevice` / `GpuVm` (`src/vm.ts`): evict-malloc-mix-bo,
 * threads-shared-alloc-many-stride-malloc(-sync, -race) and processes-evict-malloc(-mix-bo), and
 * the bind rules. (The busy, bo-unmap and new-bo-map sections and the threads-many,
 * threads-shared-vm-many and process-many families are generated from `xe-families.ts`.) Each VM's
 * oracle must stay clean.
 */
import { WALK } from '@hmmkit/gpu';
import {
  createMachine,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  Mm,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
} from '@hmmkit/mm';
import { ArgumentError, createSim, Errno, StateError } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  type Access,
  type BufferObject,
  type GpuVm,
  GpuVmDevice,
  type GpuVmDeviceOptions,
} from '../../src/index.ts';
import { expectCoherent, M2, P, R, W } from './helpers.ts';
import { barrier } from './xe-families.ts';
import {
  batchAccesses,
  EXEC_DATA,
  execAndWait,
  RACE,
  SYNC_EXEC,
  testExec,
  USER_FENCE,
  writeStoreBatch,
} from './xe-model.ts';

const RW = PROT_READ | PROT_WRITE;

/** A device, `procs` processes (an mm each) and `vmsPerMm` VMs on each; checks every oracle at the end. */
async function vmRun(
  seed: number,
  shape: { procs?: number; vmsPerMm?: number; dev?: GpuVmDeviceOptions },
  body: (vms: GpuVm[], dev: GpuVmDevice) => Promise<void>,
): Promise<void> {
  const sim = createSim({ seed });
  const machine = createMachine(sim, { thp: 'never' });
  const dev = new GpuVmDevice(machine, { vramBytes: 32 << 20, ...shape.dev });
  const vms: GpuVm[] = [];
  for (let p = 0; p < (shape.procs ?? 1); p++) {
    const mm = new Mm(machine);
    for (let v = 0; v < (shape.vmsPerMm ?? 1); v++) vms.push(await dev.createVm(mm));
  }
  await sim.sched.runMain(async () => {
    await body(vms, dev);
    for (const vm of vms) expectCoherent(vm.world);
  });
}

/** Runs `fn` for every VM in its own task ("thread" or "process") and joins them. */
async function concurrently(vms: GpuVm[], fn: (vm: GpuVm, k: number) => Promise<void>): Promise<void> {
  const sched = vms[0]!.device.sim.sched;
  const tasks = vms.map((vm, k) => sched.spawn(`engine-${k}`, () => fn(vm, k)));
  for (const t of tasks) await sched.join(t);
}

describe('xe_exec_system_allocator: sections with buffer objects and several VMs', () => {
  // evict-malloc-mix-bo: one process, 2 MiB allocations over the SVM pool, every other one a VRAM BO
  it('xe_exec_system_allocator: evict-malloc-mix-bo', () =>
    vmRun(1495, { dev: { vramBytes: 24 << 20, svmBytes: 8 << 20 } }, async ([vm], dev) => {
      await evictAllocs(vm!, dev, 0, 5, true);
      expect(dev.sim.counters.get('svm.evictions')).toBeGreaterThan(0);
    }));

  // threads-shared-alloc-many-stride-malloc(-race): a VM per thread, one allocation, interleaved
  // structs (stride 4 instead of 256, as the shared-vm variant in -misc)
  for (const [name, flags] of [
    ['threads-shared-alloc-many-stride-malloc', 0],
    ['threads-shared-alloc-many-stride-malloc-sync', SYNC_EXEC],
    ['threads-shared-alloc-many-stride-malloc-race', RACE],
  ] as const) {
    it(`xe_exec_system_allocator: ${name}`, () =>
      vmRun(1497 + flags, { vmsPerMm: 2 }, async (vms) => {
        // SYNC_EXEC: every thread waits at a barrier before each exec and after submitting it
        const sync = flags & SYNC_EXEC ? barrier(vms[0]!.device.sim, vms.length) : undefined;
        const { mm } = vms[0]!;
        const execs = 128;
        const stride = 4;
        const size = Math.ceil((EXEC_DATA.size * stride * execs * 2) / M2) * M2;
        const raw = await mm.mmap(0, size + M2, RW, MAP_PRIVATE | MAP_ANONYMOUS);
        const alloc = Math.ceil(raw / M2) * M2;
        await mm.write(alloc, new Uint8Array(size).fill(5));
        const shape = { queues: 1, execs, boSize: 0, stride };
        await concurrently(vms, (vm, t) =>
          testExec(vm.world, shape, flags & ~SYNC_EXEC, {
            alloc: alloc + t * EXEC_DATA.size,
            ...(sync === undefined ? {} : { barrier: sync }),
          }).then(() => undefined),
        );
      }));
  }

  // processes-evict-malloc(-mix-bo): processes whose allocations together exceed the VRAM the
  // device gives SVM; each checks its data; another process's pressure evicts a process's pages.
  for (const [name, mixBo] of [
    ['processes-evict-malloc', false],
    ['processes-evict-malloc-mix-bo', true],
  ] as const) {
    it(`xe_exec_system_allocator: ${name}`, () =>
      vmRun(
        1500 + Number(mixBo),
        { procs: 4, dev: { vramBytes: (mixBo ? 40 : 24) << 20, svmBytes: 16 << 20 } },
        async (vms, dev) => {
          const sim = dev.sim;
          await concurrently(vms, (vm, p) => evictAllocs(vm, dev, p, 3, mixBo));
          expect(sim.counters.get('svm.evictions')).toBeGreaterThan(0);
        },
      ));
  }
});

describe('GPU VMs: one device, several processes', () => {
  it("one process's VRAM pressure evicts another process's pages (one LRU for the device)", () =>
    vmRun(1510, { procs: 2, dev: { vramBytes: 12 << 20, svmBytes: 8 << 20 } }, async ([a, b], dev) => {
      const foreign = () => dev.sim.counters.get('gpu0.vm.evict.foreign.pages');
      const pagesOf = (vm: GpuVm) => {
        let n = 0;
        for (let k = 0; k < dev.pool.rmapTag.length; k++)
          if (dev.pool.rmapTag[k] === vm.tag && dev.pool.rmapVa1[k]! > 0) n++;
        return n;
      };
      const aAllocs = await writeAllocs(a!, dev, 0, 4, false); // fills the pool
      expect(foreign()).toBe(0);
      expect(pagesOf(a!)).toBe(4 * 512);
      await checkAllocs(b!, 1, await writeAllocs(b!, dev, 1, 2, false));
      expect(foreign(), 'b evicted pages of a').toBeGreaterThanOrEqual(2 * 512);
      expect(pagesOf(a!)).toBeLessThanOrEqual(2 * 512);
      await checkAllocs(a!, 0, aAllocs); // a's data survived the eviction
    }));
});

describe('GPU VMs: bind rules', () => {
  it('destroying a VM gives its VRAM back to the process, drops its BO bindings, and leaves other VMs alone', () =>
    vmRun(1522, { procs: 2 }, async ([a, b], dev) => {
      const wa = await writeAllocs(a!, dev, 0, 2, true);
      const wb = await writeAllocs(b!, dev, 1, 1, false);
      const bo = wa[1]!.bo!;
      expect(bo.bindings).toBe(1);
      await a!.destroy();
      expect(dev.liveVms).toEqual([b]);
      expect(bo.bindings, 'the binding is gone').toBe(0);
      for (let k = 0; k < dev.pool.rmapTag.length; k++)
        if (dev.pool.rmapVa1[k]! > 0) expect(dev.pool.rmapTag[k], 'only b keeps VRAM').toBe(b!.tag);
      expect(a!.dev.pageTable.translate(wa[0]!.at).status, 'a’s page table is empty').not.toBe(WALK.MAPPED);
      await expect(a!.bindMirror(wa[0]!.at, P)).rejects.toBeInstanceOf(StateError);
      // a's process still reads what its GPU wrote (migrated back at destroy), b is untouched
      expect(await a!.mm.readU32(wa[0]!.at)).toBe(evictVal(0, 0, 0));
      expect(bo.read32(0)).toBe(evictVal(0, 1, 0));
      bo.close();
      await checkAllocs(b!, 1, wb);
    }));

  it('a BO bound over a former mirror range (ranges collected) serves the GPU; live ranges refuse it', () =>
    vmRun(1520, {}, async ([vm], dev) => {
      const { mm } = vm!.world;
      const data = await mm.mmap(0, M2, RW, MAP_PRIVATE | MAP_ANONYMOUS);
      const fence = await mm.mmap(0, P, RW, MAP_SHARED | MAP_ANONYMOUS);
      await writeStoreBatch(vm!.world, data, [data + EXEC_DATA.data], 0x1234);
      const r = await execAndWait(
        vm!.world,
        0,
        [batchAccesses(data, [data + EXEC_DATA.data], 0x1234, fence)],
        fence,
      );
      expect(r.failed).toBe(0);
      expect(vm!.svm.ranges.length).toBeGreaterThan(0);
      const bo = dev.createBo(M2) as BufferObject;
      expect(await vm!.bindBo(bo, 0, data, M2), 'the mirror there still has a range').toBe(-Errno.EBUSY);
      expect(bo.bindings).toBe(0);
      expect(vm!.isMirrored(data)).toBe(true);
      expect(await mm.munmap(data, M2)).toBe(0);
      expect(await vm!.bindBo(bo, 0, data, M2)).toBe(0);
      bo.write32(0, 0xabcd);
      await mm.writeU32(fence, 0);
      const r2 = await execAndWait(
        vm!.world,
        0,
        [
          [
            [data, R, 0],
            [data + 8, W, 0x5678],
            [fence, W, USER_FENCE],
          ],
        ],
        fence,
      );
      expect(r2.failed).toBe(0);
      expect(r2.data[0]).toBe(0xabcd);
      expect(bo.read32(8)).toBe(0x5678);
      expect(await vm!.unbind(data, M2)).toBe(0);
      expect(vm!.boAt(data)).toBeNull();
      expect(vm!.isMirrored(data), 'an unbind leaves a hole').toBe(false);
      // a GPU access in the hole is refused (no mirror there)
      const r3 = await execAndWait(vm!.world, 0, [[[data, R, 0]]], -1);
      expect(r3.failed).toBe(1);
      bo.close();
      expect(await mm.munmap(fence, P)).toBe(0);
    }));

  it('bad binds throw an ArgumentError and change nothing', () =>
    vmRun(1521, {}, async ([vm], dev) => {
      const va = 0x40000000;
      const bo = dev.createBo(4 * P) as BufferObject;
      expect(await vm!.bindBo(bo, 0, va, 2 * P)).toBe(0);
      const state = () => [
        vm!.boAt(va)?.offset,
        vm!.isMirrored(va + 2 * P),
        bo.bindings,
        vm!.isMirrored(va - P),
      ];
      const s0 = state();
      const bad: [string, () => Promise<number>][] = [
        ['overlapping BO bind', () => vm!.bindBo(bo, 0, va + P, 2 * P)],
        ['unaligned va', () => vm!.bindBo(bo, 0, va + 2 * P + 100, P)],
        ['unaligned size', () => vm!.bindBo(bo, 0, va + 2 * P, 100)],
        ['unaligned BO offset', () => vm!.bindBo(bo, 10, va + 2 * P, P)],
        ['span past the BO', () => vm!.bindBo(bo, 3 * P, va + 2 * P, 2 * P)],
        ['partial unbind of a BO', () => vm!.unbind(va, P)],
        ['mirror over part of a BO', () => vm!.bindMirror(va + P, P)],
        ['past the VM', () => vm!.bindMirror(vm!.vaEnd - P, 2 * P)],
      ];
      for (const [what, f] of bad) {
        await expect(f(), what).rejects.toBeInstanceOf(ArgumentError);
        expect(state(), what).toEqual(s0);
      }
      const other = new GpuVmDevice(vm!.mm.machine, { id: 1, vramBytes: 8 << 20 });
      const foreign = other.createBo(P) as BufferObject;
      await expect(vm!.bindBo(foreign, 0, va + 2 * P, P)).rejects.toBeInstanceOf(ArgumentError);
      const closed = dev.createBo(P) as BufferObject;
      closed.close();
      await expect(vm!.bindBo(closed, 0, va + 2 * P, P)).rejects.toBeInstanceOf(ArgumentError);
      expect(state()).toEqual(s0);
      expect(await vm!.unbind(va, 2 * P)).toBe(0);
      bo.close();
      expect(bo.alive).toBe(false);
    }));
});

/**
 * One process of processes-evict: `n` 2 MiB allocations written by the GPU one dword per 16 KiB
 * (faulting them into VRAM), then every value checked by the CPU; with mix-bo every other
 * allocation is a VRAM BO instead (written by the GPU, read back through the BO).
 */
async function evictAllocs(vm: GpuVm, dev: GpuVmDevice, p: number, n: number, mixBo: boolean): Promise<void> {
  await checkAllocs(vm, p, await writeAllocs(vm, dev, p, n, mixBo));
}

const STRIDE = 16 * 1024;
const evictVal = (p: number, a: number, i: number) => (p * 0x1000000 + a * 0x10000 + i + 1) >>> 0;
type Alloc = { readonly at: number; readonly bo: BufferObject | null };

/** The write half of {@link evictAllocs}: returns the allocations. */
async function writeAllocs(
  vm: GpuVm,
  dev: GpuVmDevice,
  p: number,
  n: number,
  mixBo: boolean,
): Promise<Alloc[]> {
  const w = vm.world;
  const { mm } = w;
  const fence = await mm.mmap(0, P, RW, MAP_SHARED | MAP_ANONYMOUS);
  const allocs: Alloc[] = [];
  for (let a = 0; a < n * (mixBo ? 2 : 1); a++) {
    const isBo = mixBo && a % 2 === 1;
    const raw = await mm.mmap(0, 2 * M2, isBo ? PROT_NONE : RW, MAP_PRIVATE | MAP_ANONYMOUS);
    const at = Math.ceil(raw / M2) * M2;
    let bo: BufferObject | null = null;
    if (isBo) {
      bo = dev.createBo(M2) as BufferObject;
      expect(typeof bo).toBe('object');
      expect(await vm.bindBo(bo, 0, at, M2)).toBe(0);
    }
    allocs.push({ at, bo });
    const warps: Access[][] = [];
    for (let i = 0; i < M2 / STRIDE; i++) warps.push([[at + i * STRIDE, W, evictVal(p, a, i)]]);
    warps[warps.length - 1]!.push([fence, W, USER_FENCE]);
    await mm.writeU32(fence, 0);
    const r = await execAndWait(w, 0, warps, fence);
    expect(r.failed).toBe(0);
  }
  expect(await mm.munmap(fence, P)).toBe(0);
  return allocs;
}

/** The check half: every value the GPU wrote reads back (a BO through the BO, then unbound). */
async function checkAllocs(vm: GpuVm, p: number, allocs: readonly Alloc[]): Promise<void> {
  const { mm } = vm.world;
  for (const [a, { at, bo }] of allocs.entries()) {
    for (let i = 0; i < M2 / STRIDE; i++) {
      const got = bo !== null ? bo.read32(i * STRIDE) : await mm.readU32(at + i * STRIDE);
      expect(got, `process ${p} alloc ${a} dword ${i}`).toBe(evictVal(p, a, i));
    }
    if (bo !== null) {
      expect(await vm.bindMirror(at, M2)).toBe(0);
      bo.close();
    }
  }
}
