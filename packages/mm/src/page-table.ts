/**
 * x86-64 4-level page tables (PGD → PUD → PMD → PTE, 48-bit VA) with the hot data in typed
 * arrays: every 512-entry table holds a Float64Array of values (a pfn, a swap slot, a device pfn)
 * and a parallel Uint8Array of entry bits (type + R/W/dirty/young/special). PMD and PUD tables
 * hold either a pointer to the next-level table or a huge leaf (2 MiB THP / hugetlb, 1 GiB
 * hugetlb) in the same two arrays.
 *
 * Entry bits (a byte): bits 0-2 are the type ({@link PTE_NONE}, {@link PTE_PRESENT},
 * {@link PTE_SWAP}, {@link PTE_MIGRATION}, {@link PTE_DEVICE_PRIVATE},
 * {@link PTE_DEVICE_EXCLUSIVE}); then {@link PTE_R} (user-accessible; a present entry without it
 * is protnone), {@link PTE_W} (writable; for migration, device-private and device-exclusive
 * entries the "writable" flavour of the swap entry), {@link PTE_DIRTY}, {@link PTE_YOUNG},
 * {@link PTE_SPECIAL}. The value is the pfn for present, migration, device-private (the device
 * pfn) and device-exclusive (the original pfn) entries, and the swap slot for swap entries.
 *
 * The walk API ({@link PageTable.walkUnit} with a reusable {@link PageWalk} cursor) is what
 * `@hmmkit/hmm` uses for hmm_range_fault: one call per PMD-sized unit, no allocation.
 *
 * @module
 */
import { PTRS_PER_TABLE } from './constants.ts';

/** Entry type: none (pte_none). */
export const PTE_NONE = 0;
/** Entry type: present (pte_present). */
export const PTE_PRESENT = 1;
/** Entry type: swap entry; the value is the swap slot. */
export const PTE_SWAP = 2;
/** Entry type: migration entry (is_migration_entry); the value is the pfn under migration. */
export const PTE_MIGRATION = 3;
/** Entry type: device-private entry (is_device_private_entry); the value is the device pfn. */
export const PTE_DEVICE_PRIVATE = 4;
/** Entry type: device-exclusive entry (is_device_exclusive_entry); the value is the original pfn. */
export const PTE_DEVICE_EXCLUSIVE = 5;
/** Entry type: hardware-poison marker (never created by the simulation; hmm returns -EFAULT). */
export const PTE_HWPOISON = 6;
/** Mask of the type bits. */
export const PTE_TYPE_MASK = 7;
/** Present entry: user-accessible (clear = protnone). */
export const PTE_R = 0x08;
/** Writable (present) / writable flavour (migration, device-private, device-exclusive). */
export const PTE_W = 0x10;
/** pte_dirty. */
export const PTE_DIRTY = 0x20;
/** pte_young. */
export const PTE_YOUNG = 0x40;
/** pte_special: no struct page behind it (VM_PFNMAP/VM_MIXEDMAP inserts of raw pfns). */
export const PTE_SPECIAL = 0x80;

/** Entry type of `flags` (one of PTE_NONE..PTE_HWPOISON). */
export function pteType(flags: number): number {
  return flags & PTE_TYPE_MASK;
}
/** pte_none(). */
export function pteIsNone(flags: number): boolean {
  return flags === 0;
}
/** pte_present(): present and (unless protnone) accessible. */
export function pteIsPresent(flags: number): boolean {
  return (flags & PTE_TYPE_MASK) === PTE_PRESENT;
}
/** pte_protnone(): present but not accessible (PROT_NONE). */
export function pteIsProtnone(flags: number): boolean {
  return (flags & (PTE_TYPE_MASK | PTE_R)) === PTE_PRESENT;
}
/** pte_write() for present entries, is_writable_*_entry() for the others. */
export function pteIsWritable(flags: number): boolean {
  return (flags & PTE_W) !== 0;
}
/** pte_special(). */
export function pteIsSpecial(flags: number): boolean {
  return (flags & PTE_SPECIAL) !== 0;
}
/** A swap entry (non_swap_entry() false). */
export function pteIsSwap(flags: number): boolean {
  return (flags & PTE_TYPE_MASK) === PTE_SWAP;
}
/** is_migration_entry(). */
export function pteIsMigration(flags: number): boolean {
  return (flags & PTE_TYPE_MASK) === PTE_MIGRATION;
}
/** is_device_private_entry(). */
export function pteIsDevicePrivate(flags: number): boolean {
  return (flags & PTE_TYPE_MASK) === PTE_DEVICE_PRIVATE;
}
/** is_device_exclusive_entry(). */
export function pteIsDeviceExclusive(flags: number): boolean {
  return (flags & PTE_TYPE_MASK) === PTE_DEVICE_EXCLUSIVE;
}
/** Any non-present, non-none entry (is_swap_pte()). */
export function pteIsSwapLike(flags: number): boolean {
  const t = flags & PTE_TYPE_MASK;
  return t !== PTE_NONE && t !== PTE_PRESENT;
}

/** A 512-entry last-level table (a PTE page). */
export class PteTable {
  /** pfn / swap slot / device pfn per entry. */
  readonly val = new Float64Array(PTRS_PER_TABLE);
  /** Entry bits per entry (0 = pte_none). */
  readonly flags = new Uint8Array(PTRS_PER_TABLE);
  /** Number of non-none entries. */
  used = 0;
}

/** A 512-entry PMD table: each slot is none, a PTE table, or a huge (2 MiB) leaf. */
export class PmdTable {
  /** Next-level tables (null where the slot is none or a leaf). */
  readonly tables: (PteTable | null)[] = new Array<PteTable | null>(PTRS_PER_TABLE).fill(null);
  /** Leaf value (head pfn / device pfn / migration pfn) where the slot is a huge leaf. */
  readonly val = new Float64Array(PTRS_PER_TABLE);
  /** Leaf bits where the slot is a huge leaf (0 otherwise). */
  readonly flags = new Uint8Array(PTRS_PER_TABLE);
  /** Number of non-none slots. */
  used = 0;
}

/** A 512-entry PUD table: each slot is none, a PMD table, or a huge (1 GiB) leaf. */
export class PudTable {
  /** Next-level tables. */
  readonly tables: (PmdTable | null)[] = new Array<PmdTable | null>(PTRS_PER_TABLE).fill(null);
  /** Leaf value where the slot is a huge leaf. */
  readonly val = new Float64Array(PTRS_PER_TABLE);
  /** Leaf bits where the slot is a huge leaf. */
  readonly flags = new Uint8Array(PTRS_PER_TABLE);
  /** Number of non-none slots. */
  used = 0;
}

/** Sets entry `i` of a leaf table, keeping its `used` count. */
export function setEntry(t: PteTable | PmdTable | PudTable, i: number, val: number, flags: number): void {
  const old = t.flags[i]!;
  if (old === 0) {
    if (flags !== 0) t.used++;
  } else if (flags === 0) t.used--;
  t.val[i] = val;
  t.flags[i] = flags;
}

/**
 * Changes the bits of populated entry `i` (its value stays; `flags` must not be 0 — clear an
 * entry with {@link setEntry}(t, i, 0, 0)). Every PTE/PMD/PUD bit change goes through here or
 * {@link setEntry}.
 */
export function setEntryFlags(t: PteTable | PmdTable | PudTable, i: number, flags: number): void {
  t.flags[i] = flags;
}

/** Walk unit kinds reported by {@link PageTable.walkUnit}. */
export const WALK_HOLE = 0;
/** A populated PMD slot: a PTE table. */
export const WALK_PTE = 1;
/** A huge PMD leaf (2 MiB): THP, hugetlb, PMD migration entry or device-private THP. */
export const WALK_PMD_LEAF = 2;
/** A huge PUD leaf (1 GiB hugetlb). */
export const WALK_PUD_LEAF = 3;

/**
 * A reusable cursor filled by {@link PageTable.walkUnit}. For WALK_PTE, page `addr` is entry
 * `index + (addr - start) / PAGE_SIZE` of `pte`; for huge leaves `val`/`flags` describe the
 * leaf that starts at `leafStart` (so page `addr` has pfn `val + (addr - leafStart) / 4096`).
 */
export class PageWalk {
  /** WALK_HOLE, WALK_PTE, WALK_PMD_LEAF or WALK_PUD_LEAF. */
  kind = WALK_HOLE;
  /** First address of the unit (the address asked for). */
  start = 0;
  /** End of the unit (exclusive): the end of the PMD/PUD block or hole, clipped to the walk end. */
  end = 0;
  /** The PTE table (WALK_PTE), else null. */
  pte: PteTable | null = null;
  /** Index in `pte` of the page at `start` (WALK_PTE). */
  index = 0;
  /** The PMD table holding this unit's slot (WALK_PTE / WALK_PMD_LEAF), else null. */
  pmd: PmdTable | null = null;
  /** Slot index in `pmd` (or in the PUD table for WALK_PUD_LEAF). */
  slot = 0;
  /** Leaf value (huge leaves). */
  val = 0;
  /** Leaf bits (huge leaves). */
  flags = 0;
  /** Address where the huge leaf starts. */
  leafStart = 0;
  /** Mapping order: 0, 9 (PMD) or 18 (PUD). */
  order = 0;
}

const PGD_SPAN = 2 ** 39;
const PUD_SPAN = 2 ** 30;
const PMD_SPAN = 2 ** 21;
const PGD_ENTRIES = 256;

/** The page tables of one mm (mm->pgd). */
export class PageTable {
  /** The user half of the PGD (256 entries cover 2^47 bytes). */
  readonly pgd: (PudTable | null)[] = new Array<PudTable | null>(PGD_ENTRIES).fill(null);
  /** Page-table pages allocated (PUD + PMD + PTE tables), like mm->pgtables_bytes / 4096. */
  tables = 0;

  /** The PUD table covering `addr`, allocating it when `alloc`. */
  pudTable(addr: number, alloc: boolean): PudTable | null {
    const gi = Math.floor(addr / PGD_SPAN);
    let t = this.pgd[gi] ?? null;
    if (t === null && alloc) {
      t = new PudTable();
      this.pgd[gi] = t;
      this.tables++;
    }
    return t;
  }

  /**
   * The PMD table covering `addr`, allocating levels when `alloc`. Null when absent, or when the
   * PUD slot is a huge leaf.
   */
  pmdTable(addr: number, alloc: boolean): PmdTable | null {
    const pud = this.pudTable(addr, alloc);
    if (pud === null) return null;
    const i = Math.floor(addr / PUD_SPAN) & 511;
    let t = pud.tables[i]!;
    if (t === null) {
      if (!alloc || pud.flags[i] !== 0) return null;
      t = new PmdTable();
      pud.tables[i] = t;
      pud.used++;
      this.tables++;
    }
    return t;
  }

  /**
   * The PTE table covering `addr` (pte_offset_map), allocating levels when `alloc`
   * (pte_alloc). Null when absent, or when a huge leaf maps the address.
   */
  pteTable(addr: number, alloc: boolean): PteTable | null {
    const pmd = this.pmdTable(addr, alloc);
    if (pmd === null) return null;
    const i = Math.floor(addr / PMD_SPAN) & 511;
    let t = pmd.tables[i]!;
    if (t === null) {
      if (!alloc || pmd.flags[i] !== 0) return null;
      t = new PteTable();
      pmd.tables[i] = t;
      pmd.used++;
      this.tables++;
    }
    return t;
  }

  /** Installs a PTE table in PMD slot `i` (used by THP split). */
  installPteTable(pmd: PmdTable, i: number, t: PteTable): void {
    if (pmd.tables[i] !== null || pmd.flags[i] !== 0) throw new Error('installPteTable: slot not empty');
    pmd.tables[i] = t;
    pmd.used++;
    this.tables++;
  }

  /** Frees the PTE table in PMD slot `i` (free_pte_range). */
  freePteTable(pmd: PmdTable, i: number): void {
    if (pmd.tables[i] === null) return;
    pmd.tables[i] = null;
    pmd.used--;
    this.tables--;
  }

  /**
   * Fills `w` with the unit containing `addr`, clipped to `end`: a hole (no table at some
   * level; `end` is the end of that empty block), a PTE table, or a huge PMD / PUD leaf.
   * Allocation-free: this is the hmm_range_fault walk primitive.
   */
  walkUnit(addr: number, end: number, w: PageWalk): void {
    w.start = addr;
    w.pte = null;
    w.pmd = null;
    w.order = 0;
    const gi = Math.floor(addr / PGD_SPAN);
    const pud = gi < PGD_ENTRIES ? this.pgd[gi]! : null;
    if (pud === null) {
      w.kind = WALK_HOLE;
      w.end = Math.min(end, (gi + 1) * PGD_SPAN);
      return;
    }
    const pudBlock = Math.floor(addr / PUD_SPAN);
    const ui = pudBlock & 511;
    const pmd = pud.tables[ui]!;
    if (pmd === null) {
      const f = pud.flags[ui]!;
      w.end = Math.min(end, (pudBlock + 1) * PUD_SPAN);
      if (f === 0) {
        w.kind = WALK_HOLE;
        return;
      }
      w.kind = WALK_PUD_LEAF;
      w.slot = ui;
      w.val = pud.val[ui]!;
      w.flags = f;
      w.leafStart = pudBlock * PUD_SPAN;
      w.order = 18;
      return;
    }
    const pmdBlock = Math.floor(addr / PMD_SPAN);
    const mi = pmdBlock & 511;
    w.end = Math.min(end, (pmdBlock + 1) * PMD_SPAN);
    w.pmd = pmd;
    w.slot = mi;
    const pte = pmd.tables[mi]!;
    if (pte === null) {
      const f = pmd.flags[mi]!;
      if (f === 0) {
        w.kind = WALK_HOLE;
        return;
      }
      w.kind = WALK_PMD_LEAF;
      w.val = pmd.val[mi]!;
      w.flags = f;
      w.leafStart = pmdBlock * PMD_SPAN;
      w.order = 9;
      return;
    }
    w.kind = WALK_PTE;
    w.pte = pte;
    w.index = Math.floor(addr / 4096) & 511;
  }
}

/** A present entry's bits for a fresh mapping (young). */
export const PRESENT_RY = PTE_PRESENT | PTE_R | PTE_YOUNG;
