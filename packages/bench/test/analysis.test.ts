import { describe, expect, it } from 'vitest';
import { answer, formatAnswer, meanCi, ratioCi, recommend, tQuantile975 } from '../src/analysis.ts';
import { METRIC_NAMES, type Metrics, resolveSpec } from '../src/experiment.ts';
import type { CellResult } from '../src/sweep.ts';

/** A synthetic finished cell (the analysis reads only spec and metrics). */
function cell(workload: string, granule: string, seed: number, m: Partial<Metrics>): CellResult {
  const metrics = Object.fromEntries(METRIC_NAMES.map((k) => [k, 0])) as unknown as Metrics;
  return {
    index: 0,
    spec: resolveSpec({
      workload: { generator: 'streaming', label: workload },
      granule,
      notifier: 'per-range',
      seed,
    }),
    metrics: { ...metrics, ...m },
  };
}

describe('statistics', () => {
  it('mean and Student-t 95 % interval', () => {
    const e = meanCi([1, 2, 3]);
    expect(e.mean).toBe(2);
    expect(e.hi! - 2).toBeCloseTo(4.303 / Math.sqrt(3), 10);
    expect(meanCi([5])).toEqual({ mean: 5, lo: null, hi: null, n: 1 });
    expect(tQuantile975(1)).toBe(12.706);
    expect(tQuantile975(200)).toBe(1.96);
  });
  it('ratios: geometric mean, interval on the logs', () => {
    const e = ratioCi([2, 8]);
    expect(e.mean).toBeCloseTo(4, 12);
    expect(e.lo! * e.hi!).toBeCloseTo(16, 9); // symmetric in log space
  });
});

describe('recommend', () => {
  const cells = [
    // 'w': xe is 2× faster than 4k on seed 1 and 4× on seed 2; uvm-tree in between
    cell('w', '4k', 1, { simTimeNs: 100, bytesMigrated: 10, bytesOverFetched: 0 }),
    cell('w', '4k', 2, { simTimeNs: 200, bytesMigrated: 10, bytesOverFetched: 0 }),
    cell('w', 'xe', 1, { simTimeNs: 50, bytesMigrated: 30, bytesOverFetched: 8 }),
    cell('w', 'xe', 2, { simTimeNs: 50, bytesMigrated: 50, bytesOverFetched: 4 }),
    cell('w', 'uvm-tree', 1, { simTimeNs: 60 }),
    cell('w', 'uvm-tree', 2, { simTimeNs: 60 }),
    // 'bad': the fastest policy broke coherence; it cannot win
    cell('bad', '4k', 1, { simTimeNs: 100 }),
    cell('bad', 'xe', 1, { simTimeNs: 10, oracleViolations: 1 }),
    // 'nobase': the baseline did not finish
    cell('nobase', 'xe', 1, { simTimeNs: 10 }),
  ];
  it('picks the lowest mean time, pairs seeds, reports cost against the baseline', () => {
    const [w, bad] = recommend({ cells });
    expect(w!.best).toBe('xe/per-range');
    expect(w!.baseline).toBe('4k/per-range');
    expect(w!.speedup.mean).toBeCloseTo(Math.sqrt(2 * 4), 12);
    expect(w!.speedup.n).toBe(2);
    expect(w!.seeds).toEqual([1, 2]);
    expect(w!.bestMigrated).toBe(40);
    expect(w!.baselineMigrated).toBe(10);
    expect(w!.bestOverFetched).toBe(6);
    expect(w!.runnerUp).toEqual({ policy: 'uvm-tree/per-range', speedup: 150 / 60 });
    expect(bad!.best).toBe('4k/per-range');
    expect(bad!.runnerUp).toBeNull(); // xe broke coherence: not ranked
    expect(recommend({ cells }, { granule: 'uvm-tree' })[0]!.speedup.mean).toBeCloseTo(
      Math.sqrt((60 / 50) * (60 / 50)),
      12,
    );
  });
  it('names the workloads it cannot answer for', () => {
    const a = answer({ cells });
    expect(a.unanswered).toEqual([
      { workload: 'nobase', reason: 'the baseline 4k/per-range has no finished cell' },
    ]);
    const text = formatAnswer(a);
    expect(text).toMatch(/geometric mean over 2 seeds, 95 % CI/);
    expect(text).toMatch(
      /\n {2}w {4}xe\/per-range {2}2\.83× \[\d+\.\d\d×, \d+\.\d\d×\] vs 4k\/per-range; migrated/,
    );
    expect(text).toMatch(/bad {2}4k\/per-range {2}is the baseline/);
    expect(text).toMatch(/nobase: no recommendation/);
  });
});
