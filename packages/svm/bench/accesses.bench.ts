/**
 * GPU accesses simulated per second with the svm in the loop: one kernel (32 warps × 2048
 * accesses over 256 pages) run (a) on a device whose page table was filled directly (baseline:
 * the TLB-hit path, no driver), (b) from a cold start with GpuSvm's fault handler servicing every
 * first touch (world setup included), (c) again on the warmed svm world (all TLB hits, the svm out
 * of the hot path).
 *
 * The kernel's access streams are the workload's input, not the simulation: every row runs the
 * same prebuilt streams (a fresh world maps the buffer at the same address, which is checked), so
 * the cold rows time world setup, fault servicing and the engine. Building the streams inside the
 * cold rows, as this bench did until session 19, cost 42 % of a cold call (6.7 of 15.9 ms).
 *
 * Run from packages/svm: `tsx bench/accesses.bench.ts`.
 */
import { ACCESS, type AccessStreams, type AccessType, APERTURE, makeStreams, PAGE_4K } from '@hmmkit/gpu';
import { Rng } from '@hmmkit/sim';
import { newBench, nsPerOp, printTable, sink } from '@hmmkit/sim/bench';
import { nouveauPolicy } from '../src/index.ts';
import { type BenchWorld, world } from './world.ts';

const PAGES = 256;
const WARPS = 32;
const PER_WARP = 2048;
const N = WARPS * PER_WARP;

function stream(a: number): AccessStreams {
  const rng = new Rng(1);
  const lists: [number, AccessType][][] = [];
  for (let w = 0; w < WARPS; w++) {
    const l: [number, AccessType][] = [];
    for (let k = 0; k < PER_WARP; k++) {
      l.push([
        a + rng.below(PAGES) * PAGE_4K + rng.below(512) * 8,
        rng.below(4) === 0 ? ACCESS.WRITE : ACCESS.READ,
      ]);
    }
    lists.push(l);
  }
  return makeStreams(lists);
}

async function runWithSvm(w: BenchWorld, s: AccessStreams): Promise<number> {
  let done = false;
  const h = w.svm.startFaultHandler(0, () => done);
  let faults = 0;
  const k = w.sim.sched.spawn('kernel', async () => {
    const r = await w.dev.engine.run(s);
    faults = r.faults;
    done = true;
    w.dev.faultBuffer.kick();
  });
  await w.sim.sched.run();
  void h;
  void k;
  return faults + 1;
}

// (a) baseline: pages premapped straight into the device page table
const base = await world(PAGES);
for (let p = 0; p < PAGES; p++) {
  await base.mm.writeU32(base.a + p * PAGE_4K, 0);
}
for (let p = 0; p < PAGES; p++) {
  base.dev.pageTable.map(base.a + p * PAGE_4K, PAGE_4K, p * PAGE_4K, { aperture: APERTURE.SYS });
}
const baseStreams = stream(base.a);
await base.dev.engine.run(baseStreams);
// (c) warmed svm world
const warm = await world(PAGES, { granule: nouveauPolicy() });
const warmStreams = stream(warm.a);
await runWithSvm(warm, warmStreams);
const check = await warm.dev.engine.run(warmStreams);
if (check.faults !== 0) throw new Error('warm world still faults');

const bench = newBench(1000, 100);
bench.add('premapped device (no driver)', async () => {
  sink.value += (await base.dev.engine.run(baseStreams)).tlbHits;
});
/** The prebuilt streams, after checking that the fresh world put its buffer where they point. */
const coldStreams = (w: BenchWorld): AccessStreams => {
  if (w.a !== warm.a) throw new Error(`fresh world buffer at ${w.a}, streams built for ${warm.a}`);
  return warmStreams;
};
bench.add('cold start, svm services faults (nouveau 4K)', async () => {
  const w = await world(PAGES, { granule: nouveauPolicy() });
  sink.value += await runWithSvm(w, coldStreams(w));
});
bench.add('cold start, svm services faults (drm_gpusvm 2M)', async () => {
  const w = await world(PAGES);
  sink.value += await runWithSvm(w, coldStreams(w));
});
bench.add('warm svm world (TLB hits)', async () => {
  sink.value += (await warm.dev.engine.run(warmStreams)).tlbHits;
});
await bench.run();
const b = nsPerOp(bench, 'premapped device (no driver)', N);
printTable(
  `GPU accesses simulated per second with the svm in the loop (node ${process.version}, ${N} accesses per call)`,
  'premapped device (no driver)',
  b,
  [
    'cold start, svm services faults (nouveau 4K)',
    'cold start, svm services faults (drm_gpusvm 2M)',
    'warm svm world (TLB hits)',
  ].map((n) => [n, nsPerOp(bench, n, N)] as [string, number]),
);
console.log(`\n(sink ${sink.value > 0 ? 'ok' : 'empty'})`);
