/**
 * The benchmark harness every package's `bench/*.bench.ts` uses (import from
 * `@hmmkit/sim/bench`): tinybench with the repo's options, ns per op for tasks that run an inner
 * loop of K operations, a sink that keeps results alive, a markdown table with a ratio column
 * against a baseline measured in the same run, and a GC handle for memory measurements.
 *
 * Timing never appears in tests; benchmarks report ratios, not absolute thresholds.
 *
 * @module
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import { Bench } from 'tinybench';

/** Results land here so no work is eliminated. */
export const sink = { value: 0 };

/** A tinybench instance with the repo's options (hrtime, throw on task error). */
export function newBench(timeMs = 300, warmupMs = 50): Bench {
  return new Bench({ timestampProvider: 'hrtimeNow', throws: true, time: timeMs, warmupTime: warmupMs });
}

/** Mean ns per operation of task `name`, whose every call runs `opsPerCall` operations. */
export function nsPerOp(bench: Bench, name: string, opsPerCall: number): number {
  const r = bench.getTask(name)?.result;
  if (r === undefined || !('latency' in r)) throw new Error(`task ${name} did not complete (${r?.state})`);
  return (r.latency.mean * 1e6) / opsPerCall;
}

/** Prints a markdown table of `[label, ns/op]` rows with a ratio column against `baseline` ns/op. */
export function printTable(
  title: string,
  baselineLabel: string,
  baseline: number,
  rows: [string, number][],
): void {
  console.log(`\n${title}\n`);
  console.log('| task | ns/op | ops/s | ratio vs baseline |');
  console.log('| --- | ---: | ---: | ---: |');
  for (const [label, ns] of [[baselineLabel, baseline] as [string, number], ...rows]) {
    const ops = 1e9 / ns;
    const opsS = ops >= 1e6 ? `${(ops / 1e6).toFixed(1)} M` : `${(ops / 1e3).toFixed(1)} k`;
    console.log(`| ${label} | ${ns.toFixed(ns >= 100 ? 0 : 2)} | ${opsS} | ${(ns / baseline).toFixed(2)}× |`);
  }
}

/** A garbage-collect function: `global.gc` when exposed, else enabled at run time through v8 flags. */
export function getGc(): () => void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g !== undefined) return g;
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}
