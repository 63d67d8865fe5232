/**
 * Warp vs page resolution: building one streaming kernel (StreamTriad, 256 MiB footprint,
 * 80 SMs × 32 warps) at each resolution, with the accesses each keeps. Baseline: the warp-level
 * build. The engine's work per kernel scales with the accesses column; the pages touched per
 * wave are the same at both resolutions (tests assert it).
 *
 * Run from the repo root: `sh scripts/run.sh tsx packages/workloads/bench/resolution.bench.ts`.
 */
import { newBench, printTable, sink } from '@hmmkit/sim/bench';
import { type Kernel, type Resolution, streaming } from '../src/index.ts';

const FOOTPRINT = 256 << 20;

function build(resolution: Resolution): Kernel {
  const w = streaming({ footprintBytes: FOOTPRINT, resolution, maxAccesses: 1 << 24 });
  for (const ph of w.phases()) if (ph.type === 'kernel') return ph.kernel;
  throw new Error('no kernel');
}

const counts = { warp: build('warp').accesses, page: build('page').accesses };
const bench = newBench(1000, 100);
bench.add('warp resolution', () => {
  sink.value += build('warp').accesses;
});
bench.add('page resolution', () => {
  sink.value += build('page').accesses;
});
await bench.run();
const ms = (n: string) => {
  const r = bench.getTask(n)?.result;
  if (r === undefined || !('latency' in r)) throw new Error(`task ${n} did not complete`);
  return r.latency.mean * 1e6; // ns per kernel build
};
printTable(
  `Streaming kernel build, 256 MiB (node ${process.version}); ns per kernel: warp ${counts.warp} accesses, page ${counts.page}`,
  'warp resolution',
  ms('warp resolution'),
  [['page resolution', ms('page resolution')]],
);
console.log(`\naccesses kept: ${(counts.warp / counts.page).toFixed(1)}× fewer at page resolution`);
