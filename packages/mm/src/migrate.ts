/**
 * Page migration (mm/migrate.c): migration entries, remove_migration_ptes, move_pages(2),
 * and the PTE-level primitives migrate_vma builds on (migrate_vma_insert_page).
 *
 * @module
 */
import { ArgumentError, Errno } from '@hmmkit/sim';
import { alignDown, PAGE_SIZE, PMD_SIZE, VM_ACCESS_FLAGS, VM_WRITE } from './constants.ts';
import { inodeById } from './file.ts';
import { splitHugePmd } from './huge-memory.ts';
import { flushTlb, flushTlbDeferred } from './invalidate.ts';
import type { Machine } from './machine.ts';
import type { Mm } from './mm.ts';
import {
  PRESENT_RY,
  PTE_DEVICE_PRIVATE,
  PTE_DIRTY,
  PTE_MIGRATION,
  PTE_PRESENT,
  PTE_R,
  PTE_SPECIAL,
  PTE_TYPE_MASK,
  PTE_W,
  PTE_YOUNG,
  setEntry,
  setEntryFlags,
} from './page-table.ts';
import { PG, ZERO_PFN } from './physmem.ts';
import { rmapAdd, rmapRemoveKeepRef, rmapWalkPfn, setAnonRmap } from './rmap.ts';
import type { Vma } from './vma.ts';

/**
 * For hmm's migrate_vma_collect (caller holds the mmap lock, has issued the MIGRATE
 * invalidation and locked the page): replaces the entry at `addr` (present normal page or
 * device-private entry) with a migration entry, writable iff the entry was, keeping dirty.
 * The mapping's page reference is transferred to the caller (put it after finalize) and the
 * mapcount dropped. Returns the pfn, or -1 if the entry is not of that kind.
 */
export function installMigrationEntry(mm: Mm, addr: number): number {
  const t = mm.pt.pteTable(addr, false);
  if (t === null) return -1;
  const i = Math.floor(addr / PAGE_SIZE) & 511;
  const f = t.flags[i]!;
  const ty = f & PTE_TYPE_MASK;
  const pfn = t.val[i]!;
  if (ty !== PTE_PRESENT && ty !== PTE_DEVICE_PRIVATE) return -1;
  if (f & PTE_SPECIAL || mm.phys.flags[pfn]! & PG.reserved) return -1;
  if (f & PTE_DIRTY) mm.phys.flags[pfn] = mm.phys.flags[pfn]! | PG.dirty;
  rmapRemoveKeepRef(mm, pfn); // the mapping's reference goes to the caller
  setEntryFlags(t, i, PTE_MIGRATION | (f & (PTE_W | PTE_DIRTY)));
  if (ty === PTE_PRESENT) flushTlbDeferred(mm, addr);
  return pfn;
}

/**
 * Models folio_migrate_mapping()'s metadata part: `dst` takes over `src`'s rmap identity
 * (anon family or file, index, anon/dirty flags), so rmap walks and remove_migration_ptes
 * find the new page.
 */
export function migratePageMetadata(mm: Mm, dst: number, src: number): void {
  const p = mm.phys;
  p.mapping[dst] = p.mapping[src]!;
  p.index[dst] = p.index[src]!;
  const keep = PG.anon | PG.file | PG.dirty | PG.anonExclusive;
  p.flags[dst] = (p.flags[dst]! & ~keep) | (p.flags[src]! & keep);
}

/**
 * Models migrate_vma_insert_page() (caller holds the mmap lock and has issued the MIGRATE
 * invalidation): maps `pfn` at `addr` of the anonymous `vma` where the entry is none or the
 * zero page — a device-private entry for a device-private page, else a present PTE —
 * writable iff the VMA has VM_WRITE. Takes a reference and a mapcount. Returns false if the
 * VMA is not anonymous or the entry is populated by something else.
 */
export function migrateVmaInsertPage(mm: Mm, vma: Vma, addr: number, pfn: number): boolean {
  if (vma.file !== null || !(vma.flags & VM_ACCESS_FLAGS)) return false;
  const p = mm.phys;
  const haddr = alignDown(addr, PMD_SIZE);
  const pmd = mm.pt.pmdTable(haddr, true)!;
  const mi = Math.floor(haddr / PMD_SIZE) & 511;
  if (pmd.tables[mi] === null && pmd.flags[mi] !== 0) return false; // huge zero page: caller splits
  const t = mm.pt.pteTable(addr, true)!;
  const i = Math.floor(addr / PAGE_SIZE) & 511;
  const f = t.flags[i]!;
  const old = t.val[i]!;
  if (f !== 0 && !((f & PTE_TYPE_MASK) === PTE_PRESENT && old === ZERO_PFN)) return false;
  setAnonRmap(mm, pfn, vma, addr);
  const w = vma.flags & VM_WRITE ? PTE_W : 0;
  rmapAdd(mm, pfn);
  if (p.isDevicePrivatePage(pfn)) setEntry(t, i, pfn, PTE_DEVICE_PRIVATE | w);
  else setEntry(t, i, pfn, PRESENT_RY | (w ? PTE_W | PTE_DIRTY : 0));
  if (f !== 0) flushTlb(mm);
  return true;
}

/**
 * Models move_pages(2) with MPOL_MF_MOVE (on this mm only): migrates each page at `pages[k]`
 * to `nodes[k]` (or, with `nodes` null, reports the node). `status[k]` gets the node or a
 * negative errno (-ENOENT: not present / zero page / ZONE_DEVICE page, -EFAULT: no VMA, -EBUSY: locked,
 * -EACCES: shared with another process (MPOL_MF_MOVE)). Each migration unmaps every mapping
 * (CLEAR invalidations), copies, and remaps. Returns 0.
 */
export async function movePages(
  mm: Mm,
  pages: readonly number[],
  nodes: readonly number[] | null,
  status: Int32Array,
): Promise<number> {
  const fn = 'Mm.movePages';
  if (status.length < pages.length)
    throw new ArgumentError(fn, 'status', 'must have room for every page', status.length);
  if (nodes !== null) {
    if (nodes.length !== pages.length) throw new ArgumentError(fn, 'nodes', 'must match pages', nodes.length);
    for (const n of nodes) {
      if (mm.phys.nodes[n]?.kind !== 'system') return -Errno.ENODEV;
    }
  }
  const p = mm.phys;
  await mm.mmapLock.read();
  try {
    for (let k = 0; k < pages.length; k++) {
      const addr = alignDown(pages[k]!, PAGE_SIZE);
      const vma = mm.vmas.lookup(addr);
      if (vma === null) {
        status[k] = -Errno.EFAULT;
        continue;
      }
      const e = mm.readEntry(addr);
      if ((e.flags & PTE_TYPE_MASK) !== PTE_PRESENT || p.isZeroPfn(e.val) || e.flags & PTE_SPECIAL) {
        status[k] = -Errno.ENOENT;
        continue;
      }
      let pfn = e.val;
      // add_page_for_migration() / do_pages_stat_array(): ZONE_DEVICE pages (present here only
      // when device-coherent) are neither reported nor moved.
      if (p.pgmapId[pfn] !== 0) {
        status[k] = -Errno.ENOENT;
        continue;
      }
      if (nodes === null) {
        status[k] = p.node[pfn]!;
        continue;
      }
      const target = nodes[k]!;
      if (p.node[pfn] === target) {
        status[k] = target;
        continue;
      }
      if (p.mapcount[pfn]! > 1) {
        status[k] = -Errno.EACCES;
        continue;
      }
      if (e.order !== 0) {
        await splitHugePmd(mm, vma, addr);
        pfn = mm.readEntry(addr).val;
      }
      status[k] = await migratePage(mm, pfn, target);
    }
    return 0;
  } finally {
    mm.mmapLock.readUnlock();
  }
}

/** migrate_pages() of one small page to `node`: the new node, or a negative errno. */
export async function migratePage(mm: Mm, pfn: number, node: number): Promise<number> {
  const p = mm.phys;
  if (!p.trylockPage(pfn)) return -Errno.EBUSY;
  p.getPage(pfn);
  const dst = p.allocPage(node, 0);
  if (dst < 0) {
    p.unlockPage(pfn);
    p.putPage(pfn);
    return -Errno.ENOMEM;
  }
  await mm.tryToMigrate(pfn);
  const extra = p.refcount[pfn]! - 1; // page-cache reference of a file page
  if (p.mapcount[pfn] !== 0 || extra > (p.flags[pfn]! & PG.file ? 1 : 0)) {
    mm.removeMigrationPtes(pfn, pfn);
    p.unlockPage(pfn);
    p.putPage(pfn);
    p.putPage(dst);
    return -Errno.EBUSY;
  }
  p.copyPage(dst, pfn);
  mm.sim.charge(mm.sim.costs.cpuPageCopyNs);
  migratePageMetadata(mm, dst, pfn);
  if (p.flags[pfn]! & PG.file) {
    const ino = inodeById(p.mapping[pfn]!);
    if (ino !== null) {
      ino.cache[p.index[pfn]!] = dst;
      p.refcount[dst]!++;
      p.putPage(pfn);
    }
  }
  mm.removeMigrationPtes(pfn, dst);
  p.putPage(dst); // the allocation reference
  p.unlockPage(pfn);
  p.putPage(pfn);
  mm.machine.stats.numaMigrated.value++;
  return node;
}

/**
 * Models remove_migration_ptes(old, new) (also what {@link Mm.removeMigrationPtes} runs): every
 * PTE migration entry naming `oldPfn`, in every mm, becomes a mapping of `newPfn`. Returns the
 * number of entries replaced.
 */
export function removeMigrationPtesPfn(machine: Machine, oldPfn: number, newPfn: number): number {
  const p = machine.phys;
  const devPriv = p.isDevicePrivatePage(newPfn);
  let n = 0;
  for (const hit of rmapWalkPfn(machine, oldPfn, true)) {
    const t = hit.mm.pt.pteTable(hit.address, false)!;
    const i = Math.floor(hit.address / PAGE_SIZE) & 511;
    const f = t.flags[i]!;
    if ((f & PTE_TYPE_MASK) !== PTE_MIGRATION) continue;
    setEntry(
      t,
      i,
      newPfn,
      devPriv
        ? PTE_DEVICE_PRIVATE | (f & PTE_W)
        : (hit.vma.flags & VM_ACCESS_FLAGS ? PTE_PRESENT | PTE_R : PTE_PRESENT) |
            PTE_YOUNG |
            (f & (PTE_W | PTE_DIRTY)),
    );
    rmapAdd(hit.mm, newPfn);
    n++;
  }
  return n;
}
