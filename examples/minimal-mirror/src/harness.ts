/**
 * The scaffolding the mirroring examples' scenarios share (minimal-mirror, nouveau-style,
 * read-only-policy): a world (an mm, a GPU whose SYS aperture reads the mm's frames, and the
 * coherence oracle), a kernel launch with a driver's fault handler in the loop, and a scenario run
 * as the `main` scheduler task. Imported as `@hmmkit/example-minimal-mirror/harness`.
 */
import {
  type AccessType,
  createGpuDevice,
  type GpuDevice,
  type KernelResult,
  makeStreams,
} from '@hmmkit/gpu';
import { createMachine, type MachineOptions, Mm } from '@hmmkit/mm';
import { createSim, type Sim, type Task } from '@hmmkit/sim';
import { CoherenceOracle } from '@hmmkit/svm';

const P = 4096;

/** One access of a warp: `[va, access, value]`. */
export type Access = readonly [number, AccessType, number];

/** Printed lines and metrics of one example run. */
export interface ExampleResult<M> {
  readonly lines: string[];
  readonly metrics: M;
}

/** Wires a device's SYS aperture to the mm's physical frames (the GPU reads real CPU pages). */
export function attachSystemMemory(mm: Mm, dev: GpuDevice): void {
  const phys = mm.machine.phys;
  const buf = new Uint8Array(4);
  const dv = new DataView(buf.buffer);
  dev.attachSystemMemory({
    read32(pa) {
      phys.readPage(Math.floor(pa / P), pa % P, buf, 0, 4);
      return dv.getUint32(0, true);
    },
    write32(pa, value) {
      dv.setUint32(0, value >>> 0, true);
      phys.writePage(Math.floor(pa / P), pa % P, buf, 0, 4);
    },
  });
}

/** One CPU mm, one GPU on its frames, and a coherence oracle watching both. */
export interface World {
  readonly mm: Mm;
  readonly dev: GpuDevice;
  readonly oracle: CoherenceOracle;
}

/** Builds a {@link World} on a machine with `machine` options; the oracle is attached (not throwing). */
export async function createWorld(sim: Sim, machine: MachineOptions): Promise<World> {
  const mm = new Mm(createMachine(sim, machine));
  const dev = createGpuDevice(sim);
  attachSystemMemory(mm, dev);
  const oracle = new CoherenceOracle(mm, [dev], { throwOnViolation: false });
  await oracle.attach();
  return { mm, dev, oracle };
}

/** What {@link runKernel} needs of a driver: its device and its fault bottom half. */
export interface FaultingDriver {
  readonly dev: GpuDevice;
  startFaultHandler(stop: () => boolean): Task;
}

/** Runs one kernel with the driver's fault handler in the loop; `data` holds the loaded words. */
export async function runKernel(
  sim: Sim,
  driver: FaultingDriver,
  warps: Access[][],
): Promise<KernelResult & { data: Uint32Array }> {
  const streams = makeStreams(warps);
  let done = false;
  const handler = driver.startFaultHandler(() => done);
  const r = await driver.dev.engine.run(streams);
  done = true;
  driver.dev.faultBuffer.kick();
  await sim.sched.join(handler);
  return { ...r, data: streams.data! };
}

/** Runs `scenario` as the `main` task of a fresh simulation seeded with `seed`. */
export async function runScenario<R>(seed: number, scenario: (sim: Sim) => Promise<R>): Promise<R> {
  const sim = createSim({ seed });
  let out: R | null = null;
  sim.sched.spawn('main', async () => {
    out = await scenario(sim);
  });
  await sim.sched.run();
  if (out === null) throw new Error('scenario did not finish');
  return out;
}
