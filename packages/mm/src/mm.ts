/**
 * `Mm`: one simulated process address space (`struct mm_struct`): VMAs, page tables, the mmap
 * lock, notifier subscriptions, counters — and one-line public methods. The logic lives in
 * files named after Linux's, as functions `fn(mm, …)`: `memory.ts` (handle_mm_fault, zap),
 * `huge-memory.ts`, `hugetlb.ts`, `rmap.ts`, `migrate.ts`, `mmap.ts`, `mprotect.ts`,
 * `mremap.ts`, `madvise.ts`, `mlock.ts`, `vmscan.ts`, `fork.ts`, `gup.ts`, `uaccess.ts` (CPU
 * loads and stores), `device.ts` (make_device_exclusive, vm_insert_*), `invalidate.ts`
 * (notifier ranges, TLB flushes) and `vma.ts` (split, merge, link). This file keeps the state,
 * lookups, fork/exit entry points and mm_users.
 *
 * Locking model: the mmap lock is a scheduler RwSemaphore; the page-table lock is implicit —
 * JavaScript runs one task at a time, so every synchronous stretch of code that reads and
 * writes entries is atomic, exactly like a PTL critical section. Anything that can block
 * (notifier callbacks, migrate_to_ram, waiting on a locked page) is async.
 *
 * @module
 */

import type {
  MmuNotifierRange,
  MmuNotifierSubscriptions,
  MmuNotifyEvent,
  NotifierMm,
} from '@hmmkit/notifier';
import { Errno, RwSemaphore, type Sim, StateError } from '@hmmkit/sim';
import { MMAP_BASE, PAGE_SIZE, VM_DONTCOPY, VM_HUGETLB, VM_MIXEDMAP, VM_PFNMAP } from './constants.ts';
import { type DeviceExclusiveResult, makeDeviceExclusive, vmInsertPage, vmInsertPfn } from './device.ts';
import type { MmFile } from './file.ts';
import { copyPageRange, exitMmap } from './fork.ts';
import { getUserPage, isPinned, pinUserPages, unpinUserPage } from './gup.ts';
import {
  installPmdMigrationEntry,
  migrateVmaInsertPmd,
  removeMigrationPmd,
  splitHugePmd,
} from './huge-memory.ts';
import { flushTlb, flushTlbDeferred, flushTlbPending, invEnd, invStart } from './invalidate.ts';
import type { Machine } from './machine.ts';
import { madvise } from './madvise.ts';
import { handleMmFault } from './memory.ts';
import {
  installMigrationEntry,
  migratePageMetadata,
  migrateVmaInsertPage,
  movePages,
  removeMigrationPtesPfn,
} from './migrate.ts';
import { mlock, munlock } from './mlock.ts';
import { mmap, munmap } from './mmap.ts';
import { mprotect } from './mprotect.ts';
import { mremap } from './mremap.ts';
import {
  PageTable,
  PageWalk,
  PTE_DEVICE_PRIVATE,
  PTE_MIGRATION,
  PTE_NONE,
  PTE_PRESENT,
  PTE_SPECIAL,
  PTE_TYPE_MASK,
  WALK_HOLE,
  WALK_PTE,
} from './page-table.ts';
import { PG, type PhysMem } from './physmem.ts';
import { type RmapHit, rmapWalkPfn, tryToMigratePfn } from './rmap.ts';
import { cpuRead, cpuReadInto, cpuTouch, cpuWrite, loadScalar, scalar } from './uaccess.ts';
import { linkVma, Vma, VmaTree } from './vma.ts';

declare module '@hmmkit/sim' {
  interface TraceEvents {
    /** handle_mm_fault() was entered: mm id, address, FAULT_FLAG_* bits. */
    'mm.fault': [mm: number, address: number, flags: number];
    /** The mm started an invalidation: mm id, MmuNotifyEvent, start, end (exclusive). */
    'mm.invalidate': [mm: number, event: number, start: number, end: number];
    /**
     * A CPU load or store of `n` bytes at `address` done (bytes at `buf[offset..]`), for the
     * oracle's data shadow.
     */
    'mm.access': [mm: number, address: number, write: boolean, buf: Uint8Array, offset: number, n: number];
  }
}

let nextMmId = 1;

/** One recorded invalidation (for {@link Mm.invalidationLog} in tests and traces). */
export interface InvalidationRecord {
  readonly event: number;
  readonly start: number;
  readonly end: number;
  readonly owner: unknown;
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
  /** @internal */
  freeAreaCache = MMAP_BASE;
  /** Pages mapped (RSS: present entries of normal pages and device-private entries). */
  rss = 0;
  /** Swap entries in the page tables. */
  swapEntries = 0;
  /** Preferred NUMA node for new pages (the task's mempolicy, simplified). */
  node = 0;
  /** When non-null, every invalidation this mm issues is appended here (debug/test aid). */
  invalidationLog: InvalidationRecord[] | null = null;
  /** Open invalidations (invStart without its invEnd yet), for the batched TLB flush. */
  /** @internal */
  invDepth = 0;
  /** TLB flushes queued by {@link flushTlbDeferred}, charged at the next invEnd. */
  /** @internal */
  tlbPendingFlushes = 0;
  /** The 2 MiB block of the last queued flush (-1: none). */
  /** @internal */
  tlbPendingBlock = -1;

  /** Creates an empty address space on `machine`. */
  constructor(machine: Machine) {
    this.machine = machine;
    this.sim = machine.sim;
    this.phys = machine.phys;
    this.id = nextMmId++;
    this.mmapLock = new RwSemaphore(machine.sim.sched, `mm${this.id}.mmap_lock`);
  }

  /**
   * @internal Starts an invalidation of this mm (mmu_notifier_range_init +
   * invalidate_range_start, plus the invalidation log and trace); null when no one listens.
   */
  async invStart(event: MmuNotifyEvent, start: number, end: number, owner: unknown = null) {
    return invStart(this, event, start, end, owner);
  }

  /** @internal Ends an invalidation started by {@link invStart}. */
  async invEnd(r: MmuNotifierRange | null): Promise<void> {
    return invEnd(this, r);
  }

  /** @internal Charges one TLB shootdown (flush_tlb_range after changing present entries). */
  flushTlb(): void {
    flushTlb(this);
  }

  /**
   * @internal Queues the TLB flush for a present entry at `addr` changed inside an open
   * invalidation (invStart … invEnd), as migrate_vma_collect_pmd() does: Linux clears the PTEs
   * of one PMD table and issues ONE flush_tlb_range() for it after the loop. Entries of the same
   * 2 MiB block share one flush; the queued flushes are charged at the next {@link invEnd}
   * (Linux flushes before invalidate_range_end). Outside an invalidation it flushes at once.
   */
  flushTlbDeferred(addr: number): void {
    flushTlbDeferred(this, addr);
  }

  /** @internal Charges the flushes queued by {@link flushTlbDeferred} (one per 2 MiB block touched). */
  flushTlbPending(): void {
    flushTlbPending(this);
  }

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

  /**
   * Models handle_mm_fault(vma, address, flags): resolves one fault at `addr` inside `vma` and
   * returns 0 or VM_FAULT_* bits (VM_FAULT_ERROR bits mean the access cannot be satisfied). The
   * caller holds the mmap lock for read. A return of 0 means "retry the access": the entry may
   * still not allow it if it changed meanwhile (the CPU access loop and hmm re-walk).
   * `flags`: FAULT_FLAG_WRITE, FAULT_FLAG_REMOTE, FAULT_FLAG_USER.
   */
  async handleMmFault(vma: Vma, addr: number, flags: number): Promise<number> {
    return handleMmFault(this, vma, addr, flags);
  }

  /**
   * Models __split_huge_pmd(): turns the PMD leaf mapping `haddr` into a PTE table (a THP's
   * subpages, the huge zero page's small zero pages, 512 migration or device-private entries),
   * inside a CLEAR invalidation of the 2 MiB range. The folio itself stays compound.
   */
  async splitHugePmd(vma: Vma, addr: number): Promise<void> {
    return splitHugePmd(this, vma, addr);
  }

  /**
   * A CPU load of `dst.length` bytes at `addr` into `dst` (faulting pages in as a user access
   * does). Throws {@link MmSignalError} (SIGSEGV / SIGBUS) at the first page that cannot be read.
   */
  async readInto(addr: number, dst: Uint8Array): Promise<void> {
    return cpuReadInto(this, addr, dst);
  }

  /** A CPU load of `length` bytes at `addr`. */
  async read(addr: number, length: number): Promise<Uint8Array> {
    return cpuRead(this, addr, length);
  }

  /**
   * A CPU store of `src` at `addr` (write faults, COW breaks as needed). Pages before a failing
   * page keep what was stored, as on real hardware.
   */
  async write(addr: number, src: Uint8Array): Promise<void> {
    return cpuWrite(this, addr, src);
  }

  /** Touches every page of [addr, addr+length) with a load or a store of nothing (faults only). */
  async touch(addr: number, length: number, write: boolean): Promise<void> {
    return cpuTouch(this, addr, length, write);
  }

  /** Loads a byte. */
  async readU8(addr: number): Promise<number> {
    return (await loadScalar(this, addr, 1)).getUint8(0);
  }
  /** Loads a little-endian u32. */
  async readU32(addr: number): Promise<number> {
    return (await loadScalar(this, addr, 4)).getUint32(0, true);
  }
  /** Loads a little-endian i32. */
  async readI32(addr: number): Promise<number> {
    return (await loadScalar(this, addr, 4)).getInt32(0, true);
  }
  /** Loads a little-endian f64. */
  async readF64(addr: number): Promise<number> {
    return (await loadScalar(this, addr, 8)).getFloat64(0, true);
  }
  /** Stores a byte. */
  async writeU8(addr: number, v: number): Promise<void> {
    await cpuWrite(
      this,
      addr,
      scalar(1, (d) => d.setUint8(0, v)),
    );
  }
  /** Stores a little-endian u32. */
  async writeU32(addr: number, v: number): Promise<void> {
    await cpuWrite(
      this,
      addr,
      scalar(4, (d) => d.setUint32(0, v, true)),
    );
  }
  /** Stores a little-endian i32. */
  async writeI32(addr: number, v: number): Promise<void> {
    await cpuWrite(
      this,
      addr,
      scalar(4, (d) => d.setInt32(0, v, true)),
    );
  }
  /** Stores a little-endian f64. */
  async writeF64(addr: number, v: number): Promise<void> {
    await cpuWrite(
      this,
      addr,
      scalar(8, (d) => d.setFloat64(0, v, true)),
    );
  }

  /** Reads `count` little-endian i32 at `addr` (a CPU load loop). */
  async readI32Array(addr: number, count: number): Promise<Int32Array> {
    const b = await cpuRead(this, addr, count * 4);
    return new Int32Array(b.buffer, b.byteOffset, count);
  }

  /** Stores `values` as little-endian i32 at `addr`. */
  async writeI32Array(addr: number, values: Int32Array): Promise<void> {
    await cpuWrite(this, addr, new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  }

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
    return mmap(this, addr, length, prot, flags, file, offset);
  }

  /**
   * Models munmap(2): 0, or -EINVAL (unaligned addr, len 0, range outside the VA space, a
   * hugetlb VMA split at a non-huge boundary), -ENOMEM (VMA limit on a split).
   */
  async munmap(addr: number, length: number): Promise<number> {
    return munmap(this, addr, length);
  }

  /**
   * Models mprotect(2): 0, or -EINVAL (unaligned start, unknown prot bits, PROT_GROWSDOWN/UP),
   * -ENOMEM (overflow, unmapped pages in the range: VMAs before the hole keep the new
   * protection, as in Linux), -EACCES (asking for a permission the VMA may not get, e.g.
   * PROT_WRITE on a shared mapping of a read-only file). len 0 succeeds.
   */
  async mprotect(start: number, length: number, prot: number): Promise<number> {
    return mprotect(this, start, length, prot);
  }

  /**
   * Models mlock(2): VM_LOCKED on every VMA of the page-aligned range (split/merged as
   * mprotect does; hugetlb and VM_SPECIAL VMAs are left unflagged, as mlock_fixup does), then
   * __mm_populate() under the mmap read lock: every page is faulted in (written for private
   * writable VMAs), so device-private pages migrate back to system memory. 0, or -ENOMEM (part
   * of the range unmapped; VMAs before the hole stay locked, as in Linux), -EINVAL (overflow).
   * No RLIMIT_MEMLOCK accounting.
   */
  async mlock(start: number, length: number): Promise<number> {
    return mlock(this, start, length);
  }

  /** Models munlock(2): clears VM_LOCKED on the range. 0, -ENOMEM (a hole), -EINVAL (overflow). */
  async munlock(start: number, length: number): Promise<number> {
    return munlock(this, start, length);
  }

  /**
   * Models mremap(2): returns the (new) address or a negative errno: -EINVAL (bad flags,
   * unaligned address, new length 0, FIXED without MAYMOVE, DONTUNMAP with a size change,
   * overlapping FIXED ranges, old length 0), -EFAULT (old range not inside one VMA, growing a
   * VM_DONTEXPAND/VM_PFNMAP VMA), -ENOMEM (cannot grow in place without MAYMOVE, no room).
   */
  async mremap(oldAddr: number, oldLen: number, newLen: number, flags: number, newAddr = 0): Promise<number> {
    return mremap(this, oldAddr, oldLen, newLen, flags, newAddr);
  }

  /**
   * Models madvise(2): 0, or -EINVAL (unaligned start, unknown advice, overflow, advice the VMA
   * does not support), -ENOMEM (part of the range unmapped: mapped parts are still advised),
   * -EAGAIN (MADV_COLLAPSE could not collapse some region).
   */
  async madvise(start: number, length: number, advice: number): Promise<number> {
    return madvise(this, start, length, advice);
  }

  /**
   * Models fork()'s dup_mmap(): a child mm with copies of the VMAs; private writable (COW)
   * mappings are write-protected in both inside a PROTECTION_PAGE invalidation of the parent
   * per VMA; shared mappings stay shared; device-private entries become read-only in both;
   * device-exclusive entries are restored to the original PTE first. Returns the child.
   */
  async fork(): Promise<Mm> {
    const r = await this.tryFork();
    if (typeof r === 'number') throw new StateError('Mm.fork', `fork failed with errno ${-r} (use tryFork)`);
    return r;
  }

  /**
   * Models fork(2) with its failure: the child mm as {@link fork} builds it, or -ENOMEM when
   * dup_mmap() fails — copy_pte_range() cannot copy a device-exclusive entry whose folio is
   * locked (try_restore_exclusive_pte's trylock fails: -EBUSY, which copy_pmd_range turns into
   * -ENOMEM). The parent keeps what was already done (write-protected COW entries, restored
   * exclusive entries); the half-built child is torn down.
   */
  async tryFork(): Promise<Mm | number> {
    let child: Mm;
    let failed = false;
    await this.mmapLock.write();
    try {
      if (this.mmUsers === 0) throw new StateError('Mm.fork', 'the mm is gone');
      child = new Mm(this.machine);
      child.node = this.node;
      child.freeAreaCache = this.freeAreaCache;
      for (const vma of this.vmas.toArray()) {
        if (vma.flags & VM_DONTCOPY) continue;
        const cv = new Vma(child, vma.start, vma.end, vma.flags, vma.pgoff, vma.file, vma.anonVma);
        cv.privateData = vma.privateData;
        linkVma(child, cv);
        const needsCopy = vma.anonVma !== null || vma.flags & (VM_PFNMAP | VM_MIXEDMAP | VM_HUGETLB);
        if (needsCopy && !(await copyPageRange(this, child, vma))) {
          failed = true;
          break;
        }
      }
    } finally {
      this.mmapLock.writeUnlock();
    }
    if (!failed) return child;
    await child.mmput(); // copy_process() failure: the child's mm goes away
    return -Errno.ENOMEM;
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
    if (--this.mmUsers === 0) await exitMmap(this);
  }

  /** The process exits: drops its mm_users reference (exit_mm → mmput). */
  async exit(): Promise<void> {
    await this.mmput();
  }

  /**
   * Models rmap_walk(): every (mm, vma, address) whose entry maps `pfn` (a present,
   * device-private or device-exclusive PTE, or a present / device-private PMD leaf with `huge`
   * set; or, with `migrationEntries`, only the PTE migration entries naming it), via
   * page->mapping and page->index: the anon_vma family's mms, or the shmem inode's i_mmap.
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
    return installMigrationEntry(this, addr);
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
    migratePageMetadata(this, dst, src);
  }

  /**
   * Models migrate_vma_insert_page() (caller holds the mmap lock and has issued the MIGRATE
   * invalidation): maps `pfn` at `addr` of the anonymous `vma` where the entry is none or the
   * zero page — a device-private entry for a device-private page, else a present PTE —
   * writable iff the VMA has VM_WRITE. Takes a reference and a mapcount. Returns false if the
   * VMA is not anonymous or the entry is populated by something else.
   */
  migrateVmaInsertPage(vma: Vma, addr: number, pfn: number): boolean {
    return migrateVmaInsertPage(this, vma, addr, pfn);
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
    return installPmdMigrationEntry(this, addr);
  }

  /**
   * PMD-level remove_migration_pmd(): the PMD migration entry at `addr`'s 2 MiB block becomes a
   * mapping of the folio `newHead` (a device-private PMD entry if it is device memory, else a
   * present THP leaf), writable iff the entry was. Each of the 512 pages takes a reference and a
   * mapcount. Pass the old head to restore. Returns false if there is no PMD migration entry.
   * Copy the rmap metadata first (e.g. {@link migratePageMetadata} per page).
   */
  removeMigrationPmd(addr: number, newHead: number): boolean {
    return removeMigrationPmd(this, addr, newHead);
  }

  /**
   * PMD-level migrate_vma_insert_page() (migrate_vma_insert_huge_pmd_page): maps the 2 MiB
   * folio `head` at the PMD-aligned `addr` of the anonymous `vma` where the block is empty (no
   * entries) or maps the huge zero page — a device-private PMD entry for device memory, else a
   * THP leaf — writable iff the VMA has VM_WRITE. Every page takes a reference and a mapcount
   * and gets the VMA's anon rmap metadata. Returns false if the block is populated otherwise.
   */
  migrateVmaInsertPmd(vma: Vma, addr: number, head: number): boolean {
    return migrateVmaInsertPmd(this, vma, addr, head);
  }

  /**
   * Models get_user_pages(addr, 1, FOLL_WRITE?) for one page: faults it in as a remote access
   * (device-private pages migrate back, device-exclusive entries are restored, COW is broken
   * for writes) and returns its pfn with an extra reference, or a negative errno (-EFAULT:
   * no VMA / fault error, -EPERM... as -EFAULT). Caller holds the mmap lock for read.
   */
  async getUserPage(addr: number, write: boolean): Promise<number> {
    return getUserPage(this, addr, write);
  }

  /**
   * Models pin_user_pages(addr, nrPages, gupFlags | FOLL_PIN) (the caller holds the mmap lock
   * for read): faults each page in as get_user_pages does (device-private pages migrate back,
   * COW is broken with FOLL_WRITE) and pins it — GUP_PIN_COUNTING_BIAS on its refcount, so
   * migration sees it as pinned (migrate_vma restores it, move_pages gives -EBUSY) until
   * {@link unpinUserPage}. With FOLL_LONGTERM a device-coherent page is first migrated to system
   * memory (check_and_migrate_movable_pages → migrate_device_coherent_folio). Fills `pfns` and
   * returns the number pinned (fewer than asked if a later page failed), or -errno if the first
   * page failed (-EFAULT, -ENOMEM, -EBUSY).
   */
  async pinUserPages(addr: number, nrPages: number, gupFlags: number, pfns: Float64Array): Promise<number> {
    return pinUserPages(this, addr, nrPages, gupFlags, pfns);
  }

  /** Models unpin_user_page(): drops a pin taken by {@link pinUserPages}. */
  unpinUserPage(pfn: number): void {
    unpinUserPage(this, pfn);
  }

  /** Models folio_maybe_dma_pinned(): the page carries at least one FOLL_PIN pin. */
  isPinned(pfn: number): boolean {
    return isPinned(this, pfn);
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
    return makeDeviceExclusive(this, addr, owner);
  }

  /**
   * Models vm_insert_page(): maps a driver-allocated page at `addr` of a VMA being set up by a
   * {@link SpecialFile} mmap hook (sets VM_MIXEDMAP). Read-only in private mappings (COW),
   * writable in shared writable ones. Returns 0 or -EINVAL / -EBUSY.
   */
  vmInsertPage(vma: Vma, addr: number, pfn: number): number {
    return vmInsertPage(this, vma, addr, pfn);
  }

  /**
   * Models vmf_insert_pfn(): a special (no struct page) PTE in a VM_PFNMAP or VM_MIXEDMAP VMA.
   */
  vmInsertPfn(vma: Vma, addr: number, pfn: number): number {
    return vmInsertPfn(this, vma, addr, pfn);
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
    return movePages(this, pages, nodes, status);
  }
}
