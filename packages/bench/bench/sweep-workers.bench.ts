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
const wall = async (threads: number): Promise<number> => {
  const t0 = performance.now();
  const r = await runSweep(sweep, { threads, worker: 'dist' });
  if (r.cells.length !== 72) throw new Error(`expected 72 cells, got ${r.cells.length}`);
  return performance.now() - t0;
};
const one = await wall(1);
const two = await wall(2);
console.log('sweep of 72 cells (default sweep × 3 seeds), dist workers');
console.log(`  1 thread : ${(one / 1000).toFixed(1)} s`);
console.log(`  2 threads: ${(two / 1000).toFixed(1)} s`);
console.log(`  speed-up 2 vs 1: ${(one / two).toFixed(2)}× (goal ≥ 1.7×)`);
