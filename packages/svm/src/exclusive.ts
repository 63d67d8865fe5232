/**
 * nouveau's atomic path inside GpuSvm (drivers/gpu/drm/nouveau/nouveau_svm.c,
 * nouveau_atomic_range_fault, Linux 6.15): under `ATOMIC_ACCESS.EXCLUSIVE`, a GPU atomic on a
 * system-memory page takes the page device-exclusive with make_device_exclusive() and maps it with
 * atomics enabled; the CPU entry becomes a device-exclusive entry, so any CPU access restores the
 * PTE through an `EXCLUSIVE` invalidation with owner null, which zaps the device mapping (the
 * invalidation callback skips only our own `EXCLUSIVE` events, as nouveau_svm_range_invalidate
 * does). The atomic's result lives in the page itself, so nothing the GPU added is lost.
 *
 * @module
 */

import { ACCESS } from '@hmmkit/gpu';
import { HMM_PFN_VALID, HMM_PFN_WRITE, makeDeviceExclusive } from '@hmmkit/hmm';
import { mmuIntervalReadBegin, mmuIntervalReadRetry } from '@hmmkit/notifier';
import { Errno } from '@hmmkit/sim';
import { ATOMIC_ACCESS } from './atomic.ts';
import { bindAccessedByLocked, bindLocked } from './bind.ts';
import type { GpuSvm } from './gpusvm.ts';
import { PAGE_SIZE } from './granule.ts';
import type { SvmRange } from './range.ts';

/** make_device_exclusive attempts per fault before the fault gives up with -EAGAIN (-EBUSY races). */
const MAX_EXCLUSIVE_TRIES = 16;

/** Whether an access of `access` at `va` takes nouveau's device-exclusive path (EXCLUSIVE mode). */
export function exclusiveAtomic(svm: GpuSvm, va: number, access: number): boolean {
  return access === ACCESS.ATOMIC && svm.attrs.lookup(va).atomic === ATOMIC_ACCESS.EXCLUSIVE;
}

/** Whether GPU atomics at `va` must hold the page device-exclusive (the oracle's rule). */
export function exclusiveAtomicsAt(svm: GpuSvm, va: number): boolean {
  return svm.attrs.lookup(va).atomic === ATOMIC_ACCESS.EXCLUSIVE;
}

/** Whether page `i` of `range` is valid, device-exclusive to us and mapped on device `devIndex`. */
export function pageExclusiveMapped(range: SvmRange, devIndex: number, i: number): boolean {
  return (
    range.exclusive !== null &&
    range.exclusive[i] === 1 &&
    range.pageValid[i] === 1 &&
    (range.devMap[i]! & (1 << devIndex)) !== 0
  );
}

/**
 * Models nouveau_atomic_range_fault() on a GpuSvm range (SVM lock held): read_begin on the range's
 * notifier, make_device_exclusive() of the faulting page under the mmap read lock, then under the
 * notifier lock — if no invalidation came in between (read_retry) — record the page as valid,
 * writable and exclusive, and bind the range on `devIndex` (the page atomic-enabled, rangeAtomicMask)
 * and its accessedBy devices; finally unlock and put the folio. -EBUSY from make_device_exclusive
 * and read_retry failures retry; other errors (no VMA, file-backed page: -EFAULT / -EOPNOTSUPP)
 * fail the fault. Returns 0, -EAGAIN after {@link MAX_EXCLUSIVE_TRIES}, or a negative errno.
 */
export async function exclusiveAtomicFault(
  svm: GpuSvm,
  devIndex: number,
  range: SvmRange,
  va: number,
): Promise<number> {
  const mm = svm.mm;
  const phys = mm.machine.phys;
  const page = va - (va % PAGE_SIZE);
  const i = (page - range.start) / PAGE_SIZE;
  const sub = range.notifier.sub;
  for (let tries = 0; tries < MAX_EXCLUSIVE_TRIES; tries++) {
    if (range.unmapped) return -Errno.EAGAIN; // collect it and find the range again
    const seq = await mmuIntervalReadBegin(sub);
    await mm.mmapLock.read();
    let r: Awaited<ReturnType<typeof makeDeviceExclusive>>;
    try {
      r = await makeDeviceExclusive(mm, page, svm.owner);
    } finally {
      mm.mmapLock.readUnlock();
    }
    if ('error' in r) {
      if (r.error === -Errno.EBUSY) {
        svm.c.exclusiveRetries.value++;
        continue;
      }
      return r.error;
    }
    let ok = false;
    await svm.notifierLock.read();
    try {
      if (!range.unmapped && !mmuIntervalReadRetry(sub, seq)) {
        // every other valid page of the range survived every invalidation since its get_pages
        // (one that hit it would have zapped the range), so the whole range is current at seq
        range.pfns[i] = r.pfn;
        range.flags[i] = HMM_PFN_VALID | HMM_PFN_WRITE;
        range.pageValid[i] = 1;
        range.exclusive ??= new Uint8Array(range.npages);
        range.exclusive[i] = 1;
        range.notifierSeq = seq;
        bindLocked(svm, range, devIndex);
        bindAccessedByLocked(svm, range, devIndex);
        range.lastUse = mm.sim.now;
        svm.c.exclusiveGrants.value++;
        ok = true;
      }
    } finally {
      svm.notifierLock.readUnlock();
      phys.unlockPage(r.pfn);
      phys.putPage(r.pfn);
    }
    if (ok) return 0;
    svm.c.exclusiveRetries.value++;
  }
  return -Errno.EAGAIN;
}
