/**
 * `GpuSvm`: the driver framework over one CPU mm and one or more GPUs, modelled on drm_gpusvm
 * (drivers/gpu/drm/drm_gpusvm.c) and xe's fault handler (xe_svm.c). Notifiers are created on
 * demand per the {@link NotifierPolicy}; each holds its ranges in an interval tree; a GPU fault runs
 * garbage collection → find or insert the range (the {@link GranulePolicy}) → get pages through
 * hmm's locked helper → bind under the notifier lock only if the range is still valid → replay.
 * The invalidation callback zaps device PTEs (one batched update per device), drops the pages,
 * and on UNMAP marks the range unmapped and queues it for the collector.
 *
 * Placement in this version is system memory (devices map CPU pages through the SYS aperture,
 * several devices at the same VAs); large device PTEs (64K, 2M) are used where the CPU map order
 * and physical contiguity allow.
 *
 * @module
 */
import {
  ACCESS,
  APERTURE,
  type FaultBatch,
  type GpuDevice,
  type Memory32,
  PAGE_2M,
  PAGE_64K,
} from '@hmmkit/gpu';
import {
  HMM_PFN_ERROR,
  HMM_PFN_REQ_FAULT,
  HMM_PFN_REQ_WRITE,
  HMM_PFN_VALID,
  HMM_PFN_WRITE,
  HmmRange,
  hmmPfnToMapOrder,
  hmmRangeFault,
  hmmRangeFaultLocked,
  MIGRATE_PFN_MIGRATE,
  MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
  MIGRATE_VMA_SELECT_SYSTEM,
  MigrateVma,
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
import { IntervalTree, type IntervalTreeNode } from '@hmmkit/interval-tree';
import {
  type Mm,
  PageWalk,
  PTE_PRESENT,
  pteType,
  TASK_SIZE,
  VM_FAULT_SIGBUS,
  VM_HUGETLB,
  VM_SPECIAL,
  VM_WRITE,
  type VmFault,
  WALK_HOLE,
  WALK_PTE,
} from '@hmmkit/mm';
import {
  MmuIntervalNotifier,
  type MmuNotifierRange,
  MmuNotifyEvent,
  mmuIntervalNotifierInsert,
  mmuIntervalNotifierRemove,
  mmuIntervalReadBegin,
  mmuIntervalReadRetry,
  mmuIntervalSetSeq,
  mmuNotifierRangeBlockable,
} from '@hmmkit/notifier';
import { ArgumentError, type Counter, Errno, Mutex, RwSemaphore, type Task } from '@hmmkit/sim';
import { AttrMap } from './attr-map.ts';
import { deviceLoc, LOC, locDevice } from './attrs.ts';
import { SvmDeviceMemory } from './devmem.ts';
import { type EvictionPolicy, lruChunkEviction } from './eviction.ts';
import {
  alignDown,
  checkGranuleChoice,
  drmGpusvmPolicy,
  type ExistingRanges,
  type FaultContext,
  type GranulePolicy,
  isGranuleError,
  PAGE_SIZE,
  rangesView,
  type Span,
  SZ_2M,
} from './granule.ts';
import { NOTIFIER_KIND, type NotifierPolicy, notifierSpan, windowNotifiers } from './notifier-policy.ts';
import type { DevicePageResolver } from './oracle.ts';
import { type PageMask, pageMaskNew, pageMaskSet, pageMaskTest, pageMaskWeight } from './page-mask.ts';
import { ThrashingDetector, type ThrashingParams } from './thrashing.ts';

declare module '@hmmkit/sim' {
  interface TraceEvents {
    /**
     * One fault batch serviced by {@link GpuSvm.startFaultHandler}: device id, entries fetched
     * (after coalescing), unique pages serviced, start (fetch) and end (replay) virtual time.
     */
    'svm.fault.batch': [devId: number, entries: number, pages: number, startNs: number, endNs: number];
  }
}

/** One MMU interval notifier of the framework (`struct drm_gpusvm_notifier`). */
export class SvmNotifier {
  readonly start: number;
  readonly end: number;
  readonly sub = new MmuIntervalNotifier();
  /** The notifier's ranges. */
  readonly ranges = new IntervalTree<SvmRange>();
  /** @internal node in the framework's notifier tree. */
  node: IntervalTreeNode<SvmNotifier> | null = null;
  constructor(start: number, end: number) {
    this.start = start;
    this.end = end;
  }
}

/** One range (`struct drm_gpusvm_range`): fixed bounds, pages, per-device mapping state. */
export class SvmRange {
  readonly start: number;
  readonly end: number;
  readonly npages: number;
  readonly notifier: SvmNotifier;
  /** CPU pfn per page (valid where `pageValid`). */
  readonly pfns: Float64Array;
  /** hmm flags per page at the last get_pages. */
  readonly flags: Uint16Array;
  /** 1 where the pfn is valid (cleared by every invalidation of the range). */
  readonly pageValid: Uint8Array;
  /** Per page: bit d set when device d maps it. */
  readonly devMap: Uint8Array;
  /** Devices holding any PTE of the range. */
  devMapped = 0;
  /** Set by an UNMAP invalidation: the range waits for the garbage collector. */
  unmapped = false;
  /** The UNMAP covered only part of the range. */
  partialUnmap = false;
  /** Virtual time of the last fault/bind (for LRU-style reports). */
  lastUse = 0;
  /** Notifier sequence the recorded pages are valid for (`svm_pages->notifier_seq`). */
  notifierSeq = 0;
  /** @internal */
  node: IntervalTreeNode<SvmRange> | null = null;
  /** Removed by the garbage collector or fini. */
  removed = false;

  constructor(start: number, end: number, notifier: SvmNotifier) {
    this.start = start;
    this.end = end;
    this.notifier = notifier;
    this.npages = (end - start) / PAGE_SIZE;
    this.pfns = new Float64Array(this.npages);
    this.flags = new Uint16Array(this.npages);
    this.pageValid = new Uint8Array(this.npages);
    this.devMap = new Uint8Array(this.npages);
  }
}

/** Options of {@link GpuSvm}. */
export interface GpuSvmOptions {
  /** Granule (fault-around) policy (default drm_gpusvm {2M, 64K, 4K}). */
  readonly granule?: GranulePolicy;
  /** Notifier granularity (default one per 512 MiB window). */
  readonly notifiers?: NotifierPolicy;
  /** Managed VA `[mmStart, mmEnd)` (default the whole user VA). */
  readonly mmStart?: number;
  readonly mmEnd?: number;
  /** Range attributes (default: a fresh map). */
  readonly attrs?: AttrMap;
  /** Use 64K/2M device PTEs where possible (default true). */
  readonly largePages?: boolean;
  /**
   * 'vma' (drm_gpusvm: fault for write whenever the VMA is writable) or 'access' (write only
   * for write/atomic faults, like nouveau). Default 'vma'.
   */
  readonly faultWrite?: 'vma' | 'access';
  /** Page-table update mode (default 'ce'). */
  readonly ptUpdate?: 'ce' | 'bar0';
  /**
   * Deliberately broken: bind without the mmu_interval_read_retry check (to show the coherence
   * oracle catches it). Never set outside tests.
   */
  readonly brokenSkipReadRetry?: boolean;
  /** Device memory (migration to VRAM). Absent: system memory only. */
  readonly devmem?: DevmemOptions;
  /**
   * Thrashing detection (UVM defaults with `true`): pages migrated back and forth faster than the
   * lapse are pinned in system memory and mapped remotely for the pin time. Default off.
   */
  readonly thrashing?: boolean | Partial<ThrashingParams>;
}

/** Options of {@link GpuSvm.startFaultHandler}. */
export interface FaultHandlerOptions {
  /**
   * Replay policy: 'batch-flush' (UVM's default: flush the buffer's stale duplicates after each
   * batch, then one replay) or 'batch' (replay without flush). Default 'batch-flush'.
   */
  readonly replay?: 'batch-flush' | 'batch';
}

/** Device-memory options of {@link GpuSvm}. */
export interface DevmemOptions {
  /**
   * When a GPU fault migrates its span to the faulting device's VRAM: 'fault' (xe: anonymous
   * memory, unless the preferred location names another place), 'preferred' (only where the
   * preferred location is that device), 'never' (only {@link GpuSvm.prefetch}). Default 'fault'.
   */
  readonly migrate?: 'fault' | 'preferred' | 'never';
  /** VRAM bytes per device given to SVM, a multiple of 2 MiB (default: all free VRAM). */
  readonly bytes?: number;
  /**
   * Devices map each other's VRAM through the PEER aperture (one pagemap owner for all, as in an
   * XGMI hive) instead of faulting the pages back to system memory. Default false.
   */
  readonly peer?: boolean;
  /** Picks what to evict when a pool is full (default {@link lruChunkEviction}: UVM's LRU chunk). */
  readonly eviction?: EvictionPolicy;
}

/** Counters of one GpuSvm (`svm.*`). */
interface SvmCounters {
  faults: Counter;
  faultRetries: Counter;
  rangesCreated: Counter;
  rangesRemoved: Counter;
  notifiersCreated: Counter;
  notifiersRemoved: Counter;
  invalidations: Counter;
  falseInvalidations: Counter;
  binds: Counter;
  pte4k: Counter;
  pte64k: Counter;
  pte2m: Counter;
  pagesFaulted: Counter;
  migrateToVramPages: Counter;
  migrateToRamPages: Counter;
  evictions: Counter;
  migrateFailures: Counter;
  thrashingPins: Counter;
}

const MAX_FAULT_TRIES = 16;
/** Unrequested pages between two runs of a page mask that rangeGetPages walks through (64 KiB). */
const WALK_GAP_PAGES = 16;

/** The SVM framework (`struct drm_gpusvm` plus the driver glue of xe_svm.c). */
export class GpuSvm {
  readonly mm: Mm;
  readonly devices: readonly GpuDevice[];
  readonly granule: GranulePolicy;
  readonly notifierPolicy: NotifierPolicy;
  readonly attrs: AttrMap;
  readonly mmStart: number;
  readonly mmEnd: number;
  /** `gpusvm->notifier_lock`: the hmm.rst "driver->update" lock (read for bind, write in invalidate). */
  readonly notifierLock: RwSemaphore;
  /** The driver's SVM lock (xe vm lock): serialises fault handling and garbage collection. */
  readonly lock: Mutex;
  /** Owner cookie of this framework's migrations (and of all device memory in peer mode). */
  readonly owner: object = {};
  /** The eviction policy of every device's pool. */
  readonly eviction: EvictionPolicy;
  /** Device memory per device (empty without `devmem`). */
  readonly devmem: readonly SvmDeviceMemory[];
  /** pgmap owner per device (hmm's devPrivateOwner). */
  readonly owners: readonly object[];
  /** The thrashing detector, or null when disabled. */
  readonly thrashing: ThrashingDetector | null;
  /** Device page → CPU pfn, for the {@link CoherenceOracle}. */
  readonly resolver: DevicePageResolver;
  /** Notifiers by VA. */
  readonly notifierTree = new IntervalTree<SvmNotifier>();
  /** Ranges queued for the garbage collector. */
  readonly gcList: SvmRange[] = [];
  private readonly largePages: boolean;
  private readonly faultWrite: 'vma' | 'access';
  private readonly ptUpdate: 'ce' | 'bar0';
  private readonly broken: boolean;
  private readonly migrateMode: 'fault' | 'preferred' | 'never';
  private readonly pageBuf = new Uint8Array(PAGE_SIZE);
  private readonly sorted: SvmRange[] = [];
  private readonly c: SvmCounters;
  private readonly walk = new PageWalk();
  private readonly existing: ExistingRanges;
  /** Notifier sequence of the last hmm_range_fault of rangeGetPages. */
  private lastGetPagesSeq = 0;
  /** Scratch: the faulted-page mask of the block being serviced. */
  private readonly batchMask = pageMaskNew();
  /** Faults serviced per 2 MiB VA block (block index → count): UVM's per-block min_faults counter. */
  private readonly blockFaults = new Map<number, number>();
  /** End of the span the last {@link faultLocked} mapped (prefetch walks a span with it). */
  private lastFaultEnd = 0;
  /** Devices map each other's VRAM (one pagemap owner for all). */
  private readonly peer: boolean;
  /** Scratch: the union of in-flight migration masks. */
  private readonly unionMask = pageMaskNew();
  /** Migrations of ours in flight: span and page mask, read by the MIGRATE invalidation. */
  private readonly migrating: { start: number; end: number; pages: PageMask | null }[] = [];

  constructor(mm: Mm, devices: readonly GpuDevice[], opts: GpuSvmOptions = {}) {
    const fn = 'GpuSvm';
    if (devices.length === 0 || devices.length > 8) {
      throw new ArgumentError(fn, 'devices', 'must hold 1 to 8 devices', devices.length);
    }
    const mmStart = opts.mmStart ?? 0;
    const mmEnd = opts.mmEnd ?? TASK_SIZE;
    if (!Number.isSafeInteger(mmStart) || mmStart < 0 || mmStart % PAGE_SIZE !== 0) {
      throw new ArgumentError(fn, 'mmStart', 'must be a page-aligned uint', mmStart);
    }
    if (!Number.isSafeInteger(mmEnd) || mmEnd <= mmStart || mmEnd % PAGE_SIZE !== 0) {
      throw new ArgumentError(fn, 'mmEnd', 'must be page aligned and > mmStart', mmEnd);
    }
    this.mm = mm;
    this.devices = devices;
    this.granule = opts.granule ?? drmGpusvmPolicy();
    this.notifierPolicy = opts.notifiers ?? windowNotifiers();
    this.attrs = opts.attrs ?? new AttrMap({ numDevices: devices.length });
    this.mmStart = mmStart;
    this.mmEnd = mmEnd;
    this.largePages = opts.largePages ?? true;
    this.faultWrite = opts.faultWrite ?? 'vma';
    this.ptUpdate = opts.ptUpdate ?? 'ce';
    this.broken = opts.brokenSkipReadRetry ?? false;
    this.notifierLock = new RwSemaphore(mm.sim.sched);
    this.lock = new Mutex(mm.sim.sched, 'svm');
    const k = mm.sim.counters;
    this.c = {
      faults: k.counter('svm.faults'),
      faultRetries: k.counter('svm.fault.retries'),
      rangesCreated: k.counter('svm.ranges.created'),
      rangesRemoved: k.counter('svm.ranges.removed'),
      notifiersCreated: k.counter('svm.notifiers.created'),
      notifiersRemoved: k.counter('svm.notifiers.removed'),
      invalidations: k.counter('svm.invalidations'),
      falseInvalidations: k.counter('svm.invalidations.false'),
      binds: k.counter('svm.binds'),
      pte4k: k.counter('svm.pte.4k'),
      pte64k: k.counter('svm.pte.64k'),
      pte2m: k.counter('svm.pte.2m'),
      pagesFaulted: k.counter('svm.pages.faulted'),
      migrateToVramPages: k.counter('svm.migrate.toVram.pages'),
      migrateToRamPages: k.counter('svm.migrate.toRam.pages'),
      evictions: k.counter('svm.evictions'),
      migrateFailures: k.counter('svm.migrate.failures'),
      thrashingPins: k.counter('svm.thrashing.pins'),
    };
    const th = opts.thrashing ?? false;
    this.thrashing = th === false ? null : new ThrashingDetector(th === true ? {} : th);
    const dm = opts.devmem;
    this.migrateMode = dm?.migrate ?? 'fault';
    const peer = dm?.peer ?? false;
    this.peer = peer;
    this.eviction = dm?.eviction ?? lruChunkEviction();
    this.owners = devices.map(() => (peer ? this.owner : {}));
    if (dm !== undefined) {
      if (peer && devices.some((d) => d.id > 7)) {
        throw new ArgumentError(
          fn,
          'devices',
          'peer mode needs device ids 0..7 (PEER aperture field)',
          devices.length,
        );
      }
      this.devmem = devices.map(
        (d, i) =>
          new SvmDeviceMemory(mm.machine, d, this.owners[i], dm.bytes ?? d.vram.sizeBytes, (vmf) =>
            this.migrateToRam(vmf),
          ),
      );
      if (peer) {
        for (const a of devices) for (const b of devices) if (a !== b) a.attachPeer(b.id, b.vram);
      }
    } else {
      this.devmem = [];
    }
    this.resolver = (dev, m, va) => {
      const pa = m.pa + (va - m.va);
      if (m.aperture === APERTURE.SYS || m.aperture === APERTURE.SYS_NC) return Math.floor(pa / PAGE_SIZE);
      const holder =
        m.aperture === APERTURE.VID
          ? this.devmem[this.devices.indexOf(dev)]
          : this.devmem.find((x) => x.dev.id === m.peerId);
      return holder === undefined ? -1 : holder.paToPfn(pa);
    };
    this.existing = rangesView(this.sorted, (r) => !r.unmapped);
    this.attrs.onChange((start, end) => this.attrsChanged(start, end));
  }

  /**
   * An attribute change over `[start, end)`: a range that now straddles `start` or `end` spans two
   * attribute values, which amdkfd (svm_range_split at set_attr) and xe (madvise splits the VMA and
   * drops its SVM ranges) never allow. Such a range is retired like a partially unmapped one — its
   * device PTEs stay valid (the CPU mapping did not change) until the garbage collector, which
   * every fault runs first, zaps and removes it; the next fault creates ranges on each side.
   * Device pages stay where they are (the CPU keeps their device-private entries).
   */
  private attrsChanged(start: number, end: number): void {
    for (const cut of [start, end]) {
      const r = this.rangeFind(cut);
      if (r === null || r.start === cut || r.unmapped) continue;
      r.unmapped = true;
      r.partialUnmap = true;
      this.gcList.push(r);
    }
  }

  /** All live ranges in VA order. */
  get ranges(): readonly SvmRange[] {
    return this.sorted;
  }

  /** The range containing `va`, or null. */
  rangeFind(va: number): SvmRange | null {
    return this.existing.containing(va) as SvmRange | null;
  }

  /**
   * Wires every device's SYS aperture to the mm's physical memory so kernels with data read and
   * write the CPU's pages (call once).
   */
  attachSystemMemory(): void {
    const phys = this.mm.machine.phys;
    const buf = new Uint8Array(4);
    const dv = new DataView(buf.buffer);
    const mem: Memory32 = {
      read32(pa) {
        phys.readPage(Math.floor(pa / 4096), pa % 4096, buf, 0, 4);
        return dv.getUint32(0, true);
      },
      write32(pa, value) {
        dv.setUint32(0, value >>> 0, true);
        phys.writePage(Math.floor(pa / 4096), pa % 4096, buf, 0, 4);
      },
    };
    for (const d of this.devices) d.attachSystemMemory(mem);
  }

  // ------------------------------------------------------------------------------- fault path

  /**
   * Models xe_svm_handle_pagefault(): services one GPU fault of device `devIndex` at `va`.
   * Returns 0 (mapped), or a negative errno the caller turns into a cancel (-EFAULT, -EPERM,
   * -EINVAL, -EAGAIN after too many retries).
   */
  async handleFault(devIndex: number, va: number, access: number): Promise<number> {
    const dev = this.devices[devIndex];
    if (dev === undefined)
      throw new ArgumentError('GpuSvm.handleFault', 'devIndex', 'no such device', devIndex);
    if (!Number.isSafeInteger(va) || va < 0)
      throw new ArgumentError('GpuSvm.handleFault', 'va', 'must be a uint', va);
    this.c.faults.value++;
    return this.handleFaultIn(devIndex, va, access, null, 0);
  }

  /**
   * {@link handleFault} with the batch's view of the 2 MiB VA block around `va`: `faulted` = the
   * block's pages faulted in this batch (null: just `va`), `faultMigrations` = faults migrated in
   * this block before the batch (UVM's min_faults counter). Both go to the granule policy.
   */
  private async handleFaultIn(
    devIndex: number,
    va: number,
    access: number,
    faulted: PageMask | null,
    faultMigrations: number,
  ): Promise<number> {
    await this.lock.lock();
    try {
      return await this.faultLocked(devIndex, va, access, faulted, faultMigrations, true);
    } finally {
      this.lock.unlock();
    }
  }

  /**
   * The body of xe_svm_handle_pagefault() (SVM lock held): collect garbage → find or insert the
   * range → migrate to VRAM when the policy says so and `mayMigrate` → get pages → bind on
   * `devIndex` and on the range's accessedBy devices. Retries while an invalidation races it.
   * Leaves the end of the span it mapped in {@link lastFaultEnd}.
   */
  private async faultLocked(
    devIndex: number,
    va: number,
    access: number,
    faulted: PageMask | null,
    faultMigrations: number,
    mayMigrate: boolean,
  ): Promise<number> {
    for (let tries = 0; tries < MAX_FAULT_TRIES; tries++) {
      if (tries > 0) this.c.faultRetries.value++;
      await this.garbageCollectLocked();
      const found = await this.rangeFindOrInsert(devIndex, va, access, faulted, faultMigrations);
      if (found === -Errno.EAGAIN) continue;
      if (typeof found === 'number') return found;
      const { range, faultStart, faultEnd, pages, write } = found;
      this.lastFaultEnd = faultEnd;
      const i = Math.floor((va - range.start) / PAGE_SIZE);
      const wantW = access === ACCESS.WRITE || access === ACCESS.ATOMIC;
      if (
        range.pageValid[i] === 1 &&
        (range.devMap[i]! & (1 << devIndex)) !== 0 &&
        (!wantW || (range.flags[i]! & HMM_PFN_WRITE) !== 0)
      ) {
        return 0; // a fault of the same batch already handled this page
      }
      if (mayMigrate && found.anon && this.wantsMigration(devIndex, range, va, faultStart, faultEnd, pages)) {
        // xe: migrate to VRAM first; a failure falls back to system memory
        const m = await this.migrateToDevice(devIndex, faultStart, faultEnd, pages, true);
        if (m < 0) this.c.migrateFailures.value++;
      }
      const ret = await this.rangeGetPages(devIndex, range, faultStart, faultEnd, pages, write);
      if (ret === -Errno.EBUSY || ret === -Errno.EAGAIN) continue;
      if (ret !== 0) return ret;
      const b = await this.bindRange(range, devIndex, i, wantW);
      if (b === -Errno.EAGAIN) continue;
      return b;
    }
    return -Errno.EAGAIN;
  }

  /**
   * The driver's commit (drm_gpusvm's "driver_bind_range"): under the notifier lock, bind the range
   * on `devIndex` and its accessedBy devices only if its pages are still valid — not unmapped, no
   * invalidation since get_pages (read_retry on `range.notifierSeq`), page `i` valid (and writable
   * for a write). Returns 0, -EAGAIN (retry the fault), or -EPERM / -EFAULT.
   */
  private async bindRange(range: SvmRange, devIndex: number, i: number, wantW: boolean): Promise<number> {
    await this.notifierLock.read();
    try {
      if (range.unmapped) return -Errno.EAGAIN;
      // the deliberately broken driver has no read_retry here either
      if (!this.broken && mmuIntervalReadRetry(range.notifier.sub, range.notifierSeq)) return -Errno.EAGAIN;
      if (range.pageValid[i] !== 1 || (wantW && (range.flags[i]! & HMM_PFN_WRITE) === 0)) {
        return wantW ? -Errno.EPERM : -Errno.EFAULT;
      }
      this.bindLocked(range, devIndex);
      this.bindAccessedByLocked(range, devIndex);
      range.lastUse = this.mm.sim.now;
      return 0;
    } finally {
      this.notifierLock.readUnlock();
    }
  }

  /**
   * Honours accessedBy (amdkfd maps a range on every GPU of its access bitmap when it validates
   * it; UVM keeps accessed-by mappings wherever the data lives): binds the range's valid pages on
   * each accessedBy device other than `devIndex` that can reach them — system pages always,
   * another GPU's VRAM only in peer mode (notifier lock held).
   */
  private bindAccessedByLocked(range: SvmRange, devIndex: number): void {
    const acc = this.attrs.lookup(range.start).accessedBy;
    if (acc === 0) return;
    for (let k = 0; k < this.devices.length; k++) {
      if (k === devIndex || (acc & (2 ** k)) === 0 || !this.canReach(range, k)) continue;
      this.bindLocked(range, k);
    }
  }

  /** Whether device `k` can map every valid page of the range (no other GPU's VRAM unless peer). */
  private canReach(range: SvmRange, k: number): boolean {
    if (this.peer) return true;
    for (let i = 0; i < range.npages; i++) {
      if (range.pageValid[i] !== 1) continue;
      const e = this.devmemIndexOf(range.pfns[i]!);
      if (e >= 0 && e !== k) return false;
    }
    return true;
  }

  /**
   * Models drm_gpusvm_range_find_or_insert(): finds or creates the notifier (per policy) and the
   * range (granule policy). Returns the range and the span to fault, or a negative errno.
   */
  async rangeFindOrInsert(
    devIndex: number,
    va: number,
    access: number,
    faulted: PageMask | null = null,
    faultMigrations = 0,
  ): Promise<
    | {
        range: SvmRange;
        faultStart: number;
        faultEnd: number;
        pages: PageMask | null;
        write: boolean;
        anon: boolean;
      }
    | number
  > {
    if (va < this.mmStart || va >= this.mmEnd) return -Errno.EINVAL;
    if (!this.mm.mmgetNotZero()) return -Errno.EFAULT;
    try {
      const win = this.notifierPolicy.window(va, this.mmStart, this.mmEnd);
      await this.mm.mmapLock.read();
      let ctx: FaultContext;
      let write: boolean;
      let anon: boolean;
      try {
        const vma = this.mm.vmaLookup(va);
        if (vma === null) return -Errno.ENOENT;
        const wantW = access === ACCESS.WRITE || access === ACCESS.ATOMIC;
        const vmaW = (vma.flags & VM_WRITE) !== 0;
        if (wantW && !vmaW) return -Errno.EPERM;
        write = this.faultWrite === 'vma' ? vmaW : wantW;
        anon = vma.isAnonymous && !vma.isHugetlb;
        ctx = this.faultContext(devIndex, va, access, vma.start, vma.end, vma.flags, win);
        if (faulted !== null || faultMigrations !== 0) ctx = { ...ctx, faulted, faultMigrations };
      } finally {
        this.mm.mmapLock.readUnlock();
      }
      // A range unmapped (or retired) but not yet collected still holds va: collect it and retry
      // rather than have the policy place a new range over it.
      const stale = this.rangeAtOrAfter(va);
      if (stale !== null && stale.start <= va && stale.unmapped) return -Errno.EAGAIN;
      const r = checkGranuleChoice('GpuSvm.handleFault', this.granule, ctx, this.granule.choose(ctx));
      if (isGranuleError(r)) return r.error;
      let range = this.rangeFind(va);
      if (range === null) {
        if (this.existing.overlaps(r.start, r.end)) return -Errno.EINVAL;
        const nspan = notifierSpan(this.notifierPolicy, va, r, this.mmStart, this.mmEnd);
        const n = await this.notifierFindOrInsert(nspan);
        if (typeof n === 'number') return n;
        range = new SvmRange(r.start, r.end, n);
        range.node = n.ranges.insert(r.start, r.end - 1, range);
        this.sortedInsert(range);
        this.c.rangesCreated.value++;
      }
      const faultStart = Math.max(r.faultStart, range.start);
      const faultEnd = Math.min(r.faultEnd, range.end);
      return { range, faultStart, faultEnd, pages: r.pages, write, anon };
    } finally {
      await this.mm.mmput();
    }
  }

  /** Builds the policy input for a fault (mmap lock held). */
  private faultContext(
    devIndex: number,
    va: number,
    access: number,
    vmaStart: number,
    vmaEnd: number,
    vmaFlags: number,
    win: Span,
  ): FaultContext {
    const blockStart = va - (va % SZ_2M);
    const iv = this.attrs.intervalAt(va);
    let residency: PageMask | null = null;
    let residentAnywhere = false;
    const bit = 1 << devIndex;
    // residency at the destination = pages of the block this device already maps
    const lo = Math.max(blockStart, this.mmStart);
    for (let r = this.rangeAtOrAfter(lo); r !== null && r.start < blockStart + SZ_2M; r = this.nextRange(r)) {
      const a = Math.max(r.start, blockStart);
      const b = Math.min(r.end, blockStart + SZ_2M);
      for (let p = a; p < b; p += PAGE_SIZE) {
        const i = (p - r.start) / PAGE_SIZE;
        if (r.pageValid[i] === 1) residentAnywhere = true;
        if (r.pageValid[i] === 1 && (r.devMap[i]! & bit) !== 0) {
          residency ??= pageMaskNew();
          const j = (p - blockStart) / PAGE_SIZE;
          residency[j >> 5] = residency[j >> 5]! | (1 << (j & 31));
        }
      }
    }
    return {
      va,
      access: access as FaultContext['access'],
      vmaStart,
      vmaEnd,
      vmaFlags,
      windowStart: win.start,
      windowEnd: win.end,
      gpuvaStart: this.mmStart,
      gpuvaEnd: Math.min(this.mmEnd, 2 ** this.devices[devIndex]!.format.vaBits),
      ranges: this.existing,
      cpuMapOrder: this.cpuMapOrder(va),
      destination: deviceLoc(devIndex),
      residency,
      residentAnywhere,
      faulted: null,
      thrashing: this.thrashingMask(blockStart),
      faultMigrations: 0,
      attrs: iv.attrs,
      attrStart: iv.start,
      attrEnd: iv.end,
      checkPages: (s, e) => this.cpuPagesPresent(s, e),
    };
  }

  /** Thrashing pages of the block, or null. */
  private thrashingMask(blockStart: number): PageMask | null {
    if (this.thrashing === null) return null;
    const m = pageMaskNew();
    return this.thrashing.blockMask(blockStart, this.mm.sim.now, m) ? m : null;
  }

  /** CPU map order at `va` (0 when not mapped by a huge leaf). */
  private cpuMapOrder(va: number): number {
    this.mm.pt.walkUnit(va, va + PAGE_SIZE, this.walk);
    return this.walk.kind === WALK_HOLE || this.walk.kind === WALK_PTE ? 0 : this.walk.order;
  }

  /** drm_gpusvm_check_pages analog: every page of [s, e) has a present CPU entry. */
  private cpuPagesPresent(s: number, e: number): boolean {
    const w = this.walk;
    for (let a = s; a < e; ) {
      this.mm.pt.walkUnit(a, e, w);
      if (w.kind === WALK_HOLE) return false;
      if (w.kind === WALK_PTE) {
        const n = (w.end - a) / PAGE_SIZE;
        for (let k = 0; k < n; k++) if (pteType(w.pte!.flags[w.index + k]!) !== PTE_PRESENT) return false;
      } else if (pteType(w.flags) !== PTE_PRESENT) return false;
      a = w.end;
    }
    return true;
  }

  /** Finds or creates (mmu_interval_notifier_insert) the notifier covering `span`. */
  private async notifierFindOrInsert(span: Span): Promise<SvmNotifier | number> {
    if (this.notifierPolicy.kind !== NOTIFIER_KIND.PER_RANGE) {
      const node = this.notifierTree.iterFirst(span.start, span.start);
      if (node !== null) return node.value;
    }
    const n = new SvmNotifier(span.start, span.end);
    const ret = await mmuIntervalNotifierInsert(n.sub, this.mm, span.start, span.end - span.start, {
      invalidate: (sub, range, curSeq) => this.invalidate(n, sub, range, curSeq),
    });
    if (ret !== 0) return ret;
    n.node = this.notifierTree.insert(span.start, span.end - 1, n);
    this.c.notifiersCreated.value++;
    return n;
  }

  /**
   * Models drm_gpusvm_range_get_pages(): hmm_range_fault over `[fs, fe)` of the range through the
   * locked helper; the pages are recorded under the notifier lock, which is released before it
   * returns, and `range.notifierSeq` holds the sequence they are valid for (the bind re-checks it,
   * like drm_gpusvm_range_pages_valid). Returns 0 or a negative errno. With a page mask only the mask's pages are requested and recorded,
   * and the walk covers only the mask's runs of pages (runs closer than {@link WALK_GAP_PAGES}
   * are walked as one, as nouveau groups faults in a 16-page window): a sparse batch does not pay
   * hmm_range_fault's per-page walk over the block's unrequested pages. The sequence kept is the
   * first run's, so an invalidation between runs voids them all.
   */
  private async rangeGetPages(
    devIndex: number,
    range: SvmRange,
    fs: number,
    fe: number,
    pages: PageMask | null,
    write: boolean,
  ): Promise<number> {
    if (pages === null || this.broken) {
      const ret = await this.getPagesRun(devIndex, range, fs, fe, pages, write);
      if (ret === 0) range.notifierSeq = this.lastGetPagesSeq;
      return ret;
    }
    const blockStart = fs - (fs % SZ_2M);
    const inMask = (va: number): boolean =>
      va - blockStart < SZ_2M && pageMaskTest(pages, (va - blockStart) / PAGE_SIZE);
    let firstSeq = -1;
    for (let a = fs; a < fe; ) {
      while (a < fe && !inMask(a)) a += PAGE_SIZE;
      if (a >= fe) break;
      // extend the run over gaps shorter than WALK_GAP_PAGES
      let b = a + PAGE_SIZE;
      for (let gap = 0, p = b; p < fe && gap < WALK_GAP_PAGES; p += PAGE_SIZE) {
        if (inMask(p)) {
          b = p + PAGE_SIZE;
          gap = 0;
        } else gap++;
      }
      const ret = await this.getPagesRun(devIndex, range, a, b, pages, write);
      if (ret !== 0) return ret;
      if (firstSeq < 0) firstSeq = this.lastGetPagesSeq;
      a = b;
    }
    // The bind re-checks this sequence under the notifier lock: an invalidation since the first
    // run voids every run (an empty mask inside [fs, fe) faults nothing and takes the current one).
    range.notifierSeq = firstSeq >= 0 ? firstSeq : await mmuIntervalReadBegin(range.notifier.sub);
    return 0;
  }

  /** One hmm_range_fault of {@link rangeGetPages} over `[fs, fe)`; records the requested pages. */
  private async getPagesRun(
    devIndex: number,
    range: SvmRange,
    fs: number,
    fe: number,
    pages: PageMask | null,
    write: boolean,
  ): Promise<number> {
    const n = (fe - fs) / PAGE_SIZE;
    const hr = new HmmRange({
      notifier: range.notifier.sub,
      start: fs,
      end: fe,
      defaultFlags: 0,
      pfnFlagsMask: HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE,
      devPrivateOwner: this.owners[devIndex],
    });
    const req = HMM_PFN_REQ_FAULT | (write ? HMM_PFN_REQ_WRITE : 0);
    const blockStart = fs - (fs % SZ_2M);
    for (let k = 0; k < n; k++) {
      const va = fs + k * PAGE_SIZE;
      const inMask =
        pages === null || (va - blockStart < SZ_2M && pageMaskTest(pages, (va - blockStart) / PAGE_SIZE));
      hr.hmmFlags[k] = inMask ? req : 0;
    }
    let ret: number;
    if (!this.broken) {
      ret = await hmmRangeFaultLocked(hr, this.notifierLock);
    } else {
      ret = await this.getPagesWithoutReadRetry(hr);
    }
    if (ret !== 0) return ret;
    // notifier lock held for read (taken by the helper): record the pages, then release it
    let regain = false;
    try {
      if (write && !this.broken && this.anyReadOnlyDevicePage(hr, pages)) regain = true;
      else this.recordPages(range, hr, pages);
    } finally {
      this.notifierLock.readUnlock();
    }
    if (!regain) return 0;
    // Device pages of ours left read-only in a writable VMA: fault them for write, then retry.
    const r = await this.regainWriteAccess(range, hr, pages);
    return r < 0 ? r : -Errno.EAGAIN;
  }

  /**
   * Records the requested valid pages of a completed hmm_range_fault `hr` in the range, and the
   * notifier sequence they are valid for (notifier lock held).
   */
  private recordPages(range: SvmRange, hr: HmmRange, pages: PageMask | null): void {
    const fs = hr.start;
    const n = (hr.end - fs) / PAGE_SIZE;
    const blockStart = fs - (fs % SZ_2M);
    this.lastGetPagesSeq = hr.notifierSeq;
    const off = (fs - range.start) / PAGE_SIZE;
    let faulted = 0;
    for (let k = 0; k < n; k++) {
      // Only the requested pages are recorded (and so mapped): a page outside the policy's mask
      // is not the driver's to map even when the snapshot finds it present on the CPU.
      if (pages !== null) {
        const va = fs + k * PAGE_SIZE;
        if (va - blockStart >= SZ_2M || !pageMaskTest(pages, (va - blockStart) / PAGE_SIZE)) continue;
      }
      const f = hr.hmmFlags[k]!;
      if ((f & HMM_PFN_VALID) !== 0 && (f & HMM_PFN_ERROR) === 0) {
        range.pfns[off + k] = hr.hmmPfns[k]!;
        range.flags[off + k] = f;
        range.pageValid[off + k] = 1;
        faulted++;
      }
    }
    this.c.pagesFaulted.add(faulted);
  }

  /**
   * Gets write access back to the read-only device pages of `hr`: every page requested (in
   * `pages`, when given) that hmm reported valid but not writable and that lies in our device
   * memory. Such a page is a device-private entry made read-only in a writable VMA (mprotect R
   * then RW, or fork); hmm reports pages of the caller's owner without a fault-need check, so a
   * write request alone never upgrades it. One hmm_range_fault over those pages with REQ_WRITE and
   * no device-private owner faults each as a foreign device would: do_swap_page runs
   * migrate_to_ram, then the write fault (do_wp_page) makes the system page writable, breaking COW
   * if a fork still shares it (xe reaches the same end by migrating to RAM and re-faulting). The
   * retried GPU fault may migrate the now writable page back to VRAM, where its device-private
   * entry is writable. Returns 0 (also when there were no such pages) or a negative errno.
   */
  private async regainWriteAccess(range: SvmRange, hr: HmmRange, pages: PageMask | null): Promise<number> {
    const n = hr.hmmFlags.length;
    const blockStart = hr.start - (hr.start % SZ_2M);
    let lo = -1;
    let hi = -1;
    for (let k = 0; k < n; k++) {
      if (this.readOnlyDevicePage(hr, k, pages, blockStart)) {
        if (lo < 0) lo = k;
        hi = k;
      }
    }
    if (lo < 0) return 0;
    const wr = new HmmRange({
      notifier: range.notifier.sub,
      start: hr.start + lo * PAGE_SIZE,
      end: hr.start + (hi + 1) * PAGE_SIZE,
      defaultFlags: 0,
      pfnFlagsMask: HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE,
      devPrivateOwner: null,
    });
    for (let k = lo; k <= hi; k++) {
      wr.hmmFlags[k - lo] = this.readOnlyDevicePage(hr, k, pages, blockStart)
        ? HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE
        : 0;
    }
    const ret = await hmmRangeFaultLocked(wr, this.notifierLock);
    if (ret !== 0) return ret;
    this.notifierLock.readUnlock();
    return 0;
  }

  /** Whether {@link regainWriteAccess} has work in `hr`. */
  private anyReadOnlyDevicePage(hr: HmmRange, pages: PageMask | null): boolean {
    const blockStart = hr.start - (hr.start % SZ_2M);
    for (let k = 0; k < hr.hmmFlags.length; k++) {
      if (this.readOnlyDevicePage(hr, k, pages, blockStart)) return true;
    }
    return false;
  }

  /** Page `k` of `hr` was requested, is valid, not writable, and lies in our device memory. */
  private readOnlyDevicePage(hr: HmmRange, k: number, pages: PageMask | null, blockStart: number): boolean {
    const f = hr.hmmFlags[k]!;
    if ((f & HMM_PFN_VALID) === 0 || (f & (HMM_PFN_WRITE | HMM_PFN_ERROR)) !== 0) return false;
    if (pages !== null) {
      const off = hr.start + k * PAGE_SIZE - blockStart;
      if (off >= SZ_2M || !pageMaskTest(pages, off / PAGE_SIZE)) return false;
    }
    return this.devmemIndexOf(hr.hmmPfns[k]!) >= 0;
  }

  /** The broken variant: read_begin → hmm_range_fault → take the lock, no read_retry. */
  private async getPagesWithoutReadRetry(hr: HmmRange): Promise<number> {
    if (!this.mm.mmgetNotZero()) return -Errno.EFAULT;
    try {
      for (let tries = 0; tries < 64; tries++) {
        hr.notifierSeq = await mmuIntervalReadBegin(hr.notifier);
        await this.mm.mmapLock.read();
        let ret: number;
        try {
          ret = await hmmRangeFault(hr);
        } finally {
          this.mm.mmapLock.readUnlock();
        }
        if (ret === -Errno.EBUSY) continue;
        if (ret !== 0) return ret;
        await this.mm.sim.sched.yield();
        await this.notifierLock.read();
        return 0; // BUG (deliberate): no mmuIntervalReadRetry(hr.notifier, hr.notifierSeq)
      }
      return -Errno.EBUSY;
    } finally {
      await this.mm.mmput();
    }
  }

  /**
   * Programs device `devIndex`'s PTEs for every valid page of the range (notifier lock held):
   * unmaps what the device had there, then maps with the largest page size the CPU map order,
   * physical contiguity and alignment allow; one batched update.
   */
  private bindLocked(range: SvmRange, devIndex: number): void {
    const dev = this.devices[devIndex]!;
    const bit = 1 << devIndex;
    const u = dev.beginUpdate(this.ptUpdate);
    const pt = dev.pageTable;
    const sizes = dev.format.pageSizes;
    const can2M = this.largePages && sizes.includes(PAGE_2M);
    const can64K = this.largePages && sizes.includes(PAGE_64K);
    if ((range.devMapped & bit) !== 0) {
      pt.unmap(range.start, range.end - range.start, u.pt);
      u.tlb.invalidate(range.start, range.end - range.start);
    }
    const n = range.npages;
    // Per page: device address and aperture (SYS = CPU page, VID = own VRAM, PEER = another GPU).
    const pa = new Float64Array(n);
    const ap = new Int8Array(n);
    const peer = new Int8Array(n);
    const now = this.mm.sim.now;
    const bind = this.c.binds.value;
    for (let i = 0; i < n; i++) {
      if (range.pageValid[i] !== 1) continue;
      const pfn = range.pfns[i]!;
      const e = this.devmemIndexOf(pfn);
      if (e < 0) {
        pa[i] = pfn * PAGE_SIZE;
        ap[i] = APERTURE.SYS;
      } else {
        const sd = this.devmem[e]!;
        pa[i] = sd.pfnToPa(pfn);
        ap[i] = e === devIndex ? APERTURE.VID : APERTURE.PEER;
        peer[i] = this.devices[e]!.id;
        sd.touch(pfn, now, bind); // last use and frequency, for the eviction policy
      }
    }
    for (let i = 0; i < n; ) {
      if (range.pageValid[i] !== 1) {
        range.devMap[i] = range.devMap[i]! & ~bit;
        i++;
        continue;
      }
      const va = range.start + i * PAGE_SIZE;
      const w = (range.flags[i]! & HMM_PFN_WRITE) !== 0;
      let pages = 1;
      // System memory needs the CPU to map a 2M folio (map order); device memory only contiguity.
      const orderOk = ap[i] !== APERTURE.SYS || hmmPfnToMapOrder(range.flags[i]!) >= 9;
      if (
        can2M &&
        orderOk &&
        va % PAGE_2M === 0 &&
        i + 512 <= n &&
        this.contiguous(range, pa, ap, i, 512, w)
      ) {
        pages = 512;
      }
      if (
        pages === 1 &&
        can64K &&
        va % PAGE_64K === 0 &&
        i + 16 <= n &&
        this.contiguous(range, pa, ap, i, 16, w)
      ) {
        pages = 16;
      }
      const size = pages * PAGE_SIZE;
      const aperture = ap[i] as (typeof APERTURE)[keyof typeof APERTURE];
      const attrs =
        aperture === APERTURE.PEER ? { aperture, writable: w, peerId: peer[i]! } : { aperture, writable: w };
      pt.map(va, size, pa[i]!, attrs, u.pt);
      for (let k = 0; k < pages; k++) range.devMap[i + k] = range.devMap[i + k]! | bit;
      if (pages === 512) this.c.pte2m.value++;
      else if (pages === 16) this.c.pte64k.value++;
      else this.c.pte4k.value++;
      i += pages;
    }
    u.end();
    range.devMapped |= bit;
    this.c.binds.value++;
  }

  /** Pages [i, i+n) are valid, one aperture, contiguous and n-aligned in device address, one permission. */
  private contiguous(
    range: SvmRange,
    pa: Float64Array,
    ap: Int8Array,
    i: number,
    n: number,
    w: boolean,
  ): boolean {
    const p0 = pa[i]!;
    if (p0 % (n * PAGE_SIZE) !== 0) return false;
    for (let k = 1; k < n; k++) {
      if (range.pageValid[i + k] !== 1 || ap[i + k] !== ap[i] || pa[i + k] !== p0 + k * PAGE_SIZE)
        return false;
      if (((range.flags[i + k]! & HMM_PFN_WRITE) !== 0) !== w) return false;
    }
    return true;
  }

  /** Index of the device whose SVM memory holds `pfn`, or -1 (system memory). */
  devmemIndexOf(pfn: number): number {
    for (let e = 0; e < this.devmem.length; e++) if (this.devmem[e]!.contains(pfn)) return e;
    return -1;
  }

  /** Zaps every device PTE of the ranges (one batched update per device) and drops their pages. */
  private zapRangesLocked(ranges: readonly SvmRange[]): void {
    let devs = 0;
    for (const r of ranges) devs |= r.devMapped;
    for (let d = 0; d < this.devices.length; d++) {
      if ((devs & (1 << d)) === 0) continue;
      const dev = this.devices[d]!;
      const u = dev.beginUpdate(this.ptUpdate);
      for (const r of ranges) {
        if ((r.devMapped & (1 << d)) === 0) continue;
        dev.pageTable.unmap(r.start, r.end - r.start, u.pt);
        u.tlb.invalidate(r.start, r.end - r.start);
      }
      u.end();
    }
    for (const r of ranges) {
      r.devMapped = 0;
      r.pageValid.fill(0);
      r.devMap.fill(0);
    }
  }

  private ownsMigration(owner: unknown): boolean {
    return owner === this.owner || this.owners.includes(owner as object);
  }

  // ---------------------------------------------------------------------------- invalidation

  /**
   * The interval-notifier callback (drm_gpusvm_notifier_invalidate + xe_svm_invalidate): under the
   * notifier lock (write) set the sequence, zap every overlapping range's device PTEs over the
   * range's full bounds (one batched update and TLB invalidate per device), drop its pages; on
   * UNMAP mark it unmapped and queue it for the collector.
   *
   * Our own migrations are not skipped (xe skips only its own EXCLUSIVE events): migrate_vma_setup
   * collects the pages inside this MIGRATE invalidation, so this is the one point after which no
   * GPU fault can still bind a page that is about to move — a bind made before it is zapped here,
   * and a fault whose hmm walk finished before it fails read_retry. A migration of ours zaps only
   * the ranges holding a valid page it may move (inside the migration's span and page mask), so
   * migrating part of a 2 MiB block leaves the block's resident, mapped pages alone.
   */
  private async invalidate(
    n: SvmNotifier,
    sub: MmuIntervalNotifier,
    mr: MmuNotifierRange,
    curSeq: number,
  ): Promise<boolean> {
    if (!mmuNotifierRangeBlockable(mr)) return false;
    await this.notifierLock.write();
    try {
      mmuIntervalSetSeq(sub, curSeq);
      this.c.invalidations.value++;
      const s = Math.max(mr.start, n.start);
      const e = Math.min(mr.end, n.end);
      const hit: SvmRange[] = [];
      if (mr.event === MmuNotifyEvent.MIGRATE && this.ownsMigration(mr.owner)) {
        this.rangesWithValidPages(s, e, this.migrationMask(mr.start, mr.end), hit);
      } else {
        n.ranges.forEachOverlap(s, e - 1, (node) => {
          hit.push(node.value);
        });
        // a foreign invalidation with no range of ours under it (our own migrations are expected)
        if (hit.length === 0) this.c.falseInvalidations.value++;
      }
      this.zapRangesLocked(hit);
      for (const r of hit) {
        if (mr.event === MmuNotifyEvent.UNMAP && !r.unmapped) {
          r.unmapped = true;
          r.partialUnmap = r.start < mr.start || r.end > mr.end;
          this.gcList.push(r);
        }
      }
      return true;
    } finally {
      this.notifierLock.writeUnlock();
    }
  }

  /**
   * The pages of `[start, end)` that migrations of ours in flight may move, as a 2 MiB block mask,
   * or null for every page. Several migrations of ours can be in flight at once (a fault-driven
   * migration waiting for its copy while a CPU fault runs migrate_to_ram over the same range) and
   * an invalidation does not say whose it is, so the answer covers every migration whose span
   * contains it: null if any of them has no mask (or they lie in different blocks), else the union.
   */
  private migrationMask(start: number, end: number): PageMask | null {
    let out: PageMask | null = null;
    let block = -1;
    let n = 0;
    for (const m of this.migrating) {
      if (!(m.start <= start && end <= m.end)) continue;
      if (m.pages === null) return null;
      const b = alignDown(m.start, SZ_2M);
      if (n > 0 && b !== block) return null;
      block = b;
      if (out === null) out = m.pages;
      else {
        const u = this.unionMask;
        if (out !== u) u.set(out.subarray(0, u.length));
        for (let k = 0; k < u.length; k++) u[k] = u[k]! | (m.pages[k] ?? 0);
        out = u;
      }
      n++;
    }
    return n === 0 ? null : out;
  }

  /** Runs `body` (one migrate_vma of ours over `[start, end)`) with its page mask registered. */
  private async withMigration<T>(
    start: number,
    end: number,
    pages: PageMask | null,
    body: () => Promise<T>,
  ): Promise<T> {
    const m = { start, end, pages };
    this.migrating.push(m);
    try {
      return await body();
    } finally {
      this.migrating.splice(this.migrating.indexOf(m), 1);
    }
  }

  /**
   * Collects into `out` the ranges holding a valid page in `[start, end)` (restricted to the 2 MiB
   * block mask `pages` when given). Call with the notifier lock held.
   */
  private rangesWithValidPages(start: number, end: number, pages: PageMask | null, out: SvmRange[]): void {
    const blockStart = alignDown(start, SZ_2M);
    for (let r = this.rangeAtOrAfter(start); r !== null && r.start < end; r = this.nextRange(r)) {
      const a = Math.max(start, r.start);
      const b = Math.min(end, r.end);
      for (let p = a; p < b; p += PAGE_SIZE) {
        if (pages !== null && p - blockStart < SZ_2M && !pageMaskTest(pages, (p - blockStart) / PAGE_SIZE))
          continue;
        if (r.pageValid[(p - r.start) / PAGE_SIZE] === 1) {
          out.push(r);
          break;
        }
      }
    }
  }

  /** Models the xe garbage collector: removes queued unmapped ranges (call with the SVM lock). */
  private async garbageCollectLocked(): Promise<void> {
    while (this.gcList.length > 0) {
      const r = this.gcList.pop()!;
      await this.rangeRemove(r);
    }
  }

  /** Runs the garbage collector (takes the SVM lock). */
  async garbageCollect(): Promise<void> {
    await this.lock.lock();
    try {
      await this.garbageCollectLocked();
    } finally {
      this.lock.unlock();
    }
  }

  /** Models drm_gpusvm_range_remove(): unbind, drop, remove; the notifier goes with its last range. */
  private async rangeRemove(r: SvmRange): Promise<void> {
    if (r.removed) return;
    await this.notifierLock.write();
    try {
      this.zapRangesLocked([r]);
      const n = r.notifier;
      if (r.node !== null) n.ranges.remove(r.node);
      r.node = null;
      r.removed = true;
      this.sortedRemove(r);
      this.c.rangesRemoved.value++;
    } finally {
      this.notifierLock.writeUnlock();
    }
    const n = r.notifier;
    if (n.ranges.size === 0 && n.node !== null) {
      this.notifierTree.remove(n.node);
      n.node = null;
      await mmuIntervalNotifierRemove(n.sub);
      this.c.notifiersRemoved.value++;
    }
  }

  /** Removes every range (driver teardown, `drm_gpusvm_fini`). */
  async fini(): Promise<void> {
    await this.lock.lock();
    try {
      for (const r of [...this.sorted]) await this.rangeRemove(r);
      this.gcList.length = 0;
      this.blockFaults.clear();
    } finally {
      this.lock.unlock();
    }
  }

  // ---------------------------------------------------------------------------- migration

  /** Whether a fault of device `devIndex` should first migrate its span to that device's VRAM. */
  private wantsMigration(
    devIndex: number,
    range: SvmRange,
    va: number,
    fs: number,
    fe: number,
    pages: PageMask | null,
  ): boolean {
    if (this.devmem.length === 0 || this.migrateMode === 'never') return false;
    const a = this.attrs.lookup(va);
    if (a.readMostly) return false;
    const here = deviceLoc(devIndex);
    if (
      this.migrateMode === 'preferred'
        ? a.preferredLoc !== here
        : a.preferredLoc !== LOC.UNDEFINED && a.preferredLoc !== here
    ) {
      return false;
    }
    const sd = this.devmem[devIndex]!;
    if ((fe - fs) / PAGE_SIZE > sd.nrPages) return false;
    // already there?
    const blockStart = fs - (fs % SZ_2M);
    for (let p = fs; p < fe; p += PAGE_SIZE) {
      if (pages !== null && p - blockStart < SZ_2M && !pageMaskTest(pages, (p - blockStart) / PAGE_SIZE))
        continue;
      const i = (p - range.start) / PAGE_SIZE;
      if (range.pageValid[i] !== 1 || !sd.contains(range.pfns[i]!)) return true;
    }
    return false;
  }

  /**
   * Migrates `[fs, fe)` (pages in `pages` when given) to device `devIndex`'s VRAM with migrate_vma
   * (SELECT_SYSTEM): evicts chunks if the pool is short, then setup (whose MIGRATE invalidation
   * zaps the device PTEs of the pages it may move) → allocate + copy (one copy-engine transfer) →
   * pages → finalize. An explicit migration (prefetch, `record` false) also moves the span's pages
   * held by other GPUs, through system memory (KFD's svm_migrate_vram_to_vram); a fault-driven one
   * (`record`) leaves them, and get_pages faults them back to system memory as xe does. Returns
   * the number of pages moved or a negative errno.
   */
  async migrateToDevice(
    devIndex: number,
    fs: number,
    fe: number,
    pages: PageMask | null = null,
    record = false,
  ): Promise<number> {
    const sd = this.devmem[devIndex];
    if (sd === undefined) return -Errno.EOPNOTSUPP;
    const n = (fe - fs) / PAGE_SIZE;
    await this.ensureFree(devIndex, n);
    return this.withMigration(fs, fe, pages, () =>
      this.migrateToDeviceIn(sd, devIndex, fs, fe, pages, record),
    );
  }

  /** {@link migrateToDevice} after eviction, with the migration registered for the notifier. */
  private async migrateToDeviceIn(
    sd: SvmDeviceMemory,
    devIndex: number,
    fs: number,
    fe: number,
    pages: PageMask | null,
    record: boolean,
  ): Promise<number> {
    if (!record) await this.evacuateOtherDevices(devIndex, fs, fe);
    const mm = this.mm;
    const now = mm.sim.now;
    const blockStart = fs - (fs % SZ_2M);
    // The pages to move: in the mask, and (fault-driven) not pinned by the thrashing detector.
    const want = (va: number): boolean =>
      (pages === null || va - blockStart >= SZ_2M || pageMaskTest(pages, (va - blockStart) / PAGE_SIZE)) &&
      !(record && this.thrashing?.isThrashing(va, now) === true);
    await mm.mmapLock.read();
    try {
      const vma = mm.vmaLookup(fs);
      if (vma === null || fe > vma.end) return -Errno.EFAULT;
      // One migrate_vma per run of wanted pages: setup collects (and unmaps behind migration
      // entries) every page of its span, so a page we would not move must not be in one.
      const runs: MigrateVma[] = [];
      let moved = 0;
      let full = false;
      for (let a = fs; a < fe && !full; ) {
        while (a < fe && !want(a)) a += PAGE_SIZE;
        if (a >= fe) break;
        let b = a + PAGE_SIZE;
        while (b < fe && want(b)) b += PAGE_SIZE;
        const args = new MigrateVma({
          vma,
          start: a,
          end: b,
          pgmapOwner: this.owners[devIndex],
          flags: MIGRATE_VMA_SELECT_SYSTEM,
        });
        const r = await migrateVmaSetup(args);
        if (r !== 0) {
          if (runs.length === 0) return r;
          break;
        }
        runs.push(args);
        const n = this.fillDevicePages(sd, args, record);
        moved += n;
        if (n < args.cpages) full = true; // the pool ran dry
        a = b;
      }
      // one copy-engine transfer for the whole migration
      if (moved > 0) await this.copyTime(sd.dev, moved * PAGE_SIZE, true);
      for (const args of runs) {
        await migrateVmaPages(args);
        await migrateVmaFinalize(args);
      }
      this.c.migrateToVramPages.add(moved);
      return moved;
    } finally {
      mm.mmapLock.readUnlock();
    }
  }

  /**
   * The allocate-and-copy step of {@link migrateToDevice} for one collected run: a device page
   * per collectable entry of `args` (until the pool runs dry), its contents copied from the system
   * page. Returns the pages given a destination.
   */
  private fillDevicePages(sd: SvmDeviceMemory, args: MigrateVma, record: boolean): number {
    const phys = this.mm.machine.phys;
    const buf = this.pageBuf;
    let moved = 0;
    for (let i = 0; i < args.npages; i++) {
      const e = args.src[i]!;
      if ((migratePfnFlags(e) & MIGRATE_PFN_MIGRATE) === 0) continue;
      const va = args.start + i * PAGE_SIZE;
      const d = sd.allocPage(va);
      if (d < 0) break;
      const spfn = migratePfnToPfn(e);
      const pa = sd.pfnToPa(d);
      // Only pages with contents are copied: a hole, the zero page or a never-written page
      // costs no bytes, and the device page just drops whatever a previous user left there.
      if (spfn >= 0 && phys.hasData(spfn)) {
        phys.readPage(spfn, 0, buf, 0, PAGE_SIZE);
        sd.dev.vram.write(pa, buf, PAGE_SIZE);
      } else if (sd.dev.vram.isMaterialized(pa)) {
        sd.dev.vram.write(pa, null, PAGE_SIZE);
      }
      args.dst[i] = migratePfn(d);
      moved++;
      if (record) this.recordMigration(va);
    }
    return moved;
  }

  /**
   * Device-to-device migration through system memory: pages of `[fs, fe)` held by another GPU's
   * VRAM are migrated to RAM first (one migrate_vma SELECT_DEVICE_PRIVATE per pagemap owner that
   * holds some), so the SELECT_SYSTEM migration that follows moves them to `devIndex`. drm_pagemap
   * can copy over a peer interconnect directly; hmmkit always goes through system memory (two
   * copies). Pages already on `devIndex` stay. Call inside {@link withMigration}.
   */
  private async evacuateOtherDevices(devIndex: number, fs: number, fe: number): Promise<void> {
    if (this.devmem.length < 2) return;
    let others = false;
    for (let e = 0; e < this.devmem.length; e++) {
      if (e !== devIndex && this.devmem[e]!.hasPagesIn(fs, fe)) others = true;
    }
    if (!others) return;
    const mm = this.mm;
    await mm.mmapLock.read();
    try {
      const vma = mm.vmaLookup(fs);
      if (vma === null || fe > vma.end) return;
      for (const owner of new Set(this.owners)) {
        // a pagemap owner only devIndex holds has nothing to give
        if (!this.peer && owner === this.owners[devIndex]) continue;
        const args = new MigrateVma({
          vma,
          start: fs,
          end: fe,
          pgmapOwner: owner,
          flags: MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
        });
        if ((await migrateVmaSetup(args)) !== 0) continue;
        await this.copyBack(args.src, args.dst, args.npages, -1, devIndex);
        await migrateVmaPages(args);
        await migrateVmaFinalize(args);
      }
    } finally {
      mm.mmapLock.readUnlock();
    }
  }

  /** Feeds the thrashing detector with one fault-driven migration of the page at `va`. */
  private recordMigration(va: number): void {
    if (this.thrashing?.recordMigration(va, this.mm.sim.now)) {
      this.c.thrashingPins.value++;
    }
  }

  /**
   * Charges one copy-engine transfer of `bytes` (host to device or back) and waits for it: a
   * timing-only submission, the data having moved page by page (only pages with contents).
   */
  private async copyTime(dev: GpuDevice, bytes: number, h2d: boolean): Promise<void> {
    await dev.copyEngine.copyTimed(bytes, h2d ? 'h2d' : 'd2h');
  }

  /**
   * Copies the collected device pages of `src` into fresh system pages (`dst`), except pages of
   * device `keepDev`; returns pages moved.
   */
  private async copyBack(
    src: Float64Array,
    dst: Float64Array,
    n: number,
    recordStart = -1,
    keepDev = -1,
  ): Promise<number> {
    const phys = this.mm.machine.phys;
    const buf = this.pageBuf;
    let moved = 0;
    let dev: GpuDevice | null = null;
    for (let i = 0; i < n; i++) {
      const e = src[i]!;
      if ((migratePfnFlags(e) & MIGRATE_PFN_MIGRATE) === 0) continue;
      const spfn = migratePfnToPfn(e);
      const k = this.devmemIndexOf(spfn);
      if (k < 0 || k === keepDev) continue; // no dst: the page stays where it is
      const np = phys.allocPage(0);
      if (np < 0) break;
      phys.trylockPage(np);
      const sd = this.devmem[k]!;
      const pa = sd.pfnToPa(spfn);
      if (sd.dev.vram.isMaterialized(pa)) {
        // a device page never written stays contents-free: the new system page reads as zeros
        sd.dev.vram.read(pa, PAGE_SIZE, buf);
        phys.writePage(np, 0, buf, 0, PAGE_SIZE);
      }
      dst[i] = migratePfn(np);
      dev = sd.dev;
      moved++;
      if (recordStart >= 0) this.recordMigration(recordStart + i * PAGE_SIZE);
    }
    if (dev !== null) await this.copyTime(dev, moved * PAGE_SIZE, false);
    this.c.migrateToRamPages.add(moved);
    return moved;
  }

  /**
   * dev_pagemap_ops.migrate_to_ram of every SVM pool (a CPU fault, or another device's hmm
   * fault, on a device page): migrates the span the granule policy names (default the faulting
   * page's range, like drm_pagemap's migrate_to_ram; amdkfd: the granularity block), clipped to the
   * range and the VMA, back to system memory.
   */
  private async migrateToRam(vmf: VmFault): Promise<number> {
    const va = vmf.address - (vmf.address % PAGE_SIZE);
    const r = this.rangeFind(va);
    let start = va;
    let end = va + PAGE_SIZE;
    const span = this.granule.migrateToRamSpan?.(va, r, this.attrs.lookup(va)) ?? r;
    if (span !== null) {
      if (
        !Number.isSafeInteger(span.start) ||
        !Number.isSafeInteger(span.end) ||
        span.start % PAGE_SIZE !== 0 ||
        span.end % PAGE_SIZE !== 0 ||
        !(span.start <= va && va < span.end)
      ) {
        throw new ArgumentError(
          'GpuSvm.migrateToRam',
          'policy',
          `${this.granule.name}: migrateToRamSpan must return a page-aligned span containing the fault`,
          span,
        );
      }
      start = Math.max(span.start, r?.start ?? span.start, vmf.vma.start);
      end = Math.min(span.end, r?.end ?? span.end, vmf.vma.end);
    }
    return this.withMigration(start, end, null, () => this.migrateToRamIn(vmf, start, end));
  }

  /** {@link migrateToRam} over `[start, end)`, with the migration registered for the notifier. */
  private async migrateToRamIn(vmf: VmFault, start: number, end: number): Promise<number> {
    const k = this.devmemIndexOf(vmf.page);
    const args = new MigrateVma({
      vma: vmf.vma,
      start,
      end,
      pgmapOwner: this.owners[Math.max(k, 0)],
      flags: MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
      faultPage: vmf.page,
    });
    if ((await migrateVmaSetup(args)) !== 0) return VM_FAULT_SIGBUS;
    await this.copyBack(args.src, args.dst, args.npages, start);
    await migrateVmaPages(args);
    await migrateVmaFinalize(args);
    return 0;
  }

  /**
   * Evicts until `n` pages of device `devIndex` are free: asks the pool's eviction policy for a
   * victim (default {@link lruChunkEviction}) and evicts it, until enough is free, the policy
   * returns null, or a victim frees nothing. A victim that names no used chunk, or a malformed page
   * mask, is rejected with an ArgumentError naming the policy.
   */
  private async ensureFree(devIndex: number, n: number): Promise<void> {
    const sd = this.devmem[devIndex]!;
    const policy = this.eviction;
    while (sd.mem.freePages < n) {
      const v = policy.pickVictim(sd.view(devIndex, this.mm.sim.now), n - sd.mem.freePages);
      if (v === null) return;
      const ok =
        typeof v === 'object' &&
        Number.isInteger(v.chunk) &&
        v.chunk >= 0 &&
        v.chunk < sd.chunkPa.length &&
        sd.chunkUsed[v.chunk]! > 0 &&
        (v.pages === undefined || (v.pages instanceof Uint32Array && v.pages.length >= 16));
      if (!ok) {
        throw new ArgumentError(
          'GpuSvm.ensureFree',
          'policy',
          `${policy.name}: victim must name a chunk in use (and an optional 512-page mask)`,
          v,
        );
      }
      const before = sd.mem.freePages;
      await this.evictChunk(devIndex, v.chunk, v.pages ?? null);
      if (sd.mem.freePages <= before) return;
    }
  }

  /**
   * Evicts one 2 MiB VRAM chunk (or the pages of `pages`, bit i = page i of the chunk) to system
   * memory (UVM's eviction unit is the chunk): zaps the ranges its pages back, then moves the pages
   * by VA, as UVM evicts a root chunk one VA block at a time: one migrate_vma (SELECT_DEVICE_PRIVATE)
   * per run of consecutive VAs — one MIGRATE invalidation and one copy-engine transfer per run
   * (normally one per chunk), not a notifier callback per page. Pages not found at their recorded
   * VA go by pfn (migrate_device_range → migrate_device_pages → migrate_device_finalize). Returns
   * pages moved.
   */
  async evictChunk(devIndex: number, chunk: number, pages: PageMask | null = null): Promise<number> {
    const sd = this.devmem[devIndex];
    if (sd === undefined || !Number.isInteger(chunk) || chunk < 0 || chunk >= sd.chunkPa.length) {
      throw new ArgumentError('GpuSvm.evictChunk', 'chunk', 'no such device chunk', chunk);
    }
    if (pages !== null && !(pages instanceof Uint32Array && pages.length >= 16)) {
      throw new ArgumentError('GpuSvm.evictChunk', 'pages', 'must be null or a 512-page mask', pages);
    }
    const inVictim = (k: number): boolean => pages === null || pageMaskTest(pages, k);
    const hit = new Set<SvmRange>();
    for (let k = 0; k < 512; k++) {
      const va = sd.rmapVa[chunk * 512 + k]!;
      if (va < 0 || !inVictim(k)) continue;
      const r = this.rangeFind(va);
      if (r !== null) hit.add(r);
    }
    if (hit.size > 0) {
      await this.notifierLock.write();
      try {
        this.zapRangesLocked([...hit]);
      } finally {
        this.notifierLock.writeUnlock();
      }
    }
    let moved = await this.evictChunkByVa(devIndex, chunk, inVictim);
    // what is left was not at its recorded VA: by pfn, one run of victim pages at a time
    for (let k = 0; k < 512; ) {
      if (sd.rmapVa[chunk * 512 + k]! < 0 || !inVictim(k)) {
        k++;
        continue;
      }
      let k1 = k + 1;
      while (k1 < 512 && sd.rmapVa[chunk * 512 + k1]! >= 0 && inVictim(k1)) k1++;
      const n = k1 - k;
      const src = new Float64Array(n);
      const dst = new Float64Array(n);
      await migrateDeviceRange(src, sd.chunkStartPfn(chunk) + k, n);
      moved += await this.copyBack(src, dst, n);
      await migrateDevicePages(src, dst, n);
      await migrateDeviceFinalize(src, dst, n);
      k = k1;
    }
    this.c.evictions.value++;
    return moved;
  }

  /** The VA part of {@link evictChunk}: one migrate_vma per run of consecutive VAs of the victim pages. */
  private async evictChunkByVa(
    devIndex: number,
    chunk: number,
    inVictim: (k: number) => boolean,
  ): Promise<number> {
    const sd = this.devmem[devIndex]!;
    const vas: number[] = [];
    for (let k = 0; k < 512; k++) {
      const va = sd.rmapVa[chunk * 512 + k]!;
      if (va >= 0 && inVictim(k)) vas.push(va);
    }
    if (vas.length === 0) return 0;
    const sorted = Float64Array.from(vas).sort();
    const mm = this.mm;
    let moved = 0;
    await mm.mmapLock.read();
    try {
      for (let k = 0; k < sorted.length; ) {
        const start = sorted[k]!;
        const vma = mm.vmaLookup(start);
        let k1 = k + 1;
        if (vma !== null) {
          while (
            k1 < sorted.length &&
            sorted[k1] === start + (k1 - k) * PAGE_SIZE &&
            start + (k1 - k) * PAGE_SIZE < vma.end
          ) {
            k1++;
          }
          const args = new MigrateVma({
            vma,
            start,
            end: start + (k1 - k) * PAGE_SIZE,
            pgmapOwner: this.owners[devIndex],
            flags: MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
          });
          if ((await migrateVmaSetup(args)) === 0) {
            moved += await this.copyBack(args.src, args.dst, args.npages);
            await migrateVmaPages(args);
            await migrateVmaFinalize(args);
          }
        }
        k = k1;
      }
    } finally {
      mm.mmapLock.readUnlock();
    }
    return moved;
  }

  /**
   * Explicit prefetch (xe/amdkfd PREFETCH_LOC, UVM migrate): migrates `[start, end)` to `loc`
   * (`LOC.SYSMEM` or a device location) — pages on another GPU move too, through system memory —
   * then maps it on that device and on the accessedBy devices, as KFD and xe do. Returns pages
   * moved or a negative errno (-EINVAL for a hugetlb or VM_SPECIAL VMA, before anything moves);
   * invalid arguments throw before anything changes.
   */
  async prefetch(start: number, end: number, loc: number): Promise<number> {
    const fn = 'GpuSvm.prefetch';
    if (!Number.isSafeInteger(start) || start < 0 || start % PAGE_SIZE !== 0) {
      throw new ArgumentError(fn, 'start', 'must be a page-aligned uint', start);
    }
    if (!Number.isSafeInteger(end) || end <= start || end % PAGE_SIZE !== 0) {
      throw new ArgumentError(fn, 'end', 'must be page aligned and > start', end);
    }
    const d = typeof loc === 'number' && Number.isInteger(loc) ? locDevice(loc) : -1;
    if (loc !== LOC.SYSMEM && (d < 0 || this.devmem[d] === undefined)) {
      throw new ArgumentError(fn, 'loc', 'must be LOC.SYSMEM or the location of a device with devmem', loc);
    }
    await this.lock.lock();
    try {
      // Every VMA is checked before anything moves (KFD validates the whole range first): a
      // prefetch is applied to all of its VMAs or to none.
      const spans: Span[] = [];
      await this.mm.mmapLock.read();
      try {
        for (let pos = start; pos < end; ) {
          const vma = this.mm.findVma(pos);
          if (vma === null || vma.start >= end) break;
          if ((vma.flags & (VM_HUGETLB | VM_SPECIAL)) !== 0) return -Errno.EINVAL;
          spans.push({ start: Math.max(pos, vma.start), end: Math.min(end, vma.end) });
          pos = vma.end;
        }
      } finally {
        this.mm.mmapLock.readUnlock();
      }
      let moved = 0;
      for (const { start: s, end: e } of spans) {
        // in 2 MiB pieces so eviction can make room piece by piece
        for (let a = s; a < e; ) {
          const b = Math.min(e, a - (a % SZ_2M) + SZ_2M);
          const r = d >= 0 ? await this.migrateToDevice(d, a, b) : await this.migrateSpanToRam(a, b);
          if (r < 0) return r;
          moved += r;
          a = b;
        }
      }
      // KFD and xe map on prefetch: the target device (and the accessedBy devices) need no fault
      for (const { start: s, end: e } of spans) {
        for (const seg of this.attrs.segments(s, e)) {
          const r = await this.mapPrefetched(d, seg.start, seg.end, seg.attrs.accessedBy);
          if (r < 0) return r;
        }
      }
      return moved;
    } finally {
      this.lock.unlock();
    }
  }

  /**
   * Maps `[start, end)` (one attribute interval, after a prefetch) on device `d` (none for a
   * prefetch to system memory) and on the accessedBy devices: the fault path without migration,
   * one range at a time (SVM lock held). Returns 0 or a negative errno.
   */
  private async mapPrefetched(d: number, start: number, end: number, accessedBy: number): Promise<number> {
    for (let k = 0; k < this.devices.length; k++) {
      // the target's own fault binds the accessedBy devices that can reach its pages
      if (k !== d && (d >= 0 || (accessedBy & (2 ** k)) === 0)) continue;
      for (let va = start; va < end; ) {
        const r = await this.faultLocked(k, va, ACCESS.READ, null, 0, false);
        if (r < 0) return r;
        va = Math.max(va + PAGE_SIZE, this.lastFaultEnd);
      }
    }
    return 0;
  }

  /** Migrates every device page of `[start, end)` back to system memory (one VMA). */
  private async migrateSpanToRam(start: number, end: number): Promise<number> {
    return this.withMigration(start, end, null, () => this.migrateSpanToRamIn(start, end));
  }

  /** {@link migrateSpanToRam} with the migration registered for the notifier. */
  private async migrateSpanToRamIn(start: number, end: number): Promise<number> {
    const mm = this.mm;
    let moved = 0;
    await mm.mmapLock.read();
    try {
      const vma = mm.vmaLookup(start);
      if (vma === null) return -Errno.EFAULT;
      for (const owner of new Set(this.owners)) {
        const args = new MigrateVma({
          vma,
          start,
          end,
          pgmapOwner: owner,
          flags: MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
        });
        if ((await migrateVmaSetup(args)) !== 0) continue;
        moved += await this.copyBack(args.src, args.dst, args.npages);
        await migrateVmaPages(args);
        await migrateVmaFinalize(args);
      }
    } finally {
      mm.mmapLock.readUnlock();
    }
    return moved;
  }

  // ---------------------------------------------------------------------------- fault loop

  /**
   * Spawns the device's fault handler task (the bottom half of uvm_gpu_replayable_faults.c):
   * wait for faults → fetch a batch (coalesced, `faultBatchFixedNs`) → sort → service it per 2 MiB
   * VA block ({@link serviceFaultBatch}) → with the default replay policy 'batch-flush'
   * (UVM_PERF_FAULT_REPLAY_POLICY_BATCH_FLUSH) flush the buffer's stale duplicates raised
   * meanwhile → one replay. 'batch' replays without the flush (UVM_PERF_FAULT_REPLAY_POLICY_BATCH:
   * every stale duplicate is fetched and serviced again). Failed faults are cancelled. Ends when
   * `stop()` holds and the buffer is empty.
   */
  startFaultHandler(devIndex: number, stop: () => boolean, opts: FaultHandlerOptions = {}): Task {
    const fn = 'GpuSvm.startFaultHandler';
    const dev = this.devices[devIndex];
    if (dev === undefined) throw new ArgumentError(fn, 'devIndex', 'no such device', devIndex);
    const replay = opts.replay ?? 'batch-flush';
    if (replay !== 'batch-flush' && replay !== 'batch') {
      throw new ArgumentError(fn, 'opts.replay', "must be 'batch-flush' or 'batch'", replay);
    }
    const sim = this.mm.sim;
    const max = sim.costs.faultBatchMax;
    if (!Number.isInteger(max) || max < 1) {
      // rejected here, before the handler starts, not by the first fetch mid-run
      throw new ArgumentError(fn, 'sim.costs.faultBatchMax', 'must be a positive integer', max);
    }
    return sim.sched.spawn(`svm-faults-${dev.id}`, async () => {
      const batch = dev.newFaultBatch();
      const fb = dev.faultBuffer;
      while (await fb.waitForFaults(stop)) {
        const t0 = sim.now;
        fb.fetch(batch);
        sim.charge(sim.costs.faultBatchFixedNs);
        batch.sort();
        const pages = await this.serviceFaultBatch(devIndex, batch);
        if (replay === 'batch-flush') fb.flush();
        fb.replay();
        if (sim.trace.wants('svm.fault.batch')) {
          sim.trace.emit('svm.fault.batch', dev.id, batch.count, pages, t0, sim.now);
        }
      }
    });
  }

  /**
   * Models service_fault_batch(): walks a fetched, sorted batch one 2 MiB VA block at a time. For
   * each block it builds the mask of the block's faulted pages not yet mapped (for their access),
   * charges `faultServicePerPageNs` once per such unique page (duplicates coalesced in the batch
   * are not serviced twice), and services the block's faults with that mask and the block's
   * prior fault count, so the granule policy (UVM's prefetcher) is consulted once per block with
   * the whole batch in view and the block's pages are migrated and mapped together (one
   * copy-engine transfer and one bind). Faults the first service left unmapped (another range,
   * another granule) are serviced in turn. Failed faults are cancelled. Returns the number of
   * unique pages serviced.
   */
  async serviceFaultBatch(devIndex: number, batch: FaultBatch): Promise<number> {
    const dev = this.devices[devIndex];
    if (dev === undefined)
      throw new ArgumentError('GpuSvm.serviceFaultBatch', 'devIndex', 'no such device', devIndex);
    const sim = this.mm.sim;
    const fb = dev.faultBuffer;
    const order = batch.order;
    const n = batch.count;
    const mask = this.batchMask;
    let serviced = 0;
    this.c.faults.add(n); // every fetched (coalesced) entry is serviced, most by its block's first
    for (let k = 0; k < n; ) {
      const e0 = order[k]!;
      const inst = batch.instance[e0]!;
      const blockStart = alignDown(batch.va[e0]!, SZ_2M);
      let k1 = k + 1;
      while (
        k1 < n &&
        batch.instance[order[k1]!] === inst &&
        alignDown(batch.va[order[k1]!]!, SZ_2M) === blockStart
      ) {
        k1++;
      }
      mask.fill(0);
      for (let j = k; j < k1; j++) {
        const e = order[j]!;
        const va = batch.va[e]!;
        if (!this.pageMappedFor(devIndex, va, batch.access[e]!))
          pageMaskSet(mask, (va - blockStart) / PAGE_SIZE);
      }
      const unique = pageMaskWeight(mask);
      if (unique > 0) {
        serviced += unique;
        sim.charge(unique * sim.costs.faultServicePerPageNs);
        const block = blockStart / SZ_2M;
        const prior = this.blockFaults.get(block) ?? 0;
        this.blockFaults.set(block, prior + unique);
        for (let j = k; j < k1; j++) {
          const e = order[j]!;
          const va = batch.va[e]!;
          const access = batch.access[e]!;
          if (this.pageMappedFor(devIndex, va, access)) continue; // serviced with an earlier fault
          const ret = await this.handleFaultIn(devIndex, va, access, mask, prior);
          if (ret !== 0) fb.cancel(va, inst);
        }
      }
      k = k1;
    }
    return serviced;
  }

  /** Whether device `devIndex` maps the page of `va` with the rights `access` needs. */
  private pageMappedFor(devIndex: number, va: number, access: number): boolean {
    const r = this.rangeFind(va);
    if (r === null) return false;
    const i = Math.floor((va - r.start) / PAGE_SIZE);
    if (r.pageValid[i] !== 1 || (r.devMap[i]! & (1 << devIndex)) === 0) return false;
    const wantW = access === ACCESS.WRITE || access === ACCESS.ATOMIC;
    return !wantW || (r.flags[i]! & HMM_PFN_WRITE) !== 0;
  }

  // ---------------------------------------------------------------------------- bookkeeping

  private sortedIndex(start: number): number {
    const s = this.sorted;
    let lo = 0;
    let hi = s.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (s[mid]!.start < start) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private sortedInsert(r: SvmRange): void {
    this.sorted.splice(this.sortedIndex(r.start), 0, r);
  }

  private sortedRemove(r: SvmRange): void {
    const i = this.sortedIndex(r.start);
    if (this.sorted[i] === r) this.sorted.splice(i, 1);
  }

  private rangeAtOrAfter(va: number): SvmRange | null {
    const i = this.sortedIndex(va);
    const prev = this.sorted[i - 1];
    if (prev !== undefined && prev.end > va) return prev;
    return this.sorted[i] ?? null;
  }

  private nextRange(r: SvmRange): SvmRange | null {
    const i = this.sortedIndex(r.start);
    return this.sorted[i + 1] ?? null;
  }
}
