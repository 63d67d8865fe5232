/**
 * The answer of a sweep: for each workload, the policy with the lowest mean simulated time, its
 * speed-up against a named baseline policy with a 95 % confidence interval across seeds, and what
 * it costs in bytes migrated and over-fetched. Printed under the table and at the top of the
 * report.
 *
 * A *policy* is one (granule, notifier, cost variant) combination. The speed-up of policy P over
 * baseline B on a workload is, per seed s, `simTime(B, s) / simTime(P, s)` (paired by seed: the
 * same seed gives the same workload and the same scheduler choices); the reported value is the
 * geometric mean over seeds, and the interval is a Student-t 95 % interval on the mean of the
 * log ratios, exponentiated. With one seed there is no interval.
 *
 * @module
 */
import type { ResolvedSpec } from './experiment.ts';
import { granuleLabel } from './policies.ts';
import type { CellResult, SweepResult } from './sweep.ts';

/**
 * A policy key: granule/notifier, plus `/costs` when the cost variant is not 'default'; the
 * granule part is {@link granuleLabel} (`granule>granuleOnceFull+eviction` when those are set).
 */
export function policyOf(spec: ResolvedSpec): string {
  const g = granuleLabel(spec);
  return spec.costLabel === 'default' ? `${g}/${spec.notifier}` : `${g}/${spec.notifier}/${spec.costLabel}`;
}

/** Two-sided 95 % Student-t quantiles for 1..30 degrees of freedom (beyond: 1.96). */
const T975 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131,
  2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042,
];

/** The 0.975 quantile of Student's t with `df` degrees of freedom. */
export function tQuantile975(df: number): number {
  return df >= 1 && df <= 30 ? T975[df - 1]! : 1.96;
}

/** Mean and 95 % interval of a sample (interval null with fewer than 2 values). */
export interface Estimate {
  readonly mean: number;
  readonly lo: number | null;
  readonly hi: number | null;
  readonly n: number;
}

/** Mean and Student-t 95 % interval of `xs`. */
export function meanCi(xs: readonly number[]): Estimate {
  const n = xs.length;
  const mean = xs.reduce((s, x) => s + x, 0) / n;
  if (n < 2) return { mean, lo: null, hi: null, n };
  const v = xs.reduce((s, x) => s + (x - mean) ** 2, 0) / (n - 1);
  const h = tQuantile975(n - 1) * Math.sqrt(v / n);
  return { mean, lo: mean - h, hi: mean + h, n };
}

/** Geometric mean of ratios with the 95 % interval computed on their logs. */
export function ratioCi(ratios: readonly number[]): Estimate {
  const e = meanCi(ratios.map(Math.log));
  return {
    mean: Math.exp(e.mean),
    lo: e.lo === null ? null : Math.exp(e.lo),
    hi: e.hi === null ? null : Math.exp(e.hi),
    n: e.n,
  };
}

/** The recommendation for one workload. */
export interface Recommendation {
  readonly workload: string;
  /** The policy with the lowest mean simulated time (among those with no oracle violation). */
  readonly best: string;
  readonly baseline: string;
  /** baseline time / best time, geometric mean over the seeds both have, with its 95 % interval. */
  readonly speedup: Estimate;
  /** Mean simulated time (ns) of best and baseline. */
  readonly bestTimeNs: number;
  readonly baselineTimeNs: number;
  /** Mean bytes migrated / over-fetched of best and baseline. */
  readonly bestMigrated: number;
  readonly baselineMigrated: number;
  readonly bestOverFetched: number;
  readonly baselineOverFetched: number;
  /** Mean warps cancelled in best's cells (non-zero: some work was not done). */
  readonly bestFailedWarps: number;
  /** Seeds both policies finished. */
  readonly seeds: readonly number[];
  /** Whether the interval excludes 1 (the difference is more than seed noise). */
  readonly significant: boolean;
  /** The second-fastest policy and its speed-up against the baseline (below 1: slower). */
  readonly runnerUp: { readonly policy: string; readonly speedup: number } | null;
}

/** Which baseline policy a sweep compares against. */
export interface BaselineChoice {
  /**
   * Granule policy, as `granule+eviction` for a non-default eviction (default '4k' when the sweep
   * has it — demand paging, no fault-around — else the first).
   */
  readonly granule?: string;
  /** Notifier policy (default: the sweep's first). */
  readonly notifier?: string;
  /** Cost variant label (default: the sweep's first). */
  readonly costs?: string;
}

/** Parses `granule[/notifier[/costs]]`. */
export function parseBaseline(text: string): BaselineChoice {
  const [granule, notifier, ...costs] = text.split('/');
  return {
    ...(granule ? { granule } : {}),
    ...(notifier ? { notifier } : {}),
    ...(costs.length > 0 ? { costs: costs.join('/') } : {}),
  };
}

const mean = (xs: readonly number[]): number => xs.reduce((s, x) => s + x, 0) / xs.length;

/** The baseline policy key of a sweep result. */
export function baselineOf(result: Pick<SweepResult, 'cells'>, choice: BaselineChoice = {}): string {
  const cells = result.cells;
  const granules = [...new Set(cells.map((c) => granuleLabel(c.spec)))];
  const notifiers = [...new Set(cells.map((c) => c.spec.notifier))];
  const costs = [...new Set(cells.map((c) => c.spec.costLabel))];
  const g = choice.granule ?? (granules.includes('4k') ? '4k' : granules[0]);
  const n = choice.notifier ?? notifiers[0];
  const c = choice.costs ?? costs[0] ?? 'default';
  return c === 'default' ? `${g}/${n}` : `${g}/${n}/${c}`;
}

/** A workload the sweep could not answer for, and why. */
export interface NoRecommendation {
  readonly workload: string;
  readonly reason: string;
}

/** Recommendations, plus the workloads left without one. */
export interface Answer {
  readonly recommendations: readonly Recommendation[];
  readonly unanswered: readonly NoRecommendation[];
}

/**
 * The {@link Answer} of a sweep: one {@link Recommendation} per workload (sweep order); a
 * workload whose baseline has no finished cell, or whose every policy has oracle violations, is
 * listed as unanswered with the reason (failed cells are in `failures`).
 */
export function answer(result: Pick<SweepResult, 'cells' | 'failures'>, choice: BaselineChoice = {}): Answer {
  const recommendations = recommend(result, choice);
  const baseline = baselineOf(result, choice);
  const done = new Set(recommendations.map((r) => r.workload));
  const all = [
    ...new Set([
      ...result.cells.map((c) => c.spec.workload.label),
      ...(result.failures ?? []).map((f) => f.spec.workload.label),
    ]),
  ];
  const unanswered = all
    .filter((w) => !done.has(w))
    .map((w) => {
      const cells = result.cells.filter((c) => c.spec.workload.label === w);
      const reason = !cells.some((c) => policyOf(c.spec) === baseline)
        ? `the baseline ${baseline} has no finished cell`
        : 'every policy has oracle violations';
      return { workload: w, reason };
    });
  return { recommendations, unanswered };
}

/**
 * One {@link Recommendation} per workload (sweep order). Workloads where the baseline has no
 * finished cell, or every policy has oracle violations, are left out (see {@link answer}).
 */
export function recommend(result: Pick<SweepResult, 'cells'>, choice: BaselineChoice = {}): Recommendation[] {
  const baseline = baselineOf(result, choice);
  const byWorkload = new Map<string, Map<string, CellResult[]>>();
  for (const c of result.cells) {
    const w = c.spec.workload.label;
    let m = byWorkload.get(w);
    if (m === undefined) {
      m = new Map();
      byWorkload.set(w, m);
    }
    const p = policyOf(c.spec);
    const list = m.get(p);
    if (list === undefined) m.set(p, [c]);
    else list.push(c);
  }
  const out: Recommendation[] = [];
  for (const [workload, policies] of byWorkload) {
    const base = policies.get(baseline);
    if (base === undefined) continue;
    const ranked: [string, number][] = [];
    for (const [p, cells] of policies) {
      if (cells.some((c) => c.metrics.oracleViolations > 0)) continue;
      ranked.push([p, mean(cells.map((c) => c.metrics.simTimeNs))]);
    }
    ranked.sort((x, y) => x[1] - y[1]); // stable: ties keep sweep order
    if (ranked.length === 0) continue;
    const [best, bestMean] = ranked[0]!;
    const baseMean = mean(base.map((c) => c.metrics.simTimeNs));
    const second = ranked[1];
    const bestCells = policies.get(best)!;
    const baseBySeed = new Map(base.map((c) => [c.spec.seed, c]));
    const seeds: number[] = [];
    const ratios: number[] = [];
    for (const c of bestCells) {
      const b = baseBySeed.get(c.spec.seed);
      if (b === undefined || c.metrics.simTimeNs <= 0) continue;
      seeds.push(c.spec.seed);
      ratios.push(b.metrics.simTimeNs / c.metrics.simTimeNs);
    }
    if (ratios.length === 0) continue;
    const speedup = ratioCi(ratios);
    out.push({
      workload,
      best,
      baseline,
      speedup,
      bestTimeNs: bestMean,
      baselineTimeNs: baseMean,
      bestMigrated: mean(bestCells.map((c) => c.metrics.bytesMigrated)),
      baselineMigrated: mean(base.map((c) => c.metrics.bytesMigrated)),
      bestOverFetched: mean(bestCells.map((c) => c.metrics.bytesOverFetched)),
      baselineOverFetched: mean(base.map((c) => c.metrics.bytesOverFetched)),
      bestFailedWarps: mean(bestCells.map((c) => c.metrics.failedWarps)),
      seeds,
      significant: speedup.lo !== null && (speedup.lo > 1 || speedup.hi! < 1),
      runnerUp: second === undefined ? null : { policy: second[0], speedup: baseMean / second[1] },
    });
  }
  return out;
}

const MiB = 1024 * 1024;
const x = (v: number): string => `${v.toFixed(2)}×`;

/** One line per workload, for the console and the report. */
export function formatAnswer(a: Answer): string {
  const lines = a.recommendations.length > 0 ? [formatRecommendations(a.recommendations)] : [];
  for (const u of a.unanswered) lines.push(`  ${u.workload}: no recommendation (${u.reason})`);
  return lines.length === 0 ? 'No recommendation: no cell finished.' : lines.join('\n');
}

/** The recommendation lines (see {@link formatAnswer}, which adds the unanswered workloads). */
export function formatRecommendations(recs: readonly Recommendation[]): string {
  if (recs.length === 0) return 'No recommendation: the baseline policy has no finished cell.';
  const seeds = Math.max(...recs.map((r) => r.seeds.length));
  const head =
    `Best policy per workload (lowest mean simulated time; speed-up = baseline time / policy time, ` +
    `${seeds === 1 ? '1 seed: no interval, add --seeds 1,2,3' : `geometric mean over ${seeds} seeds, 95 % CI`}):`;
  const wl = Math.max(...recs.map((r) => r.workload.length));
  const bl = Math.max(...recs.map((r) => r.best.length));
  const lines = recs.map((r) => {
    const ci = r.speedup.lo === null ? '' : ` [${x(r.speedup.lo)}, ${x(r.speedup.hi!)}]`;
    const same = r.best === r.baseline;
    const next =
      same && r.runnerUp !== null ? `; next best ${r.runnerUp.policy} at ${x(r.runnerUp.speedup)}` : '';
    const vs = same ? `is the baseline${next}` : `${x(r.speedup.mean)}${ci} vs ${r.baseline}`;
    const cost =
      `migrated ${(r.bestMigrated / MiB).toFixed(1)} MiB (baseline ${(r.baselineMigrated / MiB).toFixed(1)}), ` +
      `over-fetched ${(r.bestOverFetched / MiB).toFixed(1)} MiB (baseline ${(r.baselineOverFetched / MiB).toFixed(1)})`;
    const warn =
      r.bestFailedWarps > 0 ? `; ${Math.round(r.bestFailedWarps)} warps cancelled (less work done)` : '';
    const noise = !same && r.speedup.lo !== null && !r.significant ? '; within seed noise' : '';
    return `  ${r.workload.padEnd(wl)}  ${r.best.padEnd(bl)}  ${vs}; ${cost}${warn}${noise}`;
  });
  return [head, ...lines].join('\n');
}
