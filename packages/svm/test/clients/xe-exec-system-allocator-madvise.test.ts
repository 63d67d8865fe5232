/**
 * xe_exec_system_allocator (IGT tests/intel/xe_exec_system_allocator.c): the madvise sections of
 * the atomic-access attribute (DRM_XE_MEM_RANGE_ATTR_ATOMIC, `madviseAtomic` in atomic.ts). Each
 * section madvises, then runs an MI_ATOMIC increment of the data dword and checks READ_VALUE, as
 * the original does; the CPU and UND sections accept a timed-out exec there, and hmmkit asserts
 * what the 6.18 kernel does (xe_vma_need_vram_for_atomic): CPU refuses the GPU atomic, UND
 * migrates to VRAM like GLOBAL. The pat-index-madvise sections run on a device whose PTE format
 * has a caching-policy field (AMD GFX9's MTYPE, 2 bits: hmmkit has no xe PTE format).
 */
import { amdGfx9 } from '@hmmkit/gpu';
import { ArgumentError, type Sim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import { ATOMIC_ACCESS, LOC, madviseAtomic, madvisePat, patEntries, type SvmWorld } from '../../src/index.ts';
import { A, K64, mmapRw, P, pagesAt, runKernelRaw, scenario, W, where, xeWorld } from './helpers.ts';

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

/** An xe-like world whose device PTEs carry a caching-policy index (AMD GFX9 MTYPE). */
const patWorld = (sim: Sim) => xeWorld(sim, { format: amdGfx9 });

/** The PAT index of every device mapping of `[start, end)`. */
function ptePats(w: SvmWorld, start: number, end: number): number[] {
  const out: number[] = [];
  w.devs[0]!.pageTable.forEachMapping(start, end, (m) => out.push(m.pat ?? 0));
  return out;
}

/** The PAT index the attributes hold over `[start, end)`, per interval (xe_vm_get_mem_attr_values_in_range). */
function attrPats(w: SvmWorld, start: number, end: number): number[] {
  return w.svm.attrs.segments(start, end).map((s) => s.attrs.pat ?? 0);
}

describe('xe_exec_system_allocator pat-index-madvise', () => {
  it('xe_exec_system_allocator: pat-index-madvise-max-pat-index-single-vma', () =>
    scenario(1410, patWorld, async (w) => {
      const data = await alloc(w);
      const max = patEntries(w.svm) - 1;
      expect(max).toBe(3);
      await madvisePat(w.svm, data, data + K64, max);
      expect(attrPats(w, data, data + K64)).toEqual([max]); // igt_assert_eq_u32(pat_index.val, pat)
      const r = await runKernelRaw(w, 0, [[data + 8, W, 0xc0ffee]]);
      expect(r.failed).toBe(0);
      expect(ptePats(w, data, data + K64).every((p) => p === max)).toBe(true);
      expect(await w.mm.readU32(data + 8)).toBe(0xc0ffee);
    }));

  it('xe_exec_system_allocator: pat-index-madvise-max-pat-index-multi-vma', () =>
    scenario(1411, patWorld, async (w) => {
      const size = 2 * K64;
      const data = await mmapRw(w, size);
      await w.mm.write(data, new Uint8Array(size).fill(5));
      const max = patEntries(w.svm) - 1;
      // three overlapping madvises, as MADVISE_MULTI_VMA | MADVISE_PAT_INDEX does
      await madvisePat(w.svm, data + K64, data + K64 + K64 / 2, max);
      await madvisePat(w.svm, data, data + K64, max);
      await madvisePat(w.svm, data + K64 / 2, data + K64 / 2 + K64 / 4, max);
      for (const p of attrPats(w, data, data + K64)) expect(p).toBe(max);
      const r = await runKernelRaw(w, 0, [
        [data + 8, W, 1],
        [data + K64 + 8, W, 2],
      ]);
      expect(r.failed).toBe(0);
      expect(ptePats(w, data, data + K64 + K64 / 2).every((p) => p === max)).toBe(true);
      expect(ptePats(w, data + K64 + K64 / 2, data + size).every((p) => p === 0)).toBe(true);
    }));

  it('a changed PAT index rewrites the mapped PTEs; the same index invalidates nothing', () =>
    scenario(1412, patWorld, async (w) => {
      const data = await alloc(w);
      const r = await runKernelRaw(w, 0, [[data + 8, W, 9]]);
      expect(r.failed).toBe(0);
      expect(new Set(ptePats(w, data, data + K64))).toEqual(new Set([0]));
      expect(await madvisePat(w.svm, data, data + K64, 2)).toBeGreaterThan(0);
      expect(ptePats(w, data, data + K64)).toEqual([]); // zapped
      expect((await runKernelRaw(w, 0, [[data + 8, A, 1]])).failed).toBe(0);
      expect(new Set(ptePats(w, data, data + K64))).toEqual(new Set([2]));
      expect(await madvisePat(w.svm, data, data + K64, 2)).toBe(0);
      expect(await w.mm.readU32(data + 8)).toBe(10);
    }));

  it('a PAT index the PTE format cannot hold is an ArgumentError, nothing changed', () =>
    scenario(1413, patWorld, async (w) => {
      const data = await alloc(w);
      await madvisePat(w.svm, data, data + K64, 1);
      const before = w.svm.attrs.state;
      for (const bad of [4, -1, 1.5]) {
        await expect(madvisePat(w.svm, data, data + K64, bad)).rejects.toThrow(ArgumentError);
      }
      expect(w.svm.attrs.state).toBe(before);
      expect(attrPats(w, data, data + K64)).toEqual([1]);
    }));

  it('the default NVIDIA format has no PAT field: only index 0', () =>
    scenario(1414, xeWorld, async (w) => {
      const data = await alloc(w);
      expect(patEntries(w.svm)).toBe(1);
      await expect(madvisePat(w.svm, data, data + K64, 1)).rejects.toThrow(ArgumentError);
      expect(await madvisePat(w.svm, data, data + K64, 0)).toBe(0);
    }));
});
