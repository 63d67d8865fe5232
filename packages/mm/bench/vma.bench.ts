/**
 * mmap + munmap of one page and find_vma with 10^5 VMAs in the mm, against the same operations
 * with 10^2 VMAs (the ratio shows how the VMA structure scales).
 *
 * Run: pnpm --filter @hmmkit/mm bench vma.bench.ts  (or: tsx bench/vma.bench.ts)
 */
import { createSim } from '@hmmkit/sim';
import { newBench, nsPerOp, printTable, sink } from '@hmmkit/sim/bench';
import {
  createMachine,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  Mm,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '../src/index.ts';

const K = 256;

async function build(n: number) {
  const sim = createSim({ seed: 1 });
  const mm = new Mm(createMachine(sim, { maxMapCount: 10 * n + 1000 }));
  const addrs: number[] = [];
  // alternate protections so that neighbours do not merge: n VMAs
  for (let i = 0; i < n; i++)
    addrs.push(
      await mm.mmap(0, PAGE_SIZE, i % 2 ? PROT_READ : PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS),
    );
  if (mm.vmas.size !== n) throw new Error(`expected ${n} VMAs, got ${mm.vmas.size}`);
  return { mm, addrs };
}

const small = await build(100);
const big = await build(100_000);
const bench = newBench();
for (const [label, { mm, addrs }] of [
  ['10^2', small],
  ['10^5', big],
] as const) {
  let q = 0;
  bench
    .add(`mmap+munmap ${label}`, async () => {
      for (let i = 0; i < K; i++) {
        const a = await mm.mmap(0, 2 * PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | 0x4000);
        sink.value += await mm.munmap(a, 2 * PAGE_SIZE);
      }
    })
    .add(`find_vma ${label}`, () => {
      for (let i = 0; i < K; i++) sink.value += mm.findVma(addrs[q++ % addrs.length]!)!.start & 1;
    });
}
await bench.run();
const b1 = nsPerOp(bench, 'mmap+munmap 10^2', K);
printTable('mmap + munmap of 2 pages (ns per pair)', 'mmap+munmap 10^2 (baseline)', b1, [
  ['mmap+munmap 10^5', nsPerOp(bench, 'mmap+munmap 10^5', K)],
]);
const f1 = nsPerOp(bench, 'find_vma 10^2', K);
printTable('find_vma (ns per lookup)', 'find_vma 10^2 (baseline)', f1, [
  ['find_vma 10^5', nsPerOp(bench, 'find_vma 10^5', K)],
]);
console.log(`\nVMAs: ${small.mm.vmas.size} / ${big.mm.vmas.size}, sink ${sink.value >= 0}`);
