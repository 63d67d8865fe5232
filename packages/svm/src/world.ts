/**
 * A ready-made lab bench for driver prototypes: a simulated machine and process (`Mm`), one or
 * more GPUs, a {@link GpuSvm} on them with its system memory attached, and the
 * {@link CoherenceOracle} checking every invalidation — plus {@link runKernel}, which runs one
 * GPU kernel with the svm's fault handler in the loop. Examples, tests and the bench CLI all
 * build their scenarios on it.
 *
 * @module
 */

import {
  type AccessStreams,
  type AccessType,
  createGpuDevice,
  type GpuDevice,
  makeStreams,
  type PtFormat,
} from '@hmmkit/gpu';
import {
  createMachine,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  Mm,
  PROT_READ,
  PROT_WRITE,
  type ThpMode,
} from '@hmmkit/mm';
import { formatNs, type Sim } from '@hmmkit/sim';
import { attrFlags, SVM_FLAG } from './attrs.ts';
import { exclusiveAtomicsAt } from './exclusive.ts';
import { GpuSvm, type GpuSvmOptions } from './gpusvm.ts';
import { CoherenceOracle } from './oracle.ts';

/** Everything a scenario touches. */
export interface SvmWorld {
  readonly sim: Sim;
  readonly mm: Mm;
  readonly devs: GpuDevice[];
  readonly svm: GpuSvm;
  readonly oracle: CoherenceOracle;
}

/** Options of {@link createSvmWorld}: the GpuSvm's own options plus the world's shape. */
export interface SvmWorldOptions extends GpuSvmOptions {
  /** Number of GPUs (default 1); device i gets counter prefix `gpu<i>`. */
  readonly devices?: number;
  /** VRAM per device in bytes (default 64 MiB). */
  readonly vramBytes?: number;
  /** Device page-table format (default: the gpu package's default, NVIDIA MMU v2). */
  readonly format?: PtFormat;
  /** The CPU mm's THP mode (default 'never'). */
  readonly thp?: ThpMode;
  /** Make the oracle throw at the first violation (default false: it records them). */
  readonly throwOnViolation?: boolean;
}

/** Builds a machine, a process, `devices` GPUs, a GpuSvm on them and an attached coherence oracle. */
export async function createSvmWorld(sim: Sim, options: SvmWorldOptions = {}): Promise<SvmWorld> {
  const mm = new Mm(createMachine(sim, { thp: options.thp ?? 'never' }));
  const devs = Array.from({ length: options.devices ?? 1 }, (_, i) =>
    createGpuDevice(sim, {
      id: i,
      vramBytes: options.vramBytes ?? 64 << 20,
      counterPrefix: `gpu${i}`,
      ...(options.format === undefined ? {} : { format: options.format }),
    }),
  );
  const svm = new GpuSvm(mm, devs, options);
  svm.attachSystemMemory();
  const attrs = svm.attrs;
  const oracle = new CoherenceOracle(mm, devs, {
    resolve: svm.resolver,
    gpuReadOnly: (va) => (attrFlags(attrs.lookup(va)) & SVM_FLAG.GPU_RO) !== 0,
    exclusiveAtomics: (va) => exclusiveAtomicsAt(svm, va),
    ...(svm.gpuVaOffset === 0 ? {} : { gpuVaOffset: () => svm.gpuVaOffset }),
    throwOnViolation: options.throwOnViolation ?? false,
  });
  await oracle.attach();
  return { sim, mm, devs, svm, oracle };
}

/** `mmap` of anonymous read-write memory (at exactly `addr` when given, MAP_FIXED); throws on error. */
export async function mmapAnonymous(mm: Mm, length: number, addr?: number): Promise<number> {
  const fixed = addr === undefined ? 0 : MAP_FIXED;
  const a = await mm.mmap(addr ?? 0, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | fixed);
  if (a < 0 || (addr !== undefined && a !== addr)) throw new Error(`mmap failed: ${a}`);
  return a;
}

/** One GPU access: virtual address, access type, 32-bit value (stored, added, or replaced by the load). */
export type Access = readonly [va: number, access: AccessType, value: number];

/** What one kernel did. */
export interface KernelRun {
  /** Per access: the value loaded (READ), the old value (ATOMIC), or what was stored (WRITE). */
  readonly data: Uint32Array;
  /** Warps cancelled by the driver (GPU "SIGSEGV"). */
  readonly failed: number;
  /** Fault entries written to the fault buffer. */
  readonly faults: number;
  /** Virtual time the kernel took (ns). */
  readonly elapsedNs: number;
}

/**
 * Runs one kernel on device `device` with the svm's fault handler (the bottom half) in the loop
 * (and its access-counter handler when the svm has the `accessCounters` option),
 * from per-warp access lists or ready-made `streams` (e.g. a `@hmmkit/workloads` kernel's).
 * Call it from inside a scheduler task (e.g. `sim.sched.runMain(async () => ...)`).
 */
export async function runKernel(
  world: SvmWorld,
  device: number,
  warps: readonly (readonly Access[])[],
  streams: AccessStreams = makeStreams(warps.map((w) => [...w])),
): Promise<KernelRun> {
  const dev = world.devs[device];
  if (dev === undefined) throw new RangeError(`runKernel: no device ${device}`);
  let done = false;
  const handler = world.svm.startFaultHandler(device, () => done);
  const svm = world.svm;
  const counters =
    svm.accessCounters !== null && svm.devmem[device] !== undefined
      ? svm.startAccessCounterHandler(device, () => done)
      : null;
  const r = await dev.engine.run(streams);
  done = true;
  dev.faultBuffer.kick();
  svm.accessCounters?.wq.wakeUpAll();
  await world.sim.sched.join(handler);
  if (counters !== null) await world.sim.sched.join(counters);
  return {
    data: streams.data ?? new Uint32Array(0),
    failed: r.failed,
    faults: r.faults,
    elapsedNs: r.elapsedNs,
  };
}

/** The end-of-scenario verdict of a world: what the oracle found and what the devices did. */
export interface WorldVerdict {
  /** Invalidations the oracle checked at their range end. */
  readonly checkedInvalidations: number;
  /** GPU accesses whose translation (and data) the oracle checked. */
  readonly checkedAccesses: number;
  /** Loads (GPU and CPU) checked against the data shadow. */
  readonly checkedLoads: number;
  /** Coherence violations found (0 for a correct driver). */
  readonly violations: number;
  /** GPU TLB invalidations and full flushes, summed over every device. */
  readonly tlbInvalidations: number;
  /** svm fault retries plus hmmRangeFaultLocked retries (notifier collisions). */
  readonly retries: number;
  /** Virtual time now (ns). */
  readonly simNs: number;
  /** The verdict in one printable line. */
  readonly line: string;
}

/** Runs the oracle's full check over every device and summarises the scenario in one line. */
export function worldVerdict(world: SvmWorld): WorldVerdict {
  const { sim, oracle, devs } = world;
  oracle.checkAll();
  const c = (name: string) => sim.counters.get(name);
  let tlbInvalidations = 0;
  for (let i = 0; i < devs.length; i++)
    tlbInvalidations += c(`gpu${i}.tlb.invalidate`) + c(`gpu${i}.tlb.flush`);
  const retries = c('svm.fault.retries') + c('hmm.rangeFaultLocked.retries');
  const violations = oracle.violations.length;
  const scope = devs.length === 1 ? 'a full check' : `a full check over ${devs.length} GPUs`;
  const line =
    `oracle: ${oracle.checkedInvalidations} invalidations + ${oracle.checkedAccesses} GPU accesses + ` +
    `${oracle.checkedLoads} loads checked + ${scope} → ` +
    `${violations === 0 ? 'COHERENT' : `${violations} VIOLATIONS`}; ${tlbInvalidations} GPU TLB invalidations, ` +
    `${retries} fault retries; simulated time ${formatNs(sim.now)}`;
  return {
    checkedInvalidations: oracle.checkedInvalidations,
    checkedAccesses: oracle.checkedAccesses,
    checkedLoads: oracle.checkedLoads,
    violations,
    tlbInvalidations,
    retries,
    simNs: sim.now,
    line,
  };
}
