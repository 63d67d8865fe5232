/**
 * GPU faults serviced per second by GpuSvm.handleFault (garbage collection, find-or-insert with
 * the granule policy, hmmRangeFaultLocked, bind under the notifier lock, one batched PTE update),
 * one fault per fresh 4 KiB page, against CPU write faults on the same pages in the same kind of
 * world (the baseline: one handle_mm_fault each). K = 256 faults per call; every call builds a fresh
 * world, so a setup-only task is measured too and subtracted from every row (net ns per fault).
 *
 * Run from packages/svm: `tsx bench/faults.bench.ts`.
 */
import { ACCESS } from '@hmmkit/gpu';
import { newBench, nsPerOp, printTable, sink } from '@hmmkit/sim/bench';
import { nouveauPolicy, perRangeNotifiers } from '../src/index.ts';
import { world } from './world.ts';

const K = 256;

async function cpuFaults(): Promise<number> {
  const w = await world(K, { granule: nouveauPolicy() });
  for (let i = 0; i < K; i++) await w.mm.writeU32(w.a + i * 4096, i);
  return w.sim.now;
}

async function gpuFaults(opts: Parameters<typeof world>[1]): Promise<number> {
  const w = await world(K, opts);
  for (let i = 0; i < K; i++) {
    const r = await w.svm.handleFault(0, w.a + i * 4096, ACCESS.WRITE);
    if (r !== 0) throw new Error(`fault failed ${r}`);
  }
  return w.sim.now;
}

const bench = newBench(1000, 100);
bench.add('setup only', async () => {
  const w = await world(K, { granule: nouveauPolicy() });
  sink.value += w.a;
});
bench.add('CPU write fault (handle_mm_fault)', async () => {
  sink.value += await cpuFaults();
});
bench.add('GPU fault, nouveau 4K, 512M notifier windows', async () => {
  sink.value += await gpuFaults({ granule: nouveauPolicy() });
});
bench.add('GPU fault, nouveau 4K, one notifier per range', async () => {
  sink.value += await gpuFaults({ granule: nouveauPolicy(), notifiers: perRangeNotifiers() });
});
bench.add('GPU fault + migrate to VRAM, nouveau 4K', async () => {
  sink.value += await gpuFaults({ granule: nouveauPolicy(), devmem: {} });
});
await bench.run();
const setup = nsPerOp(bench, 'setup only', K);
const net = (n: string): number => nsPerOp(bench, n, K) - setup;
const base = net('CPU write fault (handle_mm_fault)');
printTable(
  `Faults serviced per second, net of world setup (${setup.toFixed(0)} ns/fault subtracted) (node ${process.version}, ${K} faults per call on fresh pages)`,
  'CPU write fault (handle_mm_fault)',
  base,
  [
    'GPU fault, nouveau 4K, 512M notifier windows',
    'GPU fault, nouveau 4K, one notifier per range',
    'GPU fault + migrate to VRAM, nouveau 4K',
  ].map((n) => [n, net(n)] as [string, number]),
);
console.log(`\n(sink ${sink.value > 0 ? 'ok' : 'empty'})`);
