/**
 * amdkfd's attribute ioctl over GpuSvm (kfd_svm.c: svm_ioctl → svm_range_set_attr /
 * svm_range_get_attr): set over a range that must be mapped by the CPU (svm_range_is_valid:
 * -EFAULT where a page has no VMA or a VM_IO / VM_PFNMAP / VM_MIXEDMAP one), and a get that
 * reports every attribute of a range at once.
 *
 * @module
 */

import { VM_IO, VM_MIXEDMAP, VM_PFNMAP } from '@hmmkit/mm';
import { ArgumentError, Errno } from '@hmmkit/sim';
import type { AttrUpdate } from './attr-map.ts';
import { attrFlags, attrPrefetchLoc, LOC, SVM_FLAG } from './attrs.ts';
import { adviseAndZap } from './bind.ts';
import type { GpuSvm } from './gpusvm.ts';
import { PAGE_SIZE } from './granule.ts';
import { mapPrefetched, prefetch } from './migrate.ts';

/** Every attribute of a VA range, as amdkfd's GET_ATTR reports it. */
export interface SvmAttrReport {
  /** Preferred location; LOC.UNDEFINED when the pages disagree. */
  readonly preferredLoc: number;
  /** Prefetch location; LOC.UNDEFINED when never set or the pages disagree. */
  readonly prefetchLoc: number;
  /** Devices in accessed-by over the whole range (bit i = device i). */
  readonly accessedBy: number;
  /** Smallest granularity over the range (log2 pages). */
  readonly granularity: number;
  /** {@link SVM_FLAG} bits set over the whole range (KFD's SET_FLAGS answer). */
  readonly flags: number;
  /** Flag bits set somewhere in the range (KFD's CLR_FLAGS answer is its complement). */
  readonly flagsAny: number;
}

/** Models svm_range_is_valid(): 0, or -EFAULT if a page of `[start, end)` has no VMA or a device VMA (mmap lock held). */
export function rangeIsValid(svm: GpuSvm, start: number, end: number): number {
  const deviceVma = VM_IO | VM_PFNMAP | VM_MIXEDMAP;
  for (let a = start; a < end; ) {
    const vma = svm.mm.vmaLookup(a);
    if (vma === null || (vma.flags & deviceVma) !== 0) return -Errno.EFAULT;
    a = Math.min(end, vma.end);
  }
  return 0;
}

function checkSpan(fn: string, start: number, end: number): void {
  if (!Number.isSafeInteger(start) || start < 0 || start % PAGE_SIZE !== 0) {
    throw new ArgumentError(fn, 'start', 'must be a page-aligned uint', start);
  }
  if (!Number.isSafeInteger(end) || end <= start || end % PAGE_SIZE !== 0) {
    throw new ArgumentError(fn, 'end', 'must be page aligned and > start', end);
  }
}

async function validate(svm: GpuSvm, start: number, end: number): Promise<number> {
  await svm.mm.mmapLock.read();
  try {
    return rangeIsValid(svm, start, end);
  } finally {
    svm.mm.mmapLock.readUnlock();
  }
}

/**
 * Models svm_range_set_attr(): -EFAULT (nothing changed) unless the CPU maps every page; then the
 * attributes are set; a flag change remaps what the devices map (GPU_RO takes effect at once); a
 * prefetch location migrates there and maps (as {@link GpuSvm.prefetch}); with XNACK off the
 * accessed-by devices (every device for GPU_ALWAYS_MAPPED without one) get the range mapped.
 * Bad arguments throw ArgumentError with nothing changed. Returns 0 or a negative errno.
 */
export async function setAttr(svm: GpuSvm, start: number, end: number, update: AttrUpdate): Promise<number> {
  checkSpan('GpuSvm.setAttr', start, end);
  const v = await validate(svm, start, end);
  if (v !== 0) return v;
  // svm_range_set_attr revalidates and remaps with new flags: drop the devices' PTEs if they changed
  await adviseAndZap(svm, start, end, update, attrFlags);
  if (update.prefetchLoc !== undefined && update.prefetchLoc !== LOC.UNDEFINED) {
    const r = await prefetch(svm, start, end, update.prefetchLoc);
    if (r < 0) return r;
  }
  if (svm.noRetry !== null) {
    // XNACK off: KFD maps a range on set_attr for the GPUs that may access it
    await svm.lock.lock();
    try {
      for (const seg of svm.attrs.segments(start, end)) {
        let devs = seg.attrs.accessedBy;
        if (devs === 0 && (attrFlags(seg.attrs) & SVM_FLAG.GPU_ALWAYS_MAPPED) !== 0) {
          devs = 2 ** svm.devices.length - 1;
        }
        if (devs === 0) continue;
        const r = await mapPrefetched(svm, -1, seg.start, seg.end, devs);
        if (r < 0) return r;
      }
    } finally {
      svm.lock.unlock();
    }
  }
  return 0;
}

/**
 * Models svm_range_get_attr(): -EFAULT unless the CPU maps every page of `[start, end)`; else
 * every attribute of the range — locations (UNDEFINED where pages disagree), the accessed-by
 * devices common to all, the smallest granularity, flags set everywhere and flags set anywhere.
 */
export async function getAttr(svm: GpuSvm, start: number, end: number): Promise<SvmAttrReport | number> {
  checkSpan('GpuSvm.getAttr', start, end);
  const v = await validate(svm, start, end);
  if (v !== 0) return v;
  let preferredLoc: number | null = null;
  let prefetchLoc: number | null = null;
  let accessedBy = -1;
  let granularity = Number.POSITIVE_INFINITY;
  let flags = -1;
  let flagsAny = 0;
  for (const seg of svm.attrs.segments(start, end)) {
    const a = seg.attrs;
    preferredLoc = preferredLoc === null || preferredLoc === a.preferredLoc ? a.preferredLoc : LOC.UNDEFINED;
    const p = attrPrefetchLoc(a);
    prefetchLoc = prefetchLoc === null || prefetchLoc === p ? p : LOC.UNDEFINED;
    accessedBy &= a.accessedBy;
    granularity = Math.min(granularity, a.granularity);
    flags &= attrFlags(a);
    flagsAny |= attrFlags(a);
  }
  return {
    preferredLoc: preferredLoc ?? LOC.UNDEFINED,
    prefetchLoc: prefetchLoc ?? LOC.UNDEFINED,
    accessedBy: accessedBy >>> 0,
    granularity,
    flags: flags >>> 0,
    flagsAny,
  };
}
