/**
 * The scenario around the minimal mirror: a GPU kernel on CPU-initialised memory, a CPU munmap
 * and mprotect under the mirror, a second kernel that hits both, a CPU thread racing a third
 * kernel, and the coherence oracle's verdict after every invalidation.
 */
import { ACCESS, WALK } from '@hmmkit/gpu';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '@hmmkit/mm';
import { formatNs, type Sim } from '@hmmkit/sim';
import { type Access, createWorld, type ExampleResult, runKernel, runScenario } from './harness.ts';
import { MinimalMirror } from './mirror.ts';

const P = 4096;
const NPAGES = 64;

/** Numbers of one run. */
export interface MirrorMetrics {
  readonly simNs: number;
  readonly gpuFaults: number;
  readonly faultBatches: number;
  readonly cancels: number;
  readonly failedWarps: number;
  readonly tlbInvalidates: number;
  readonly zaps: number;
  readonly hmmRetries: number;
  readonly checkedInvalidations: number;
  readonly violations: number;
  readonly staleTlb: number;
  readonly dataOk: boolean;
}

/** Printed lines and metrics. */
export type MirrorResult = ExampleResult<MirrorMetrics>;

/** Runs the scenario as a scheduler task; `seed` picks the interleaving of the racing CPU thread. */
export function run(seed = 3): Promise<MirrorResult> {
  return runScenario(seed, scenario);
}

async function scenario(sim: Sim): Promise<MirrorResult> {
  const { mm, dev, oracle } = await createWorld(sim, { thp: 'never' });
  const lines: string[] = [];
  const say = (s: string) => lines.push(s);
  const k = (n: string) => sim.counters.get(n);
  const a = await mm.mmap(0, NPAGES * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  for (let i = 0; i < NPAGES; i++) await mm.writeU32(a + i * P, i + 1);
  const m = new MinimalMirror(mm, dev, a, a + NPAGES * P);
  await m.init();
  say(`mirror of ${NPAGES} pages at 0x${a.toString(16)}: one interval notifier, 64 KiB fault-around`);

  // 1. 8 warps read word 0 of every page and write word 1
  const k1 = await runKernel(
    sim,
    m,
    Array.from({ length: 8 }, (_, w) =>
      Array.from({ length: 8 }, (_, j): Access[] => {
        const va = a + (w * 8 + j) * P;
        return [
          [va, ACCESS.READ, 0],
          [va + 4, ACCESS.WRITE, 1000 + w * 8 + j],
        ];
      }).flat(),
    ),
  );
  let dataOk = true;
  for (let i = 0; i < NPAGES; i++) {
    if (k1.data[2 * i] !== i + 1 || (await mm.readU32(a + i * P + 4)) !== 1000 + i) dataOk = false;
  }
  say(
    `kernel 1: ${k1.accesses} accesses, ${k1.faults} GPU faults in ${k(`gpu.fault.batches`)} batch(es), ` +
      `${formatNs(k1.elapsedNs)}; GPU saw the CPU's data and the CPU sees the GPU's writes: ${dataOk ? 'yes' : 'NO'}`,
  );

  // 2. CPU munmap of pages 16..31 and mprotect(PROT_READ) of pages 0..15
  const inv0 = k('gpu.tlb.invalidate') + k('gpu.tlb.flush');
  await mm.munmap(a + 16 * P, 16 * P);
  await mm.mprotect(a, 16 * P, PROT_READ);
  const inv = k('gpu.tlb.invalidate') + k('gpu.tlb.flush') - inv0;
  const st = dev.pageTable.translate(a + 16 * P).status;
  say(
    `CPU munmap(16 pages) + mprotect(16 pages, PROT_READ): ${m.zaps} notifier zaps, ${inv} GPU TLB ` +
      `invalidations; device PTE of an unmapped page: ${st === WALK.MAPPED ? 'STILL MAPPED' : 'gone'}`,
  );
  say(`oracle after those invalidations: ${oracle.violations.length} violations`);

  // 3. GPU: read a read-only page (ok), write it (-EPERM), read an unmapped page (-EFAULT)
  const k2 = await runKernel(sim, m, [
    [[a, ACCESS.READ, 0]],
    [[a + P, ACCESS.WRITE, 7]],
    [[a + 20 * P, ACCESS.READ, 0]],
  ]);
  say(
    `kernel 2: read of a PROT_READ page → ${k2.data[0]}; write to it and read of the munmapped page → ` +
      `${k(`gpu.fault.cancels`)} faults cancelled, ${k2.failed} warps killed (GPU SIGSEGV)`,
  );

  // 4. a CPU thread flips protections of pages 32..47 while the GPU reads them
  const cpu = sim.sched.spawn('cpu', async () => {
    for (let r = 0; r < 4; r++) {
      await sim.sched.sleep(r === 0 ? 500 : 15_000);
      await mm.mprotect(a + 32 * P, 16 * P, PROT_READ);
      await mm.mprotect(a + 32 * P, 16 * P, PROT_READ | PROT_WRITE);
    }
  });
  const k3 = await runKernel(
    sim,
    m,
    Array.from({ length: 8 }, (_, w) =>
      Array.from({ length: 4096 }, (_, j): Access => [a + (32 + ((w * 2 + j) % 16)) * P, ACCESS.READ, 0]),
    ),
  );
  await sim.sched.join(cpu);
  const hmmRetries = m.retries;
  say(
    `kernel 3 racing a CPU thread's 8 mprotects: ${k3.faults} faults, ${hmmRetries} ` +
      `mmu_interval_read_retry retries in the hmm_range_fault loop, ${k3.failed} warps failed`,
  );
  oracle.checkAll();
  const staleTlb = dev.staleTlbEntries().length;
  say(
    `oracle: ${oracle.checkedInvalidations} invalidations checked at range end + a full check: ` +
      `${oracle.violations.length === 0 ? 'COHERENT' : `${oracle.violations.length} VIOLATIONS`}; stale GPU TLB entries: ${staleTlb}`,
  );
  say(
    `${k('gpu.tlb.invalidate') + k('gpu.tlb.flush')} GPU TLB invalidations; simulated time ${formatNs(sim.now)}`,
  );
  await m.fini();
  return {
    lines,
    metrics: {
      simNs: sim.now,
      gpuFaults: k('gpu.fault.raised'),
      faultBatches: k('gpu.fault.batches'),
      cancels: k('gpu.fault.cancels'),
      failedWarps: k2.failed + k3.failed,
      tlbInvalidates: k('gpu.tlb.invalidate') + k('gpu.tlb.flush'),
      zaps: m.zaps,
      hmmRetries,
      checkedInvalidations: oracle.checkedInvalidations,
      violations: oracle.violations.length,
      staleTlb,
      dataOk,
    },
  };
}
