/**
 * drm_gpusvm_range_get_pages: hmm_range_fault over a range (or the runs of a batch's page mask) through hmm's locked helper; the pages are recorded under the notifier lock, which is released in the function that took it (the helper takes it, its caller releases it) — and a device page left read-only in a writable VMA is faulted for write first.
 *
 * @module
 */

import {
  HMM_PFN_ERROR,
  HMM_PFN_REQ_FAULT,
  HMM_PFN_REQ_WRITE,
  HMM_PFN_VALID,
  HMM_PFN_WRITE,
  HmmRange,
  hmmRangeFault,
  hmmRangeFaultLocked,
} from '@hmmkit/hmm';
import { alignDown } from '@hmmkit/mm';
import { mmuIntervalReadBegin } from '@hmmkit/notifier';
import { Errno } from '@hmmkit/sim';
import type { GpuSvm } from './gpusvm.ts';
import { PAGE_SIZE, SZ_2M } from './granule.ts';
import { type PageMask, pageMaskTest } from './page-mask.ts';
import type { SvmRange } from './range.ts';

/** Unrequested pages between two runs of a page mask that rangeGetPages walks through (64 KiB). */
const WALK_GAP_PAGES = 16;

/**
 * Models drm_gpusvm_range_get_pages(): hmm_range_fault over `[fs, fe)` of the range through the
 * locked helper; the pages are recorded under the notifier lock, which is released before it
 * returns, and `range.notifierSeq` holds the sequence they are valid for (the bind re-checks it,
 * like drm_gpusvm_range_pages_valid). Returns 0 or a negative errno. With a page mask only the mask's pages are requested and recorded,
 * and the walk covers only the mask's runs of pages (runs closer than {@link WALK_GAP_PAGES}
 * are walked as one, as nouveau groups faults in a 16-page window): a sparse batch does not pay
 * hmm_range_fault's per-page walk over the block's unrequested pages. The sequence kept is the
 * first run's, so an invalidation between runs voids them all.
 */
export async function rangeGetPages(
  svm: GpuSvm,
  devIndex: number,
  range: SvmRange,
  fs: number,
  fe: number,
  pages: PageMask | null,
  write: boolean,
): Promise<number> {
  if (pages === null || svm.broken) {
    const ret = await getPagesRun(svm, devIndex, range, fs, fe, pages, write);
    if (ret === 0) range.notifierSeq = svm.lastGetPagesSeq;
    return ret;
  }
  const blockStart = alignDown(fs, SZ_2M);
  const inMask = (va: number): boolean =>
    va - blockStart < SZ_2M && pageMaskTest(pages, (va - blockStart) / PAGE_SIZE);
  let firstSeq = -1;
  for (let a = fs; a < fe; ) {
    while (a < fe && !inMask(a)) a += PAGE_SIZE;
    if (a >= fe) break;
    // extend the run over gaps shorter than WALK_GAP_PAGES
    let b = a + PAGE_SIZE;
    for (let gap = 0, p = b; p < fe && gap < WALK_GAP_PAGES; p += PAGE_SIZE) {
      if (inMask(p)) {
        b = p + PAGE_SIZE;
        gap = 0;
      } else gap++;
    }
    const ret = await getPagesRun(svm, devIndex, range, a, b, pages, write);
    if (ret !== 0) return ret;
    if (firstSeq < 0) firstSeq = svm.lastGetPagesSeq;
    a = b;
  }
  // The bind re-checks this sequence under the notifier lock: an invalidation since the first
  // run voids every run (an empty mask inside [fs, fe) faults nothing and takes the current one).
  range.notifierSeq = firstSeq >= 0 ? firstSeq : await mmuIntervalReadBegin(range.notifier.sub);
  return 0;
}

/** One hmm_range_fault of {@link rangeGetPages} over `[fs, fe)`; records the requested pages. */
export async function getPagesRun(
  svm: GpuSvm,
  devIndex: number,
  range: SvmRange,
  fs: number,
  fe: number,
  pages: PageMask | null,
  write: boolean,
): Promise<number> {
  const n = (fe - fs) / PAGE_SIZE;
  const hr = new HmmRange({
    notifier: range.notifier.sub,
    start: fs,
    end: fe,
    defaultFlags: 0,
    pfnFlagsMask: HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE,
    devPrivateOwner: svm.owners[devIndex],
  });
  const req = HMM_PFN_REQ_FAULT | (write ? HMM_PFN_REQ_WRITE : 0);
  const blockStart = alignDown(fs, SZ_2M);
  for (let k = 0; k < n; k++) {
    const va = fs + k * PAGE_SIZE;
    const inMask =
      pages === null || (va - blockStart < SZ_2M && pageMaskTest(pages, (va - blockStart) / PAGE_SIZE));
    hr.hmmFlags[k] = inMask ? req : 0;
  }
  let ret: number;
  if (!svm.broken) {
    ret = await hmmRangeFaultLocked(hr, svm.notifierLock);
  } else {
    ret = await getPagesWithoutReadRetry(svm, hr);
  }
  if (ret !== 0) return ret;
  // notifier lock held for read (taken by the helper): record the pages, then release it
  let regain = false;
  try {
    if (write && !svm.broken && anyReadOnlyDevicePage(svm, hr, pages)) regain = true;
    else recordPages(svm, range, hr, pages);
  } finally {
    svm.notifierLock.readUnlock();
  }
  if (!regain) return 0;
  // Device pages of ours left read-only in a writable VMA: fault them for write, then retry.
  const r = await regainWriteAccess(svm, range, hr, pages);
  return r < 0 ? r : -Errno.EAGAIN;
}

/**
 * Records the requested valid pages of a completed hmm_range_fault `hr` in the range, and the
 * notifier sequence they are valid for (notifier lock held).
 */
export function recordPages(svm: GpuSvm, range: SvmRange, hr: HmmRange, pages: PageMask | null): void {
  const fs = hr.start;
  const n = (hr.end - fs) / PAGE_SIZE;
  const blockStart = alignDown(fs, SZ_2M);
  svm.lastGetPagesSeq = hr.notifierSeq;
  const off = (fs - range.start) / PAGE_SIZE;
  let faulted = 0;
  for (let k = 0; k < n; k++) {
    // Only the requested pages are recorded (and so mapped): a page outside the policy's mask
    // is not the driver's to map even when the snapshot finds it present on the CPU.
    if (pages !== null) {
      const va = fs + k * PAGE_SIZE;
      if (va - blockStart >= SZ_2M || !pageMaskTest(pages, (va - blockStart) / PAGE_SIZE)) continue;
    }
    const f = hr.hmmFlags[k]!;
    if ((f & HMM_PFN_VALID) !== 0 && (f & HMM_PFN_ERROR) === 0) {
      range.pfns[off + k] = hr.hmmPfns[k]!;
      range.flags[off + k] = f;
      range.pageValid[off + k] = 1;
      faulted++;
    }
  }
  svm.c.pagesFaulted.add(faulted);
}

/**
 * Gets write access back to the read-only device pages of `hr`: every page requested (in
 * `pages`, when given) that hmm reported valid but not writable and that lies in our device
 * memory. Such a page is a device-private entry made read-only in a writable VMA (mprotect R
 * then RW, or fork); hmm reports pages of the caller's owner without a fault-need check, so a
 * write request alone never upgrades it. One hmm_range_fault over those pages with REQ_WRITE and
 * no device-private owner faults each as a foreign device would: do_swap_page runs
 * migrate_to_ram, then the write fault (do_wp_page) makes the system page writable, breaking COW
 * if a fork still shares it (xe reaches the same end by migrating to RAM and re-faulting). The
 * retried GPU fault may migrate the now writable page back to VRAM, where its device-private
 * entry is writable. Returns 0 (also when there were no such pages) or a negative errno.
 */
export async function regainWriteAccess(
  svm: GpuSvm,
  range: SvmRange,
  hr: HmmRange,
  pages: PageMask | null,
): Promise<number> {
  const n = hr.hmmFlags.length;
  const blockStart = alignDown(hr.start, SZ_2M);
  let lo = -1;
  let hi = -1;
  for (let k = 0; k < n; k++) {
    if (readOnlyDevicePage(svm, hr, k, pages, blockStart)) {
      if (lo < 0) lo = k;
      hi = k;
    }
  }
  if (lo < 0) return 0;
  const wr = new HmmRange({
    notifier: range.notifier.sub,
    start: hr.start + lo * PAGE_SIZE,
    end: hr.start + (hi + 1) * PAGE_SIZE,
    defaultFlags: 0,
    pfnFlagsMask: HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE,
    devPrivateOwner: null,
  });
  for (let k = lo; k <= hi; k++) {
    wr.hmmFlags[k - lo] = readOnlyDevicePage(svm, hr, k, pages, blockStart)
      ? HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE
      : 0;
  }
  const ret = await hmmRangeFaultLocked(wr, svm.notifierLock);
  if (ret !== 0) return ret;
  svm.notifierLock.readUnlock();
  return 0;
}

/** Whether {@link regainWriteAccess} has work in `hr`. */
export function anyReadOnlyDevicePage(svm: GpuSvm, hr: HmmRange, pages: PageMask | null): boolean {
  const blockStart = alignDown(hr.start, SZ_2M);
  for (let k = 0; k < hr.hmmFlags.length; k++) {
    if (readOnlyDevicePage(svm, hr, k, pages, blockStart)) return true;
  }
  return false;
}

/** Page `k` of `hr` was requested, is valid, not writable, and lies in our device memory. */
export function readOnlyDevicePage(
  svm: GpuSvm,
  hr: HmmRange,
  k: number,
  pages: PageMask | null,
  blockStart: number,
): boolean {
  const f = hr.hmmFlags[k]!;
  if ((f & HMM_PFN_VALID) === 0 || (f & (HMM_PFN_WRITE | HMM_PFN_ERROR)) !== 0) return false;
  if (pages !== null) {
    const off = hr.start + k * PAGE_SIZE - blockStart;
    if (off >= SZ_2M || !pageMaskTest(pages, off / PAGE_SIZE)) return false;
  }
  return svm.devmemIndexOf(hr.hmmPfns[k]!) >= 0;
}

/** The broken variant: read_begin → hmm_range_fault → take the lock, no read_retry. */
export async function getPagesWithoutReadRetry(svm: GpuSvm, hr: HmmRange): Promise<number> {
  if (!svm.mm.mmgetNotZero()) return -Errno.EFAULT;
  try {
    for (let tries = 0; tries < 64; tries++) {
      hr.notifierSeq = await mmuIntervalReadBegin(hr.notifier);
      await svm.mm.mmapLock.read();
      let ret: number;
      try {
        ret = await hmmRangeFault(hr);
      } finally {
        svm.mm.mmapLock.readUnlock();
      }
      if (ret === -Errno.EBUSY) continue;
      if (ret !== 0) return ret;
      await svm.mm.sim.sched.yield();
      await svm.notifierLock.read();
      return 0; // BUG (deliberate): no mmuIntervalReadRetry(hr.notifier, hr.notifierSeq)
    }
    return -Errno.EBUSY;
  } finally {
    await svm.mm.mmput();
  }
}
