/**
 * GPU accesses simulated per second on the TLB-hit path: `GpuEngine.run` over a warmed-up
 * working set (256 4K pages, 32 warps × 2048 accesses, every access a TLB hit) against a
 * plain typed-array loop over the same access stream (one array load per access: the cost
 * floor of touching the stream at all). Ratio = engine ns/access ÷ loop ns/access. A second
 * device maps the same amount of memory as 2 MiB pages (what svm maps for full chunks) and runs
 * a stream over them: the TLB probes the 4K and 64K arrays before the 2M one.
 *
 * Run from packages/gpu: `tsx bench/engine.bench.ts`.
 */
import { createSim, Rng } from '@hmmkit/sim';
import { newBench, nsPerOp, printTable, sink } from '@hmmkit/sim/bench';
import { ACCESS, createGpuDevice, makeStreams, PAGE_4K } from '../src/index.ts';

const BASE = 0x10_0000_0000;
const PAGES = 256;
const WARPS = 32;
const PER_WARP = 2048;
const N = WARPS * PER_WARP;

const sim = createSim();
const dev = createGpuDevice(sim, { vramBytes: 64 * 2 ** 20 });
const pas = new Float64Array(PAGES);
for (let p = 0; p < PAGES; p++) {
  pas[p] = dev.vram.alloc(PAGE_4K);
  dev.pageTable.map(BASE + p * PAGE_4K, PAGE_4K, pas[p]!);
}
const rng = new Rng(1);
const lists: [number, 0 | 1 | 2 | 3][][] = [];
for (let w = 0; w < WARPS; w++) {
  const l: [number, 0 | 1 | 2 | 3][] = [];
  for (let k = 0; k < PER_WARP; k++)
    l.push([
      BASE + rng.below(PAGES) * PAGE_4K + rng.below(512) * 8,
      rng.below(4) === 0 ? ACCESS.WRITE : ACCESS.READ,
    ]);
  lists.push(l);
}
const streams = makeStreams(lists);
// Warm the TLB and check the path really is all hits.
await dev.engine.run(streams);
const warm = await dev.engine.run(streams);
if (warm.walks !== 0 || warm.faults !== 0) throw new Error(`not a TLB-hit workload: ${warm.walks} walks`);

// The same stream shape over 2 MiB pages (8 of them: 16 MiB, 4096 distinct 4K pages).
const BIG = 2 * 2 ** 20;
const dev2 = createGpuDevice(sim, { vramBytes: 64 * 2 ** 20, counterPrefix: 'gpu2m' });
for (let p = 0; p < 8; p++) dev2.pageTable.map(BASE + p * BIG, BIG, dev2.vram.alloc(BIG));
const lists2: [number, 0 | 1 | 2 | 3][][] = lists.map((l) =>
  l.map(([, a]): [number, 0 | 1 | 2 | 3] => [BASE + rng.below((8 * BIG) / 8) * 8, a]),
);
const streams2 = makeStreams(lists2);
await dev2.engine.run(streams2);
const warm2 = await dev2.engine.run(streams2);
if (warm2.walks !== 0 || warm2.faults !== 0) throw new Error(`not a TLB-hit workload: ${warm2.walks} walks`);

// Baseline: a flat page → pa table, the same stream, one load and an add per access.
const flat = new Float64Array(PAGES);
flat.set(pas);
function plainLoop(): number {
  const vas = streams.vas;
  let s = 0;
  for (let i = 0; i < vas.length; i++) {
    const va = vas[i]!;
    const page = Math.floor(va / 4096); // va % 4096 as modPow2 computes it, written out
    s += flat[page - BASE / 4096]! + (va - page * 4096);
  }
  return s;
}

const bench = newBench();
bench.add('plain typed-array loop', () => {
  sink.value += plainLoop();
});
bench.add('GpuEngine.run (TLB hits)', async () => {
  const r = await dev.engine.run(streams);
  sink.value += r.tlbHits;
});
bench.add('GpuEngine.run (TLB hits, 2M pages)', async () => {
  const r = await dev2.engine.run(streams2);
  sink.value += r.tlbHits;
});
await bench.run();
const base = nsPerOp(bench, 'plain typed-array loop', N);
const eng = nsPerOp(bench, 'GpuEngine.run (TLB hits)', N);
printTable(
  `GPU accesses on the TLB-hit path (node ${process.version}, ${N} accesses per call, ${WARPS} warps, 512-entry 8-way TLB per size)`,
  'plain typed-array loop',
  base,
  [
    ['GpuEngine.run (TLB hits)', eng],
    ['GpuEngine.run (TLB hits, 2M pages)', nsPerOp(bench, 'GpuEngine.run (TLB hits, 2M pages)', N)],
  ],
);
console.log(`\n(sink ${sink.value > 0 ? 'ok' : 'empty'})`);
