/**
 * The execution engine: runs the access streams of many warps in flight through
 * TLB → page walk → fault. One access per running warp per pass (round robin); a TLB hit costs
 * `gpuTlbHitNs` (plus `gpuSysAccessNs` / `gpuPeerAccessNs` when the page is served from system
 * memory or a peer's VRAM), a miss adds `gpuPageWalkNs`; a failed walk writes a fault entry and stalls the
 * warp until the driver replays (or cancels it). The fault clients (SMs / uTLBs) run in parallel:
 * within a pass each client's accesses are issued one after another, and the pass takes as long as
 * the busiest client (before issue 11 every warp's access was added to one serial clock, so a pass
 * of 2,560 missing warps took 256 µs and a fault "round" trickled into the buffer over that time
 * instead of arriving within a few µs). Time is accumulated locally and slept in
 * quanta of `quantumNs`, so a driver task runs concurrently in virtual time on the
 * deterministic scheduler; when every live warp is stalled the engine blocks on a wait queue
 * that {@link FaultBuffer.replay} wakes.
 *
 * @module
 */
import { ArgumentError, modPow2, type Sim, StateError, WaitQueue } from '@hmmkit/sim';
import { ACCESS, type AccessType, type FaultBuffer, type FaultTarget } from './fault-buffer.ts';
import { APERTURE, type Aperture } from './format.ts';
import { type PageTable, Translation, WALK } from './page-table.ts';
import { TLB_FLAG, type Tlb } from './tlb.ts';

declare module '@hmmkit/sim' {
  interface TraceEvents {
    /**
     * A GPU access is about to move data: engine, VA, ACCESS type, the translation it uses (aperture,
     * pa of `va`, peer), and its data word (the value a WRITE stores or an ATOMIC adds; -1 without data).
     */
    'gpu.access': [
      engine: GpuEngine,
      va: number,
      access: number,
      aperture: number,
      pa: number,
      peer: number,
      data: number,
    ];
  }
}

/** The access streams of a kernel: warp w runs accesses `warpStart[w] .. warpStart[w+1]-1`. */
export interface AccessStreams {
  /** Virtual address of each access. */
  readonly vas: Float64Array;
  /** ACCESS type of each access. */
  readonly access: Uint8Array;
  /** Offsets of each warp's accesses; length = warps + 1. */
  readonly warpStart: Int32Array;
  /**
   * Optional data: a 32-bit word per access (every access 4-byte aligned). A WRITE stores it; a
   * READ loads into it; an ATOMIC adds it and leaves the old value in it (atomicAdd). Needs a
   * {@link MemoryPort} on the engine. Without `data` accesses only translate (the fast path).
   */
  readonly data?: Uint32Array;
}

/** Where the engine's data accesses go, by aperture (a device wires VID to its VRAM). */
export interface MemoryPort {
  /** Little-endian 32-bit load at physical `pa` of `aperture` (`peerId` for PEER). */
  read32(aperture: Aperture, pa: number, peerId: number): number;
  /** Little-endian 32-bit store. */
  write32(aperture: Aperture, pa: number, value: number, peerId: number): void;
}

/**
 * Builds {@link AccessStreams} from per-warp lists (cold helper for tests and examples). An
 * access with a third element (a 32-bit value) makes the streams carry `data`.
 */
export function makeStreams(
  warps: readonly (readonly (readonly [va: number, access: AccessType, value?: number])[])[],
): AccessStreams {
  let n = 0;
  let withData = false;
  for (const w of warps) {
    n += w.length;
    for (const a of w) if (a[2] !== undefined) withData = true;
  }
  const vas = new Float64Array(n);
  const access = new Uint8Array(n);
  const data = withData ? new Uint32Array(n) : null;
  const warpStart = new Int32Array(warps.length + 1);
  let i = 0;
  warps.forEach((w, k) => {
    warpStart[k] = i;
    for (const [va, a, v] of w) {
      vas[i] = va;
      access[i] = a;
      if (data !== null) data[i] = v ?? 0;
      i++;
    }
  });
  warpStart[warps.length] = i;
  return data === null ? { vas, access, warpStart } : { vas, access, warpStart, data };
}

/** Warp states. */
export const WARP = { RUNNING: 0, STALLED: 1, DONE: 2, FAILED: 3 } as const;

/** Outcome of a kernel run. */
export interface KernelResult {
  readonly warps: number;
  readonly completed: number;
  /** Warps cancelled by the driver ("GPU SIGSEGV"). */
  readonly failed: number;
  /** Accesses that completed. */
  readonly accesses: number;
  readonly tlbHits: number;
  readonly walks: number;
  /** Fault entries written to the fault buffer. */
  readonly faults: number;
  /** Misses merged into a fault already in flight from the same uTLB (no new entry). */
  readonly coalescedInUtlb: number;
  /** Virtual ns from start to end. */
  readonly elapsedNs: number;
}

/** Options of a {@link GpuEngine}. */
export interface EngineOptions {
  /** Accumulated ns after which the engine sleeps (yields to the scheduler). Default 20 µs. */
  readonly quantumNs?: number;
  /** uTLBs: by default a warp's fault client is warp % uTlbs (see RunOptions.warpClient). Default 16. */
  readonly uTlbs?: number;
  /**
   * Whether a fault client (SM / uTLB) that raised a fault stops issuing new accesses until the
   * replay; accesses its warps issued in the same pass are in flight and still complete or fault.
   * Models NVIDIA's replay unit (US patent application 2014/0281263, "Replaying memory
   * transactions while resolving memory access faults": on a page fault the SM, not the
   * unaffected SMs, ceases issuing new memory transactions; the faulting and faulting in-flight
   * transactions wait in a replay buffer). Default false (warps of a faulted client that hit keep
   * running ahead): one engine pass is a crude stand-in for "in flight", and docs/calibration.md
   * shows the stall does not change the tree-vs-4K ratio on streaming (3.2× → 3.7×) while it moves
   * the per-batch fit of target (a); measure both with it.
   */
  readonly stallClientOnFault?: boolean;
}

/** Options of one kernel run. */
export interface RunOptions {
  /** Instance (channel / VA space) the kernel runs in; recorded in fault entries. Default 0. */
  readonly instance?: number;
  /**
   * The uTLB (fault client) of each warp, e.g. derived from its SM; default `warp % uTlbs`.
   * A uTLB holds one outstanding miss per page: warps of the same uTLB missing a page that
   * already has a fault in flight stall on it without writing a second fault entry, as real
   * uTLBs coalesce their miss queue. Faults from different uTLBs are the duplicates the driver
   * sees (Allen & Ge: 75–92 % of a batch).
   */
  readonly warpClient?: Uint16Array;
}

/** Mutable state of the kernel being run. */
interface KernelState {
  readonly vas: Float64Array;
  readonly access: Uint8Array;
  readonly data: Uint32Array | null;
  readonly warpStart: Int32Array;
  readonly instance: number;
  readonly cursor: Int32Array;
  readonly state: Uint8Array;
  seenGen: number;
  /** uTLB of each warp. */
  readonly client: Uint16Array;
  /** Per uTLB: page → most intrusive access with a fault in flight since the last replay. */
  readonly inFlight: Map<number, number>[];
  /** Per client: 1 once it raised a fault in an earlier pass (no new accesses until replay). */
  readonly clientStalled: Uint8Array;
  /** Per client: 1 if it raised (or joined) a fault in the current pass. */
  readonly clientFaulted: Uint8Array;
  readonly stallClient: boolean;
  /** Per client: ns of work issued in the current pass (clients run in parallel). */
  readonly clientNs: Float64Array;
  /** Work done since the last sleep (ns). */
  local: number;
  accesses: number;
  hits: number;
  walks: number;
  faults: number;
  coalesced: number;
}

/** The execution engine of one device. See the module comment. */
export class GpuEngine implements FaultTarget {
  readonly sim: Sim;
  readonly pageTable: PageTable;
  readonly tlb: Tlb;
  readonly faultBuffer: FaultBuffer;
  readonly quantumNs: number;
  readonly uTlbs: number;
  /** See {@link EngineOptions.stallClientOnFault}; may be changed between kernels. */
  stallClientOnFault: boolean;
  /** Woken by replay and cancel. */
  readonly waitQueue: WaitQueue;
  private running = false;
  private memory: MemoryPort | null = null;
  private replayGen = 0;
  private state: Uint8Array = new Uint8Array(0);
  private faultPage: Float64Array = new Float64Array(0);
  private instance = 0;
  private readonly tr = new Translation();
  /** Per APERTURE value: cost added to an access served through it (filled from the cost model per slice). */
  private readonly apertureNs = new Float64Array(4);
  /** True while a kernel runs. */
  get busy(): boolean {
    return this.running;
  }

  constructor(
    sim: Sim,
    pageTable: PageTable,
    tlb: Tlb,
    faultBuffer: FaultBuffer,
    options: EngineOptions = {},
  ) {
    this.sim = sim;
    this.pageTable = pageTable;
    this.tlb = tlb;
    this.faultBuffer = faultBuffer;
    this.quantumNs = options.quantumNs ?? 20_000;
    this.uTlbs = options.uTlbs ?? 16;
    this.stallClientOnFault = options.stallClientOnFault ?? false;
    if (!(this.quantumNs > 0))
      throw new ArgumentError('GpuEngine', 'options.quantumNs', 'must be positive', this.quantumNs);
    if (!Number.isInteger(this.uTlbs) || this.uTlbs < 1 || this.uTlbs > 65535) {
      throw new ArgumentError('GpuEngine', 'options.uTlbs', 'must be an integer in [1, 65535]', this.uTlbs);
    }
    this.waitQueue = new WaitQueue(sim.sched);
    faultBuffer.attach(this);
  }

  /** @internal FaultTarget: the driver replayed. */
  onReplay(): void {
    this.replayGen++;
    this.waitQueue.wakeUpAll();
  }

  /** @internal FaultTarget: fail the warps stalled on `va` (4K page) of `instance`. */
  onCancel(va: number, instance: number): number {
    if (!this.running || instance !== this.instance) return 0;
    let n = 0;
    for (let w = 0; w < this.state.length; w++) {
      if (this.state[w] === WARP.STALLED && this.faultPage[w] === va) {
        this.state[w] = WARP.FAILED;
        n++;
      }
    }
    this.waitQueue.wakeUpAll();
    return n;
  }

  /** State of warp `w` of the running (or last) kernel (a WARP value). */
  warpState(w: number): number {
    return this.state[w] ?? -1;
  }

  /**
   * Runs a kernel's access streams to completion (every warp done or failed). Spawn it as a
   * scheduler task next to a driver task that services the fault buffer; the fault buffer is
   * kicked at the end so a driver waiting with a stop condition can exit.
   */
  async run(streams: AccessStreams, options: RunOptions = {}): Promise<KernelResult> {
    if (this.running) throw new StateError('GpuEngine.run', 'a kernel is already running');
    const warps = streams.warpStart.length - 1;
    if (
      warps < 0 ||
      streams.warpStart[warps] !== streams.vas.length ||
      streams.access.length !== streams.vas.length
    ) {
      throw new ArgumentError(
        'GpuEngine.run',
        'streams',
        'warpStart must end at vas.length and access match vas',
        warps,
      );
    }
    for (let i = 0; i < streams.access.length; i++) {
      if (streams.access[i]! > ACCESS.ATOMIC)
        throw new ArgumentError(
          'GpuEngine.run',
          `streams.access[${i}]`,
          'must be an ACCESS value',
          streams.access[i],
        );
    }
    const data = streams.data ?? null;
    if (data !== null) {
      if (data.length !== streams.vas.length) {
        throw new ArgumentError(
          'GpuEngine.run',
          'streams.data',
          'must have one word per access',
          data.length,
        );
      }
      if (this.memory === null) {
        throw new StateError(
          'GpuEngine.run',
          'streams carry data but no MemoryPort is attached (setMemoryPort)',
        );
      }
      for (let i = 0; i < streams.vas.length; i++) {
        if (modPow2(streams.vas[i]!, 4) !== 0) {
          throw new ArgumentError(
            'GpuEngine.run',
            `streams.vas[${i}]`,
            'must be 4-byte aligned when data is given',
            streams.vas[i],
          );
        }
      }
    }
    const instance = options.instance ?? 0;
    const warpStart = streams.warpStart;
    const client = options.warpClient ?? Uint16Array.from({ length: warps }, (_, w) => w % this.uTlbs);
    if (client.length !== warps) {
      throw new ArgumentError(
        'GpuEngine.run',
        'options.warpClient',
        'must have one entry per warp',
        client.length,
      );
    }
    let clients = 0;
    for (let w = 0; w < warps; w++) if (client[w]! + 1 > clients) clients = client[w]! + 1;
    const k: KernelState = {
      vas: streams.vas,
      access: streams.access,
      data,
      warpStart,
      instance,
      cursor: Int32Array.from(warpStart.subarray(0, warps)),
      state: new Uint8Array(warps),
      seenGen: this.replayGen,
      client,
      inFlight: Array.from({ length: clients }, () => new Map<number, number>()),
      clientStalled: new Uint8Array(clients),
      clientFaulted: new Uint8Array(clients),
      stallClient: this.stallClientOnFault,
      clientNs: new Float64Array(clients),
      local: 0,
      accesses: 0,
      hits: 0,
      walks: 0,
      faults: 0,
      coalesced: 0,
    };
    for (let w = 0; w < warps; w++) if (warpStart[w] === warpStart[w + 1]) k.state[w] = WARP.DONE;
    this.running = true;
    this.instance = instance;
    this.state = k.state;
    this.faultPage = new Float64Array(warps);
    const sim = this.sim;
    const t0 = sim.now;
    try {
      for (;;) {
        this.runSlice(k);
        if (k.local > 0) {
          const ns = k.local;
          k.local = 0;
          await sim.sched.sleep(ns); // cancel() may fail warps meanwhile
        }
        let live = 0;
        let stalled = 0;
        for (let w = 0; w < warps; w++) {
          const st = k.state[w]!;
          if (st === WARP.RUNNING) {
            live++;
            if (k.stallClient && (k.clientStalled[k.client[w]!] === 1 || k.clientFaulted[k.client[w]!] === 1))
              stalled++;
          } else if (st === WARP.STALLED) {
            live++;
            stalled++;
          }
        }
        if (live === 0) break;
        if (stalled === live && this.replayGen === k.seenGen) {
          const gen = k.seenGen;
          await this.waitQueue.waitEvent(() => this.replayGen !== gen || this.allFailedOrDone());
        }
      }
    } finally {
      this.running = false;
      this.faultBuffer.kick();
    }
    let completed = 0;
    let failed = 0;
    for (let w = 0; w < warps; w++) {
      if (k.state[w] === WARP.DONE) completed++;
      else if (k.state[w] === WARP.FAILED) failed++;
    }
    return {
      warps,
      completed,
      failed,
      accesses: k.accesses,
      tlbHits: k.hits,
      walks: k.walks,
      faults: k.faults,
      coalescedInUtlb: k.coalesced,
      elapsedNs: sim.now - t0,
    };
  }

  /**
   * Runs passes (one access per running warp each) until no warp can run or `quantumNs` of
   * work has accumulated. Synchronous, with every hot variable local (an async function would
   * keep variables that live across an await in its heap context).
   */
  private runSlice(k: KernelState): void {
    const sim = this.sim;
    const costs = sim.costs;
    const hitNs = costs.gpuTlbHitNs;
    // What an access costs on top of a hit, by aperture: VRAM is the baseline; system memory and
    // a peer's VRAM are reached over PCIe / NVLink (indexed by APERTURE value).
    const apertureNs = this.apertureNs;
    apertureNs[APERTURE.PEER] = costs.gpuPeerAccessNs;
    apertureNs[APERTURE.SYS] = costs.gpuSysAccessNs;
    apertureNs[APERTURE.SYS_NC] = costs.gpuSysAccessNs;
    const walkNs = costs.gpuPageWalkNs;
    const quantum = this.quantumNs;
    const traced = sim.trace.wants('gpu.access'); // the coherence oracle's per-access check
    const tlb = this.tlb;
    const tflags = tlb.flags;
    const pt = this.pageTable;
    const fb = this.faultBuffer;
    const tr = this.tr;
    const { vas, access, data, warpStart, cursor, state, instance } = k;
    const faultPage = this.faultPage;
    const warps = state.length;
    let local = k.local;
    let accesses = 0;
    let hits = 0;
    let walks = 0;
    let faults = 0;
    for (;;) {
      if (this.replayGen !== k.seenGen) {
        k.seenGen = this.replayGen;
        for (let w = 0; w < warps; w++) if (state[w] === WARP.STALLED) state[w] = WARP.RUNNING;
        for (const m of k.inFlight) m.clear();
        k.clientStalled.fill(0);
        k.clientFaulted.fill(0);
      }
      if (k.stallClient) {
        for (let c = 0; c < k.clientFaulted.length; c++) if (k.clientFaulted[c] === 1) k.clientStalled[c] = 1;
        k.clientFaulted.fill(0);
      }
      let runnable = 0;
      const clientNs = k.clientNs;
      for (let w = 0; w < warps; w++) {
        if (state[w] !== WARP.RUNNING) continue;
        if (k.stallClient && k.clientStalled[k.client[w]!] === 1) continue;
        const i = cursor[w]!;
        const va = vas[i]!;
        const acc = access[i]!;
        const need = acc === ACCESS.ATOMIC ? TLB_FLAG.ATOMIC : acc === ACCESS.WRITE ? TLB_FLAG.WRITABLE : 0;
        const c = k.client[w]!;
        const before = clientNs[c]!;
        let spent = 0;
        const slot = tlb.lookup(va);
        let ok = false;
        if (slot >= 0 && (tflags[slot]! & need) === need) {
          spent += hitNs + apertureNs[tlb.apertures[slot]!]!;
          hits++;
          ok = true;
          if (traced) {
            const d = data === null ? -1 : data[i]!;
            sim.trace.emit(
              'gpu.access',
              this,
              va,
              acc,
              tlb.apertures[slot]!,
              tlb.paOf(slot, va),
              tlb.peers[slot]!,
              d,
            );
          }
          if (data !== null && acc !== ACCESS.PREFETCH) {
            this.dataAccess(
              data,
              i,
              acc,
              tlb.apertures[slot]! as Aperture,
              tlb.paOf(slot, va),
              tlb.peers[slot]!,
            );
          }
        } else {
          spent += walkNs;
          walks++;
          const st = pt.translateInto(va, tr);
          if (st === WALK.MAPPED) {
            const f = (tr.writable ? TLB_FLAG.WRITABLE : 0) | (tr.atomic ? TLB_FLAG.ATOMIC : 0);
            tlb.fill(va, tr.pageShift, tr.pa, f, tr.aperture, tr.peerId);
            ok = (f & need) === need;
            if (ok) {
              spent += hitNs + apertureNs[tr.aperture]!;
              if (traced) {
                const d = data === null ? -1 : data[i]!;
                sim.trace.emit('gpu.access', this, va, acc, tr.aperture, tr.pa, tr.peerId, d);
              }
              if (data !== null && acc !== ACCESS.PREFETCH)
                this.dataAccess(data, i, acc, tr.aperture, tr.pa, tr.peerId);
            }
          } else if (st === WALK.SPARSE) {
            ok = true; // sparse: reads return zero, writes are dropped
            if (data !== null && acc !== ACCESS.WRITE) data[i] = 0;
          }
        }
        clientNs[c] = before + spent;
        if (ok) {
          accesses++;
          const next = i + 1;
          cursor[w] = next;
          if (next === warpStart[w + 1]) state[w] = WARP.DONE;
          else runnable++;
        } else {
          const page = Math.floor(va / 4096) * 4096;
          const pending = k.inFlight[c]!;
          const prior = pending.get(page);
          if (prior !== undefined && prior >= acc) {
            // ACCESS values are ordered by intrusiveness: prefetch < read < write < atomic.
            k.coalesced++; // the uTLB already has this miss in flight
          } else {
            pending.set(page, acc);
            fb.push(page, acc as AccessType, c, instance, sim.now + local + clientNs[c]!);
            faults++;
          }
          state[w] = WARP.STALLED;
          faultPage[w] = page;
          k.clientFaulted[c] = 1;
        }
      }
      // the clients (SMs) issue in parallel: a pass takes as long as the busiest one
      let pass = 0;
      for (let c = 0; c < clientNs.length; c++) if (clientNs[c]! > pass) pass = clientNs[c]!;
      clientNs.fill(0);
      local += pass;
      if (runnable === 0 || local >= quantum) break;
    }
    k.local = local;
    k.accesses += accesses;
    k.hits += hits;
    k.walks += walks;
    k.faults += faults;
  }

  /** Attaches where data accesses go (null detaches). */
  setMemoryPort(port: MemoryPort | null): void {
    this.memory = port;
  }

  /** The attached memory port, or null. */
  get memoryPort(): MemoryPort | null {
    return this.memory;
  }

  private dataAccess(
    data: Uint32Array,
    i: number,
    acc: number,
    aperture: Aperture,
    pa: number,
    peer: number,
  ): void {
    const m = this.memory!;
    if (acc === ACCESS.READ) data[i] = m.read32(aperture, pa, peer);
    else if (acc === ACCESS.WRITE) m.write32(aperture, pa, data[i]!, peer);
    else {
      const old = m.read32(aperture, pa, peer);
      m.write32(aperture, pa, (old + data[i]!) >>> 0, peer);
      data[i] = old;
    }
  }

  private allFailedOrDone(): boolean {
    for (let w = 0; w < this.state.length; w++) {
      const s = this.state[w]!;
      if (s === WARP.RUNNING || s === WARP.STALLED) return false;
    }
    return true;
  }
}
