/**
 * Kernels, workloads and the parameters every generator shares.
 *
 * A {@link Kernel} is one GPU launch: the warp-major access streams of its warps plus metadata
 * (name, pattern class, the SM layout and the arrays it touches). A {@link Workload} is a
 * sequence of phases (kernel launches, and CPU-side activity between them) produced lazily and
 * deterministically from a seed, with the allocations a runner must map before phase 0.
 *
 * @module
 */
import { ArgumentError, modPow2 } from '@hmmkit/sim';
import { type AccessKind, type AccessSink, StreamBuilder, type WarpStreams } from './access.ts';
import type { CpuOp } from './cpu.ts';

/** Access-pattern classes (uvm-costs §4.2). */
export const PATTERN = {
  STREAMING: 'streaming',
  STRIDED: 'strided',
  STENCIL: 'stencil',
  GEMM: 'gemm',
  ATAX: 'atax',
  WAVEFRONT: 'wavefront',
  GRAPH: 'graph',
  RANDOM: 'random',
  REUSE: 'reuse',
  TRACE: 'trace',
} as const;
/** One of the {@link PATTERN} values. */
export type PatternClass = (typeof PATTERN)[keyof typeof PATTERN];

/** One allocation (a `cudaMallocManaged` / `malloc` array) with its VA range. */
export interface ArrayRegion {
  readonly name: string;
  /** Start VA (aligned to the layout's alignment, 2 MiB by default). */
  readonly va: number;
  /** Length in bytes. */
  readonly bytes: number;
  /** Element size in bytes. */
  readonly elemSize: number;
}

/** One GPU kernel launch. */
export interface Kernel {
  readonly name: string;
  readonly pattern: PatternClass;
  /** Streaming multiprocessors the warps are spread over. */
  readonly numSMs: number;
  readonly warpsPerSM: number;
  /** Warps per thread block (CTA); a CTA's warps share one SM. */
  readonly warpsPerCta: number;
  /** Warps in flight = streams.warpStart.length - 1 = numSMs × warpsPerSM. */
  readonly warps: number;
  /** The arrays this kernel touches. */
  readonly arrays: readonly ArrayRegion[];
  /** Sum of `arrays[].bytes`. */
  readonly footprintBytes: number;
  /** Warp-major accesses (pass to `GpuEngine.run`). */
  readonly streams: WarpStreams;
  /** Number of accesses. */
  readonly accesses: number;
}

/** The SM a warp runs on: CTAs are dealt round robin to SMs, `warpsPerCta` warps each. */
export function smOfWarp(kernel: Pick<Kernel, 'numSMs' | 'warpsPerCta'>, warp: number): number {
  return Math.floor(warp / kernel.warpsPerCta) % kernel.numSMs;
}

/** A GPU kernel launch phase. */
export interface KernelPhase {
  readonly type: 'kernel';
  readonly index: number;
  readonly kernel: Kernel;
}

/** CPU-side activity between kernels (executed by an mm-driving runner, in order). */
export interface CpuPhase {
  readonly type: 'cpu';
  readonly index: number;
  readonly ops: readonly CpuOp[];
}

/** One step of a workload. */
export type Phase = KernelPhase | CpuPhase;

/** A workload: allocations, then phases. `phases()` restarts from the seed on every call. */
export interface Workload {
  readonly name: string;
  readonly pattern: PatternClass;
  /** Resolved generator parameters, for reports. */
  readonly params: ResolvedParams;
  /** Every allocation; a runner maps these before phase 0. */
  readonly arrays: readonly ArrayRegion[];
  /** Sum of `arrays[].bytes`. */
  readonly footprintBytes: number;
  /** Number of phases `phases()` yields. */
  readonly phaseCount: number;
  /** Number of kernel phases among them. */
  readonly kernelCount: number;
  /** Kernels and CPU phases in order, built lazily (one kernel's arrays in memory at a time). */
  phases(): Generator<Phase, void, undefined>;
}

/** Parameters every generator takes (all optional). */
export interface GeneratorParams {
  /** Total bytes of the workload's arrays (approximately; generators round to whole rows). Default 16 MiB. */
  readonly footprintBytes?: number;
  /** Element size in bytes (4 = float, 8 = double). Default 4 (8 for random). */
  readonly elemSize?: number;
  /** SMs. Default 80 (Titan V, the GPU of Allen & Ge's measurements, uvm-costs §2.1). */
  readonly numSMs?: number;
  /** Concurrent warps per SM. Default 32 (half of Volta's 64: typical occupancy). */
  readonly warpsPerSM?: number;
  /** Warps per CTA (thread block). Default 8 (256 threads). */
  readonly warpsPerCta?: number;
  /** Iterations (kernel launches of the main loop). Default per generator. */
  readonly iterations?: number;
  /** RNG seed. Default 1. */
  readonly seed?: number;
  /** VA of the first array. Default 0x1_0000_0000 (4 GiB). */
  readonly baseVa?: number;
  /** Alignment of each array's VA. Default 2 MiB. */
  readonly align?: number;
  /** Upper bound on accesses per kernel; larger requests throw (GEMM samples rows instead). Default 2^23. */
  readonly maxAccesses?: number;
  /**
   * Access resolution (default `'warp'`). `'warp'`: every warp-wide access (32 lanes, e.g. 128
   * bytes of floats). `'page'`: one access per 4 KiB page and access kind per wave (a wave is one
   * task per warp, the tasks that run side by side): the first task of the wave, in warp order,
   * keeps its access to the page and the other warps' accesses to it are dropped. See
   * {@link Resolution}.
   */
  readonly resolution?: Resolution;
}

/**
 * Access resolution of generated kernels. `'page'` keeps, for every wave, the set of pages
 * touched and the kinds they are touched with (so the pages that fault, migrate and get mapped,
 * and in which wave, are those of `'warp'`), but drops the duplicate accesses other warps make to
 * the same page in the same wave. What changes in results: access counts and TLB hits fall by
 * the accesses per page per wave (32 for streaming floats); the fault buffer sees fewer
 * duplicate faults (coalesced and duplicate counts drop) and kernel time, which the engine
 * charges per access, shrinks accordingly. Use it for footprints too large to simulate at warp
 * resolution; compare policies within one resolution, never across.
 */
export type Resolution = 'warp' | 'page';

/** {@link GeneratorParams} with defaults filled in. */
export interface ResolvedParams {
  readonly footprintBytes: number;
  readonly elemSize: number;
  readonly numSMs: number;
  readonly warpsPerSM: number;
  readonly warpsPerCta: number;
  readonly iterations: number;
  readonly seed: number;
  readonly baseVa: number;
  readonly align: number;
  readonly maxAccesses: number;
  readonly resolution: Resolution;
}

/** Default base VA of generated workloads. */
export const DEFAULT_BASE_VA = 0x1_0000_0000;

function checkInt(fn: string, name: string, v: number, lo: number, hi: number): void {
  if (!Number.isInteger(v) || v < lo || v > hi) {
    throw new ArgumentError(fn, name, `must be an integer in [${lo}, ${hi}]`, v);
  }
}

/** Fills defaults and validates; throws {@link ArgumentError} naming the bad field. */
export function resolveParams(
  fn: string,
  p: GeneratorParams,
  defaults: { readonly iterations?: number; readonly elemSize?: number } = {},
): ResolvedParams {
  const r: ResolvedParams = {
    footprintBytes: p.footprintBytes ?? 16 << 20,
    elemSize: p.elemSize ?? defaults.elemSize ?? 4,
    numSMs: p.numSMs ?? 80,
    warpsPerSM: p.warpsPerSM ?? 32,
    warpsPerCta: p.warpsPerCta ?? 8,
    iterations: p.iterations ?? defaults.iterations ?? 1,
    seed: p.seed ?? 1,
    baseVa: p.baseVa ?? DEFAULT_BASE_VA,
    align: p.align ?? 2 << 20,
    maxAccesses: p.maxAccesses ?? 1 << 23,
    resolution: p.resolution ?? 'warp',
  };
  checkInt(fn, 'params.footprintBytes', r.footprintBytes, 4096, 2 ** 40);
  if (r.elemSize !== 1 && r.elemSize !== 2 && r.elemSize !== 4 && r.elemSize !== 8) {
    throw new ArgumentError(fn, 'params.elemSize', 'must be 1, 2, 4 or 8', r.elemSize);
  }
  checkInt(fn, 'params.numSMs', r.numSMs, 1, 1024);
  checkInt(fn, 'params.warpsPerSM', r.warpsPerSM, 1, 64);
  if (r.numSMs * r.warpsPerSM > 65535) {
    throw new ArgumentError(fn, 'params.warpsPerSM', 'numSMs × warpsPerSM must be ≤ 65535', r.warpsPerSM);
  }
  checkInt(fn, 'params.warpsPerCta', r.warpsPerCta, 1, 32);
  checkInt(fn, 'params.iterations', r.iterations, 1, 1 << 20);
  checkInt(fn, 'params.seed', r.seed, 0, 2 ** 32 - 1);
  checkInt(fn, 'params.baseVa', r.baseVa, 0, 2 ** 52);
  if (r.baseVa % 4096 !== 0)
    throw new ArgumentError(fn, 'params.baseVa', 'must be a multiple of 4096', r.baseVa);
  checkInt(fn, 'params.align', r.align, 4096, 2 ** 30);
  if ((r.align & (r.align - 1)) !== 0)
    throw new ArgumentError(fn, 'params.align', 'must be a power of 2', r.align);
  checkInt(fn, 'params.maxAccesses', r.maxAccesses, 1, 2 ** 28);
  if (r.resolution !== 'warp' && r.resolution !== 'page')
    throw new ArgumentError(fn, 'params.resolution', "must be 'warp' or 'page'", r.resolution);
  return r;
}

/** Lays out arrays one after another from `baseVa`, each start aligned to `align`. */
export function layoutArrays(
  baseVa: number,
  align: number,
  specs: readonly { readonly name: string; readonly bytes: number; readonly elemSize: number }[],
): ArrayRegion[] {
  const out: ArrayRegion[] = [];
  let va = Math.ceil(baseVa / align) * align;
  for (const s of specs) {
    out.push({ name: s.name, va, bytes: s.bytes, elemSize: s.elemSize });
    va = Math.ceil((va + s.bytes) / align) * align;
  }
  return out;
}

/** Sum of region sizes. */
export function totalBytes(arrays: readonly ArrayRegion[]): number {
  let s = 0;
  for (const a of arrays) s += a.bytes;
  return s;
}

/**
 * Throws if an estimated access count exceeds the budget. At page resolution the warp-level
 * estimate says nothing about the accesses kept, so {@link dealTasks} checks the real count.
 */
export function checkBudget(fn: string, p: ResolvedParams, estimate: number): void {
  if (p.resolution === 'page') return;
  if (estimate > p.maxAccesses) {
    throw new ArgumentError(
      fn,
      'params.footprintBytes',
      `gives about ${estimate} accesses per kernel, over maxAccesses ${p.maxAccesses} (lower it or raise maxAccesses)`,
      p.footprintBytes,
    );
  }
}

/**
 * Builds warp-major streams by dealing `tasks` tasks to warps round robin (task t to warp
 * t mod warps, i.e. a grid-stride loop): warp w runs tasks w, w+warps, ... in order, and `emit`
 * pushes each task's accesses. With `p.resolution === 'page'` tasks are emitted wave by wave
 * (tasks k·warps .. k·warps + warps - 1) and only the first access of the wave to each
 * (4 KiB page, kind) is kept (see {@link Resolution}); more than `p.maxAccesses` kept accesses
 * throw an ArgumentError.
 *
 * `samePages` (a power of two, default 1) is the generator's promise that the tasks of each
 * aligned run of that many (tasks r·samePages .. r·samePages + samePages - 1) push the same
 * (page, kind) pairs. At page resolution a task whose run began earlier in the same wave is then
 * not emitted: every access it would push was kept from that run's first task in the wave, so
 * the streams are the same, without the calls.
 */
export function dealTasks(
  warps: number,
  tasks: number,
  estimate: number,
  emit: (task: number, b: AccessSink) => void,
  p: Pick<ResolvedParams, 'resolution' | 'maxAccesses'> | null = null,
  samePages = 1,
): WarpStreams {
  if (!Number.isInteger(samePages) || samePages < 1 || (samePages & (samePages - 1)) !== 0) {
    throw new ArgumentError('dealTasks', 'samePages', 'must be a power of two', samePages);
  }
  if (p !== null && p.resolution === 'page')
    return dealTasksByPage(warps, tasks, estimate, emit, p.maxAccesses, samePages);
  const b = new StreamBuilder(warps, estimate);
  for (let w = 0; w < warps; w++) {
    for (let t = w; t < tasks; t += warps) emit(t, b);
    b.endWarp();
  }
  return b.finish();
}

/** Keys a {@link WaveCollector} remembers outside its table (one per array of 8 arrays). */
const RECENT = 8;

/** Page-resolution accesses collected in wave order, with their warp, before the warp-major sort. */
class WaveCollector implements AccessSink {
  warp = 0;
  n = 0;
  vas: Float64Array;
  kinds: Uint8Array;
  sizes: Uint16Array;
  warps: Uint16Array;
  /**
   * Keys (4 KiB page × 4 + kind) accessed in the current wave: an open-addressing table whose
   * entries count only when stamped with the current wave, so a new wave clears nothing.
   */
  private keys = new Float64Array(4096);
  private stamps = new Int32Array(4096);
  private wave = 1;
  private inWave = 0;
  readonly max: number;

  constructor(capacity: number, max: number) {
    this.vas = new Float64Array(capacity);
    this.kinds = new Uint8Array(capacity);
    this.sizes = new Uint16Array(capacity);
    this.warps = new Uint16Array(capacity);
    this.max = max;
  }

  /**
   * The last {@link RECENT} keys recorded in this wave (-1: none), checked before the table:
   * neighbouring tasks touch the same pages, so most repeats are recent.
   */
  private readonly recent = new Float64Array(RECENT).fill(-1);
  private recentAt = 0;

  /** Starts a new wave: every page may be accessed once more. */
  nextWave(): void {
    this.wave++;
    this.inWave = 0;
    this.recent.fill(-1);
  }

  /** Records `key` in the current wave; false when it was already there. */
  private firstInWave(key: number): boolean {
    const recent = this.recent;
    for (let r = 0; r < RECENT; r++) if (recent[r] === key) return false;
    recent[this.recentAt] = key;
    this.recentAt = (this.recentAt + 1) % RECENT;
    const mask = this.keys.length - 1;
    const wave = this.wave;
    for (let h = modPow2(key, mask + 1); ; h = (h + 1) & mask) {
      if (this.stamps[h] !== wave) {
        this.stamps[h] = wave;
        this.keys[h] = key;
        if (++this.inWave * 2 > this.keys.length) this.growTable();
        return true;
      }
      if (this.keys[h] === key) return false;
    }
  }

  private growTable(): void {
    const oldKeys = this.keys;
    const oldStamps = this.stamps;
    const size = oldKeys.length * 2;
    this.keys = new Float64Array(size);
    this.stamps = new Int32Array(size);
    const mask = size - 1;
    for (let i = 0; i < oldKeys.length; i++) {
      if (oldStamps[i] !== this.wave) continue;
      let h = modPow2(oldKeys[i]!, size);
      while (this.stamps[h] === this.wave) h = (h + 1) & mask;
      this.stamps[h] = this.wave;
      this.keys[h] = oldKeys[i]!;
    }
  }

  push(va: number, kind: AccessKind, size: number): void {
    if (!this.firstInWave(Math.floor(va / 4096) * 4 + kind)) return;
    if (this.n === this.max) {
      throw new ArgumentError(
        'dealTasks',
        'params.maxAccesses',
        `is exceeded by the page-resolution accesses of one kernel (raise it or lower footprintBytes)`,
        this.max,
      );
    }
    if (this.n === this.vas.length) this.grow();
    const i = this.n++;
    this.vas[i] = va;
    this.kinds[i] = kind;
    this.sizes[i] = size;
    this.warps[i] = this.warp;
  }

  private grow(): void {
    const cap = this.vas.length * 2;
    const v = new Float64Array(cap);
    v.set(this.vas);
    const k = new Uint8Array(cap);
    k.set(this.kinds);
    const s = new Uint16Array(cap);
    s.set(this.sizes);
    const w = new Uint16Array(cap);
    w.set(this.warps);
    this.vas = v;
    this.kinds = k;
    this.sizes = s;
    this.warps = w;
  }
}

function dealTasksByPage(
  warps: number,
  tasks: number,
  estimate: number,
  emit: (task: number, b: AccessSink) => void,
  maxAccesses: number,
  samePages: number,
): WarpStreams {
  const c = new WaveCollector(Math.max(16, Math.min(estimate, 1 << 20)), maxAccesses);
  for (let k = 0; k < tasks; k += warps) {
    c.nextWave();
    const end = Math.min(tasks, k + warps);
    for (let t = k; t < end; t++) {
      // a task inside a run whose first task in this wave was emitted pushes only repeats
      if (t !== k && modPow2(t, samePages) !== 0) continue;
      c.warp = t - k;
      emit(t, c);
    }
  }
  // Counting sort by warp (stable: each warp keeps its wave order).
  const n = c.n;
  const warpStart = new Int32Array(warps + 1);
  for (let i = 0; i < n; i++) warpStart[c.warps[i]! + 1]!++;
  for (let w = 0; w < warps; w++) warpStart[w + 1]! += warpStart[w]!;
  const at = warpStart.slice(0, warps);
  const vas = new Float64Array(n);
  const access = new Uint8Array(n);
  const sizes = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    const j = at[c.warps[i]!]!++;
    vas[j] = c.vas[i]!;
    access[j] = c.kinds[i]!;
    sizes[j] = c.sizes[i]!;
  }
  return { vas, access, sizes, warpStart };
}

/** Assembles a {@link Kernel} from streams and metadata. */
export function makeKernel(
  name: string,
  pattern: PatternClass,
  p: ResolvedParams,
  arrays: readonly ArrayRegion[],
  streams: WarpStreams,
): Kernel {
  return {
    name,
    pattern,
    numSMs: p.numSMs,
    warpsPerSM: p.warpsPerSM,
    warpsPerCta: p.warpsPerCta,
    warps: streams.warpStart.length - 1,
    arrays,
    footprintBytes: totalBytes(arrays),
    streams,
    accesses: streams.vas.length,
  };
}

/** Warps in flight for resolved params. */
export function warpCount(p: ResolvedParams): number {
  return p.numSMs * p.warpsPerSM;
}

/** Builds a GPU-only {@link Workload} of `kernelCount` kernel phases yielded by `phases`. */
export function makeWorkload(
  name: string,
  pattern: PatternClass,
  params: ResolvedParams,
  arrays: readonly ArrayRegion[],
  kernelCount: number,
  phases: () => Generator<Phase, void, undefined>,
): Workload {
  return {
    name,
    pattern,
    params,
    arrays,
    footprintBytes: totalBytes(arrays),
    phaseCount: kernelCount,
    kernelCount,
    phases,
  };
}

/** All kernels of a workload (drops CPU phases). Builds every kernel: for small workloads and tests. */
export function kernelsOf(w: Workload): Kernel[] {
  const out: Kernel[] = [];
  for (const ph of w.phases()) if (ph.type === 'kernel') out.push(ph.kernel);
  return out;
}
