/**
 * One memory hint for an address range across every device, against per-device hints (Oak Zeng:
 * "if you tell device A that the preferred location is device B memory, this doesn't sounds correct
 * … device A is not even aware of the existence of device B"). gpu1 uses a buffer heavily, gpu0
 * reads it now and then; the buffer belongs in gpu1's VRAM.
 *
 * - `shared+peer`: one GpuSvm over both GPUs, one attribute map: preferred location gpu1; the GPUs
 *   map each other's VRAM (one pagemap owner, XGMI/NVLink);
 * - `shared`: the same hint, no peer access (a GPU reaches the other's pages through system memory);
 * - `per-device`: a GpuSvm per GPU, each with its own attributes: gpu1's driver prefers its own VRAM,
 *   gpu0's driver cannot name gpu1 and keeps its default (migrate to the faulting GPU).
 */
import { ACCESS, type AccessType, APERTURE_NAMES, createGpuDevice, type GpuDevice, WALK } from '@hmmkit/gpu';
import { createMachine, Mm } from '@hmmkit/mm';
import { createSim, type Sim } from '@hmmkit/sim';
import {
  type Access,
  CoherenceOracle,
  createSvmWorld,
  deviceLoc,
  drmGpusvmPolicy,
  GpuSvm,
  mmapAnonymous,
  runKernel,
  type SvmWorld,
} from '@hmmkit/svm';

/** The hint arrangements compared. */
export const HINTS = ['shared+peer', 'shared', 'per-device'] as const;
/** One of {@link HINTS}. */
export type HintMode = (typeof HINTS)[number];

/** What one arrangement did. */
export interface HintRow {
  readonly mode: HintMode;
  readonly toVramPages: number;
  readonly toRamPages: number;
  /** GPU kernel time summed over the rounds (ns). */
  readonly gpuNs: number;
  /** Where gpu1's and gpu0's mappings of the buffer's first page point at the end. */
  readonly gpu1Maps: string;
  readonly gpu0Maps: string;
  readonly violations: number;
  /** gpu0 read, every round, exactly the sum of gpu1's atomic adds so far. */
  readonly dataOk: boolean;
}

const P = 4096;
const BASE = 0x6_0000_0000;

/** Kernel runner on device `d` of whichever world owns it. */
interface Rig {
  readonly sim: Sim;
  readonly mm: Mm;
  readonly devs: readonly GpuDevice[];
  kernel(d: number, warps: Access[][]): Promise<{ data: Uint32Array; elapsedNs: number }>;
  violations(): number;
}

async function sharedRig(
  sim: Sim,
  peer: boolean,
  buf: (mm: Mm) => Promise<number>,
): Promise<{ rig: Rig; x: number }> {
  const w = await createSvmWorld(sim, {
    devices: 2,
    granule: drmGpusvmPolicy(),
    devmem: { migrate: 'fault', peer },
  });
  const x = await buf(w.mm);
  w.svm.attrs.advise(x, x + BYTES, { preferredLoc: deviceLoc(1) });
  return { rig: worldRig(w), x };
}

function worldRig(w: SvmWorld): Rig {
  return {
    sim: w.sim,
    mm: w.mm,
    devs: w.devs,
    kernel: (d, warps) => runKernel(w, d, warps),
    violations: () => {
      w.oracle.checkAll();
      return w.oracle.violations.length;
    },
  };
}

async function perDeviceRig(sim: Sim, buf: (mm: Mm) => Promise<number>): Promise<{ rig: Rig; x: number }> {
  const mm = new Mm(createMachine(sim, { thp: 'never' }));
  const devs = [0, 1].map((i) =>
    createGpuDevice(sim, { id: i, vramBytes: 64 << 20, counterPrefix: `gpu${i}` }),
  );
  const svms = devs.map(
    (d) => new GpuSvm(mm, [d], { granule: drmGpusvmPolicy(), devmem: { migrate: 'fault' } }),
  );
  for (const s of svms) s.attachSystemMemory();
  const oracle = new CoherenceOracle(mm, devs, {
    throwOnViolation: false,
    resolve: (d, m, va) => svms[devs.indexOf(d)]!.resolver(d, m, va),
  });
  await oracle.attach();
  const x = await buf(mm);
  svms[1]!.attrs.advise(x, x + BYTES, { preferredLoc: deviceLoc(0) }); // gpu1's driver: "my VRAM"
  const worlds: SvmWorld[] = devs.map((d, i) => ({ sim, mm, devs: [d], svm: svms[i]!, oracle }));
  return {
    x,
    rig: {
      sim,
      mm,
      devs,
      kernel: (d, warps) => runKernel(worlds[d]!, 0, warps),
      violations: () => {
        oracle.checkAll();
        return oracle.violations.length;
      },
    },
  };
}

const BYTES = 2 << 20;

function where(dev: GpuDevice, va: number): string {
  const t = dev.pageTable.translate(va);
  return t.status === WALK.MAPPED ? APERTURE_NAMES[t.aperture]! : 'unmapped';
}

/** Runs `rounds` rounds of (gpu0: one read sweep, gpu1: `heavy` atomic sweeps) under each arrangement. */
export async function runHints(rounds: number, heavy: number, seed = 1): Promise<HintRow[]> {
  const rows: HintRow[] = [];
  for (const mode of HINTS) {
    const sim = createSim({ seed });
    const alloc = (mm: Mm) => mmapAnonymous(mm, BYTES, BASE);
    const { rig, x } =
      mode === 'per-device'
        ? await perDeviceRig(sim, alloc)
        : await sharedRig(sim, mode === 'shared+peer', alloc);
    const k = (n: string) => sim.counters.get(n);
    const row = await sim.sched.runMain(async () => {
      const pages = BYTES / P;
      const warps = (a: AccessType, v: number): Access[][] =>
        Array.from({ length: 16 }, (_, w) =>
          Array.from({ length: pages / 16 }, (_, i): Access => [x + (w * (pages / 16) + i) * P, a, v]),
        );
      let gpuNs = 0;
      let dataOk = true;
      for (let i = 0; i < pages; i++) await rig.mm.writeU32(x + i * P, 0); // the CPU initialises it
      for (let r = 0; r < rounds; r++) {
        const rd = await rig.kernel(0, warps(ACCESS.READ, 0));
        gpuNs += rd.elapsedNs;
        for (let i = 0; i < pages; i++) if (rd.data[i] !== r * heavy) dataOk = false;
        for (let h = 0; h < heavy; h++) gpuNs += (await rig.kernel(1, warps(ACCESS.ATOMIC, 1))).elapsedNs;
      }
      return {
        mode,
        toVramPages: k('svm.migrate.toVram.pages'),
        toRamPages: k('svm.migrate.toRam.pages'),
        gpuNs,
        gpu1Maps: where(rig.devs[1]!, x),
        gpu0Maps: where(rig.devs[0]!, x),
        violations: rig.violations(),
        dataOk,
      };
    });
    rows.push(row);
  }
  return rows;
}
