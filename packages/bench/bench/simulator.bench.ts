/**
 * Performance of the simulator itself (host wall-clock, not simulated time):
 *
 * 1. GPU accesses per second on the TLB-hit path of a full experiment world (svm-mapped pages,
 *    2560 warps of the streaming workload), against a plain typed-array loop over the same stream.
 * 2. GPU faults serviced per second (4K demand paging, page touch: fault → batch → svm
 *    handleFault → migrate to VRAM → bind → replay), against CPU page faults (`Mm.touch` of fresh
 *    anonymous pages) in the same run.
 * 3. Sweep cells per second: 8 small cells inline against the same sweep on worker threads.
 *
 * Run from packages/bench: `tsx bench/simulator.bench.ts` (or `pnpm bench`).
 */

import { existsSync } from 'node:fs';
import { createMachine, MAP_ANONYMOUS, MAP_PRIVATE, Mm, PROT_READ, PROT_WRITE } from '@hmmkit/mm';
import { createSim, modPow2 } from '@hmmkit/sim';
import { newBench, nsPerOp, printTable, sink } from '@hmmkit/sim/bench';
import { Bench } from 'tinybench';
import {
  buildWorkload,
  type ExperimentWorld,
  resolveSpec,
  runExperiment,
  warpClients,
} from '../src/experiment.ts';
import { DEFAULT_SWEEP, runSweep, type SweepSpec } from '../src/sweep.ts';

// ---- 1. TLB-hit path ------------------------------------------------------------------------
const spec = {
  workload: { generator: 'streaming' as const, params: { footprintBytes: 4 << 20, numSMs: 8 } },
  granule: 'xe',
};
let world: ExperimentWorld | null = null;
await runExperiment(spec, {
  onWorld: (w) => {
    world = w;
  },
});
const w = world as unknown as ExperimentWorld;
let kernel = null as null | import('@hmmkit/workloads').Kernel;
for (const ph of buildWorkload(resolveSpec(spec)).phases()) if (ph.type === 'kernel') kernel = ph.kernel;
const k = kernel!;
const dev = w.devices[0]!;
const clients = warpClients(k);
const runKernel = async () => {
  const t = w.sim.sched.spawn('k', async () => {
    const r = await dev.engine.run(k.streams, { warpClient: clients });
    sink.value += r.accesses;
    if (r.faults !== 0) throw new Error('the warmed kernel faulted');
  });
  await w.sim.sched.run();
  return t;
};
await runKernel();
const N = k.accesses;
function plainLoop(): number {
  const vas = k.streams.vas;
  let s = 0;
  for (let i = 0; i < vas.length; i++) s += modPow2(vas[i]!, 4096);
  return s;
}

const b1 = newBench();
b1.add('plain loop over the stream', () => {
  sink.value += plainLoop();
});
b1.add('GpuEngine.run, svm-mapped (TLB-hit path)', async () => {
  await runKernel();
});
await b1.run();
const base1 = nsPerOp(b1, 'plain loop over the stream', N);
printTable(
  `1. GPU accesses on the TLB-hit path (${N} accesses, ${k.warps} warps)`,
  'plain loop over the stream',
  base1,
  [['GpuEngine.run, svm-mapped (TLB-hit path)', nsPerOp(b1, 'GpuEngine.run, svm-mapped (TLB-hit path)', N)]],
);

// ---- 2. faults serviced ---------------------------------------------------------------------
const FAULT_PAGES = 512;
const demand = {
  workload: {
    generator: 'pageTouch' as const,
    params: { footprintBytes: FAULT_PAGES * 4096 },
    cpu: 'init' as const,
  },
  granule: '4k',
};
const probe = await runExperiment(demand);
if (probe.faultsServiced !== FAULT_PAGES)
  throw new Error(`expected ${FAULT_PAGES} faults, got ${probe.faultsServiced}`);
const cpuSim = createSim();
const cpuMm = new Mm(createMachine(cpuSim, { thp: 'never', pagesPerNode: 1 << 16 }));
async function cpuFaults(): Promise<void> {
  const len = FAULT_PAGES * 4096;
  const a = await cpuMm.mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  await cpuMm.touch(a, len, true);
  await cpuMm.munmap(a, len);
  sink.value += cpuSim.now;
}
const b2 = newBench(1000, 100);
b2.add('CPU faults (Mm.touch, fresh anon pages)', cpuFaults);
b2.add('GPU faults serviced (4K demand paging, whole experiment)', async () => {
  const m = await runExperiment(demand);
  sink.value += m.faultsServiced;
});
await b2.run();
const base2 = nsPerOp(b2, 'CPU faults (Mm.touch, fresh anon pages)', FAULT_PAGES);
printTable(`2. Faults (${FAULT_PAGES} pages per run)`, 'CPU faults (Mm.touch, fresh anon pages)', base2, [
  [
    'GPU faults serviced (4K demand paging, whole experiment)',
    nsPerOp(b2, 'GPU faults serviced (4K demand paging, whole experiment)', FAULT_PAGES),
  ],
]);

// ---- 3. sweep cells -------------------------------------------------------------------------
const sweep: SweepSpec = DEFAULT_SWEEP;
const CELLS = 24;
const haveDist = existsSync(new URL('../dist/worker.js', import.meta.url));
// whole sweeps take seconds: one iteration each (worker start-up included, as a user sees it)
const b3 = new Bench({ timestampProvider: 'hrtimeNow', throws: true, time: 0, iterations: 1, warmup: false });
b3.add('sweep inline (threads 0)', async () => {
  sink.value += (await runSweep(sweep, { threads: 0 })).cells.length;
});
b3.add('sweep on worker threads (tinypool, 2)', async () => {
  sink.value += (await runSweep(sweep, { threads: 2 })).cells.length;
});
if (haveDist) {
  b3.add('sweep on worker threads (2), dist build', async () => {
    sink.value += (await runSweep(sweep, { threads: 2, worker: 'dist' })).cells.length;
  });
}
await b3.run();
const base3 = nsPerOp(b3, 'sweep inline (threads 0)', CELLS);
printTable(`3. Sweep cells (the default sweep, ${CELLS} cells)`, 'sweep inline (threads 0)', base3, [
  ['sweep on worker threads (tinypool, 2)', nsPerOp(b3, 'sweep on worker threads (tinypool, 2)', CELLS)],
  ...(haveDist
    ? ([
        [
          'sweep on worker threads (2), dist build',
          nsPerOp(b3, 'sweep on worker threads (2), dist build', CELLS),
        ],
      ] as [string, number][])
    : []),
]);
for (const t of b3.tasks) {
  console.log(`${t.name}: ${(1e9 / nsPerOp(b3, t.name, CELLS)).toFixed(1)} cells/s`);
}
if (!haveDist) console.log('(no dist/: run `turbo run build` to also measure workers on built code)');
