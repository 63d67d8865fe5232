/**
 * Reverse mapping and the per-mapping accounting primitives (mm/rmap.c): anon_vma_prepare,
 * the add/remove-rmap + refcount + RSS edits every mapping change goes through, rmap_walk and
 * try_to_migrate.
 *
 * @module
 */
import { MmuNotifyEvent } from '@hmmkit/notifier';
import { alignDown, PAGE_SIZE, PMD_SIZE } from './constants.ts';
import { inodeById } from './file.ts';
import { splitHugePmd } from './huge-memory.ts';
import { flushTlb, invEnd, invStart } from './invalidate.ts';
import type { Machine } from './machine.ts';
import type { Mm } from './mm.ts';
import {
  PTE_DEVICE_EXCLUSIVE,
  PTE_DEVICE_PRIVATE,
  PTE_DIRTY,
  PTE_MIGRATION,
  PTE_NONE,
  PTE_PRESENT,
  PTE_SPECIAL,
  PTE_SWAP,
  PTE_TYPE_MASK,
  PTE_W,
  setEntryFlags,
} from './page-table.ts';
import { PG } from './physmem.ts';
import type { AnonVma, Vma } from './vma.ts';

/** Which pages a rmap walk found: one mapping of a page. */
export interface RmapHit {
  readonly mm: Mm;
  readonly vma: Vma;
  readonly address: number;
  /** True when the page is mapped by a PMD leaf (a THP) rather than a PTE. */
  readonly huge: boolean;
}

/**
 * The rmap/RSS primitives every mapping change goes through (folio_add_*_rmap, folio_remove_rmap,
 * folio_get/put, add/dec_mm_counter). `nr` consecutive pages from `pfn`.
 */

/** A new mapping of existing pages: a reference and a mapcount each, RSS + nr. */
export function rmapAdd(mm: Mm, pfn: number, nr = 1): void {
  const p = mm.phys;
  for (let k = 0; k < nr; k++) {
    p.refcount[pfn + k]!++;
    p.mapcount[pfn + k]!++;
  }
  mm.rss += nr;
}

/**
 * A new mapping that takes over the caller's reference (a fresh or swapped-in page): mapcount + 1
 * each, RSS + nr.
 */
export function rmapAddOwned(mm: Mm, pfn: number, nr = 1): void {
  const p = mm.phys;
  for (let k = 0; k < nr; k++) p.mapcount[pfn + k]!++;
  mm.rss += nr;
}

/** A mapping goes away: mapcount − 1 and the mapping's reference dropped each, RSS − nr. */
export function rmapRemove(mm: Mm, pfn: number, nr = 1): void {
  const p = mm.phys;
  for (let k = 0; k < nr; k++) {
    p.mapcount[pfn + k]!--;
    p.putPage(pfn + k);
  }
  mm.rss -= nr;
}

/**
 * A mapping goes away but its reference moves to the caller (a migration entry): mapcount − 1 each,
 * RSS − nr.
 */
export function rmapRemoveKeepRef(mm: Mm, pfn: number, nr = 1): void {
  const p = mm.phys;
  for (let k = 0; k < nr; k++) p.mapcount[pfn + k]!--;
  mm.rss -= nr;
}

/** page_add_*_rmap + get_page for an entry that maps `pfn` (present or device-private). */
export function mapRef(mm: Mm, pfn: number): void {
  if (mm.phys.flags[pfn]! & PG.reserved) return;
  rmapAdd(mm, pfn);
}

/** Drops what one entry (val, flags) holds: mapcount + ref, a swap reference, nothing for migration. */
export function releaseEntry(mm: Mm, val: number, flags: number): void {
  const t = flags & PTE_TYPE_MASK;
  const p = mm.phys;
  if (t === PTE_PRESENT || t === PTE_DEVICE_PRIVATE || t === PTE_DEVICE_EXCLUSIVE) {
    if (flags & PTE_SPECIAL) {
      if (!p.isZeroPfn(val) && !(p.flags[val]! & PG.reserved) && p.mapcount[val]! > 0) {
        rmapRemove(mm, val);
      }
      return;
    }
    if (p.flags[val]! & PG.reserved) return;
    if (flags & PTE_DIRTY) p.flags[val] = p.flags[val]! | PG.dirty;
    rmapRemove(mm, val);
  } else if (t === PTE_SWAP) {
    mm.swapEntries--;
    p.swap.free(val);
  }
}

/** Models anon_vma_prepare(). */
export function anonVmaPrepare(mm: Mm, vma: Vma): AnonVma {
  if (vma.anonVma === null) {
    const prev = mm.vmas.findPrev(vma.start);
    // reuse a mergeable neighbour's anon_vma as find_mergeable_anon_vma does
    const a =
      prev !== null && prev.end === vma.start && prev.anonVma !== null && prev.file === vma.file
        ? prev.anonVma
        : mm.machine.newAnonVma();
    a.mms.add(mm);
    vma.anonVma = a;
  }
  return vma.anonVma;
}

/** Sets the rmap metadata of a new anonymous page mapped at `addr` of `vma`. */
export function setAnonRmap(mm: Mm, pfn: number, vma: Vma, addr: number): void {
  const a = anonVmaPrepare(mm, vma);
  const p = mm.phys;
  p.flags[pfn] = (p.flags[pfn]! & ~PG.file) | PG.anon;
  p.mapping[pfn] = a.id;
  p.index[pfn] = vma.linearPageIndex(addr);
}

/** Drops a huge leaf's references (every subpage). */
export function releaseHuge(mm: Mm, head: number, f: number, nr: number): void {
  const p = mm.phys;
  const t = f & PTE_TYPE_MASK;
  if (t === PTE_MIGRATION) return;
  if (p.flags[head]! & PG.reserved) return;
  if (f & PTE_DIRTY) for (let k = 0; k < nr; k++) p.flags[head + k] = p.flags[head + k]! | PG.dirty;
  rmapRemove(mm, head, nr);
}

/**
 * Models rmap_walk() with no VA in hand (also what {@link Mm.rmapWalk} runs): every
 * (mm, vma, address) of the machine whose entry maps `pfn` (a present, device-private or
 * device-exclusive PTE, or a present / device-private PMD leaf with `huge` set; or, with
 * `migrationEntries`, only the PTE migration entries naming it), found through page->mapping and
 * page->index: the anon_vma family's mms, or the shmem inode's i_mmap.
 */
export function rmapWalkPfn(machine: Machine, pfn: number, migrationEntries = false): RmapHit[] {
  const p = machine.phys;
  const id = p.mapping[pfn]!;
  const idx = p.index[pfn]!;
  const out: RmapHit[] = [];
  if (id > 0) {
    const fam = machine.anonVmaById(id);
    if (fam === null) return out;
    for (const mm of fam.mms) {
      for (const leaf of mm.vmas.leafArrays) {
        for (let i = 0; i < leaf.length; i++) {
          const v = leaf[i]!;
          if (v.anonVma === fam) rmapCheckVma(mm, v, pfn, idx, migrationEntries, out);
        }
      }
    }
  } else if (id < 0) {
    const ino = inodeById(id);
    if (ino === null) return out;
    for (const v of ino.mappings) rmapCheckVma(v.mm, v, pfn, idx, migrationEntries, out);
  }
  return out;
}

/**
 * One VMA of {@link rmapWalkPfn}'s walk (page_vma_mapped_walk): appends the mapping of `pfn` at
 * page offset `idx` in `v`, if any. A module function, not a closure: the walk runs per page.
 */
function rmapCheckVma(
  mm: Mm,
  v: Vma,
  pfn: number,
  idx: number,
  migrationEntries: boolean,
  out: RmapHit[],
): void {
  if (idx < v.pgoff || idx >= v.pgoff + v.pages) return;
  const addr = v.start + (idx - v.pgoff) * PAGE_SIZE;
  const t = mm.pt.pteTable(addr, false);
  if (t === null) {
    if (migrationEntries) return;
    const pmd = mm.pt.pmdTable(addr, false);
    if (pmd === null) return;
    const mi = Math.floor(addr / PMD_SIZE) & 511;
    const ty = pmd.flags[mi]! & PTE_TYPE_MASK;
    const off = (addr - alignDown(addr, PMD_SIZE)) / PAGE_SIZE;
    if ((ty === PTE_PRESENT || ty === PTE_DEVICE_PRIVATE) && pmd.val[mi]! + off === pfn) {
      out.push({ mm, vma: v, address: addr, huge: true });
    }
    return;
  }
  const i = Math.floor(addr / PAGE_SIZE) & 511;
  const ty = t.flags[i]! & PTE_TYPE_MASK;
  if (t.val[i] !== pfn || ty === PTE_NONE || ty === PTE_SWAP) return;
  if ((ty === PTE_MIGRATION) !== migrationEntries) return;
  out.push({ mm, vma: v, address: addr, huge: false });
}

/**
 * Models try_to_migrate() (also what {@link Mm.tryToMigrate} runs; usable without a VA, e.g.
 * for migrate_device_range): every mapping of `pfn` in every mm becomes a migration entry, each
 * inside a CLEAR invalidation of that page of that mm; the mappings' references are dropped.
 * PMD mappings are split first (TTU_SPLIT_HUGE_PMD). Returns the remaining mapcount.
 */
export async function tryToMigratePfn(machine: Machine, pfn: number): Promise<number> {
  const p = machine.phys;
  for (const hit of rmapWalkPfn(machine, pfn)) {
    const mm = hit.mm;
    if (hit.huge) await splitHugePmd(mm, hit.vma, hit.address); // TTU_SPLIT_HUGE_PMD
    const r = await invStart(mm, MmuNotifyEvent.CLEAR, hit.address, hit.address + PAGE_SIZE);
    const t = mm.pt.pteTable(hit.address, false);
    const i = Math.floor(hit.address / PAGE_SIZE) & 511;
    if (t !== null && t.val[i] === pfn) {
      const f = t.flags[i]!;
      const ty = f & PTE_TYPE_MASK;
      if (ty === PTE_PRESENT || ty === PTE_DEVICE_PRIVATE || ty === PTE_DEVICE_EXCLUSIVE) {
        setEntryFlags(t, i, PTE_MIGRATION | (f & (PTE_W | PTE_DIRTY)));
        rmapRemove(mm, pfn);
        if (ty === PTE_PRESENT) flushTlb(mm);
      }
    }
    await invEnd(mm, r);
  }
  return p.mapcount[pfn]!;
}
