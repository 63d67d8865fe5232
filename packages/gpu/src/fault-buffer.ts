/**
 * The replayable fault buffer (`uvm_gpu_replayable_faults.c`): a ring the GPU writes fault
 * entries into (PUT) and the driver reads from (GET). The driver waits for faults, fetches a
 * batch of up to `faultBatchMax` entries with duplicate coalescing (same 4K page and instance:
 * the duplicate is merged into the earlier entry, keeping the most intrusive access type),
 * sorts it by (instance, address, access type with the most intrusive first), services it,
 * then replays (stalled warps retry) or cancels (the faulting warps fail: "GPU SIGSEGV").
 *
 * @module
 */
import { ArgumentError, type Counter, modPow2, type Sim, WaitQueue } from '@hmmkit/sim';

/** Access types, numbered by intrusiveness (atomic > write > read > prefetch). */
export const ACCESS = { PREFETCH: 0, READ: 1, WRITE: 2, ATOMIC: 3 } as const;
/** One of the {@link ACCESS} values. */
export type AccessType = (typeof ACCESS)[keyof typeof ACCESS];
/** Names of {@link ACCESS} values by value. */
export const ACCESS_NAMES = ['PREFETCH', 'READ', 'WRITE', 'ATOMIC'] as const;

declare module '@hmmkit/sim' {
  interface TraceEvents {
    /** A GPU access faulted: page VA, access type, instance. */
    'gpu.fault': [va: number, access: number, instance: number];
    /** The driver replayed faults (generation number). */
    'gpu.replay': [generation: number];
    /** The driver cancelled faults on a page: page VA, instance, warps failed. */
    'gpu.cancel': [va: number, instance: number, warps: number];
  }
}

/** What a fault buffer notifies when the driver replays or cancels (the execution engine). */
export interface FaultTarget {
  /** Stalled warps retry their access. */
  onReplay(): void;
  /** Warps stalled on the 4K page `va` of `instance` fail. Returns how many. */
  onCancel(va: number, instance: number): number;
}

/** A batch of fetched faults (reused across fetches; typed arrays, no per-fault objects). */
export class FaultBatch {
  readonly capacity: number;
  /** Unique entries in the batch. */
  count = 0;
  /** Duplicates merged into earlier entries while fetching this batch. */
  duplicates = 0;
  /** 4K-aligned fault address. */
  readonly va: Float64Array;
  readonly access: Uint8Array;
  /** uTLB / client id of the first fault of the entry. */
  readonly client: Uint16Array;
  readonly timestamp: Float64Array;
  readonly instance: Int32Array;
  /** Duplicates merged into each entry. */
  readonly dups: Int32Array;
  /** Entry indices in service order after {@link sort} (identity before). */
  readonly order: Int32Array;
  private readonly hash: Int32Array;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new ArgumentError('FaultBatch', 'capacity', 'must be a positive integer', capacity);
    }
    this.capacity = capacity;
    this.va = new Float64Array(capacity);
    this.access = new Uint8Array(capacity);
    this.client = new Uint16Array(capacity);
    this.timestamp = new Float64Array(capacity);
    this.instance = new Int32Array(capacity);
    this.dups = new Int32Array(capacity);
    this.order = new Int32Array(capacity);
    let h = 2;
    while (h < capacity * 2) h *= 2;
    this.hash = new Int32Array(h);
  }

  /** @internal Empties the batch. */
  reset(): void {
    this.count = 0;
    this.duplicates = 0;
    this.hash.fill(0);
  }

  /** @internal Adds a fault, merging it into an earlier entry of the same page and instance. */
  add(va: number, access: number, client: number, ts: number, instance: number): boolean {
    const page = Math.floor(va / 4096);
    const mask = this.hash.length - 1;
    let h =
      (Math.imul(modPow2(page, 1073741824) | 0, 0x9e3779b1) ^
        Math.imul(instance, 0x85ebca6b) ^
        Math.floor(page / 1073741824)) &
      mask;
    const pva = page * 4096;
    for (;;) {
      const e = this.hash[h]!;
      if (e === 0) break;
      const i = e - 1;
      if (this.va[i] === pva && this.instance[i] === instance) {
        if (access > this.access[i]!) this.access[i] = access;
        this.dups[i]!++;
        this.duplicates++;
        return false;
      }
      h = (h + 1) & mask;
    }
    const i = this.count++;
    this.hash[h] = i + 1;
    this.va[i] = pva;
    this.access[i] = access;
    this.client[i] = client;
    this.timestamp[i] = ts;
    this.instance[i] = instance;
    this.dups[i] = 0;
    this.order[i] = i;
    return true;
  }

  /**
   * Sorts {@link order} by (instance, address, access type most intrusive first), as UVM's
   * preprocess step does, so one VA block's faults are adjacent.
   */
  sort(): void {
    const o = this.order.subarray(0, this.count);
    const va = this.va;
    const inst = this.instance;
    const acc = this.access;
    o.sort((a, b) => inst[a]! - inst[b]! || va[a]! - va[b]! || acc[b]! - acc[a]!);
  }
}

/** How {@link FaultBuffer.flush} finds the end of what it drops (UVM's `uvm_gpu_buffer_flush_mode_t`). */
export type FlushMode = 'update-put' | 'cached-put';

/** Options of a {@link FaultBuffer}. */
export interface FaultBufferOptions {
  /** Ring entries (default 8192: an estimate; RM sizes it per chip). */
  readonly capacity?: number;
  /** Counter name prefix (default 'gpu'). */
  readonly counterPrefix?: string;
}

/** The replayable fault buffer of one device. */
export class FaultBuffer {
  readonly sim: Sim;
  readonly capacity: number;
  private readonly rVa: Float64Array;
  private readonly rAccess: Uint8Array;
  private readonly rClient: Uint16Array;
  private readonly rTs: Float64Array;
  private readonly rInstance: Int32Array;
  private get_ = 0;
  private count_ = 0;
  /**
   * Entries from GET up to the driver's cached PUT (UVM `cached_put`): the PUT pointer is read
   * only when GET has caught up with it, so entries written after that read are neither fetched
   * nor dropped by a CACHED_PUT flush until the next read.
   */
  private known_ = 0;
  /** The driver's bottom half waits here for faults (woken by each new fault and by {@link kick}). */
  readonly waitQueue: WaitQueue;
  private target: FaultTarget | null = null;
  private interrupt: (() => void) | null = null;
  /** Replays issued so far. */
  replayGeneration = 0;
  readonly raised: Counter;
  readonly overflows: Counter;
  readonly fetched: Counter;
  readonly duplicates: Counter;
  readonly batches: Counter;
  readonly replays: Counter;
  readonly cancels: Counter;

  constructor(sim: Sim, options: FaultBufferOptions = {}) {
    const cap = options.capacity ?? 8192;
    if (!Number.isInteger(cap) || cap < 1)
      throw new ArgumentError('FaultBuffer', 'options.capacity', 'must be a positive integer', cap);
    this.sim = sim;
    this.capacity = cap;
    this.rVa = new Float64Array(cap);
    this.rAccess = new Uint8Array(cap);
    this.rClient = new Uint16Array(cap);
    this.rTs = new Float64Array(cap);
    this.rInstance = new Int32Array(cap);
    this.waitQueue = new WaitQueue(sim.sched);
    const c = sim.counters;
    const px = options.counterPrefix ?? 'gpu';
    this.raised = c.counter(`${px}.fault.raised`);
    this.overflows = c.counter(`${px}.fault.overflow`);
    this.fetched = c.counter(`${px}.fault.fetched`);
    this.duplicates = c.counter(`${px}.fault.duplicates`);
    this.batches = c.counter(`${px}.fault.batches`);
    this.replays = c.counter(`${px}.fault.replays`);
    this.cancels = c.counter(`${px}.fault.cancels`);
  }

  /** Entries waiting in the ring. */
  get pending(): number {
    return this.count_;
  }

  /** Connects the engine that replay and cancel act on. */
  attach(target: FaultTarget): void {
    this.target = target;
  }

  /**
   * GPU side: writes a fault entry. Returns false (and counts an overflow) when the ring is
   * full: the fault is dropped, the warp stays stalled and faults again after the next replay.
   */
  push(
    va: number,
    access: AccessType,
    client: number,
    instance: number,
    timestamp: number = this.sim.now,
  ): boolean {
    this.raised.value++;
    if (this.sim.trace.wants('gpu.fault')) this.sim.trace.emit('gpu.fault', va, access, instance);
    if (this.count_ === this.capacity) {
      this.overflows.value++;
      return false;
    }
    const i = (this.get_ + this.count_) % this.capacity;
    this.rVa[i] = va;
    this.rAccess[i] = access;
    this.rClient[i] = client;
    this.rTs[i] = timestamp;
    this.rInstance[i] = instance;
    this.count_++;
    this.waitQueue.wakeUpAll();
    if (this.count_ === 1 && this.interrupt !== null) this.interrupt();
    return true;
  }

  /**
   * Registers a callback run when the ring goes from empty to non-empty (the replayable-fault
   * interrupt), for drivers that are not scheduler tasks; null removes it. The callback must
   * not block; a task-based driver uses {@link waitForFaults} instead.
   */
  setInterruptHandler(fn: (() => void) | null): void {
    this.interrupt = fn;
  }

  /** Wakes the waiters so they re-check their stop condition (e.g. the kernel finished). */
  kick(): void {
    this.waitQueue.wakeUpAll();
  }

  /**
   * Driver side: waits until the buffer has an entry (returns true) or `stop()` holds with an
   * empty buffer (returns false). Then waits out the far-fault latency: the bottom half starts
   * `gpuFarFaultBaseNs` after the oldest pending fault was raised.
   */
  async waitForFaults(stop: () => boolean = () => false): Promise<boolean> {
    await this.waitQueue.waitEvent(() => this.count_ > 0 || stop());
    if (this.count_ === 0) return false;
    const ready = this.rTs[this.get_]! + this.sim.costs.gpuFarFaultBaseNs;
    const now = this.sim.now;
    if (ready > now) await this.sim.sched.sleep(ready - now);
    return true;
  }

  /**
   * Models fetch_fault_buffer_entries(): moves up to `max` entries (default `faultBatchMax`,
   * at most the batch capacity) from the ring into `batch`, coalescing duplicates. Like UVM it
   * reads the hardware PUT only when GET has reached the cached PUT, and fetches no further than
   * the cached PUT. Returns the number of unique entries. Charges nothing; the driver charges
   * `faultBatchFixedNs`.
   */
  fetch(batch: FaultBatch, max: number = this.sim.costs.faultBatchMax): number {
    if (!Number.isInteger(max) || max < 1)
      throw new ArgumentError('FaultBuffer.fetch', 'max', 'must be a positive integer', max);
    batch.reset();
    const n = Math.min(max, batch.capacity);
    if (this.known_ === 0) this.known_ = this.count_; // read_put()
    let taken = 0;
    while (this.known_ > 0 && taken < n) {
      const i = this.get_;
      batch.add(this.rVa[i]!, this.rAccess[i]!, this.rClient[i]!, this.rTs[i]!, this.rInstance[i]!);
      this.get_ = (i + 1) % this.capacity;
      this.count_--;
      this.known_--;
      taken++;
    }
    this.fetched.add(taken);
    this.duplicates.add(batch.duplicates);
    if (taken > 0) this.batches.value++;
    return batch.count;
  }

  /**
   * Models fault_buffer_flush_locked() before a replay: drops pending entries, whose warps fault
   * again after the replay. `'update-put'` (UVM_GPU_BUFFER_FLUSH_MODE_UPDATE_PUT, the default)
   * re-reads PUT and drops every entry written so far; `'cached-put'` drops only the entries up to
   * the PUT cached at the last fetch, keeping those written since (the next fetch takes them).
   * Returns how many entries were dropped.
   */
  flush(mode: FlushMode = 'update-put'): number {
    if (mode !== 'update-put' && mode !== 'cached-put') {
      throw new ArgumentError('FaultBuffer.flush', 'mode', "must be 'update-put' or 'cached-put'", mode);
    }
    const n = mode === 'update-put' ? this.count_ : this.known_;
    this.get_ = (this.get_ + n) % this.capacity;
    this.count_ -= n;
    this.known_ = 0;
    return n;
  }

  /** Replays: every stalled warp retries its access. */
  replay(): void {
    this.replayGeneration++;
    this.replays.value++;
    if (this.sim.trace.wants('gpu.replay')) this.sim.trace.emit('gpu.replay', this.replayGeneration);
    this.target?.onReplay();
  }

  /**
   * Cancels the faults on the 4K page of `va` in `instance`: the warps stalled there fail
   * ("GPU SIGSEGV"). Returns the number of warps failed. A replay is still needed for the rest.
   */
  cancel(va: number, instance: number): number {
    if (!Number.isSafeInteger(va) || va < 0)
      throw new ArgumentError('FaultBuffer.cancel', 'va', 'must be an address', va);
    const n = this.target === null ? 0 : this.target.onCancel(Math.floor(va / 4096) * 4096, instance);
    this.cancels.value++;
    if (this.sim.trace.wants('gpu.cancel')) this.sim.trace.emit('gpu.cancel', va, instance, n);
    return n;
  }
}
