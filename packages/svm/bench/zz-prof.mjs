import { ACCESS, makeStreams, PAGE_4K, createGpuDevice, APERTURE } from '@hmmkit/gpu';
import { createMachine, MAP_ANONYMOUS, MAP_PRIVATE, Mm, PROT_READ, PROT_WRITE } from '@hmmkit/mm';
import { createSim, Rng } from '@hmmkit/sim';
import { GpuSvm, nouveauPolicy } from '../dist/index.js';
async function world(pages, opts) {
  const sim = createSim({ seed: 1 });
  const mm = new Mm(createMachine(sim, { thp: 'never' }));
  const dev = createGpuDevice(sim, { vramBytes: 64 << 20 });
  const svm = new GpuSvm(mm, [dev], opts);
  svm.attachSystemMemory();
  const raw = await mm.mmap(0, pages * 4096 + 0x200000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  const a = raw % 0x200000 === 0 ? raw : raw - (raw % 0x200000) + 0x200000;
  return { sim, mm, dev, svm, a };
}
const PAGES = 256, WARPS = 32, PER_WARP = 2048;
function stream(a) {
  const rng = new Rng(1); const lists = [];
  for (let w = 0; w < WARPS; w++) { const l = [];
    for (let k = 0; k < PER_WARP; k++) l.push([a + rng.below(PAGES) * PAGE_4K + rng.below(512) * 8, rng.below(4) === 0 ? ACCESS.WRITE : ACCESS.READ]);
    lists.push(l); }
  return makeStreams(lists);
}
async function runWithSvm(w, s) {
  let done = false;
  w.svm.startFaultHandler(0, () => done);
  w.sim.sched.spawn('kernel', async () => { await w.dev.engine.run(s); done = true; w.dev.faultBuffer.kick(); });
  await w.sim.sched.run();
}
const mode = process.env.MODE ?? 'cold';
const w0 = await world(PAGES, { granule: nouveauPolicy() });
const s = stream(w0.a);
if (mode === 'warm') { await runWithSvm(w0, s); }
const one = async () => {
  if (mode === 'warm') { await w0.dev.engine.run(s); return; }
  const w = await world(PAGES, { granule: nouveauPolicy() }); if (mode === 'cold') await runWithSvm(w, s);
};
for (let i = 0; i < 200; i++) await one();
const t0 = performance.now(); const N = +(process.env.N ?? 300);
for (let i = 0; i < N; i++) await one();
console.log(mode, ((performance.now() - t0) / N).toFixed(3), 'ms per call');
