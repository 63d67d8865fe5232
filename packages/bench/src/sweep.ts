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
  /** Cost variants (default: the default model only). */
  readonly costs?: readonly CostVariant[];
  /** Seeds (default [1]). */
  readonly seeds?: readonly number[];
  readonly devices?: number;
  readonly vramBytes?: number;
  readonly placement?: Placement;
  readonly replay?: ReplayPolicy;
}

/** One finished cell. */
export interface CellResult {
  readonly index: number;
  readonly spec: ResolvedSpec;
  readonly metrics: Metrics;
}

/** A finished sweep (what `hmmkit sweep --json` writes and `hmmkit report` reads). */
export interface SweepResult {
  readonly format: 'hmmkit-sweep/1';
  readonly sweep: SweepSpec;
  readonly cells: readonly CellResult[];
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

/** Expands a sweep into its cells, in a fixed order (workload, granule, notifier, costs, seed). */
export function expandSweep(sweep: SweepSpec): ExperimentSpec[] {
  const fn = 'expandSweep';
  if (sweep.workloads.length === 0) throw new ArgumentError(fn, 'workloads', 'must not be empty', 0);
  if (sweep.granules.length === 0) throw new ArgumentError(fn, 'granules', 'must not be empty', 0);
  if (sweep.notifiers.length === 0) throw new ArgumentError(fn, 'notifiers', 'must not be empty', 0);
  const costs = sweep.costs ?? [{ label: 'default', overrides: {} }];
  const seeds = sweep.seeds ?? [1];
  const out: ExperimentSpec[] = [];
  for (const workload of sweep.workloads) {
    for (const granule of sweep.granules) {
      for (const notifier of sweep.notifiers) {
        for (const c of costs) {
          for (const seed of seeds) {
            const spec: ExperimentSpec = {
              workload,
              granule,
              notifier,
              costs: c.overrides,
              costLabel: c.label,
              seed,
              ...(sweep.devices !== undefined ? { devices: sweep.devices } : {}),
              ...(sweep.vramBytes !== undefined ? { vramBytes: sweep.vramBytes } : {}),
              ...(sweep.placement !== undefined ? { placement: sweep.placement } : {}),
              ...(sweep.replay !== undefined ? { replay: sweep.replay } : {}),
            };
            resolveSpec(spec); // validate every cell before running any
            out.push(spec);
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
  /** Called after each finished cell (in completion order) with the count done and the total. */
  readonly onProgress?: (done: number, total: number, cell: CellResult) => void;
}

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

/** Runs every cell of `sweep`; results in cell order. */
export async function runSweep(sweep: SweepSpec, opts: RunSweepOptions = {}): Promise<SweepResult> {
  const t0 = performance.now();
  const cells = expandSweep(sweep);
  const max = availableParallelism();
  const requested = opts.threads ?? Math.min(max, cells.length);
  if (!Number.isInteger(requested) || requested < 0) {
    throw new ArgumentError('runSweep', 'opts.threads', 'must be a non-negative integer', requested);
  }
  const threads = Math.min(requested, max, cells.length);
  const results: CellResult[] = new Array(cells.length);
  let done = 0;
  const finish = (i: number, metrics: Metrics): void => {
    const r: CellResult = { index: i, spec: resolveSpec(cells[i]!), metrics };
    results[i] = r;
    done++;
    opts.onProgress?.(done, cells.length, r);
  };
  if (threads === 0) {
    for (let i = 0; i < cells.length; i++) finish(i, await runExperiment(cells[i]!));
  } else {
    const kind = opts.worker ?? 'auto';
    const pool = new Tinypool({
      filename: workerFile(kind).href,
      ...(kind === 'dist' ? { execArgv: [...process.execArgv, '--conditions=dist'] } : {}),
      minThreads: threads,
      maxThreads: threads,
      idleTimeout: 1000,
    });
    try {
      await Promise.all(
        cells.map(async (spec, i) => {
          finish(i, (await pool.run(spec)) as Metrics);
        }),
      );
    } finally {
      await pool.destroy();
    }
  }
  return {
    format: 'hmmkit-sweep/1',
    sweep,
    cells: results,
    threads,
    wallMs: Math.round(performance.now() - t0),
  };
}
