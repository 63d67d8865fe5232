/**
 * xe_exec_system_allocator (IGT tests/intel/xe_exec_system_allocator.c): the madvise sections of
 * the atomic-access attribute (DRM_XE_MEM_RANGE_ATTR_ATOMIC, `madviseAtomic` in atomic.ts). Each
 * section madvises, then runs an MI_ATOMIC increment of the data dword and checks READ_VALUE, as
 * the original does; the CPU and UND sections accept a timed-out exec there, and hmmkit asserts
 * what the 6.18 kernel does (xe_vma_need_vram_for_atomic): CPU refuses the GPU atomic, UND
 * migrates to VRAM like GLOBAL. The VMA sections (multi-vma, split-vma, atomic-vma,
 * split-vma-with-mapping) and the pat-index-madvise sections run on a `GpuVm` (xe_vm: VMAs split
 * by madvise, BOs beside the mirror) whose device has the Intel Xe2 PTE format and PAT table
 * (`xe2` in @hmmkit/gpu); each checks what IGT checks, the VMAs xe_vm_query_mem_range_attrs()
 * would report, the PAT index in the device PTEs, and a clean oracle.
 */
import { amdGfx9, type PatName, type PtFormat, patIndexOf, xe2 } from '@hmmkit/gpu';
import { createMachine, Mm } from '@hmmkit/mm';
import { ArgumentError, createSim, type Sim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  ATOMIC_ACCESS,
  type BufferObject,
  deviceLoc,
  type GpuVm,
  GpuVmDevice,
  LOC,
  madviseAtomic,
  madvisePat,
  patEntries,
  runKernel,
  type SvmWorld,
} from '../../src/index.ts';
import {
  A,
  expectCoherent,
  K64,
  M2,
  mmapRw,
  P,
  pagesAt,
  R,
  runKernelRaw,
  scenario,
  W,
  where,
  xeWorld,
} from './helpers.ts';
import { ATOMIC_BATCH, PREFETCH, type Shape, testExec } from './xe-model.ts';

const MEMSET5 = 0x05050505;

/** mmap + memset(5) of 64 KiB; returns its address. */
async function alloc(w: SvmWorld): Promise<number> {
  const data = await mmapRw(w, K64);
  await w.mm.write(data, new Uint8Array(K64).fill(5));
  return data;
}

/** xe_vm_madvise_migrate_pages: preferred location system memory (MIGRATE_ALL_PAGES). */
function preferSystem(w: SvmWorld, data: number): void {
  w.svm.attrs.advise(data, data + K64, { preferredLoc: LOC.SYSMEM });
}

/** One exec of an MI_ATOMIC increment at `va`; returns whether it completed (fence signalled). */
async function atomicInc(w: SvmWorld, va: number): Promise<boolean> {
  const r = await runKernelRaw(w, 0, [[va, A, 1]]);
  return r.failed === 0;
}

describe('xe_exec_system_allocator madvise (atomic attribute)', () => {
  for (const [name, mode] of [
    ['madvise-preffered-loc-atomic-vram', ATOMIC_ACCESS.DEVICE],
    ['madvise-preffered-loc-atomic-gl', ATOMIC_ACCESS.GLOBAL],
    ['madvise-preffered-loc-atomic-und', ATOMIC_ACCESS.UNDEFINED],
  ] as const) {
    it(`xe_exec_system_allocator: ${name}`, () =>
      scenario(1400 + mode, xeWorld, async (w) => {
        const data = await alloc(w);
        preferSystem(w, data);
        await madviseAtomic(w.svm, data, data + K64, mode);
        // preferred location system memory, yet a device atomic needs the page in VRAM
        expect(await atomicInc(w, data + 8)).toBe(true);
        expect(where(w, data + 8)).toBe('gpu0');
        expect(await w.mm.readU32(data + 8)).toBe(MEMSET5 + 1);
        expect(where(w, data + 8)).toBe('sys'); // the CPU read faulted it back
      }));
  }

  it('xe_exec_system_allocator: madvise-preffered-loc-atomic-cpu', () =>
    scenario(1403, xeWorld, async (w) => {
      const data = await alloc(w);
      preferSystem(w, data);
      await madviseAtomic(w.svm, data, data + K64, ATOMIC_ACCESS.CPU);
      // xe_vma_need_vram_for_atomic: -EACCES, the exec's fence never signals
      expect(await atomicInc(w, data + 8)).toBe(false);
      expect(await w.mm.readU32(data + 8)).toBe(MEMSET5);
      // plain stores still run, in system memory (preferred location)
      const r = await runKernelRaw(w, 0, [[data + 16, 2, 7]]);
      expect(r.failed).toBe(0);
      expect(where(w, data + 16)).toBe('sys');
      expect(await w.mm.readU32(data + 16)).toBe(7);
    }));

  it('xe_exec_system_allocator: madvise-atomic-inc', () =>
    scenario(1404, xeWorld, async (w) => {
      const data = await alloc(w);
      await madviseAtomic(w.svm, data, data + K64, ATOMIC_ACCESS.DEVICE);
      for (let i = 0; i < 4; i++) expect(await atomicInc(w, data + 8)).toBe(true);
      expect(await w.mm.readU32(data + 8)).toBe(MEMSET5 + 4);
    }));

  it('xe_exec_system_allocator: madvise-range-invalidate-change-attr', () =>
    scenario(1405, xeWorld, async (w) => {
      const data = await alloc(w);
      await madviseAtomic(w.svm, data, data + K64, ATOMIC_ACCESS.GLOBAL);
      expect(await w.svm.prefetch(data, data + K64, 1)).toBeGreaterThanOrEqual(0);
      expect(pagesAt(w, data, data + K64, 'gpu0')).toBe(K64 / P);
      // a changed attribute invalidates the device mapping of the range
      expect(await madviseAtomic(w.svm, data, data + K64, ATOMIC_ACCESS.DEVICE)).toBeGreaterThan(0);
      expect(await atomicInc(w, data + 8)).toBe(true);
      expect(await w.mm.readU32(data + 8)).toBe(MEMSET5 + 1);
    }));

  it('xe_exec_system_allocator: madvise-no-range-invalidate-same-attr', () =>
    scenario(1406, xeWorld, async (w) => {
      const data = await alloc(w);
      await madviseAtomic(w.svm, data, data + K64, ATOMIC_ACCESS.GLOBAL);
      expect(await w.svm.prefetch(data, data + K64, 1)).toBeGreaterThanOrEqual(0);
      const binds = w.svm.c.binds.value;
      // the same attribute again on half: nothing invalidated
      expect(await madviseAtomic(w.svm, data, data + K64 / 2, ATOMIC_ACCESS.GLOBAL)).toBe(0);
      expect(await atomicInc(w, data + 8)).toBe(true);
      expect(w.svm.c.binds.value).toBe(binds); // no rebind: the prefetch's mapping still served
      expect(await w.mm.readU32(data + 8)).toBe(MEMSET5 + 1);
    }));
});

// ------------------------------------------------------------------ on a GpuVm (xe_vm with VMAs)

/** One GpuVm over a fresh process on a device with the Xe2 PTE format; checks its oracle at the end. */
async function vmRun(seed: number, body: (vm: GpuVm, dev: GpuVmDevice) => Promise<void>): Promise<void> {
  const sim = createSim({ seed });
  const machine = createMachine(sim, { thp: 'never' });
  const dev = new GpuVmDevice(machine, { vramBytes: 32 << 20, format: xe2 });
  const vm = await dev.createVm(new Mm(machine));
  await sim.sched.runMain(async () => {
    await body(vm, dev);
    expectCoherent(vm.world);
  });
}

/** The PAT index of every device PTE of the VM over `[start, end)`. */
function vmPtePats(vm: GpuVm, start: number, end: number): number[] {
  const out: number[] = [];
  vm.dev.pageTable.forEachMapping(start, end, (m) => out.push(m.pat ?? 0));
  return out;
}

/** The madvise sections' test_exec(): 1 exec queue, 1 exec, bo_size 64K (4M for pat-index). */
const MADVISE_SHAPE: Shape = { queues: 1, execs: 1, boSize: K64, stride: 0 };
const PAT_SHAPE: Shape = { queues: 1, execs: 1, boSize: 4 * M2, stride: 0 };
const WB = patIndexOf(xe2, 'wb');

describe('xe_exec_system_allocator madvise (VMAs of a GpuVm)', () => {
  it('xe_exec_system_allocator: madvise-multi-vma', () =>
    vmRun(1420, async (vm) => {
      const size = K64;
      await testExec(vm.world, MADVISE_SHAPE, ATOMIC_BATCH, {
        afterAlloc: async (data) => {
          // xe_vm_parse_execute_madvise(MADVISE_MULTI_VMA): four madvises over three VMAs
          await vm.madvise(data + size / 2, size / 2, { type: 'atomic', value: ATOMIC_ACCESS.DEVICE });
          await vm.madvise(data + size / 2, size / 2, { type: 'pat', index: WB });
          await vm.madvise(data + size, size, { type: 'atomic', value: ATOMIC_ACCESS.DEVICE });
          await vm.madvise(data, size, { type: 'pat', index: WB });
          const vmas = vm.memRangeAttrs(data, 2 * size);
          expect(vmas.map((v) => [v.start - data, v.end - data, v.atomic, v.pat])).toEqual([
            [0, size / 2, ATOMIC_ACCESS.UNDEFINED, WB],
            [size / 2, size, ATOMIC_ACCESS.DEVICE, WB],
            [size, 2 * size, ATOMIC_ACCESS.DEVICE, WB],
          ]);
        },
        afterExecs: async (data) => {
          // the CPU's check took the page back; a GPU read maps the first VMA again, with wb
          expect((await runKernel(vm.world, 0, [[[data, R, 0]]])).failed).toBe(0);
          const pats = vmPtePats(vm, data, data + size / 2);
          expect(pats.length).toBeGreaterThan(0);
          expect(new Set(pats)).toEqual(new Set([WB]));
        },
      });
    }));

  it('xe_exec_system_allocator: madvise-split-vma', () =>
    vmRun(1421, async (vm, dev) => {
      const size = K64;
      const vramBefore = dev.gpu.vram.freeBytes;
      await testExec(vm.world, MADVISE_SHAPE, ATOMIC_BATCH, {
        afterAlloc: async (data) => {
          // MADVISE_SPLIT_VMA: a VRAM BO bound over the upper half, the mirror bound back over it
          // (which unbinds the BO), the handle closed, then an atomic madvise of that half
          const split = data + size / 2;
          const bo = dev.createBo(size) as BufferObject;
          expect(await vm.bindBo(bo, 0, split, size / 2)).toBe(0);
          expect(vm.memRangeAttrs(data, size).map((v) => v.kind)).toEqual(['mirror', 'bo']);
          expect(await vm.bindMirror(split, size / 2)).toBe(0);
          bo.close();
          expect(bo.alive).toBe(false);
          // the new mirror VMA has default attributes: merged with its neighbours into one VMA
          const one = vm.memRangeAttrs(data, size);
          expect(one.length).toBe(1);
          expect(one[0]!.start <= data && one[0]!.end >= data + size).toBe(true);
          expect(await vm.madvise(split, size / 2, { type: 'atomic', value: ATOMIC_ACCESS.GLOBAL })).toBe(1);
          const two = vm.memRangeAttrs(data, size);
          expect(two.map((v) => [Math.max(v.start, data) - data, v.end - data, v.atomic])).toEqual([
            [0, size / 2, ATOMIC_ACCESS.UNDEFINED],
            [size / 2, size, ATOMIC_ACCESS.GLOBAL],
          ]);
        },
      });
      expect(dev.gpu.vram.freeBytes).toBe(vramBefore);
    }));

  it('xe_exec_system_allocator: madvise-atomic-vma', () =>
    vmRun(1422, async (vm) => {
      // IGT defines MADVISE_ATOMIC_VMA but xe_vm_parse_execute_madvise never acts on it: the
      // section is an MI_ATOMIC increment on the 64K allocation, VMAs untouched
      await testExec(vm.world, MADVISE_SHAPE, ATOMIC_BATCH, {
        afterExecs: async (data) => {
          expect(vm.memRangeAttrs(data, K64).length).toBe(1);
        },
      });
    }));

  it('xe_exec_system_allocator: madvise-split-vma-with-mapping', () =>
    vmRun(1423, async (vm) => {
      const w = vm.world;
      const size = K64;
      const seen: number[] = [];
      const outcomes = await testExec(w, MADVISE_SHAPE, ATOMIC_BATCH | PREFETCH, {
        afterBatch: async (data) => {
          // madvise_prefetch_op(PREFETCH_SPLIT_VMA): prefetch to system memory (a range now maps
          // the allocation), then a preferred-location madvise of the lower half splits the VMA
          expect(await w.svm.prefetch(data, data + size, LOC.SYSMEM)).toBeGreaterThanOrEqual(0);
          // xe binds after a prefetch to system memory; hmmkit's prefetch there (KFD's) does not,
          // so a GPU read maps the allocation: one 64K range over both halves
          expect((await runKernel(w, 0, [[[data, R, 0]]])).failed).toBe(0);
          const r = w.svm.rangeFind(data);
          expect(r !== null && r.start <= data && r.end >= data + size).toBe(true);
          expect(vm.memRangeAttrs(data, size).length).toBe(1);
          expect(await vm.madvise(data, size / 2, { type: 'preferredLoc', loc: LOC.SYSMEM })).toBe(1);
          expect(vm.memRangeAttrs(data, size).map((v) => v.preferredLoc)).toEqual([
            LOC.SYSMEM,
            LOC.UNDEFINED,
          ]);
          // the range straddled the new boundary: xe_svm_unmap_address_range removed it
          expect(r!.removed).toBe(true);
          seen.push(data);
        },
        afterExecs: async (data) => {
          // the prefetch to VRAM and the exec built ranges inside the two VMAs only
          for (const r of w.svm.ranges) {
            expect(r.end <= data + size / 2 || r.start >= data + size / 2).toBe(true);
          }
        },
      });
      expect(seen.length).toBe(1);
      expect(outcomes[0]!.failed).toBe(0);
    }));

  it('madvise of a BO VMA: DEVICE atomics and a PAT index rebind it; GLOBAL/CPU are refused', () =>
    vmRun(1424, async (vm, dev) => {
      const va = 0x4000_0000;
      const bo = dev.createBo(4 * P) as BufferObject;
      expect(await vm.bindBo(bo, 0, va, 4 * P)).toBe(0);
      expect(vmPtePats(vm, va, va + 4 * P)).toEqual([WB, WB, WB, WB]);
      bo.close(); // gem_close after the bind: the binding keeps the BO
      const uc = patIndexOf(xe2, 'uc');
      // a madvise over half the BO splits its VMA; the BO gains a reference per VMA
      expect(await vm.madvise(va, 2 * P, { type: 'pat', index: uc })).toBe(1);
      expect(bo.bindings).toBe(2);
      expect(vmPtePats(vm, va, va + 4 * P)).toEqual([uc, uc, WB, WB]);
      expect(await vm.madvise(va, 4 * P, { type: 'atomic', value: ATOMIC_ACCESS.DEVICE })).toBe(2);
      expect(await vm.madvise(va, 4 * P, { type: 'atomic', value: ATOMIC_ACCESS.DEVICE })).toBe(0);
      const before = vm.memRangeAttrs(va, 4 * P);
      for (const value of [ATOMIC_ACCESS.GLOBAL, ATOMIC_ACCESS.CPU]) {
        await expect(vm.madvise(va, 4 * P, { type: 'atomic', value })).rejects.toThrow(ArgumentError);
      }
      expect(vm.memRangeAttrs(va, 4 * P)).toEqual(before);
      // a preferred location is not a BO attribute (xe's TODO): nothing changes
      expect(await vm.madvise(va, 4 * P, { type: 'preferredLoc', loc: LOC.SYSMEM })).toBe(0);
      // the GPU's atomic on the BO runs (VRAM, AE set)
      bo.write32(8, 41);
      const r = await runKernel(vm.world, 0, [[[va + 8, A, 1]]]);
      expect(r.failed).toBe(0);
      expect(bo.read32(8)).toBe(42);
      expect(vm.dev.pageTable.translate(va).atomic).toBe(true);
      const free = dev.gpu.vram.freeBytes;
      expect(await vm.unbind(va, 4 * P)).toBe(0);
      expect(bo.bindings).toBe(0);
      expect(bo.alive).toBe(false);
      expect(dev.gpu.vram.freeBytes).toBe(free + 4 * P);
    }));

  it('bad madvise arguments are ArgumentErrors naming the argument; nothing changes', () =>
    vmRun(1425, async (vm) => {
      const data = await mmapRw(vm.world, K64);
      const hole = 0x7000_0000;
      expect(await vm.unbind(hole, K64)).toBe(0);
      const before = vm.memRangeAttrs(data - K64, 3 * K64);
      const state = vm.svm.attrs.state;
      const bad: [number, number, Parameters<GpuVm['madvise']>[2], string][] = [
        [data, K64, { type: 'pat', index: 16 }, 'op.index'], // reserved in the Xe2 table
        [data, K64, { type: 'pat', index: 32 }, 'op.index'],
        [data, K64, { type: 'pat', index: 1.5 }, 'op.index'],
        [data, K64, { type: 'atomic', value: 4 }, 'op.value'],
        [data, K64, { type: 'preferredLoc', loc: deviceLoc(1) }, 'op.loc'],
        [data + 1, K64, { type: 'pat', index: WB }, 'va'],
        [data, 0, { type: 'pat', index: WB }, 'size'],
        [hole, K64, { type: 'pat', index: WB }, 'va'], // no VMA there
      ];
      for (const [va, size, op, arg] of bad) {
        const e = await vm.madvise(va, size, op).catch((x: unknown) => x);
        expect(e, arg).toBeInstanceOf(ArgumentError);
        expect((e as ArgumentError).message).toContain(arg);
      }
      expect(vm.memRangeAttrs(data - K64, 3 * K64)).toEqual(before);
      expect(vm.svm.attrs.state).toBe(state);
      expect(await vm.world.mm.munmap(data, K64)).toBe(0);
    }));
});

/** The PAT sections: the index each names on Xe2 (intel_get_pat_idx_*; max = n_entries - 1). */
const PAT_SECTIONS: readonly (readonly [string, PatName | 'max'])[] = [
  ['wb', 'wb'],
  ['wt', 'wt'],
  ['uc', 'uc'],
  ['uc-comp', 'uc-comp'],
];

function patValue(name: PatName | 'max', fmt: PtFormat): number {
  return name === 'max' ? fmt.patTable!.entries.length - 1 : patIndexOf(fmt, name);
}

describe('xe_exec_system_allocator pat-index-madvise (Xe2 PAT table)', () => {
  const cases: [string, PatName | 'max', boolean][] = [];
  for (const [n, name] of PAT_SECTIONS) {
    cases.push([`pat-index-madvise-pat-idx-${n}-single-vma`, name, false]);
    cases.push([`pat-index-madvise-pat-idx-${n}-multi-vma`, name, true]);
  }
  cases.push(['pat-index-madvise-max-pat-index-single-vma', 'max', false]);
  cases.push(['pat-index-madvise-max-pat-index-multi-vma', 'max', true]);
  cases.forEach(([section, name, multi], k) => {
    it(`xe_exec_system_allocator: ${section}`, () =>
      vmRun(1430 + k, async (vm) => {
        const pat = patValue(name, xe2);
        const size = PAT_SHAPE.boSize;
        await testExec(vm.world, PAT_SHAPE, 0, {
          afterAlloc: async (data) => {
            if (multi) {
              await vm.madvise(data + size, size / 2, { type: 'pat', index: pat });
              await vm.madvise(data, size, { type: 'pat', index: pat });
              await vm.madvise(data + size / 2, size / 4, { type: 'pat', index: pat });
            } else await vm.madvise(data, size, { type: 'pat', index: pat });
            // xe_vm_get_mem_attr_values_in_range: every range's pat_index is the value
            const vmas = vm.memRangeAttrs(data, size);
            expect(vmas.length).toBe(multi ? 3 : 1);
            for (const v of vmas) expect(v.pat).toBe(pat);
          },
          afterExecs: async (data) => {
            // the CPU's check took the page back; a GPU read maps it again: every device PTE over
            // the allocation carries the index, in its five bits
            expect((await runKernel(vm.world, 0, [[[data, R, 0]]])).failed).toBe(0);
            const pats = vmPtePats(vm, data, data + size);
            expect(pats.length).toBeGreaterThan(0);
            expect(new Set(pats)).toEqual(new Set([pat]));
            const t = vm.dev.pageTable.translate(data);
            expect(t.pat).toBe(pat);
            const level = t.pageSize === M2 ? 2 : 3;
            const e = vm.dev.pageTable.readEntry(data, level)!;
            const bitAt = (b: number) => (b < 32 ? (e[0]! >>> b) & 1 : (e[1]! >>> (b - 32)) & 1);
            const pat2 = level === 3 ? 7 : 12;
            expect([bitAt(3), bitAt(4), bitAt(pat2), bitAt(62), bitAt(61)]).toEqual(
              [0, 1, 2, 3, 4].map((i) => Math.floor(pat / 2 ** i) % 2),
            );
          },
        });
      }));
  });
});

/** A GpuSvm world whose device has the Xe2 PTE format. */
const patWorld = (sim: Sim) => xeWorld(sim, { format: xe2 });

/** The PAT index of every device mapping of `[start, end)`. */
function ptePats(w: SvmWorld, start: number, end: number): number[] {
  const out: number[] = [];
  w.devs[0]!.pageTable.forEachMapping(start, end, (m) => out.push(m.pat ?? 0));
  return out;
}

/** The PAT index the attributes hold over `[start, end)`, per interval. */
function attrPats(w: SvmWorld, start: number, end: number): number[] {
  return w.svm.attrs.segments(start, end).map((s) => s.attrs.pat ?? 0);
}

describe('madvisePat on a GpuSvm (no VMAs)', () => {
  it('a changed PAT index rewrites the mapped PTEs; the same index invalidates nothing', () =>
    scenario(1412, patWorld, async (w) => {
      const data = await alloc(w);
      const r = await runKernelRaw(w, 0, [[data + 8, W, 9]]);
      expect(r.failed).toBe(0);
      expect(new Set(ptePats(w, data, data + K64))).toEqual(new Set([0]));
      expect(await madvisePat(w.svm, data, data + K64, 15)).toBeGreaterThan(0);
      expect(ptePats(w, data, data + K64)).toEqual([]); // zapped
      expect((await runKernelRaw(w, 0, [[data + 8, A, 1]])).failed).toBe(0);
      expect(new Set(ptePats(w, data, data + K64))).toEqual(new Set([15]));
      expect(await madvisePat(w.svm, data, data + K64, 15)).toBe(0);
      expect(await w.mm.readU32(data + 8)).toBe(10);
    }));

  it('an index the PAT table reserves or the PTE cannot hold is an ArgumentError, nothing changed', () =>
    scenario(1413, patWorld, async (w) => {
      const data = await alloc(w);
      expect(patEntries(w.svm)).toBe(32);
      await madvisePat(w.svm, data, data + K64, 1);
      const before = w.svm.attrs.state;
      for (const bad of [16, 19, 32, -1, 1.5]) {
        await expect(madvisePat(w.svm, data, data + K64, bad)).rejects.toThrow(ArgumentError);
      }
      expect(w.svm.attrs.state).toBe(before);
      expect(attrPats(w, data, data + K64)).toEqual([1]);
    }));

  it('AMD GFX9 keeps its MTYPE path: indices 0..3, written into the leaves', () =>
    scenario(
      1415,
      (sim) => xeWorld(sim, { format: amdGfx9 }),
      async (w) => {
        const data = await alloc(w);
        expect(patEntries(w.svm)).toBe(4);
        await madvisePat(w.svm, data, data + K64, 3);
        await expect(madvisePat(w.svm, data, data + K64, 4)).rejects.toThrow(ArgumentError);
        expect((await runKernelRaw(w, 0, [[data + 8, R, 0]])).failed).toBe(0);
        expect(new Set(ptePats(w, data, data + K64))).toEqual(new Set([3]));
      },
    ));

  it('the default NVIDIA format has no PAT field: only index 0', () =>
    scenario(1414, xeWorld, async (w) => {
      const data = await alloc(w);
      expect(patEntries(w.svm)).toBe(1);
      await expect(madvisePat(w.svm, data, data + K64, 1)).rejects.toThrow(ArgumentError);
      expect(await madvisePat(w.svm, data, data + K64, 0)).toBe(0);
    }));
});
