/**
 * First-touch fault throughput: write faults on fresh anonymous memory with 4 KiB pages and with
 * THPs (one fault maps 512 pages), per page, against a baseline that only writes the same number
 * of entries into a plain typed array (the floor for "install one PTE").
 *
 * Run: pnpm --filter @hmmkit/mm bench fault.bench.ts  (or: tsx bench/fault.bench.ts)
 */
import { createSim } from '@hmmkit/sim';
import { newBench, nsPerOp, printTable, sink } from '@hmmkit/sim/bench';
import {
  createMachine,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_NORESERVE,
  MAP_PRIVATE,
  Mm,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '../src/index.ts';

const K = 4096; // pages per timed call
const sim = createSim({ seed: 1 });
const machine = createMachine(sim, { pagesPerNode: 2 ** 26 });
const mm = new Mm(machine);
const RW = PROT_READ | PROT_WRITE;
const SPAN = 2 ** 40; // 1 TiB of virtual space for each kind
const small = await mm.mmap(0, SPAN, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
const huge = await mm.mmap(0, SPAN, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
await mm.madvise(huge, SPAN, MADV_HUGEPAGE);
let nextSmall = small;
let nextHuge = Math.ceil(huge / PMD_SIZE) * PMD_SIZE;

const table = new Float64Array(K);
const bench = newBench();
bench
  .add('typed-array store (baseline)', () => {
    for (let i = 0; i < K; i++) table[i] = i + sink.value;
    sink.value += table[K - 1]!;
  })
  .add('4K write fault', async () => {
    await mm.touch(nextSmall, K * 4096, true);
    nextSmall += K * 4096;
  })
  .add('THP write fault (per 4K page)', async () => {
    await mm.touch(nextHuge, K * 4096, true); // 8 faults, 4088 fast-path hits
    nextHuge += K * 4096;
  })
  .add('4K read fault (zero page)', async () => {
    await mm.touch(nextSmall, K * 4096, false);
    nextSmall += K * 4096;
  });
await bench.run();
const base = nsPerOp(bench, 'typed-array store (baseline)', K);
const f4k = nsPerOp(bench, '4K write fault', K);
const thp = nsPerOp(bench, 'THP write fault (per 4K page)', K);
const rd = nsPerOp(bench, '4K read fault (zero page)', K);
printTable('first-touch faults, ns per 4 KiB page', 'typed-array store (baseline)', base, [
  ['4K write fault', f4k],
  ['THP write fault (per 4K page)', thp],
  ['THP write fault (per 2 MiB fault, incl. 511 hits)', thp * 512],
  ['4K read fault (zero page)', rd],
]);
console.log(
  `\nfaults: ${sim.counters.get('mm.faults')}, THPs: ${sim.counters.get('mm.thp.alloc')}, sink ${sink.value > 0}`,
);
