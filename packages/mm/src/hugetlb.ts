/**
 * hugetlbfs pages (mm/hugetlb.c): hugetlb_fault, the pool, huge-page rmap accounting.
 *
 * @module
 */
import { MmuNotifyEvent } from '@hmmkit/notifier';
import { alignDown, PMD_SIZE, PUD_SIZE, VM_FAULT_SIGBUS, VM_SHARED, VM_WRITE } from './constants.ts';
import { flushTlb, invEnd, invStart } from './invalidate.ts';
import type { Mm } from './mm.ts';
import {
  type PageTable,
  type PmdTable,
  PRESENT_RY,
  PTE_DIRTY,
  PTE_PRESENT,
  PTE_TYPE_MASK,
  PTE_W,
  PTE_YOUNG,
  setEntry,
  setEntryFlags,
} from './page-table.ts';
import { PG } from './physmem.ts';
import { anonVmaPrepare, releaseHuge, rmapAddOwned } from './rmap.ts';
import type { Vma } from './vma.ts';

/** The huge page size of a hugetlb VMA (2 MiB unless MAP_HUGE_1GB). */
export function hugetlbSize(vma: Vma): number {
  return typeof vma.privateData === 'number' ? vma.privateData : PMD_SIZE;
}

/** hugetlb_fault(): allocate from the pool, COW on write to a shared private page. */
export async function hugetlbFault(mm: Mm, vma: Vma, addr: number, write: boolean): Promise<number> {
  const size = hugetlbSize(vma);
  const haddr = alignDown(addr, size);
  const p = mm.phys;
  const isPud = size === PUD_SIZE;
  const tbl: PmdTable | ReturnType<PageTable['pudTable']> = isPud
    ? mm.pt.pudTable(haddr, true)
    : mm.pt.pmdTable(haddr, true);
  if (tbl === null) return VM_FAULT_SIGBUS;
  const idx = isPud ? Math.floor(haddr / PUD_SIZE) & 511 : Math.floor(haddr / PMD_SIZE) & 511;
  const f = tbl.flags[idx]!;
  const order = isPud ? 18 : 9;
  const nr = 2 ** order;
  const shared = (vma.flags & VM_SHARED) !== 0;
  const wbit = vma.flags & VM_WRITE && (shared || write) ? PTE_W | PTE_DIRTY : 0;
  if (f === 0) {
    const head = allocHugetlb(mm, order);
    if (head < 0) return VM_FAULT_SIGBUS;
    setHugeRmap(mm, vma, haddr, head, nr);
    setEntry(tbl, idx, head, PRESENT_RY | wbit);
    return 0;
  }
  if ((f & PTE_TYPE_MASK) !== PTE_PRESENT) return VM_FAULT_SIGBUS;
  if (!write || f & PTE_W) {
    setEntryFlags(tbl, idx, f | PTE_YOUNG);
    return 0;
  }
  if (shared) {
    setEntryFlags(tbl, idx, f | PTE_W | PTE_DIRTY);
    return 0;
  }
  const old = tbl.val[idx]!;
  if (p.mapcount[old] === 1 && p.refcount[old] === 1) {
    setEntryFlags(tbl, idx, f | PTE_W | PTE_DIRTY);
    return 0;
  }
  const head = allocHugetlb(mm, order);
  if (head < 0) return VM_FAULT_SIGBUS;
  for (let k = 0; k < nr; k++) p.copyPage(head + k, old + k);
  mm.sim.charge(mm.sim.costs.cpuPageCopyNs * nr);
  const r = await invStart(mm, MmuNotifyEvent.CLEAR, haddr, haddr + size);
  if (tbl.flags[idx] === f && tbl.val[idx] === old) {
    releaseHuge(mm, old, f, nr);
    setHugeRmap(mm, vma, haddr, head, nr);
    setEntry(tbl, idx, head, PRESENT_RY | PTE_W | PTE_DIRTY);
    mm.machine.stats.cow.value++;
    flushTlb(mm);
  } else {
    for (let k = 0; k < nr; k++) p.putPage(head + k);
  }
  await invEnd(mm, r);
  return 0;
}

/** Takes a huge page from the hugetlb pool (alloc_hugetlb_folio); -1 when the pool is empty. */
function allocHugetlb(mm: Mm, order: 9 | 18): number {
  const p = mm.phys;
  if (order === 9 ? p.hugetlbFree <= 0 : p.hugetlbPudFree <= 0) return -1;
  const head = p.allocFolio(mm.node, order, PG.hugetlb);
  if (head < 0) return -1;
  if (order === 9) p.hugetlbFree--;
  else p.hugetlbPudFree--;
  return head;
}

/** Rmap metadata and mapcounts of a huge page newly mapped at `haddr`. */
function setHugeRmap(mm: Mm, vma: Vma, haddr: number, head: number, nr: number): void {
  const p = mm.phys;
  const anon = vma.file === null && !(vma.flags & VM_SHARED);
  const a = anon ? anonVmaPrepare(mm, vma) : null;
  const idx = vma.linearPageIndex(haddr);
  for (let k = 0; k < nr; k++) {
    p.mapping[head + k] = a === null ? 0 : a.id;
    p.index[head + k] = idx + k;
    if (a !== null) p.flags[head + k] = p.flags[head + k]! | PG.anon;
  }
  rmapAddOwned(mm, head, nr); // the pool allocation's references become the mapping's
}

/** True when [start, end) would cut the hugetlb VMA `v` off a huge-page boundary. */
export function hugetlbMisaligned(v: Vma, start: number, end: number): boolean {
  const hs = hugetlbSize(v);
  return (start > v.start && start % hs !== 0) || (end < v.end && end % hs !== 0);
}
