/**
 * Sweeps: workloads × granule policies × notifier granularity × cost-model overrides (× seeds),
 * one {@link runExperiment} per cell, on worker threads (tinypool, at most
 * `availableParallelism()` threads) or inline. Results come back in cell order whatever the
 * completion order, so a sweep's output is deterministic (except the `wallMs` column).
 *
 * @module
 */
import { availableParallelism } from 'node:os';
import { ArgumentError, type CostParamName } from '@hmmkit/sim';
import Tinypool from 'tinypool';
import {
  costLabelOf,
  type ExperimentSpec,
  type Metrics,
  type Placement,
  type ReplayPolicy,
  type ResolvedSpec,
  resolveSpec,
  runExperiment,
  type WorkloadSpec,
} from './experiment.ts';

/** A named set of cost-model overrides. */
export interface CostVariant {
  readonly label: string;
  readonly overrides: Readonly<Partial<Record<CostParamName, number>>>;
}

/** A sweep: the cross product of its lists. Plain JSON. */
export interface SweepSpec {
  readonly workloads: readonly WorkloadSpec[];
  readonly granules: readonly string[];
  readonly notifiers: readonly string[];
  /**
   * Eviction policies of the device-memory pool (EVICTION_POLICIES; placement 'vram' or
   * 'counters'). Default
   * ['lru-chunk'] (UVM's). Tables and policy keys name a non-default one as `granule+eviction`.
   */
  readonly evictions?: readonly string[];
  /**
   * Granule policies used from the device pool's first eviction on (ExperimentSpec.granuleOnceFull:
   * UVMSmart's `-hwprefetch_oversub`), or 'same' for no switch. Default ['same']. Tables and
   * policy keys name a switch as `granule>granuleOnceFull`.
   */
  readonly granulesOnceFull?: readonly string[];
  /** Cost variants (default: the default model only). */
  readonly costs?: readonly CostVariant[];
  /** Seeds (default [1]). */
  readonly seeds?: readonly number[];
  readonly devices?: number;
  readonly vramBytes?: number;
  readonly placement?: Placement;
  /** Access-counter threshold of placement 'counters' (default 256). */
  readonly accessCounterThreshold?: number;
  readonly replay?: ReplayPolicy;
  /** Scheduler step budget of each phase of each cell (default {@link DEFAULT_MAX_STEPS}). */
  readonly maxSteps?: number;
  /** Wall-clock budget of each cell in ms (default 0: none). */
  readonly timeoutMs?: number;
}

/** One finished cell. */
export interface CellResult {
  /** Index of the cell in the whole sweep ({@link expandSweep} order), whatever the shard. */
  readonly index: number;
  readonly spec: ResolvedSpec;
  readonly metrics: Metrics;
}

/** Why a cell failed: its scheduler step budget, its wall-clock budget, or an error. */
export type FailureKind = 'steps' | 'timeout' | 'error';

/** A cell that did not finish: what went wrong and the exact command that replays it. */
export interface CellFailure {
  readonly index: number;
  readonly spec: ResolvedSpec;
  readonly kind: FailureKind;
  /** The error message (for a failed task it names the task, the seed and the step count). */
  readonly error: string;
  /** A shell command that re-runs exactly this cell on one thread (`hmmkit cell '<spec>'`). */
  readonly replay: string;
}

/** A shard of a sweep: the cells whose index ≡ `index` (mod `count`). */
export interface Shard {
  readonly index: number;
  readonly count: number;
}

/** A finished sweep (what `hmmkit sweep` writes and `hmmkit report` / `hmmkit merge` read). */
export interface SweepResult {
  readonly format: 'hmmkit-sweep/1';
  readonly sweep: SweepSpec;
  /** Cells that finished, in cell order. */
  readonly cells: readonly CellResult[];
  /** Cells that failed or ran out of budget, in cell order (absent in files of older versions). */
  readonly failures?: readonly CellFailure[];
  /** Cells of the whole sweep (all shards). */
  readonly totalCells?: number;
  /** The shard this result covers (absent: the whole sweep, or a merge of every shard). */
  readonly shard?: Shard;
  /** Threads used (0 = inline). */
  readonly threads: number;
  /** Host wall-clock time of the whole sweep (ms). */
  readonly wallMs: number;
}

/**
 * The default sweep behind `hmmkit sweep` and the README: 3 workloads (a stream with CPU
 * ping-pong, a stencil racing a munmap storm, sparse random updates) × 4 granule policies × 2
 * notifier policies = 24 small cells (about 15 s on 2 busy cores).
 */
export const DEFAULT_SWEEP: SweepSpec = {
  workloads: [
    {
      generator: 'streaming',
      params: { footprintBytes: 4 << 20 },
      cpu: 'pingpong',
      label: 'stream+pingpong',
    },
    {
      generator: 'stencil',
      params: { footprintBytes: 2 << 20, iterations: 2 },
      cpu: 'storm',
      label: 'stencil+munmap-storm',
    },
    {
      generator: 'randomAccess',
      params: { footprintBytes: 8 << 20, updates: 2048, numSMs: 20 },
      label: 'random-sparse',
    },
  ],
  granules: ['4k', 'xe', 'amdkfd', 'uvm-tree'],
  notifiers: ['window-512M', 'per-range'],
  costs: [{ label: 'default', overrides: {} }],
  seeds: [1],
  placement: 'vram',
  // smaller than the stream's and the random table's footprint: eviction shows up
  vramBytes: 4 << 20,
};

/** `xs` without repeats (first occurrence kept, by `key`). */
function unique<T>(xs: readonly T[], key: (x: T) => string): T[] {
  const seen = new Set<string>();
  return xs.filter((x) => {
    const k = key(x);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** The {@link SweepSpec.granulesOnceFull} value meaning "no switch once full". */
export const SAME_GRANULE = 'same';

/** The (granule, granule once full) pairs of a sweep; a switch to the granule itself is none. */
function granulePairs(sweep: SweepSpec): [string, string | undefined][] {
  if (sweep.granulesOnceFull !== undefined && sweep.granulesOnceFull.length === 0)
    throw new ArgumentError('expandSweep', 'granulesOnceFull', 'must not be empty when given', 0);
  const pairs: [string, string | undefined][] = [];
  for (const g of unique(sweep.granules, String)) {
    for (const o of sweep.granulesOnceFull ?? [SAME_GRANULE]) {
      pairs.push([g, o === SAME_GRANULE || o === g ? undefined : o]);
    }
  }
  return unique(pairs, (p) => `${p[0]}>${p[1]}`);
}

/**
 * Expands a sweep into its cells, in a fixed order (workload, granule, granule once full,
 * eviction, notifier, costs, seed).
 * A value listed twice yields its cells once.
 */
export function expandSweep(sweep: SweepSpec): ExperimentSpec[] {
  const fn = 'expandSweep';
  if (sweep.workloads.length === 0) throw new ArgumentError(fn, 'workloads', 'must not be empty', 0);
  if (sweep.granules.length === 0) throw new ArgumentError(fn, 'granules', 'must not be empty', 0);
  if (sweep.notifiers.length === 0) throw new ArgumentError(fn, 'notifiers', 'must not be empty', 0);
  const costs = unique(sweep.costs ?? [{ label: 'default', overrides: {} }], (c) => c.label);
  const seeds = unique(sweep.seeds ?? [1], String);
  if (sweep.evictions !== undefined && sweep.evictions.length === 0)
    throw new ArgumentError(fn, 'evictions', 'must not be empty when given', 0);
  const evictions: readonly (string | undefined)[] =
    sweep.evictions === undefined ? [undefined] : unique(sweep.evictions, String);
  const out: ExperimentSpec[] = [];
  for (const workload of unique(sweep.workloads, (w) => JSON.stringify(w))) {
    for (const [granule, onceFull] of granulePairs(sweep)) {
      for (const eviction of evictions) {
        for (const notifier of unique(sweep.notifiers, String)) {
          for (const c of costs) {
            for (const seed of seeds) {
              const spec: ExperimentSpec = {
                workload,
                granule,
                notifier,
                ...(onceFull !== undefined ? { granuleOnceFull: onceFull } : {}),
                ...(eviction !== undefined ? { eviction } : {}),
                costs: c.overrides,
                costLabel: c.label,
                seed,
                ...(sweep.devices !== undefined ? { devices: sweep.devices } : {}),
                ...(sweep.vramBytes !== undefined ? { vramBytes: sweep.vramBytes } : {}),
                ...(sweep.placement !== undefined ? { placement: sweep.placement } : {}),
                ...(sweep.accessCounterThreshold !== undefined
                  ? { accessCounterThreshold: sweep.accessCounterThreshold }
                  : {}),
                ...(sweep.replay !== undefined ? { replay: sweep.replay } : {}),
                ...(sweep.maxSteps !== undefined ? { maxSteps: sweep.maxSteps } : {}),
                ...(sweep.timeoutMs !== undefined ? { timeoutMs: sweep.timeoutMs } : {}),
              };
              resolveSpec(spec); // validate every cell before running any
              out.push(spec);
            }
          }
        }
      }
    }
  }
  return out;
}

/** Parses a cost variant `name=value,name=value` (or 'default'). */
export function parseCostVariant(text: string): CostVariant {
  const t = text.trim();
  if (t === '' || t === 'default') return { label: 'default', overrides: {} };
  const overrides: Record<string, number> = {};
  for (const part of t.split(',')) {
    const [k, v] = part.split('=');
    const value = Number(v);
    if (k === undefined || v === undefined || k.trim() === '' || v.trim() === '' || !Number.isFinite(value)) {
      throw new ArgumentError('parseCostVariant', 'text', 'must be name=value[,name=value...]', text);
    }
    overrides[k.trim()] = value;
  }
  return { label: costLabelOf(overrides), overrides };
}

/** Options of {@link runSweep}. */
export interface RunSweepOptions {
  /**
   * Worker threads: 0 runs the cells inline on this thread; default
   * min(availableParallelism(), cells). Capped at availableParallelism().
   */
  readonly threads?: number;
  /**
   * Worker code: 'auto' (default: the tsx shim when running sources, `worker.js` when running
   * built code), 'dist' (this package's `dist/worker.js` with `--conditions=dist`, so workers load
   * built JavaScript only: run `turbo run build` first), or 'tsx' (the shim).
   */
  readonly worker?: 'auto' | 'dist' | 'tsx';
  /**
   * Write each cell's timeline (Chrome trace-event JSON): to this file when the run has one cell,
   * else to `<file without .json>.cell-<index>.json`.
   */
  readonly timeline?: string;
  /** Run only this shard's cells (default: every cell). */
  readonly shard?: Shard;
  /**
   * On worker threads, a cell still running this long after its own `timeoutMs` budget (the cell
   * checks it between scheduler steps) has its worker terminated (default 5000 ms).
   */
  readonly killGraceMs?: number;
  /**
   * Called after each finished or failed cell (in completion order) with the count done and the
   * total of this run.
   */
  readonly onProgress?: (done: number, total: number, cell: CellResult | CellFailure) => void;
}

/**
 * The young generation of each sweep worker (MiB). A cell allocates short-lived objects fast
 * (fault batches, migrate arrays, trace records); with a worker's default young generation its
 * scavenges cost a quarter of the CPU on two workers at once. 96 MiB (32 MiB semi-spaces) made a
 * 72-cell sweep of 8×-footprint default cells 1.33× → 1.6–1.7× faster on 2 workers than on 1
 * (`tsx packages/bench/bench/sweep-workers.bench.ts`), for about 100 MiB more RSS per worker.
 */
const WORKER_YOUNG_GENERATION_MB = 96;

/**
 * The worker module: `worker.mjs` (tsx shim) when running from sources, `worker.js` next to
 * this file when running built code (`node --conditions=dist`).
 */
export function workerFile(kind: 'auto' | 'dist' | 'tsx' = 'auto'): URL {
  const fromSources = import.meta.url.endsWith('.ts');
  if (kind === 'dist') return new URL(fromSources ? '../dist/worker.js' : './worker.js', import.meta.url);
  if (kind === 'tsx') return new URL(fromSources ? './worker.mjs' : '../src/worker.mjs', import.meta.url);
  return fromSources ? new URL('./worker.mjs', import.meta.url) : new URL('./worker.js', import.meta.url);
}

/** Quotes `s` for a POSIX shell. */
export function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", "'\\''")}'`;
}

/** The command that re-runs one cell exactly (same spec, same seed, inline): `hmmkit cell`. */
export function replayCommand(spec: ResolvedSpec): string {
  return `npm run hmmkit -- cell ${shellQuote(JSON.stringify(spec))}`;
}

/** Parses `i/N` (0 ≤ i < N) as a {@link Shard}. */
export function parseShard(text: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = m === null ? Number.NaN : Number(m[1]);
  const count = m === null ? Number.NaN : Number(m[2]);
  if (!(count >= 1) || !(index >= 0) || index >= count) {
    throw new ArgumentError('parseShard', 'text', 'must be i/N with 0 ≤ i < N (e.g. 0/4)', text);
  }
  return { index, count };
}

/** Classifies a cell's error. */
function failureOf(index: number, spec: ResolvedSpec, e: unknown, killedAfterMs: number | null): CellFailure {
  const killed = killedAfterMs !== null;
  const msg = killed
    ? `worker terminated: the cell was still running ${killedAfterMs} ms after it started (time budget ${spec.timeoutMs} ms)`
    : e instanceof Error
      ? e.message
      : String(e);
  const kind: FailureKind =
    killed || /time budget/.test(msg) ? 'timeout' : /more than \d+ steps/.test(msg) ? 'steps' : 'error';
  return { index, spec, kind, error: msg, replay: replayCommand(spec) };
}

/**
 * Runs every cell of `sweep` (or of one shard); results in cell order. A cell that throws, runs
 * past its step budget or its time budget becomes a {@link CellFailure} (with the command that
 * replays it); every other cell still runs and is returned.
 */
export async function runSweep(sweep: SweepSpec, opts: RunSweepOptions = {}): Promise<SweepResult> {
  const t0 = performance.now();
  const all = expandSweep(sweep);
  const shard = opts.shard;
  if (shard !== undefined) parseShard(`${shard.index}/${shard.count}`);
  const mine: number[] = [];
  for (let i = 0; i < all.length; i++)
    if (shard === undefined || i % shard.count === shard.index) mine.push(i);
  const max = availableParallelism();
  const requested = opts.threads ?? Math.min(max, mine.length);
  if (!Number.isInteger(requested) || requested < 0) {
    throw new ArgumentError('runSweep', 'opts.threads', 'must be a non-negative integer', requested);
  }
  const threads = Math.min(requested, max, mine.length);
  if (opts.timeline !== undefined) {
    const t = opts.timeline;
    for (const i of mine) {
      const file = mine.length === 1 ? t : `${t.replace(/\.json$/, '')}.cell-${i}.json`;
      all[i] = { ...all[i]!, timelineFile: file };
    }
  }
  const results: (CellResult | undefined)[] = new Array(all.length);
  const failures: (CellFailure | undefined)[] = new Array(all.length);
  let done = 0;
  const finish = (i: number, metrics: Metrics): void => {
    const r: CellResult = { index: i, spec: resolveSpec(all[i]!), metrics };
    results[i] = r;
    opts.onProgress?.(++done, mine.length, r);
  };
  const fail = (i: number, e: unknown, killedAfterMs: number | null = null): void => {
    const f = failureOf(i, resolveSpec(all[i]!), e, killedAfterMs);
    failures[i] = f;
    opts.onProgress?.(++done, mine.length, f);
  };
  if (threads === 0) {
    for (const i of mine) {
      try {
        finish(i, await runExperiment(all[i]!));
      } catch (e) {
        fail(i, e);
      }
    }
  } else {
    const kind = opts.worker ?? 'auto';
    const pool = new Tinypool({
      filename: workerFile(kind).href,
      ...(kind === 'dist' ? { execArgv: [...process.execArgv, '--conditions=dist'] } : {}),
      minThreads: threads,
      maxThreads: threads,
      idleTimeout: 1000,
      resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB },
    });
    const grace = opts.killGraceMs ?? 5000;
    let next = 0;
    // one runner per thread, so a cell's kill timer starts when the cell starts
    const runner = async (): Promise<void> => {
      while (next < mine.length) {
        const i = mine[next++]!;
        const budget = resolveSpec(all[i]!).timeoutMs;
        const ac = budget > 0 ? new AbortController() : null;
        const timer = ac !== null ? setTimeout(() => ac.abort(), budget + grace) : null;
        try {
          finish(i, (await pool.run(all[i], ac !== null ? { signal: ac.signal } : {})) as Metrics);
        } catch (e) {
          fail(i, e, ac?.signal.aborted === true ? budget + grace : null);
        } finally {
          if (timer !== null) clearTimeout(timer);
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: threads }, runner));
    } finally {
      await pool.destroy();
    }
  }
  return {
    format: 'hmmkit-sweep/1',
    sweep,
    cells: results.filter((r) => r !== undefined),
    failures: failures.filter((f) => f !== undefined),
    totalCells: all.length,
    ...(shard !== undefined && shard.count > 1 ? { shard } : {}),
    threads,
    wallMs: Math.round(performance.now() - t0),
  };
}

/**
 * Merges the results of the shards of one sweep (`hmmkit merge`): the same sweep spec in every
 * part, no cell twice, and (unless `partial`) every cell of the sweep present, finished or failed.
 * Cells come out in cell order, so the merge of `sweep --shard i/N` for every i equals the
 * one-machine run cell for cell. `threads` is the largest part's, `wallMs` the longest part's.
 */
export function mergeResults(parts: readonly SweepResult[], opts: { partial?: boolean } = {}): SweepResult {
  const fn = 'mergeResults';
  if (parts.length === 0) throw new ArgumentError(fn, 'parts', 'must not be empty', 0);
  const first = parts[0]!;
  const specJson = JSON.stringify(first.sweep);
  const total = first.totalCells ?? expandSweep(first.sweep).length;
  const seen = new Map<number, number>();
  const cells: CellResult[] = [];
  const failures: CellFailure[] = [];
  parts.forEach((p, k) => {
    if (p.format !== 'hmmkit-sweep/1')
      throw new ArgumentError(fn, `parts[${k}].format`, 'must be hmmkit-sweep/1', p.format);
    if (JSON.stringify(p.sweep) !== specJson) {
      throw new ArgumentError(fn, `parts[${k}].sweep`, 'must be the same sweep spec as parts[0]', k);
    }
    for (const c of [...p.cells, ...(p.failures ?? [])]) {
      const prev = seen.get(c.index);
      if (prev !== undefined) {
        throw new ArgumentError(
          fn,
          `parts[${k}]`,
          `repeats cell ${c.index} (also in parts[${prev}])`,
          c.index,
        );
      }
      seen.set(c.index, k);
    }
    cells.push(...p.cells);
    failures.push(...(p.failures ?? []));
  });
  if (opts.partial !== true && seen.size !== total) {
    const missing: number[] = [];
    for (let i = 0; i < total && missing.length < 10; i++) if (!seen.has(i)) missing.push(i);
    throw new ArgumentError(
      fn,
      'parts',
      `cover ${seen.size} of ${total} cells (missing ${missing.join(', ')}${total - seen.size > missing.length ? ', ...' : ''}): a shard is missing`,
      seen.size,
    );
  }
  cells.sort((a, b) => a.index - b.index);
  failures.sort((a, b) => a.index - b.index);
  return {
    format: 'hmmkit-sweep/1',
    sweep: first.sweep,
    cells,
    failures,
    totalCells: total,
    threads: Math.max(...parts.map((p) => p.threads)),
    wallMs: Math.max(...parts.map((p) => p.wallMs)),
  };
}
