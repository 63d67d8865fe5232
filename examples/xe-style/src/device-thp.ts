/**
 * Device-private 2 MiB folios (`devmem.thp`; MIGRATE_VMA_SELECT_COMPOUND, Linux 6.19
 * mm/migrate_device.c): a 2 MiB block backed by a CPU THP migrates to VRAM as one compound entry —
 * one collected migrate entry, one PMD-level device-private CPU entry —
 * and a CPU fault brings it back as one THP. Without the option the same block is collected page by
 * page (512 entries) and the CPU side ends up as 512 device-private PTEs.
 */
import { ACCESS } from '@hmmkit/gpu';
import { pteType } from '@hmmkit/mm';
import { createSim } from '@hmmkit/sim';
import {
  type Access,
  createSvmWorld,
  drmGpusvmPolicy,
  mmapAnonymous,
  runKernel,
  worldVerdict,
} from '@hmmkit/svm';

const P = 4096;
const M2 = 0x200000;

/** Numbers of one run. */
export interface DeviceThpMetrics {
  /** hmm migrate entries collected to move the block to VRAM. */
  readonly collected: number;
  /** Order of the CPU entry after the migration (9: one PMD-level device-private entry). */
  readonly cpuOrderOnDevice: number;
  /** Order of the CPU entry after the CPU fault (9: a THP again). */
  readonly cpuOrderBack: number;
  readonly dataOk: boolean;
  readonly violations: number;
}

/** Runs a GPU store over a CPU-written 2 MiB THP block, then a CPU read of it; `thp` = devmem.thp. */
export async function runDeviceThp(thp: boolean): Promise<DeviceThpMetrics> {
  const sim = createSim({ seed: 1 });
  const w = await createSvmWorld(sim, {
    granule: drmGpusvmPolicy(),
    devmem: { migrate: 'fault', thp },
    vramBytes: 8 << 20,
    thp: 'always',
  });
  const k = (n: string) => sim.counters.get(n);
  return sim.sched.runMain(async () => {
    const raw = await mmapAnonymous(w.mm, 2 * M2);
    const at = Math.ceil(raw / M2) * M2;
    for (let i = 0; i < M2 / P; i++) await w.mm.writeU32(at + i * P, i);
    const c0 = k('hmm.migrate.collected');
    const warps: Access[][] = Array.from({ length: 16 }, (_, g) =>
      Array.from({ length: 32 }, (_, j): Access => [at + (g * 32 + j) * P + 4, ACCESS.WRITE, g * 32 + j + 7]),
    );
    const r = await runKernel(w, 0, warps);
    const collected = k('hmm.migrate.collected') - c0;
    const onDevice = w.mm.readEntry(at + 77 * P);
    let dataOk = r.failed === 0;
    for (let i = 0; i < M2 / P; i++) {
      if ((await w.mm.readU32(at + i * P)) !== i || (await w.mm.readU32(at + i * P + 4)) !== i + 7)
        dataOk = false;
    }
    const back = w.mm.readEntry(at + 77 * P);
    return {
      collected,
      cpuOrderOnDevice: pteType(onDevice.flags) === 0 ? -1 : onDevice.order,
      cpuOrderBack: back.order,
      dataOk,
      violations: worldVerdict(w).violations,
    };
  });
}
