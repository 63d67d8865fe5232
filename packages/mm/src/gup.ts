/**
 * get_user_pages and pin_user_pages (mm/gup.c), and __mm_populate.
 *
 * @module
 */
import { ArgumentError, Errno, StateError } from '@hmmkit/sim';
import {
  FAULT_FLAG_REMOTE,
  FAULT_FLAG_WRITE,
  FOLL_LONGTERM,
  FOLL_PIN,
  FOLL_WRITE,
  GUP_PIN_COUNTING_BIAS,
  PAGE_SIZE,
  VM_ACCESS_FLAGS,
  VM_FAULT_OOM,
  VM_FAULT_SIGBUS,
  VM_FAULT_SIGSEGV,
  VM_IO,
  VM_PFNMAP,
  VM_READ,
  VM_SHARED,
  VM_WRITE,
} from './constants.ts';
import { handleMmFault } from './memory.ts';
import { migratePage } from './migrate.ts';
import type { Mm } from './mm.ts';
import { fastLookup } from './uaccess.ts';
import type { Vma } from './vma.ts';

/** Faults in [start, end) of `vma` as mm_populate() does (writes for private writable VMAs). */
export async function populate(mm: Mm, vma: Vma, start: number, end: number): Promise<void> {
  const write = (vma.flags & (VM_WRITE | VM_SHARED)) === VM_WRITE;
  if (!(vma.flags & VM_ACCESS_FLAGS)) return;
  for (let a = start; a < end; a += PAGE_SIZE) {
    for (let k = 0; k < 4; k++) {
      if (fastLookup(mm, a, write) >= 0) break;
      const r = await handleMmFault(mm, vma, a, write ? FAULT_FLAG_WRITE : 0);
      if (r & (VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV | VM_FAULT_OOM)) return;
    }
  }
}

/**
 * Models get_user_pages(addr, 1, FOLL_WRITE?) for one page: faults it in as a remote access
 * (device-private pages migrate back, device-exclusive entries are restored, COW is broken
 * for writes) and returns its pfn with an extra reference, or a negative errno (-EFAULT:
 * no VMA / fault error, -EPERM... as -EFAULT). Caller holds the mmap lock for read.
 */
export async function getUserPage(mm: Mm, addr: number, write: boolean): Promise<number> {
  const vma = mm.vmas.lookup(addr);
  if (vma === null) return -Errno.EFAULT;
  if (write ? !(vma.flags & VM_WRITE) : !(vma.flags & VM_READ)) return -Errno.EFAULT;
  if (vma.flags & (VM_IO | VM_PFNMAP)) return -Errno.EFAULT;
  for (let tries = 0; tries < 16; tries++) {
    const pfn = fastLookup(mm, addr, write);
    if (pfn >= 0) {
      mm.phys.getPage(pfn);
      return pfn;
    }
    const r = await handleMmFault(mm, vma, addr, FAULT_FLAG_REMOTE | (write ? FAULT_FLAG_WRITE : 0));
    if (r & (VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV)) return -Errno.EFAULT;
    if (r & VM_FAULT_OOM) return -Errno.ENOMEM;
  }
  return -Errno.EBUSY;
}

/**
 * Models pin_user_pages(addr, nrPages, gupFlags | FOLL_PIN) (the caller holds the mmap lock
 * for read): faults each page in as get_user_pages does (device-private pages migrate back,
 * COW is broken with FOLL_WRITE) and pins it — GUP_PIN_COUNTING_BIAS on its refcount, so
 * migration sees it as pinned (migrate_vma restores it, move_pages gives -EBUSY) until
 * {@link unpinUserPage}. With FOLL_LONGTERM a device-coherent page is first migrated to system
 * memory (check_and_migrate_movable_pages → migrate_device_coherent_folio). Fills `pfns` and
 * returns the number pinned (fewer than asked if a later page failed), or -errno if the first
 * page failed (-EFAULT, -ENOMEM, -EBUSY).
 */
export async function pinUserPages(
  mm: Mm,
  addr: number,
  nrPages: number,
  gupFlags: number,
  pfns: Float64Array,
): Promise<number> {
  const fn = 'Mm.pinUserPages';
  if (!Number.isSafeInteger(addr) || addr < 0 || addr % PAGE_SIZE !== 0)
    throw new ArgumentError(fn, 'addr', 'must be a page-aligned address', addr);
  if (!Number.isSafeInteger(nrPages) || nrPages < 0)
    throw new ArgumentError(fn, 'nrPages', 'must be a non-negative integer', nrPages);
  if (!Number.isInteger(gupFlags) || gupFlags & ~(FOLL_WRITE | FOLL_LONGTERM | FOLL_PIN))
    throw new ArgumentError(fn, 'gupFlags', 'must be FOLL_WRITE | FOLL_LONGTERM bits', gupFlags);
  if (!(pfns instanceof Float64Array) || pfns.length < nrPages)
    throw new ArgumentError(fn, 'pfns', `must be a Float64Array of at least ${nrPages} entries`, pfns);
  if (!mm.mmapLock.isLocked) throw new StateError(fn, 'the mmap lock must be held');
  const write = (gupFlags & FOLL_WRITE) !== 0;
  const p = mm.phys;
  for (let k = 0; k < nrPages; k++) {
    const a = addr + k * PAGE_SIZE;
    let pfn = await getUserPage(mm, a, write);
    if (pfn >= 0 && gupFlags & FOLL_LONGTERM && p.isDeviceCoherentPage(pfn)) {
      p.putPage(pfn);
      const moved = await migratePage(mm, pfn, mm.node);
      pfn = moved < 0 ? moved : await getUserPage(mm, a, write);
      if (pfn >= 0 && p.isDeviceCoherentPage(pfn)) {
        p.putPage(pfn);
        pfn = -Errno.EBUSY;
      }
    }
    if (pfn < 0) return k === 0 ? pfn : k;
    p.refcount[pfn] = p.refcount[pfn]! + GUP_PIN_COUNTING_BIAS - 1; // the reference becomes a pin
    pfns[k] = pfn;
  }
  return nrPages;
}

/** Models unpin_user_page(): drops a pin taken by {@link pinUserPages}. */
export function unpinUserPage(mm: Mm, pfn: number): void {
  const p = mm.phys;
  if (!Number.isSafeInteger(pfn) || pfn < 0 || pfn >= p.capacity || p.refcount[pfn]! < GUP_PIN_COUNTING_BIAS)
    throw new ArgumentError('Mm.unpinUserPage', 'pfn', 'must be a pinned page', pfn);
  p.refcount[pfn] = p.refcount[pfn]! - (GUP_PIN_COUNTING_BIAS - 1);
  p.putPage(pfn);
}

/** Models folio_maybe_dma_pinned(): the page carries at least one FOLL_PIN pin. */
export function isPinned(mm: Mm, pfn: number): boolean {
  return mm.phys.refcount[pfn]! >= GUP_PIN_COUNTING_BIAS;
}
