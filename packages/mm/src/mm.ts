/**
 * `Mm`: one simulated process address space (`struct mm_struct`): VMAs, page tables, the mmap
 * lock, notifier subscriptions; the system calls (mmap, munmap, mprotect, mremap, madvise, fork,
 * exit), the fault handler (handle_mm_fault) and CPU loads/stores through the page tables, swap
 * and NUMA migration, and the page-table primitives `@hmmkit/hmm` builds migrate_vma and
 * hmm_range_fault on.
 *
 * Locking model: the mmap lock is a scheduler RwSemaphore; the page-table lock is implicit —
 * JavaScript runs one task at a time, so every synchronous stretch of code that reads and
 * writes entries is atomic, exactly like a PTL critical section. Anything that can block
 * (notifier callbacks, migrate_to_ram, waiting on a locked page) is async.
 *
 * @module
 */

import type { MmuNotifierSubscriptions } from '@hmmkit/notifier';
import {
  type MmuNotifierRange,
  MmuNotifyEvent,
  mmuNotifierInvalidateRangeEnd,
  mmuNotifierInvalidateRangeStart,
  mmuNotifierRangeInit,
  mmuNotifierRelease,
  type NotifierMm,
} from '@hmmkit/notifier';
import { ArgumentError, Errno, RwSemaphore, type Sim, StateError, ULONG_MAX } from '@hmmkit/sim';
import {
  alignDown,
  FAULT_FLAG_REMOTE,
  FAULT_FLAG_USER,
  FAULT_FLAG_WRITE,
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
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_FIXED_NOREPLACE,
  MAP_HUGE_MASK,
  MAP_HUGE_SHIFT,
  MAP_HUGETLB,
  MAP_LOCKED,
  MAP_NORESERVE,
  MAP_POPULATE,
  MAP_PRIVATE,
  MAP_SHARED,
  MAP_SHARED_VALIDATE,
  MAP_SYNC,
  MAP_TYPE,
  MMAP_BASE,
  MMAP_MIN_ADDR,
  MREMAP_DONTUNMAP,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_EXEC,
  PROT_GROWSDOWN,
  PROT_GROWSUP,
  PROT_READ,
  PROT_SEM,
  PROT_WRITE,
  PUD_SIZE,
  pageAlign,
  TASK_SIZE,
  VM_ACCESS_FLAGS,
  VM_DONTCOPY,
  VM_DONTEXPAND,
  VM_EXEC,
  VM_FAULT_MAJOR,
  VM_FAULT_OOM,
  VM_FAULT_SIGBUS,
  VM_FAULT_SIGSEGV,
  VM_HUGEPAGE,
  VM_HUGETLB,
  VM_IO,
  VM_LOCKED,
  VM_MAYEXEC,
  VM_MAYREAD,
  VM_MAYSHARE,
  VM_MAYWRITE,
  VM_MIXEDMAP,
  VM_NOHUGEPAGE,
  VM_NORESERVE,
  VM_PFNMAP,
  VM_READ,
  VM_SHARED,
  VM_SPECIAL,
  VM_WRITE,
} from './constants.ts';
import { inodeById, type MmFile, SpecialFile, TmpFile } from './file.ts';
import { type Machine, MmSignalError } from './machine.ts';
import {
  PageTable,
  PageWalk,
  type PmdTable,
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
  PteTable,
  setEntry,
  WALK_HOLE,
  WALK_PMD_LEAF,
  WALK_PTE,
  WALK_PUD_LEAF,
} from './page-table.ts';
import { HUGE_ZERO_PFN, PG, type PhysMem, type VmFault, ZERO_PFN } from './physmem.ts';
import { type AnonVma, Vma, VmaTree, vmasMergeable } from './vma.ts';

declare module '@hmmkit/sim' {
  interface TraceEvents {
    /** handle_mm_fault() was entered: mm id, address, FAULT_FLAG_* bits. */
    'mm.fault': [mm: number, address: number, flags: number];
    /** The mm started an invalidation: mm id, MmuNotifyEvent, start, end (exclusive). */
    'mm.invalidate': [mm: number, event: number, start: number, end: number];
    /** A CPU load or store of `n` bytes at `address` done (bytes at `buf[offset..]`), for the oracle's data shadow. */
    'mm.access': [mm: number, address: number, write: boolean, buf: Uint8Array, offset: number, n: number];
  }
}

const FN = {
  mmap: 'Mm.mmap',
  munmap: 'Mm.munmap',
  mprotect: 'Mm.mprotect',
  mremap: 'Mm.mremap',
  madvise: 'Mm.madvise',
  access: 'Mm.access',
} as const;

/** A present entry's bits for a fresh mapping (young). */
const PRESENT_RY = PTE_PRESENT | PTE_R | PTE_YOUNG;
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

/** mmap flags Linux knows (LEGACY_MAP_MASK plus the validated ones). */
const LEGACY_MAP_MASK =
  0x01 |
  0x02 |
  0x10 |
  0x20 |
  0x0100 |
  0x0800 |
  0x1000 |
  0x2000 |
  0x4000 |
  0x8000 |
  0x10000 |
  0x20000 |
  0x40000 |
  0x100000;

let nextMmId = 1;

/** One recorded invalidation (for {@link Mm.invalidationLog} in tests and traces). */
export interface InvalidationRecord {
  readonly event: number;
  readonly start: number;
  readonly end: number;
  readonly owner: unknown;
}

/** Which pages a rmap walk found: one mapping of a page. */
export interface RmapHit {
  readonly mm: Mm;
  readonly vma: Vma;
  readonly address: number;
  /** True when the page is mapped by a PMD leaf (a THP) rather than a PTE. */
  readonly huge: boolean;
}

/** Result of {@link Mm.makeDeviceExclusive}. */
export interface DeviceExclusiveResult {
  /** 0 or a negative errno (-EOPNOTSUPP, -EBUSY, -EFAULT, -ENOMEM, -EPERM). */
  readonly ret: number;
  /** The page now exclusive to the device (locked and referenced; the caller unlocks and puts it). */
  readonly pfn: number;
}

/**
 * A simulated process address space. Implements the notifier package's {@link NotifierMm}.
 */
export class Mm implements NotifierMm {
  readonly sim: Sim;
  readonly machine: Machine;
  readonly phys: PhysMem;
  /** Unique id (for traces). */
  readonly id: number;
  /** mm->mmap_lock. */
  readonly mmapLock: RwSemaphore;
  /** mm->mm_users. */
  mmUsers = 1;
  /** mm->notifier_subscriptions (managed by `@hmmkit/notifier`). */
  notifierSubscriptions: MmuNotifierSubscriptions | null = null;
  /** The page tables. */
  readonly pt = new PageTable();
  /** The VMAs. */
  readonly vmas = new VmaTree();
  /** mm->mmap_base: top-down placement starts here. */
  readonly mmapBase = MMAP_BASE;
  private freeAreaCache = MMAP_BASE;
  /** Pages mapped (RSS: present entries of normal pages and device-private entries). */
  rss = 0;
  /** Swap entries in the page tables. */
  swapEntries = 0;
  /** Preferred NUMA node for new pages (the task's mempolicy, simplified). */
  node = 0;
  /** When non-null, every invalidation this mm issues is appended here (debug/test aid). */
  invalidationLog: InvalidationRecord[] | null = null;
  /** Open invalidations (invStart without its invEnd yet), for the batched TLB flush. */
  private invDepth = 0;
  /** TLB flushes queued by {@link flushTlbDeferred}, charged at the next invEnd. */
  private tlbPendingFlushes = 0;
  /** The 2 MiB block of the last queued flush (-1: none). */
  private tlbPendingBlock = -1;

  /** Creates an empty address space on `machine`. */
  constructor(machine: Machine) {
    this.machine = machine;
    this.sim = machine.sim;
    this.phys = machine.phys;
    this.id = nextMmId++;
    this.mmapLock = new RwSemaphore(machine.sim.sched, `mm${this.id}.mmap_lock`);
  }

  // =============================================================================================
  // Notifier plumbing
  // =============================================================================================

  /**
   * @internal Starts an invalidation of this mm (mmu_notifier_range_init +
   * invalidate_range_start, plus the invalidation log and trace); null when no one listens.
   */
  async invStart(event: MmuNotifyEvent, start: number, end: number, owner: unknown = null) {
    this.invalidationLog?.push({ event, start, end, owner });
    if (this.sim.trace.wants('mm.invalidate'))
      this.sim.trace.emit('mm.invalidate', this.id, event, start, end);
    if (this.notifierSubscriptions === null) {
      this.invDepth++;
      return null;
    }
    const r = mmuNotifierRangeInit(event, 0, this, start, end, owner);
    await mmuNotifierInvalidateRangeStart(r);
    this.invDepth++; // only once started: a failed start has no invEnd to pay the queued flushes
    return r;
  }

  /** @internal Ends an invalidation started by {@link invStart}. */
  async invEnd(r: MmuNotifierRange | null): Promise<void> {
    if (this.invDepth > 0) this.invDepth--;
    // Linux flushes the CPU TLB before invalidate_range_end: the batched flushes are paid here.
    this.flushTlbPending();
    if (r !== null) await mmuNotifierInvalidateRangeEnd(r);
  }

  /** @internal Charges one TLB shootdown (flush_tlb_range after changing present entries). */
  flushTlb(): void {
    this.machine.stats.tlbFlush.value++;
    this.sim.charge(this.sim.costs.cpuTlbShootdownNs);
  }

  /**
   * @internal Queues the TLB flush for a present entry at `addr` changed inside an open
   * invalidation (invStart … invEnd), as migrate_vma_collect_pmd() does: Linux clears the PTEs
   * of one PMD table and issues ONE flush_tlb_range() for it after the loop. Entries of the same
   * 2 MiB block share one flush; the queued flushes are charged at the next {@link invEnd}
   * (Linux flushes before invalidate_range_end). Outside an invalidation it flushes at once.
   */
  flushTlbDeferred(addr: number): void {
    if (this.invDepth === 0) {
      this.flushTlb();
      return;
    }
    const block = Math.floor(addr / PMD_SIZE);
    if (block !== this.tlbPendingBlock) {
      this.tlbPendingBlock = block;
      this.tlbPendingFlushes++;
    }
  }

  /** @internal Charges the flushes queued by {@link flushTlbDeferred} (one per 2 MiB block touched). */
  flushTlbPending(): void {
    for (; this.tlbPendingFlushes > 0; this.tlbPendingFlushes--) this.flushTlb();
    this.tlbPendingBlock = -1;
  }

  // =============================================================================================
  // Lookup
  // =============================================================================================

  /** Models find_vma(): the first VMA ending above `addr`. */
  findVma(addr: number): Vma | null {
    return this.vmas.find(addr);
  }

  /** Models vma_lookup(): the VMA containing `addr`. */
  vmaLookup(addr: number): Vma | null {
    return this.vmas.lookup(addr);
  }

  /** A snapshot of every VMA (for tests and debugging). */
  vmaSnapshot(): ReturnType<Vma['describe']>[] {
    return this.vmas.toArray().map((v) => v.describe());
  }

  /**
   * Reads the entry mapping `addr` (page granularity) without faulting: `{type, val, flags,
   * order}` where huge leaves report the per-page value (head + offset). For tests and
   * debugging; hot paths use {@link PageTable.walkUnit}.
   */
  readEntry(addr: number): { val: number; flags: number; order: number } {
    const w = new PageWalk();
    this.pt.walkUnit(addr, addr + PAGE_SIZE, w);
    if (w.kind === WALK_HOLE) return { val: 0, flags: 0, order: 0 };
    if (w.kind === WALK_PTE) return { val: w.pte!.val[w.index]!, flags: w.pte!.flags[w.index]!, order: 0 };
    const off = (addr - w.leafStart) / PAGE_SIZE;
    const t = w.flags & PTE_TYPE_MASK;
    const perPage = t === PTE_PRESENT || t === PTE_DEVICE_PRIVATE || t === PTE_MIGRATION;
    return { val: perPage ? w.val + Math.floor(off) : w.val, flags: w.flags, order: w.order };
  }

  /**
   * Models one entry of /proc/pid/pagemap for `addr`: present (bit 63) with the pfn, or swapped
   * (bit 62: swap, migration, device-private and device-exclusive entries are all swap-type
   * entries), plus PM_MMAP_EXCLUSIVE (bit 56: a page mapped once) and PM_FILE (bit 61).
   */
  pagemapEntry(addr: number): {
    present: boolean;
    swap: boolean;
    file: boolean;
    exclusive: boolean;
    pfn: number;
  } {
    const e = this.readEntry(addr);
    const t = e.flags & PTE_TYPE_MASK;
    const p = this.phys;
    if (t === PTE_PRESENT) {
      const pfn = e.val;
      const normal = !p.isZeroPfn(pfn) && !(e.flags & PTE_SPECIAL);
      return {
        present: true,
        swap: false,
        file: normal && (p.flags[pfn]! & PG.anon) === 0,
        exclusive: normal && p.mapcount[pfn] === 1,
        pfn,
      };
    }
    return { present: false, swap: t !== PTE_NONE, file: false, exclusive: false, pfn: 0 };
  }

  // =============================================================================================
  // Rmap accounting helpers (synchronous: the "PTL" is held)
  // =============================================================================================

  /** page_add_*_rmap + get_page for an entry that maps `pfn` (present or device-private). */
  private mapRef(pfn: number): void {
    const p = this.phys;
    if (p.flags[pfn]! & PG.reserved) return;
    p.refcount[pfn]!++;
    p.mapcount[pfn]!++;
    this.rss++;
  }

  /** Drops what one entry (val, flags) holds: mapcount + ref, a swap reference, nothing for migration. */
  private releaseEntry(val: number, flags: number): void {
    const t = flags & PTE_TYPE_MASK;
    const p = this.phys;
    if (t === PTE_PRESENT || t === PTE_DEVICE_PRIVATE || t === PTE_DEVICE_EXCLUSIVE) {
      if (flags & PTE_SPECIAL) {
        if (!p.isZeroPfn(val) && !(p.flags[val]! & PG.reserved) && p.mapcount[val]! > 0) {
          p.mapcount[val]!--;
          this.rss--;
          p.putPage(val);
        }
        return;
      }
      if (p.flags[val]! & PG.reserved) return;
      if (flags & PTE_DIRTY) p.flags[val] = p.flags[val]! | PG.dirty;
      p.mapcount[val]!--;
      this.rss--;
      p.putPage(val);
    } else if (t === PTE_SWAP) {
      this.swapEntries--;
      p.swap.free(val);
    }
  }

  /** Models anon_vma_prepare(). */
  private anonVmaPrepare(vma: Vma): AnonVma {
    if (vma.anonVma === null) {
      const prev = this.vmas.findPrev(vma.start);
      // reuse a mergeable neighbour's anon_vma as find_mergeable_anon_vma does
      const a =
        prev !== null && prev.end === vma.start && prev.anonVma !== null && prev.file === vma.file
          ? prev.anonVma
          : this.machine.newAnonVma();
      a.mms.add(this);
      vma.anonVma = a;
    }
    return vma.anonVma;
  }

  /** Sets the rmap metadata of a new anonymous page mapped at `addr` of `vma`. */
  private setAnonRmap(pfn: number, vma: Vma, addr: number): void {
    const a = this.anonVmaPrepare(vma);
    const p = this.phys;
    p.flags[pfn] = (p.flags[pfn]! & ~PG.file) | PG.anon;
    p.mapping[pfn] = a.id;
    p.index[pfn] = vma.linearPageIndex(addr);
  }

  /** Bits of a present entry for `vma` before any write permission (vm_page_prot minus write). */
  private baseBits(vma: Vma): number {
    return vma.flags & VM_ACCESS_FLAGS ? PTE_PRESENT | PTE_R : PTE_PRESENT;
  }

  private thpEligible(vma: Vma, haddr: number): boolean {
    if (vma.file !== null || vma.flags & (VM_NOHUGEPAGE | VM_HUGETLB | VM_PFNMAP | VM_MIXEDMAP | VM_IO)) {
      return false;
    }
    const mode = this.machine.thp;
    if (mode === 'never') return false;
    if (mode === 'madvise' && !(vma.flags & VM_HUGEPAGE)) return false;
    return haddr >= vma.start && haddr + PMD_SIZE <= vma.end;
  }

  private hugetlbSize(vma: Vma): number {
    return typeof vma.privateData === 'number' ? vma.privateData : PMD_SIZE;
  }

  // =============================================================================================
  // Fault handling
  // =============================================================================================

  /**
   * Models handle_mm_fault(vma, address, flags): resolves one fault at `addr` inside `vma` and
   * returns 0 or VM_FAULT_* bits (VM_FAULT_ERROR bits mean the access cannot be satisfied). The
   * caller holds the mmap lock for read. A return of 0 means "retry the access": the entry may
   * still not allow it if it changed meanwhile (the CPU access loop and hmm re-walk).
   * `flags`: FAULT_FLAG_WRITE, FAULT_FLAG_REMOTE, FAULT_FLAG_USER.
   */
  async handleMmFault(vma: Vma, addr: number, flags: number): Promise<number> {
    if (!Number.isSafeInteger(addr) || addr < vma.start || addr >= vma.end) {
      throw new ArgumentError('Mm.handleMmFault', 'addr', 'must lie inside vma', addr);
    }
    const stats = this.machine.stats;
    stats.faults.value++;
    if (this.sim.trace.wants('mm.fault')) this.sim.trace.emit('mm.fault', this.id, addr, flags);
    this.sim.charge(this.sim.costs.cpuFaultNs);
    const write = (flags & FAULT_FLAG_WRITE) !== 0;
    if (write ? !(vma.flags & VM_WRITE) : !(vma.flags & VM_ACCESS_FLAGS)) return VM_FAULT_SIGSEGV;
    const realAddress = addr;
    addr = alignDown(addr, PAGE_SIZE);
    if (vma.flags & VM_HUGETLB) return this.hugetlbFault(vma, addr, write);

    const haddr = alignDown(addr, PMD_SIZE);
    let pmd = this.pt.pmdTable(addr, true)!;
    let mi = Math.floor(addr / PMD_SIZE) & 511;
    if (pmd.tables[mi] === null && pmd.flags[mi] === 0 && this.thpEligible(vma, haddr)) {
      const r = this.doHugePmdAnonymousPage(vma, haddr, pmd, mi, write);
      if (r >= 0) return r;
    }
    if (pmd.tables[mi] === null && pmd.flags[mi] !== 0) {
      const f = pmd.flags[mi]!;
      const t = f & PTE_TYPE_MASK;
      if (t === PTE_PRESENT) {
        if (!write || f & PTE_W) {
          pmd.flags[mi] = f | PTE_YOUNG | (write ? PTE_DIRTY : 0);
          return 0;
        }
        const r = await this.doHugePmdWpPage(vma, haddr, pmd, mi);
        if (r >= 0) return r;
        // fell back to the PTE level: the PMD was split
      } else if (t === PTE_MIGRATION) {
        await this.migrationEntryWait(pmd, mi, pmd.val[mi]!, f);
        return 0;
      } else if (t === PTE_DEVICE_PRIVATE) {
        // do_huge_pmd_device_private(): migrate_to_ram with the folio's head page, order 9
        return this.callMigrateToRam(vma, haddr, realAddress, pmd.val[mi]!, flags, 9);
      } else {
        await this.splitHugePmd(vma, haddr);
      }
      pmd = this.pt.pmdTable(addr, true)!;
      mi = Math.floor(addr / PMD_SIZE) & 511;
      if (pmd.tables[mi] === null && pmd.flags[mi] !== 0) return 0; // changed meanwhile: retry
    }
    const tbl = this.pt.pteTable(addr, true)!;
    const i = Math.floor(addr / PAGE_SIZE) & 511;
    const f = tbl.flags[i]!;
    const t = f & PTE_TYPE_MASK;
    switch (t) {
      case PTE_NONE:
        if (vma.file === null) return this.doAnonymousPage(vma, addr, tbl, i, write);
        return this.doFault(vma, addr, tbl, i, write);
      case PTE_PRESENT:
        if (!(f & PTE_R) && vma.flags & VM_ACCESS_FLAGS) tbl.flags[i] = f | PTE_R; // protnone hint
        if (write && !(f & PTE_W)) return this.doWpPage(vma, addr, tbl, i);
        tbl.flags[i] = tbl.flags[i]! | PTE_YOUNG | (write ? PTE_DIRTY : 0);
        return 0;
      case PTE_SWAP:
        return this.doSwapPage(vma, addr, tbl, i, write);
      case PTE_MIGRATION:
        await this.migrationEntryWait(tbl, i, tbl.val[i]!, f);
        return 0;
      case PTE_DEVICE_PRIVATE:
        return this.doDevicePrivateFault(vma, addr, realAddress, tbl, i, flags);
      case PTE_DEVICE_EXCLUSIVE:
        return this.removeDeviceExclusiveEntry(vma, addr, tbl, i);
      default:
        return VM_FAULT_SIGBUS;
    }
  }

  /** Models migration_entry_wait(): sleeps until the migrating page is unlocked or the entry changed. */
  private async migrationEntryWait(t: PteTable | PmdTable, i: number, pfn: number, f: number): Promise<void> {
    const p = this.phys;
    const head = p.compoundHead(pfn); // the folio lock lives on the head page
    if (!p.isPageLocked(head)) return;
    await p.pageLockWq.waitEvent(() => !p.isPageLocked(head) || t.flags[i] !== f || t.val[i] !== pfn);
  }

  /** do_anonymous_page(): zero page on read, a new zeroed page on write. */
  private doAnonymousPage(vma: Vma, addr: number, t: PteTable, i: number, write: boolean): number {
    if (!write && !(vma.flags & VM_SHARED)) {
      setEntry(t, i, ZERO_PFN, PTE_PRESENT | PTE_R | PTE_SPECIAL | PTE_YOUNG);
      return 0;
    }
    const pfn = this.phys.allocPage(this.node, PG.anon | PG.anonExclusive);
    if (pfn < 0) return VM_FAULT_OOM;
    this.sim.charge(this.sim.costs.cpuPageZeroNs);
    this.setAnonRmap(pfn, vma, addr);
    this.phys.mapcount[pfn] = 1; // the allocation's reference becomes the mapping's
    this.rss++;
    setEntry(t, i, pfn, PRESENT_RY | PTE_W | PTE_DIRTY);
    return 0;
  }

  /** do_huge_pmd_anonymous_page(): huge zero page on read, a THP on write; -1 = fall back. */
  private doHugePmdAnonymousPage(vma: Vma, haddr: number, pmd: PmdTable, mi: number, write: boolean): number {
    if (!write && this.machine.useHugeZeroPage) {
      setEntry(pmd, mi, HUGE_ZERO_PFN, PTE_PRESENT | PTE_R | PTE_SPECIAL | PTE_YOUNG);
      return 0;
    }
    const head = this.phys.allocFolio(this.node, 9, PG.anon | PG.anonExclusive);
    if (head < 0) return -1;
    this.installThp(vma, haddr, head, pmd, mi);
    return 0;
  }

  private installThp(vma: Vma, haddr: number, head: number, pmd: PmdTable, mi: number): void {
    const p = this.phys;
    const a = this.anonVmaPrepare(vma);
    const idx = vma.linearPageIndex(haddr);
    for (let k = 0; k < HPAGE_PMD_NR; k++) {
      const pfn = head + k;
      p.mapping[pfn] = a.id;
      p.index[pfn] = idx + k;
      p.mapcount[pfn] = 1;
    }
    this.rss += HPAGE_PMD_NR;
    this.machine.stats.thpAlloc.value++;
    this.sim.charge(this.sim.costs.cpuPageZeroNs * HPAGE_PMD_NR);
    const w = vma.flags & VM_WRITE ? PTE_W | PTE_DIRTY : 0;
    setEntry(pmd, mi, head, PRESENT_RY | w);
  }

  /** do_huge_pmd_wp_page(): reuse an exclusive THP, replace the huge zero page, else split (-1). */
  private async doHugePmdWpPage(vma: Vma, haddr: number, pmd: PmdTable, mi: number): Promise<number> {
    const p = this.phys;
    const head = pmd.val[mi]!;
    if (head === HUGE_ZERO_PFN) {
      const nh = p.allocFolio(this.node, 9, PG.anon | PG.anonExclusive);
      if (nh >= 0) {
        const r = await this.invStart(MmuNotifyEvent.CLEAR, haddr, haddr + PMD_SIZE);
        if (pmd.val[mi] === HUGE_ZERO_PFN && pmd.tables[mi] === null && pmd.flags[mi] !== 0) {
          setEntry(pmd, mi, 0, 0);
          this.installThp(vma, haddr, nh, pmd, mi);
          this.machine.stats.cow.value++;
          this.flushTlb();
        } else {
          for (let k = 0; k < HPAGE_PMD_NR; k++) p.putPage(nh + k);
        }
        await this.invEnd(r);
        return 0;
      }
      await this.splitHugePmd(vma, haddr);
      return -1;
    }
    let exclusive = true;
    for (let k = 0; k < HPAGE_PMD_NR && exclusive; k++) {
      if (p.mapcount[head + k] !== 1 || p.refcount[head + k] !== 1) exclusive = false;
    }
    if (exclusive) {
      pmd.flags[mi] = pmd.flags[mi]! | PTE_W | PTE_DIRTY | PTE_YOUNG;
      return 0;
    }
    await this.splitHugePmd(vma, haddr);
    return -1;
  }

  /**
   * Models __split_huge_pmd(): turns the PMD leaf mapping `haddr` into a PTE table (a THP's
   * subpages, the huge zero page's small zero pages, 512 migration or device-private entries),
   * inside a CLEAR invalidation of the 2 MiB range. The folio itself stays compound.
   */
  async splitHugePmd(vma: Vma, addr: number): Promise<void> {
    const haddr = alignDown(addr, PMD_SIZE);
    const pmd0 = this.pt.pmdTable(haddr, false);
    const mi = Math.floor(haddr / PMD_SIZE) & 511;
    if (pmd0 === null || pmd0.tables[mi] !== null || pmd0.flags[mi] === 0) return;
    if (vma.flags & VM_HUGETLB) return;
    const r = await this.invStart(MmuNotifyEvent.CLEAR, haddr, haddr + PMD_SIZE);
    const pmd = this.pt.pmdTable(haddr, false);
    if (pmd !== null && pmd.tables[mi] === null && pmd.flags[mi] !== 0) {
      const f = pmd.flags[mi]!;
      const v = pmd.val[mi]!;
      const t = new PteTable();
      const type = f & PTE_TYPE_MASK;
      if (v === HUGE_ZERO_PFN && type === PTE_PRESENT) {
        for (let k = 0; k < HPAGE_PMD_NR; k++) {
          t.val[k] = ZERO_PFN;
          t.flags[k] = f & ~PTE_W;
        }
      } else {
        for (let k = 0; k < HPAGE_PMD_NR; k++) {
          t.val[k] = v + k;
          t.flags[k] = f;
        }
      }
      t.used = HPAGE_PMD_NR;
      setEntry(pmd, mi, 0, 0);
      this.pt.installPteTable(pmd, mi, t);
      this.machine.stats.thpSplit.value++;
      this.flushTlb();
    }
    await this.invEnd(r);
  }

  /** Splits the PMD leaves that straddle `start` or `end` inside `vma` (vma_adjust_trans_huge). */
  private async splitBoundaries(vma: Vma, start: number, end: number): Promise<void> {
    if (vma.flags & VM_HUGETLB) return;
    if (start % PMD_SIZE !== 0 && start > vma.start) await this.splitHugePmd(vma, start);
    if (end % PMD_SIZE !== 0 && end < vma.end) await this.splitHugePmd(vma, end);
  }

  /** do_fault(): file-backed (shmem page cache) read, COW or shared fault. */
  private doFault(vma: Vma, addr: number, t: PteTable, i: number, write: boolean): number {
    const file = vma.file;
    if (!(file instanceof TmpFile)) return VM_FAULT_SIGBUS;
    const idx = vma.linearPageIndex(addr);
    const ino = file.inode;
    if (idx >= Math.ceil(ino.size / PAGE_SIZE)) return VM_FAULT_SIGBUS;
    const pc = ino.findOrCreate(idx);
    if (pc < 0) return VM_FAULT_OOM;
    const p = this.phys;
    if (write && !(vma.flags & VM_SHARED)) {
      // do_cow_fault
      const pfn = p.allocPage(this.node, PG.anon | PG.anonExclusive);
      if (pfn < 0) return VM_FAULT_OOM;
      p.copyPage(pfn, pc);
      this.sim.charge(this.sim.costs.cpuPageCopyNs);
      this.setAnonRmap(pfn, vma, addr);
      p.mapcount[pfn] = 1;
      this.rss++;
      setEntry(t, i, pfn, PRESENT_RY | PTE_W | PTE_DIRTY);
      return 0;
    }
    this.mapRef(pc);
    const w = vma.flags & VM_SHARED && vma.flags & VM_WRITE ? PTE_W : 0;
    setEntry(t, i, pc, PRESENT_RY | w | (write ? PTE_DIRTY : 0));
    if (write) p.flags[pc] = p.flags[pc]! | PG.dirty;
    return 0;
  }

  /** True when an anonymous page may be reused for writing (wp_can_reuse_anon_folio). */
  private canReuseAnon(pfn: number): boolean {
    const p = this.phys;
    const f = p.flags[pfn]!;
    if (!(f & PG.anon) || f & PG.reserved || this.phys.isDevicePrivatePage(pfn)) return false;
    if (p.mapcount[pfn] !== 1 || p.refcount[pfn] !== 1) return false;
    if (f & PG.swapcache) p.swap.dropCache(pfn);
    return true;
  }

  /** do_wp_page(): a write to a present read-only entry in a writable VMA. */
  private async doWpPage(vma: Vma, addr: number, t: PteTable, i: number): Promise<number> {
    const f = t.flags[i]!;
    const pfn = t.val[i]!;
    if (vma.flags & VM_SHARED) {
      // wp_page_shared / wp_pfn_shared
      t.flags[i] = f | PTE_W | PTE_DIRTY | PTE_YOUNG;
      if (!this.phys.isZeroPfn(pfn)) this.phys.flags[pfn] = this.phys.flags[pfn]! | PG.dirty;
      return 0;
    }
    if (!this.phys.isZeroPfn(pfn) && this.canReuseAnon(pfn)) {
      t.flags[i] = f | PTE_W | PTE_DIRTY | PTE_YOUNG;
      this.phys.flags[pfn] = this.phys.flags[pfn]! | PG.anonExclusive;
      return 0;
    }
    return this.wpPageCopy(vma, addr, pfn, f);
  }

  /** wp_page_copy(): COW a page (or the zero page) inside a CLEAR invalidation of that page. */
  private async wpPageCopy(vma: Vma, addr: number, oldPfn: number, oldFlags: number): Promise<number> {
    const p = this.phys;
    const isZero = p.isZeroPfn(oldPfn);
    const pfn = p.allocPage(this.node, PG.anon | PG.anonExclusive);
    if (pfn < 0) return VM_FAULT_OOM;
    if (isZero) this.sim.charge(this.sim.costs.cpuPageZeroNs);
    else {
      p.copyPage(pfn, oldPfn);
      this.sim.charge(this.sim.costs.cpuPageCopyNs);
    }
    const r = await this.invStart(MmuNotifyEvent.CLEAR, addr, addr + PAGE_SIZE);
    const t = this.pt.pteTable(addr, false);
    const i = Math.floor(addr / PAGE_SIZE) & 511;
    if (t !== null && t.flags[i] === oldFlags && t.val[i] === oldPfn) {
      this.setAnonRmap(pfn, vma, addr);
      p.mapcount[pfn] = 1;
      this.rss++;
      this.releaseEntry(oldPfn, oldFlags);
      setEntry(t, i, pfn, PRESENT_RY | PTE_W | PTE_DIRTY);
      this.machine.stats.cow.value++;
      this.flushTlb();
    } else {
      p.putPage(pfn);
    }
    await this.invEnd(r);
    return 0;
  }

  /** do_swap_page() for a real swap entry. */
  private doSwapPage(vma: Vma, addr: number, t: PteTable, i: number, write: boolean): number {
    const p = this.phys;
    const sw = p.swap;
    const slot = t.val[i]!;
    let pfn = sw.cache[slot]!;
    let ret = 0;
    if (pfn >= 0) {
      p.getPage(pfn);
    } else {
      pfn = p.allocPage(this.node, PG.anon);
      if (pfn < 0) return VM_FAULT_OOM;
      const last = sw.count[slot] === 1;
      sw.readIn(slot, pfn, last);
      if (!last) sw.addToCache(slot, pfn);
      this.setAnonRmap(pfn, vma, addr);
      this.machine.stats.swapIn.value++;
      this.machine.stats.majorFaults.value++;
      this.sim.charge(this.sim.costs.swapIoPerPageNs);
      ret = VM_FAULT_MAJOR;
    }
    p.mapcount[pfn]!++;
    this.rss++;
    this.swapEntries--;
    sw.free(slot);
    const exclusive = p.mapcount[pfn] === 1 && p.refcount[pfn] === 1 && !(p.flags[pfn]! & PG.swapcache);
    const wbits = exclusive && write && vma.flags & VM_WRITE ? PTE_W | PTE_DIRTY : 0;
    t.flags[i] = 0;
    t.used--;
    setEntry(t, i, pfn, this.baseBits(vma) | PTE_YOUNG | wbits);
    return ret;
  }

  /** do_swap_page() for a device-private entry: calls the pagemap's migrate_to_ram(). */
  private async doDevicePrivateFault(
    vma: Vma,
    addr: number,
    realAddress: number,
    t: PteTable,
    i: number,
    flags: number,
  ): Promise<number> {
    return this.callMigrateToRam(vma, addr, realAddress, t.val[i]!, flags, 0);
  }

  /**
   * do_swap_page()'s device-private branch (Linux 6.15+): trylock the device page FIRST and
   * take the reference only once locked; the loser of a concurrent fault waits for the page
   * lock WITHOUT a reference (migration_entry_wait_on_locked) and retries the access. A waiter
   * holding a reference would make the winner's migrate_vma_setup() see the page as pinned
   * (migrate_vma_check_page) and restore it, so eight readers of one page never made progress.
   * The winner calls the pagemap's migrate_to_ram(), then unlocks and puts the page.
   */
  private async callMigrateToRam(
    vma: Vma,
    addr: number,
    realAddress: number,
    dpfn: number,
    flags: number,
    order: number,
  ): Promise<number> {
    const p = this.phys;
    const pgmap = p.pagemapOf(dpfn);
    if (pgmap === null) return VM_FAULT_SIGBUS;
    if (!p.trylockPage(dpfn)) {
      await p.pageLockWq.waitEvent(() => !p.isPageLocked(dpfn));
      return 0;
    }
    p.getPage(dpfn);
    this.machine.stats.devicePrivateFaults.value++;
    const vmf: VmFault = {
      vma,
      mm: this,
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
  private async removeDeviceExclusiveEntry(vma: Vma, addr: number, t0: PteTable, i: number): Promise<number> {
    const p = this.phys;
    const f = t0.flags[i]!;
    const pfn = t0.val[i]!;
    p.getPage(pfn);
    if (!p.trylockPage(pfn)) {
      p.putPage(pfn);
      await p.pageLockWq.waitEvent(() => !p.isPageLocked(pfn));
      return 0;
    }
    const r = await this.invStart(MmuNotifyEvent.EXCLUSIVE, addr, addr + PAGE_SIZE, null);
    const t = this.pt.pteTable(addr, false);
    if (t !== null && t.flags[i] === f && t.val[i] === pfn) {
      t.flags[i] = this.baseBits(vma) | PTE_YOUNG | (f & PTE_W) | (f & PTE_DIRTY);
    }
    await this.invEnd(r);
    p.unlockPage(pfn);
    p.putPage(pfn);
    return 0;
  }

  /** hugetlb_fault(): allocate from the pool, COW on write to a shared private page. */
  private async hugetlbFault(vma: Vma, addr: number, write: boolean): Promise<number> {
    const size = this.hugetlbSize(vma);
    const haddr = alignDown(addr, size);
    const p = this.phys;
    const isPud = size === PUD_SIZE;
    const tbl: PmdTable | ReturnType<PageTable['pudTable']> = isPud
      ? this.pt.pudTable(haddr, true)
      : this.pt.pmdTable(haddr, true);
    if (tbl === null) return VM_FAULT_SIGBUS;
    const idx = isPud ? Math.floor(haddr / PUD_SIZE) & 511 : Math.floor(haddr / PMD_SIZE) & 511;
    const f = tbl.flags[idx]!;
    const order = isPud ? 18 : 9;
    const nr = 2 ** order;
    const shared = (vma.flags & VM_SHARED) !== 0;
    const wbit = vma.flags & VM_WRITE && (shared || write) ? PTE_W | PTE_DIRTY : 0;
    if (f === 0) {
      const head = this.allocHugetlb(order);
      if (head < 0) return VM_FAULT_SIGBUS;
      this.setHugeRmap(vma, haddr, head, nr);
      setEntry(tbl, idx, head, PRESENT_RY | wbit);
      return 0;
    }
    if ((f & PTE_TYPE_MASK) !== PTE_PRESENT) return VM_FAULT_SIGBUS;
    if (!write || f & PTE_W) {
      tbl.flags[idx] = f | PTE_YOUNG;
      return 0;
    }
    if (shared) {
      tbl.flags[idx] = f | PTE_W | PTE_DIRTY;
      return 0;
    }
    const old = tbl.val[idx]!;
    if (p.mapcount[old] === 1 && p.refcount[old] === 1) {
      tbl.flags[idx] = f | PTE_W | PTE_DIRTY;
      return 0;
    }
    const head = this.allocHugetlb(order);
    if (head < 0) return VM_FAULT_SIGBUS;
    for (let k = 0; k < nr; k++) p.copyPage(head + k, old + k);
    this.sim.charge(this.sim.costs.cpuPageCopyNs * nr);
    const r = await this.invStart(MmuNotifyEvent.CLEAR, haddr, haddr + size);
    if (tbl.flags[idx] === f && tbl.val[idx] === old) {
      this.releaseHuge(old, f, nr);
      this.setHugeRmap(vma, haddr, head, nr);
      setEntry(tbl, idx, head, PRESENT_RY | PTE_W | PTE_DIRTY);
      this.machine.stats.cow.value++;
      this.flushTlb();
    } else {
      for (let k = 0; k < nr; k++) p.putPage(head + k);
    }
    await this.invEnd(r);
    return 0;
  }

  private allocHugetlb(order: 9 | 18): number {
    const p = this.phys;
    if (order === 9 ? p.hugetlbFree <= 0 : p.hugetlbPudFree <= 0) return -1;
    const head = p.allocFolio(this.node, order, PG.hugetlb);
    if (head < 0) return -1;
    if (order === 9) p.hugetlbFree--;
    else p.hugetlbPudFree--;
    return head;
  }

  private setHugeRmap(vma: Vma, haddr: number, head: number, nr: number): void {
    const p = this.phys;
    const anon = vma.file === null && !(vma.flags & VM_SHARED);
    const a = anon ? this.anonVmaPrepare(vma) : null;
    const idx = vma.linearPageIndex(haddr);
    for (let k = 0; k < nr; k++) {
      p.mapcount[head + k] = 1;
      p.mapping[head + k] = a === null ? 0 : a.id;
      p.index[head + k] = idx + k;
      if (a !== null) p.flags[head + k] = p.flags[head + k]! | PG.anon;
    }
    this.rss += nr;
  }

  /** Drops a huge leaf's references (every subpage). */
  private releaseHuge(head: number, f: number, nr: number): void {
    const p = this.phys;
    const t = f & PTE_TYPE_MASK;
    if (t === PTE_MIGRATION) return;
    if (p.flags[head]! & PG.reserved) return;
    for (let k = 0; k < nr; k++) {
      const pfn = head + k;
      if (f & PTE_DIRTY) p.flags[pfn] = p.flags[pfn]! | PG.dirty;
      p.mapcount[pfn]!--;
      p.putPage(pfn);
    }
    this.rss -= nr;
  }

  // =============================================================================================
  // CPU loads and stores
  // =============================================================================================

  /**
   * Resolves the frame behind `addr` for a CPU access, faulting as needed (the x86 page-fault
   * handler: takes the mmap lock for read, checks the VMA, calls handleMmFault, retries).
   * Returns the pfn. Throws {@link MmSignalError} for SIGSEGV / SIGBUS.
   */
  private async resolve(exact: number, write: boolean): Promise<number> {
    const addr = exact - (exact % PAGE_SIZE);
    for (let tries = 0; ; tries++) {
      const pfn = this.fastLookup(addr, write);
      if (pfn >= 0) return pfn;
      if (tries > 1000)
        throw new StateError(FN.access, `fault at 0x${addr.toString(16)} does not make progress`);
      await this.mmapLock.read();
      let ret: number;
      try {
        const vma = this.vmas.lookup(addr);
        if (vma === null) throw new MmSignalError('SIGSEGV', exact, 'SEGV_MAPERR');
        const ok = write ? vma.flags & VM_WRITE : vma.flags & VM_ACCESS_FLAGS;
        if (!ok) throw new MmSignalError('SIGSEGV', exact, 'SEGV_ACCERR');
        ret = await this.handleMmFault(vma, exact, FAULT_FLAG_USER | (write ? FAULT_FLAG_WRITE : 0));
      } finally {
        this.mmapLock.readUnlock();
      }
      if (ret & VM_FAULT_SIGSEGV) throw new MmSignalError('SIGSEGV', exact, 'SEGV_ACCERR');
      if (ret & (VM_FAULT_SIGBUS | VM_FAULT_OOM)) throw new MmSignalError('SIGBUS', exact, 'BUS_ADRERR');
    }
  }

  /** The pfn a present, sufficiently permissive entry maps at `addr`, else -1 (marks young/dirty). */
  private fastLookup(addr: number, write: boolean): number {
    const pmd = this.pt.pmdTable(addr, false);
    if (pmd === null) {
      const pud = this.pt.pudTable(addr, false);
      if (pud === null) return -1;
      const ui = Math.floor(addr / PUD_SIZE) & 511;
      const f = pud.flags[ui]!;
      if ((f & (PTE_TYPE_MASK | PTE_R)) !== (PTE_PRESENT | PTE_R) || (write && !(f & PTE_W))) return -1;
      pud.flags[ui] = f | PTE_YOUNG | (write ? PTE_DIRTY : 0);
      return pud.val[ui]! + (Math.floor(addr / PAGE_SIZE) % (PUD_SIZE / PAGE_SIZE));
    }
    const mi = Math.floor(addr / PMD_SIZE) & 511;
    const t = pmd.tables[mi]!;
    if (t === null) {
      const f = pmd.flags[mi]!;
      if ((f & (PTE_TYPE_MASK | PTE_R)) !== (PTE_PRESENT | PTE_R) || (write && !(f & PTE_W))) return -1;
      pmd.flags[mi] = f | PTE_YOUNG | (write ? PTE_DIRTY : 0);
      const v = pmd.val[mi]!;
      return v + (Math.floor(addr / PAGE_SIZE) & 511);
    }
    const i = Math.floor(addr / PAGE_SIZE) & 511;
    const f = t.flags[i]!;
    if ((f & (PTE_TYPE_MASK | PTE_R)) !== (PTE_PRESENT | PTE_R) || (write && !(f & PTE_W))) return -1;
    t.flags[i] = f | PTE_YOUNG | (write ? PTE_DIRTY : 0);
    return t.val[i]!;
  }

  private checkAccessArgs(addr: number, len: number): void {
    if (!Number.isSafeInteger(addr) || addr < 0) {
      throw new ArgumentError(FN.access, 'addr', 'must be a non-negative safe integer', addr);
    }
    if (!Number.isSafeInteger(len) || len < 0) {
      throw new ArgumentError(FN.access, 'length', 'must be a non-negative safe integer', len);
    }
  }

  /**
   * A CPU load of `dst.length` bytes at `addr` into `dst` (faulting pages in as a user access
   * does). Throws {@link MmSignalError} (SIGSEGV / SIGBUS) at the first page that cannot be read.
   */
  async readInto(addr: number, dst: Uint8Array): Promise<void> {
    this.checkAccessArgs(addr, dst.length);
    await this.copyUser(addr, dst, false);
  }

  /** Page by page through the page tables: `buf` → memory when `write`, memory → `buf` otherwise. */
  private async copyUser(addr: number, buf: Uint8Array, write: boolean): Promise<void> {
    let done = 0;
    while (done < buf.length) {
      const a = addr + done;
      const off = a % PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - off, buf.length - done);
      const pfn = await this.resolve(a, write);
      if (write) this.phys.writePage(pfn, off, buf, done, n);
      else this.phys.readPage(pfn, off, buf, done, n);
      if (this.sim.trace.wants('mm.access'))
        this.sim.trace.emit('mm.access', this.id, a, write, buf, done, n);
      done += n;
    }
  }

  /** A CPU load of `length` bytes at `addr`. */
  async read(addr: number, length: number): Promise<Uint8Array> {
    this.checkAccessArgs(addr, length);
    const out = new Uint8Array(length);
    await this.readInto(addr, out);
    return out;
  }

  /**
   * A CPU store of `src` at `addr` (write faults, COW breaks as needed). Pages before a failing
   * page keep what was stored, as on real hardware.
   */
  async write(addr: number, src: Uint8Array): Promise<void> {
    this.checkAccessArgs(addr, src.length);
    await this.copyUser(addr, src, true);
  }

  /** Touches every page of [addr, addr+length) with a load or a store of nothing (faults only). */
  async touch(addr: number, length: number, write: boolean): Promise<void> {
    this.checkAccessArgs(addr, length);
    const end = addr + length;
    for (let a = addr; a < end; a = alignDown(a, PAGE_SIZE) + PAGE_SIZE) await this.resolve(a, write);
  }

  /** Loads `n` bytes at `addr` into a fresh buffer (per call: concurrent tasks must not share one). */
  private async loadScalar(addr: number, n: number): Promise<DataView> {
    const bytes = new Uint8Array(8);
    if (addr % PAGE_SIZE <= PAGE_SIZE - n) {
      this.checkAccessArgs(addr, n);
      const pfn = await this.resolve(addr, false);
      this.phys.readPage(pfn, addr % PAGE_SIZE, bytes, 0, n);
      if (this.sim.trace.wants('mm.access'))
        this.sim.trace.emit('mm.access', this.id, addr, false, bytes, 0, n);
    } else await this.readInto(addr, bytes.subarray(0, n));
    return new DataView(bytes.buffer);
  }

  private scalar(n: number, set: (d: DataView) => void): Uint8Array {
    const d = new DataView(new ArrayBuffer(8));
    set(d);
    return new Uint8Array(d.buffer, 0, n);
  }

  /** Loads a byte. */
  async readU8(addr: number): Promise<number> {
    return (await this.loadScalar(addr, 1)).getUint8(0);
  }
  /** Loads a little-endian u32. */
  async readU32(addr: number): Promise<number> {
    return (await this.loadScalar(addr, 4)).getUint32(0, true);
  }
  /** Loads a little-endian i32. */
  async readI32(addr: number): Promise<number> {
    return (await this.loadScalar(addr, 4)).getInt32(0, true);
  }
  /** Loads a little-endian f64. */
  async readF64(addr: number): Promise<number> {
    return (await this.loadScalar(addr, 8)).getFloat64(0, true);
  }
  /** Stores a byte. */
  async writeU8(addr: number, v: number): Promise<void> {
    await this.write(
      addr,
      this.scalar(1, (d) => d.setUint8(0, v)),
    );
  }
  /** Stores a little-endian u32. */
  async writeU32(addr: number, v: number): Promise<void> {
    await this.write(
      addr,
      this.scalar(4, (d) => d.setUint32(0, v, true)),
    );
  }
  /** Stores a little-endian i32. */
  async writeI32(addr: number, v: number): Promise<void> {
    await this.write(
      addr,
      this.scalar(4, (d) => d.setInt32(0, v, true)),
    );
  }
  /** Stores a little-endian f64. */
  async writeF64(addr: number, v: number): Promise<void> {
    await this.write(
      addr,
      this.scalar(8, (d) => d.setFloat64(0, v, true)),
    );
  }

  /** Reads `count` little-endian i32 at `addr` (a CPU load loop). */
  async readI32Array(addr: number, count: number): Promise<Int32Array> {
    const b = await this.read(addr, count * 4);
    return new Int32Array(b.buffer, b.byteOffset, count);
  }

  /** Stores `values` as little-endian i32 at `addr`. */
  async writeI32Array(addr: number, values: Int32Array): Promise<void> {
    await this.write(addr, new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  }

  // =============================================================================================
  // VMA structure helpers
  // =============================================================================================

  private linkVma(vma: Vma): void {
    this.vmas.insert(vma);
    vma.file?.mappings.add(vma);
    vma.anonVma?.mms.add(this);
  }

  private unlinkVma(vma: Vma): void {
    this.vmas.remove(vma);
    vma.file?.mappings.delete(vma);
  }

  /** Models __split_vma(): `vma` keeps [start, at), a new VMA gets [at, end). Returns the new one. */
  private async splitVma(vma: Vma, at: number): Promise<Vma> {
    await this.splitBoundaries(vma, at, at);
    const nv = new Vma(
      this,
      at,
      vma.end,
      vma.flags,
      vma.pgoff + (at - vma.start) / PAGE_SIZE,
      vma.file,
      vma.anonVma,
    );
    nv.privateData = vma.privateData;
    vma.end = at;
    this.linkVma(nv);
    return nv;
  }

  /** Isolates [start, end) of `vma` into its own VMA (splitting as needed) and returns it. */
  private async isolate(vma: Vma, start: number, end: number): Promise<Vma> {
    let v = vma;
    if (start > v.start) v = await this.splitVma(v, start);
    if (end < v.end) await this.splitVma(v, end);
    return v;
  }

  /** Merges `vma` with its neighbours where vma_merge would. Returns the surviving VMA. */
  private mergeAround(vma: Vma): Vma {
    let v = vma;
    const prev = this.vmas.prev(v);
    if (prev !== null && vmasMergeable(prev, v)) {
      this.unlinkVma(v);
      prev.end = v.end;
      prev.anonVma ??= v.anonVma;
      v = prev;
    }
    const next = this.vmas.next(v);
    if (next !== null && vmasMergeable(v, next)) {
      this.unlinkVma(next);
      v.end = next.end;
      v.anonVma ??= next.anonVma;
    }
    return v;
  }

  /** Number of splits (new VMAs) needed to cut [start, end) out of the VMAs it overlaps. */
  private splitsNeeded(start: number, end: number): number {
    let n = 0;
    const first = this.vmas.lookup(start);
    if (first !== null && first.start < start) n++;
    const last = this.vmas.lookup(end - 1);
    if (last !== null && last.end > end) n++;
    if (n === 2 && first === last) return 1;
    return n;
  }

  // =============================================================================================
  // Zap (unmap_page_range / zap_page_range_single)
  // =============================================================================================

  /**
   * Clears every entry of [start, end) inside `vma`, dropping references. PMD leaves only
   * partly covered are split first (a nested CLEAR invalidation, as zap_pmd_range does). The
   * caller issues the surrounding invalidation. Returns true if a present entry was cleared.
   */
  private async zapRange(vma: Vma, start: number, end: number, freeTables: boolean): Promise<boolean> {
    const w = new PageWalk();
    let flushed = false;
    let a = start;
    while (a < end) {
      this.pt.walkUnit(a, end, w);
      if (w.kind === WALK_HOLE) {
        a = w.end;
        continue;
      }
      if (w.kind === WALK_PUD_LEAF || w.kind === WALK_PMD_LEAF) {
        const size = w.kind === WALK_PUD_LEAF ? PUD_SIZE : PMD_SIZE;
        const covered = w.leafStart >= start && w.leafStart + size <= end;
        if (!covered && !(vma.flags & VM_HUGETLB)) {
          await this.splitHugePmd(vma, a);
          continue;
        }
        const tbl = w.kind === WALK_PUD_LEAF ? this.pt.pudTable(a, false)! : w.pmd!;
        this.releaseHuge(w.val, w.flags, size / PAGE_SIZE);
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
        this.releaseEntry(t.val[i]!, f);
        t.flags[i] = 0;
        t.val[i] = 0;
        t.used--;
      }
      if (freeTables && t.used === 0 && a % PMD_SIZE === 0 && w.end - a === PMD_SIZE) {
        this.pt.freePteTable(w.pmd!, w.slot);
      }
      a = w.end;
    }
    if (flushed) this.flushTlb();
    return flushed;
  }

  // =============================================================================================
  // mmap / munmap
  // =============================================================================================

  /**
   * Models mmap(2). Returns the address, or a negative errno: -EINVAL (len 0, bad flags,
   * unaligned MAP_FIXED address or offset), -ENOMEM (overflow, no room, VMA limit, hugetlb
   * pool empty), -EACCES (file open mode), -EPERM (below mmap_min_addr), -EEXIST
   * (MAP_FIXED_NOREPLACE), -EOPNOTSUPP (MAP_SHARED_VALIDATE with unknown flags), -EBADF (no file
   * for a file mapping), -EOVERFLOW (offset + length). Unknown flags are ignored except with
   * MAP_SHARED_VALIDATE, as in Linux.
   */
  async mmap(
    addr: number,
    length: number,
    prot: number,
    flags: number,
    file: MmFile | null = null,
    offset = 0,
  ): Promise<number> {
    const fn = FN.mmap;
    for (const [name, v] of [
      ['addr', addr],
      ['length', length],
      ['prot', prot],
      ['flags', flags],
      ['offset', offset],
    ] as const) {
      if (!Number.isSafeInteger(v) || v < 0)
        throw new ArgumentError(fn, name, 'must be a non-negative safe integer', v);
    }
    if (offset % PAGE_SIZE !== 0) return -Errno.EINVAL;
    const anon = (flags & MAP_ANONYMOUS) !== 0;
    if (!anon && file === null) return -Errno.EBADF;
    if (anon) file = null;
    let hugeSize = 0;
    if (flags & MAP_HUGETLB) {
      if (file !== null) return -Errno.EINVAL;
      const log = Math.floor(flags / 2 ** MAP_HUGE_SHIFT) & MAP_HUGE_MASK;
      if (log === 0 || log === 21) hugeSize = PMD_SIZE;
      else if (log === 30) hugeSize = PUD_SIZE;
      else return -Errno.EINVAL;
      length = Math.ceil(length / hugeSize) * hugeSize;
    }
    if (length === 0) return -Errno.EINVAL;
    const len = pageAlign(length);
    if (len > TASK_SIZE) return -Errno.ENOMEM;
    const pgoff = offset / PAGE_SIZE;
    if (!Number.isSafeInteger(pgoff + len / PAGE_SIZE)) return -Errno.EOVERFLOW;
    let vmFlags = calcVmProtBits(prot) | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC;
    if (flags & MAP_LOCKED) vmFlags |= VM_LOCKED;
    if (flags & MAP_NORESERVE) vmFlags |= VM_NORESERVE;
    if (hugeSize !== 0) vmFlags |= VM_HUGETLB;
    const type = flags & MAP_TYPE;
    if (type === MAP_SHARED_VALIDATE) {
      if (flags & ~LEGACY_MAP_MASK & ~(MAP_HUGE_MASK * 2 ** MAP_HUGE_SHIFT)) return -Errno.EOPNOTSUPP;
      if (flags & MAP_SYNC) return -Errno.EOPNOTSUPP;
    }
    if (type !== MAP_SHARED && type !== MAP_SHARED_VALIDATE && type !== MAP_PRIVATE) return -Errno.EINVAL;
    const shared = type !== MAP_PRIVATE;
    if (file !== null) {
      if (shared) {
        if (prot & PROT_WRITE && !file.writable) return -Errno.EACCES;
        vmFlags |= VM_SHARED | VM_MAYSHARE;
        if (!file.writable) vmFlags &= ~(VM_MAYWRITE | VM_SHARED);
      }
      if (!file.readable) return -Errno.EACCES;
    } else if (shared) vmFlags |= VM_SHARED | VM_MAYSHARE;

    const fixed = (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) !== 0;
    const align = hugeSize !== 0 ? hugeSize : PAGE_SIZE;
    let start: number;
    if (fixed) {
      if (addr % align !== 0) return -Errno.EINVAL;
      if (addr > TASK_SIZE - len) return -Errno.ENOMEM;
      if (addr < MMAP_MIN_ADDR) return -Errno.EPERM;
      start = addr;
    } else start = -1;

    await this.mmapLock.write();
    try {
      if (this.mmUsers === 0) return -Errno.ENOMEM;
      if (start < 0) {
        start = this.getUnmappedArea(addr, len, align);
        if (start < 0) return -Errno.ENOMEM;
      } else if (flags & MAP_FIXED_NOREPLACE && this.vmas.overlapping(start, start + len).length !== 0) {
        return -Errno.EEXIST;
      }
      const end = start + len;
      const overl = this.vmas.overlapping(start, end);
      for (const v of overl)
        if (v.flags & VM_HUGETLB && this.hugetlbMisaligned(v, start, end)) return -Errno.EINVAL;
      if (this.vmas.size - overl.length + this.splitsNeeded(start, end) + 1 > this.machine.maxMapCount) {
        return -Errno.ENOMEM;
      }
      if (hugeSize !== 0) {
        const need = len / hugeSize;
        const free = hugeSize === PMD_SIZE ? this.phys.hugetlbFree : this.phys.hugetlbPudFree;
        if (!(vmFlags & VM_NORESERVE) && free < need) return -Errno.ENOMEM;
      }
      if (overl.length !== 0) {
        const r = await this.doMunmapLocked(start, end);
        if (r !== 0) return r;
      }
      let vfile = file;
      if (file === null && shared) {
        vfile = new TmpFile(this.phys, len);
      }
      const vpgoff = vfile === null ? start / PAGE_SIZE : pgoff;
      let vma = new Vma(this, start, end, vmFlags, vpgoff, vfile, null);
      if (hugeSize !== 0) vma.privateData = hugeSize;
      this.linkVma(vma);
      if (file instanceof SpecialFile) {
        const r = file.mmapHook(vma);
        if (r !== 0) {
          await this.zapRange(vma, vma.start, vma.end, true);
          this.unlinkVma(vma);
          return r < 0 ? r : -Errno.EINVAL;
        }
      } else if (hugeSize === 0) vma = this.mergeAround(vma);
      if (flags & MAP_POPULATE) await this.populate(vma, start, end);
      return start;
    } finally {
      this.mmapLock.writeUnlock();
    }
  }

  private hugetlbMisaligned(v: Vma, start: number, end: number): boolean {
    const hs = this.hugetlbSize(v);
    return (start > v.start && start % hs !== 0) || (end < v.end && end % hs !== 0);
  }

  /** Models get_unmapped_area() (top-down, with the old free_area_cache hint). */
  private getUnmappedArea(hint: number, len: number, align: number): number {
    if (hint !== 0) {
      let h = pageAlign(hint);
      h = Math.ceil(h / align) * align;
      if (h >= MMAP_MIN_ADDR && h <= TASK_SIZE - len && this.vmas.overlapping(h, h + len).length === 0)
        return h;
    }
    const high = Math.min(this.freeAreaCache, this.mmapBase);
    let a = this.vmas.findGapTopDown(len, MMAP_MIN_ADDR, high, align);
    if (a < 0 && high < this.mmapBase) a = this.vmas.findGapTopDown(len, MMAP_MIN_ADDR, this.mmapBase, align);
    if (a >= 0) this.freeAreaCache = a;
    return a;
  }

  /** Faults in [start, end) of `vma` as mm_populate() does (writes for private writable VMAs). */
  private async populate(vma: Vma, start: number, end: number): Promise<void> {
    const write = (vma.flags & (VM_WRITE | VM_SHARED)) === VM_WRITE;
    if (!(vma.flags & VM_ACCESS_FLAGS)) return;
    for (let a = start; a < end; a += PAGE_SIZE) {
      for (let k = 0; k < 4; k++) {
        if (this.fastLookup(a, write) >= 0) break;
        const r = await this.handleMmFault(vma, a, write ? FAULT_FLAG_WRITE : 0);
        if (r & (VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV | VM_FAULT_OOM)) return;
      }
    }
  }

  /**
   * Models munmap(2): 0, or -EINVAL (unaligned addr, len 0, range outside the VA space, a
   * hugetlb VMA split at a non-huge boundary), -ENOMEM (VMA limit on a split).
   */
  async munmap(addr: number, length: number): Promise<number> {
    const fn = FN.munmap;
    if (!Number.isSafeInteger(addr) || addr < 0)
      throw new ArgumentError(fn, 'addr', 'must be a non-negative safe integer', addr);
    if (!Number.isSafeInteger(length) || length < 0) {
      throw new ArgumentError(fn, 'length', 'must be a non-negative safe integer', length);
    }
    if (addr % PAGE_SIZE !== 0) return -Errno.EINVAL;
    const len = pageAlign(length);
    if (len === 0 || addr > TASK_SIZE || len > TASK_SIZE - addr) return -Errno.EINVAL;
    await this.mmapLock.write();
    try {
      return await this.doMunmapLocked(addr, addr + len);
    } finally {
      this.mmapLock.writeUnlock();
    }
  }

  /** do_vmi_munmap(): the caller holds the mmap lock for write. */
  private async doMunmapLocked(start: number, end: number): Promise<number> {
    const overl = this.vmas.overlapping(start, end);
    if (overl.length === 0) return 0;
    for (const v of overl)
      if (v.flags & VM_HUGETLB && this.hugetlbMisaligned(v, start, end)) return -Errno.EINVAL;
    const first = overl[0]!;
    const last = overl[overl.length - 1]!;
    if (first === last && first.start < start && last.end > end && this.vmas.size >= this.machine.maxMapCount)
      return -Errno.ENOMEM;
    if (first.start < start) {
      const nv = await this.splitVma(first, start);
      overl[0] = nv;
      if (last === first) overl[overl.length - 1] = nv;
    }
    const l = overl[overl.length - 1]!;
    if (l.end > end) await this.splitVma(l, end);
    for (const v of overl) this.unlinkVma(v);
    const r = await this.invStart(MmuNotifyEvent.UNMAP, start, end);
    for (const v of overl) await this.zapRange(v, v.start, v.end, false);
    await this.invEnd(r);
    this.freePgtables(start, end);
    if (end > this.freeAreaCache) this.freeAreaCache = Math.min(end, this.mmapBase);
    return 0;
  }

  /** Models free_pgtables(): frees empty PTE tables whose 2 MiB block no VMA overlaps any more. */
  private freePgtables(start: number, end: number): void {
    for (let b = alignDown(start, PMD_SIZE); b < end; b += PMD_SIZE) {
      const pmd = this.pt.pmdTable(b, false);
      if (pmd === null) {
        b = alignDown(b, PUD_SIZE) + PUD_SIZE - PMD_SIZE;
        continue;
      }
      const mi = Math.floor(b / PMD_SIZE) & 511;
      const t = pmd.tables[mi];
      if (t === null || t === undefined || t.used !== 0) continue;
      if (this.vmas.overlapping(b, b + PMD_SIZE).length !== 0) continue;
      this.pt.freePteTable(pmd, mi);
    }
  }

  // =============================================================================================
  // mprotect
  // =============================================================================================

  /**
   * Models mprotect(2): 0, or -EINVAL (unaligned start, unknown prot bits, PROT_GROWSDOWN/UP),
   * -ENOMEM (overflow, unmapped pages in the range: VMAs before the hole keep the new
   * protection, as in Linux), -EACCES (asking for a permission the VMA may not get, e.g.
   * PROT_WRITE on a shared mapping of a read-only file). len 0 succeeds.
   */
  async mprotect(start: number, length: number, prot: number): Promise<number> {
    const fn = FN.mprotect;
    if (!Number.isSafeInteger(start) || start < 0)
      throw new ArgumentError(fn, 'start', 'must be a non-negative safe integer', start);
    if (!Number.isSafeInteger(length) || length < 0) {
      throw new ArgumentError(fn, 'length', 'must be a non-negative safe integer', length);
    }
    if (!Number.isSafeInteger(prot) || prot < 0)
      throw new ArgumentError(fn, 'prot', 'must be a non-negative safe integer', prot);
    if (start % PAGE_SIZE !== 0) return -Errno.EINVAL;
    if (prot & (PROT_GROWSDOWN | PROT_GROWSUP)) return -Errno.EINVAL;
    if (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM)) return -Errno.EINVAL;
    if (length === 0) return 0;
    const len = pageAlign(length);
    const end = start + len;
    if (end <= start || end > 2 ** 64) return -Errno.ENOMEM;
    await this.mmapLock.write();
    try {
      const first = this.vmas.find(start);
      if (first === null || first.start > start) return -Errno.ENOMEM;
      for (const v of this.vmas.overlapping(start, end)) {
        if (v.flags & VM_HUGETLB && this.hugetlbMisaligned(v, start, end)) return -Errno.EINVAL;
      }
      let tmp = start;
      const newProt = calcVmProtBits(prot);
      for (const vma of this.vmas.overlapping(start, end)) {
        if (vma.start > tmp) return -Errno.ENOMEM;
        const newflags = (vma.flags & ~VM_ACCESS_FLAGS) | newProt;
        // VM_MAY* are the VM_* bits shifted left by 4
        if (newflags & ~(newflags >> 4) & VM_ACCESS_FLAGS) return -Errno.EACCES;
        const s = Math.max(vma.start, start);
        const e = Math.min(vma.end, end);
        await this.mprotectFixup(vma, s, e, newflags);
        tmp = e;
      }
      if (tmp < end) return -Errno.ENOMEM;
      return 0;
    } finally {
      this.mmapLock.writeUnlock();
    }
  }

  /** mprotect_fixup(): split/merge, set flags, change_protection(). */
  private async mprotectFixup(vma: Vma, start: number, end: number, newflags: number): Promise<void> {
    if (newflags === vma.flags) return;
    let v = await this.isolate(vma, start, end);
    v.flags = newflags;
    await this.changeProtection(v, start, end);
    v = this.mergeAround(v);
  }

  /**
   * change_protection(): applies `vma.flags` to the entries of [start, end), inside one
   * PROTECTION_VMA invalidation per 512 GiB block, starting at the first populated PUD (the
   * mmu notifier sits in change_pud_range in Linux 6.x).
   */
  private async changeProtection(vma: Vma, start: number, end: number): Promise<void> {
    if (vma.flags & VM_HUGETLB) {
      // hugetlb_change_protection(): one PROTECTION_VMA over the whole range
      const r = await this.invStart(MmuNotifyEvent.PROTECTION_VMA, start, end);
      await this.applyProtection(vma, start, end);
      this.flushTlb();
      await this.invEnd(r);
      return;
    }
    const PGD = 2 ** 39;
    for (let blk = start; blk < end; ) {
      const bend = Math.min(end, (Math.floor(blk / PGD) + 1) * PGD);
      const pud = this.pt.pudTable(blk, false);
      let first = -1;
      if (pud !== null) {
        for (let a = blk; a < bend; a = (Math.floor(a / PUD_SIZE) + 1) * PUD_SIZE) {
          const ui = Math.floor(a / PUD_SIZE) & 511;
          if (pud.tables[ui] !== null || pud.flags[ui] !== 0) {
            first = a;
            break;
          }
        }
      }
      if (first >= 0) {
        const r = await this.invStart(MmuNotifyEvent.PROTECTION_VMA, first, bend);
        await this.applyProtection(vma, first, bend);
        this.flushTlb();
        await this.invEnd(r);
      }
      blk = bend;
    }
  }

  private async applyProtection(vma: Vma, start: number, end: number): Promise<void> {
    const p = this.phys;
    const access = (vma.flags & VM_ACCESS_FLAGS) !== 0;
    const writable = (vma.flags & VM_WRITE) !== 0;
    const shared = (vma.flags & VM_SHARED) !== 0;
    const fix = (f: number, v: number): number => {
      const t = f & PTE_TYPE_MASK;
      if (t === PTE_PRESENT) {
        let nf = access ? f | PTE_R : f & ~PTE_R;
        if (!writable) nf &= ~PTE_W;
        else if (!(nf & PTE_W) && access) {
          const zero = p.isZeroPfn(v);
          if (shared && !zero) nf |= PTE_W;
          else if (
            !zero &&
            !(f & PTE_SPECIAL) &&
            p.flags[v]! & PG.anon &&
            p.mapcount[v] === 1 &&
            p.refcount[v] === 1
          ) {
            nf |= PTE_W;
          }
        }
        return nf;
      }
      if ((t === PTE_MIGRATION || t === PTE_DEVICE_PRIVATE || t === PTE_DEVICE_EXCLUSIVE) && !writable) {
        return f & ~PTE_W;
      }
      return f;
    };
    const w = new PageWalk();
    for (let a = start; a < end; ) {
      this.pt.walkUnit(a, end, w);
      if (w.kind === WALK_HOLE) {
        a = w.end;
        continue;
      }
      if (w.kind === WALK_PMD_LEAF || w.kind === WALK_PUD_LEAF) {
        const size = w.kind === WALK_PUD_LEAF ? PUD_SIZE : PMD_SIZE;
        if (!(w.leafStart >= start && w.leafStart + size <= end) && !(vma.flags & VM_HUGETLB)) {
          await this.splitHugePmd(vma, a);
          continue;
        }
        const tbl = w.kind === WALK_PUD_LEAF ? this.pt.pudTable(a, false)! : w.pmd!;
        let nf = fix(w.flags, w.val);
        if (nf & PTE_W && w.kind === WALK_PMD_LEAF && !(vma.flags & VM_HUGETLB) && !shared) {
          // a THP is writable only when every subpage is exclusive
          for (let k = 0; k < HPAGE_PMD_NR; k++) {
            if (p.mapcount[w.val + k] !== 1 || p.refcount[w.val + k] !== 1) {
              nf &= ~PTE_W;
              break;
            }
          }
        }
        if (nf & PTE_W && p.isZeroPfn(w.val)) nf &= ~PTE_W;
        tbl.flags[w.slot] = nf;
        a = Math.max(w.end, w.leafStart + size);
        continue;
      }
      const t = w.pte!;
      const n = (w.end - a) / PAGE_SIZE;
      for (let k = 0, i = w.index; k < n; k++, i++) {
        const f = t.flags[i]!;
        if (f !== 0) t.flags[i] = fix(f, t.val[i]!);
      }
      a = w.end;
    }
  }

  // =============================================================================================
  // mremap
  // =============================================================================================

  /**
   * Models mremap(2): returns the (new) address or a negative errno: -EINVAL (bad flags,
   * unaligned address, new length 0, FIXED without MAYMOVE, DONTUNMAP with a size change,
   * overlapping FIXED ranges, old length 0), -EFAULT (old range not inside one VMA, growing a
   * VM_DONTEXPAND/VM_PFNMAP VMA), -ENOMEM (cannot grow in place without MAYMOVE, no room).
   */
  async mremap(oldAddr: number, oldLen: number, newLen: number, flags: number, newAddr = 0): Promise<number> {
    const fn = FN.mremap;
    for (const [name, v] of [
      ['oldAddr', oldAddr],
      ['oldLen', oldLen],
      ['newLen', newLen],
      ['flags', flags],
      ['newAddr', newAddr],
    ] as const) {
      if (!Number.isSafeInteger(v) || v < 0)
        throw new ArgumentError(fn, name, 'must be a non-negative safe integer', v);
    }
    if (flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP)) return -Errno.EINVAL;
    if (flags & MREMAP_FIXED && !(flags & MREMAP_MAYMOVE)) return -Errno.EINVAL;
    if (flags & MREMAP_DONTUNMAP && (!(flags & MREMAP_MAYMOVE) || oldLen !== newLen)) return -Errno.EINVAL;
    if (oldAddr % PAGE_SIZE !== 0) return -Errno.EINVAL;
    const olen = pageAlign(oldLen);
    const nlen = pageAlign(newLen);
    if (nlen === 0) return -Errno.EINVAL;
    if (olen === 0) return -Errno.EINVAL;
    if (oldAddr > TASK_SIZE || olen > TASK_SIZE - oldAddr) return -Errno.EFAULT;
    const fixed = (flags & MREMAP_FIXED) !== 0;
    if (fixed) {
      if (newAddr % PAGE_SIZE !== 0) return -Errno.EINVAL;
      if (nlen > TASK_SIZE || newAddr > TASK_SIZE - nlen) return -Errno.EINVAL;
      if (newAddr < oldAddr + olen && oldAddr < newAddr + nlen) return -Errno.EINVAL;
    }
    await this.mmapLock.write();
    try {
      const vma = this.vmas.lookup(oldAddr);
      if (vma === null || oldAddr + olen > vma.end) return -Errno.EFAULT;
      if (vma.flags & VM_HUGETLB) {
        const hs = this.hugetlbSize(vma);
        if (oldAddr % hs || olen % hs || nlen % hs || (fixed && newAddr % hs)) return -Errno.EINVAL;
      }
      if (nlen > olen && vma.flags & (VM_DONTEXPAND | VM_PFNMAP)) return -Errno.EFAULT;
      const dontunmap = (flags & MREMAP_DONTUNMAP) !== 0;
      if (dontunmap && vma.flags & (VM_DONTEXPAND | VM_PFNMAP)) return -Errno.EINVAL;
      if (fixed) {
        if (this.vmas.size + 2 > this.machine.maxMapCount) return -Errno.ENOMEM;
        const r = await this.doMunmapLocked(newAddr, newAddr + nlen);
        if (r !== 0) return r;
        let ol = olen;
        if (olen > nlen) {
          const r2 = await this.doMunmapLocked(oldAddr + nlen, oldAddr + olen);
          if (r2 !== 0) return r2;
          ol = nlen;
        }
        const v = this.vmas.lookup(oldAddr)!;
        return await this.moveVma(v, oldAddr, ol, newAddr, nlen, dontunmap);
      }
      if (nlen <= olen && !dontunmap) {
        if (nlen < olen) {
          const r = await this.doMunmapLocked(oldAddr + nlen, oldAddr + olen);
          if (r !== 0) return r;
        }
        return oldAddr;
      }
      if (!dontunmap && oldAddr + olen === vma.end) {
        const next = this.vmas.next(vma);
        const newEnd = oldAddr + nlen;
        if (newEnd <= TASK_SIZE && (next === null || next.start >= newEnd) && !(vma.flags & VM_HUGETLB)) {
          vma.end = newEnd;
          this.mergeAround(vma);
          return oldAddr;
        }
      }
      if (!(flags & MREMAP_MAYMOVE)) return -Errno.ENOMEM;
      if (this.vmas.size + 2 > this.machine.maxMapCount) return -Errno.ENOMEM;
      const align = vma.flags & VM_HUGETLB ? this.hugetlbSize(vma) : PAGE_SIZE;
      const dst = this.getUnmappedArea(0, nlen, align);
      if (dst < 0) return -Errno.ENOMEM;
      return await this.moveVma(vma, oldAddr, olen, dst, nlen, dontunmap);
    } finally {
      this.mmapLock.writeUnlock();
    }
  }

  /** move_vma(): new VMA at `newAddr`, move_page_tables() inside an UNMAP of the old range, unmap the old. */
  private async moveVma(
    vma: Vma,
    oldAddr: number,
    oldLen: number,
    newAddr: number,
    newLen: number,
    dontunmap: boolean,
  ): Promise<number> {
    const old = await this.isolate(vma, oldAddr, oldAddr + oldLen);
    const nv = new Vma(this, newAddr, newAddr + newLen, old.flags, old.pgoff, old.file, old.anonVma);
    nv.privateData = old.privateData;
    this.linkVma(nv);
    const r = await this.invStart(MmuNotifyEvent.UNMAP, oldAddr, oldAddr + oldLen);
    await this.movePageTables(old, oldAddr, newAddr, oldLen);
    this.flushTlb();
    await this.invEnd(r);
    if (!(old.flags & VM_HUGETLB) && !(old.flags & VM_SPECIAL)) this.mergeAround(nv);
    if (!dontunmap) {
      await this.doMunmapLocked(oldAddr, oldAddr + oldLen);
    } else if (old.file === null) {
      // the old VMA stays, empty; anonymous pages now belong to the new VMA only
      old.anonVma = null;
    }
    return newAddr;
  }

  private async movePageTables(oldVma: Vma, oldAddr: number, newAddr: number, len: number): Promise<void> {
    const w = new PageWalk();
    const end = oldAddr + len;
    for (let a = oldAddr; a < end; ) {
      this.pt.walkUnit(a, end, w);
      if (w.kind === WALK_HOLE) {
        a = w.end;
        continue;
      }
      const na = newAddr + (a - oldAddr);
      if (w.kind === WALK_PMD_LEAF || w.kind === WALK_PUD_LEAF) {
        const size = w.kind === WALK_PUD_LEAF ? PUD_SIZE : PMD_SIZE;
        const movable = w.leafStart === a && a + size <= end && na % size === 0;
        if (!movable) {
          if (oldVma.flags & VM_HUGETLB) throw new StateError(FN.mremap, 'misaligned hugetlb move');
          await this.splitHugePmd(oldVma, a);
          continue;
        }
        const src = w.kind === WALK_PUD_LEAF ? this.pt.pudTable(a, false)! : w.pmd!;
        const dst = w.kind === WALK_PUD_LEAF ? this.pt.pudTable(na, true)! : this.pt.pmdTable(na, true)!;
        const di = Math.floor(na / size) & 511;
        if (w.kind === WALK_PMD_LEAF && dst.tables[di] !== null) {
          this.pt.freePteTable(dst as PmdTable, di);
        }
        setEntry(dst, di, w.val, w.flags);
        setEntry(src, w.slot, 0, 0);
        a += size;
        continue;
      }
      const t = w.pte!;
      const n = (w.end - a) / PAGE_SIZE;
      for (let k = 0, i = w.index; k < n; k++, i++) {
        const f = t.flags[i]!;
        if (f === 0) continue;
        const da = na + k * PAGE_SIZE;
        const dt = this.pt.pteTable(da, true);
        if (dt === null) {
          throw new StateError(FN.mremap, 'destination mapped by a huge leaf');
        }
        const di = Math.floor(da / PAGE_SIZE) & 511;
        setEntry(dt, di, t.val[i]!, f);
        t.flags[i] = 0;
        t.val[i] = 0;
        t.used--;
      }
      a = w.end;
    }
  }

  // =============================================================================================
  // madvise
  // =============================================================================================

  /**
   * Models madvise(2): 0, or -EINVAL (unaligned start, unknown advice, overflow, advice the VMA
   * does not support), -ENOMEM (part of the range unmapped: mapped parts are still advised),
   * -EAGAIN (MADV_COLLAPSE could not collapse some region).
   */
  async madvise(start: number, length: number, advice: number): Promise<number> {
    const fn = FN.madvise;
    if (!Number.isSafeInteger(start) || start < 0)
      throw new ArgumentError(fn, 'start', 'must be a non-negative safe integer', start);
    if (!Number.isSafeInteger(length) || length < 0) {
      throw new ArgumentError(fn, 'length', 'must be a non-negative safe integer', length);
    }
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
    if (writeLock) await this.mmapLock.write();
    else await this.mmapLock.read();
    try {
      let unmapped = false;
      let result = 0;
      let tmp = start;
      for (const vma of this.vmas.overlapping(start, end)) {
        if (vma.start > tmp) unmapped = true;
        const s = Math.max(vma.start, start);
        const e = Math.min(vma.end, end);
        const r = await this.madviseVma(vma, s, e, advice);
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
      if (writeLock) this.mmapLock.writeUnlock();
      else this.mmapLock.readUnlock();
    }
  }

  private async madviseVma(vma: Vma, s: number, e: number, advice: number): Promise<number> {
    switch (advice) {
      case MADV_DONTNEED: {
        if (vma.flags & (VM_LOCKED | VM_PFNMAP)) return -Errno.EINVAL;
        if (vma.flags & VM_HUGETLB && this.hugetlbMisaligned(vma, s, e)) return -Errno.EINVAL;
        const r = await this.invStart(MmuNotifyEvent.CLEAR, s, e);
        await this.zapRange(vma, s, e, false);
        await this.invEnd(r);
        return 0;
      }
      case MADV_FREE:
        if (vma.file !== null || vma.flags & (VM_LOCKED | VM_PFNMAP | VM_HUGETLB)) return -Errno.EINVAL;
        await this.madviseFree(vma, s, e);
        return 0;
      case MADV_HUGEPAGE:
      case MADV_NOHUGEPAGE: {
        const set = advice === MADV_HUGEPAGE ? VM_HUGEPAGE : VM_NOHUGEPAGE;
        const clear = advice === MADV_HUGEPAGE ? VM_NOHUGEPAGE : VM_HUGEPAGE;
        const nf = (vma.flags & ~clear) | set;
        if (nf === vma.flags) return 0;
        const v = await this.isolate(vma, s, e);
        v.flags = nf;
        this.mergeAround(v);
        return 0;
      }
      case MADV_DONTFORK:
      case MADV_DOFORK: {
        if (advice === MADV_DOFORK && vma.flags & VM_IO) return -Errno.EINVAL;
        const nf = advice === MADV_DONTFORK ? vma.flags | VM_DONTCOPY : vma.flags & ~VM_DONTCOPY;
        if (nf === vma.flags) return 0;
        const v = await this.isolate(vma, s, e);
        v.flags = nf;
        this.mergeAround(v);
        return 0;
      }
      case MADV_PAGEOUT:
      case MADV_COLD:
        if (vma.flags & (VM_LOCKED | VM_PFNMAP | VM_HUGETLB)) return -Errno.EINVAL;
        if (advice === MADV_PAGEOUT) await this.pageoutRange(vma, s, e);
        return 0;
      case MADV_COLLAPSE:
        return this.collapseRange(vma, s, e);
      default:
        return 0; // NORMAL, RANDOM, SEQUENTIAL, WILLNEED: hints without an observable effect here
    }
  }

  /** madvise_free_single_vma(): drop swap entries, mark exclusive clean pages lazy-free. */
  private async madviseFree(vma: Vma, s: number, e: number): Promise<void> {
    const r = await this.invStart(MmuNotifyEvent.CLEAR, s, e);
    const p = this.phys;
    const w = new PageWalk();
    let flush = false;
    for (let a = s; a < e; ) {
      this.pt.walkUnit(a, e, w);
      if (w.kind === WALK_HOLE) {
        a = w.end;
        continue;
      }
      if (w.kind !== WALK_PTE) {
        const covered = w.leafStart >= s && w.leafStart + PMD_SIZE <= e;
        if (!covered) {
          await this.splitHugePmd(vma, a);
          continue;
        }
        if ((w.flags & PTE_TYPE_MASK) === PTE_PRESENT && !p.isZeroPfn(w.val)) {
          let excl = true;
          for (let k = 0; k < HPAGE_PMD_NR && excl; k++) excl = p.mapcount[w.val + k] === 1;
          if (excl) {
            for (let k = 0; k < HPAGE_PMD_NR; k++) {
              p.flags[w.val + k] = (p.flags[w.val + k]! & ~PG.dirty) | PG.lazyfree;
            }
            w.pmd!.flags[w.slot] = w.flags & ~(PTE_DIRTY | PTE_YOUNG);
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
          this.releaseEntry(t.val[i]!, f);
          setEntry(t, i, 0, 0);
        } else if (ty === PTE_PRESENT && !(f & PTE_SPECIAL)) {
          const pfn = t.val[i]!;
          if (p.mapcount[pfn] !== 1 || !(p.flags[pfn]! & PG.anon)) continue;
          p.flags[pfn] = (p.flags[pfn]! & ~PG.dirty) | PG.lazyfree;
          t.flags[i] = f & ~(PTE_DIRTY | PTE_YOUNG);
          flush = true;
        }
      }
      a = w.end;
    }
    if (flush) this.flushTlb();
    await this.invEnd(r);
  }

  /**
   * MADV_PAGEOUT: reclaims the exclusively mapped anonymous pages of [s, e): PMD-mapped THPs
   * are split first; each page is unmapped inside a CLEAR invalidation of that page and written
   * to swap (or dropped if it was MADV_FREE'd and is still clean).
   */
  private async pageoutRange(vma: Vma, s: number, e: number): Promise<void> {
    if (vma.file !== null) return; // page-cache reclaim is not modelled
    const p = this.phys;
    const w = new PageWalk();
    for (let a = s; a < e; ) {
      this.pt.walkUnit(a, e, w);
      if (w.kind === WALK_HOLE) {
        a = w.end;
        continue;
      }
      if (w.kind !== WALK_PTE) {
        if ((w.flags & PTE_TYPE_MASK) === PTE_PRESENT && !p.isZeroPfn(w.val)) {
          await this.splitHugePmd(vma, a);
          continue;
        }
        a = w.leafStart + PMD_SIZE;
        continue;
      }
      const end = w.end;
      for (; a < end; a += PAGE_SIZE) {
        const t = this.pt.pteTable(a, false);
        if (t === null) break;
        const i = Math.floor(a / PAGE_SIZE) & 511;
        const f = t.flags[i]!;
        if ((f & PTE_TYPE_MASK) !== PTE_PRESENT || f & PTE_SPECIAL) continue;
        const pfn = t.val[i]!;
        if (!(p.flags[pfn]! & PG.anon) || p.flags[pfn]! & (PG.device | PG.locked)) continue;
        if (p.mapcount[pfn] !== 1 || p.refcount[pfn] !== 1) continue;
        await this.reclaimPte(a, pfn, f);
      }
      a = end;
    }
  }

  /** try_to_unmap_one + pageout of one exclusively mapped anonymous page. */
  private async reclaimPte(addr: number, pfn: number, f: number): Promise<void> {
    const p = this.phys;
    const r = await this.invStart(MmuNotifyEvent.CLEAR, addr, addr + PAGE_SIZE);
    const t = this.pt.pteTable(addr, false);
    const i = Math.floor(addr / PAGE_SIZE) & 511;
    if (t !== null && t.val[i] === pfn && t.flags[i] === f && p.refcount[pfn] === 1) {
      const dirty = (f & PTE_DIRTY) !== 0 || (p.flags[pfn]! & PG.dirty) !== 0;
      if (p.flags[pfn]! & PG.lazyfree && !dirty) {
        this.releaseEntry(pfn, f);
        setEntry(t, i, 0, 0);
      } else {
        const slot = p.swap.writeOut(pfn, 1);
        if (slot > 0) {
          p.mapcount[pfn]!--;
          this.rss--;
          setEntry(t, i, slot, PTE_SWAP | (f & PTE_W ? PTE_W : 0));
          this.swapEntries++;
          p.putPage(pfn);
          this.machine.stats.swapOut.value++;
          this.sim.charge(this.sim.costs.swapIoPerPageNs);
        }
      }
      this.flushTlb();
    }
    await this.invEnd(r);
  }

  /** MADV_COLLAPSE on [s, e) of an anonymous VMA: each covered 2 MiB block becomes one THP. */
  private async collapseRange(vma: Vma, s: number, e: number): Promise<number> {
    if (vma.file !== null || vma.flags & (VM_HUGETLB | VM_PFNMAP | VM_MIXEDMAP | VM_IO | VM_NOHUGEPAGE)) {
      return -Errno.EINVAL;
    }
    let result = 0;
    const p = this.phys;
    for (let h = Math.ceil(s / PMD_SIZE) * PMD_SIZE; h + PMD_SIZE <= e; h += PMD_SIZE) {
      if (h < vma.start || h + PMD_SIZE > vma.end) continue;
      const pmd0 = this.pt.pmdTable(h, true)!;
      const mi = Math.floor(h / PMD_SIZE) & 511;
      if (pmd0.tables[mi] === null && pmd0.flags[mi] !== 0) {
        if (pmd0.val[mi] !== HUGE_ZERO_PFN) continue; // already a THP
      }
      const head = p.allocFolio(this.node, 9, PG.anon | PG.anonExclusive);
      if (head < 0) {
        result = -Errno.ENOMEM;
        continue;
      }
      const r = await this.invStart(MmuNotifyEvent.CLEAR, h, h + PMD_SIZE);
      const pmd = this.pt.pmdTable(h, true)!;
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
              this.sim.charge(this.sim.costs.cpuPageCopyNs);
            }
            this.releaseEntry(v, f);
          }
          this.pt.freePteTable(pmd, mi);
        } else if (pmd.flags[mi] !== 0) setEntry(pmd, mi, 0, 0); // the huge zero page
        this.installThp(vma, h, head, pmd, mi);
        this.machine.stats.thpCollapse.value++;
        this.flushTlb();
      }
      await this.invEnd(r);
    }
    return result;
  }

  // =============================================================================================
  // fork / exit
  // =============================================================================================

  /**
   * Models fork()'s dup_mmap(): a child mm with copies of the VMAs; private writable (COW)
   * mappings are write-protected in both inside a PROTECTION_PAGE invalidation of the parent
   * per VMA; shared mappings stay shared; device-private entries become read-only in both;
   * device-exclusive entries are restored to the original PTE first. Returns the child.
   */
  async fork(): Promise<Mm> {
    await this.mmapLock.write();
    try {
      if (this.mmUsers === 0) throw new StateError('Mm.fork', 'the mm is gone');
      const child = new Mm(this.machine);
      child.node = this.node;
      child.freeAreaCache = this.freeAreaCache;
      for (const vma of this.vmas.toArray()) {
        if (vma.flags & VM_DONTCOPY) continue;
        const cv = new Vma(child, vma.start, vma.end, vma.flags, vma.pgoff, vma.file, vma.anonVma);
        cv.privateData = vma.privateData;
        child.linkVma(cv);
        const needsCopy = vma.anonVma !== null || vma.flags & (VM_PFNMAP | VM_MIXEDMAP | VM_HUGETLB);
        if (needsCopy) await this.copyPageRange(child, vma);
      }
      return child;
    } finally {
      this.mmapLock.writeUnlock();
    }
  }

  private async copyPageRange(child: Mm, vma: Vma): Promise<void> {
    const cow = (vma.flags & (VM_SHARED | VM_MAYWRITE)) === VM_MAYWRITE;
    // copy_hugetlb_page_range() uses CLEAR; copy_page_range() PROTECTION_PAGE
    const event = vma.flags & VM_HUGETLB ? MmuNotifyEvent.CLEAR : MmuNotifyEvent.PROTECTION_PAGE;
    const r = cow ? await this.invStart(event, vma.start, vma.end) : null;
    const p = this.phys;
    const w = new PageWalk();
    let flush = false;
    for (let a = vma.start; a < vma.end; ) {
      this.pt.walkUnit(a, vma.end, w);
      if (w.kind === WALK_HOLE) {
        a = w.end;
        continue;
      }
      if (w.kind === WALK_PMD_LEAF || w.kind === WALK_PUD_LEAF) {
        const size = w.kind === WALK_PUD_LEAF ? PUD_SIZE : PMD_SIZE;
        const nr = size / PAGE_SIZE;
        const src = w.kind === WALK_PUD_LEAF ? this.pt.pudTable(a, false)! : w.pmd!;
        const dst = w.kind === WALK_PUD_LEAF ? child.pt.pudTable(a, true)! : child.pt.pmdTable(a, true)!;
        let f = w.flags;
        const ty = f & PTE_TYPE_MASK;
        if ((ty === PTE_PRESENT && !p.isZeroPfn(w.val)) || ty === PTE_DEVICE_PRIVATE) {
          for (let k = 0; k < nr; k++) {
            p.refcount[w.val + k]!++;
            p.mapcount[w.val + k]!++;
          }
          child.rss += nr;
        }
        if (cow && f & PTE_W) {
          f &= ~PTE_W;
          src.flags[w.slot] = f;
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
          // restore the original PTE in the parent, then copy it like a present one
          f = this.baseBits(vma) | (f & (PTE_W | PTE_DIRTY)) | PTE_YOUNG;
          t.flags[i] = f;
          ty = PTE_PRESENT;
        }
        if (ty === PTE_PRESENT) {
          if (!(f & PTE_SPECIAL) || !p.isZeroPfn(v)) {
            if (!(p.flags[v]! & PG.reserved) && !(f & PTE_SPECIAL && p.mapcount[v] === 0)) {
              p.refcount[v]!++;
              p.mapcount[v]!++;
              child.rss++;
            }
          }
          if (cow && f & PTE_W) {
            f &= ~PTE_W;
            t.flags[i] = f;
            flush = true;
          }
          if (cow) p.flags[v] = p.flags[v]! & ~PG.anonExclusive;
          setEntry(ct, i, v, f & ~PTE_YOUNG);
        } else if (ty === PTE_SWAP) {
          p.swap.dup(v);
          child.swapEntries++;
          setEntry(ct, i, v, f);
        } else if (ty === PTE_DEVICE_PRIVATE) {
          p.refcount[v]!++;
          p.mapcount[v]!++;
          child.rss++;
          if (cow && f & PTE_W) {
            f &= ~PTE_W;
            t.flags[i] = f;
          }
          setEntry(ct, i, v, f);
        } else if (ty === PTE_MIGRATION) {
          if (cow && f & PTE_W) {
            f &= ~PTE_W;
            t.flags[i] = f;
          }
          setEntry(ct, i, v, f);
        }
      }
      a = w.end;
    }
    if (flush) this.flushTlb();
    await this.invEnd(r);
  }

  /** Models mmget(): another user of the address space (a driver holding a reference). */
  mmget(): void {
    if (this.mmUsers <= 0) throw new StateError('Mm.mmget', 'the mm is gone');
    this.mmUsers++;
  }

  /** Models mmget_not_zero(). */
  mmgetNotZero(): boolean {
    if (this.mmUsers <= 0) return false;
    this.mmUsers++;
    return true;
  }

  /** Models mmput(): the last user tears the address space down (exit_mmap). */
  async mmput(): Promise<void> {
    if (this.mmUsers <= 0) throw new StateError('Mm.mmput', 'mm_users is already 0');
    if (--this.mmUsers === 0) await this.exitMmap();
  }

  /** The process exits: drops its mm_users reference (exit_mm → mmput). */
  async exit(): Promise<void> {
    await this.mmput();
  }

  /**
   * Models exit_mmap(): mmu_notifier_release() (RELEASE for interval notifiers, release() for
   * classic ones), then one UNMAP invalidation over [0, ULONG_MAX) while every VMA is zapped.
   */
  private async exitMmap(): Promise<void> {
    await mmuNotifierRelease(this);
    await this.mmapLock.write();
    try {
      const all = this.vmas.toArray();
      if (all.length !== 0) {
        const r = await this.invStart(MmuNotifyEvent.UNMAP, 0, ULONG_MAX);
        for (const v of all) {
          await this.zapRange(v, v.start, v.end, true);
          this.unlinkVma(v);
          v.anonVma?.mms.delete(this);
        }
        await this.invEnd(r);
      }
    } finally {
      this.mmapLock.writeUnlock();
    }
  }

  // =============================================================================================
  // rmap, migration, device memory: primitives for @hmmkit/hmm (internal API)
  // =============================================================================================

  /**
   * Models rmap_walk(): every (mm, vma, address) whose entry maps `pfn` (a present,
   * device-private or device-exclusive PTE, or a present / device-private PMD leaf with `huge`
   * set; or, with `migrationEntries`, only the PTE migration entries naming it), via page->mapping and page->index: the anon_vma family's mms, or the shmem
   * inode's i_mmap.
   */
  rmapWalk(pfn: number, migrationEntries = false): RmapHit[] {
    return rmapWalkPfn(this.machine, pfn, migrationEntries);
  }

  /**
   * For hmm's migrate_vma_collect (caller holds the mmap lock, has issued the MIGRATE
   * invalidation and locked the page): replaces the entry at `addr` (present normal page or
   * device-private entry) with a migration entry, writable iff the entry was, keeping dirty.
   * The mapping's page reference is transferred to the caller (put it after finalize) and the
   * mapcount dropped. Returns the pfn, or -1 if the entry is not of that kind.
   */
  installMigrationEntry(addr: number): number {
    const t = this.pt.pteTable(addr, false);
    if (t === null) return -1;
    const i = Math.floor(addr / PAGE_SIZE) & 511;
    const f = t.flags[i]!;
    const ty = f & PTE_TYPE_MASK;
    const pfn = t.val[i]!;
    if (ty !== PTE_PRESENT && ty !== PTE_DEVICE_PRIVATE) return -1;
    if (f & PTE_SPECIAL || this.phys.flags[pfn]! & PG.reserved) return -1;
    if (f & PTE_DIRTY) this.phys.flags[pfn] = this.phys.flags[pfn]! | PG.dirty;
    this.phys.mapcount[pfn]!--;
    this.rss--;
    t.flags[i] = PTE_MIGRATION | (f & (PTE_W | PTE_DIRTY));
    if (ty === PTE_PRESENT) this.flushTlbDeferred(addr);
    return pfn;
  }

  /**
   * Models try_to_migrate(): replaces every mapping of `pfn` in every mm (fork siblings,
   * other file mappers) by a migration entry, each inside a CLEAR invalidation of that page of
   * that mm; the mappings' references are dropped. Returns the remaining mapcount (0 = fully
   * unmapped). PMD mappings of the page are split first (TTU_SPLIT_HUGE_PMD: a 2 MiB CLEAR).
   */
  async tryToMigrate(pfn: number): Promise<number> {
    return tryToMigratePfn(this.machine, pfn);
  }

  /**
   * Models remove_migration_ptes(src, dst): every migration entry for `oldPfn` (found through
   * the old page's rmap metadata, in every mm) becomes a mapping of `newPfn` — a present PTE
   * (writable iff the entry was) or, if `newPfn` is device-private, a device-private entry.
   * Each new mapping takes a reference and a mapcount on `newPfn`. No invalidation (the entries
   * were not present). Pass `newPfn === oldPfn` to restore the original. Returns the count.
   */
  removeMigrationPtes(oldPfn: number, newPfn: number): number {
    return removeMigrationPtesPfn(this.machine, oldPfn, newPfn);
  }

  /**
   * Models folio_migrate_mapping()'s metadata part: `dst` takes over `src`'s rmap identity
   * (anon family or file, index, anon/dirty flags), so rmap walks and remove_migration_ptes
   * find the new page.
   */
  migratePageMetadata(dst: number, src: number): void {
    const p = this.phys;
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
  migrateVmaInsertPage(vma: Vma, addr: number, pfn: number): boolean {
    if (vma.file !== null || !(vma.flags & VM_ACCESS_FLAGS)) return false;
    const p = this.phys;
    const haddr = alignDown(addr, PMD_SIZE);
    const pmd = this.pt.pmdTable(haddr, true)!;
    const mi = Math.floor(haddr / PMD_SIZE) & 511;
    if (pmd.tables[mi] === null && pmd.flags[mi] !== 0) return false; // huge zero page: caller splits
    const t = this.pt.pteTable(addr, true)!;
    const i = Math.floor(addr / PAGE_SIZE) & 511;
    const f = t.flags[i]!;
    const old = t.val[i]!;
    if (f !== 0 && !((f & PTE_TYPE_MASK) === PTE_PRESENT && old === ZERO_PFN)) return false;
    this.setAnonRmap(pfn, vma, addr);
    const w = vma.flags & VM_WRITE ? PTE_W : 0;
    p.refcount[pfn]!++;
    p.mapcount[pfn]!++;
    this.rss++;
    if (p.isDevicePrivatePage(pfn)) setEntry(t, i, pfn, PTE_DEVICE_PRIVATE | w);
    else setEntry(t, i, pfn, PRESENT_RY | (w ? PTE_W | PTE_DIRTY : 0));
    if (f !== 0) this.flushTlb();
    return true;
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
  installPmdMigrationEntry(addr: number): number {
    const haddr = alignDown(addr, PMD_SIZE);
    const pmd = this.pt.pmdTable(haddr, false);
    if (pmd === null) return -1;
    const mi = Math.floor(haddr / PMD_SIZE) & 511;
    const f = pmd.flags[mi]!;
    const ty = f & PTE_TYPE_MASK;
    if (pmd.tables[mi] !== null || (ty !== PTE_PRESENT && ty !== PTE_DEVICE_PRIVATE)) return -1;
    const head = pmd.val[mi]!;
    const p = this.phys;
    if (p.isZeroPfn(head) || p.flags[head]! & PG.hugetlb) return -1;
    for (let k = 0; k < HPAGE_PMD_NR; k++) if (p.mapcount[head + k] !== 1) return -1;
    for (let k = 0; k < HPAGE_PMD_NR; k++) {
      p.mapcount[head + k] = 0;
      if (f & PTE_DIRTY) p.flags[head + k] = p.flags[head + k]! | PG.dirty;
    }
    this.rss -= HPAGE_PMD_NR;
    pmd.flags[mi] = PTE_MIGRATION | (f & (PTE_W | PTE_DIRTY));
    if (ty === PTE_PRESENT) this.flushTlb();
    return head;
  }

  /**
   * PMD-level remove_migration_pmd(): the PMD migration entry at `addr`'s 2 MiB block becomes a
   * mapping of the folio `newHead` (a device-private PMD entry if it is device memory, else a
   * present THP leaf), writable iff the entry was. Each of the 512 pages takes a reference and a
   * mapcount. Pass the old head to restore. Returns false if there is no PMD migration entry.
   * Copy the rmap metadata first (e.g. {@link migratePageMetadata} per page).
   */
  removeMigrationPmd(addr: number, newHead: number): boolean {
    const haddr = alignDown(addr, PMD_SIZE);
    const pmd = this.pt.pmdTable(haddr, false);
    if (pmd === null) return false;
    const mi = Math.floor(haddr / PMD_SIZE) & 511;
    const f = pmd.flags[mi]!;
    if (pmd.tables[mi] !== null || (f & PTE_TYPE_MASK) !== PTE_MIGRATION) return false;
    const vma = this.vmas.lookup(haddr);
    const p = this.phys;
    for (let k = 0; k < HPAGE_PMD_NR; k++) {
      p.refcount[newHead + k]!++;
      p.mapcount[newHead + k]!++;
    }
    this.rss += HPAGE_PMD_NR;
    pmd.val[mi] = newHead;
    pmd.flags[mi] = p.isDevicePrivatePage(newHead)
      ? PTE_DEVICE_PRIVATE | (f & PTE_W)
      : (vma === null ? PTE_PRESENT : this.baseBits(vma)) | PTE_YOUNG | (f & (PTE_W | PTE_DIRTY));
    return true;
  }

  /**
   * PMD-level migrate_vma_insert_page() (migrate_vma_insert_huge_pmd_page): maps the 2 MiB
   * folio `head` at the PMD-aligned `addr` of the anonymous `vma` where the block is empty (no
   * entries) or maps the huge zero page — a device-private PMD entry for device memory, else a
   * THP leaf — writable iff the VMA has VM_WRITE. Every page takes a reference and a mapcount
   * and gets the VMA's anon rmap metadata. Returns false if the block is populated otherwise.
   */
  migrateVmaInsertPmd(vma: Vma, addr: number, head: number): boolean {
    if (addr % PMD_SIZE !== 0 || addr < vma.start || addr + PMD_SIZE > vma.end) return false;
    if (vma.file !== null || !(vma.flags & VM_ACCESS_FLAGS)) return false;
    const pmd = this.pt.pmdTable(addr, true)!;
    const mi = Math.floor(addr / PMD_SIZE) & 511;
    const t = pmd.tables[mi]!;
    const f = pmd.flags[mi]!;
    if (t !== null) {
      if (t.used !== 0) return false;
      this.pt.freePteTable(pmd, mi);
    } else if (f !== 0 && pmd.val[mi] !== HUGE_ZERO_PFN) return false;
    const p = this.phys;
    for (let k = 0; k < HPAGE_PMD_NR; k++) {
      this.setAnonRmap(head + k, vma, addr + k * PAGE_SIZE);
      p.refcount[head + k]!++;
      p.mapcount[head + k]!++;
    }
    this.rss += HPAGE_PMD_NR;
    const w = vma.flags & VM_WRITE ? PTE_W : 0;
    if (p.isDevicePrivatePage(head)) setEntry(pmd, mi, head, PTE_DEVICE_PRIVATE | w);
    else setEntry(pmd, mi, head, PRESENT_RY | (w ? PTE_W | PTE_DIRTY : 0));
    if (f !== 0) this.flushTlb();
    return true;
  }

  /**
   * Models get_user_pages(addr, 1, FOLL_WRITE?) for one page: faults it in as a remote access
   * (device-private pages migrate back, device-exclusive entries are restored, COW is broken
   * for writes) and returns its pfn with an extra reference, or a negative errno (-EFAULT:
   * no VMA / fault error, -EPERM... as -EFAULT). Caller holds the mmap lock for read.
   */
  async getUserPage(addr: number, write: boolean): Promise<number> {
    const vma = this.vmas.lookup(addr);
    if (vma === null) return -Errno.EFAULT;
    if (write ? !(vma.flags & VM_WRITE) : !(vma.flags & VM_READ)) return -Errno.EFAULT;
    if (vma.flags & (VM_IO | VM_PFNMAP)) return -Errno.EFAULT;
    for (let tries = 0; tries < 16; tries++) {
      const pfn = this.fastLookup(addr, write);
      if (pfn >= 0) {
        this.phys.getPage(pfn);
        return pfn;
      }
      const r = await this.handleMmFault(vma, addr, FAULT_FLAG_REMOTE | (write ? FAULT_FLAG_WRITE : 0));
      if (r & (VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV)) return -Errno.EFAULT;
      if (r & VM_FAULT_OOM) return -Errno.ENOMEM;
    }
    return -Errno.EBUSY;
  }

  /**
   * Models make_device_exclusive(mm, addr, owner) (single-page API of Linux 6.14+; caller
   * holds the mmap lock for read): faults the page in writable (FOLL_WRITE, splitting a THP
   * mapping), checks it is an anonymous non-hugetlb page mapped writable, locks it, issues an
   * EXCLUSIVE invalidation of the page with `owner`, and installs a writable device-exclusive
   * entry. Returns `{ret: 0, pfn}` with the page locked and referenced (the driver unlocks and
   * puts it), or `{ret: -errno, pfn: -1}`.
   */
  async makeDeviceExclusive(addr: number, owner: unknown): Promise<DeviceExclusiveResult> {
    if (!Number.isSafeInteger(addr) || addr < 0 || addr % PAGE_SIZE !== 0) {
      throw new ArgumentError('Mm.makeDeviceExclusive', 'addr', 'must be a page-aligned address', addr);
    }
    const vma = this.vmas.lookup(addr);
    if (vma === null) return { ret: -Errno.EFAULT, pfn: -1 };
    if (vma.flags & VM_HUGETLB || vma.file !== null) return { ret: -Errno.EOPNOTSUPP, pfn: -1 };
    const pmd = this.pt.pmdTable(addr, false);
    const mi = Math.floor(addr / PMD_SIZE) & 511;
    if (pmd !== null && pmd.tables[mi] === null && pmd.flags[mi] !== 0) await this.splitHugePmd(vma, addr);
    const pfn = await this.getUserPage(addr, true);
    if (pfn < 0) return { ret: pfn, pfn: -1 };
    const p = this.phys;
    if (!(p.flags[pfn]! & PG.anon) || p.flags[pfn]! & PG.device) {
      p.putPage(pfn);
      return { ret: -Errno.EOPNOTSUPP, pfn: -1 };
    }
    if (!p.trylockPage(pfn)) {
      p.putPage(pfn);
      return { ret: -Errno.EBUSY, pfn: -1 };
    }
    const r = await this.invStart(MmuNotifyEvent.EXCLUSIVE, addr, addr + PAGE_SIZE, owner);
    const t = this.pt.pteTable(addr, false);
    const i = Math.floor(addr / PAGE_SIZE) & 511;
    const f = t === null ? 0 : t.flags[i]!;
    if (t === null || t.val[i] !== pfn || (f & (PTE_TYPE_MASK | PTE_W)) !== (PTE_PRESENT | PTE_W)) {
      await this.invEnd(r);
      p.unlockPage(pfn);
      p.putPage(pfn);
      return { ret: -Errno.EBUSY, pfn: -1 };
    }
    if (f & PTE_DIRTY) p.flags[pfn] = p.flags[pfn]! | PG.dirty;
    t.flags[i] = PTE_DEVICE_EXCLUSIVE | PTE_W;
    this.flushTlb();
    await this.invEnd(r);
    return { ret: 0, pfn };
  }

  /**
   * Models vm_insert_page(): maps a driver-allocated page at `addr` of a VMA being set up by a
   * {@link SpecialFile} mmap hook (sets VM_MIXEDMAP). Read-only in private mappings (COW),
   * writable in shared writable ones. Returns 0 or -EINVAL / -EBUSY.
   */
  vmInsertPage(vma: Vma, addr: number, pfn: number): number {
    if (addr < vma.start || addr >= vma.end || addr % PAGE_SIZE !== 0) return -Errno.EFAULT;
    if (vma.flags & VM_PFNMAP) return -Errno.EINVAL;
    vma.flags |= VM_MIXEDMAP;
    const t = this.pt.pteTable(addr, true)!;
    const i = Math.floor(addr / PAGE_SIZE) & 511;
    if (t.flags[i] !== 0) return -Errno.EBUSY;
    this.mapRef(pfn);
    const w = vma.flags & VM_SHARED && vma.flags & VM_WRITE ? PTE_W : 0;
    setEntry(t, i, pfn, this.baseBits(vma) | w);
    return 0;
  }

  /**
   * Models vmf_insert_pfn(): a special (no struct page) PTE in a VM_PFNMAP or VM_MIXEDMAP VMA.
   */
  vmInsertPfn(vma: Vma, addr: number, pfn: number): number {
    if (!(vma.flags & (VM_PFNMAP | VM_MIXEDMAP))) return -Errno.EINVAL;
    if (addr < vma.start || addr >= vma.end || addr % PAGE_SIZE !== 0) return -Errno.EFAULT;
    const t = this.pt.pteTable(addr, true)!;
    const i = Math.floor(addr / PAGE_SIZE) & 511;
    if (t.flags[i] !== 0) return -Errno.EBUSY;
    const w = vma.flags & VM_SHARED && vma.flags & VM_WRITE ? PTE_W : 0;
    setEntry(t, i, pfn, this.baseBits(vma) | PTE_SPECIAL | w);
    return 0;
  }

  /**
   * Models move_pages(2) with MPOL_MF_MOVE (on this mm only): migrates each page at `pages[k]`
   * to `nodes[k]` (or, with `nodes` null, reports the node). `status[k]` gets the node or a
   * negative errno (-ENOENT: not present / zero page, -EFAULT: no VMA, -EBUSY: locked,
   * -EACCES: shared with another process (MPOL_MF_MOVE)). Each migration unmaps every mapping
   * (CLEAR invalidations), copies, and remaps. Returns 0.
   */
  async movePages(
    pages: readonly number[],
    nodes: readonly number[] | null,
    status: Int32Array,
  ): Promise<number> {
    const fn = 'Mm.movePages';
    if (status.length < pages.length)
      throw new ArgumentError(fn, 'status', 'must have room for every page', status.length);
    if (nodes !== null) {
      if (nodes.length !== pages.length)
        throw new ArgumentError(fn, 'nodes', 'must match pages', nodes.length);
      for (const n of nodes) {
        if (this.phys.nodes[n]?.kind !== 'system') return -Errno.ENODEV;
      }
    }
    const p = this.phys;
    await this.mmapLock.read();
    try {
      for (let k = 0; k < pages.length; k++) {
        const addr = alignDown(pages[k]!, PAGE_SIZE);
        const vma = this.vmas.lookup(addr);
        if (vma === null) {
          status[k] = -Errno.EFAULT;
          continue;
        }
        const e = this.readEntry(addr);
        if ((e.flags & PTE_TYPE_MASK) !== PTE_PRESENT || p.isZeroPfn(e.val) || e.flags & PTE_SPECIAL) {
          status[k] = -Errno.ENOENT;
          continue;
        }
        let pfn = e.val;
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
          await this.splitHugePmd(vma, addr);
          pfn = this.readEntry(addr).val;
        }
        status[k] = await this.migratePage(pfn, target);
      }
      return 0;
    } finally {
      this.mmapLock.readUnlock();
    }
  }

  /** migrate_pages() of one small page to `node`: the new node, or a negative errno. */
  private async migratePage(pfn: number, node: number): Promise<number> {
    const p = this.phys;
    if (!p.trylockPage(pfn)) return -Errno.EBUSY;
    p.getPage(pfn);
    const dst = p.allocPage(node, 0);
    if (dst < 0) {
      p.unlockPage(pfn);
      p.putPage(pfn);
      return -Errno.ENOMEM;
    }
    await this.tryToMigrate(pfn);
    const extra = p.refcount[pfn]! - 1; // page-cache reference of a file page
    if (p.mapcount[pfn] !== 0 || extra > (p.flags[pfn]! & PG.file ? 1 : 0)) {
      this.removeMigrationPtes(pfn, pfn);
      p.unlockPage(pfn);
      p.putPage(pfn);
      p.putPage(dst);
      return -Errno.EBUSY;
    }
    p.copyPage(dst, pfn);
    this.sim.charge(this.sim.costs.cpuPageCopyNs);
    this.migratePageMetadata(dst, pfn);
    if (p.flags[pfn]! & PG.file) {
      const ino = inodeById(p.mapping[pfn]!);
      if (ino !== null) {
        ino.cache[p.index[pfn]!] = dst;
        p.refcount[dst]!++;
        p.putPage(pfn);
      }
    }
    this.removeMigrationPtes(pfn, dst);
    p.putPage(dst); // the allocation reference
    p.unlockPage(pfn);
    p.putPage(pfn);
    this.machine.stats.numaMigrated.value++;
    return node;
  }
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
  const check = (mm: Mm, v: Vma): void => {
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
  };
  if (id > 0) {
    const fam = machine.anonVmaById(id);
    if (fam === null) return out;
    for (const mm of fam.mms) {
      for (const v of mm.vmas) if (v.anonVma === fam) check(mm, v);
    }
  } else if (id < 0) {
    const ino = inodeById(id);
    if (ino === null) return out;
    for (const v of ino.mappings) check(v.mm, v);
  }
  return out;
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
    if (hit.huge) await mm.splitHugePmd(hit.vma, hit.address); // TTU_SPLIT_HUGE_PMD
    const r = await mm.invStart(MmuNotifyEvent.CLEAR, hit.address, hit.address + PAGE_SIZE);
    const t = mm.pt.pteTable(hit.address, false);
    const i = Math.floor(hit.address / PAGE_SIZE) & 511;
    if (t !== null && t.val[i] === pfn) {
      const f = t.flags[i]!;
      const ty = f & PTE_TYPE_MASK;
      if (ty === PTE_PRESENT || ty === PTE_DEVICE_PRIVATE || ty === PTE_DEVICE_EXCLUSIVE) {
        t.flags[i] = PTE_MIGRATION | (f & (PTE_W | PTE_DIRTY));
        p.mapcount[pfn]!--;
        mm.rss--;
        p.putPage(pfn);
        if (ty === PTE_PRESENT) mm.flushTlb();
      }
    }
    await mm.invEnd(r);
  }
  return p.mapcount[pfn]!;
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
    t.val[i] = newPfn;
    t.flags[i] = devPriv
      ? PTE_DEVICE_PRIVATE | (f & PTE_W)
      : (hit.vma.flags & VM_ACCESS_FLAGS ? PTE_PRESENT | PTE_R : PTE_PRESENT) |
        PTE_YOUNG |
        (f & (PTE_W | PTE_DIRTY));
    p.refcount[newPfn]!++;
    p.mapcount[newPfn]!++;
    hit.mm.rss++;
    n++;
  }
  return n;
}

/** calc_vm_prot_bits(): PROT_* → VM_READ/WRITE/EXEC. */
export function calcVmProtBits(prot: number): number {
  return (
    (prot & PROT_READ ? VM_READ : 0) | (prot & PROT_WRITE ? VM_WRITE : 0) | (prot & PROT_EXEC ? VM_EXEC : 0)
  );
}
