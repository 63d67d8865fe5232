/**
 * The read-only-policy scenario: 64 CPU-written (so CPU-writable) pages mirrored on a GPU, 16 of
 * them in the "compressed" class the device must map read-only. Kernels read everything and
 * write some pages inside and outside the class; a policy checker walks the device page table
 * for writable PTEs in the class, and the coherence oracle checks the mirror against the CPU.
 */
import type { Access, ExampleResult } from '@hmmkit/example-minimal-mirror/harness';
import { createWorld, runKernel, runScenario } from '@hmmkit/example-minimal-mirror/harness';
import { ACCESS, type GpuDevice, PAGE_4K } from '@hmmkit/gpu';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '@hmmkit/mm';
import { formatNs, type Sim } from '@hmmkit/sim';
import { type RoInterval, type RoMode, RoPolicyMirror } from './driver.ts';

const P = 4096;
const NPAGES = 64;

/** A device PTE that breaks the policy. */
export interface PolicyViolation {
  readonly va: number;
  readonly reason: 'writable-in-read-only-class';
}

/**
 * The policy's own oracle: every device mapping inside the read-only class must be read-only.
 * Returns the violating pages.
 */
export function checkReadOnlyPolicy(dev: GpuDevice, cls: readonly RoInterval[]): PolicyViolation[] {
  const out: PolicyViolation[] = [];
  for (const r of cls) {
    dev.pageTable.forEachMapping(r.start, r.end, (m) => {
      if (!m.writable) return;
      for (let va = Math.max(m.va, r.start); va < Math.min(m.va + m.size, r.end); va += PAGE_4K) {
        out.push({ va, reason: 'writable-in-read-only-class' });
      }
    });
  }
  return out;
}

/** Numbers of one run. */
export interface RoMetrics {
  readonly mode: RoMode;
  readonly simNs: number;
  readonly gpuFaults: number;
  /** Device PTEs in the class that are read-only while the CPU PTE is writable. */
  readonly roWhileCpuWritable: number;
  readonly roWritesRefused: number;
  readonly roPagesResolved: number;
  readonly cancels: number;
  readonly failedWarps: number;
  readonly policyViolations: number;
  readonly coherenceViolations: number;
  readonly staleTlb: number;
  /** What the CPU reads at the page the GPU tried to write inside the class. */
  readonly compressedWord: number;
  readonly classPages: number;
}

/** Printed lines and metrics. */
export type RoResult = ExampleResult<RoMetrics>;

/** Runs the scenario with the driver in `mode`. */
export function run(opts: { mode?: RoMode; seed?: number } = {}): Promise<RoResult> {
  return runScenario(opts.seed ?? 1, (sim) => scenario(sim, opts.mode ?? 'enforce'));
}

async function scenario(sim: Sim, mode: RoMode): Promise<RoResult> {
  const { mm, dev, oracle } = await createWorld(sim, { thp: 'never' });
  const lines: string[] = [];
  const say = (s: string) => lines.push(s);
  const k = (n: string) => sim.counters.get(n);
  const a = await mm.mmap(0, NPAGES * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  for (let i = 0; i < NPAGES; i++) await mm.writeU32(a + i * P, i);
  const m = new RoPolicyMirror(mm, dev, a, a + NPAGES * P, mode);
  await m.init();
  const cs = a + 16 * P;
  const ce = a + 32 * P;
  await m.markReadOnly(cs, ce);
  say(
    `driver mode '${mode}': 64 CPU-writable pages mirrored; pages 16..31 are compressed memory ` +
      `(the device must map them read-only)`,
  );

  // kernel 1: read every page, write word 1 of pages 0..15 (normal memory)
  const k1 = await runKernel(sim, m, [
    Array.from({ length: NPAGES }, (_, i): Access => [a + i * P, ACCESS.READ, 0]),
    Array.from({ length: 16 }, (_, i): Access => [a + i * P + 4, ACCESS.WRITE, 500 + i]),
  ]);
  let roWhileCpuWritable = 0;
  for (let va = cs; va < ce; va += P) {
    const t = dev.pageTable.translate(va);
    if (!t.writable && oracle.cpuLookup(va)[1]) roWhileCpuWritable++;
  }
  const normalW = dev.pageTable.translate(a).writable;
  say(
    `kernel 1 (reads all, writes normal pages): ${k1.faults} GPU faults, ${k1.failed} warps failed; ` +
      `compressed pages mapped read-only while the CPU PTE is writable: ${roWhileCpuWritable}/16; ` +
      `normal page writable: ${normalW}`,
  );

  // kernel 2: write inside the class (page 20), atomicAdd inside it (page 21), write a normal page
  const k2 = await runKernel(sim, m, [
    [[a + 20 * P, ACCESS.WRITE, 0xbad]],
    [[a + 21 * P, ACCESS.ATOMIC, 1]],
    [[a + 5 * P + 8, ACCESS.WRITE, 0x600d]],
  ]);
  const word20 = await mm.readU32(a + 20 * P);
  const word21 = await mm.readU32(a + 21 * P);
  const good = await mm.readU32(a + 5 * P + 8);
  say(
    `kernel 2 (GPU write + atomic into compressed pages, write to a normal page): ` +
      `${m.roWritesRefused} refused, ${m.roPagesResolved} resolved, ${k('gpu.fault.cancels')} cancelled, ` +
      `${k2.failed} warps killed; CPU reads page 20 = ${word20}, page 21 = ${word21}, normal page = 0x${good.toString(16)}`,
  );

  // the CPU may still write compressed memory; the GPU reads the new data through its RO mapping
  await mm.writeU32(a + 24 * P, 4242);
  const k3 = await runKernel(sim, m, [[[a + 24 * P, ACCESS.READ, 0]]]);
  const ro24 = !dev.pageTable.translate(a + 24 * P).writable;
  say(
    `CPU writes compressed page 24; the GPU reads it through its ${ro24 ? 'read-only' : 'WRITABLE'} mapping: ${k3.data[0]}`,
  );

  const policy = checkReadOnlyPolicy(dev, m.roClass);
  oracle.checkAll();
  const staleTlb = dev.staleTlbEntries().length;
  say(
    `policy check: ${policy.length} writable device PTEs in compressed memory` +
      `${policy.length > 0 ? ` (first at page ${(policy[0]!.va - a) / P})` : ''}; coherence oracle: ` +
      `${oracle.violations.length === 0 ? 'COHERENT' : `${oracle.violations.length} VIOLATIONS`}; ` +
      `stale TLB entries ${staleTlb}; ${k('gpu.tlb.invalidate') + k('gpu.tlb.flush')} GPU TLB invalidations, ` +
      `${m.retries} read_retry retries; simulated time ${formatNs(sim.now)}`,
  );
  await m.fini();
  let classPages = 0;
  for (const r of m.roClass) classPages += (r.end - r.start) / P;
  return {
    lines,
    metrics: {
      mode,
      simNs: sim.now,
      gpuFaults: k('gpu.fault.raised'),
      roWhileCpuWritable,
      roWritesRefused: m.roWritesRefused,
      roPagesResolved: m.roPagesResolved,
      cancels: k('gpu.fault.cancels'),
      failedWarps: k1.failed + k2.failed + k3.failed,
      policyViolations: policy.length,
      coherenceViolations: oracle.violations.length,
      staleTlb,
      compressedWord: word20,
      classPages,
    },
  };
}
