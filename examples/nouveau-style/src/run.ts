/**
 * The nouveau-style scenario: a THP-backed buffer mirrored with one 2 MiB device PTE after one
 * fault, a small buffer faulted page by page, GPU atomics on a counter through device-exclusive
 * access, the CPU revoking it by reading the counter, and the coherence oracle's verdict.
 */
import type { Access, ExampleResult } from '@hmmkit/example-minimal-mirror/harness';
import { createWorld, runKernel, runScenario } from '@hmmkit/example-minimal-mirror/harness';
import { ACCESS, WALK } from '@hmmkit/gpu';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  PROT_READ,
  PROT_WRITE,
  PTE_DEVICE_EXCLUSIVE,
  pteType,
} from '@hmmkit/mm';
import { formatNs, type Sim } from '@hmmkit/sim';
import {
  ATOMIC_ACCESS,
  createSvmWorld,
  madviseAtomic,
  mmapAnonymous,
  nouveauPolicy,
  runKernel as svmRunKernel,
} from '@hmmkit/svm';
import { NouveauSvmm } from './svmm.ts';

const P = 4096;
const M2 = 0x200000;
const BASE = 0x1_0000_0000;

/** Numbers of one run. */
export interface NouveauMetrics {
  readonly simNs: number;
  readonly gpuFaults: number;
  readonly tempNotifiers: number;
  readonly liveTempNotifiers: number;
  readonly pte2m: number;
  readonly pte4k: number;
  readonly exclusiveGrants: number;
  readonly exclusiveRevocations: number;
  readonly counterAfterKernel1: number;
  readonly counterFinal: number;
  readonly retries: number;
  readonly tlbInvalidates: number;
  readonly violations: number;
  readonly dataOk: boolean;
  /** The same atomics through GpuSvm's EXCLUSIVE atomic mode (svm/src/exclusive.ts). */
  readonly gpuSvm: { grants: number; counterAfterCpu: number; counterFinal: number; violations: number };
}

/** Printed lines and metrics. */
export type NouveauResult = ExampleResult<NouveauMetrics>;

/** Runs the scenario. */
export function run(seed = 1): Promise<NouveauResult> {
  return runScenario(seed, scenario);
}

async function scenario(sim: Sim): Promise<NouveauResult> {
  const { mm, dev, oracle } = await createWorld(sim, { thp: 'always' });
  const svmm = new NouveauSvmm(mm, dev);
  await svmm.init();
  const lines: string[] = [];
  const say = (s: string) => lines.push(s);
  const k = (n: string) => sim.counters.get(n);
  const rw = PROT_READ | PROT_WRITE;
  const flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
  // A: 2 MiB, 2M aligned, THP always → the CPU's first write maps one PMD; B: 64 KiB of 4K pages
  const a = await mm.mmap(BASE, M2, rw, flags);
  const b = await mm.mmap(BASE + 2 * M2, 16 * P, rw, flags);
  for (let i = 0; i < 512; i++) await mm.writeU32(a + i * P, i);
  for (let i = 0; i < 16; i++) await mm.writeU32(b + i * P, 100 + i);
  const cpuOrder = mm.readEntry(a).order;
  say(`A: 2 MiB THP (CPU map order ${cpuOrder}), B: 64 KiB of 4K pages; the GPU reads every page of both`);

  const k1 = await runKernel(sim, svmm, [
    Array.from({ length: 512 }, (_, i): Access => [a + i * P, ACCESS.READ, 0]),
    Array.from({ length: 16 }, (_, i): Access => [b + i * P, ACCESS.READ, 0]),
  ]);
  let dataOk = true;
  for (let i = 0; i < 512; i++) if (k1.data[i] !== i) dataOk = false;
  for (let i = 0; i < 16; i++) if (k1.data[512 + i] !== 100 + i) dataOk = false;
  const tA = dev.pageTable.translate(a + 77 * P);
  say(
    `kernel 1: ${k1.faults} GPU faults → ${svmm.tempNotifiers} temporary interval notifiers (one per fault, ` +
      `${svmm.liveTempNotifiers} left); device PTEs: ${svmm.ptes['2M']} × 2M (A, widened to the THP: ` +
      `${2 ** tA.pageShift / 1024} KiB at A+77 pages), ${svmm.ptes['4K']} × 4K (B); data ok: ${dataOk ? 'yes' : 'NO'}`,
  );

  // GPU atomics on a counter in B: 4 warps × 8 atomicAdd(1)
  const ctr = b + 3 * P + 8;
  await mm.writeU32(ctr, 0);
  const atomics = (): Access[][] =>
    Array.from({ length: 4 }, () => Array.from({ length: 8 }, (): Access => [ctr, ACCESS.ATOMIC, 1]));
  const k2 = await runKernel(sim, svmm, atomics());
  const tEx = dev.pageTable.translate(ctr);
  const entryType = mm.readEntry(ctr);
  say(
    `kernel 2: 32 atomicAdd on B+0x3008 → ${k2.faults} ATOMIC fault(s), make_device_exclusive granted ` +
      `${svmm.exclusiveGrants}×; device PTE atomic: ${tEx.atomic}; CPU PTE: ` +
      `${pteType(entryType.flags) === PTE_DEVICE_EXCLUSIVE ? 'a device-exclusive entry' : 'NOT exclusive'}`,
  );
  // the CPU reads the counter: mm restores the PTE and the EXCLUSIVE invalidation zaps the device PTE
  const v1 = await mm.readU32(ctr);
  const gone = dev.pageTable.translate(ctr).status !== WALK.MAPPED;
  say(
    `CPU reads the counter: ${v1}; exclusive access revoked (${svmm.exclusiveRevocations} EXCLUSIVE ` +
      `invalidation, owner null), device PTE ${gone ? 'zapped' : 'STILL MAPPED'}`,
  );
  await runKernel(sim, svmm, atomics());
  const v2 = await mm.readU32(ctr);
  say(
    `kernel 3: 32 more atomics re-fault and re-take the page (grants ${svmm.exclusiveGrants}); ` +
      `CPU reads ${v2} (revocations ${svmm.exclusiveRevocations})`,
  );
  oracle.checkAll();
  const violations = oracle.violations.length;
  say(
    `oracle: ${oracle.checkedInvalidations} invalidations checked + a full check → ` +
      `${violations === 0 ? 'COHERENT' : `${violations} VIOLATIONS`}; read_retry retries ${svmm.retries}; ` +
      `${k('gpu.tlb.invalidate') + k('gpu.tlb.flush')} GPU TLB invalidations; ` +
      `simulated time ${formatNs(sim.now)}`,
  );
  const gpuSvm = await viaGpuSvm(sim);
  say(
    `GpuSvm (nouveauPolicy + ATOMIC_ACCESS.EXCLUSIVE): 32 atomics, a CPU read (${gpuSvm.counterAfterCpu}), 32 ` +
      `more → ${gpuSvm.counterFinal}; make_device_exclusive grants ${gpuSvm.grants}; oracle ` +
      `${gpuSvm.violations === 0 ? 'COHERENT' : `${gpuSvm.violations} VIOLATIONS`}`,
  );
  return {
    lines,
    metrics: {
      gpuSvm,
      simNs: sim.now,
      gpuFaults: k('gpu.fault.raised'),
      tempNotifiers: svmm.tempNotifiers,
      liveTempNotifiers: svmm.liveTempNotifiers,
      pte2m: svmm.ptes['2M'],
      pte4k: svmm.ptes['4K'],
      exclusiveGrants: svmm.exclusiveGrants,
      exclusiveRevocations: svmm.exclusiveRevocations,
      counterAfterKernel1: v1,
      counterFinal: v2,
      retries: svmm.retries,
      tlbInvalidates: k('gpu.tlb.invalidate') + k('gpu.tlb.flush'),
      violations,
      dataOk,
    },
  };
}

/** The counter scenario again on a GpuSvm: the framework's own nouveau atomic path. */
async function viaGpuSvm(sim: Sim): Promise<NouveauMetrics['gpuSvm']> {
  const w = await createSvmWorld(sim, { granule: nouveauPolicy(), thp: 'always' });
  const buf = await mmapAnonymous(w.mm, 16 * P);
  const ctr = buf + 3 * P + 8;
  await w.mm.writeU32(ctr, 0);
  await madviseAtomic(w.svm, buf, buf + 16 * P, ATOMIC_ACCESS.EXCLUSIVE);
  const atomics = (): Access[][] =>
    Array.from({ length: 4 }, () => Array.from({ length: 8 }, (): Access => [ctr, ACCESS.ATOMIC, 1]));
  await svmRunKernel(w, 0, atomics());
  const counterAfterCpu = await w.mm.readU32(ctr); // revokes: the EXCLUSIVE invalidation zaps
  await svmRunKernel(w, 0, atomics());
  const counterFinal = await w.mm.readU32(ctr);
  w.oracle.checkAll();
  return {
    grants: w.svm.c.exclusiveGrants.value,
    counterAfterCpu,
    counterFinal,
    violations: w.oracle.violations.length,
  };
}
