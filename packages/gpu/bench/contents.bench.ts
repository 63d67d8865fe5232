/**
 * VRAM contents exist only where bytes were written. Two tables:
 *
 * 1. Time per 4 KiB page of the copy paths, against a plain `Uint8Array.set` of 4 KiB (the
 *    memcpy floor): `Vram.copyWithin` of 2 MiB never written (moves nothing, allocates nothing),
 *    `Vram.copyWithin` of 2 MiB fully written (a real copy), and `CopyEngine.submitTimed` of
 *    2 MiB (the timing-only transfer GpuSvm needs after moving pages itself).
 * 2. Memory: materialised pages and heap growth after `copyWithin` over 256 MiB of VRAM that was
 *    never written, and after writing 1 MiB of it.
 *
 * Run from the repo root: `sh scripts/run.sh tsx packages/gpu/bench/contents.bench.ts`.
 */
import { createSim } from '@hmmkit/sim';
import { getGc, newBench, nsPerOp, printTable, sink } from '@hmmkit/sim/bench';
import { CopyEngine, Vram } from '../src/index.ts';

const MiB = 2 ** 20;
const PAGES = 512; // one 2 MiB copy
const sim = createSim();
const v = new Vram(64 * MiB);
const emptySrc = v.alloc(2 * MiB);
const emptyDst = v.alloc(2 * MiB);
const fullSrc = v.alloc(2 * MiB);
const fullDst = v.alloc(2 * MiB);
const bytes = new Uint8Array(2 * MiB);
for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31 + 7) & 255;
v.write(fullSrc, bytes);
const ce = new CopyEngine(sim, v, 2);
const a = new Uint8Array(4096).fill(1);
const b = new Uint8Array(4096);

const bench = newBench();
bench.add('Uint8Array.set of 4 KiB (memcpy floor)', () => {
  for (let k = 0; k < PAGES; k++) {
    a[0] = k;
    b.set(a);
  }
  sink.value += b[0]!;
});
bench.add('Vram.copyWithin, never-written pages', () => {
  v.copyWithin(emptyDst, emptySrc, 2 * MiB);
  sink.value += v.stats().materializedPages;
});
bench.add('Vram.copyWithin, written pages', () => {
  v.copyWithin(fullDst, fullSrc, 2 * MiB);
  sink.value += v.read32(fullDst + 4);
});
bench.add('CopyEngine.submitTimed (no bytes move)', () => {
  const t = ce.submitTimed(2 * MiB, 'h2d');
  sink.value += t.done;
});
await bench.run();
const base = nsPerOp(bench, 'Uint8Array.set of 4 KiB (memcpy floor)', PAGES);
printTable(
  `VRAM copy paths per 4 KiB page (node ${process.version}, 2 MiB per call)`,
  'Uint8Array.set of 4 KiB (memcpy floor)',
  base,
  [
    'Vram.copyWithin, never-written pages',
    'Vram.copyWithin, written pages',
    'CopyEngine.submitTimed (no bytes move)',
  ].map((n): [string, number] => [n, nsPerOp(bench, n, PAGES)]),
);

const gc = getGc();
gc();
const heap0 = process.memoryUsage().arrayBuffers;
const big = new Vram(512 * MiB);
const src = big.alloc(2 * MiB);
const chunks: number[] = [];
for (let i = 0; i < 128; i++) chunks.push(big.alloc(2 * MiB));
for (const c of chunks) big.copyWithin(c, src, 2 * MiB);
gc();
const heap1 = process.memoryUsage().arrayBuffers;
const afterEmpty = big.stats().materializedPages;
big.write(chunks[0]!, new Uint8Array(MiB).fill(9));
gc();
const heap2 = process.memoryUsage().arrayBuffers;
console.log('\nVRAM memory (512 MiB device)\n');
console.log('| step | materialised pages | array-buffer growth |');
console.log('| --- | ---: | ---: |');
console.log(
  `| copyWithin of 128 × 2 MiB never written | ${afterEmpty} | ${((heap1 - heap0) / MiB).toFixed(1)} MiB |`,
);
console.log(
  `| then write 1 MiB | ${big.stats().materializedPages} | ${((heap2 - heap0) / MiB).toFixed(1)} MiB |`,
);
console.log(`\n(sink ${sink.value > 0 ? 'ok' : 'empty'})`);
