/**
 * Soak (minutes, not part of `npm run bench`): the issue-13 cell `--workloads randomAccess
 * --granules 4k` at the generator's default footprint (16 MiB, 2 M random updates) in the default
 * sweep's 4 MiB of VRAM, run to completion, with progress sampled at growing step budgets to show
 * it is thrashing, not livelocked: completed accesses (TLB hits), serviced faults and evictions
 * grow with the steps. docs/lab.md reports one run (≈ 11 M steps, 3.5 min on the loaded box).
 *
 * Run from the repository root: `sh scripts/run.sh tsx packages/bench/bench/random-default.soak.ts [maxSteps]`.
 */
import { type ExperimentWorld, runExperiment } from '../src/experiment.ts';

const spec = {
  workload: { generator: 'randomAccess' as const },
  granule: '4k',
  notifier: 'window-512M',
  vramBytes: 4 << 20,
};
const budgets = [1e6, 2e6, Number(process.argv[2] ?? 1e8)];
for (const maxSteps of budgets) {
  let world: ExperimentWorld | undefined;
  const t0 = performance.now();
  let outcome: string;
  try {
    const m = await runExperiment({ ...spec, maxSteps }, { onWorld: (w) => (world = w) });
    outcome = `completed: ${m.accesses} accesses, ${(m.simTimeNs / 1e9).toFixed(2)} s simulated, ${m.farFaults} far faults, ${m.evictions} evictions, ${m.oracleViolations} violations`;
  } catch (e) {
    outcome = `stopped: ${(e as Error).message}`;
  }
  const c = world!.sim.counters.snapshot();
  console.log(
    `budget ${maxSteps.toExponential(0)} steps: ${outcome}; so far ${c['gpu0.tlb.hit'] ?? 0} TLB hits, ` +
      `${c['svm.faults'] ?? 0} serviced faults, ${c['svm.evictions'] ?? 0} evictions; ` +
      `${((performance.now() - t0) / 1000).toFixed(0)} s wall`,
  );
}
