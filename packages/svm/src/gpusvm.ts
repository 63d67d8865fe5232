/**
 * `GpuSvm`: the SVM driver framework over one CPU mm and one or more GPUs, modelled on drm_gpusvm
 * (drivers/gpu/drm/drm_gpusvm.c), drm_pagemap (drm_pagemap.c) and xe's glue (xe_svm.c), with the
 * policies of amdkfd, nouveau and NVIDIA UVM plugged in. This file holds the state and the public
 * methods; each section of drm_gpusvm has its own file.
 *
 * Overview
 * - Notifiers (`range.ts`): MMU interval notifiers created on demand per the {@link NotifierPolicy}
 *   (drm_gpusvm: one per 512 MiB window; amdkfd: one per range), each holding its ranges in an
 *   interval tree; all ranges are also kept in one VA-sorted index.
 * - Ranges (`range.ts`): fixed bounds chosen by the {@link GranulePolicy} at the first GPU fault
 *   (drm_gpusvm chunks, amdkfd granularity, nouveau map order, UVM's tree prefetcher), never
 *   crossing a VMA or attribute boundary when created; per page a CPU pfn, hmm flags, a valid bit
 *   and a bitmap of the devices that map it. A range is removed by the garbage collector after an
 *   UNMAP (or when an attribute change splits it).
 * - Device memory (`migrate.ts`, `devmem.ts`, `eviction.ts`): per GPU a device-private pool; faults
 *   and prefetch migrate to it with migrate_vma, CPU faults bring pages back through
 *   migrate_to_ram, a full pool evicts what the {@link EvictionPolicy} picks.
 *
 * Locking (outermost first)
 * - `lock` (xe's vm lock, drm_gpusvm's "driver_svm_lock"): serialises GPU fault handling,
 *   prefetch and garbage collection — everything that creates or removes ranges.
 * - the mmap lock (read): taken by the framework around VMA lookups, hmm_range_fault and
 *   migrate_vma, never held across the notifier lock's write side.
 * - `notifierLock` (`gpusvm->notifier_lock`, hmm.rst's "driver->update" lock): the invalidation
 *   callback takes it for write (sets the sequence, zaps, drops pages); get_pages takes it for read
 *   to record pages, the bind takes it for read to check read_retry and commit. Each is taken and
 *   released in one function (hmm's locked helper takes it; the function that called the helper
 *   releases it in a `finally`).
 * - CPU migrations (migrate_to_ram) run under the CPU fault, not under `lock`: they race GPU faults,
 *   and that race is closed by the notifier (below), not by a lock.
 *
 * Flow of a GPU fault (`fault-batch.ts` → `fault.ts` → `get-pages.ts` → `bind.ts`)
 * fault buffer → batch per 2 MiB block → garbage collect → find or insert range (VMA, policy,
 * notifier) → migrate to VRAM if the policy says so → get pages (read_begin, hmm_range_fault,
 * record under the notifier lock) → bind under the notifier lock only if read_retry says the
 * pages are still valid (else retry) → TLB batch → replay.
 *
 * Flow of an invalidation (`invalidate.ts`)
 * CPU change → invalidate start → interval tree → callback: notifier lock (write), set_seq, zap the
 * device PTEs of the overlapping ranges (one batched update and TLB flush per device), drop their
 * pages, queue unmapped ranges for the collector. Our own migrations are not skipped: their
 * MIGRATE event zaps the pages they may move inside migrate_vma_setup, so a GPU fault can neither
 * keep nor create a binding of a page that is being moved (xe_svm_invalidate skips only its own
 * EXCLUSIVE events).
 *
 * CPU state is read through hmm (hmm_range_fault, migrate_vma, migrate_to_ram), except the two
 * advisory hints the granule policy gets — the CPU map order at the fault and drm_gpusvm's
 * check-pages predicate — which still walk the CPU page table (`fault.ts`). Deviations from Linux
 * are listed in docs/svm.md.
 *
 * @module
 */
import { APERTURE, type FaultBatch, type FlushMode, type GpuDevice, type Memory32 } from '@hmmkit/gpu';
import { IntervalTree } from '@hmmkit/interval-tree';
import { type Mm, PageWalk, TASK_SIZE } from '@hmmkit/mm';
import { ArgumentError, type Counter, Errno, Mutex, RwSemaphore, type Task } from '@hmmkit/sim';
import { type AccessCounterOptions, AccessCounters, startAccessCounterHandler } from './access-counters.ts';
import { AttrMap, type AttrUpdate } from './attr-map.ts';
import { SvmDeviceMemory } from './devmem.ts';
import { type EvictionPolicy, lruChunkEviction } from './eviction.ts';
import { type FoundRange, handleFaultIn, rangeFindOrInsert } from './fault.ts';
import { serviceFaultBatch, startFaultHandler } from './fault-batch.ts';
import {
  drmGpusvmPolicy,
  type ExistingRanges,
  type GranulePolicy,
  PAGE_SIZE,
  rangesView,
} from './granule.ts';
import { getAttr, type SvmAttrReport, setAttr } from './kfd-attr.ts';
import { evictChunk, migrateToDevice, migrateToRam, prefetch } from './migrate.ts';
import { type NotifierPolicy, windowNotifiers } from './notifier-policy.ts';
import type { DevicePageResolver } from './oracle.ts';
import { type PageMask, pageMaskNew } from './page-mask.ts';
import { attrsChanged, garbageCollectLocked, rangeRemove, type SvmNotifier, type SvmRange } from './range.ts';
import { ThrashingDetector, type ThrashingParams } from './thrashing.ts';
import { checkDevice, type MemoryException, type MemoryExceptionListener, NoRetryState } from './xnack.ts';

// Declared here, not in fault-batch.ts, so that the emitted gpusvm.d.ts (which every consumer loads)
// carries the augmentation.
declare module '@hmmkit/sim' {
  interface TraceEvents {
    /**
     * One fault batch serviced by {@link GpuSvm.startFaultHandler}: device id, entries fetched
     * (after coalescing), unique pages serviced, start (fetch) and end (replay) virtual time.
     */
    'svm.fault.batch': [devId: number, entries: number, pages: number, startNs: number, endNs: number];
    /**
     * A fatal GPU fault with XNACK off (KFD's HSA_EVENTTYPE_MEMORY): device id, page address,
     * ACCESS type, negative errno (-EFAULT: nothing mapped for the device; -EPERM: write to
     * read-only memory). The device's queue is killed.
     */
    'svm.memory.exception': [devId: number, va: number, access: number, errno: number];
    /**
     * A migration begins (KFD_SMI_EVENT_MIGRATE_START): first VA, pages in the span, from and to
     * locations ({@link LOC} / `deviceLoc`), {@link MIGRATE_TRIGGER}. Every start has one end.
     */
    'svm.migrate.start': [start: number, pages: number, from: number, to: number, trigger: number];
    /** The migration ended (KFD_SMI_EVENT_MIGRATE_END): as the start, plus the pages actually moved. */
    'svm.migrate.end': [
      start: number,
      pages: number,
      from: number,
      to: number,
      trigger: number,
      moved: number,
    ];
    /**
     * A migration to VRAM could not get the pages it needs and continues with what is free (the
     * rest stays in system memory): device id, first VA, pages needed, pages free. xe's
     * "VRAM allocation failed, falling back" (xe_svm_handle_pagefault); never silent.
     */
    'svm.migrate.fallback': [devId: number, start: number, needed: number, free: number];
    /** A GPU fault is being serviced (KFD_SMI_EVENT_PAGE_FAULT_START): device id, VA, ACCESS type. */
    'svm.pagefault.start': [devId: number, va: number, access: number];
    /**
     * The fault was serviced (KFD_SMI_EVENT_PAGE_FAULT_END): device id, VA, pages it migrated to
     * VRAM (0: mapped in place, KFD's "update"), result (0 or a negative errno).
     */
    'svm.pagefault.end': [devId: number, va: number, migrated: number, ret: number];
    /**
     * Device PTEs of `[start, end)` removed (KFD_SMI_EVENT_UNMAP_FROM_GPU): device id, span,
     * {@link UNMAP_TRIGGER}.
     */
    'svm.unmap.gpu': [devId: number, start: number, end: number, trigger: number];
    /** With XNACK off, a queue stopped for an SVM invalidation (KFD_SMI_EVENT_QUEUE_EVICTION): device id, trigger. */
    'svm.queue.evict': [devId: number, trigger: number];
    /** ... and resumed after its ranges were revalidated (KFD_SMI_EVENT_QUEUE_RESTORE): device id. */
    'svm.queue.restore': [devId: number];
  }
}

export type { AccessCounterOptions, AccessCounters } from './access-counters.ts';
export * from './events.ts';
export type { FoundRange } from './fault.ts';
export { rangeIsValid, type SvmAttrReport } from './kfd-attr.ts';
export { SvmNotifier, SvmRange } from './range.ts';
export type { MemoryException, MemoryExceptionListener } from './xnack.ts';
export { SpanSet } from './xnack.ts';

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
  /**
   * Retryable GPU faults (amdkfd's XNACK mode; default true). With `false` a fault cannot be
   * replayed: a kernel may touch only what was mapped for its device before the launch
   * ({@link GpuSvm.prefetch}, which maps the target and accessedBy devices), and a fault
   * elsewhere is fatal — a {@link MemoryException} is delivered and the device's queue killed.
   * See `xnack.ts`.
   */
  readonly xnack?: boolean;
  /**
   * Access counters (UVM, Volta+; default off): remote accesses through mappings (system memory,
   * a peer's VRAM) are counted per region and a hot region is migrated to the accessing GPU by
   * {@link GpuSvm.startAccessCounterHandler} instead of by a fault. `true` = UVM's defaults
   * (2 MiB regions, threshold 256). See `access-counters.ts`.
   */
  readonly accessCounters?: boolean | AccessCounterOptions;
  /**
   * The "GPU VA = CPU VA + offset" scheme argued in the drm_gpuvm-across-devices thread (dri-devel,
   * January 2024): device PTEs of CPU address `va` live at `va + gpuVaOffset`, and a device fault
   * at GPU VA `g` is serviced for CPU address `g - gpuVaOffset` (every hmm call and notifier
   * callback translates). A multiple of 2 MiB (large PTEs keep their alignment); default 0 (shared
   * VA, as Linux's drivers do). Not combined with `xnack: false` or access counters.
   */
  readonly gpuVaOffset?: number;
}

/** Options of {@link GpuSvm.startFaultHandler}. */
export interface FaultHandlerOptions {
  /**
   * Replay policy: 'batch-flush' (UVM's default: flush the buffer's stale duplicates after each
   * batch, then one replay) or 'batch' (replay without flush). Default 'batch-flush'.
   */
  readonly replay?: 'batch-flush' | 'batch';
  /**
   * How the 'batch-flush' policy flushes (`fault_buffer_flush_locked`): 'ratio' (UVM: UPDATE_PUT
   * when the batch's duplicate faults exceed `updatePutRatio` % of the entries fetched, else
   * CACHED_PUT), 'update-put' or 'cached-put' always. Default 'ratio'.
   */
  readonly flushMode?: 'ratio' | FlushMode;
  /** UVM's `uvm_perf_fault_replay_update_put_ratio`, 0–100 (default 50). */
  readonly updatePutRatio?: number;
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
  /**
   * Device-private 2 MiB folios (MIGRATE_VMA_SELECT_COMPOUND, mm/migrate_device.c of Linux 6.19):
   * a 2 MiB-aligned block whose CPU side is a THP or empty migrates as one compound entry into
   * one wholly free VRAM chunk and is mapped by one PMD-level device-private entry; a CPU fault on
   * it migrates the 2 MiB back into a THP as one unit. Split only where the kernel splits (partial
   * munmap/mprotect/migration). Default false. Not with `shared` (ArgumentError).
   */
  readonly thp?: boolean;
  /** Picks what to evict when a pool is full (default {@link lruChunkEviction}: UVM's LRU chunk). */
  readonly eviction?: EvictionPolicy;
  /**
   * drm_pagemap's migration timeslice in ns (`timeslice_ms`; default 0): device pages a
   * migration fills stay at least this long. A CPU fault or a non-peer device's hmm fault on one
   * of them earlier does not migrate it back (`__drm_pagemap_migrate_to_ram` returns 0 before the
   * expiry and the fault is retried), so two agents cannot ping-pong a page faster than that.
   * xe asks for 5 ms on atomic faults. A finite number ≥ 0.
   */
  readonly timesliceNs?: number;
  /**
   * Device memory shared with other VMs of the same GPUs (set by `GpuVmDevice`, `vm.ts`): one pool
   * per device instead of a pool of this GpuSvm's own, the devices' pgmap owner, and this VM's tag
   * in the pools' reverse map. `bytes` and `peer` are then ignored.
   */
  readonly shared?: SharedDevmem;
}

/** Device memory several GpuSvms (one per GPU VM) share: see {@link DevmemOptions.shared}. */
export interface SharedDevmem {
  /** One pool per device of the GpuSvm, in device order. */
  readonly pools: readonly SvmDeviceMemory[];
  /** The pgmap owner of every pool (xe: the device; all its VMs share the drm_pagemap). */
  readonly owner: object;
  /** This VM's tag in the pools' reverse map (1..255). */
  readonly tag: number;
}

/** Counters of one GpuSvm (`svm.*`). */
export interface SvmCounters {
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
  /** CPU or remote faults on a device page told to retry because its migration timeslice runs. */
  timesliceRetries: Counter;
  /** Pages an explicit migration moved from a peer's VRAM directly (peer link, no system memory). */
  migrateD2dPages: Counter;
  migrateToRamPages: Counter;
  evictions: Counter;
  migrateFailures: Counter;
  thrashingPins: Counter;
  /** GPU atomics granted a device-exclusive page (ATOMIC_ACCESS.EXCLUSIVE, exclusive.ts). */
  exclusiveGrants: Counter;
  /** make_device_exclusive -EBUSY or read_retry failures in the exclusive atomic path. */
  exclusiveRetries: Counter;
  /** Evictions that found every victim busy (mid-migration) and waited for a migration to end. */
  evictBusyWaits: Counter;
  /** Migrations to VRAM that went on without the pages they needed (`svm.migrate.fallback`). */
  migrateFallbacks: Counter;
}

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
  /** @internal Use 64K/2M device PTEs where possible. */
  readonly largePages: boolean;
  /** @internal Fault for write when the VMA is writable ('vma') or only for write accesses. */
  readonly faultWrite: 'vma' | 'access';
  /** @internal Device page-table update mode. */
  readonly ptUpdate: 'ce' | 'bar0';
  /** @internal The deliberately broken driver (no read_retry), for oracle tests. */
  readonly broken: boolean;
  /** @internal When a GPU fault migrates to VRAM. */
  readonly migrateMode: 'fault' | 'preferred' | 'never';
  /** @internal Scratch page for copies. */
  readonly pageBuf = new Uint8Array(PAGE_SIZE);
  /** @internal Every range (live or waiting for the collector) in VA order. */
  readonly sorted: SvmRange[] = [];
  /** @internal The `svm.*` counters. */
  readonly c: SvmCounters;
  /** @internal Scratch walker of the CPU page table (map order, present pages). */
  readonly walk = new PageWalk();
  /** @internal The live ranges as the granule policies see them. */
  readonly existing: ExistingRanges;
  /** @internal Notifier sequence of the last hmm_range_fault of rangeGetPages. */
  lastGetPagesSeq = 0;
  /** @internal Scratch: the faulted-page mask of the block being serviced. */
  readonly batchMask = pageMaskNew();
  /** @internal Faults serviced per 2 MiB VA block (block index → count): UVM's per-block min_faults counter. */
  readonly blockFaults = new Map<number, number>();
  /** @internal End of the span the last `faultLocked` mapped (prefetch walks a span with it). */
  lastFaultEnd = 0;
  /** @internal Devices map each other's VRAM (one pagemap owner for all). */
  readonly peer: boolean;
  /** Device-private THP migration ({@link DevmemOptions.thp}). */
  readonly deviceThp: boolean;
  /** drm_pagemap migration timeslice (ns), see {@link DevmemOptions.timesliceNs}. */
  readonly timesliceNs: number;
  /** @internal Scratch: the union of in-flight migration masks. */
  readonly unionMask = pageMaskNew();
  /** @internal Migrations of ours in flight: span and page mask, read by the MIGRATE invalidation. */
  readonly migrating: { start: number; end: number; pages: PageMask | null }[] = [];
  /** Access-counter state, or null when the option is off. */
  readonly accessCounters: AccessCounters | null;
  /** GPU VA − CPU VA of every device mapping (the `gpuVaOffset` option; 0: shared VA). */
  readonly gpuVaOffset: number;
  /** @internal This VM's tag in shared device memory (0: the pools are this GpuSvm's own). */
  readonly poolTag: number;
  /**
   * @internal Set by a GPU VM (`vm.ts`): the CPU-address-mirror span holding `va`, or null where
   * the VM has no mirror (a buffer object is bound there, or nothing). Ranges never leave it (xe
   * passes the mirror VMA's bounds to drm_gpusvm_range_find_or_insert). Null: everything is mirrored.
   */
  mirrorSpan: ((va: number) => { readonly start: number; readonly end: number } | null) | null = null;
  /** XNACK-off state (granted VA per device, killed queues, exceptions); null with XNACK on. */
  noRetry: NoRetryState | null;
  /** @internal Memory exceptions delivered, oldest first. */
  readonly exceptions: MemoryException[] = [];
  /** @internal Listeners of memory exceptions. */
  readonly exceptionListeners: MemoryExceptionListener[] = [];

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
    const off = opts.gpuVaOffset ?? 0;
    if (!Number.isSafeInteger(off) || off < 0 || off % 0x200000 !== 0) {
      throw new ArgumentError(fn, 'gpuVaOffset', 'must be a non-negative multiple of 2 MiB', off);
    }
    if (off !== 0 && ((opts.xnack ?? true) === false || (opts.accessCounters ?? false) !== false)) {
      throw new ArgumentError(fn, 'gpuVaOffset', 'is not modelled with xnack off or access counters', off);
    }
    if (devices.some((d) => mmEnd + off > 2 ** d.format.vaBits)) {
      throw new ArgumentError(fn, 'gpuVaOffset', 'mmEnd + offset must fit every device’s VA bits', off);
    }
    this.gpuVaOffset = off;
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
      timesliceRetries: k.counter('svm.migrate.timesliceRetries'),
      migrateD2dPages: k.counter('svm.migrate.d2d.pages'),
      migrateToRamPages: k.counter('svm.migrate.toRam.pages'),
      evictions: k.counter('svm.evictions'),
      migrateFailures: k.counter('svm.migrate.failures'),
      thrashingPins: k.counter('svm.thrashing.pins'),
      exclusiveGrants: k.counter('svm.exclusive.grants'),
      exclusiveRetries: k.counter('svm.exclusive.retries'),
      evictBusyWaits: k.counter('svm.evict.busyWaits'),
      migrateFallbacks: k.counter('svm.migrate.fallbacks'),
    };
    this.noRetry = (opts.xnack ?? true) ? null : new NoRetryState(devices.length);
    const ac = opts.accessCounters ?? false;
    this.accessCounters = ac === false ? null : new AccessCounters(this, ac === true ? {} : ac);
    const th = opts.thrashing ?? false;
    this.thrashing = th === false ? null : new ThrashingDetector(th === true ? {} : th);
    const dm = opts.devmem;
    this.migrateMode = dm?.migrate ?? 'fault';
    const peer = dm?.peer ?? false;
    this.peer = peer;
    const ts = dm?.timesliceNs ?? 0;
    if (typeof ts !== 'number' || !Number.isFinite(ts) || ts < 0) {
      throw new ArgumentError(fn, 'devmem.timesliceNs', 'must be a finite number ≥ 0', ts);
    }
    this.timesliceNs = ts;
    this.eviction = dm?.eviction ?? lruChunkEviction();
    const sh = dm?.shared;
    if (dm?.thp !== undefined && typeof dm.thp !== 'boolean') {
      throw new ArgumentError(fn, 'devmem.thp', 'must be a boolean', dm.thp);
    }
    if (dm?.thp === true && sh !== undefined) {
      throw new ArgumentError(fn, 'devmem.thp', 'is not modelled for a pool shared by several VMs', dm.thp);
    }
    this.deviceThp = dm?.thp ?? false;
    this.owners = devices.map(() => sh?.owner ?? (peer ? this.owner : {}));
    this.poolTag = sh?.tag ?? 0;
    if (sh !== undefined) {
      if (sh.pools.length !== devices.length || !Number.isInteger(sh.tag) || sh.tag < 1 || sh.tag > 255) {
        throw new ArgumentError(fn, 'devmem.shared', 'needs one pool per device and a tag in 1..255', sh.tag);
      }
      this.devmem = sh.pools;
    } else if (dm !== undefined) {
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
            migrateToRam(this, vmf),
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
    this.attrs.onChange((start, end) => attrsChanged(this, start, end));
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
   * Models xe_svm_handle_pagefault(): services one GPU fault of device `devIndex` at GPU VA `va`
   * (the CPU address plus {@link gpuVaOffset}).
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
    return handleFaultIn(this, devIndex, va - this.gpuVaOffset, access, null, 0);
  }

  /** Index of the device whose SVM memory holds `pfn`, or -1 (system memory). */
  devmemIndexOf(pfn: number): number {
    for (let e = 0; e < this.devmem.length; e++) if (this.devmem[e]!.contains(pfn)) return e;
    return -1;
  }

  // ---------------------------------------------------------------------------- invalidation

  /** Runs the garbage collector (takes the SVM lock). */
  async garbageCollect(): Promise<void> {
    await this.lock.lock();
    try {
      await garbageCollectLocked(this);
    } finally {
      this.lock.unlock();
    }
  }

  /** Removes every range (driver teardown, `drm_gpusvm_fini`). */
  async fini(): Promise<void> {
    await this.lock.lock();
    try {
      for (const r of [...this.sorted]) await rangeRemove(this, r);
      this.gcList.length = 0;
      this.blockFaults.clear();
    } finally {
      this.lock.unlock();
    }
  }

  // ---------------------------------------------------------------------------- migration

  // ---------------------------------------------------------------------------- fault loop

  // ---------------------------------------------------------------------------- bookkeeping

  /** Models drm_gpusvm_range_find_or_insert(); see {@link rangeFindOrInsert}. */
  rangeFindOrInsert(
    devIndex: number,
    va: number,
    access: number,
    faulted: PageMask | null = null,
    faultMigrations = 0,
  ): Promise<FoundRange | number> {
    return rangeFindOrInsert(this, devIndex, va, access, faulted, faultMigrations);
  }

  /** Migrates `[fs, fe)` (the pages of `pages`) to device `devIndex`'s VRAM; see {@link migrateToDevice}. */
  migrateToDevice(
    devIndex: number,
    fs: number,
    fe: number,
    pages: PageMask | null = null,
    record = false,
  ): Promise<number> {
    return migrateToDevice(this, devIndex, fs, fe, pages, record);
  }

  /** Evicts one VRAM chunk (or the pages of `pages`) to system memory; see {@link evictChunk}. */
  evictChunk(devIndex: number, chunk: number, pages: PageMask | null = null): Promise<number> {
    return evictChunk(this, devIndex, chunk, pages);
  }

  /** Explicit prefetch (KFD/xe PREFETCH_LOC, UVM migrate) that also maps; see {@link prefetch}. */
  prefetch(start: number, end: number, loc: number): Promise<number> {
    return prefetch(this, start, end, loc);
  }

  // ---------------------------------------------------------------------------- KFD attributes

  /**
   * Models amdkfd's SET_ATTR (svm_range_set_attr): -EFAULT unless every page of `[start, end)` is
   * mapped by the CPU (nothing changed); applies `update`; flag changes (GPU_RO) remap at once; a
   * `prefetchLoc` migrates and maps; with XNACK off maps on the accessed-by devices. See `kfd-attr.ts`.
   */
  setAttr(start: number, end: number, update: AttrUpdate): Promise<number> {
    return setAttr(this, start, end, update);
  }

  /** Models amdkfd's GET_ATTR (svm_range_get_attr): every attribute of `[start, end)`, or -EFAULT. */
  getAttr(start: number, end: number): Promise<SvmAttrReport | number> {
    return getAttr(this, start, end);
  }

  // ---------------------------------------------------------------------------- XNACK off

  /** Whether GPU faults are retryable (KFD's XNACK mode; the `xnack` option). */
  get xnack(): boolean {
    return this.noRetry === null;
  }

  /**
   * Models kfd_ioctl_set_xnack_mode(): switches retryable faults on or off. Refused with -EBUSY
   * while a kernel runs on any device (KFD: while the process has queues). Switching off starts
   * with nothing granted: what kernels touch must be prefetched afterwards. Returns 0 or -EBUSY.
   */
  setXnack(enable: boolean): number {
    if (typeof enable !== 'boolean')
      throw new ArgumentError('GpuSvm.setXnack', 'enable', 'must be a boolean', enable);
    if (this.devices.some((d) => d.engine.busy)) return -Errno.EBUSY;
    if (enable) this.noRetry = null;
    else this.noRetry ??= new NoRetryState(this.devices.length);
    return 0;
  }

  /**
   * Registers a listener of memory exceptions (fatal faults with XNACK off); returns the
   * function that removes it. With XNACK on no fault is fatal, so none is delivered.
   */
  onMemoryException(listener: MemoryExceptionListener): () => void {
    const ls = this.exceptionListeners;
    ls.push(listener);
    return () => {
      const k = ls.indexOf(listener);
      if (k >= 0) ls.splice(k, 1);
    };
  }

  /**
   * The next memory exception of device `devIndex` (hsaKmtWaitOnEvent on an HSA_EVENTTYPE_MEMORY
   * event). With XNACK on the promise never settles, as no fault is fatal.
   */
  nextMemoryException(devIndex: number): Promise<MemoryException> {
    checkDevice(this, 'GpuSvm.nextMemoryException', devIndex);
    return new Promise((resolve) => {
      const off = this.onMemoryException((e) => {
        if (e.devIndex !== devIndex) return;
        off();
        resolve(e);
      });
    });
  }

  /** Memory exceptions delivered so far (empty with XNACK on). */
  get memoryExceptions(): readonly MemoryException[] {
    return this.exceptions;
  }

  /** Whether device `devIndex`'s queue was killed by a fatal fault (always false with XNACK on). */
  queueKilled(devIndex: number): boolean {
    checkDevice(this, 'GpuSvm.queueKilled', devIndex);
    return this.noRetry?.killed[devIndex] === 1;
  }

  /**
   * A new queue on device `devIndex` after a kill (KFD: the process destroys and recreates its
   * queues). Its mappings were torn down: what it touches must be prefetched again, or the
   * granted pages are revalidated on their first fault.
   */
  resetQueue(devIndex: number): void {
    checkDevice(this, 'GpuSvm.resetQueue', devIndex);
    if (this.noRetry !== null) this.noRetry.killed[devIndex] = 0;
  }

  /**
   * Spawns device `devIndex`'s access-counter handler (needs the `accessCounters` option and
   * device memory); see {@link startAccessCounterHandler}. `runKernel` starts it when enabled.
   */
  startAccessCounterHandler(devIndex: number, stop: () => boolean): Task {
    return startAccessCounterHandler(this, devIndex, stop);
  }

  /** Spawns device `devIndex`'s replayable fault handler task; see {@link startFaultHandler}. */
  startFaultHandler(devIndex: number, stop: () => boolean, opts: FaultHandlerOptions = {}): Task {
    return startFaultHandler(this, devIndex, stop, opts);
  }

  /** Models service_fault_batch(); see {@link serviceFaultBatch}. */
  serviceFaultBatch(devIndex: number, batch: FaultBatch): Promise<number> {
    return serviceFaultBatch(this, devIndex, batch);
  }
}
