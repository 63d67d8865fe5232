/**
 * xe_exec_system_allocator (IGT tests/intel/xe_exec_system_allocator.c): the madvise sections of
 * the atomic-access attribute (DRM_XE_MEM_RANGE_ATTR_ATOMIC, `madviseAtomic` in atomic.ts). Each
 * section madvises, then runs an MI_ATOMIC increment of the data dword and checks READ_VALUE, as
 * the original does; the CPU and UND sections accept a timed-out exec there, and hmmkit asserts
 * what the 6.18 kernel does (xe_vma_need_vram_for_atomic): CPU refuses the GPU atomic, UND
 * migrates to VRAM like GLOBAL.
 */
import { describe, expect, it } from 'vitest';
import { ATOMIC_ACCESS, LOC, madviseAtomic, type SvmWorld } from '../../src/index.ts';
import { A, K64, mmapRw, P, pagesAt, runKernelRaw, scenario, where, xeWorld } from './helpers.ts';

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
