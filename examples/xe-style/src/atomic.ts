/**
 * xe-style madvise of the atomic-access and PAT attributes (DRM_XE_MEM_RANGE_ATTR_ATOMIC / _PAT):
 * a GPU atomic under DEVICE migrates the page to VRAM even though the preferred location is system
 * memory; under CPU it is refused and the exec is cancelled; a PAT index advised on a range shows
 * up in every device PTE of it (on a device with Intel's Xe2 PTE format: the PAT table's `wt`,
 * index 15, written into the PTE's PAT0..PAT4 bits).
 */
import { ACCESS, patIndexOf, xe2 } from '@hmmkit/gpu';
import { createSim } from '@hmmkit/sim';
import {
  ATOMIC_ACCESS,
  createSvmWorld,
  drmGpusvmPolicy,
  LOC,
  madviseAtomic,
  madvisePat,
  mmapAnonymous,
  runKernel,
  worldVerdict,
} from '@hmmkit/svm';

const K64 = 0x10000;

/** What the atomic/PAT scenario observed. */
export interface XeAtomicResult {
  readonly lines: string[];
  /** The value after one device atomic increment of 41 (DEVICE mode). */
  readonly deviceValue: number;
  /** Whether the DEVICE-mode atomic left the page in VRAM. */
  readonly deviceInVram: boolean;
  /** Warps cancelled by the CPU-mode atomic. */
  readonly cpuModeCancelled: number;
  /** The PAT index of every device mapping of the advised range. */
  readonly pats: number[];
  readonly violations: number;
}

/** Runs the scenario. */
export async function runAtomic(seed = 1): Promise<XeAtomicResult> {
  const sim = createSim({ seed });
  const w = await createSvmWorld(sim, {
    granule: drmGpusvmPolicy(),
    devmem: { migrate: 'fault' },
    format: xe2,
  });
  return sim.sched.runMain(async () => {
    const lines: string[] = [];
    const a = await mmapAnonymous(w.mm, K64);
    const b = await mmapAnonymous(w.mm, K64);
    await w.mm.writeU32(a, 41);
    await w.mm.writeU32(b, 7);
    w.svm.attrs.advise(a, a + K64, { preferredLoc: LOC.SYSMEM });
    await madviseAtomic(w.svm, a, a + K64, ATOMIC_ACCESS.DEVICE);
    await runKernel(w, 0, [[[a, ACCESS.ATOMIC, 1]]]);
    const sd = w.svm.devmem[0]!;
    const deviceInVram = sd.contains(w.mm.readEntry(a).val);
    lines.push(`DEVICE atomic, preferred location sysmem: page in VRAM after the atomic: ${deviceInVram}`);
    const deviceValue = await w.mm.readU32(a);
    lines.push(`  CPU reads ${deviceValue} (41 + 1)`);
    await madviseAtomic(w.svm, b, b + K64, ATOMIC_ACCESS.CPU);
    const k = await runKernel(w, 0, [[[b, ACCESS.ATOMIC, 1]]]);
    lines.push(
      `CPU-only atomics: the GPU atomic is refused (-EACCES), ${k.failed} warp cancelled; b = ${await w.mm.readU32(b)}`,
    );
    const wt = patIndexOf(xe2, 'wt');
    await madvisePat(w.svm, b, b + K64, wt);
    await runKernel(w, 0, [[[b + 4, ACCESS.WRITE, 1]]]);
    const pats: number[] = [];
    w.devs[0]!.pageTable.forEachMapping(b, b + K64, (m) => pats.push(m.pat ?? 0));
    lines.push(`PAT index ${wt} (wt) advised on b: device PTE indices ${[...new Set(pats)].join(',')}`);
    const v = worldVerdict(w);
    lines.push(v.violations === 0 ? 'oracle: COHERENT' : `oracle: ${v.violations} violations`);
    return { lines, deviceValue, deviceInVram, cpuModeCancelled: k.failed, pats, violations: v.violations };
  });
}
