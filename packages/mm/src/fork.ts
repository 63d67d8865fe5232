/**
 * fork's page-table copy and exit_mmap (kernel/fork.c, mm/memory.c copy_page_range, mm/mmap.c).
 *
 * @module
 */

import { MmuNotifyEvent, mmuNotifierRelease } from '@hmmkit/notifier';
import { ULONG_MAX } from '@hmmkit/sim';
import { PAGE_SIZE, PMD_SIZE, PUD_SIZE, VM_HUGETLB, VM_MAYWRITE, VM_SHARED } from './constants.ts';
import { flushTlb, invEnd, invStart } from './invalidate.ts';
import { restoreExclusiveBits, zapRange } from './memory.ts';
import type { Mm } from './mm.ts';
import {
  PageWalk,
  PTE_DEVICE_EXCLUSIVE,
  PTE_DEVICE_PRIVATE,
  PTE_MIGRATION,
  PTE_PRESENT,
  PTE_SPECIAL,
  PTE_SWAP,
  PTE_TYPE_MASK,
  PTE_W,
  PTE_YOUNG,
  setEntry,
  setEntryFlags,
  WALK_HOLE,
  WALK_PMD_LEAF,
  WALK_PUD_LEAF,
} from './page-table.ts';
import { PG } from './physmem.ts';
import { rmapAdd } from './rmap.ts';
import { unlinkVma, type Vma } from './vma.ts';

/** copy_page_range(): false when an entry cannot be copied (a locked device-exclusive folio). */
export async function copyPageRange(mm: Mm, child: Mm, vma: Vma): Promise<boolean> {
  const cow = (vma.flags & (VM_SHARED | VM_MAYWRITE)) === VM_MAYWRITE;
  // copy_hugetlb_page_range() uses CLEAR; copy_page_range() PROTECTION_PAGE
  const event = vma.flags & VM_HUGETLB ? MmuNotifyEvent.CLEAR : MmuNotifyEvent.PROTECTION_PAGE;
  const r = cow ? await invStart(mm, event, vma.start, vma.end) : null;
  const p = mm.phys;
  const w = new PageWalk();
  let flush = false;
  let ok = true;
  for (let a = vma.start; a < vma.end; ) {
    mm.pt.walkUnit(a, vma.end, w);
    if (w.kind === WALK_HOLE) {
      a = w.end;
      continue;
    }
    if (w.kind === WALK_PMD_LEAF || w.kind === WALK_PUD_LEAF) {
      const size = w.kind === WALK_PUD_LEAF ? PUD_SIZE : PMD_SIZE;
      const nr = size / PAGE_SIZE;
      const src = w.kind === WALK_PUD_LEAF ? mm.pt.pudTable(a, false)! : w.pmd!;
      const dst = w.kind === WALK_PUD_LEAF ? child.pt.pudTable(a, true)! : child.pt.pmdTable(a, true)!;
      let f = w.flags;
      const ty = f & PTE_TYPE_MASK;
      if ((ty === PTE_PRESENT && !p.isZeroPfn(w.val)) || ty === PTE_DEVICE_PRIVATE) {
        rmapAdd(child, w.val, nr);
      }
      if (cow && f & PTE_W) {
        f &= ~PTE_W;
        setEntryFlags(src, w.slot, f);
        flush = true;
      }
      setEntry(dst, w.slot, w.val, f & ~PTE_YOUNG);
      a = w.leafStart + size;
      continue;
    }
    const t = w.pte!;
    const n = (w.end - a) / PAGE_SIZE;
    const ct = child.pt.pteTable(a, true)!;
    for (let k = 0, i = w.index; k < n; k++, i++) {
      let f = t.flags[i]!;
      if (f === 0) continue;
      const v = t.val[i]!;
      let ty = f & PTE_TYPE_MASK;
      if (ty === PTE_DEVICE_EXCLUSIVE) {
        // try_restore_exclusive_pte(): restore the PTE in the parent under the folio lock (a
        // trylock: a locked folio fails the fork), then copy it like a present one
        if (p.isPageLocked(p.compoundHead(v))) {
          ok = false;
          break;
        }
        f = restoreExclusiveBits(mm, vma, v, f);
        setEntryFlags(t, i, f);
        ty = PTE_PRESENT;
      }
      if (ty === PTE_PRESENT) {
        if (!(f & PTE_SPECIAL) || !p.isZeroPfn(v)) {
          if (!(p.flags[v]! & PG.reserved) && !(f & PTE_SPECIAL && p.mapcount[v] === 0)) {
            rmapAdd(child, v);
          }
        }
        if (cow && f & PTE_W) {
          f &= ~PTE_W;
          setEntryFlags(t, i, f);
          flush = true;
        }
        if (cow) p.flags[v] = p.flags[v]! & ~PG.anonExclusive;
        setEntry(ct, i, v, f & ~PTE_YOUNG);
      } else if (ty === PTE_SWAP) {
        p.swap.dup(v);
        child.swapEntries++;
        setEntry(ct, i, v, f);
      } else if (ty === PTE_DEVICE_PRIVATE) {
        rmapAdd(child, v);
        if (cow && f & PTE_W) {
          f &= ~PTE_W;
          setEntryFlags(t, i, f);
        }
        setEntry(ct, i, v, f);
      } else if (ty === PTE_MIGRATION) {
        if (cow && f & PTE_W) {
          f &= ~PTE_W;
          setEntryFlags(t, i, f);
        }
        setEntry(ct, i, v, f);
      }
    }
    if (!ok) break;
    a = w.end;
  }
  if (flush) flushTlb(mm);
  await invEnd(mm, r);
  return ok;
}

/**
 * Models exit_mmap(): mmu_notifier_release() (RELEASE for interval notifiers, release() for
 * classic ones), then one UNMAP invalidation over [0, ULONG_MAX) while every VMA is zapped.
 */
export async function exitMmap(mm: Mm): Promise<void> {
  await mmuNotifierRelease(mm);
  await mm.mmapLock.write();
  try {
    const all = mm.vmas.toArray();
    if (all.length !== 0) {
      const r = await invStart(mm, MmuNotifyEvent.UNMAP, 0, ULONG_MAX);
      for (const v of all) {
        await zapRange(mm, v, v.start, v.end, true);
        unlinkVma(mm, v);
        if (v.anonVma !== null) {
          v.anonVma.mms.delete(mm);
          mm.machine.releaseAnonVma(v.anonVma);
        }
      }
      await invEnd(mm, r);
    }
  } finally {
    mm.mmapLock.writeUnlock();
  }
}
