/**
 * mremap(2) (mm/mremap.c): move_vma, move_page_tables, try_realign_addr.
 *
 * @module
 */
import { MmuNotifyEvent } from '@hmmkit/notifier';
import { checkUint, Errno, StateError } from '@hmmkit/sim';
import {
  MREMAP_DONTUNMAP,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  PAGE_SIZE,
  PMD_SIZE,
  PUD_SIZE,
  pageAlign,
  TASK_SIZE,
  VM_DONTEXPAND,
  VM_HUGETLB,
  VM_PFNMAP,
  VM_SPECIAL,
} from './constants.ts';
import { splitHugePmd } from './huge-memory.ts';
import { hugetlbSize } from './hugetlb.ts';
import { flushTlb, invEnd, invStart } from './invalidate.ts';
import type { Mm } from './mm.ts';
import { doMunmapLocked, getUnmappedArea } from './mmap.ts';
import { PageWalk, type PmdTable, setEntry, WALK_HOLE, WALK_PMD_LEAF, WALK_PUD_LEAF } from './page-table.ts';
import { isolate, linkVma, mergeAround, Vma } from './vma.ts';

/**
 * Models mremap(2): returns the (new) address or a negative errno: -EINVAL (bad flags,
 * unaligned address, new length 0, FIXED without MAYMOVE, DONTUNMAP with a size change,
 * overlapping FIXED ranges, old length 0), -EFAULT (old range not inside one VMA, growing a
 * VM_DONTEXPAND/VM_PFNMAP VMA), -ENOMEM (cannot grow in place without MAYMOVE, no room).
 */
export async function mremap(
  mm: Mm,
  oldAddr: number,
  oldLen: number,
  newLen: number,
  flags: number,
  newAddr = 0,
): Promise<number> {
  const fn = 'Mm.mremap';
  for (const [name, v] of [
    ['oldAddr', oldAddr],
    ['oldLen', oldLen],
    ['newLen', newLen],
    ['flags', flags],
    ['newAddr', newAddr],
  ] as const) {
    checkUint(fn, name, v);
  }
  if (flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP)) return -Errno.EINVAL;
  if (flags & MREMAP_FIXED && !(flags & MREMAP_MAYMOVE)) return -Errno.EINVAL;
  if (flags & MREMAP_DONTUNMAP && (!(flags & MREMAP_MAYMOVE) || oldLen !== newLen)) return -Errno.EINVAL;
  if (oldAddr % PAGE_SIZE !== 0) return -Errno.EINVAL;
  const olen = pageAlign(oldLen);
  const nlen = pageAlign(newLen);
  if (nlen === 0) return -Errno.EINVAL;
  if (olen === 0) return -Errno.EINVAL;
  if (oldAddr > TASK_SIZE || olen > TASK_SIZE - oldAddr) return -Errno.EFAULT;
  const fixed = (flags & MREMAP_FIXED) !== 0;
  if (fixed) {
    if (newAddr % PAGE_SIZE !== 0) return -Errno.EINVAL;
    if (nlen > TASK_SIZE || newAddr > TASK_SIZE - nlen) return -Errno.EINVAL;
    if (newAddr < oldAddr + olen && oldAddr < newAddr + nlen) return -Errno.EINVAL;
  }
  await mm.mmapLock.write();
  try {
    const vma = mm.vmas.lookup(oldAddr);
    if (vma === null || oldAddr + olen > vma.end) return -Errno.EFAULT;
    if (vma.flags & VM_HUGETLB) {
      const hs = hugetlbSize(vma);
      if (oldAddr % hs || olen % hs || nlen % hs || (fixed && newAddr % hs)) return -Errno.EINVAL;
    }
    if (nlen > olen && vma.flags & (VM_DONTEXPAND | VM_PFNMAP)) return -Errno.EFAULT;
    const dontunmap = (flags & MREMAP_DONTUNMAP) !== 0;
    if (dontunmap && vma.flags & (VM_DONTEXPAND | VM_PFNMAP)) return -Errno.EINVAL;
    if (fixed) {
      if (mm.vmas.size + 2 > mm.machine.maxMapCount) return -Errno.ENOMEM;
      const r = await doMunmapLocked(mm, newAddr, newAddr + nlen);
      if (r !== 0) return r;
      let ol = olen;
      if (olen > nlen) {
        const r2 = await doMunmapLocked(mm, oldAddr + nlen, oldAddr + olen);
        if (r2 !== 0) return r2;
        ol = nlen;
      }
      const v = mm.vmas.lookup(oldAddr)!;
      return await moveVma(mm, v, oldAddr, ol, newAddr, nlen, dontunmap);
    }
    if (nlen <= olen && !dontunmap) {
      if (nlen < olen) {
        const r = await doMunmapLocked(mm, oldAddr + nlen, oldAddr + olen);
        if (r !== 0) return r;
      }
      return oldAddr;
    }
    if (!dontunmap && oldAddr + olen === vma.end) {
      const next = mm.vmas.next(vma);
      const newEnd = oldAddr + nlen;
      if (newEnd <= TASK_SIZE && (next === null || next.start >= newEnd) && !(vma.flags & VM_HUGETLB)) {
        vma.end = newEnd;
        mergeAround(mm, vma);
        return oldAddr;
      }
    }
    if (!(flags & MREMAP_MAYMOVE)) return -Errno.ENOMEM;
    if (mm.vmas.size + 2 > mm.machine.maxMapCount) return -Errno.ENOMEM;
    const align = vma.flags & VM_HUGETLB ? hugetlbSize(vma) : PAGE_SIZE;
    const dst = getUnmappedArea(mm, 0, nlen, align);
    if (dst < 0) return -Errno.ENOMEM;
    return await moveVma(mm, vma, oldAddr, olen, dst, nlen, dontunmap);
  } finally {
    mm.mmapLock.writeUnlock();
  }
}

/** move_vma(): new VMA at `newAddr`, move_page_tables() inside an UNMAP of the old range, unmap the old. */
async function moveVma(
  mm: Mm,
  vma: Vma,
  oldAddr: number,
  oldLen: number,
  newAddr: number,
  newLen: number,
  dontunmap: boolean,
): Promise<number> {
  const realigned = tryRealignAddr(mm, vma, oldAddr, oldLen, newAddr);
  const old = await isolate(mm, vma, oldAddr, oldAddr + oldLen);
  const nv = new Vma(mm, newAddr, newAddr + newLen, old.flags, old.pgoff, old.file, old.anonVma);
  nv.privateData = old.privateData;
  linkVma(mm, nv);
  // the entries of [realigned, oldAddr) are none (no VMA there): only the range grows
  const r = await invStart(mm, MmuNotifyEvent.UNMAP, realigned, oldAddr + oldLen);
  await movePageTables(mm, old, oldAddr, newAddr, oldLen);
  flushTlb(mm);
  await invEnd(mm, r);
  if (!(old.flags & VM_HUGETLB) && !(old.flags & VM_SPECIAL)) mergeAround(mm, nv);
  if (!dontunmap) {
    await doMunmapLocked(mm, oldAddr, oldAddr + oldLen);
  } else if (old.file === null) {
    // the old VMA stays, empty; anonymous pages now belong to the new VMA only
    old.anonVma = null;
  }
  return newAddr;
}

/**
 * move_page_tables()' try_realign_addr() (Linux 6.7+): when the old and new addresses sit at
 * the same offset inside their PMDs, the copy reaches the next PMD boundary, each starts its
 * VMA and nothing is mapped between the PMD boundary below and either start
 * (can_align_down), Linux moves whole PMDs from that boundary — and its UNMAP invalidation
 * starts there. Returns the (possibly realigned) old start. Not for hugetlb
 * (move_hugetlb_page_tables returns first).
 */
function tryRealignAddr(mm: Mm, vma: Vma, oldAddr: number, len: number, newAddr: number): number {
  if (vma.flags & VM_HUGETLB) return oldAddr;
  const off = oldAddr % PMD_SIZE;
  if (off === 0 || len < PMD_SIZE - off || newAddr % PMD_SIZE !== off) return oldAddr;
  if (vma.start !== oldAddr) return oldAddr;
  if (mm.vmas.overlapping(oldAddr - off, oldAddr).length !== 0) return oldAddr;
  if (mm.vmas.overlapping(newAddr - off, newAddr).length !== 0) return oldAddr;
  return oldAddr - off;
}

/**
 * move_page_tables(): entries move as they are; a PMD leaf moves whole when both sides are aligned,
 * else it is split.
 */
async function movePageTables(
  mm: Mm,
  oldVma: Vma,
  oldAddr: number,
  newAddr: number,
  len: number,
): Promise<void> {
  const w = new PageWalk();
  const end = oldAddr + len;
  for (let a = oldAddr; a < end; ) {
    mm.pt.walkUnit(a, end, w);
    if (w.kind === WALK_HOLE) {
      a = w.end;
      continue;
    }
    const na = newAddr + (a - oldAddr);
    if (w.kind === WALK_PMD_LEAF || w.kind === WALK_PUD_LEAF) {
      const size = w.kind === WALK_PUD_LEAF ? PUD_SIZE : PMD_SIZE;
      const movable = w.leafStart === a && a + size <= end && na % size === 0;
      if (!movable) {
        if (oldVma.flags & VM_HUGETLB) throw new StateError('Mm.mremap', 'misaligned hugetlb move');
        await splitHugePmd(mm, oldVma, a);
        continue;
      }
      const src = w.kind === WALK_PUD_LEAF ? mm.pt.pudTable(a, false)! : w.pmd!;
      const dst = w.kind === WALK_PUD_LEAF ? mm.pt.pudTable(na, true)! : mm.pt.pmdTable(na, true)!;
      const di = Math.floor(na / size) & 511;
      if (w.kind === WALK_PMD_LEAF && dst.tables[di] !== null) {
        mm.pt.freePteTable(dst as PmdTable, di);
      }
      setEntry(dst, di, w.val, w.flags);
      setEntry(src, w.slot, 0, 0);
      a += size;
      continue;
    }
    const t = w.pte!;
    const n = (w.end - a) / PAGE_SIZE;
    for (let k = 0, i = w.index; k < n; k++, i++) {
      const f = t.flags[i]!;
      if (f === 0) continue;
      const da = na + k * PAGE_SIZE;
      const dt = mm.pt.pteTable(da, true);
      if (dt === null) {
        throw new StateError('Mm.mremap', 'destination mapped by a huge leaf');
      }
      const di = Math.floor(da / PAGE_SIZE) & 511;
      setEntry(dt, di, t.val[i]!, f);
      setEntry(t, i, 0, 0);
    }
    a = w.end;
  }
}
