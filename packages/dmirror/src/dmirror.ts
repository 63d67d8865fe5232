/**
 * The dmirror driver of lib/test_hmm.c: `dmirrorOpen()` is `open("/dev/hmm_dmirrorN")` by a
 * process, {@link Dmirror.ioctl} the `unlocked_ioctl` entry with `struct hmm_dmirror_cmd`,
 * {@link Dmirror.file} the device file for `mmap()`, and {@link Dmirror.close} `release()`.
 *
 * @module
 */
import {
  HMM_PFN_ERROR,
  HMM_PFN_REQ_FAULT,
  HMM_PFN_REQ_WRITE,
  HMM_PFN_VALID,
  HMM_PFN_WRITE,
  HMM_RANGE_DEFAULT_TIMEOUT,
  HmmRange,
  hmmPfnToMapOrder,
  hmmRangeFaultLocked,
  MIGRATE_PFN_COMPOUND,
  MIGRATE_PFN_MIGRATE,
  MIGRATE_PFN_VALID,
  MIGRATE_PFN_WRITE,
  MIGRATE_VMA_SELECT_COMPOUND,
  MIGRATE_VMA_SELECT_DEVICE_COHERENT,
  MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
  MIGRATE_VMA_SELECT_SYSTEM,
  MigrateVma,
  makeDeviceExclusive,
  migrateDeviceFinalize,
  migrateDevicePages,
  migrateDeviceRange,
  migratePfn,
  migratePfnFlags,
  migratePfnToPfn,
  migrateVmaFinalize,
  migrateVmaPages,
  migrateVmaSetup,
} from '@hmmkit/hmm';
import {
  type Machine,
  type Mm,
  O_RDWR,
  PAGE_SIZE,
  PMD_SIZE,
  SpecialFile,
  VM_FAULT_SIGBUS,
  VM_READ,
  VM_WRITE,
  type Vma,
  type VmFault,
} from '@hmmkit/mm';
import {
  MmuIntervalNotifier,
  type MmuNotifierRange,
  MmuNotifyEvent,
  mmuIntervalNotifierInsert,
  mmuIntervalNotifierRemove,
  mmuIntervalSetSeq,
  mmuNotifierRangeBlockable,
} from '@hmmkit/notifier';
import { ArgumentError, checkUint, Errno, Mutex, StateError, ULONG_MAX } from '@hmmkit/sim';
import { checkDeviceIndex, DMIRROR_NDEVICES, DmirrorDevice, type DmirrorPageOwner } from './device.ts';
import { DmirrorPageTable, DPT_XA_TAG_ATOMIC, DPT_XA_TAG_WRITE, dptPfn, dptTag } from './dpt.ts';
import {
  HMM_DMIRROR_CHECK_EXCLUSIVE,
  HMM_DMIRROR_EXCLUSIVE,
  HMM_DMIRROR_FLAG_FAIL_ALLOC,
  HMM_DMIRROR_FLAGS,
  HMM_DMIRROR_MIGRATE_TO_DEV,
  HMM_DMIRROR_MIGRATE_TO_SYS,
  HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL,
  HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE,
  HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL,
  HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE,
  HMM_DMIRROR_PROT_ERROR,
  HMM_DMIRROR_PROT_NONE,
  HMM_DMIRROR_PROT_PMD,
  HMM_DMIRROR_PROT_PUD,
  HMM_DMIRROR_PROT_READ,
  HMM_DMIRROR_PROT_WRITE,
  HMM_DMIRROR_PROT_ZERO,
  HMM_DMIRROR_READ,
  HMM_DMIRROR_RELEASE,
  HMM_DMIRROR_SNAPSHOT,
  HMM_DMIRROR_WRITE,
  type HmmDmirrorCmd,
  type HmmDmirrorResult,
} from './uapi.ts';

/** `dmirror_fault()` / SNAPSHOT chunk: `unsigned long pfns[32]` in the newest tree (64 before). */
export const DMIRROR_FAULT_CHUNK = 32;
/** Migration chunk: `PTRS_PER_PTE` (512) in the newest tree (64 before). */
export const DMIRROR_MIGRATE_CHUNK = 512;

const P = PAGE_SIZE;
const PMD_NR = 512;
const PAGE_MASK_ALL = ULONG_MAX - (ULONG_MAX % P); // ULONG_MAX & PAGE_MASK

const devicesOf = new WeakMap<Machine, DmirrorDevice[]>();

/** The four dmirror devices of `machine` (module init: one chunk each), created on first use. */
export function dmirrorDevices(machine: Machine): readonly DmirrorDevice[] {
  let devs = devicesOf.get(machine);
  if (devs === undefined) {
    devs = [];
    const ops = { migrateToRam: dmirrorDevmemFault };
    for (let i = 0; i < DMIRROR_NDEVICES; i++) {
      const d = new DmirrorDevice(machine, i, ops);
      d.allocateChunk(); // dmirror_device_init(): "Build a list of free ZONE_DEVICE struct pages"
      devs.push(d);
    }
    devicesOf.set(machine, devs);
  }
  return devs;
}

/**
 * Models `open("/dev/hmm_dmirror<deviceIndex>")` by the process `mm` (dmirror_fops_open()):
 * a new mirror with its own page table, driver mutex and a whole-address-space interval
 * notifier. Throws ArgumentError for a bad index or an mm of another machine, StateError if the
 * notifier cannot be inserted (the mm has exited).
 */
export async function dmirrorOpen(machine: Machine, mm: Mm, deviceIndex: number): Promise<Dmirror> {
  checkDeviceIndex('dmirrorOpen', deviceIndex);
  if (mm.machine !== machine)
    throw new ArgumentError('dmirrorOpen', 'mm', 'must be a process of machine', mm.id);
  const mdevice = dmirrorDevices(machine)[deviceIndex]!;
  const d = new Dmirror(mdevice, mm);
  const ret = await mmuIntervalNotifierInsert(d.notifier, mm, 0, PAGE_MASK_ALL, {
    invalidate: (_sub, range, curSeq) => d.intervalInvalidate(range, curSeq),
  });
  if (ret !== 0) throw new StateError('dmirrorOpen', `mmu_interval_notifier_insert failed (${ret})`);
  return d;
}

/** The bounce buffer (`struct dmirror_bounce`). */
interface Bounce {
  buf: Uint8Array;
  addr: number;
  cpages: number;
}

/** Models `struct dmirror`: one open file of a dmirror device. */
export class Dmirror implements DmirrorPageOwner {
  /** `mdevice`. */
  readonly mdevice: DmirrorDevice;
  /** The mirrored process (`notifier.mm`). */
  readonly mm: Mm;
  /** `pt`: the device page table. */
  readonly pt = new DmirrorPageTable();
  /** `notifier`: spans the whole address space. */
  readonly notifier = new MmuIntervalNotifier();
  /** `mutex`: the driver update lock. */
  readonly mutex: Mutex;
  /** `flags` (HMM_DMIRROR_FLAG_*). */
  flags = 0;
  /** The device file, for `mm.mmap(..., fd.file, 0)` (dmirror_fops_mmap(): a mixed map). */
  readonly file: SpecialFile;
  private closed = false;

  constructor(mdevice: DmirrorDevice, mm: Mm) {
    this.mdevice = mdevice;
    this.mm = mm;
    this.mutex = new Mutex(mm.sim.sched, `dmirror${mdevice.index}.mutex`);
    this.file = new SpecialFile(O_RDWR, (vma) => this.fopsMmap(vma));
  }

  /** True after close(). */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Drops the page-table entry of page index `index` (the owner back pointer's xa_erase). */
  erasePt(index: number): void {
    this.pt.erase(index);
  }

  // ---- notifier ------------------------------------------------------------------------------

  /**
   * Models dmirror_intervalInvalidate(): ignores MIGRATE invalidations this device started,
   * else sets the sequence and erases `[start >> 12, end >> 12]` — both bounds inclusive, so one
   * page past the range is dropped too (Linux's quirk, kept).
   */
  async intervalInvalidate(range: MmuNotifierRange, curSeq: number): Promise<boolean> {
    if (range.event === MmuNotifyEvent.MIGRATE && range.owner === this.mdevice) return true;
    if (mmuNotifierRangeBlockable(range)) await this.mutex.lock();
    else if (!this.mutex.tryLock()) return false;
    mmuIntervalSetSeq(this.notifier, curSeq);
    this.pt.eraseRange(Math.floor(range.start / P), Math.floor(range.end / P));
    this.mutex.unlock();
    return true;
  }

  // ---- ioctl ---------------------------------------------------------------------------------

  /**
   * Models dmirror_fops_unlocked_ioctl() plus the selftest's view of it: returns `{ret, cpages,
   * faults}`. On success `cmd.cpages`/`cmd.faults` are written back (copy_to_user of the
   * struct); on an error they are left as they were and returned unchanged. Linux errors:
   * -EINVAL (unaligned `addr`, `npages` 0 or wrapping, unknown request, dead mm, no readable
   * VMA for a migration), -EFAULT (no VMA / unreadable for READ, `ptr` too short), -EPERM,
   * -ENOENT, -EBUSY, -EBADF after close. Non-integer arguments throw ArgumentError first.
   */
  async ioctl(
    request: number,
    cmd: HmmDmirrorCmd & { cpages?: number; faults?: number },
  ): Promise<HmmDmirrorResult> {
    const fn = 'Dmirror.ioctl';
    if (!Number.isInteger(request)) throw new ArgumentError(fn, 'request', 'must be an integer', request);
    checkUint(fn, 'cmd.addr', cmd.addr);
    checkUint(fn, 'cmd.npages', cmd.npages);
    const fail = (ret: number): HmmDmirrorResult => ({
      ret,
      cpages: cmd.cpages ?? 0,
      faults: cmd.faults ?? 0,
    });
    if (this.closed) return fail(-Errno.EBADF);
    if (cmd.addr % P !== 0) return fail(-Errno.EINVAL);
    const size = cmd.npages * P;
    if (!(cmd.addr < cmd.addr + size) || cmd.addr + size > ULONG_MAX) return fail(-Errno.EINVAL);
    const out = { cpages: 0, faults: 0 };
    let ret: number;
    switch (request) {
      case HMM_DMIRROR_READ:
        ret = await this.read(cmd, size, out);
        break;
      case HMM_DMIRROR_WRITE:
        ret = await this.write(cmd, size, out);
        break;
      case HMM_DMIRROR_MIGRATE_TO_DEV:
        ret = await this.migrateToDevice(cmd, size, out);
        break;
      case HMM_DMIRROR_MIGRATE_TO_SYS:
        ret = await this.migrateToSystem(cmd, size, out);
        break;
      case HMM_DMIRROR_EXCLUSIVE:
        ret = await this.exclusive(cmd, size, out);
        break;
      case HMM_DMIRROR_CHECK_EXCLUSIVE:
        ret = this.checkAtomic(cmd.addr, cmd.addr + size);
        break;
      case HMM_DMIRROR_SNAPSHOT:
        ret = await this.snapshot(cmd, size, out);
        break;
      case HMM_DMIRROR_RELEASE:
        await dmirrorDeviceRemoveChunks(this.mdevice);
        ret = 0;
        break;
      case HMM_DMIRROR_FLAGS:
        this.flags = cmd.npages;
        ret = 0;
        break;
      default:
        return fail(-Errno.EINVAL);
    }
    if (ret !== 0) return fail(ret);
    cmd.cpages = out.cpages;
    cmd.faults = out.faults;
    return { ret: 0, cpages: out.cpages, faults: out.faults };
  }

  /** Models dmirror_fops_release(): removes the notifier (waiting for a running invalidation), frees pt. */
  async close(): Promise<number> {
    if (this.closed) return -Errno.EBADF;
    this.closed = true;
    await mmuIntervalNotifierRemove(this.notifier);
    this.pt.clear();
    return 0;
  }

  // ---- READ / WRITE --------------------------------------------------------------------------

  /** True if `ptr` can receive (or supply) `n` bytes: copy_to_user/copy_from_user's -EFAULT otherwise. */
  private static userOk(ptr: Uint8Array | undefined, n: number): boolean {
    return ptr !== undefined && ptr.length >= n;
  }

  /** Models dmirror_do_read(). */
  private doRead(start: number, end: number, b: Bounce): number {
    const phys = this.mm.phys;
    let off = start - b.addr - ((start - b.addr) % P);
    for (let pfn = Math.floor(start / P); pfn < Math.floor(end / P); pfn++) {
      const e = this.pt.load(pfn);
      if (e === 0) return -Errno.ENOENT;
      // BACKING_PAGE() for device-private pages (see README: a real kernel would kmap the
      // struct page of device memory here; hmmkit reads the data the device holds).
      const page = this.mdevice.backingPage(dptPfn(e));
      phys.readPage(page, 0, b.buf, off, P);
      this.mm.sim.charge(this.mm.sim.costs.cpuPageCopyNs); // memcpy_from_page
      off += P;
      b.cpages++;
    }
    return 0;
  }

  /** Models dmirror_do_write(). */
  private doWrite(start: number, end: number, b: Bounce): number {
    const phys = this.mm.phys;
    let off = start - b.addr - ((start - b.addr) % P);
    for (let pfn = Math.floor(start / P); pfn < Math.floor(end / P); pfn++) {
      const e = this.pt.load(pfn);
      if (e === 0 || dptTag(e) !== DPT_XA_TAG_WRITE) return -Errno.ENOENT;
      const page = this.mdevice.backingPage(dptPfn(e));
      phys.writePage(page, 0, b.buf, off, P);
      this.mm.sim.charge(this.mm.sim.costs.cpuPageCopyNs); // memcpy_to_page
      off += P;
      b.cpages++;
    }
    return 0;
  }

  /** Models dmirror_read(): fault passes until every page is in pt; `faults` counts passes. */
  private async read(
    cmd: HmmDmirrorCmd,
    size: number,
    out: { cpages: number; faults: number },
  ): Promise<number> {
    if (!Dmirror.userOk(cmd.ptr, size)) return -Errno.EFAULT;
    const end = cmd.addr + size;
    let start = cmd.addr;
    const b: Bounce = { buf: new Uint8Array(size), addr: cmd.addr, cpages: 0 };
    let ret: number;
    for (;;) {
      await this.mutex.lock();
      ret = this.doRead(start, end, b);
      this.mutex.unlock();
      if (ret !== -Errno.ENOENT) break;
      start = cmd.addr + b.cpages * P;
      ret = await this.fault(start, end, false);
      if (ret !== 0) break;
      out.faults++;
    }
    if (ret === 0) cmd.ptr!.set(b.buf);
    out.cpages = b.cpages;
    return ret;
  }

  /** Models dmirror_write(). */
  private async write(
    cmd: HmmDmirrorCmd,
    size: number,
    out: { cpages: number; faults: number },
  ): Promise<number> {
    if (!Dmirror.userOk(cmd.ptr, size)) return -Errno.EFAULT;
    const end = cmd.addr + size;
    let start = cmd.addr;
    const b: Bounce = { buf: cmd.ptr!.slice(0, size), addr: cmd.addr, cpages: 0 };
    let ret: number;
    for (;;) {
      await this.mutex.lock();
      ret = this.doWrite(start, end, b);
      this.mutex.unlock();
      if (ret !== -Errno.ENOENT) break;
      start = cmd.addr + b.cpages * P;
      ret = await this.fault(start, end, true);
      if (ret !== 0) break;
      out.faults++;
    }
    out.cpages = b.cpages;
    return ret;
  }

  // ---- hmm_range_fault users -----------------------------------------------------------------

  /** Models dmirror_do_fault(): stores every returned page, WRITE-tagged if writable. */
  private doFault(range: HmmRange): number {
    const first = Math.floor(range.start / P);
    const n = range.npages;
    for (let i = 0; i < n; i++) {
      const f = range.hmmFlags[i]!;
      // WARN_ON(ERROR) / WARN_ON(!VALID): hmm_range_fault returned 0 after faulting everything.
      const pfn = range.hmmPfns[i]!;
      if (f & HMM_PFN_WRITE) this.pt.store(first + i, pfn, DPT_XA_TAG_WRITE);
      else if (range.defaultFlags & HMM_PFN_WRITE)
        return -Errno.EFAULT; // WARN_ON
      else this.pt.store(first + i, pfn, 0);
    }
    return 0;
  }

  /**
   * Models dmirror_range_fault(): the documented read_begin / hmm_range_fault / read_retry loop
   * with its 1 s budget — `hmmRangeFaultLocked` is exactly that loop — then the pt update under
   * the mutex it returns holding.
   */
  private async rangeFault(range: HmmRange): Promise<number> {
    let ret = await hmmRangeFaultLocked(range, this.mutex, { timeoutNs: HMM_RANGE_DEFAULT_TIMEOUT * 1e6 });
    if (ret !== 0) return ret;
    ret = this.doFault(range);
    this.mutex.unlock();
    return ret;
  }

  /** Models dmirror_fault(): hmm_range_fault over [start, end) in chunks of 32 pages. */
  private async fault(start: number, end: number, write: boolean): Promise<number> {
    const mm = this.mm;
    if (!mm.mmgetNotZero()) return 0;
    const pfns = new Float64Array(DMIRROR_FAULT_CHUNK);
    const flags = new Uint16Array(DMIRROR_FAULT_CHUNK);
    let ret = 0;
    try {
      for (let addr = start; addr < end; ) {
        const next = Math.min(addr + DMIRROR_FAULT_CHUNK * P, end);
        const n = (next - addr) / P;
        const range = new HmmRange({
          notifier: this.notifier,
          start: addr,
          end: next,
          hmmPfns: n === DMIRROR_FAULT_CHUNK ? pfns : pfns.subarray(0, n),
          hmmFlags: n === DMIRROR_FAULT_CHUNK ? flags : flags.subarray(0, n),
          pfnFlagsMask: 0,
          defaultFlags: HMM_PFN_REQ_FAULT | (write ? HMM_PFN_REQ_WRITE : 0),
          devPrivateOwner: this.mdevice,
        });
        ret = await this.rangeFault(range);
        if (ret !== 0) break;
        addr = next;
      }
    } finally {
      await mm.mmput();
    }
    return ret;
  }

  // ---- SNAPSHOT ------------------------------------------------------------------------------

  /** Models dmirror_mkentry(): the SNAPSHOT byte of one hmm_pfns entry. */
  private mkentry(flags: number, pfn: number): number {
    if (flags & HMM_PFN_ERROR) return HMM_DMIRROR_PROT_ERROR;
    if (!(flags & HMM_PFN_VALID)) return HMM_DMIRROR_PROT_NONE;
    const phys = this.mm.phys;
    let perm: number;
    if (phys.isDevicePrivatePage(pfn)) {
      perm =
        phys.pagemapOf(pfn)!.owner === this.mdevice
          ? HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL
          : HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE;
    } else if (phys.isDeviceCoherentPage(pfn)) {
      perm =
        phys.pagemapOf(pfn)!.owner === this.mdevice
          ? HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL
          : HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE;
    } else if (phys.isZeroPfn(pfn)) perm = HMM_DMIRROR_PROT_ZERO;
    else perm = HMM_DMIRROR_PROT_NONE;
    perm |= flags & HMM_PFN_WRITE ? HMM_DMIRROR_PROT_WRITE : HMM_DMIRROR_PROT_READ;
    const order = hmmPfnToMapOrder(flags);
    if (order === 9) perm |= HMM_DMIRROR_PROT_PMD;
    else if (order === 18) perm |= HMM_DMIRROR_PROT_PUD;
    return perm;
  }

  /** Models dmirror_range_snapshot(): a temporary notifier on the chunk, hmm_range_fault without faults. */
  private async rangeSnapshot(range: HmmRange, perm: Uint8Array): Promise<number> {
    const mm = this.mm;
    const notifier = new MmuIntervalNotifier();
    range.notifier = notifier;
    let ret = await mmuIntervalNotifierInsert(notifier, mm, range.start, range.end - range.start, {
      invalidate: async (_sub, r, curSeq) => {
        if (mmuNotifierRangeBlockable(r)) await this.mutex.lock();
        else if (!this.mutex.tryLock()) return false;
        mmuIntervalSetSeq(notifier, curSeq);
        this.mutex.unlock();
        return true;
      },
    });
    if (ret !== 0) return ret;
    try {
      ret = await hmmRangeFaultLocked(range, this.mutex, { timeoutNs: HMM_RANGE_DEFAULT_TIMEOUT * 1e6 });
      if (ret !== 0) return ret;
      const n = range.npages;
      for (let i = 0; i < n; i++) perm[i] = this.mkentry(range.hmmFlags[i]!, range.hmmPfns[i]!);
      this.mutex.unlock();
      return 0;
    } finally {
      await mmuIntervalNotifierRemove(notifier);
    }
  }

  /** Models dmirror_snapshot(). */
  private async snapshot(cmd: HmmDmirrorCmd, size: number, out: { cpages: number }): Promise<number> {
    if (!Dmirror.userOk(cmd.ptr, cmd.npages)) return -Errno.EFAULT;
    const mm = this.mm;
    const end = cmd.addr + size;
    if (!mm.mmgetNotZero()) return -Errno.EINVAL;
    const perm = new Uint8Array(DMIRROR_FAULT_CHUNK);
    let ret = 0;
    let uoff = 0;
    try {
      for (let addr = cmd.addr; addr < end; ) {
        const next = Math.min(addr + DMIRROR_FAULT_CHUNK * P, end);
        const range = new HmmRange({
          notifier: this.notifier,
          start: addr,
          end: next,
          defaultFlags: 0,
          pfnFlagsMask: 0,
          devPrivateOwner: this.mdevice,
        });
        ret = await this.rangeSnapshot(range, perm);
        if (ret !== 0) break;
        const n = (next - addr) / P;
        cmd.ptr!.set(perm.subarray(0, n), uoff);
        out.cpages += n;
        uoff += n;
        addr = next;
      }
    } finally {
      await mm.mmput();
    }
    return ret;
  }

  // ---- migration -----------------------------------------------------------------------------

  /** Models dmirror_migrate_alloc_and_copy() (newest tree: device THP for compound sources). */
  private migrateAllocAndCopy(args: MigrateVma): boolean {
    let retry = false;
    const phys = this.mm.phys;
    const md = this.mdevice;
    const { src, dst } = args;
    const n = src.length;
    for (let i = 0; i < n; i++) {
      const s = src[i]!;
      if (!(migratePfnFlags(s) & MIGRATE_PFN_MIGRATE)) continue;
      const spage = migratePfnToPfn(s);
      // WARN: "page already in device"
      if (spage >= 0 && phys.pagemapOf(spage) !== null) continue;
      const write =
        migratePfnFlags(s) & MIGRATE_PFN_WRITE || (spage < 0 && args.vma.flags & VM_WRITE)
          ? MIGRATE_PFN_WRITE
          : 0;
      if (migratePfnFlags(s) & MIGRATE_PFN_COMPOUND) {
        let head = -1;
        if (this.flags & HMM_DMIRROR_FLAG_FAIL_ALLOC) this.flags &= ~HMM_DMIRROR_FLAG_FAIL_ALLOC;
        else head = md.allocFolio(this);
        if (head >= 0) {
          for (let k = 0; k < PMD_NR; k++) {
            const r = md.backingPage(head + k);
            if (spage >= 0) phys.copyPage(r, spage + k);
            else phys.clearPage(r);
          }
          dst[i] = migratePfn(head) + MIGRATE_PFN_COMPOUND + write;
          this.mm.sim.charge(PMD_NR * this.mm.sim.costs.cpuPageCopyNs); // copy_highpage x 512
          continue;
        }
        // Fallback to 4 KiB pages: Linux hands migrate_vma_pages() 512 order-0 destinations and
        // it splits the source folio. @hmmkit/hmm has no such split, so the entry is skipped here
        // and the caller migrates the range again without MIGRATE_VMA_SELECT_COMPOUND.
        retry = true;
        continue;
      }
      const dpage = md.allocPage(this);
      if (dpage < 0) continue;
      const r = md.backingPage(dpage);
      if (spage >= 0) phys.copyPage(r, spage);
      else phys.clearPage(r);
      this.mm.sim.charge(this.mm.sim.costs.cpuPageCopyNs); // copy_highpage / clear_highpage
      dst[i] = migratePfn(dpage) + write;
    }
    return retry;
  }

  /** Models dmirror_migrate_finalize_and_map(): committed pages enter pt (their backing pages). */
  private async migrateFinalizeAndMap(args: MigrateVma): Promise<void> {
    const md = this.mdevice;
    const { src, dst } = args;
    const first = Math.floor(args.start / P);
    const n = src.length;
    await this.mutex.lock();
    for (let i = 0; i < n; i++) {
      if (!(migratePfnFlags(src[i]!) & MIGRATE_PFN_MIGRATE)) continue;
      const d = dst[i]!;
      const dpage = migratePfnToPfn(d);
      if (dpage < 0) continue;
      const tag = migratePfnFlags(d) & MIGRATE_PFN_WRITE ? DPT_XA_TAG_WRITE : 0;
      const nr = migratePfnFlags(d) & MIGRATE_PFN_COMPOUND ? PMD_NR : 1;
      for (let k = 0; k < nr && i + k < n; k++) this.pt.store(first + i + k, md.backingPage(dpage + k), tag);
    }
    this.mutex.unlock();
  }

  /**
   * The chunk loop both migration commands share (dmirror_migrate_to_device/_to_system): under
   * mmget and the mmap read lock, per VMA-clipped chunk of DMIRROR_MIGRATE_CHUNK pages,
   * setup → `step` (alloc/copy, pages, finalize) → retry once with `fallbackFlags` when `step`
   * asks for the 4 KiB fallback. Returns 0 or the first error.
   */
  private async migrateChunks(
    start: number,
    end: number,
    flags: number,
    fallbackFlags: number,
    step: (args: MigrateVma) => Promise<boolean>,
  ): Promise<number> {
    const mm = this.mm;
    if (!mm.mmgetNotZero()) return -Errno.EINVAL;
    const srcBuf = new Float64Array(DMIRROR_MIGRATE_CHUNK);
    const dstBuf = new Float64Array(DMIRROR_MIGRATE_CHUNK);
    let ret = 0;
    await mm.mmapLock.read();
    try {
      for (let addr = start; addr < end && ret === 0; ) {
        const vma = mm.vmaLookup(addr);
        if (vma === null || !(vma.flags & VM_READ)) return -Errno.EINVAL;
        const next = Math.min(end, addr + DMIRROR_MIGRATE_CHUNK * P, vma.end);
        for (let f = flags; ; f = fallbackFlags) {
          const args = new MigrateVma({
            vma,
            start: addr,
            end: next,
            src: srcBuf.subarray(0, (next - addr) / P).fill(0),
            dst: dstBuf.subarray(0, (next - addr) / P).fill(0),
            pgmapOwner: this.mdevice,
            flags: f,
          });
          ret = await migrateVmaSetup(args);
          if (ret !== 0) break;
          const retry = await step(args);
          if (!retry || f === fallbackFlags) break;
        }
        addr = next;
      }
    } finally {
      mm.mmapLock.readUnlock();
      await mm.mmput();
    }
    return ret;
  }

  /** Models dmirror_migrate_to_device(). */
  private async migrateToDevice(cmd: HmmDmirrorCmd, size: number, out: { cpages: number }): Promise<number> {
    if (!Dmirror.userOk(cmd.ptr, size)) return -Errno.EFAULT;
    const start = cmd.addr;
    const end = start + size;
    const select = MIGRATE_VMA_SELECT_SYSTEM;
    let ret = await this.migrateChunks(
      start,
      end,
      select | MIGRATE_VMA_SELECT_COMPOUND,
      select,
      async (args) => {
        const retry = this.migrateAllocAndCopy(args); // true: redo the chunk with 4 KiB pages
        await migrateVmaPages(args);
        await this.migrateFinalizeAndMap(args);
        await migrateVmaFinalize(args);
        return retry;
      },
    );
    if (ret !== 0) return ret;
    // Return the migrated data for verification: only pages in this device's pt.
    const b: Bounce = { buf: new Uint8Array(size), addr: start, cpages: 0 };
    await this.mutex.lock();
    ret = this.doRead(start, end, b);
    this.mutex.unlock();
    if (ret === 0) cmd.ptr!.set(b.buf);
    out.cpages = b.cpages;
    return ret;
  }

  /** Models dmirror_migrate_to_system(). */
  private async migrateToSystem(cmd: HmmDmirrorCmd, size: number, out: { cpages: number }): Promise<number> {
    const select = dmirrorSelectDevice(this.mdevice);
    return this.migrateChunks(
      cmd.addr,
      cmd.addr + size,
      select | MIGRATE_VMA_SELECT_COMPOUND,
      select,
      async (args) => {
        const retry = devmemFaultAllocAndCopy(this.mdevice, args, this, this);
        await migrateVmaPages(args);
        out.cpages += successfulMigratedPages(args);
        await migrateVmaFinalize(args);
        return retry;
      },
    );
  }

  // ---- EXCLUSIVE -----------------------------------------------------------------------------

  /** Models dmirror_check_atomic(). */
  private checkAtomic(start: number, end: number): number {
    for (let pfn = Math.floor(start / P); pfn < Math.floor(end / P); pfn++) {
      const e = this.pt.load(pfn);
      if (e !== 0 && dptTag(e) === DPT_XA_TAG_ATOMIC) return -Errno.EPERM;
    }
    return 0;
  }

  /** Models dmirror_exclusive(): make_device_exclusive() per page (owner NULL), ATOMIC-tagged pt entries. */
  private async exclusive(cmd: HmmDmirrorCmd, size: number, out: { cpages: number }): Promise<number> {
    if (!Dmirror.userOk(cmd.ptr, size)) return -Errno.EFAULT;
    const mm = this.mm;
    const start = cmd.addr;
    const end = start + size;
    if (!mm.mmgetNotZero()) return -Errno.EINVAL;
    let ret = 0;
    await mm.mmapLock.read();
    try {
      for (let addr = start; ret === 0 && addr < end; addr += P) {
        const r = await makeDeviceExclusive(mm, addr, null);
        if ('error' in r) {
          ret = r.error;
          break;
        }
        // dmirror_atomic_map()
        await this.mutex.lock();
        this.pt.store(Math.floor(addr / P), r.pfn, DPT_XA_TAG_ATOMIC);
        this.mutex.unlock();
        mm.phys.unlockPage(r.pfn);
        mm.phys.putPage(r.pfn);
      }
    } finally {
      mm.mmapLock.readUnlock();
      await mm.mmput();
    }
    if (ret !== 0) return ret;
    const b: Bounce = { buf: new Uint8Array(size), addr: start, cpages: 0 };
    await this.mutex.lock();
    ret = this.doRead(start, end, b);
    this.mutex.unlock();
    if (ret === 0) cmd.ptr!.set(b.buf);
    out.cpages = b.cpages;
    return ret;
  }

  // ---- mmap ----------------------------------------------------------------------------------

  /** Models dmirror_fops_mmap(): zeroed pages vm_insert_page()d into the VMA (a mixed map). */
  private fopsMmap(vma: Vma): number {
    const phys = vma.mm.phys;
    for (let addr = vma.start; addr < vma.end; addr += P) {
      const page = phys.allocPage(0);
      if (page < 0) return -Errno.ENOMEM;
      const ret = vma.mm.vmInsertPage(vma, addr, page);
      if (ret !== 0) {
        phys.putPage(page);
        return ret;
      }
      phys.putPage(page);
    }
    return 0;
  }
}

/** Models dmirror_select_device(): SELECT_DEVICE_PRIVATE or SELECT_DEVICE_COHERENT. */
function dmirrorSelectDevice(md: DmirrorDevice): number {
  return md.isPrivate ? MIGRATE_VMA_SELECT_DEVICE_PRIVATE : MIGRATE_VMA_SELECT_DEVICE_COHERENT;
}

/**
 * Models dmirror_successful_migrated_pages(): src entries VALID|MIGRATE (a compound entry
 * counts its pages).
 */
function successfulMigratedPages(args: MigrateVma): number {
  let c = 0;
  const src = args.src;
  for (let i = 0; i < src.length; i++) {
    const f = migratePfnFlags(src[i]!);
    if (f & MIGRATE_PFN_VALID && f & MIGRATE_PFN_MIGRATE) c += f & MIGRATE_PFN_COMPOUND ? PMD_NR : 1;
  }
  return c;
}

/**
 * Models dmirror_devmem_fault_alloc_and_copy(): allocates system pages (a THP for a compound
 * source when possible), copies the device data back and erases `dmirror`'s pt entries.
 */
function devmemFaultAllocAndCopy(
  md: DmirrorDevice,
  args: MigrateVma,
  dmirror: DmirrorPageOwner | null,
  flagsOwner: Dmirror | null,
): boolean {
  let retry = false;
  const phys = md.machine.phys;
  const { src, dst } = args;
  const node = args.vma.mm.node;
  const n = src.length;
  for (let i = 0; i < n; i++) {
    const s = src[i]!;
    const spage = migratePfnToPfn(s);
    if (spage < 0 || !(migratePfnFlags(s) & MIGRATE_PFN_MIGRATE)) continue;
    if (!phys.isDevicePrivatePage(spage) && !phys.isDeviceCoherentPage(spage)) continue; // WARN_ON
    const write = migratePfnFlags(s) & MIGRATE_PFN_WRITE;
    const addr = args.start + i * P;
    if (migratePfnFlags(s) & MIGRATE_PFN_COMPOUND) {
      let head = -1;
      if (flagsOwner !== null && flagsOwner.flags & HMM_DMIRROR_FLAG_FAIL_ALLOC) {
        flagsOwner.flags &= ~HMM_DMIRROR_FLAG_FAIL_ALLOC;
      } else head = phys.allocFolio(node, 9);
      if (head >= 0) {
        phys.trylockPage(head);
        for (let k = 0; k < PMD_NR; k++) {
          dmirror?.erasePt(Math.floor(addr / P) + k);
          phys.copyPage(head + k, md.backingPage(spage + k));
        }
        dst[i] = migratePfn(head) + MIGRATE_PFN_COMPOUND + write;
        md.machine.sim.charge(PMD_NR * md.machine.sim.costs.cpuPageCopyNs);
        continue;
      }
      // 4 KiB fallback: the caller migrates again without SELECT_COMPOUND (hmm splits the folio).
      retry = true;
      continue;
    }
    const dpage = phys.allocPage(node);
    if (dpage < 0) continue;
    phys.trylockPage(dpage);
    dmirror?.erasePt(Math.floor(addr / P));
    phys.copyPage(dpage, md.backingPage(spage));
    md.machine.sim.charge(md.machine.sim.costs.cpuPageCopyNs);
    dst[i] = migratePfn(dpage) + write;
  }
  return retry;
}

/**
 * Models dmirror_devmem_fault() (pagemap migrate_to_ram): migrates the faulting page — or its
 * whole folio when it is a device THP (order 9) — back to system memory, erasing the owning
 * dmirror's pt entries. VM_FAULT_SIGBUS if migrate_vma_setup fails.
 */
async function dmirrorDevmemFault(md: DmirrorDevice, vmf: VmFault): Promise<number> {
  const dmirror = md.ownerOf(vmf.page);
  let compound = vmf.order === 9;
  for (;;) {
    const start = compound ? vmf.address - (vmf.address % PMD_SIZE) : vmf.address;
    const n = compound ? PMD_NR : 1;
    const args = new MigrateVma({
      vma: vmf.vma,
      start,
      end: start + n * P,
      src: new Float64Array(n),
      dst: new Float64Array(n),
      pgmapOwner: md,
      flags: dmirrorSelectDevice(md) | (compound ? MIGRATE_VMA_SELECT_COMPOUND : 0),
      faultPage: vmf.page,
    });
    if ((await migrateVmaSetup(args)) !== 0) return VM_FAULT_SIGBUS;
    const retry = devmemFaultAllocAndCopy(md, args, dmirror, null);
    await migrateVmaPages(args);
    await migrateVmaFinalize(args);
    if (!retry || !compound) return 0;
    compound = false; // no THP in system memory: migrate just the faulting page
  }
}

/**
 * Models dmirror_device_evict_chunk() + dmirror_device_remove_chunks() (RELEASE): every device
 * page still in use is migrated to system memory without a VA (migrate_device_range), then the
 * chunks leave the device.
 */
export async function dmirrorDeviceRemoveChunks(md: DmirrorDevice): Promise<void> {
  const phys = md.machine.phys;
  for (const c of md.chunks) {
    const npages = c.mem.nrPages;
    const src = new Float64Array(npages);
    const dst = new Float64Array(npages);
    await migrateDeviceRange(src, c.start, npages, md.machine);
    for (let i = 0; i < npages; i++) {
      const s = src[i]!;
      const spage = migratePfnToPfn(s);
      if (spage < 0 || !(migratePfnFlags(s) & MIGRATE_PFN_MIGRATE)) continue;
      const dpage = phys.allocPage(0);
      if (dpage < 0) throw new StateError('dmirrorDeviceRemoveChunks', 'out of system memory (__GFP_NOFAIL)');
      phys.trylockPage(dpage);
      phys.copyPage(dpage, md.backingPage(spage));
      dst[i] = migratePfn(dpage) + (migratePfnFlags(s) & MIGRATE_PFN_WRITE);
    }
    await migrateDevicePages(src, dst, npages, md.machine);
    await migrateDeviceFinalize(src, dst, npages, md.machine);
  }
  md.retireChunks();
}
