import { ACCESS, type AccessStreams, type AccessType, makeStreams, PAGE_4K } from '@hmmkit/gpu';
import { Rng } from '@hmmkit/sim';
import { nouveauPolicy } from '../src/index.ts';
import { type BenchWorld, world } from './world.ts';
const PAGES = 256, WARPS = 32, PER_WARP = 2048;
function stream(a: number): AccessStreams {
  const rng = new Rng(1);
  const lists: [number, AccessType][][] = [];
  for (let w = 0; w < WARPS; w++) { const l: [number, AccessType][] = [];
    for (let k = 0; k < PER_WARP; k++) l.push([a + rng.below(PAGES) * PAGE_4K + rng.below(512) * 8, rng.below(4) === 0 ? ACCESS.WRITE : ACCESS.READ]);
    lists.push(l); }
  return makeStreams(lists);
}
async function runWithSvm(w: BenchWorld, s: AccessStreams): Promise<number> {
  let done = false;
  w.svm.startFaultHandler(0, () => done);
  w.sim.sched.spawn('kernel', async () => { await w.dev.engine.run(s); done = true; w.dev.faultBuffer.kick(); });
  await w.sim.sched.run();
  return 1;
}
const w0 = await world(PAGES, { granule: nouveauPolicy() });
const s = stream(w0.a);
const mode = process.env.MODE ?? 'cold';
for (let i = 0; i < 200; i++) { const w = await world(PAGES, { granule: nouveauPolicy() }); if (mode === 'cold') await runWithSvm(w, s); }
const t0 = performance.now();
const N = 300;
for (let i = 0; i < N; i++) { const w = await world(PAGES, { granule: nouveauPolicy() }); if (mode === 'cold') await runWithSvm(w, s); }
console.log(mode, ((performance.now() - t0) / N).toFixed(3), 'ms per call');
