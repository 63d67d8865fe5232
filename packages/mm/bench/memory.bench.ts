/**
 * Bytes of JS heap (heapUsed + arrayBuffers) per mapped page after faulting 10^6 pages:
 * write-faulted pages whose contents were never written (frame metadata + page tables),
 * read-faulted pages (zero page: page tables only), and written pages (4 KiB contents each),
 * measured after a full GC. The baseline is the 4 KiB of contents a written page needs.
 *
 * Run: pnpm --filter @hmmkit/mm bench memory.bench.ts  (or: tsx bench/memory.bench.ts)
 */
import { createSim } from '@hmmkit/sim';
import { getGc } from '@hmmkit/sim/bench';
import {
  createMachine,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  Mm,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '../src/index.ts';

const N = 1_000_000;
const gc = getGc();
const used = () => {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

async function measure(label: string, run: (mm: Mm, a: number) => Promise<void>, n: number) {
  const sim = createSim({ seed: 1 });
  const machine = createMachine(sim, { pagesPerNode: 2 ** 22 });
  const mm = new Mm(machine);
  const a = await mm.mmap(0, n * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  await mm.touch(a, PAGE_SIZE, true); // size the frame arrays once before the baseline
  const before = used();
  await run(mm, a);
  const after = used();
  const per = (after - before) / n;
  const delta = after - before;
  const size = delta < 2 ** 20 ? `${(delta / 1024).toFixed(0)} KiB` : `${(delta / 2 ** 20).toFixed(1)} MiB`;
  console.log(`| ${label} | ${n} | ${size} | ${per.toFixed(1)} | ${(per / PAGE_SIZE).toFixed(3)}× |`);
  return { mm, machine };
}

console.log('\nheap per mapped page (after GC)\n');
console.log('| pages | count | heap delta | bytes/page | ratio vs 4 KiB contents |');
console.log('| --- | ---: | ---: | ---: | ---: |');
await measure('write-faulted, contents never written', (mm, a) => mm.touch(a, N * PAGE_SIZE, true), N);
await measure('read-faulted (zero page)', (mm, a) => mm.touch(a, N * PAGE_SIZE, false), N);
const M = 100_000;
await measure(
  'written (one non-zero byte per page)',
  async (mm, a) => {
    for (let i = 0; i < M; i++) await mm.writeU8(a + i * PAGE_SIZE, 1);
  },
  M,
);
