/**
 * Transparent huge pages (mm/huge_memory.c, mm/khugepaged.c): the THP fault and write fault,
 * __split_huge_pmd, MADV_COLLAPSE, and the PMD-level migration primitives
 * (set_pmd_migration_entry, remove_migration_pmd, migrate_vma_insert_huge_pmd_page).
 *
 * @module
 */
import { MmuNotifyEvent } from '@hmmkit/notifier';
import { Errno } from '@hmmkit/sim';
import {
  alignDown,
  HPAGE_PMD_NR,
  PAGE_SIZE,
  PMD_SIZE,
  VM_ACCESS_FLAGS,
  VM_HUGEPAGE,
  VM_HUGETLB,
  VM_IO,
  VM_MIXEDMAP,
  VM_NOHUGEPAGE,
  VM_PFNMAP,
  VM_WRITE,
} from './constants.ts';
import { flushTlb, invEnd, invStart } from './invalidate.ts';
import { baseBits } from './memory.ts';
import type { Mm } from './mm.ts';
import {
  type PmdTable,
  PRESENT_RY,
  PTE_DEVICE_PRIVATE,
  PTE_DIRTY,
  PTE_MIGRATION,
  PTE_NONE,
  PTE_PRESENT,
  PTE_R,
  PTE_SPECIAL,
  PTE_TYPE_MASK,
  PTE_W,
  PTE_YOUNG,
  PteTable,
  setEntry,
  setEntryFlags,
} from './page-table.ts';
import { HUGE_ZERO_PFN, PG, ZERO_PFN } from './physmem.ts';
import {
  anonVmaPrepare,
  releaseEntry,
  rmapAdd,
  rmapAddOwned,
  rmapRemoveKeepRef,
  setAnonRmap,
} from './rmap.ts';
import type { Vma } from './vma.ts';

/**
 * True when a fault at the 2 MiB block `haddr` of `vma` may get a THP (anonymous, the THP mode, the
 * block inside the VMA).
 */
export function thpEligible(mm: Mm, vma: Vma, haddr: number): boolean {
  if (vma.file !== null || vma.flags & (VM_NOHUGEPAGE | VM_HUGETLB | VM_PFNMAP | VM_MIXEDMAP | VM_IO)) {
    return false;
  }
  const mode = mm.machine.thp;
  if (mode === 'never') return false;
  if (mode === 'madvise' && !(vma.flags & VM_HUGEPAGE)) return false;
  return haddr >= vma.start && haddr + PMD_SIZE <= vma.end;
}

/** do_huge_pmd_anonymous_page(): huge zero page on read, a THP on write; -1 = fall back. */
export function doHugePmdAnonymousPage(
  mm: Mm,
  vma: Vma,
  haddr: number,
  pmd: PmdTable,
  mi: number,
  write: boolean,
): number {
  if (!write && mm.machine.useHugeZeroPage) {
    setEntry(pmd, mi, HUGE_ZERO_PFN, PTE_PRESENT | PTE_R | PTE_SPECIAL | PTE_YOUNG);
    return 0;
  }
  const head = mm.phys.allocFolio(mm.node, 9, PG.anon | PG.anonExclusive);
  if (head < 0) return -1;
  installThp(mm, vma, haddr, head, pmd, mi);
  return 0;
}

/** Maps the fresh 2 MiB folio `head` at `haddr` as a PMD leaf (anon rmap, RSS; writable iff VM_WRITE). */
function installThp(mm: Mm, vma: Vma, haddr: number, head: number, pmd: PmdTable, mi: number): void {
  const p = mm.phys;
  const a = anonVmaPrepare(mm, vma);
  const idx = vma.linearPageIndex(haddr);
  for (let k = 0; k < HPAGE_PMD_NR; k++) {
    const pfn = head + k;
    p.mapping[pfn] = a.id;
    p.index[pfn] = idx + k;
  }
  rmapAddOwned(mm, head, HPAGE_PMD_NR); // the allocation's references become the mappings'

  mm.machine.stats.thpAlloc.value++;
  mm.sim.charge(mm.sim.costs.cpuPageZeroNs * HPAGE_PMD_NR);
  const w = vma.flags & VM_WRITE ? PTE_W | PTE_DIRTY : 0;
  setEntry(pmd, mi, head, PRESENT_RY | w);
}

/** do_huge_pmd_wp_page(): reuse an exclusive THP, replace the huge zero page, else split (-1). */
export async function doHugePmdWpPage(
  mm: Mm,
  vma: Vma,
  haddr: number,
  pmd: PmdTable,
  mi: number,
): Promise<number> {
  const p = mm.phys;
  const head = pmd.val[mi]!;
  if (head === HUGE_ZERO_PFN) {
    const nh = p.allocFolio(mm.node, 9, PG.anon | PG.anonExclusive);
    if (nh >= 0) {
      const r = await invStart(mm, MmuNotifyEvent.CLEAR, haddr, haddr + PMD_SIZE);
      if (pmd.val[mi] === HUGE_ZERO_PFN && pmd.tables[mi] === null && pmd.flags[mi] !== 0) {
        setEntry(pmd, mi, 0, 0);
        installThp(mm, vma, haddr, nh, pmd, mi);
        mm.machine.stats.cow.value++;
        flushTlb(mm);
      } else {
        for (let k = 0; k < HPAGE_PMD_NR; k++) p.putPage(nh + k);
      }
      await invEnd(mm, r);
      return 0;
    }
    await splitHugePmd(mm, vma, haddr);
    return -1;
  }
  let exclusive = true;
  for (let k = 0; k < HPAGE_PMD_NR && exclusive; k++) {
    if (p.mapcount[head + k] !== 1 || p.refcount[head + k] !== 1) exclusive = false;
  }
  if (exclusive) {
    setEntryFlags(pmd, mi, pmd.flags[mi]! | PTE_W | PTE_DIRTY | PTE_YOUNG);
    return 0;
  }
  await splitHugePmd(mm, vma, haddr);
  return -1;
}

/**
 * Models __split_huge_pmd(): turns the PMD leaf mapping `haddr` into a PTE table (a THP's
 * subpages, the huge zero page's small zero pages, 512 migration or device-private entries),
 * inside a CLEAR invalidation of the 2 MiB range. The folio itself stays compound.
 */
export async function splitHugePmd(mm: Mm, vma: Vma, addr: number): Promise<void> {
  const haddr = alignDown(addr, PMD_SIZE);
  const pmd0 = mm.pt.pmdTable(haddr, false);
  const mi = Math.floor(haddr / PMD_SIZE) & 511;
  if (pmd0 === null || pmd0.tables[mi] !== null || pmd0.flags[mi] === 0) return;
  if (vma.flags & VM_HUGETLB) return;
  const r = await invStart(mm, MmuNotifyEvent.CLEAR, haddr, haddr + PMD_SIZE);
  const pmd = mm.pt.pmdTable(haddr, false);
  if (pmd !== null && pmd.tables[mi] === null && pmd.flags[mi] !== 0) {
    const f = pmd.flags[mi]!;
    const v = pmd.val[mi]!;
    const t = new PteTable();
    const type = f & PTE_TYPE_MASK;
    if (v === HUGE_ZERO_PFN && type === PTE_PRESENT) {
      for (let k = 0; k < HPAGE_PMD_NR; k++) setEntry(t, k, ZERO_PFN, f & ~PTE_W);
    } else {
      for (let k = 0; k < HPAGE_PMD_NR; k++) setEntry(t, k, v + k, f);
    }
    setEntry(pmd, mi, 0, 0);
    mm.pt.installPteTable(pmd, mi, t);
    mm.machine.stats.thpSplit.value++;
    flushTlb(mm);
  }
  await invEnd(mm, r);
}

/** Splits the PMD leaves that straddle `start` or `end` inside `vma` (vma_adjust_trans_huge). */
export async function splitBoundaries(mm: Mm, vma: Vma, start: number, end: number): Promise<void> {
  if (vma.flags & VM_HUGETLB) return;
  if (start % PMD_SIZE !== 0 && start > vma.start) await splitHugePmd(mm, vma, start);
  if (end % PMD_SIZE !== 0 && end < vma.end) await splitHugePmd(mm, vma, end);
}

/** MADV_COLLAPSE on [s, e) of an anonymous VMA: each covered 2 MiB block becomes one THP. */
export async function collapseRange(mm: Mm, vma: Vma, s: number, e: number): Promise<number> {
  if (vma.file !== null || vma.flags & (VM_HUGETLB | VM_PFNMAP | VM_MIXEDMAP | VM_IO | VM_NOHUGEPAGE)) {
    return -Errno.EINVAL;
  }
  let result = 0;
  const p = mm.phys;
  for (let h = Math.ceil(s / PMD_SIZE) * PMD_SIZE; h + PMD_SIZE <= e; h += PMD_SIZE) {
    if (h < vma.start || h + PMD_SIZE > vma.end) continue;
    const pmd0 = mm.pt.pmdTable(h, true)!;
    const mi = Math.floor(h / PMD_SIZE) & 511;
    if (pmd0.tables[mi] === null && pmd0.flags[mi] !== 0) {
      if (pmd0.val[mi] !== HUGE_ZERO_PFN) continue; // already a THP
    }
    const head = p.allocFolio(mm.node, 9, PG.anon | PG.anonExclusive);
    if (head < 0) {
      result = -Errno.ENOMEM;
      continue;
    }
    const r = await invStart(mm, MmuNotifyEvent.CLEAR, h, h + PMD_SIZE);
    const pmd = mm.pt.pmdTable(h, true)!;
    const t = pmd.tables[mi]!;
    let ok = true;
    if (t !== null) {
      for (let k = 0; k < HPAGE_PMD_NR && ok; k++) {
        const ty = t.flags[k]! & PTE_TYPE_MASK;
        if (ty !== PTE_NONE && ty !== PTE_PRESENT) ok = false;
        else if (ty === PTE_PRESENT && p.flags[t.val[k]!]! & (PG.locked | PG.device)) ok = false;
      }
    }
    if (!ok) {
      for (let k = 0; k < HPAGE_PMD_NR; k++) p.putPage(head + k);
      result = -Errno.EAGAIN;
    } else {
      if (t !== null) {
        for (let k = 0; k < HPAGE_PMD_NR; k++) {
          const f = t.flags[k]!;
          if (f === 0) continue;
          const v = t.val[k]!;
          if (!p.isZeroPfn(v)) {
            p.copyPage(head + k, v);
            mm.sim.charge(mm.sim.costs.cpuPageCopyNs);
          }
          releaseEntry(mm, v, f);
        }
        mm.pt.freePteTable(pmd, mi);
      } else if (pmd.flags[mi] !== 0) setEntry(pmd, mi, 0, 0); // the huge zero page
      installThp(mm, vma, h, head, pmd, mi);
      mm.machine.stats.thpCollapse.value++;
      flushTlb(mm);
    }
    await invEnd(mm, r);
  }
  return result;
}

/**
 * PMD-level variant of {@link installMigrationEntry} for migrate_vma with
 * MIGRATE_VMA_SELECT_COMPOUND (caller holds the mmap lock, has issued the MIGRATE invalidation
 * and locked the head page): the PMD leaf at `addr`'s 2 MiB block — a THP mapped only here,
 * or a device-private THP — becomes a PMD migration entry (writable iff the leaf was). The 512
 * mapping references are transferred to the caller and the mapcounts dropped. Returns the head
 * pfn, or -1 (no leaf, the huge zero page, or a THP shared with another mapping: split it
 * with {@link splitHugePmd} and migrate 4 KiB pages, as Linux does).
 */
export function installPmdMigrationEntry(mm: Mm, addr: number): number {
  const haddr = alignDown(addr, PMD_SIZE);
  const pmd = mm.pt.pmdTable(haddr, false);
  if (pmd === null) return -1;
  const mi = Math.floor(haddr / PMD_SIZE) & 511;
  const f = pmd.flags[mi]!;
  const ty = f & PTE_TYPE_MASK;
  if (pmd.tables[mi] !== null || (ty !== PTE_PRESENT && ty !== PTE_DEVICE_PRIVATE)) return -1;
  const head = pmd.val[mi]!;
  const p = mm.phys;
  if (p.isZeroPfn(head) || p.flags[head]! & PG.hugetlb) return -1;
  for (let k = 0; k < HPAGE_PMD_NR; k++) if (p.mapcount[head + k] !== 1) return -1;
  if (f & PTE_DIRTY) for (let k = 0; k < HPAGE_PMD_NR; k++) p.flags[head + k] = p.flags[head + k]! | PG.dirty;
  rmapRemoveKeepRef(mm, head, HPAGE_PMD_NR); // the 512 mapping references go to the caller
  setEntryFlags(pmd, mi, PTE_MIGRATION | (f & (PTE_W | PTE_DIRTY)));
  if (ty === PTE_PRESENT) flushTlb(mm);
  return head;
}

/**
 * PMD-level remove_migration_pmd(): the PMD migration entry at `addr`'s 2 MiB block becomes a
 * mapping of the folio `newHead` (a device-private PMD entry if it is device memory, else a
 * present THP leaf), writable iff the entry was. Each of the 512 pages takes a reference and a
 * mapcount. Pass the old head to restore. Returns false if there is no PMD migration entry.
 * Copy the rmap metadata first (e.g. {@link migratePageMetadata} per page).
 */
export function removeMigrationPmd(mm: Mm, addr: number, newHead: number): boolean {
  const haddr = alignDown(addr, PMD_SIZE);
  const pmd = mm.pt.pmdTable(haddr, false);
  if (pmd === null) return false;
  const mi = Math.floor(haddr / PMD_SIZE) & 511;
  const f = pmd.flags[mi]!;
  if (pmd.tables[mi] !== null || (f & PTE_TYPE_MASK) !== PTE_MIGRATION) return false;
  const vma = mm.vmas.lookup(haddr);
  const p = mm.phys;
  rmapAdd(mm, newHead, HPAGE_PMD_NR);
  setEntry(
    pmd,
    mi,
    newHead,
    p.isDevicePrivatePage(newHead)
      ? PTE_DEVICE_PRIVATE | (f & PTE_W)
      : (vma === null ? PTE_PRESENT : baseBits(vma)) | PTE_YOUNG | (f & (PTE_W | PTE_DIRTY)),
  );
  return true;
}

/**
 * PMD-level migrate_vma_insert_page() (migrate_vma_insert_huge_pmd_page): maps the 2 MiB
 * folio `head` at the PMD-aligned `addr` of the anonymous `vma` where the block is empty (no
 * entries) or maps the huge zero page — a device-private PMD entry for device memory, else a
 * THP leaf — writable iff the VMA has VM_WRITE. Every page takes a reference and a mapcount
 * and gets the VMA's anon rmap metadata. Returns false if the block is populated otherwise.
 */
export function migrateVmaInsertPmd(mm: Mm, vma: Vma, addr: number, head: number): boolean {
  if (addr % PMD_SIZE !== 0 || addr < vma.start || addr + PMD_SIZE > vma.end) return false;
  if (vma.file !== null || !(vma.flags & VM_ACCESS_FLAGS)) return false;
  const pmd = mm.pt.pmdTable(addr, true)!;
  const mi = Math.floor(addr / PMD_SIZE) & 511;
  const t = pmd.tables[mi]!;
  const f = pmd.flags[mi]!;
  if (t !== null) {
    if (t.used !== 0) return false;
    mm.pt.freePteTable(pmd, mi);
  } else if (f !== 0 && pmd.val[mi] !== HUGE_ZERO_PFN) return false;
  const p = mm.phys;
  for (let k = 0; k < HPAGE_PMD_NR; k++) setAnonRmap(mm, head + k, vma, addr + k * PAGE_SIZE);
  rmapAdd(mm, head, HPAGE_PMD_NR);
  const w = vma.flags & VM_WRITE ? PTE_W : 0;
  if (p.isDevicePrivatePage(head)) setEntry(pmd, mi, head, PTE_DEVICE_PRIVATE | w);
  else setEntry(pmd, mi, head, PRESENT_RY | (w ? PTE_W | PTE_DIRTY : 0));
  if (f !== 0) flushTlb(mm);
  return true;
}
