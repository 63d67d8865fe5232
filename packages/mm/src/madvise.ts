/**
 * madvise(2) (mm/madvise.c).
 *
 * @module
 */
import { MmuNotifyEvent } from '@hmmkit/notifier';
import { ArgumentError, checkUint, Errno } from '@hmmkit/sim';
import {
  HPAGE_PMD_NR,
  MADV_COLD,
  MADV_COLLAPSE,
  MADV_DOFORK,
  MADV_DONTFORK,
  MADV_DONTNEED,
  MADV_FREE,
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  MADV_NORMAL,
  MADV_PAGEOUT,
  MADV_RANDOM,
  MADV_SEQUENTIAL,
  MADV_WILLNEED,
  PAGE_SIZE,
  PMD_SIZE,
  pageAlign,
  VM_DONTCOPY,
  VM_HUGEPAGE,
  VM_HUGETLB,
  VM_IO,
  VM_LOCKED,
  VM_NOHUGEPAGE,
  VM_PFNMAP,
} from './constants.ts';
import { collapseRange, splitHugePmd } from './huge-memory.ts';
import { hugetlbMisaligned } from './hugetlb.ts';
import { flushTlb, invEnd, invStart } from './invalidate.ts';
import { zapRange } from './memory.ts';
import type { Mm } from './mm.ts';
import {
  PageWalk,
  PTE_DIRTY,
  PTE_PRESENT,
  PTE_SPECIAL,
  PTE_SWAP,
  PTE_TYPE_MASK,
  PTE_YOUNG,
  setEntry,
  setEntryFlags,
  WALK_HOLE,
  WALK_PTE,
} from './page-table.ts';
import { PG } from './physmem.ts';
import { releaseEntry } from './rmap.ts';
import { isolate, mergeAround, type Vma } from './vma.ts';
import { pageoutRange } from './vmscan.ts';

/** MADV_* values madvise accepts. */
const KNOWN_ADVICE = new Set<number>([
  MADV_NORMAL,
  MADV_RANDOM,
  MADV_SEQUENTIAL,
  MADV_WILLNEED,
  MADV_DONTNEED,
  MADV_FREE,
  MADV_DONTFORK,
  MADV_DOFORK,
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  MADV_COLD,
  MADV_PAGEOUT,
  MADV_COLLAPSE,
]);

/**
 * Models madvise(2): 0, or -EINVAL (unaligned start, unknown advice, overflow, advice the VMA
 * does not support), -ENOMEM (part of the range unmapped: mapped parts are still advised),
 * -EAGAIN (MADV_COLLAPSE could not collapse some region).
 */
export async function madvise(mm: Mm, start: number, length: number, advice: number): Promise<number> {
  const fn = 'Mm.madvise';
  checkUint(fn, 'start', start);
  checkUint(fn, 'length', length);
  if (!Number.isSafeInteger(advice)) throw new ArgumentError(fn, 'advice', 'must be an integer', advice);
  if (start % PAGE_SIZE !== 0) return -Errno.EINVAL;
  if (!KNOWN_ADVICE.has(advice)) return -Errno.EINVAL;
  const len = pageAlign(length);
  const end = start + len;
  if (end < start || end > 2 ** 64) return -Errno.EINVAL;
  if (end === start) return 0;
  const writeLock =
    advice === MADV_HUGEPAGE ||
    advice === MADV_NOHUGEPAGE ||
    advice === MADV_DONTFORK ||
    advice === MADV_DOFORK;
  if (writeLock) await mm.mmapLock.write();
  else await mm.mmapLock.read();
  try {
    let unmapped = false;
    let result = 0;
    let tmp = start;
    for (const vma of mm.vmas.overlapping(start, end)) {
      if (vma.start > tmp) unmapped = true;
      const s = Math.max(vma.start, start);
      const e = Math.min(vma.end, end);
      const r = await madviseVma(mm, vma, s, e, advice);
      if (r !== 0) {
        if (r === -Errno.EAGAIN && advice === MADV_COLLAPSE) result = r;
        else return r;
      }
      tmp = e;
    }
    if (tmp < end) unmapped = true;
    if (unmapped) return -Errno.ENOMEM;
    return result;
  } finally {
    if (writeLock) mm.mmapLock.writeUnlock();
    else mm.mmapLock.readUnlock();
  }
}

/** madvise_vma_behavior(): one advice on [s, e) of one VMA. */
async function madviseVma(mm: Mm, vma: Vma, s: number, e: number, advice: number): Promise<number> {
  switch (advice) {
    case MADV_DONTNEED: {
      if (vma.flags & (VM_LOCKED | VM_PFNMAP)) return -Errno.EINVAL;
      if (vma.flags & VM_HUGETLB && hugetlbMisaligned(vma, s, e)) return -Errno.EINVAL;
      const r = await invStart(mm, MmuNotifyEvent.CLEAR, s, e);
      await zapRange(mm, vma, s, e, false);
      await invEnd(mm, r);
      return 0;
    }
    case MADV_FREE:
      if (vma.file !== null || vma.flags & (VM_LOCKED | VM_PFNMAP | VM_HUGETLB)) return -Errno.EINVAL;
      await madviseFree(mm, vma, s, e);
      return 0;
    case MADV_HUGEPAGE:
    case MADV_NOHUGEPAGE: {
      const set = advice === MADV_HUGEPAGE ? VM_HUGEPAGE : VM_NOHUGEPAGE;
      const clear = advice === MADV_HUGEPAGE ? VM_NOHUGEPAGE : VM_HUGEPAGE;
      const nf = (vma.flags & ~clear) | set;
      if (nf === vma.flags) return 0;
      const v = await isolate(mm, vma, s, e);
      v.flags = nf;
      mergeAround(mm, v);
      return 0;
    }
    case MADV_DONTFORK:
    case MADV_DOFORK: {
      if (advice === MADV_DOFORK && vma.flags & VM_IO) return -Errno.EINVAL;
      const nf = advice === MADV_DONTFORK ? vma.flags | VM_DONTCOPY : vma.flags & ~VM_DONTCOPY;
      if (nf === vma.flags) return 0;
      const v = await isolate(mm, vma, s, e);
      v.flags = nf;
      mergeAround(mm, v);
      return 0;
    }
    case MADV_PAGEOUT:
    case MADV_COLD:
      if (vma.flags & (VM_LOCKED | VM_PFNMAP | VM_HUGETLB)) return -Errno.EINVAL;
      if (advice === MADV_PAGEOUT) await pageoutRange(mm, vma, s, e);
      return 0;
    case MADV_COLLAPSE:
      return collapseRange(mm, vma, s, e);
    default:
      return 0; // NORMAL, RANDOM, SEQUENTIAL, WILLNEED: hints without an observable effect here
  }
}

/** madvise_free_single_vma(): drop swap entries, mark exclusive clean pages lazy-free. */
async function madviseFree(mm: Mm, vma: Vma, s: number, e: number): Promise<void> {
  const r = await invStart(mm, MmuNotifyEvent.CLEAR, s, e);
  const p = mm.phys;
  const w = new PageWalk();
  let flush = false;
  for (let a = s; a < e; ) {
    mm.pt.walkUnit(a, e, w);
    if (w.kind === WALK_HOLE) {
      a = w.end;
      continue;
    }
    if (w.kind !== WALK_PTE) {
      const covered = w.leafStart >= s && w.leafStart + PMD_SIZE <= e;
      if (!covered) {
        await splitHugePmd(mm, vma, a);
        continue;
      }
      if ((w.flags & PTE_TYPE_MASK) === PTE_PRESENT && !p.isZeroPfn(w.val)) {
        let excl = true;
        for (let k = 0; k < HPAGE_PMD_NR && excl; k++) excl = p.mapcount[w.val + k] === 1;
        if (excl) {
          for (let k = 0; k < HPAGE_PMD_NR; k++) {
            p.flags[w.val + k] = (p.flags[w.val + k]! & ~PG.dirty) | PG.lazyfree;
          }
          setEntryFlags(w.pmd!, w.slot, w.flags & ~(PTE_DIRTY | PTE_YOUNG));
          flush = true;
        }
      }
      a = w.leafStart + PMD_SIZE;
      continue;
    }
    const t = w.pte!;
    const n = (w.end - a) / PAGE_SIZE;
    for (let k = 0, i = w.index; k < n; k++, i++) {
      const f = t.flags[i]!;
      const ty = f & PTE_TYPE_MASK;
      if (ty === PTE_SWAP) {
        releaseEntry(mm, t.val[i]!, f);
        setEntry(t, i, 0, 0);
      } else if (ty === PTE_PRESENT && !(f & PTE_SPECIAL)) {
        const pfn = t.val[i]!;
        if (p.mapcount[pfn] !== 1 || !(p.flags[pfn]! & PG.anon)) continue;
        p.flags[pfn] = (p.flags[pfn]! & ~PG.dirty) | PG.lazyfree;
        setEntryFlags(t, i, f & ~(PTE_DIRTY | PTE_YOUNG));
        flush = true;
      }
    }
    a = w.end;
  }
  if (flush) flushTlb(mm);
  await invEnd(mm, r);
}
