/**
 * mlock(2) / munlock(2) (mm/mlock.c): VM_LOCKED and __mm_populate.
 *
 * @module
 */
import { checkUint, Errno } from '@hmmkit/sim';
import {
  alignDown,
  PAGE_SIZE,
  pageAlign,
  VM_HUGETLB,
  VM_IO,
  VM_LOCKED,
  VM_PFNMAP,
  VM_SPECIAL,
} from './constants.ts';
import { populate } from './gup.ts';
import type { Mm } from './mm.ts';
import { isolate, mergeAround } from './vma.ts';

/**
 * Models mlock(2): VM_LOCKED on every VMA of the page-aligned range (split/merged as
 * mprotect does; hugetlb and VM_SPECIAL VMAs are left unflagged, as mlock_fixup does), then
 * __mm_populate() under the mmap read lock: every page is faulted in (written for private
 * writable VMAs), so device-private pages migrate back to system memory. 0, or -ENOMEM (part
 * of the range unmapped; VMAs before the hole stay locked, as in Linux), -EINVAL (overflow).
 * No RLIMIT_MEMLOCK accounting.
 */
export async function mlock(mm: Mm, start: number, length: number): Promise<number> {
  const r = await applyVmaLockFlags(mm, 'Mm.mlock', start, length, true);
  if (r.ret !== 0 || r.end === r.start) return r.ret;
  await mm.mmapLock.read();
  try {
    for (const vma of mm.vmas.overlapping(r.start, r.end)) {
      if (vma.flags & (VM_IO | VM_PFNMAP)) continue;
      await populate(mm, vma, Math.max(vma.start, r.start), Math.min(vma.end, r.end));
    }
  } finally {
    mm.mmapLock.readUnlock();
  }
  return 0;
}

/** Models munlock(2): clears VM_LOCKED on the range. 0, -ENOMEM (a hole), -EINVAL (overflow). */
export async function munlock(mm: Mm, start: number, length: number): Promise<number> {
  return (await applyVmaLockFlags(mm, 'Mm.munlock', start, length, false)).ret;
}

/** do_mlock() / apply_vma_lock_flags() under the mmap write lock. */
async function applyVmaLockFlags(
  mm: Mm,
  fn: string,
  addr: number,
  length: number,
  lock: boolean,
): Promise<{ ret: number; start: number; end: number }> {
  checkUint(fn, 'start', addr);
  checkUint(fn, 'length', length);
  const start = alignDown(addr, PAGE_SIZE);
  const end = start + pageAlign(length + (addr - start));
  if (end > 2 ** 64) return { ret: -Errno.EINVAL, start, end };
  if (end === start) return { ret: 0, start, end };
  await mm.mmapLock.write();
  try {
    const first = mm.vmas.find(start);
    if (first === null || first.start > start) return { ret: -Errno.ENOMEM, start, end };
    let tmp = start;
    for (const vma of mm.vmas.overlapping(start, end)) {
      if (vma.start > tmp) return { ret: -Errno.ENOMEM, start, end };
      const s = Math.max(vma.start, start);
      const e = Math.min(vma.end, end);
      const nf = lock ? vma.flags | VM_LOCKED : vma.flags & ~VM_LOCKED;
      if (nf !== vma.flags && !(vma.flags & (VM_SPECIAL | VM_HUGETLB))) {
        const v = await isolate(mm, vma, s, e);
        v.flags = nf;
        mergeAround(mm, v);
      }
      tmp = e;
    }
    return { ret: tmp < end ? -Errno.ENOMEM : 0, start, end };
  } finally {
    mm.mmapLock.writeUnlock();
  }
}
