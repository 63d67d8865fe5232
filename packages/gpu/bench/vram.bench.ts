/**
 * Buddy allocator throughput: `Vram.alloc` + `Vram.free` of 4K blocks in a random live set
 * (steady state: 1/2 of a 256 MiB VRAM allocated, each op frees a random live block and
 * allocates a new one, so splits and merges happen), and a mixed-size variant (4K..2M),
 * against a plain Int32Array free-list stack of 4K frames (push/pop, no splitting or merging).
 * Ratio = allocator ns/op ÷ stack ns/op. An op = one alloc + one free.
 *
 * Run from packages/gpu: `tsx bench/vram.bench.ts`.
 */
import { Rng } from '@hmmkit/sim';
import { newBench, nsPerOp, printTable, sink } from '@hmmkit/sim/bench';
import { Vram } from '../src/index.ts';

const BYTES = 256 * 2 ** 20;
const K = 4096;

function steady(sizes: readonly number[], seed: number) {
  const v = new Vram(BYTES);
  const rng = new Rng(seed);
  const live: number[] = [];
  let used = 0;
  while (used < BYTES / 2) {
    const s = sizes[rng.below(sizes.length)]!;
    const pa = v.alloc(s);
    if (pa < 0) break;
    live.push(pa);
    used += s;
  }
  const picks = new Uint32Array(1 << 16);
  const sz = new Float64Array(1 << 16);
  for (let i = 0; i < picks.length; i++) {
    picks[i] = rng.nextU32();
    sz[i] = sizes[rng.below(sizes.length)]!;
  }
  let cursor = 0;
  return () => {
    let s = 0;
    for (let k = 0; k < K; k++) {
      const i = cursor++ & 0xffff;
      const slot = picks[i]! % live.length;
      v.free(live[slot]!);
      let pa = v.alloc(sz[i]!);
      if (pa < 0) pa = v.alloc(4096);
      live[slot] = pa;
      s += pa;
    }
    return s;
  };
}

const frames = BYTES / 4096;
const stack = new Int32Array(frames);
let top = 0;
for (let f = frames - 1; f >= frames / 2; f--) stack[top++] = f;
const liveFrames = new Int32Array(frames / 2);
for (let i = 0; i < liveFrames.length; i++) liveFrames[i] = i;
const rng = new Rng(3);
const picks = new Uint32Array(1 << 16);
for (let i = 0; i < picks.length; i++) picks[i] = rng.nextU32() % liveFrames.length;
let pc = 0;
function stackOps(): number {
  let s = 0;
  for (let k = 0; k < K; k++) {
    const slot = picks[pc++ & 0xffff]!;
    stack[top++] = liveFrames[slot]!; // free: push
    const f = stack[--top]!; // alloc: pop
    liveFrames[slot] = f;
    s += f;
  }
  return s;
}

const small = steady([4096], 1);
const mixed = steady([4096, 65536, 2 ** 21], 2);
const bench = newBench();
bench.add('Int32Array free-list stack', () => {
  sink.value += stackOps();
});
bench.add('Vram buddy, 4K', () => {
  sink.value += small();
});
bench.add('Vram buddy, 4K/64K/2M mix', () => {
  sink.value += mixed();
});
await bench.run();
const base = nsPerOp(bench, 'Int32Array free-list stack', K);
printTable(
  `VRAM buddy allocator, free + alloc pairs (node ${process.version}, 256 MiB, half allocated)`,
  'Int32Array free-list stack',
  base,
  [
    ['Vram buddy, 4K', nsPerOp(bench, 'Vram buddy, 4K', K)],
    ['Vram buddy, 4K/64K/2M mix', nsPerOp(bench, 'Vram buddy, 4K/64K/2M mix', K)],
  ],
);
console.log(`\n(sink ${sink.value > 0 ? 'ok' : 'empty'})`);
