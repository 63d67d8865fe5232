/**
 * IGT xe_exec_system_allocator's prefetch-benchmark and prefetch-sys-benchmark as a benchmark:
 * the bandwidth of a prefetch of a whole buffer to VRAM (xe_vm_prefetch_async, region 1) and back
 * to system memory (region 0), on an xe-like GpuSvm (drm_gpusvm chunks {2M, 64K, 4K}). The
 * original prefetches a 64 MiB buffer 128 times around an exec and, between two prefetches to
 * VRAM, memsets the buffer from the CPU (prefetch-benchmark: the CPU faults every page back) or
 * prefetches it to system memory (prefetch-sys-benchmark). Here each task moves an 8 MiB buffer
 * (`--mib N` to change it) once per call, with the same preparation in an untimed beforeEach, and
 * the baseline is a memcpy of the same bytes (Uint8Array.set) in the same run. One op = 1 MiB, so
 * ops/s reads as MiB/s of host time. The simulated bandwidth (virtual time from the cost model,
 * what IGT's "GB/s" line reports) is printed below the table. Every call checks where the pages
 * ended up.
 *
 * Run from packages/svm: `tsx bench/prefetch.bench.ts`.
 */
import { PTE_DEVICE_PRIVATE, pteType } from '@hmmkit/mm';
import { createSim } from '@hmmkit/sim';
import { newBench, nsPerOp, printTable, sink } from '@hmmkit/sim/bench';
import { createSvmWorld, deviceLoc, drmGpusvmPolicy, LOC, mmapAnonymous } from '../src/index.ts';

const arg = process.argv.indexOf('--mib');
const MIB = arg > 0 ? Number(process.argv[arg + 1]) : 8;
const SIZE = MIB << 20;
const PAGES = SIZE / 4096;

const sim = createSim({ seed: 1 });
const w = await createSvmWorld(sim, {
  granule: drmGpusvmPolicy(),
  devmem: { migrate: 'fault' },
  vramBytes: SIZE + (16 << 20),
});
const raw = await mmapAnonymous(w.mm, SIZE + 0x200000);
const a = Math.ceil(raw / 0x200000) * 0x200000;
const fill = new Uint8Array(SIZE).fill(5);
await w.mm.write(a, fill);

/** Pages of the buffer in VRAM (device-private entries), sampled one per 64 KiB. */
function inVram(): number {
  let n = 0;
  for (let p = 0; p < PAGES; p += 16)
    if (pteType(w.mm.readEntry(a + p * 4096).flags) === PTE_DEVICE_PRIVATE) n++;
  return n;
}
const sampled = Math.ceil(PAGES / 16);
const expectAll = (want: number, what: string) => {
  const got = inVram();
  if (got !== want) throw new Error(`${what}: ${got} of ${sampled} sampled pages in VRAM, want ${want}`);
};

async function prefetch(loc: number): Promise<number> {
  const t0 = sim.now;
  const r = await w.svm.prefetch(a, a + SIZE, loc);
  if (r < 0) throw new Error(`prefetch failed: ${r}`);
  return sim.now - t0;
}

const virt = { vram: 0, sys: 0, vramN: 0, sysN: 0 };
const src = new Uint8Array(SIZE).fill(7);
const dst = new Uint8Array(SIZE);
const bench = newBench(2000, 200);
bench.add('memcpy (Uint8Array.set)', () => {
  dst.set(src);
  sink.value += dst[SIZE - 1]!;
});
// prefetch-benchmark: the CPU memset brings every page back before the next prefetch to VRAM
bench.add(
  'prefetch to VRAM, after a CPU memset (prefetch-benchmark)',
  async () => {
    virt.vram += await prefetch(deviceLoc(0));
    virt.vramN++;
    expectAll(sampled, 'after the prefetch to VRAM');
  },
  {
    beforeEach: async () => {
      await w.mm.write(a, fill);
      expectAll(0, 'after the memset');
    },
  },
);
// prefetch-sys-benchmark: the prefetch to system memory, from VRAM
bench.add(
  'prefetch to system memory, from VRAM (prefetch-sys-benchmark)',
  async () => {
    virt.sys += await prefetch(LOC.SYSMEM);
    virt.sysN++;
    expectAll(0, 'after the prefetch to system memory');
  },
  {
    beforeEach: async () => {
      await prefetch(deviceLoc(0));
      expectAll(sampled, 'before the prefetch to system memory');
    },
  },
);
await bench.run();
const base = nsPerOp(bench, 'memcpy (Uint8Array.set)', MIB);
printTable(
  `Prefetch bandwidth, host time per MiB (ops/s = MiB/s) of an ${MIB} MiB buffer, against memcpy (node ${process.version})`,
  'memcpy (Uint8Array.set)',
  base,
  [
    [
      'prefetch to VRAM, after a CPU memset (prefetch-benchmark)',
      nsPerOp(bench, 'prefetch to VRAM, after a CPU memset (prefetch-benchmark)', MIB),
    ],
    [
      'prefetch to system memory, from VRAM (prefetch-sys-benchmark)',
      nsPerOp(bench, 'prefetch to system memory, from VRAM (prefetch-sys-benchmark)', MIB),
    ],
  ],
);
const gbs = (ns: number, n: number) => ((SIZE * n) / ns).toFixed(2);
console.log(
  `\nSimulated bandwidth (virtual time, the cost model): to VRAM ${gbs(virt.vram, virt.vramN)} GB/s over ${virt.vramN} prefetches, ` +
    `to system memory ${gbs(virt.sys, virt.sysN)} GB/s over ${virt.sysN}`,
);
