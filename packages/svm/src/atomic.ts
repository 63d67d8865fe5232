/**
 * xe's atomic-access attribute (DRM_XE_MEM_RANGE_ATTR_ATOMIC, Linux 6.18 xe_vm_madvise.c): where a
 * GPU atomic may be performed, set per VA interval with `advise({ atomic })`.
 *
 * - UNDEFINED / GLOBAL: atomics must be coherent with the CPU and other devices; on a discrete
 *   GPU the page must be in this device's VRAM, so an atomic fault migrates it there first.
 * - DEVICE: atomics only among devices; VRAM needed unless the device can do atomics on system
 *   memory (`has_device_atomics_on_smem`, which hmmkit's devices lack).
 * - CPU: only the CPU does atomics; a GPU atomic is refused (-EACCES, the exec is cancelled).
 * - EXCLUSIVE (hmmkit's own value, not xe uapi): nouveau's path (nouveau_atomic_range_fault). A
 *   GPU atomic on a system-memory page takes it device-exclusive with make_device_exclusive and
 *   maps it atomic-enabled; any CPU access revokes it (exclusive.ts). No VRAM is needed; a page
 *   already in this device's VRAM takes atomics there.
 *
 * Device PTEs carry the atomic-enable bit only where an atomic may run without a fault (xe_pt.c
 * XE_USM_PPGTT_PTE_AE): so a GPU atomic on a system-memory page faults, and the fault migrates.
 *
 * @module
 */
import { ACCESS } from '@hmmkit/gpu';
import { Errno } from '@hmmkit/sim';
import type { RangeAttrs } from './attrs.ts';
import { adviseAndZap } from './bind.ts';
import type { GpuSvm } from './gpusvm.ts';
import { PAGE_SIZE } from './granule.ts';
import type { SvmRange } from './range.ts';

/** DRM_XE_ATOMIC_* values (uapi xe_drm.h). */
export const ATOMIC_ACCESS = { UNDEFINED: 0, DEVICE: 1, GLOBAL: 2, CPU: 3, EXCLUSIVE: 4 } as const;
/** Names, indexed by value. */
export const ATOMIC_ACCESS_NAMES = ['undefined', 'device', 'global', 'cpu', 'exclusive'] as const;

/** The atomic-access attribute of `a` (UNDEFINED when never set). */
export function attrAtomic(a: RangeAttrs): number {
  return a.atomic ?? ATOMIC_ACCESS.UNDEFINED;
}

/**
 * Models xe_vma_need_vram_for_atomic(): 1 when a device atomic needs the page in VRAM, 0 when
 * not (integrated GPU, or not an atomic access), -EACCES when GPU atomics are not allowed.
 */
export function needVramForAtomic(
  mode: number,
  dgfx: boolean,
  isAtomic: boolean,
  atomicsOnSmem = false,
): number {
  if (!dgfx || !isAtomic) return 0;
  switch (mode) {
    case ATOMIC_ACCESS.DEVICE:
      return atomicsOnSmem ? 0 : 1;
    case ATOMIC_ACCESS.CPU:
      return -Errno.EACCES;
    case ATOMIC_ACCESS.EXCLUSIVE:
      return 0; // device-exclusive entries on system memory (exclusive.ts)
    default:
      return 1;
  }
}

/**
 * Whether a device PTE may enable atomics (xe_pt.c's AE bit): on VRAM unless the mode is CPU; on
 * system memory only where no VRAM is needed for an atomic.
 */
export function pteAtomicAllowed(mode: number, dgfx: boolean, inVram: boolean): boolean {
  if (mode === ATOMIC_ACCESS.CPU) return !dgfx; // an integrated GPU has no migration to force
  if (inVram) return true;
  // a system page only while device-exclusive (rangeAtomicMask asks the range's marks)
  if (mode === ATOMIC_ACCESS.EXCLUSIVE) return false;
  return needVramForAtomic(mode, dgfx, true) === 0;
}

/**
 * What an access of device `devIndex` at `va` needs under the advised atomic attribute: 1 (the
 * page must be in this device's VRAM), 0, or -EACCES. Memory never advised keeps hmmkit's
 * original behaviour (atomics anywhere), as if the device had atomics on system memory.
 */
export function atomicNeed(svm: GpuSvm, devIndex: number, va: number, access: number): number {
  if (access !== ACCESS.ATOMIC) return 0;
  const mode = svm.attrs.lookup(va).atomic;
  if (mode === undefined) return 0;
  return needVramForAtomic(mode, devIndex < svm.devmem.length, true);
}

/** Whether page `i` of `range` is valid and in device `devIndex`'s VRAM. */
export function pageInOwnVram(svm: GpuSvm, devIndex: number, range: SvmRange, i: number): boolean {
  const sd = svm.devmem[devIndex];
  return sd !== undefined && range.pageValid[i] === 1 && sd.contains(range.pfns[i]!);
}

/**
 * Whether device `devIndex`'s PTE for page `i` of `range` (at `va`) allows atomics, as
 * {@link rangeAtomicMask} would bind it: a GPU atomic there runs without a fault.
 */
export function pageAtomicMapped(
  svm: GpuSvm,
  devIndex: number,
  range: SvmRange,
  i: number,
  va: number,
): boolean {
  const mode = svm.attrs.lookup(va).atomic;
  if (mode === undefined) return true;
  const dgfx = devIndex < svm.devmem.length;
  if (pteAtomicAllowed(mode, dgfx, pageInOwnVram(svm, devIndex, range, i))) return true;
  return mode === ATOMIC_ACCESS.EXCLUSIVE && range.exclusive !== null && range.exclusive[i] === 1;
}

/**
 * Per page of `range`, 1 where device `devIndex`'s PTE may enable atomics, or null when no page
 * of the range was advised an atomic mode (every PTE atomic-enabled, as before the attribute).
 */
export function rangeAtomicMask(svm: GpuSvm, devIndex: number, range: SvmRange): Uint8Array | null {
  const segs = svm.attrs.segments(range.start, range.end);
  if (!segs.some((s) => s.attrs.atomic !== undefined)) return null;
  const dgfx = devIndex < svm.devmem.length;
  const out = new Uint8Array(range.npages);
  for (const s of segs) {
    const mode = s.attrs.atomic;
    const a = Math.max(s.start, range.start);
    const b = Math.min(s.end, range.end);
    for (let p = a; p < b; p += PAGE_SIZE) {
      const i = (p - range.start) / PAGE_SIZE;
      out[i] =
        mode === undefined ||
        pteAtomicAllowed(mode, dgfx, pageInOwnVram(svm, devIndex, range, i)) ||
        (mode === ATOMIC_ACCESS.EXCLUSIVE && range.exclusive !== null && range.exclusive[i] === 1)
          ? 1
          : 0;
    }
  }
  return out;
}

/**
 * Models xe's madvise of DRM_XE_MEM_RANGE_ATTR_ATOMIC (xe_vm_madvise_ioctl → madvise_atomic):
 * sets the attribute on `[start, end)` and, where it changed, zaps the devices' PTEs so the next
 * access faults under the new rule. Bad arguments throw ArgumentError with nothing changed.
 * Returns the number of ranges whose PTEs were zapped.
 */
export async function madviseAtomic(svm: GpuSvm, start: number, end: number, mode: number): Promise<number> {
  // xe: the same attribute again invalidates nothing (madvise-no-range-invalidate-same-attr)
  return adviseAndZap(svm, start, end, { atomic: mode }, (a) => a.atomic ?? -1);
}
