/**
 * The experiment runner: one (workload, granule policy, notifier policy, cost overrides, seed,
 * devices) cell. Builds a Sim, a machine and an Mm, the GPU device(s) and a GpuSvm with a
 * coherence oracle attached, maps the workload's arrays, runs its phases (GPU kernels through
 * each device's execution engine with the svm's fault handler servicing the fault buffer; CPU
 * phases through the mm's system calls and loads/stores), and returns metrics.
 *
 * Everything in an {@link ExperimentSpec} is plain JSON, so a spec crosses a worker-thread
 * boundary and is recorded verbatim in results files. Same spec → identical metrics (except
 * `wallMs`).
 *
 * @module
 */

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { createGpuDevice, type GpuDevice, nvMmuV2 } from '@hmmkit/gpu';
import {
  createMachine,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  Mm,
  MmSignalError,
  PROT_READ,
  PROT_WRITE,
  type ThpMode,
} from '@hmmkit/mm';
import { ArgumentError, COST_PARAMS, type CostParamName, createSim, type Sim } from '@hmmkit/sim';
import { CoherenceOracle, GpuSvm, type GpuSvmOptions } from '@hmmkit/svm';
import {
  type CpuOp,
  cpuTouch,
  GENERATORS,
  type GeneratorName,
  generate,
  type Kernel,
  munmapStorm,
  pingPong,
  smOfWarp,
  type Workload,
  withCpuPhases,
} from '@hmmkit/workloads';
import { pageTouch } from './microbench.ts';
import {
  DEFAULT_EVICTION,
  EVICTION_POLICIES,
  evictionPolicy,
  GRANULE_POLICIES,
  granulePolicy,
  isEvictionName,
  isGranuleName,
  notifierPolicy,
  onceFullPolicy,
} from './policies.ts';
import { TimelineRecorder } from './timeline.ts';
import { loadTraceWorkload, TRACE_FORMATS, type TraceFormat } from './trace-workload.ts';

/** CPU activity added around a workload's kernels. */
export const CPU_MODES = ['none', 'init', 'pingpong', 'storm'] as const;
/**
 * One of {@link CPU_MODES}: none; `init` (the CPU writes every array once before kernel 0, as a
 * host program initialises its inputs); `pingpong` (init, plus the CPU reads and writes every
 * array after each kernel); `storm` (init, plus a CPU thread running a munmap+mmap storm over the
 * kernel's arrays *while the kernel runs*: 8 random 1–16 page sub-ranges per array, one every
 * 20 µs, racing the GPU fault handler, so notifier invalidations hit faults in flight).
 */
export type CpuMode = (typeof CPU_MODES)[number];

/** Where the svm places data. */
export const PLACEMENTS = ['sysmem', 'vram', 'counters'] as const;
/**
 * `sysmem`: devices map CPU pages remotely (no migration); `vram`: a GPU fault migrates its span
 * to the faulting device's VRAM (xe), evicting per the eviction policy when VRAM is full;
 * `counters`: delayed migration driven by access counters (UVM on Volta+, UVMSmart's "delayed
 * migration"): a GPU fault maps the CPU pages remotely, the GPU counts its remote accesses per
 * 2 MiB region, and a region reaching {@link ExperimentSpec.accessCounterThreshold} is migrated
 * to VRAM by the access-counter handler (evicting as `vram` does).
 */
export type Placement = (typeof PLACEMENTS)[number];

/** The workload of an experiment: a `@hmmkit/workloads` generator and its parameters. */
export interface WorkloadSpec {
  /** Generator name: a key of `@hmmkit/workloads`' GENERATORS, or 'pageTouch' (see {@link pageTouch}). */
  readonly generator: WorkloadGenerator;
  /** Generator parameters (footprintBytes, iterations, numSMs, warpsPerSM, ...); `seed` is set from the experiment. */
  readonly params?: Readonly<Record<string, number | string | boolean>>;
  /** CPU activity (default 'init'). */
  readonly cpu?: CpuMode;
  /** Label for tables (default: the generator name). */
  readonly label?: string;
}

/**
 * Generators an experiment can name: the workloads package's, the bench's microbenchmark, and
 * 'trace' (params: `file`, optional `format`; see trace-workload.ts).
 */
export type WorkloadGenerator = GeneratorName | 'pageTouch' | 'trace';

/** Whether `name` names a generator. */
export function isWorkloadGenerator(name: string): name is WorkloadGenerator {
  return name === 'pageTouch' || name === 'trace' || Object.hasOwn(GENERATORS, name);
}

/** One experiment. Plain JSON. */
export interface ExperimentSpec {
  readonly workload: WorkloadSpec;
  /** Granule policy name (see GRANULE_POLICIES). Default 'xe'. */
  readonly granule?: string;
  /** Notifier policy name (see NOTIFIER_POLICIES). Default 'window-512M'. */
  readonly notifier?: string;
  /**
   * Eviction policy of the device-memory pool (see EVICTION_POLICIES; placement 'vram' only).
   * Default 'lru-chunk' (UVM's).
   */
  readonly eviction?: string;
  /**
   * Granule policy used from the device pool's first eviction on (see {@link onceFullPolicy}:
   * UVMSmart's `-hwprefetch_oversub`; its eviction-only experiments switch to
   * 'uvmsmart-on-demand'). Placement 'vram' or 'counters' only. Default: `granule` throughout.
   * Tables and policy keys name it as `granule>granuleOnceFull`.
   */
  readonly granuleOnceFull?: string;
  /** Cost-model overrides (names of COST_PARAMS). */
  readonly costs?: Readonly<Partial<Record<CostParamName, number>>>;
  /** Label of the cost overrides for tables (default 'default' or the overrides as k=v). */
  readonly costLabel?: string;
  /** Seed of the sim scheduler and of the workload generator. Default 1. */
  readonly seed?: number;
  /** Number of GPUs (kernel k runs on device k mod devices). Default 1. */
  readonly devices?: number;
  /** VRAM per device in bytes, a multiple of 2 MiB. Default 64 MiB. */
  readonly vramBytes?: number;
  /** Data placement. Default 'vram'. */
  readonly placement?: Placement;
  /**
   * Remote accesses to a 2 MiB region that trigger its migration, with placement 'counters'
   * (UVM's default 256). An integer in [1, 65535].
   */
  readonly accessCounterThreshold?: number;
  /** Transparent huge pages of the CPU mm. Default 'never'. */
  readonly thp?: ThpMode;
  /**
   * Fault replay policy of `GpuSvm.startFaultHandler`: 'batch-flush' (UVM's default: flush the
   * buffer's stale duplicates, then replay) or 'batch' (replay without flush). Default 'batch-flush'.
   */
  readonly replay?: ReplayPolicy;
  /**
   * Step budget: the scheduler aborts a phase (one kernel, or one CPU phase) after this many
   * scheduling steps with a "more than N steps" error. Default 10^8.
   */
  readonly maxSteps?: number;
  /**
   * Host wall-clock budget of the whole cell in ms (0 = none, the default): past it the cell
   * fails with a {@link BudgetExceededError}. Results do not depend on it.
   */
  readonly timeoutMs?: number;
  /**
   * Write the run's simulated timeline here as Chrome trace-event JSON (see timeline.ts), also
   * when the run fails. Not part of the resolved spec: it changes no result.
   */
  readonly timelineFile?: string;
}

/** A cell ran past its wall-clock budget ({@link ExperimentSpec.timeoutMs}). */
export class BudgetExceededError extends Error {
  override name = 'BudgetExceededError';
}

/** Default {@link ExperimentSpec.maxSteps}. */
export const DEFAULT_MAX_STEPS = 100_000_000;

/** Fault replay policies (see {@link ExperimentSpec.replay}). */
export const REPLAY_POLICIES = ['batch-flush', 'batch'] as const;
/** One of {@link REPLAY_POLICIES}. */
export type ReplayPolicy = (typeof REPLAY_POLICIES)[number];

/** What one experiment measured. Every field but `wallMs` is deterministic. */
export interface Metrics {
  /** Simulated time from the first phase to the end (ns). */
  readonly simTimeNs: number;
  /** Simulated time spent in GPU kernels (launch to completion, summed) (ns). */
  readonly kernelTimeNs: number;
  /** GPU accesses completed. */
  readonly accesses: number;
  /**
   * Far faults, hmmkit's one definition (docs/lab.md): fault-buffer entries written by the GPUs'
   * MMUs (`gpuN.fault.raised`), duplicates and re-raises after a replay included. This is the
   * "far faults" column and chart everywhere.
   */
  readonly farFaults: number;
  /**
   * Serviced faults: far faults the driver fetched and serviced after fetch-time coalescing
   * (`svm.faults`); at most farFaults (the rest were coalesced or flushed as stale).
   */
  readonly faultsServiced: number;
  /** Fault batches fetched. */
  readonly faultBatches: number;
  /** Warps cancelled (GPU SIGSEGV); 0 for a correct run. */
  readonly failedWarps: number;
  /** mmu_interval_read_retry() hits (hmm_range_fault -EBUSY loops). */
  readonly readRetries: number;
  /** Driver fault retries (the whole fault restarted after -EBUSY/-EAGAIN or an unmapped range). */
  readonly faultRetries: number;
  /** readRetries + faultRetries. */
  readonly retries: number;
  /** Bytes copied host → device. */
  readonly bytesH2d: number;
  /** Bytes copied device → host (eviction, CPU faults on device pages). */
  readonly bytesD2h: number;
  /** bytesH2d + bytesD2h. */
  readonly bytesMigrated: number;
  /**
   * Bytes of distinct pages the driver made GPU-accessible (mapped or migrated) that no GPU access
   * ever touched, each counted once however often it was refetched (at most footprint − accessed);
   * refetch traffic after eviction shows in bytesMigrated / evictions instead.
   */
  readonly bytesOverFetched: number;
  /** Distinct bytes (whole pages) the GPUs accessed. */
  readonly bytesAccessed: number;
  /** GPU TLB invalidations: per-range invalidates plus full flushes. */
  readonly tlbInvalidations: number;
  /** 2 MiB VRAM chunks evicted. */
  readonly evictions: number;
  /** Notifier invalidations that reached the svm, and those that hit no page it mapped. */
  readonly invalidations: number;
  readonly falseInvalidations: number;
  /** SVM ranges created. */
  readonly ranges: number;
  /** CPU page faults (handle_mm_fault calls). */
  readonly cpuFaults: number;
  /** Coherence-oracle violations (must be 0). */
  readonly oracleViolations: number;
  /**
   * Where simulated time went ({@link TIME_PARTS}; they add up to simTimeNs). Charged work:
   * fault service (per batch `faultBatchFixedNs` + per unique page `faultServicePerPageNs`),
   * GPU PTE writes (copy-engine pushes), TLB invalidations, other charged work (CPU faults and
   * zeroing, hmm walks, notifier callbacks, kernel launch, eviction); then the time the fault
   * handler waited for copies beyond what others charged meanwhile; the rest is GPU execution,
   * far-fault latency and idle waiting.
   */
  readonly timeFaultServiceNs: number;
  readonly timePteNs: number;
  readonly timeTlbNs: number;
  readonly timeOtherChargedNs: number;
  readonly timeCopyWaitNs: number;
  readonly timeGpuAndWaitNs: number;
  /** Host wall-clock time of the run (ms); not deterministic. */
  readonly wallMs: number;
}

/** Metric names in table order. */
export const METRIC_NAMES = [
  'simTimeNs',
  'kernelTimeNs',
  'accesses',
  'farFaults',
  'faultsServiced',
  'faultBatches',
  'failedWarps',
  'readRetries',
  'faultRetries',
  'retries',
  'bytesH2d',
  'bytesD2h',
  'bytesMigrated',
  'bytesOverFetched',
  'bytesAccessed',
  'tlbInvalidations',
  'evictions',
  'invalidations',
  'falseInvalidations',
  'ranges',
  'cpuFaults',
  'oracleViolations',
  'timeFaultServiceNs',
  'timePteNs',
  'timeTlbNs',
  'timeOtherChargedNs',
  'timeCopyWaitNs',
  'timeGpuAndWaitNs',
  'wallMs',
] as const satisfies readonly (keyof Metrics)[];

/** The parts of simulated time, in stacking order, with their labels. */
export const TIME_PARTS = [
  ['timeFaultServiceNs', 'fault service'],
  ['timeCopyWaitNs', 'copies (waited)'],
  ['timePteNs', 'PTE writes'],
  ['timeTlbNs', 'TLB invalidations'],
  ['timeOtherChargedNs', 'other charged (CPU, hmm, notifiers)'],
  ['timeGpuAndWaitNs', 'GPU running / far-fault latency / waiting'],
] as const satisfies readonly (readonly [keyof Metrics, string])[];

/** A spec with every default filled in. */
export interface ResolvedSpec {
  readonly workload: Required<Pick<WorkloadSpec, 'generator' | 'cpu' | 'label'>> & {
    readonly params: Readonly<Record<string, number | string | boolean>>;
  };
  readonly granule: string;
  /** Present only when it differs from `granule`. */
  readonly granuleOnceFull?: string;
  readonly notifier: string;
  readonly eviction: string;
  readonly costs: Readonly<Partial<Record<CostParamName, number>>>;
  readonly costLabel: string;
  readonly seed: number;
  readonly devices: number;
  readonly vramBytes: number;
  readonly placement: Placement;
  /** Access-counter threshold (present with placement 'counters' only). */
  readonly accessCounterThreshold?: number;
  readonly thp: ThpMode;
  readonly replay: ReplayPolicy;
  readonly maxSteps: number;
  readonly timeoutMs: number;
}

/** Fills defaults and validates `spec` (throws ArgumentError naming the bad field). */
export function resolveSpec(spec: ExperimentSpec): ResolvedSpec {
  const fn = 'resolveSpec';
  const w = spec.workload;
  if (w === undefined || !isWorkloadGenerator(w.generator)) {
    throw new ArgumentError(
      fn,
      'workload.generator',
      `must be one of ${[...Object.keys(GENERATORS), 'pageTouch', 'trace'].join(', ')}`,
      w?.generator,
    );
  }
  if (w.generator === 'trace') {
    const f = w.params?.file;
    if (typeof f !== 'string' || f === '') {
      throw new ArgumentError(fn, 'workload.params.file', 'must name the trace file of a trace workload', f);
    }
    const fmt = w.params?.format;
    if (fmt !== undefined && !(TRACE_FORMATS as readonly unknown[]).includes(fmt)) {
      throw new ArgumentError(
        fn,
        'workload.params.format',
        `must be one of ${TRACE_FORMATS.join(', ')}`,
        fmt,
      );
    }
  }
  const cpu = w.cpu ?? 'init';
  if (!CPU_MODES.includes(cpu))
    throw new ArgumentError(fn, 'workload.cpu', `must be one of ${CPU_MODES}`, cpu);
  const placement = spec.placement ?? 'vram';
  if (!PLACEMENTS.includes(placement)) {
    throw new ArgumentError(fn, 'placement', `must be one of ${PLACEMENTS}`, placement);
  }
  const devices = spec.devices ?? 1;
  if (!Number.isInteger(devices) || devices < 1 || devices > 8) {
    throw new ArgumentError(fn, 'devices', 'must be an integer in [1, 8]', devices);
  }
  const vramBytes = spec.vramBytes ?? 64 << 20;
  if (!Number.isSafeInteger(vramBytes) || vramBytes < 2 << 20 || vramBytes % (2 << 20) !== 0) {
    throw new ArgumentError(fn, 'vramBytes', 'must be a positive multiple of 2 MiB', vramBytes);
  }
  const seed = spec.seed ?? 1;
  if (!Number.isInteger(seed) || seed < 0 || seed > 2 ** 32 - 1) {
    throw new ArgumentError(fn, 'seed', 'must be a uint32', seed);
  }
  const costs = spec.costs ?? {};
  for (const [k, v] of Object.entries(costs)) {
    if (!Object.hasOwn(COST_PARAMS, k))
      throw new ArgumentError(fn, `costs.${k}`, 'is not a cost parameter', k);
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      throw new ArgumentError(fn, `costs.${k}`, 'must be a finite non-negative number', v);
    }
  }
  const granule = spec.granule ?? 'xe';
  const notifier = spec.notifier ?? 'window-512M';
  granulePolicy(granule); // validates the name
  notifierPolicy(notifier);
  const eviction = spec.eviction ?? DEFAULT_EVICTION;
  if (!isEvictionName(eviction)) {
    throw new ArgumentError(
      fn,
      'eviction',
      `must be one of ${Object.keys(EVICTION_POLICIES).join(', ')}`,
      eviction,
    );
  }
  if (eviction !== DEFAULT_EVICTION && placement === 'sysmem') {
    throw new ArgumentError(
      fn,
      'eviction',
      "applies to device memory only: it needs placement 'vram' or 'counters'",
      eviction,
    );
  }
  const onceFull = spec.granuleOnceFull;
  if (onceFull !== undefined) {
    if (typeof onceFull !== 'string' || !isGranuleName(onceFull)) {
      throw new ArgumentError(
        fn,
        'granuleOnceFull',
        `must be one of ${Object.keys(GRANULE_POLICIES).join(', ')}`,
        onceFull,
      );
    }
    if (placement === 'sysmem') {
      throw new ArgumentError(
        fn,
        'granuleOnceFull',
        "switches at the device pool's first eviction: it needs placement 'vram' or 'counters'",
        onceFull,
      );
    }
  }
  const act = spec.accessCounterThreshold;
  if (act !== undefined && placement !== 'counters') {
    throw new ArgumentError(fn, 'accessCounterThreshold', "needs placement 'counters'", act);
  }
  if (act !== undefined && (!Number.isInteger(act) || act < 1 || act > 65535)) {
    throw new ArgumentError(fn, 'accessCounterThreshold', 'must be an integer in [1, 65535]', act);
  }

  const thp = spec.thp ?? 'never';
  const replay = spec.replay ?? 'batch-flush';
  if (!REPLAY_POLICIES.includes(replay)) {
    throw new ArgumentError(fn, 'replay', `must be one of ${REPLAY_POLICIES}`, replay);
  }
  const maxSteps = spec.maxSteps ?? DEFAULT_MAX_STEPS;
  if (!Number.isSafeInteger(maxSteps) || maxSteps < 1) {
    throw new ArgumentError(fn, 'maxSteps', 'must be a positive integer', maxSteps);
  }
  const timeoutMs = spec.timeoutMs ?? 0;
  if (!Number.isFinite(timeoutMs) || timeoutMs < 0) {
    throw new ArgumentError(fn, 'timeoutMs', 'must be a finite number ≥ 0 (0 = no budget)', timeoutMs);
  }
  return {
    workload: { generator: w.generator, params: w.params ?? {}, cpu, label: w.label ?? w.generator },
    granule,
    ...(onceFull !== undefined && onceFull !== granule ? { granuleOnceFull: onceFull } : {}),
    notifier,
    eviction,
    costs,
    costLabel: spec.costLabel ?? costLabelOf(costs),
    seed,
    devices,
    vramBytes,
    placement,
    ...(placement === 'counters' ? { accessCounterThreshold: act ?? 256 } : {}),
    thp,
    replay,
    maxSteps,
    timeoutMs,
  };
}

/** 'default', or the overrides as `name=value` joined by commas. */
export function costLabelOf(costs: Readonly<Partial<Record<string, number>>>): string {
  const e = Object.entries(costs);
  return e.length === 0 ? 'default' : e.map(([k, v]) => `${k}=${v}`).join(',');
}

/** Builds the spec's workload (seeded) with its CPU phases (not for 'trace': see {@link loadWorkload}). */
export function buildWorkload(spec: ResolvedSpec): Workload {
  const g = spec.workload.generator;
  if (g === 'trace')
    throw new ArgumentError('buildWorkload', 'spec', 'a trace workload is read with loadWorkload()', g);
  const params = { ...spec.workload.params, seed: spec.seed };
  return withCpu(spec, g === 'pageTouch' ? pageTouch(params) : generate(g, params));
}

/** Builds or reads (a trace) the spec's workload with its CPU phases. */
export async function loadWorkload(spec: ResolvedSpec): Promise<Workload> {
  if (spec.workload.generator !== 'trace') return buildWorkload(spec);
  const p = spec.workload.params;
  return withCpu(spec, await loadTraceWorkload(String(p.file), p.format as TraceFormat | undefined));
}

/** Adds the spec's CPU activity to `w`. */
function withCpu(spec: ResolvedSpec, w: Workload): Workload {
  if (spec.workload.cpu === 'none') return w;
  const init: CpuOp[] = w.arrays.map((a) => cpuTouch(a.va, Math.ceil(a.bytes / 4096) * 4096, true));
  const base = spec.workload.cpu === 'pingpong' ? pingPong(w) : w;
  // 'storm' ops run concurrently with each kernel (see runExperiment), not as phases
  return withCpuPhases(base, (k) => (k === -1 ? init : []), { before: true, suffix: '' });
}

/** Everything an experiment built (for tests and custom drivers). */
export interface ExperimentWorld {
  readonly sim: Sim;
  readonly mm: Mm;
  readonly devices: readonly GpuDevice[];
  readonly svm: GpuSvm;
  readonly oracle: CoherenceOracle;
}

/** Gap between two storm operations (ns). */
const STORM_GAP_NS = 20_000;

/** Page bitmaps over the workload's VA span: touched by the GPU, made GPU-accessible by the driver. */
class PageSets {
  readonly base: number;
  readonly accessed: Uint8Array;
  readonly fetched: Uint8Array;
  constructor(base: number, end: number) {
    this.base = Math.floor(base / 4096);
    const n = Math.ceil(end / 4096) - this.base;
    this.accessed = new Uint8Array(n);
    this.fetched = new Uint8Array(n);
  }
  markAccessed(k: Kernel): void {
    const vas = k.streams.vas;
    const acc = this.accessed;
    const b = this.base;
    for (let i = 0; i < vas.length; i++) {
      const p = Math.floor(vas[i]! / 4096) - b;
      if (p >= 0 && p < acc.length) acc[p] = 1;
    }
  }
  markFetched(va: number, size: number): void {
    const lo = Math.max(0, Math.floor(va / 4096) - this.base);
    const hi = Math.min(this.fetched.length, Math.ceil((va + size) / 4096) - this.base);
    if (lo < hi) this.fetched.fill(1, lo, hi);
  }
  count(): { accessed: number; overFetched: number } {
    let accessed = 0;
    let over = 0;
    for (let i = 0; i < this.accessed.length; i++) {
      if (this.accessed[i] === 1) accessed++;
      else if (this.fetched[i] === 1) over++;
    }
    return { accessed, overFetched: over };
  }
}

/**
 * Accounts simulated time by cause: every `sim.charge` (summed), the pages each fault batch
 * serviced (the `svm.fault.batch` trace event) and the time fault handlers waited on copy
 * engines net of what other tasks charged meanwhile. Reads the clock only; changes no result.
 */
class TimeAccount {
  private charged = 0;
  private pagesServiced = 0;
  private copyWait = 0;
  private readonly sim: Sim;
  constructor(sim: Sim, devices: readonly GpuDevice[]) {
    this.sim = sim;
    const charge = sim.charge.bind(sim);
    sim.charge = (ns: number): void => {
      this.charged += ns;
      charge(ns);
    };
    sim.trace.on('svm.fault.batch', (_dev, _count, pages) => {
      this.pagesServiced += pages;
    });
    for (const dev of devices) {
      const ce = dev.copyEngine;
      const wait = ce.wait.bind(ce);
      ce.wait = async (ticket) => {
        const t0 = sim.now;
        const c0 = this.charged;
        await wait(ticket);
        this.copyWait += Math.max(0, sim.now - t0 - (this.charged - c0));
      };
    }
  }
  /** Starts the account now (charges before, e.g. the workload's mmaps, are not simulated time). */
  start(): void {
    this.charged = 0;
    this.copyWait = 0;
    this.pagesServiced = 0;
  }
  /** The parts of `simTimeNs` (see {@link Metrics.timeFaultServiceNs}). */
  parts(simTimeNs: number, snap: Record<string, number>): Pick<Metrics, (typeof TIME_PARTS)[number][0]> {
    const c = this.sim.costs;
    const faultService =
      sumCounters(snap, '.fault.batches') * c.faultBatchFixedNs +
      this.pagesServiced * c.faultServicePerPageNs;
    const pte =
      sumCounters(snap, '.pt.ceBatches') * c.pteWriteBatchFixedNs +
      (sumCounters(snap, '.pt.pteWrites') + sumCounters(snap, '.pt.pdeWrites')) * c.pteWriteBatchPerEntryNs;
    const tlb = (sumCounters(snap, '.tlb.invalidate') + sumCounters(snap, '.tlb.flush')) * c.tlbInvalidateNs;
    const other = Math.max(0, this.charged - faultService - pte - tlb);
    const copy = Math.min(this.copyWait, Math.max(0, simTimeNs - this.charged));
    return {
      timeFaultServiceNs: faultService,
      timePteNs: pte,
      timeTlbNs: tlb,
      timeOtherChargedNs: other,
      timeCopyWaitNs: copy,
      timeGpuAndWaitNs: Math.max(0, simTimeNs - faultService - pte - tlb - other - copy),
    };
  }
}

/** The uTLB (fault client) of each warp: its SM (`smOfWarp`), so one SM's misses to a page coalesce. */
export function warpClients(k: Kernel): Uint16Array {
  const out = new Uint16Array(k.warps);
  for (let w = 0; w < k.warps; w++) out[w] = smOfWarp(k, w);
  return out;
}

/** Runs a CPU op on the mm (a touch that raises a signal is counted, not thrown). */
async function runCpuOp(mm: Mm, op: CpuOp, children: Mm[]): Promise<number> {
  switch (op.op) {
    case 'touch': {
      if (op.stride === 4096 && op.addr % 4096 === 0) {
        await mm.touch(op.addr, op.len, op.write);
      } else {
        for (let a = op.addr; a < op.addr + op.len; a += op.stride) await mm.touch(a, 1, op.write);
      }
      return 0;
    }
    case 'mmap':
      return mm.mmap(op.addr, op.len, op.prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
    case 'munmap':
      return mm.munmap(op.addr, op.len);
    case 'mprotect':
      return mm.mprotect(op.addr, op.len, op.prot);
    case 'madvise':
      return mm.madvise(op.addr, op.len, op.advice);
    case 'fork':
      children.push(await mm.fork());
      return 0;
  }
}

function sumCounters(snap: Record<string, number>, suffix: string): number {
  let s = 0;
  for (const [k, v] of Object.entries(snap)) if (k.endsWith(suffix) && /^gpu\d*\./.test(k)) s += v;
  return s;
}

/** Whether device `devIndex` maps the page of `va` through the svm (valid and bound). */
export function svmPageMapped(svm: GpuSvm, devIndex: number, va: number): boolean {
  const r = svm.rangeFind(va);
  if (r === null) return false;
  const i = Math.floor((va - r.start) / 4096);
  return r.pageValid[i] === 1 && (r.devMap[i]! & (1 << devIndex)) !== 0;
}

/**
 * Makes every `sim.sched.sleep` and `sim.sched.yield` (the engine sleeps once per slice, the fault
 * handler once per batch, the mm yields in its locks) check the host clock every 256 calls and
 * throw {@link BudgetExceededError} past `deadline`: the scheduler loop runs on microtasks only,
 * so no timer could interrupt it. The check reads the host clock only; it changes no simulated
 * result.
 */
function enforceDeadline(sim: Sim, deadline: number, budgetMs: number): void {
  const sched = sim.sched;
  const sleep = sched.sleep.bind(sched);
  const yieldNow = sched.yield.bind(sched);
  let calls = 0;
  const check = (): void => {
    if (++calls % 256 === 0 && performance.now() > deadline) {
      throw new BudgetExceededError(`cell ran past its ${budgetMs} ms time budget (--timeout)`);
    }
  };
  sched.sleep = (ns: number): Promise<void> => {
    check();
    return sleep(ns);
  };
  sched.yield = (): Promise<void> => {
    check();
    return yieldNow();
  };
}

/** Optional hooks of {@link runExperiment}. */
export interface RunHooks {
  /** Called once the world is built, before the first phase. */
  readonly onWorld?: (world: ExperimentWorld) => void;
}

/** Runs one experiment and returns its metrics (and writes its timeline if it asks for one). */
export async function runExperiment(spec: ExperimentSpec, hooks: RunHooks = {}): Promise<Metrics> {
  const file = spec.timelineFile;
  if (file === undefined) return runCell(spec, hooks);
  let rec: TimelineRecorder | null = null;
  const label = `${spec.workload?.label ?? spec.workload?.generator}/${spec.granule ?? 'xe'}${spec.granuleOnceFull !== undefined ? `>${spec.granuleOnceFull}` : ''}/${spec.notifier ?? 'window-512M'} seed ${spec.seed ?? 1}`;
  try {
    return await runCell(spec, {
      ...hooks,
      onWorld: (w) => {
        rec = new TimelineRecorder(w.sim, w.devices, label);
        hooks.onWorld?.(w);
      },
    });
  } finally {
    if (rec !== null) {
      mkdirSync(dirname(resolve(file)), { recursive: true });
      writeFileSync(file, JSON.stringify((rec as TimelineRecorder).toJson()));
    }
  }
}

async function runCell(spec: ExperimentSpec, hooks: RunHooks): Promise<Metrics> {
  const t0 = performance.now();
  const s = resolveSpec(spec);
  const workload = await loadWorkload(s);
  const sim = createSim({ seed: s.seed, costs: s.costs, maxSteps: s.maxSteps });
  if (s.timeoutMs > 0) enforceDeadline(sim, t0 + s.timeoutMs, s.timeoutMs);
  // physical memory: footprint × 4 (CPU copies, VRAM migrations back, page tables) + 64 MiB
  const pagesPerNode = Math.max(2 ** 16, Math.ceil((workload.footprintBytes * 4 + (64 << 20)) / 4096));
  const mm = new Mm(createMachine(sim, { thp: s.thp, pagesPerNode }));
  const devices = Array.from({ length: s.devices }, (_, i) =>
    createGpuDevice(sim, {
      id: i,
      format: nvMmuV2,
      vramBytes: s.vramBytes,
      counterPrefix: `gpu${i}`,
    }),
  );
  const opts: GpuSvmOptions = {
    granule:
      s.granuleOnceFull === undefined
        ? granulePolicy(s.granule)
        : onceFullPolicy(sim, granulePolicy(s.granule), granulePolicy(s.granuleOnceFull)),
    notifiers: notifierPolicy(s.notifier),
    ...(s.placement === 'sysmem'
      ? {}
      : {
          devmem: {
            migrate: s.placement === 'vram' ? ('fault' as const) : ('never' as const),
            eviction: evictionPolicy(s.eviction, s.seed),
          },
        }),
    ...(s.placement === 'counters' ? { accessCounters: { threshold: s.accessCounterThreshold ?? 256 } } : {}),
  };
  const svm = new GpuSvm(mm, devices, opts);
  const oracle = new CoherenceOracle(mm, devices, { resolve: svm.resolver, throwOnViolation: false });
  await oracle.attach();

  let lo = Number.POSITIVE_INFINITY;
  let hi = 0;
  for (const a of workload.arrays) {
    lo = Math.min(lo, a.va);
    hi = Math.max(hi, a.va + a.bytes);
  }
  const pages = new PageSets(Number.isFinite(lo) ? lo : 0, hi);
  const time = new TimeAccount(sim, devices);
  for (const dev of devices) {
    const pt = dev.pageTable;
    const map = pt.map;
    pt.map = (va, pageSize, pa, attrs, batch) => {
      pages.markFetched(va, pageSize);
      map.call(pt, va, pageSize, pa, attrs, batch);
    };
  }
  hooks.onWorld?.({ sim, mm, devices, svm, oracle });

  for (const a of workload.arrays) {
    const len = Math.ceil(a.bytes / 4096) * 4096;
    const r = await mm.mmap(a.va, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
    if (r < 0) throw new Error(`mmap of ${a.name} failed: ${r}`);
  }

  const children: Mm[] = [];
  let kernelTimeNs = 0;
  let accesses = 0;
  let failedWarps = 0;
  let kernelNo = 0;
  const startNs = sim.now;
  time.start();
  for (const ph of workload.phases()) {
    if (ph.type === 'cpu') {
      const task = sim.sched.spawn(`cpu-${ph.index}`, async () => {
        for (const op of ph.ops) {
          try {
            await runCpuOp(mm, op, children);
          } catch (e) {
            if (!(e instanceof MmSignalError)) throw e;
          }
        }
      });
      await sim.sched.run();
      if (task.state !== 'done') throw new Error(`cpu phase ${ph.index} did not finish`);
      continue;
    }
    const k = ph.kernel;
    pages.markAccessed(k);
    const d = kernelNo++ % devices.length;
    const dev = devices[d]!;
    let done = false;
    const k0 = sim.now;
    sim.charge(sim.costs.kernelLaunchNs);
    if (s.workload.cpu === 'storm') {
      const ops = k.arrays.flatMap((a, j) =>
        munmapStorm(a, { count: 8, maxPages: 16, seed: s.seed * 1009 + kernelNo * 31 + j }),
      );
      sim.sched.spawn(`cpu-storm-${ph.index}`, async () => {
        for (const op of ops) {
          if (op.op === 'munmap') await sim.sched.sleep(STORM_GAP_NS); // munmap + its mmap back to back
          await runCpuOp(mm, op, children);
        }
      });
    }
    svm.startFaultHandler(d, () => done, { replay: s.replay });
    if (svm.accessCounters !== null) svm.startAccessCounterHandler(d, () => done);
    sim.sched.spawn(`kernel-${ph.index}`, async () => {
      const r = await dev.engine.run(k.streams, { warpClient: warpClients(k) });
      accesses += r.accesses;
      failedWarps += r.failed;
      done = true;
      dev.faultBuffer.kick();
      svm.accessCounters?.wq.wakeUpAll();
    });
    await sim.sched.run();
    kernelTimeNs += sim.now - k0;
  }
  oracle.checkAll();
  const simTimeNs = sim.now - startNs;
  for (const c of children) await c.exit();

  const snap = sim.counters.snapshot();
  const g = (n: string): number => snap[n] ?? 0;
  const bytesH2d = sumCounters(snap, '.ce.bytesH2d');
  const bytesD2h = sumCounters(snap, '.ce.bytesD2h');
  const readRetries = g('notifier.readRetries');
  const faultRetries = g('svm.fault.retries');
  const pc = pages.count();
  const parts = time.parts(simTimeNs, snap);
  return {
    simTimeNs,
    kernelTimeNs,
    accesses,
    farFaults: sumCounters(snap, '.fault.raised'),
    faultsServiced: g('svm.faults'),
    faultBatches: sumCounters(snap, '.fault.batches'),
    failedWarps,
    readRetries,
    faultRetries,
    retries: readRetries + faultRetries,
    bytesH2d,
    bytesD2h,
    bytesMigrated: bytesH2d + bytesD2h,
    bytesOverFetched: pc.overFetched * 4096,
    bytesAccessed: pc.accessed * 4096,
    tlbInvalidations: sumCounters(snap, '.tlb.invalidate') + sumCounters(snap, '.tlb.flush'),
    evictions: g('svm.evictions'),
    invalidations: g('svm.invalidations'),
    falseInvalidations: g('svm.invalidations.false'),
    ranges: g('svm.ranges.created'),
    cpuFaults: g('mm.faults'),
    oracleViolations: oracle.violations.length,
    ...parts,
    wallMs: Math.round((performance.now() - t0) * 10) / 10,
  };
}
