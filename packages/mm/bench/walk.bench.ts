/**
 * Present-page walk throughput (what hmm_range_fault's inner loop costs): 2^20 present 4 KiB
 * pages walked with PageTable.walkUnit + per-entry decode into an output array, and 2^20 pages
 * mapped by 2048 THPs, against a plain typed-array loop over the same number of entries.
 *
 * Run: pnpm --filter @hmmkit/mm bench walk.bench.ts  (or: tsx bench/walk.bench.ts)
 */
import { createSim } from '@hmmkit/sim';
import { newBench, nsPerOp, printTable, sink } from '@hmmkit/sim/bench';
import {
  createMachine,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  Mm,
  PAGE_SIZE,
  PageWalk,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
  PTE_PRESENT,
  PTE_TYPE_MASK,
  PTE_W,
  WALK_PTE,
} from '../src/index.ts';

const N = 2 ** 20;
const sim = createSim({ seed: 1 });
const mm = new Mm(createMachine(sim, { pagesPerNode: 2 ** 23 }));
const RW = PROT_READ | PROT_WRITE;
const len = N * PAGE_SIZE;
const m4 = await mm.mmap(0, len + PMD_SIZE, RW, MAP_PRIVATE | MAP_ANONYMOUS);
const a4 = Math.ceil(m4 / PMD_SIZE) * PMD_SIZE;
await mm.touch(a4, len, true);
const mh = await mm.mmap(0, len + PMD_SIZE, RW, MAP_PRIVATE | MAP_ANONYMOUS);
const ah = Math.ceil(mh / PMD_SIZE) * PMD_SIZE;
await mm.madvise(ah, len, MADV_HUGEPAGE);
await mm.touch(ah, len, true);

const out = new Float64Array(N);
const srcVal = new Float64Array(N).map((_, i) => i + 1024);
const srcFlags = new Uint8Array(N).fill(PTE_PRESENT | PTE_W | 8);
const W = 2 ** 62; // stand-in for HMM_PFN_WRITE, kept below 2^53 arithmetic issues by adding
const w = new PageWalk();

function walk(start: number): number {
  const end = start + len;
  let n = 0;
  for (let a = start; a < end; ) {
    mm.pt.walkUnit(a, end, w);
    const cnt = (w.end - a) / PAGE_SIZE;
    if (w.kind === WALK_PTE) {
      const vals = w.pte!.val;
      const flags = w.pte!.flags;
      for (let k = 0, i = w.index; k < cnt; k++, i++) {
        const f = flags[i]!;
        out[n++] = (f & PTE_TYPE_MASK) === PTE_PRESENT ? vals[i]! + (f & PTE_W ? W : 0) : 0;
      }
    } else {
      const base = w.val + (a - w.leafStart) / PAGE_SIZE;
      const flag = w.flags & PTE_W ? W : 0;
      for (let k = 0; k < cnt; k++) out[n++] = base + k + flag;
    }
    a = w.end;
  }
  return n;
}

const bench = newBench(400);
bench
  .add('typed-array loop (baseline)', () => {
    for (let i = 0; i < N; i++) {
      const f = srcFlags[i]!;
      out[i] = (f & PTE_TYPE_MASK) === PTE_PRESENT ? srcVal[i]! + (f & PTE_W ? W : 0) : 0;
    }
    sink.value += out[N - 1]!;
  })
  .add('walk 4K PTEs', () => {
    sink.value += walk(a4);
  })
  .add('walk THP PMDs', () => {
    sink.value += walk(ah);
  });
await bench.run();
const base = nsPerOp(bench, 'typed-array loop (baseline)', N);
printTable(`present-page walk over ${N} pages, ns per page`, 'typed-array loop (baseline)', base, [
  ['walk 4K PTEs', nsPerOp(bench, 'walk 4K PTEs', N)],
  ['walk THP PMDs', nsPerOp(bench, 'walk THP PMDs', N)],
]);
console.log(`\nsink ${sink.value > 0}`);
