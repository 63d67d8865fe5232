/**
 * benchmark_thp_migration of hmm-tests.c, the real sweep: buffers of thp/4, thp/2, thp, 2, 4, 8
 * and 128 THPs, each with MADV_HUGEPAGE and with MADV_NOHUGEPAGE: MIGRATE_TO_DEV then
 * MIGRATE_TO_SYS through a dmirror device-private file (the C test's 5 timed iterations become a
 * tinybench task). Baseline: copying the same number of bytes twice with Uint8Array.set (the
 * practical limit of moving the data). Also prints the simulated (virtual) time per round trip.
 *
 * Run: pnpm --filter @hmmkit/dmirror bench  (or: tsx bench/thp-migration.bench.ts)
 *      BENCH_MAX_THPS=8 limits the sweep (default 128).
 */
import {
  createMachine,
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  Mm,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '@hmmkit/mm';
import { createSim } from '@hmmkit/sim';
import { newBench, nsPerOp, printTable, sink } from '@hmmkit/sim/bench';
import { dmirrorOpen, HMM_DMIRROR_MIGRATE_TO_DEV, HMM_DMIRROR_MIGRATE_TO_SYS } from '../src/index.ts';

const maxThps = Number(process.env.BENCH_MAX_THPS ?? 128);
const sizes = [
  PMD_SIZE / 4,
  PMD_SIZE / 2,
  PMD_SIZE,
  2 * PMD_SIZE,
  4 * PMD_SIZE,
  8 * PMD_SIZE,
  128 * PMD_SIZE,
].filter((s) => s <= maxThps * PMD_SIZE);

for (const size of sizes) {
  const npages = size / PAGE_SIZE;
  const bench = newBench(200, 20);
  const virt: Record<string, number> = {};
  const src = new Uint8Array(size).fill(7);
  const dst = new Uint8Array(size);
  bench.add('baseline: copy the bytes twice', () => {
    dst.set(src);
    src.set(dst);
    sink.value += dst[size - 1]!;
  });
  for (const thp of [true, false]) {
    const sim = createSim({ seed: 1 });
    const machine = createMachine(sim, { pagesPerNode: 2 ** 20 });
    const mm = new Mm(machine);
    const fd = await dmirrorOpen(machine, mm, 0);
    const raw = await mm.mmap(0, size + PMD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    const ptr = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
    await mm.madvise(ptr, size, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    await mm.writeI32Array(
      ptr,
      new Int32Array(size / 4).map((_, i) => i & 0xff),
    );
    const mirror = new Uint8Array(size);
    const roundTrip = async () => {
      const a = await fd.ioctl(HMM_DMIRROR_MIGRATE_TO_DEV, { addr: ptr, ptr: mirror, npages });
      const b = await fd.ioctl(HMM_DMIRROR_MIGRATE_TO_SYS, { addr: ptr, ptr: mirror, npages });
      if (a.ret !== 0 || b.ret !== 0 || a.cpages !== npages)
        throw new Error(`ioctl failed ${a.ret} ${b.ret}`);
      sink.value += b.cpages;
    };
    await roundTrip(); // warm-up, as in the C test
    const t0 = sim.now;
    await roundTrip();
    virt[thp ? 'thp' : '4k'] = sim.now - t0;
    bench.add(`M2D+M2S ${thp ? 'THP' : '4K'}`, roundTrip);
  }
  await bench.run();
  const base = nsPerOp(bench, 'baseline: copy the bytes twice', 1);
  printTable(
    `benchmark_thp_migration: ${(size / 2 ** 20).toFixed(2)} MiB (${npages} pages); simulated time per round trip: THP ${(virt.thp! / 1e3).toFixed(0)} µs, 4K ${(virt['4k']! / 1e3).toFixed(0)} µs`,
    'baseline: copy the bytes twice',
    base,
    [
      ['M2D+M2S THP', nsPerOp(bench, 'M2D+M2S THP', 1)],
      ['M2D+M2S 4K', nsPerOp(bench, 'M2D+M2S 4K', 1)],
    ],
  );
}
