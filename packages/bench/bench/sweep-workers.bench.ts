/**
 * Issue 12's sweep row: the default sweep with 3 seeds (72 cells) on 2 worker threads against 1,
 * workers loading built JavaScript (`dist/worker.js` with `--conditions=dist`: no transpiler per
 * worker). Goal ≥ 1.7×. One iteration each (worker start-up included, as a user sees it); the
 * ratio is only meaningful on an otherwise idle 2-core machine.
 *
 * Run from packages/bench after a build (`npm run setup` or `npm run hmmkit -- --help` once):
 * `tsx bench/sweep-workers.bench.ts`.
 */
import { existsSync } from 'node:fs';
import { DEFAULT_SWEEP, runSweep, type SweepSpec } from '../src/sweep.ts';

if (!existsSync(new URL('../dist/worker.js', import.meta.url))) {
  console.log('no dist/: run `npm run setup` (or any `npm run hmmkit`) first');
  process.exit(0);
}
const sweep: SweepSpec = { ...DEFAULT_SWEEP, seeds: [1, 2, 3] };
/** Wall time and CPU time (this process and its worker threads) of one sweep. */
const measure = async (threads: number): Promise<{ wall: number; cpu: number }> => {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const r = await runSweep(sweep, { threads, worker: 'dist' });
  if (r.cells.length !== 72) throw new Error(`expected 72 cells, got ${r.cells.length}`);
  const c = process.cpuUsage(c0);
  return { wall: performance.now() - t0, cpu: (c.user + c.system) / 1000 };
};
const one = await measure(1);
const two = await measure(2);
console.log('sweep of 72 cells (default sweep × 3 seeds), dist workers');
console.log(`  1 thread : ${(one.wall / 1000).toFixed(1)} s wall, ${(one.cpu / 1000).toFixed(1)} s CPU`);
console.log(`  2 threads: ${(two.wall / 1000).toFixed(1)} s wall, ${(two.cpu / 1000).toFixed(1)} s CPU`);
console.log(`  speed-up 2 vs 1: ${(one.wall / two.wall).toFixed(2)}× wall (goal ≥ 1.7×)`);
// on a loaded machine the wall ratio measures the other load; the CPU ratio bounds what two idle
// cores would give: 2 × cpu(1) / cpu(2) if the work splits evenly
console.log(`  CPU-time bound on an idle 2-core machine: ${((2 * one.cpu) / two.cpu).toFixed(2)}×`);
console.log(`  load average during the run: ${(await import('node:os')).loadavg()[0]!.toFixed(1)}`);
