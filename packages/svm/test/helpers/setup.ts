import { ACCESS, type AccessType, createGpuDevice, type GpuDevice, makeStreams } from '@hmmkit/gpu';
import {
  createMachine,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  Mm,
  PROT_READ,
  PROT_WRITE,
  type ThpMode,
} from '@hmmkit/mm';
import type { Sim } from '@hmmkit/sim';
import { CoherenceOracle, GpuSvm, type GpuSvmOptions } from '../../src/index.ts';

export interface World {
  sim: Sim;
  mm: Mm;
  devs: GpuDevice[];
  svm: GpuSvm;
  oracle: CoherenceOracle;
}

export async function makeWorld(
  sim: Sim,
  opts: GpuSvmOptions & {
    devices?: number;
    thp?: ThpMode;
    throwOnViolation?: boolean;
    vramBytes?: number;
  } = {},
): Promise<World> {
  const mm = new Mm(createMachine(sim, { thp: opts.thp ?? 'never' }));
  const n = opts.devices ?? 1;
  const devs = Array.from({ length: n }, (_, i) =>
    createGpuDevice(sim, { id: i, vramBytes: opts.vramBytes ?? 32 << 20, counterPrefix: `gpu${i}` }),
  );
  const svm = new GpuSvm(mm, devs, opts);
  svm.attachSystemMemory();
  const oracle = new CoherenceOracle(mm, devs, {
    resolve: svm.resolver,
    throwOnViolation: opts.throwOnViolation ?? true,
  });
  await oracle.attach();
  return { sim, mm, devs, svm, oracle };
}

export async function mmapAnon(mm: Mm, len: number, addr = 0): Promise<number> {
  const a = await mm.mmap(addr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  if (a < 0) throw new Error(`mmap failed ${a}`);
  return a;
}

/**
 * Runs one kernel of (va, access, value) accesses per warp on device `d` with the svm's fault
 * handler in the loop; returns the data array (READ results) and the kernel result.
 */
export async function runKernel(
  w: World,
  d: number,
  warps: (readonly [number, AccessType, number])[][],
): Promise<{ data: Uint32Array; failed: number; faults: number }> {
  const dev = w.devs[d]!;
  const streams = makeStreams(warps);
  let done = false;
  let failed = 0;
  let faults = 0;
  const sched = w.sim.sched;
  const handler = w.svm.startFaultHandler(d, () => done);
  const gpu = sched.spawn(`kernel-${d}`, async () => {
    const r = await dev.engine.run(streams);
    failed = r.failed;
    faults = r.faults;
    done = true;
    dev.faultBuffer.kick();
  });
  await sched.join(gpu);
  await sched.join(handler);
  return { data: streams.data!, failed, faults };
}

export const R = ACCESS.READ;
export const W = ACCESS.WRITE;
