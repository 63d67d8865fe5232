/** Shared helpers of the gpu benchmarks: tinybench options, ns per op, table printing. */
import { Bench } from 'tinybench';

/** Sink: results land here so no work is eliminated. */
export const sink = { value: 0 };

/** A tinybench instance with the repo's options. */
export function newBench(timeMs = 400): Bench {
  return new Bench({ timestampProvider: 'hrtimeNow', throws: true, time: timeMs, warmupTime: 100 });
}

/** Mean ns per op of task `name` whose calls each run `opsPerCall` ops. */
export function nsPerOp(bench: Bench, name: string, opsPerCall: number): number {
  const r = bench.getTask(name)?.result;
  if (r === undefined || !('latency' in r)) throw new Error(`task ${name} did not complete (${r?.state})`);
  return (r.latency.mean * 1e6) / opsPerCall;
}

/** Prints a markdown table of rows `[label, ns/op]` with a ratio column against `baseline` ns/op. */
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
    console.log(
      `| ${label} | ${ns.toFixed(ns >= 100 ? 0 : 2)} | ${ops >= 1e6 ? `${(ops / 1e6).toFixed(1)} M` : `${(ops / 1e3).toFixed(0)} k`} | ${(ns / baseline).toFixed(2)}× |`,
    );
  }
}
