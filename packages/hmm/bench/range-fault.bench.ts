/**
 * hmmRangeFault throughput: 2^18 present 4 KiB pages, and 2^18 pages mapped by 512 THPs, with
 * REQ_FAULT set on every page (so the need-fault check runs per page but nothing faults),
 * against a plain typed-array loop that decodes the same number of entries (the practical
 * limit); and the fault path — hmmRangeFault faulting 4096 fresh pages (write) after an
 * MADV_DONTNEED reset — against the CPU touching the same pages after the same reset.
 *
 * Run: pnpm --filter @hmmkit/hmm bench  (or: tsx bench/range-fault.bench.ts)
 */
import {
  createMachine,
  MADV_DONTNEED,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  Mm,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '@hmmkit/mm';
import {
  MmuIntervalNotifier,
  mmuIntervalNotifierInsert,
  mmuIntervalReadBegin,
  mmuIntervalSetSeq,
} from '@hmmkit/notifier';
import { createSim } from '@hmmkit/sim';
import { newBench, nsPerOp, printTable, sink } from '@hmmkit/sim/bench';
import {
  HMM_PFN_REQ_FAULT,
  HMM_PFN_REQ_WRITE,
  HMM_PFN_VALID,
  HMM_PFN_WRITE,
  HmmRange,
  hmmRangeFault,
} from '../src/index.ts';

const N = 2 ** 18;
const F = 4096;
const sim = createSim({ seed: 1 });
const mm = new Mm(createMachine(sim, { pagesPerNode: 2 ** 21 }));
const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const len = N * PAGE_SIZE;
const sub = new MmuIntervalNotifier();
await mmuIntervalNotifierInsert(sub, mm, 0, 2 ** 47, {
  invalidate(s, _r, cur) {
    mmuIntervalSetSeq(s, cur);
    return true;
  },
});
const align = (x: number) => Math.ceil(x / PMD_SIZE) * PMD_SIZE;
const a4 = align(await mm.mmap(0, len + PMD_SIZE, RW, ANON));
await mm.touch(a4, len, true);
const ah = align(await mm.mmap(0, len + PMD_SIZE, RW, ANON));
await mm.madvise(ah, len, MADV_HUGEPAGE);
await mm.touch(ah, len, true);
const af = align(await mm.mmap(0, F * PAGE_SIZE + PMD_SIZE, RW, ANON));

const r4 = new HmmRange({ notifier: sub, start: a4, end: a4 + len, defaultFlags: HMM_PFN_REQ_FAULT });
const rh = new HmmRange({ notifier: sub, start: ah, end: ah + len, defaultFlags: HMM_PFN_REQ_FAULT });
const rf = new HmmRange({
  notifier: sub,
  start: af,
  end: af + F * PAGE_SIZE,
  defaultFlags: HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE,
});

async function run(range: HmmRange): Promise<number> {
  for (;;) {
    range.notifierSeq = await mmuIntervalReadBegin(sub);
    await mm.mmapLock.read();
    const ret = await hmmRangeFault(range);
    mm.mmapLock.readUnlock();
    if (ret === 0) return range.hmmPfns[range.hmmPfns.length - 1]!;
    if (ret !== -16) throw new Error(`hmmRangeFault ${ret}`);
  }
}

// baseline: decode N (val, flags) entries into (pfn, hmm flags) with the same bit tests
const srcVal = new Float64Array(N).map((_, i) => i + 1024);
const srcFlags = new Uint8Array(N).fill(1 | 8 | 16);
const outPfn = new Float64Array(N);
const outFlags = new Uint16Array(N);

const bench = newBench(600);
bench
  .add('typed-array loop (baseline)', () => {
    for (let i = 0; i < N; i++) {
      const f = srcFlags[i]!;
      outFlags[i] = (f & 7) === 1 ? (f & 16 ? HMM_PFN_VALID | HMM_PFN_WRITE : HMM_PFN_VALID) : 0;
      outPfn[i] = srcVal[i]!;
    }
    sink.value += outPfn[N - 1]! + outFlags[N - 1]!;
  })
  .add('hmmRangeFault 4K present', async () => {
    sink.value += await run(r4);
  })
  .add('hmmRangeFault THP present', async () => {
    sink.value += await run(rh);
  })
  .add('MADV_DONTNEED + hmmRangeFault write-faulting 4096 pages', async () => {
    await mm.madvise(af, F * PAGE_SIZE, MADV_DONTNEED);
    sink.value += await run(rf);
  })
  .add('MADV_DONTNEED + CPU write-touching 4096 pages', async () => {
    await mm.madvise(af, F * PAGE_SIZE, MADV_DONTNEED);
    await mm.touch(af, F * PAGE_SIZE, true);
    sink.value += 1;
  });
await bench.run();
const base = nsPerOp(bench, 'typed-array loop (baseline)', N);
printTable(
  `hmmRangeFault, ns per page (N = ${N} pages; fault rows ${F} pages)`,
  'typed-array loop (baseline)',
  base,
  [
    ['hmmRangeFault 4K present', nsPerOp(bench, 'hmmRangeFault 4K present', N)],
    ['hmmRangeFault THP present', nsPerOp(bench, 'hmmRangeFault THP present', N)],
    [
      'MADV_DONTNEED + hmmRangeFault write-faulting',
      nsPerOp(bench, 'MADV_DONTNEED + hmmRangeFault write-faulting 4096 pages', F),
    ],
    [
      'MADV_DONTNEED + CPU write-touching',
      nsPerOp(bench, 'MADV_DONTNEED + CPU write-touching 4096 pages', F),
    ],
  ],
);
