/**
 * amdkfd-style SVM (drivers/gpu/drm/amd/amdkfd/kfd_svm.c): per-range attributes set with
 * `advise` (KFD_IOCTL_SVM_ATTR_PREFERRED_LOC, _GRANULARITY), explicit prefetch
 * (KFD_IOCTL_SVM_ATTR_PREFETCH_LOC), ranges sized by the granularity (`amdkfdPolicy`,
 * svm_range_get_range_boundaries) and one interval notifier per range (`perRangeNotifiers`).
 */
import { ACCESS, APERTURE_NAMES, WALK } from '@hmmkit/gpu';
import { MADV_DONTNEED } from '@hmmkit/mm';
import { createSim, formatNs, hex } from '@hmmkit/sim';
import {
  type Access,
  amdkfdPolicy,
  createSvmWorld,
  deviceLoc,
  LOC,
  mmapAnonymous,
  perRangeNotifiers,
  runKernel,
  type SvmWorld,
  windowNotifiers,
  worldVerdict,
} from '@hmmkit/svm';

const P = 4096;
const K64 = 0x10000;
const M2 = 0x200000;
const BASE = 0x1_0000_0000;

/** Numbers of one run. */
export interface AmdkfdMetrics {
  readonly simNs: number;
  readonly gpuFaults: number;
  readonly ranges: number;
  readonly rangeSizes: Record<string, number>;
  readonly notifiers: number;
  readonly prefetchedPages: number;
  readonly toVramOnFault: number;
  readonly toRamOnCpuTouch: number;
  readonly invalidations: number;
  readonly falseInvalidations: number;
  readonly tlbInvalidates: number;
  readonly violations: number;
  readonly dataOk: boolean;
}

/** Printed lines and metrics. */
export interface AmdkfdResult {
  readonly lines: string[];
  readonly metrics: AmdkfdMetrics;
}

const sizeName = (b: number): string => (b >= 0x100000 ? `${b / 0x100000}M` : `${b / 1024}K`);
const locName = (l: number): string =>
  l === LOC.SYSMEM ? 'sysmem' : l === LOC.UNDEFINED ? 'none' : `gpu${l - 1}`;

function placement(w: SvmWorld, va: number): string {
  const t = w.devs[0]!.pageTable.translate(va);
  return t.status === WALK.MAPPED
    ? `${sizeName(2 ** t.pageShift)} PTE → ${APERTURE_NAMES[t.aperture]}`
    : 'unmapped';
}

/** Runs the scenario with one notifier per range (amdkfd) or drm_gpusvm's 512 MiB windows. */
export async function run(
  opts: { notifiers?: 'per-range' | 'window'; seed?: number } = {},
): Promise<AmdkfdResult> {
  const sim = createSim({ seed: opts.seed ?? 1 });
  const perRange = (opts.notifiers ?? 'per-range') === 'per-range';
  const w = await createSvmWorld(sim, {
    granule: amdkfdPolicy(),
    notifiers: perRange ? perRangeNotifiers() : windowNotifiers(),
    devmem: { migrate: 'fault' },
  });
  return sim.sched.runMain(async () => {
    const lines: string[] = [];
    const say = (s: string) => lines.push(s);
    const k = (n: string) => sim.counters.get(n);
    const a = await mmapAnonymous(w.mm, 4 * M2, BASE);
    const d = await mmapAnonymous(w.mm, M2, BASE + 5 * M2); // CPU-only scratch memory, never on the GPU
    for (let i = 0; i < 2048; i++) await w.mm.writeU32(a + i * P, i);
    for (let i = 0; i < 512; i++) await w.mm.writeU32(d + i * P, 1);
    // R1: prefer VRAM, 64 KiB granularity; R2: prefer system memory; R3: prefetched to VRAM
    w.svm.attrs.advise(a, a + M2, { preferredLoc: deviceLoc(0), granularity: 4 });
    w.svm.attrs.advise(a + M2, a + 2 * M2, { preferredLoc: LOC.SYSMEM });
    const prefetched = await w.svm.prefetch(a + 2 * M2, a + 4 * M2, deviceLoc(0));
    const segs = w.svm.attrs
      .segments(a, a + 4 * M2)
      .map(
        (s) =>
          `[+${hex(s.start - a)}, +${hex(s.end - a)}) pref ${locName(s.attrs.preferredLoc)} gran ${s.attrs.granularity}`,
      );
    say(`attributes: ${segs.join('; ')}; prefetch of R3 (4 MiB) to gpu0 moved ${prefetched} pages`);

    const onFault0 = k('svm.migrate.toVram.pages') - prefetched;
    const kr = await runKernel(w, 0, [
      Array.from({ length: 8 }, (_, i): Access => [a + i * K64, ACCESS.READ, 0]),
      Array.from({ length: 4 }, (_, i): Access => [a + M2 + i * 64 * P, ACCESS.READ, 0]),
      Array.from({ length: 8 }, (_, i): Access => [a + 2 * M2 + i * 128 * P, ACCESS.READ, 0]),
    ]);
    let dataOk = true;
    for (let i = 0; i < 8; i++) if (kr.data[i] !== i * 16) dataOk = false;
    for (let i = 0; i < 4; i++) if (kr.data[8 + i] !== 512 + i * 64) dataOk = false;
    for (let i = 0; i < 8; i++) if (kr.data[12 + i] !== 1024 + i * 128) dataOk = false;
    const sizes: Record<string, number> = {};
    for (const r of w.svm.ranges)
      sizes[sizeName(r.end - r.start)] = (sizes[sizeName(r.end - r.start)] ?? 0) + 1;
    const notifiers = k('svm.notifiers.created') - k('svm.notifiers.removed');
    const toVramOnFault = k('svm.migrate.toVram.pages') - prefetched - onFault0;
    say(
      `kernel: ${kr.faults} GPU faults, ${formatNs(kr.elapsedNs)}; ranges ` +
        Object.entries(sizes)
          .map(([s, n]) => `${n} × ${s}`)
          .join(' + ') +
        `, ${notifiers} interval notifier(s); ${toVramOnFault} pages migrated on fault; data ok: ${dataOk ? 'yes' : 'NO'}`,
    );
    say(
      `  R1 (pref gpu0, 64K granules): ${placement(w, a)}; R2 (pref sysmem): ${placement(w, a + M2)}; ` +
        `R3 (prefetched): ${placement(w, a + 2 * M2)}`,
    );
    // the CPU writes one page of R1: migrate_to_ram brings back its 64 KiB range only
    await w.mm.writeU32(a + 3 * K64 + 5 * P, 0xfeed);
    const toRam = k('svm.migrate.toRam.pages');
    say(`CPU writes one page of an R1 granule: migrate_to_ram moved ${toRam} pages (one 64 KiB range) back`);
    // CPU-only activity elsewhere: madvise(DONTNEED) 32 times over D
    const inv0 = k('svm.invalidations');
    const false0 = k('svm.invalidations.false');
    for (let i = 0; i < 32; i++) await w.mm.madvise(d + i * 16 * P, 16 * P, MADV_DONTNEED);
    const falseInv = k('svm.invalidations.false') - false0;
    say(
      `32 CPU madvise(DONTNEED) on memory the GPU never touched: ${k('svm.invalidations') - inv0} ` +
        `notifier callbacks, ${falseInv} false invalidations (${perRange ? 'one notifier per range' : '512 MiB notifier windows'})`,
    );
    const verdict = worldVerdict(w);
    say(verdict.line);
    const { violations } = verdict;
    return {
      lines,
      metrics: {
        simNs: sim.now,
        gpuFaults: k('gpu0.fault.raised'),
        ranges: w.svm.ranges.length,
        rangeSizes: sizes,
        notifiers,
        prefetchedPages: prefetched,
        toVramOnFault,
        toRamOnCpuTouch: toRam,
        invalidations: k('svm.invalidations'),
        falseInvalidations: k('svm.invalidations.false'),
        tlbInvalidates: k('gpu0.tlb.invalidate') + k('gpu0.tlb.flush'),
        violations,
        dataOk: dataOk && (await w.mm.readU32(a + 3 * K64 + 5 * P)) === 0xfeed,
      },
    };
  });
}
