/**
 * What the coherence oracle costs per GPU access: one warm kernel (32 warps × 2048 accesses with
 * data over 256 pages, every access a TLB hit through GpuSvm's mappings) run (a) with no oracle,
 * (b) with rule 1 only (invalidation ends: no per-access work; the access events have no
 * listener), (c) with rule 2 (the translation of every access), (d) with every rule (plus the
 * data shadow). Rule 1's own cost is per invalidation, not per access.
 *
 * Run from packages/svm: `tsx bench/oracle.bench.ts`.
 */
import { ACCESS, type AccessStreams, type AccessType, makeStreams, PAGE_4K } from '@hmmkit/gpu';
import { Rng } from '@hmmkit/sim';
import { newBench, nsPerOp, printTable, sink } from '@hmmkit/sim/bench';
import { CoherenceOracle, type CoherenceOracleOptions, nouveauPolicy } from '../src/index.ts';
import { type BenchWorld, world } from './world.ts';

const PAGES = 256;
const WARPS = 32;
const PER_WARP = 2048;
const N = WARPS * PER_WARP;

function stream(a: number): AccessStreams {
  const rng = new Rng(1);
  const lists: [number, AccessType, number][][] = [];
  for (let w = 0; w < WARPS; w++) {
    const l: [number, AccessType, number][] = [];
    for (let k = 0; k < PER_WARP; k++) {
      const write = rng.below(4) === 0;
      l.push([a + rng.below(PAGES) * PAGE_4K + rng.below(512) * 8, write ? ACCESS.WRITE : ACCESS.READ, k]);
    }
    lists.push(l);
  }
  return makeStreams(lists);
}

/** A warmed svm world (every page mapped, TLB filled) with an oracle of `opts`, or none. */
async function warmWorld(opts: CoherenceOracleOptions | null): Promise<[BenchWorld, AccessStreams]> {
  const w = await world(PAGES, { granule: nouveauPolicy() });
  if (opts !== null) {
    const o = new CoherenceOracle(w.mm, [w.dev], { resolve: w.svm.resolver, ...opts });
    await o.attach();
  }
  const s = stream(w.a);
  let done = false;
  w.svm.startFaultHandler(0, () => done);
  w.sim.sched.spawn('kernel', async () => {
    await w.dev.engine.run(s);
    done = true;
    w.dev.faultBuffer.kick();
  });
  await w.sim.sched.run();
  if ((await w.dev.engine.run(s)).faults !== 0) throw new Error('warm world still faults');
  return [w, s];
}

const cases: [string, CoherenceOracleOptions | null][] = [
  ['no oracle', null],
  ['rule 1 only (PTEs + TLBs at invalidation ends)', { accesses: false, shadow: false }],
  ['rules 1 + 2 (every access translation)', { shadow: false }],
  ['every rule (+ data shadow)', {}],
];
const bench = newBench(1000, 100);
for (const [name, opts] of cases) {
  const [w, s] = await warmWorld(opts);
  bench.add(name, async () => {
    sink.value += (await w.dev.engine.run(s)).tlbHits;
  });
}
await bench.run();
printTable(
  `GPU accesses per second under the coherence oracle (node ${process.version}, ${N} accesses with data per call)`,
  'no oracle',
  nsPerOp(bench, 'no oracle', N),
  cases.slice(1).map(([n]) => [n, nsPerOp(bench, n, N)] as [string, number]),
);
console.log(`\n(sink ${sink.value > 0 ? 'ok' : 'empty'})`);
