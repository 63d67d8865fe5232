/**
 * The fault handler and zap (mm/memory.c): handle_mm_fault, do_anonymous_page, do_fault,
 * do_wp_page / wp_page_copy, do_swap_page (swap, device-private and device-exclusive entries),
 * migration_entry_wait, restore_exclusive_pte, unmap_page_range.
 *
 * @module
 */
import { MmuNotifyEvent } from '@hmmkit/notifier';
import { ArgumentError } from '@hmmkit/sim';
import {
  alignDown,
  FAULT_FLAG_WRITE,
  PAGE_SIZE,
  PMD_SIZE,
  PUD_SIZE,
  VM_ACCESS_FLAGS,
  VM_FAULT_MAJOR,
  VM_FAULT_OOM,
  VM_FAULT_SIGBUS,
  VM_FAULT_SIGSEGV,
  VM_HUGETLB,
  VM_SHARED,
  VM_WRITE,
} from './constants.ts';
import { TmpFile } from './file.ts';
import { doHugePmdAnonymousPage, doHugePmdWpPage, splitHugePmd, thpEligible } from './huge-memory.ts';
import { hugetlbFault } from './hugetlb.ts';
import { flushTlb, invEnd, invStart } from './invalidate.ts';
import type { Mm } from './mm.ts';
import {
  PageWalk,
  type PmdTable,
  PRESENT_RY,
  PTE_DEVICE_EXCLUSIVE,
  PTE_DEVICE_PRIVATE,
  PTE_DIRTY,
  PTE_MIGRATION,
  PTE_NONE,
  PTE_PRESENT,
  PTE_R,
  PTE_SPECIAL,
  PTE_SWAP,
  PTE_TYPE_MASK,
  PTE_W,
  PTE_YOUNG,
  type PteTable,
  setEntry,
  setEntryFlags,
  WALK_HOLE,
  WALK_PMD_LEAF,
  WALK_PUD_LEAF,
} from './page-table.ts';
import { PG, type VmFault, ZERO_PFN } from './physmem.ts';
import { mapRef, releaseEntry, releaseHuge, rmapAddOwned, setAnonRmap } from './rmap.ts';
import type { Vma } from './vma.ts';

/** Bits of a present entry for `vma` before any write permission (vm_page_prot minus write). */
export function baseBits(vma: Vma): number {
  return vma.flags & VM_ACCESS_FLAGS ? PTE_PRESENT | PTE_R : PTE_PRESENT;
}

/**
 * Models handle_mm_fault(vma, address, flags): resolves one fault at `addr` inside `vma` and
 * returns 0 or VM_FAULT_* bits (VM_FAULT_ERROR bits mean the access cannot be satisfied). The
 * caller holds the mmap lock for read. A return of 0 means "retry the access": the entry may
 * still not allow it if it changed meanwhile (the CPU access loop and hmm re-walk).
 * `flags`: FAULT_FLAG_WRITE, FAULT_FLAG_REMOTE, FAULT_FLAG_USER.
 */
export async function handleMmFault(mm: Mm, vma: Vma, addr: number, flags: number): Promise<number> {
  return handleMmFaultSync(mm, vma, addr, flags);
}

/**
 * @internal handle_mm_fault() as {@link handleMmFault}, but the faults that need no sleep (a
 * new anonymous or page-cache page, a present PMD leaf that allows the access) complete
 * synchronously and return the number; the others return the promise of the same result.
 * Lets the CPU access loop fault a run of pages without an async frame per page.
 */
export function handleMmFaultSync(mm: Mm, vma: Vma, addr: number, flags: number): number | Promise<number> {
  if (!Number.isSafeInteger(addr) || addr < vma.start || addr >= vma.end) {
    throw new ArgumentError('Mm.handleMmFault', 'addr', 'must lie inside vma', addr);
  }
  const stats = mm.machine.stats;
  stats.faults.value++;
  if (mm.sim.trace.wants('mm.fault')) mm.sim.trace.emit('mm.fault', mm.id, addr, flags);
  mm.sim.charge(mm.sim.costs.cpuFaultNs);
  const write = (flags & FAULT_FLAG_WRITE) !== 0;
  if (write ? !(vma.flags & VM_WRITE) : !(vma.flags & VM_ACCESS_FLAGS)) return VM_FAULT_SIGSEGV;
  const realAddress = addr;
  addr = alignDown(addr, PAGE_SIZE);
  if (vma.flags & VM_HUGETLB) return hugetlbFault(mm, vma, addr, write);

  const haddr = alignDown(addr, PMD_SIZE);
  const pmd = mm.pt.pmdTable(addr, true)!;
  const mi = Math.floor(addr / PMD_SIZE) & 511;
  if (pmd.tables[mi] === null && pmd.flags[mi] === 0 && thpEligible(mm, vma, haddr)) {
    const r = doHugePmdAnonymousPage(mm, vma, haddr, pmd, mi, write);
    if (r >= 0) return r;
  }
  if (pmd.tables[mi] === null && pmd.flags[mi] !== 0) {
    const f = pmd.flags[mi]!;
    if ((f & PTE_TYPE_MASK) === PTE_PRESENT && (!write || f & PTE_W)) {
      setEntryFlags(pmd, mi, f | PTE_YOUNG | (write ? PTE_DIRTY : 0));
      return 0;
    }
    return pmdLeafFault(mm, vma, addr, realAddress, flags, pmd, mi, f);
  }
  return pteFault(mm, vma, addr, realAddress, flags, write);
}

/** handle_mm_fault()'s PMD-level cases that may sleep (huge wp, migration, device-private, split). */
async function pmdLeafFault(
  mm: Mm,
  vma: Vma,
  addr: number,
  realAddress: number,
  flags: number,
  pmd: PmdTable,
  mi: number,
  f: number,
): Promise<number> {
  const haddr = alignDown(addr, PMD_SIZE);
  const write = (flags & FAULT_FLAG_WRITE) !== 0;
  const t = f & PTE_TYPE_MASK;
  if (t === PTE_PRESENT) {
    const r = await doHugePmdWpPage(mm, vma, haddr, pmd, mi);
    if (r >= 0) return r;
    // fell back to the PTE level: the PMD was split
  } else if (t === PTE_MIGRATION) {
    await migrationEntryWait(mm, pmd, mi, pmd.val[mi]!, f);
    return 0;
  } else if (t === PTE_DEVICE_PRIVATE) {
    // do_huge_pmd_device_private(): migrate_to_ram with the folio's head page, order 9
    return callMigrateToRam(mm, vma, haddr, realAddress, pmd.val[mi]!, flags, 9);
  } else {
    await splitHugePmd(mm, vma, haddr);
  }
  pmd = mm.pt.pmdTable(addr, true)!;
  mi = Math.floor(addr / PMD_SIZE) & 511;
  if (pmd.tables[mi] === null && pmd.flags[mi] !== 0) return 0; // changed meanwhile: retry
  return pteFault(mm, vma, addr, realAddress, flags, write);
}

/** handle_mm_fault()'s PTE level (handle_pte_fault()): synchronous unless the case may sleep. */
function pteFault(
  mm: Mm,
  vma: Vma,
  addr: number,
  realAddress: number,
  flags: number,
  write: boolean,
): number | Promise<number> {
  const tbl = mm.pt.pteTable(addr, true)!;
  const i = Math.floor(addr / PAGE_SIZE) & 511;
  const f = tbl.flags[i]!;
  const t = f & PTE_TYPE_MASK;
  switch (t) {
    case PTE_NONE:
      if (vma.file === null) return doAnonymousPage(mm, vma, addr, tbl, i, write);
      return doFault(mm, vma, addr, tbl, i, write);
    case PTE_PRESENT:
      if (!(f & PTE_R) && vma.flags & VM_ACCESS_FLAGS) setEntryFlags(tbl, i, f | PTE_R); // protnone hint
      if (write && !(f & PTE_W)) return doWpPage(mm, vma, addr, tbl, i);
      setEntryFlags(tbl, i, tbl.flags[i]! | PTE_YOUNG | (write ? PTE_DIRTY : 0));
      return 0;
    case PTE_SWAP:
      return doSwapPage(mm, vma, addr, tbl, i, write);
    case PTE_MIGRATION:
      return migrationEntryWait(mm, tbl, i, tbl.val[i]!, f).then(() => 0);
    case PTE_DEVICE_PRIVATE:
      return doDevicePrivateFault(mm, vma, addr, realAddress, tbl, i, flags);
    case PTE_DEVICE_EXCLUSIVE:
      return removeDeviceExclusiveEntry(mm, vma, addr, tbl, i);
    default:
      return VM_FAULT_SIGBUS;
  }
}

/** Models migration_entry_wait(): sleeps until the migrating page is unlocked or the entry changed. */
export async function migrationEntryWait(
  mm: Mm,
  t: PteTable | PmdTable,
  i: number,
  pfn: number,
  f: number,
): Promise<void> {
  const p = mm.phys;
  const head = p.compoundHead(pfn); // the folio lock lives on the head page
  if (!p.isPageLocked(head)) return;
  await p.pageLockWq.waitEvent(() => !p.isPageLocked(head) || t.flags[i] !== f || t.val[i] !== pfn);
}

/** do_anonymous_page(): zero page on read, a new zeroed page on write. */
function doAnonymousPage(mm: Mm, vma: Vma, addr: number, t: PteTable, i: number, write: boolean): number {
  if (!write && !(vma.flags & VM_SHARED)) {
    setEntry(t, i, ZERO_PFN, PTE_PRESENT | PTE_R | PTE_SPECIAL | PTE_YOUNG);
    return 0;
  }
  const pfn = mm.phys.allocPage(mm.node, PG.anon | PG.anonExclusive);
  if (pfn < 0) return VM_FAULT_OOM;
  mm.sim.charge(mm.sim.costs.cpuPageZeroNs);
  setAnonRmap(mm, pfn, vma, addr);
  rmapAddOwned(mm, pfn); // the allocation's reference becomes the mapping's
  setEntry(t, i, pfn, PRESENT_RY | PTE_W | PTE_DIRTY);
  return 0;
}

/**
 * @internal handle_mm_fault() for the pages [addr, stop) of one PTE table `t` of the anonymous,
 * non-hugetlb VMA `vma`, followed by the CPU's access check, as the kernel's do_anonymous_page()
 * works on the pte its walk already found: a none entry gets do_anonymous_page(), a present entry
 * that allows the access is marked young (dirty). Each fault counts, traces and charges exactly as
 * its own {@link handleMmFaultSync} would, in the same order; only the page-table descents are
 * shared. The caller holds the mmap lock, checked the VMA's permission for `flags`, and nothing
 * can interleave (outside a scheduler run). Returns the address of the first page it left for
 * the per-page path (an entry needing another fault case, or a page the node cannot allocate:
 * that fault's OOM is the per-page path's), or `stop`.
 */
export function faultAnonPteRun(
  mm: Mm,
  vma: Vma,
  t: PteTable,
  addr: number,
  stop: number,
  flags: number,
): number {
  const write = (flags & FAULT_FLAG_WRITE) !== 0;
  const needPage = write || (vma.flags & VM_SHARED) !== 0;
  const nd = mm.phys.nodes[mm.node];
  if (nd === undefined || nd.kind !== 'system') return addr; // allocPage's error is the per-page path's
  const sim = mm.sim;
  const faults = mm.machine.stats.faults;
  const mark = PTE_YOUNG | (write ? PTE_DIRTY : 0);
  const need = write ? PTE_TYPE_MASK | PTE_R | PTE_W : PTE_TYPE_MASK | PTE_R;
  const want = write ? PTE_PRESENT | PTE_R | PTE_W : PTE_PRESENT | PTE_R;
  for (let i = Math.floor(addr / PAGE_SIZE) & 511; addr < stop; addr += PAGE_SIZE, i++) {
    let f = t.flags[i]!;
    if (f === PTE_NONE) {
      if (needPage && nd.usedPages >= nd.totalPages) return addr;
      faults.value++;
      if (sim.trace.wants('mm.fault')) sim.trace.emit('mm.fault', mm.id, addr, flags);
      sim.charge(sim.costs.cpuFaultNs);
      doAnonymousPage(mm, vma, addr, t, i, write);
      f = t.flags[i]!;
    }
    if ((f & need) !== want) return addr;
    setEntryFlags(t, i, f | mark);
  }
  return stop;
}

/** do_fault(): file-backed (shmem page cache) read, COW or shared fault. */
export function doFault(mm: Mm, vma: Vma, addr: number, t: PteTable, i: number, write: boolean): number {
  const file = vma.file;
  if (!(file instanceof TmpFile)) return VM_FAULT_SIGBUS;
  const idx = vma.linearPageIndex(addr);
  const ino = file.inode;
  if (idx >= Math.ceil(ino.size / PAGE_SIZE)) return VM_FAULT_SIGBUS;
  const pc = ino.findOrCreate(idx);
  if (pc < 0) return VM_FAULT_OOM;
  const p = mm.phys;
  if (write && !(vma.flags & VM_SHARED)) {
    // do_cow_fault
    const pfn = p.allocPage(mm.node, PG.anon | PG.anonExclusive);
    if (pfn < 0) return VM_FAULT_OOM;
    p.copyPage(pfn, pc);
    mm.sim.charge(mm.sim.costs.cpuPageCopyNs);
    setAnonRmap(mm, pfn, vma, addr);
    rmapAddOwned(mm, pfn);
    setEntry(t, i, pfn, PRESENT_RY | PTE_W | PTE_DIRTY);
    return 0;
  }
  mapRef(mm, pc);
  const w = vma.flags & VM_SHARED && vma.flags & VM_WRITE ? PTE_W : 0;
  setEntry(t, i, pc, PRESENT_RY | w | (write ? PTE_DIRTY : 0));
  if (write) p.flags[pc] = p.flags[pc]! | PG.dirty;
  return 0;
}

/** True when an anonymous page may be reused for writing (wp_can_reuse_anon_folio). */
function canReuseAnon(mm: Mm, pfn: number): boolean {
  const p = mm.phys;
  const f = p.flags[pfn]!;
  if (!(f & PG.anon) || f & PG.reserved || mm.phys.isDevicePrivatePage(pfn)) return false;
  if (p.mapcount[pfn] !== 1 || p.refcount[pfn] !== 1) return false;
  if (f & PG.swapcache) p.swap.dropCache(pfn);
  return true;
}

/** do_wp_page(): a write to a present read-only entry in a writable VMA. */
async function doWpPage(mm: Mm, vma: Vma, addr: number, t: PteTable, i: number): Promise<number> {
  const f = t.flags[i]!;
  const pfn = t.val[i]!;
  if (vma.flags & VM_SHARED) {
    // wp_page_shared / wp_pfn_shared
    setEntryFlags(t, i, f | PTE_W | PTE_DIRTY | PTE_YOUNG);
    if (!mm.phys.isZeroPfn(pfn)) mm.phys.flags[pfn] = mm.phys.flags[pfn]! | PG.dirty;
    return 0;
  }
  if (!mm.phys.isZeroPfn(pfn) && canReuseAnon(mm, pfn)) {
    setEntryFlags(t, i, f | PTE_W | PTE_DIRTY | PTE_YOUNG);
    mm.phys.flags[pfn] = mm.phys.flags[pfn]! | PG.anonExclusive;
    return 0;
  }
  return wpPageCopy(mm, vma, addr, pfn, f);
}

/** wp_page_copy(): COW a page (or the zero page) inside a CLEAR invalidation of that page. */
async function wpPageCopy(mm: Mm, vma: Vma, addr: number, oldPfn: number, oldFlags: number): Promise<number> {
  const p = mm.phys;
  const isZero = p.isZeroPfn(oldPfn);
  const pfn = p.allocPage(mm.node, PG.anon | PG.anonExclusive);
  if (pfn < 0) return VM_FAULT_OOM;
  if (isZero) mm.sim.charge(mm.sim.costs.cpuPageZeroNs);
  else {
    p.copyPage(pfn, oldPfn);
    mm.sim.charge(mm.sim.costs.cpuPageCopyNs);
  }
  const r = await invStart(mm, MmuNotifyEvent.CLEAR, addr, addr + PAGE_SIZE);
  const t = mm.pt.pteTable(addr, false);
  const i = Math.floor(addr / PAGE_SIZE) & 511;
  if (t !== null && t.flags[i] === oldFlags && t.val[i] === oldPfn) {
    setAnonRmap(mm, pfn, vma, addr);
    rmapAddOwned(mm, pfn);
    releaseEntry(mm, oldPfn, oldFlags);
    setEntry(t, i, pfn, PRESENT_RY | PTE_W | PTE_DIRTY);
    mm.machine.stats.cow.value++;
    flushTlb(mm);
  } else {
    p.putPage(pfn);
  }
  await invEnd(mm, r);
  return 0;
}

/** do_swap_page() for a real swap entry. */
function doSwapPage(mm: Mm, vma: Vma, addr: number, t: PteTable, i: number, write: boolean): number {
  const p = mm.phys;
  const sw = p.swap;
  const slot = t.val[i]!;
  let pfn = sw.cache[slot]!;
  let ret = 0;
  if (pfn >= 0) {
    p.getPage(pfn);
  } else {
    pfn = p.allocPage(mm.node, PG.anon);
    if (pfn < 0) return VM_FAULT_OOM;
    const last = sw.count[slot] === 1;
    sw.readIn(slot, pfn, last);
    if (!last) sw.addToCache(slot, pfn);
    setAnonRmap(mm, pfn, vma, addr);
    mm.machine.stats.swapIn.value++;
    mm.machine.stats.majorFaults.value++;
    mm.sim.charge(mm.sim.costs.swapIoPerPageNs);
    ret = VM_FAULT_MAJOR;
  }
  rmapAddOwned(mm, pfn); // the swap cache's or the new page's reference becomes the mapping's
  mm.swapEntries--;
  sw.free(slot);
  const exclusive = p.mapcount[pfn] === 1 && p.refcount[pfn] === 1 && !(p.flags[pfn]! & PG.swapcache);
  const wbits = exclusive && write && vma.flags & VM_WRITE ? PTE_W | PTE_DIRTY : 0;
  setEntry(t, i, pfn, baseBits(vma) | PTE_YOUNG | wbits);
  return ret;
}

/** do_swap_page() for a device-private entry: calls the pagemap's migrate_to_ram(). */
async function doDevicePrivateFault(
  mm: Mm,
  vma: Vma,
  addr: number,
  realAddress: number,
  t: PteTable,
  i: number,
  flags: number,
): Promise<number> {
  return callMigrateToRam(mm, vma, addr, realAddress, t.val[i]!, flags, 0);
}

/**
 * do_swap_page()'s device-private branch (Linux 6.15+): trylock the device page FIRST and
 * take the reference only once locked; the loser of a concurrent fault waits for the page
 * lock WITHOUT a reference (migration_entry_wait_on_locked) and retries the access. A waiter
 * holding a reference would make the winner's migrate_vma_setup() see the page as pinned
 * (migrate_vma_check_page) and restore it, so eight readers of one page never made progress.
 * The winner calls the pagemap's migrate_to_ram(), then unlocks and puts the page.
 */
async function callMigrateToRam(
  mm: Mm,
  vma: Vma,
  addr: number,
  realAddress: number,
  dpfn: number,
  flags: number,
  order: number,
): Promise<number> {
  const p = mm.phys;
  const pgmap = p.pagemapOf(dpfn);
  if (pgmap === null) return VM_FAULT_SIGBUS;
  if (!p.trylockPage(dpfn)) {
    await p.pageLockWq.waitEvent(() => !p.isPageLocked(dpfn));
    return 0;
  }
  p.getPage(dpfn);
  mm.machine.stats.devicePrivateFaults.value++;
  const vmf: VmFault = {
    vma,
    mm: mm,
    address: addr,
    realAddress,
    flags,
    page: dpfn,
    order,
    pgoff: vma.linearPageIndex(addr),
  };
  let ret: number;
  try {
    ret = await pgmap.ops.migrateToRam(vmf);
  } finally {
    p.unlockPage(dpfn);
    p.putPage(dpfn);
  }
  return ret;
}

/** remove_device_exclusive_entry(): EXCLUSIVE invalidation (owner null), then restore the PTE. */
async function removeDeviceExclusiveEntry(
  mm: Mm,
  vma: Vma,
  addr: number,
  t0: PteTable,
  i: number,
): Promise<number> {
  const p = mm.phys;
  const f = t0.flags[i]!;
  const pfn = t0.val[i]!;
  p.getPage(pfn);
  if (!p.trylockPage(pfn)) {
    p.putPage(pfn);
    await p.pageLockWq.waitEvent(() => !p.isPageLocked(pfn));
    return 0;
  }
  const r = await invStart(mm, MmuNotifyEvent.EXCLUSIVE, addr, addr + PAGE_SIZE, null);
  const t = mm.pt.pteTable(addr, false);
  if (t !== null && t.flags[i] === f && t.val[i] === pfn)
    setEntryFlags(t, i, restoreExclusiveBits(mm, vma, pfn, f));
  await invEnd(mm, r);
  p.unlockPage(pfn);
  p.putPage(pfn);
  return 0;
}

/**
 * restore_exclusive_pte() (Linux 6.15+): the entry bits of the present PTE that replaces a
 * device-exclusive entry of `pfn`: writable iff the VMA has VM_WRITE and
 * can_change_pte_writable() allows it (a private mapping: the anonymous page is mapped only
 * here, our PageAnonExclusive; a shared one: never, the fresh PTE is clean), dirty iff the
 * folio or the entry is. Whatever mprotect did meanwhile, the VMA decides (≤ 6.14 kept the
 * entry's own write bit, which mprotect(PROT_READ) had cleared for good).
 */
export function restoreExclusiveBits(mm: Mm, vma: Vma, pfn: number, f: number): number {
  const p = mm.phys;
  const dirty = (f & PTE_DIRTY) !== 0 || (p.flags[pfn]! & PG.dirty) !== 0;
  const writable =
    (vma.flags & VM_WRITE) !== 0 &&
    !(vma.flags & VM_SHARED) &&
    (p.flags[pfn]! & PG.anon) !== 0 &&
    p.mapcount[pfn] === 1;
  return baseBits(vma) | PTE_YOUNG | (writable ? PTE_W : 0) | (writable && dirty ? PTE_DIRTY : 0);
}

/**
 * Clears every entry of [start, end) inside `vma`, dropping references. PMD leaves only
 * partly covered are split first (a nested CLEAR invalidation, as zap_pmd_range does). The
 * caller issues the surrounding invalidation. Returns true if a present entry was cleared.
 */
export async function zapRange(
  mm: Mm,
  vma: Vma,
  start: number,
  end: number,
  freeTables: boolean,
): Promise<boolean> {
  const w = new PageWalk();
  let flushed = false;
  let a = start;
  while (a < end) {
    mm.pt.walkUnit(a, end, w);
    if (w.kind === WALK_HOLE) {
      a = w.end;
      continue;
    }
    if (w.kind === WALK_PUD_LEAF || w.kind === WALK_PMD_LEAF) {
      const size = w.kind === WALK_PUD_LEAF ? PUD_SIZE : PMD_SIZE;
      const covered = w.leafStart >= start && w.leafStart + size <= end;
      if (!covered && !(vma.flags & VM_HUGETLB)) {
        await splitHugePmd(mm, vma, a);
        continue;
      }
      const tbl = w.kind === WALK_PUD_LEAF ? mm.pt.pudTable(a, false)! : w.pmd!;
      releaseHuge(mm, w.val, w.flags, size / PAGE_SIZE);
      setEntry(tbl, w.slot, 0, 0);
      flushed = true;
      a = Math.max(w.end, w.leafStart + size);
      continue;
    }
    const t = w.pte!;
    const n = (w.end - a) / PAGE_SIZE;
    for (let k = 0, i = w.index; k < n; k++, i++) {
      const f = t.flags[i]!;
      if (f === 0) continue;
      if ((f & PTE_TYPE_MASK) === PTE_PRESENT) flushed = true;
      releaseEntry(mm, t.val[i]!, f);
      setEntry(t, i, 0, 0);
    }
    if (freeTables && t.used === 0 && a % PMD_SIZE === 0 && w.end - a === PMD_SIZE) {
      mm.pt.freePteTable(w.pmd!, w.slot);
    }
    a = w.end;
  }
  if (flushed) flushTlb(mm);
  return flushed;
}
