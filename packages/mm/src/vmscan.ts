/**
 * Reclaim of anonymous pages to swap (mm/vmscan.c, mm/swap_state.c): MADV_PAGEOUT's
 * try_to_unmap + pageout.
 *
 * @module
 */
import { MmuNotifyEvent } from '@hmmkit/notifier';
import { PAGE_SIZE, PMD_SIZE } from './constants.ts';
import { splitHugePmd } from './huge-memory.ts';
import { flushTlb, invEnd, invStart } from './invalidate.ts';
import type { Mm } from './mm.ts';
import {
  PageWalk,
  PTE_DIRTY,
  PTE_PRESENT,
  PTE_SPECIAL,
  PTE_SWAP,
  PTE_TYPE_MASK,
  PTE_W,
  setEntry,
  WALK_HOLE,
  WALK_PTE,
} from './page-table.ts';
import { PG } from './physmem.ts';
import { releaseEntry, rmapRemove } from './rmap.ts';
import type { Vma } from './vma.ts';

/**
 * MADV_PAGEOUT: reclaims the exclusively mapped anonymous pages of [s, e): PMD-mapped THPs
 * are split first; each page is unmapped inside a CLEAR invalidation of that page and written
 * to swap (or dropped if it was MADV_FREE'd and is still clean).
 */
export async function pageoutRange(mm: Mm, vma: Vma, s: number, e: number): Promise<void> {
  if (vma.file !== null) return; // page-cache reclaim is not modelled
  const p = mm.phys;
  const w = new PageWalk();
  for (let a = s; a < e; ) {
    mm.pt.walkUnit(a, e, w);
    if (w.kind === WALK_HOLE) {
      a = w.end;
      continue;
    }
    if (w.kind !== WALK_PTE) {
      if ((w.flags & PTE_TYPE_MASK) === PTE_PRESENT && !p.isZeroPfn(w.val)) {
        await splitHugePmd(mm, vma, a);
        continue;
      }
      a = w.leafStart + PMD_SIZE;
      continue;
    }
    const end = w.end;
    for (; a < end; a += PAGE_SIZE) {
      const t = mm.pt.pteTable(a, false);
      if (t === null) break;
      const i = Math.floor(a / PAGE_SIZE) & 511;
      const f = t.flags[i]!;
      if ((f & PTE_TYPE_MASK) !== PTE_PRESENT || f & PTE_SPECIAL) continue;
      const pfn = t.val[i]!;
      if (!(p.flags[pfn]! & PG.anon) || p.flags[pfn]! & (PG.device | PG.locked)) continue;
      if (p.mapcount[pfn] !== 1 || p.refcount[pfn] !== 1) continue;
      await reclaimPte(mm, a, pfn, f);
    }
    a = end;
  }
}

/** try_to_unmap_one + pageout of one exclusively mapped anonymous page. */
async function reclaimPte(mm: Mm, addr: number, pfn: number, f: number): Promise<void> {
  const p = mm.phys;
  const r = await invStart(mm, MmuNotifyEvent.CLEAR, addr, addr + PAGE_SIZE);
  const t = mm.pt.pteTable(addr, false);
  const i = Math.floor(addr / PAGE_SIZE) & 511;
  if (t !== null && t.val[i] === pfn && t.flags[i] === f && p.refcount[pfn] === 1) {
    const dirty = (f & PTE_DIRTY) !== 0 || (p.flags[pfn]! & PG.dirty) !== 0;
    if (p.flags[pfn]! & PG.lazyfree && !dirty) {
      releaseEntry(mm, pfn, f);
      setEntry(t, i, 0, 0);
    } else {
      const slot = p.swap.writeOut(pfn, 1);
      if (slot > 0) {
        setEntry(t, i, slot, PTE_SWAP | (f & PTE_W ? PTE_W : 0));
        mm.swapEntries++;
        rmapRemove(mm, pfn); // the page is freed: its contents now live in the swap slot
        mm.machine.stats.swapOut.value++;
        mm.sim.charge(mm.sim.costs.swapIoPerPageNs);
      }
    }
    flushTlb(mm);
  }
  await invEnd(mm, r);
}
