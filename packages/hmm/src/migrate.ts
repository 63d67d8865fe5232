/**
 * migrate_vma (mm/migrate_device.c, include/linux/migrate.h): moving the pages of a VA range
 * to and from device memory in three steps — setup (collect + unmap), pages (commit), finalize
 * (remap + release) — with the driver allocating and copying in between; and the VA-less
 * variant used to evict device memory (migrate_device_range / pages / finalize).
 *
 * `src`/`dst` entries use Linux's low-bit encoding in a Float64Array: pfn * 64 + MIGRATE_PFN_*.
 *
 * @module
 */
import {
  alignDown,
  HPAGE_PMD_NR,
  type Machine,
  type Mm,
  PAGE_SIZE,
  PageWalk,
  PG,
  PMD_SIZE,
  PTE_DEVICE_PRIVATE,
  PTE_NONE,
  PTE_PRESENT,
  PTE_SPECIAL,
  PTE_TYPE_MASK,
  PTE_W,
  removeMigrationPtesPfn,
  rmapWalkPfn,
  tryToMigratePfn,
  VM_HUGETLB,
  VM_SPECIAL,
  type Vma,
  WALK_HOLE,
  WALK_PMD_LEAF,
  WALK_PTE,
} from '@hmmkit/mm';
import { MmuNotifyEvent } from '@hmmkit/notifier';
import { ArgumentError, checkUint, Errno, modPow2, StateError } from '@hmmkit/sim';
import { machineOfDevicePfn, registerMachine } from './machine-registry.ts';
import { hmmStats } from './stats.ts';

/** MIGRATE_PFN_VALID: the entry names a page. */
export const MIGRATE_PFN_VALID = 1;
/** MIGRATE_PFN_MIGRATE: the page is (still) selected for migration. */
export const MIGRATE_PFN_MIGRATE = 2;
/** MIGRATE_PFN_WRITE: the mapping was (will be) writable. */
export const MIGRATE_PFN_WRITE = 8;
/** MIGRATE_PFN_COMPOUND: a 2 MiB folio (THP migration). */
export const MIGRATE_PFN_COMPOUND = 16;
/** MIGRATE_PFN_SHIFT: entry = pfn << 6 | flags (held as pfn * 64 + flags: exact up to 2^53). */
export const MIGRATE_PFN_SHIFT = 6;
/** MIGRATE_VMA_SELECT_SYSTEM: collect system-memory pages (and holes / the zero page). */
export const MIGRATE_VMA_SELECT_SYSTEM = 1;
/** MIGRATE_VMA_SELECT_DEVICE_PRIVATE: collect device-private pages of `pgmapOwner`. */
export const MIGRATE_VMA_SELECT_DEVICE_PRIVATE = 2;
/** MIGRATE_VMA_SELECT_DEVICE_COHERENT: collect device-coherent pages of `pgmapOwner`. */
export const MIGRATE_VMA_SELECT_DEVICE_COHERENT = 4;
/** MIGRATE_VMA_SELECT_COMPOUND: collect whole 2 MiB folios instead of splitting them. */
export const MIGRATE_VMA_SELECT_COMPOUND = 8;

const ENTRY_BASE = 64;

/**
 * Models migrate_pfn(): pfn << 6 | MIGRATE_PFN_VALID, as pfn * 64 + 1. Add flags with `+`, read
 * them with {@link migratePfnFlags}: JavaScript's `|` and `&` truncate to 32 bits, which would
 * corrupt any pfn from 2^25 (device memory above 128 GiB).
 */
export function migratePfn(pfn: number): number {
  return pfn * ENTRY_BASE + MIGRATE_PFN_VALID;
}

/** Models migrate_pfn_to_page(): the pfn of a VALID entry, else -1. */
export function migratePfnToPfn(entry: number): number {
  return modPow2(entry, ENTRY_BASE) & MIGRATE_PFN_VALID ? Math.floor(entry / ENTRY_BASE) : -1;
}

/** The MIGRATE_PFN_* flags of an entry. */
export function migratePfnFlags(entry: number): number {
  return modPow2(entry, ENTRY_BASE);
}

/** Initialiser of {@link MigrateVma}. */
export interface MigrateVmaInit {
  vma: Vma;
  start: number;
  end: number;
  /** Defaults to a fresh Float64Array of (end - start) / 4096 entries. */
  src?: Float64Array;
  /** Defaults to a fresh Float64Array of (end - start) / 4096 entries. */
  dst?: Float64Array;
  pgmapOwner?: unknown;
  flags: number;
  /** The locked device-private page of a migrate_to_ram fault, or -1. */
  faultPage?: number;
}

/** Models struct migrate_vma. */
export class MigrateVma {
  vma: Vma;
  start: number;
  end: number;
  src: Float64Array;
  dst: Float64Array;
  /** Out: entries with MIGRATE set after setup. */
  cpages = 0;
  /** Out: entries filled by setup. */
  npages = 0;
  pgmapOwner: unknown;
  /** MIGRATE_VMA_SELECT_* bits. */
  flags: number;
  /** pfn of the locked device-private fault page (migrate_to_ram), or -1. */
  faultPage: number;

  constructor(init: MigrateVmaInit) {
    this.vma = init.vma;
    this.start = init.start;
    this.end = init.end;
    // one entry per page setup walks: the bounds aligned down
    const n = Math.max(0, (alignDown(init.end, PAGE_SIZE) - alignDown(init.start, PAGE_SIZE)) / PAGE_SIZE);
    const len = Number.isSafeInteger(n) && n <= 2 ** 24 ? n : 0; // bad bounds are reported by setup
    this.src = init.src ?? new Float64Array(len);
    this.dst = init.dst ?? new Float64Array(len);
    this.pgmapOwner = init.pgmapOwner ?? null;
    this.flags = init.flags;
    this.faultPage = init.faultPage ?? -1;
  }
}

const EINVAL = -Errno.EINVAL;

function assertLocked(fn: string, mm: Mm): void {
  if (!mm.mmapLock.isLocked) throw new StateError(fn, 'the mmap lock must be held');
}

function checkArgs(fn: string, args: MigrateVma): void {
  if (!(args instanceof MigrateVma)) throw new ArgumentError(fn, 'args', 'must be a MigrateVma', args);
  checkUint(fn, 'args.start', args.start);
  checkUint(fn, 'args.end', args.end);
  if (!Number.isInteger(args.flags) || args.flags < 0) {
    throw new ArgumentError(fn, 'args.flags', 'must be MIGRATE_VMA_SELECT_* bits', args.flags);
  }
  if (!Number.isInteger(args.faultPage) || args.faultPage < -1) {
    throw new ArgumentError(fn, 'args.faultPage', 'must be a pfn or -1', args.faultPage);
  }
}

/** Splits a large (non-hugetlb) folio everywhere it is PMD-mapped, then the folio (split_folio). */
async function splitFolioAll(machine: Machine, pfn: number): Promise<void> {
  const head = machine.phys.compoundHead(pfn);
  for (const hit of rmapWalkPfn(machine, head)) {
    if (hit.huge) await hit.mm.splitHugePmd(hit.vma, hit.address);
  }
  machine.phys.splitFolio(head);
  // The caller re-walks after the split; a folio that did not split would loop forever.
  if (machine.phys.order[pfn] !== 0) {
    throw new StateError('migrateVmaSetup', `folio of pfn ${pfn} did not split (head ${head})`);
  }
}

/**
 * Locks `pfn` (unless it is the already-locked fault page) and replaces its PTE at `addr` by a
 * migration entry. Returns true on success; on failure the page is left as found.
 */
function lockAndUnmapOne(mm: Mm, addr: number, pfn: number, faultPage: number): boolean {
  const p = mm.phys;
  if (pfn !== faultPage && !p.trylockPage(pfn)) return false;
  if (mm.installMigrationEntry(addr) !== pfn) {
    if (pfn !== faultPage) p.unlockPage(pfn);
    return false;
  }
  return true;
}

/** migrate_vma_collect(): fills src inside one MIGRATE invalidation with owner = pgmapOwner. */
async function collect(args: MigrateVma, mm: Mm): Promise<void> {
  const vma = args.vma;
  const p = mm.phys;
  const machine = mm.machine;
  const owner = args.pgmapOwner;
  const sel = args.flags;
  const anon = vma.isAnonymous;
  const src = args.src;
  const dst = args.dst;
  const w = new PageWalk();
  const r = await mm.invStart(MmuNotifyEvent.MIGRATE, args.start, args.end, owner);
  try {
    let addr = args.start;
    const end = args.end;
    while (addr < end) {
      mm.pt.walkUnit(addr, end, w);
      const uEnd = w.end;
      const j0 = (addr - args.start) / PAGE_SIZE;
      const n = (uEnd - addr) / PAGE_SIZE;
      if (w.kind === WALK_HOLE) {
        for (let k = 0; k < n; k++) {
          src[j0 + k] = anon ? MIGRATE_PFN_MIGRATE : 0;
          dst[j0 + k] = 0;
        }
        if (anon) args.cpages += n;
        args.npages += n;
        addr = uEnd;
        continue;
      }
      if (w.kind === WALK_PMD_LEAF) {
        const f = w.flags;
        const ty = f & PTE_TYPE_MASK;
        const head = w.val;
        const whole = w.leafStart === addr && uEnd === addr + PMD_SIZE;
        if (ty === PTE_PRESENT && p.isZeroPfn(head)) {
          await mm.splitHugePmd(vma, addr); // the huge zero page is split, then seen as zero PTEs
          continue;
        }
        const wanted =
          ty === PTE_PRESENT
            ? (sel & MIGRATE_VMA_SELECT_SYSTEM) !== 0 && !(f & PTE_SPECIAL)
            : ty === PTE_DEVICE_PRIVATE &&
              (sel & MIGRATE_VMA_SELECT_DEVICE_PRIVATE) !== 0 &&
              p.pagemapOf(head)?.owner === owner;
        if (!wanted) {
          for (let k = 0; k < n; k++) {
            src[j0 + k] = 0;
            dst[j0 + k] = 0;
          }
          args.npages += n;
          addr = uEnd;
          continue;
        }
        // the fault page (a device THP's head, migrate_to_ram of order 9) is locked already
        const locked =
          (sel & MIGRATE_VMA_SELECT_COMPOUND) !== 0 &&
          whole &&
          (head === args.faultPage || p.trylockPage(head));
        if (locked) {
          if (mm.installPmdMigrationEntry(addr) === head) {
            src[j0] =
              migratePfn(head) +
              MIGRATE_PFN_MIGRATE +
              MIGRATE_PFN_COMPOUND +
              (f & PTE_W ? MIGRATE_PFN_WRITE : 0);
            dst[j0] = 0;
            for (let k = 1; k < n; k++) {
              src[j0 + k] = 0;
              dst[j0 + k] = 0;
            }
            args.cpages++;
            args.npages += n;
            addr = uEnd;
            continue;
          }
          if (head !== args.faultPage) p.unlockPage(head);
        }
        // no compound migration: split the folio and collect its 4 KiB pages
        await splitFolioAll(machine, head);
        await mm.splitHugePmd(vma, addr);
        continue;
      }
      if (w.kind !== WALK_PTE) {
        // a PUD leaf (hugetlb only; hugetlb VMAs are refused by setup)
        for (let k = 0; k < n; k++) src[j0 + k] = dst[j0 + k] = 0;
        args.npages += n;
        addr = uEnd;
        continue;
      }
      const t = w.pte!;
      let i = w.index;
      let splitPfn = -1;
      let k = 0;
      for (; k < n; k++, i++) {
        const f = t.flags[i]!;
        const ty = f & PTE_TYPE_MASK;
        const j = j0 + k;
        const a = addr + k * PAGE_SIZE;
        let mpfn = 0;
        if (ty === PTE_NONE) {
          if (anon) {
            mpfn = MIGRATE_PFN_MIGRATE;
            args.cpages++;
          }
        } else if (ty === PTE_PRESENT) {
          const pfn = t.val[i]!;
          if (p.isZeroPfn(pfn)) {
            if (sel & MIGRATE_VMA_SELECT_SYSTEM) {
              mpfn = MIGRATE_PFN_MIGRATE;
              args.cpages++;
            }
          } else if (!(f & PTE_SPECIAL) && !(p.flags[pfn]! & PG.reserved)) {
            const ok = p.isDeviceCoherentPage(pfn)
              ? (sel & MIGRATE_VMA_SELECT_DEVICE_COHERENT) !== 0 && p.pagemapOf(pfn)?.owner === owner
              : (sel & MIGRATE_VMA_SELECT_SYSTEM) !== 0;
            if (ok && p.order[pfn]! > 0) {
              splitPfn = pfn;
              break;
            }
            if (ok && p.mapping[pfn] !== 0 && lockAndUnmapOne(mm, a, pfn, args.faultPage)) {
              mpfn = migratePfn(pfn) + MIGRATE_PFN_MIGRATE + (f & PTE_W ? MIGRATE_PFN_WRITE : 0);
              args.cpages++;
            }
          }
        } else if (ty === PTE_DEVICE_PRIVATE) {
          const pfn = t.val[i]!;
          if (sel & MIGRATE_VMA_SELECT_DEVICE_PRIVATE && p.pagemapOf(pfn)?.owner === owner) {
            if (p.order[pfn]! > 0) {
              splitPfn = pfn;
              break;
            }
            if (lockAndUnmapOne(mm, a, pfn, args.faultPage)) {
              mpfn = migratePfn(pfn) + MIGRATE_PFN_MIGRATE + (f & PTE_W ? MIGRATE_PFN_WRITE : 0);
              args.cpages++;
            }
          }
        }
        src[j] = mpfn;
        dst[j] = 0;
        args.npages++;
      }
      addr += k * PAGE_SIZE;
      if (splitPfn >= 0) await splitFolioAll(machine, splitPfn);
    }
  } finally {
    await mm.invEnd(r);
  }
}

/**
 * migrate_vma_check_page(): the references a collected page may carry and still migrate —
 * ours (the mapping reference collect took over), the fault path's on the fault page, one more
 * for a ZONE_DEVICE page ("Page from ZONE_DEVICE have one extra reference"), the page cache's
 * for a file page. More than that means pinned: the page is restored.
 */
function expectedRefs(machine: Machine, pfn: number, faultPage: number): number {
  const f = machine.phys.flags[pfn]!;
  const device = (f & PG.device) !== 0;
  return 1 + (pfn === faultPage ? 1 : 0) + (device ? 1 : 0) + (!(f & PG.anon) && !device ? 1 : 0);
}

/**
 * migrate_device_unmap(): try_to_migrate every other mapping of each collected page; pages
 * still mapped or pinned are restored (src = 0). Returns the MIGRATE count (cpages).
 */
async function unmapPages(
  machine: Machine,
  src: Float64Array,
  npages: number,
  faultPage: number,
): Promise<number> {
  const p = machine.phys;
  let cpages = 0;
  let restore = 0;
  for (let i = 0; i < npages; i++) {
    const e = src[i]!;
    const fl = modPow2(e, ENTRY_BASE);
    const pfn = fl & MIGRATE_PFN_VALID ? Math.floor(e / ENTRY_BASE) : -1;
    if (pfn < 0) {
      if (fl & MIGRATE_PFN_MIGRATE) cpages++;
      continue;
    }
    if (fl & MIGRATE_PFN_COMPOUND) {
      // a PMD migration entry: mapped only here (installPmdMigrationEntry checked it)
      cpages++;
      continue;
    }
    if (p.mapcount[pfn]! > 0) await tryToMigratePfn(machine, pfn);
    if (p.mapcount[pfn]! > 0 || p.refcount[pfn]! > expectedRefs(machine, pfn, faultPage)) {
      src[i] = e - MIGRATE_PFN_MIGRATE;
      restore++;
      continue;
    }
    cpages++;
  }
  for (let i = 0; i < npages && restore > 0; i++) {
    const e = src[i]!;
    const fl = modPow2(e, ENTRY_BASE);
    if (!(fl & MIGRATE_PFN_VALID) || fl & MIGRATE_PFN_MIGRATE) continue;
    const pfn = Math.floor(e / ENTRY_BASE);
    removeMigrationPtesPfn(machine, pfn, pfn);
    src[i] = 0;
    if (pfn !== faultPage) p.unlockPage(pfn);
    p.putPage(pfn);
    restore--;
  }
  return cpages;
}

/**
 * Models migrate_vma_setup(): validates (returns -EINVAL for no VMA, a hugetlb / VM_SPECIAL
 * VMA, an empty or out-of-VMA range, missing src/dst, a fault page that is not a locked
 * device-private page), page-aligns start/end down, collects every page into `src` (inside a
 * MIGRATE invalidation with owner = pgmapOwner), unmaps them (try_to_migrate; pinned or still
 * mapped pages restored) and sets `cpages`/`npages`. Returns 0 even if nothing was collected.
 * The caller holds the mmap lock.
 */
export async function migrateVmaSetup(args: MigrateVma): Promise<number> {
  const fn = 'migrateVmaSetup';
  checkArgs(fn, args);
  const vma = args.vma as Vma | null;
  if (vma === null || vma === undefined) return EINVAL;
  const mm = vma.mm;
  assertLocked(fn, mm);
  registerMachine(mm.machine);
  // Linux computes nr_pages from the bounds as given, before aligning them down: a sub-page
  // range that crosses a page boundary has nr_pages 0 and is -EINVAL (every kernel since 5.4)
  const nrPages = Math.floor((args.end - args.start) / PAGE_SIZE);
  const start = alignDown(args.start, PAGE_SIZE);
  const end = alignDown(args.end, PAGE_SIZE);
  const nr = (end - start) / PAGE_SIZE;
  if (vma.flags & (VM_HUGETLB | VM_SPECIAL)) return EINVAL;
  if (nrPages <= 0 || nr <= 0) return EINVAL;
  if (start < vma.start || start >= vma.end) return EINVAL;
  if (end <= vma.start || end > vma.end) return EINVAL;
  if (!(args.src instanceof Float64Array) || !(args.dst instanceof Float64Array)) return EINVAL;
  if (args.src.length < nr)
    throw new ArgumentError(fn, 'args.src', `must hold at least ${nr} entries`, args.src);
  if (args.dst.length < nr)
    throw new ArgumentError(fn, 'args.dst', `must hold at least ${nr} entries`, args.dst);
  const p = mm.phys;
  if (args.faultPage >= 0) {
    if (args.faultPage >= p.frameLimit || !p.isDevicePrivatePage(args.faultPage)) return EINVAL;
    if (!p.isPageLocked(args.faultPage)) return EINVAL;
  }
  const stats = hmmStats(mm.sim);
  stats.migrateSetup.value++;
  args.start = start;
  args.end = end;
  args.src.fill(0, 0, nr);
  args.cpages = 0;
  args.npages = 0;
  await collect(args, mm);
  if (args.cpages !== 0) {
    args.cpages = await unmapPages(mm.machine, args.src, args.npages, args.faultPage);
  }
  args.end = args.start + args.npages * PAGE_SIZE;
  stats.migrateCollected.add(args.cpages);
  return 0;
}

/**
 * Commits one entry whose src has a page (not a hole): metadata moves to the new page, or
 * MIGRATE is cleared. Shared by migrate_vma_pages and migrate_device_pages.
 */
function commitPage(machine: Machine, src: Float64Array, i: number, dpfn: number, dflags: number): void {
  const p = machine.phys;
  const e = src[i]!;
  const fl = modPow2(e, ENTRY_BASE);
  const spfn = Math.floor(e / ENTRY_BASE);
  const compound = (fl & MIGRATE_PFN_COMPOUND) !== 0;
  if (compound !== ((dflags & MIGRATE_PFN_COMPOUND) !== 0)) {
    src[i] = e - MIGRATE_PFN_MIGRATE; // no folio split on the fly (see docs-hmm.md)
    return;
  }
  const toDevice = p.isDevicePrivatePage(dpfn) || p.isDeviceCoherentPage(dpfn);
  const sf = p.flags[spfn]!;
  const fileBacked = !(sf & PG.anon) && !(sf & PG.device);
  if (toDevice && fileBacked) {
    // only anonymous memory can move to device-private or device-coherent memory
    src[i] = e - MIGRATE_PFN_MIGRATE;
    return;
  }
  if (toDevice && sf & PG.swapcache && !folioFreeSwap(p, spfn)) {
    // __migrate_device_pages(): an anonymous page still in the swap cache must leave it first
    // (folio_free_swap); it cannot while another swap entry (a fork child's) names its slot
    src[i] = e - MIGRATE_PFN_MIGRATE;
    return;
  }
  const nr = compound ? HPAGE_PMD_NR : 1;
  for (let k = 0; k < nr; k++) {
    const s = spfn + k;
    const d = dpfn + k;
    p.mapping[d] = p.mapping[s]!;
    p.index[d] = p.index[s]!;
    const keep = PG.anon | PG.file | PG.dirty | PG.anonExclusive;
    p.flags[d] = (p.flags[d]! & ~keep) | (p.flags[s]! & keep);
  }
}

/**
 * Models folio_free_swap(): drops `pfn` from the swap cache and marks it dirty (its contents
 * exist nowhere else now) — unless a swap entry still references its slot (folio_swapped).
 */
function folioFreeSwap(p: Machine['phys'], pfn: number): boolean {
  const slot = p.swapSlotOf[pfn]!;
  if (slot >= 0 && p.swap.count[slot]! > 0) return false;
  p.swap.dropCache(pfn);
  p.flags[pfn] = p.flags[pfn]! | PG.dirty;
  return true;
}

function checkDst(fn: string, machine: Machine, dst: Float64Array, n: number): void {
  const p = machine.phys;
  for (let i = 0; i < n; i++) {
    const pfn = migratePfnToPfn(dst[i]!);
    if (pfn < 0) continue;
    if (pfn >= p.frameLimit || p.flags[pfn]! & PG.free) {
      throw new ArgumentError(fn, `dst[${i}]`, 'must name an allocated page', dst[i]);
    }
  }
}

/**
 * Models migrate_vma_pages(): entries with no dst lose MIGRATE; holes and zero pages get the
 * new page inserted now (inside one MIGRATE invalidation from the first such address to
 * `end`; only in anonymous VMAs; device-private pages become device-private entries writable
 * iff VM_WRITE); other pages have their metadata moved (file-backed pages cannot go to device
 * memory). After it, MIGRATE in src means committed.
 */
export async function migrateVmaPages(args: MigrateVma): Promise<void> {
  const fn = 'migrateVmaPages';
  checkArgs(fn, args);
  const vma = args.vma;
  const mm = vma.mm;
  assertLocked(fn, mm);
  const machine = mm.machine;
  const p = machine.phys;
  const n = args.npages;
  checkDst(fn, machine, args.dst, n);
  const src = args.src;
  const dst = args.dst;
  let r: Awaited<ReturnType<Mm['invStart']>> | undefined;
  let notified = false;
  let committed = 0;
  try {
    for (let i = 0; i < n; i++) {
      const e = src[i]!;
      const fl = modPow2(e, ENTRY_BASE);
      const d = dst[i]!;
      const dfl = modPow2(d, ENTRY_BASE);
      if (!(dfl & MIGRATE_PFN_VALID)) {
        if (fl & MIGRATE_PFN_MIGRATE) src[i] = e - MIGRATE_PFN_MIGRATE;
        continue;
      }
      if (!(fl & MIGRATE_PFN_MIGRATE)) continue;
      const dpfn = Math.floor(d / ENTRY_BASE);
      if (!(fl & MIGRATE_PFN_VALID)) {
        const addr = args.start + i * PAGE_SIZE;
        if (!notified) {
          notified = true;
          r = await mm.invStart(MmuNotifyEvent.MIGRATE, addr, args.end, args.pgmapOwner);
        }
        let ok = false;
        if (dfl & MIGRATE_PFN_COMPOUND) ok = mm.migrateVmaInsertPmd(vma, addr, dpfn);
        else {
          const w = new PageWalk();
          mm.pt.walkUnit(addr, addr + PAGE_SIZE, w);
          if (w.kind === WALK_PMD_LEAF && p.isZeroPfn(w.val)) await mm.splitHugePmd(vma, addr);
          ok = mm.migrateVmaInsertPage(vma, addr, dpfn);
        }
        if (!ok) src[i] = e - MIGRATE_PFN_MIGRATE;
        else committed++;
        continue;
      }
      commitPage(machine, src, i, dpfn, dfl);
      if (modPow2(src[i]!, ENTRY_BASE) & MIGRATE_PFN_MIGRATE) committed++;
    }
  } finally {
    if (notified) await mm.invEnd(r ?? null);
  }
  hmmStats(mm.sim).migrateCommitted.add(committed);
}

/** __migrate_device_finalize(): remap (new or original), unlock and release every entry. */
function finalizeEntries(
  machine: Machine,
  src: Float64Array,
  dst: Float64Array,
  n: number,
  faultPage: number,
  mm: Mm | null,
  vaStart: number,
): number {
  const p = machine.phys;
  let restored = 0;
  for (let i = 0; i < n; i++) {
    const e = src[i]!;
    const fl = modPow2(e, ENTRY_BASE);
    const d = dst[i]!;
    const dfl = modPow2(d, ENTRY_BASE);
    const dpfn = dfl & MIGRATE_PFN_VALID ? Math.floor(d / ENTRY_BASE) : -1;
    const dnr = dfl & MIGRATE_PFN_COMPOUND ? HPAGE_PMD_NR : 1;
    if (!(fl & MIGRATE_PFN_VALID)) {
      if (dpfn >= 0) releaseNew(p, dpfn, dnr);
      continue;
    }
    const spfn = Math.floor(e / ENTRY_BASE);
    const compound = (fl & MIGRATE_PFN_COMPOUND) !== 0;
    let target = spfn;
    if (fl & MIGRATE_PFN_MIGRATE && dpfn >= 0) target = dpfn;
    else {
      restored++;
      if (dpfn >= 0) releaseNew(p, dpfn, dnr);
    }
    if (compound) {
      if (mm !== null) mm.removeMigrationPmd(vaStart + i * PAGE_SIZE, target);
      if (spfn !== faultPage) p.unlockPage(spfn);
      for (let k = 0; k < HPAGE_PMD_NR; k++) p.putPage(spfn + k);
    } else {
      removeMigrationPtesPfn(machine, spfn, target);
      if (spfn !== faultPage) p.unlockPage(spfn);
      p.putPage(spfn);
    }
    if (target !== spfn) releaseNew(p, target, compound ? HPAGE_PMD_NR : 1);
  }
  return restored;
}

/** Unlocks a destination page / folio and drops its allocation references. */
function releaseNew(p: Machine['phys'], head: number, nr: number): void {
  if (p.isPageLocked(head)) p.unlockPage(head);
  for (let k = 0; k < nr; k++) p.putPage(head + k);
}

/**
 * Models migrate_vma_finalize(): committed entries point at the new page (a present PTE or a
 * device-private entry, writable iff the original was), others at the original; source pages
 * are unlocked (except the fault page) and released; destination pages unlocked and their
 * allocation reference dropped (each mapping holds its own).
 */
export async function migrateVmaFinalize(args: MigrateVma): Promise<void> {
  const fn = 'migrateVmaFinalize';
  checkArgs(fn, args);
  const mm = args.vma.mm;
  assertLocked(fn, mm);
  checkDst(fn, mm.machine, args.dst, args.npages);
  const restored = finalizeEntries(
    mm.machine,
    args.src,
    args.dst,
    args.npages,
    args.faultPage,
    mm,
    args.start,
  );
  hmmStats(mm.sim).migrateRestored.add(restored);
}

function deviceMachine(fn: string, pfn: number, machine: Machine | undefined): Machine {
  if (machine !== undefined) {
    registerMachine(machine);
    return machine;
  }
  const m = machineOfDevicePfn(pfn);
  if (m === null) {
    throw new ArgumentError(fn, 'startPfn', 'must be a device pfn of a known machine (or pass machine)', pfn);
  }
  return m;
}

function firstPfn(src: Float64Array, n: number): number {
  for (let i = 0; i < n; i++) {
    const pfn = migratePfnToPfn(src[i]!);
    if (pfn >= 0) return pfn;
  }
  return -1;
}

function checkArray(fn: string, name: string, a: Float64Array, n: number): void {
  if (!(a instanceof Float64Array)) throw new ArgumentError(fn, name, 'must be a Float64Array', a);
  if (a.length < n) throw new ArgumentError(fn, name, `must hold at least ${n} entries`, a.length);
}

/**
 * Models migrate_device_range(): selects the device pfns [startPfn, startPfn + npages) for
 * eviction without a VA: each in-use page is referenced and trylocked (else src = 0), then
 * every mapping is replaced by a migration entry (pinned / still-mapped pages restored).
 * Returns 0. `machine` is needed only when several machines hold device memory at that pfn.
 */
export async function migrateDeviceRange(
  src: Float64Array,
  startPfn: number,
  npages: number,
  machine?: Machine,
): Promise<number> {
  const fn = 'migrateDeviceRange';
  checkUint(fn, 'npages', npages);
  checkArray(fn, 'src', src, npages);
  checkUint(fn, 'startPfn', startPfn);
  if (npages === 0) return 0;
  const m = deviceMachine(fn, startPfn, machine);
  const p = m.phys;
  if (startPfn + npages > p.frameLimit)
    throw new ArgumentError(fn, 'npages', 'range exceeds physical memory', npages);
  for (let i = 0; i < npages; i++) {
    if (p.pagemapOf(startPfn + i) === null)
      throw new ArgumentError(fn, 'startPfn', 'range must be device memory', startPfn + i);
  }
  hmmStats(m.sim).migrateSetup.value++;
  for (let i = 0; i < npages; i++) {
    const pfn = startPfn + i;
    if (p.refcount[pfn] === 0 || p.flags[pfn]! & PG.free) {
      src[i] = 0;
      continue;
    }
    p.getPage(pfn);
    if (!p.trylockPage(pfn)) {
      p.putPage(pfn);
      src[i] = 0;
      continue;
    }
    src[i] = migratePfn(pfn) + MIGRATE_PFN_MIGRATE;
  }
  const c = await unmapPages(m, src, npages, -1);
  hmmStats(m.sim).migrateCollected.add(c);
  return 0;
}

/** Models migrate_device_pages(): commits src → dst for entries with a dst (metadata moves). */
export async function migrateDevicePages(
  src: Float64Array,
  dst: Float64Array,
  npages: number,
  machine?: Machine,
): Promise<void> {
  const fn = 'migrateDevicePages';
  checkUint(fn, 'npages', npages);
  checkArray(fn, 'src', src, npages);
  checkArray(fn, 'dst', dst, npages);
  const first = firstPfn(src, npages);
  if (first < 0) {
    for (let i = 0; i < npages; i++)
      if (migratePfnToPfn(dst[i]!) < 0 && modPow2(src[i]!, ENTRY_BASE) & MIGRATE_PFN_MIGRATE)
        src[i] = src[i]! - MIGRATE_PFN_MIGRATE;
    return;
  }
  const m = deviceMachine(fn, first, machine);
  checkDst(fn, m, dst, npages);
  let committed = 0;
  for (let i = 0; i < npages; i++) {
    const e = src[i]!;
    const fl = modPow2(e, ENTRY_BASE);
    const d = dst[i]!;
    const dfl = modPow2(d, ENTRY_BASE);
    if (!(fl & MIGRATE_PFN_MIGRATE)) continue;
    if (!(dfl & MIGRATE_PFN_VALID) || !(fl & MIGRATE_PFN_VALID)) {
      src[i] = e - MIGRATE_PFN_MIGRATE;
      continue;
    }
    commitPage(m, src, i, Math.floor(d / ENTRY_BASE), dfl);
    if (modPow2(src[i]!, ENTRY_BASE) & MIGRATE_PFN_MIGRATE) committed++;
  }
  hmmStats(m.sim).migrateCommitted.add(committed);
}

/** Models migrate_device_finalize(): remaps to the new or original page and releases both. */
export async function migrateDeviceFinalize(
  src: Float64Array,
  dst: Float64Array,
  npages: number,
  machine?: Machine,
): Promise<void> {
  const fn = 'migrateDeviceFinalize';
  checkUint(fn, 'npages', npages);
  checkArray(fn, 'src', src, npages);
  checkArray(fn, 'dst', dst, npages);
  const first = firstPfn(src, npages);
  if (first < 0) return;
  const m = deviceMachine(fn, first, machine);
  checkDst(fn, m, dst, npages);
  const restored = finalizeEntries(m, src, dst, npages, -1, null, 0);
  hmmStats(m.sim).migrateRestored.add(restored);
}
