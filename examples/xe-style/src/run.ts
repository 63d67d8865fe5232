/**
 * xe-style SVM: GpuSvm with drm_gpusvm's chunk sizes {2M, 64K, 4K} (`drmGpusvmPolicy`) and
 * migration to VRAM on GPU fault (`devmem: {migrate: 'fault'}`), as xe_svm_handle_pagefault does.
 * Three VMAs show the three chunk sizes, the CPU faults VRAM pages back (migrate_to_ram), and a
 * partial munmap leaves a range for the garbage collector.
 */
import { ACCESS, APERTURE_NAMES, WALK } from '@hmmkit/gpu';
import { createSim, formatNs, hex } from '@hmmkit/sim';
import {
  type Access,
  createSvmWorld,
  drmGpusvmPolicy,
  mmapAnonymous,
  runKernel,
  type SvmWorld,
  worldVerdict,
} from '@hmmkit/svm';

const P = 4096;
const K64 = 0x10000;
const M2 = 0x200000;
/** 2 MiB-aligned base of the buffers. */
const BASE = 0x1_0000_0000;

/** Numbers of one run. */
export interface XeMetrics {
  readonly simNs: number;
  readonly gpuFaults: number;
  /** Ranges created, by size in bytes. */
  readonly rangeSizes: Record<string, number>;
  readonly pte2m: number;
  readonly pte64k: number;
  readonly pte4k: number;
  readonly toVramPages: number;
  readonly toRamPages: number;
  readonly tlbInvalidates: number;
  readonly retries: number;
  readonly rangesRemoved: number;
  readonly violations: number;
  readonly dataOk: boolean;
}

/** Printed lines and metrics. */
export interface XeResult {
  readonly lines: string[];
  readonly metrics: XeMetrics;
}

const sizeName = (b: number): string => (b >= 0x100000 ? `${b / 0x100000}M` : `${b / 1024}K`);

function describe(w: SvmWorld, va: number): string {
  const t = w.devs[0]!.pageTable.translate(va);
  if (t.status !== WALK.MAPPED) return 'not mapped';
  return `${sizeName(2 ** t.pageShift)} PTE → ${APERTURE_NAMES[t.aperture]}`;
}

/** Runs the scenario. */
export async function run(seed = 1): Promise<XeResult> {
  const sim = createSim({ seed });
  const w = await createSvmWorld(sim, {
    granule: drmGpusvmPolicy({ chunkSizes: [M2, K64, P], checkPagesThreshold: K64 }),
    devmem: { migrate: 'fault' },
  });
  return sim.sched.runMain(async () => {
    const lines: string[] = [];
    const say = (s: string) => lines.push(s);
    const k = (n: string) => sim.counters.get(n);
    // A: 4 MiB, 2M aligned; B: 192 KiB the CPU has written; C: 192 KiB the CPU never touched
    const a = await mmapAnonymous(w.mm, 2 * M2, BASE);
    const b = await mmapAnonymous(w.mm, 3 * K64, BASE + 4 * M2);
    const c = await mmapAnonymous(w.mm, 3 * K64, BASE + 6 * M2);
    for (let i = 0; i < 1024; i++) await w.mm.writeU32(a + i * P, i);
    for (let i = 0; i < 48; i++) await w.mm.writeU32(b + i * P, 5000 + i);
    say(
      `VMAs: A ${hex(a)} 4 MiB (CPU-written), B ${hex(b)} 192 KiB (CPU-written), C ${hex(c)} 192 KiB (untouched)`,
    );

    // one kernel per VMA: read a word of every 8th page of A, of every page of B; write the
    // first page of each 64K of C
    const kA = await runKernel(w, 0, [
      Array.from({ length: 64 }, (_, i): Access => [a + i * 8 * P, ACCESS.READ, 0]),
      Array.from({ length: 64 }, (_, i): Access => [a + M2 + i * 8 * P, ACCESS.READ, 0]),
    ]);
    const kB = await runKernel(w, 0, [
      Array.from({ length: 48 }, (_, i): Access => [b + i * P, ACCESS.READ, 0]),
    ]);
    const kC = await runKernel(w, 0, [
      Array.from({ length: 3 }, (_, i): Access => [c + i * K64, ACCESS.WRITE, 77 + i]),
    ]);
    let dataOk = true;
    for (let i = 0; i < 64; i++) if (kA.data[i] !== i * 8 || kA.data[64 + i] !== 512 + i * 8) dataOk = false;
    for (let i = 0; i < 48; i++) if (kB.data[i] !== 5000 + i) dataOk = false;
    const sizes: Record<string, number> = {};
    for (const r of w.svm.ranges)
      sizes[sizeName(r.end - r.start)] = (sizes[sizeName(r.end - r.start)] ?? 0) + 1;
    const faults = kA.faults + kB.faults + kC.faults;
    say(
      `3 kernels (A, B, C): ${faults} GPU faults, ${formatNs(kA.elapsedNs + kB.elapsedNs + kC.elapsedNs)}; ranges created: ` +
        Object.entries(sizes)
          .map(([s, n]) => `${n} × ${s}`)
          .join(', '),
    );
    say(`  A: 2M chunks fit → ${describe(w, a)} (${describe(w, a + M2)} for the second 2 MiB)`);
    say(
      `  B: 2M does not fit the VMA, 64K does and every page is CPU-faulted (check-pages) → ${describe(w, b)}`,
    );
    say(`  C: 64K fails check-pages (no CPU pages yet) → 4K chunks: ${describe(w, c)}`);
    say(
      `  migrated to VRAM on fault: ${k('svm.migrate.toVram.pages')} pages; device PTEs 2M/64K/4K: ` +
        `${k('svm.pte.2m')}/${k('svm.pte.64k')}/${k('svm.pte.4k')}; GPU read the CPU's data: ${dataOk ? 'yes' : 'NO'}`,
    );

    // the GPU writes into A's VRAM copy; the CPU reads it: migrate_to_ram of the faulting range
    await runKernel(w, 0, [[[a + 5 * P + 4, ACCESS.WRITE, 0xabcd]]]);
    const back = await w.mm.readU32(a + 5 * P + 4);
    const orig = await w.mm.readU32(a + 9 * P);
    if (back !== 0xabcd || orig !== 9) dataOk = false;
    say(
      `CPU reads A+0x5004: ${hex(back)} (the GPU's write) → migrate_to_ram moved ${k('svm.migrate.toRam.pages')} ` +
        `pages back; A's device mapping now: ${describe(w, a)}`,
    );

    // partial munmap of A's second 2 MiB: the range is zapped, marked unmapped, collected at the next fault
    const inv0 = k('gpu0.tlb.invalidate') + k('gpu0.tlb.flush');
    await w.mm.munmap(a + M2 + 0x100000, 0x100000);
    const inv = k('gpu0.tlb.invalidate') + k('gpu0.tlb.flush') - inv0;
    const before = k('svm.ranges.removed');
    await runKernel(w, 0, [[[a + M2, ACCESS.READ, 0]]]);
    say(
      `CPU munmap(1 MiB inside a 2M range): ${inv} TLB invalidation(s); the next GPU fault garbage-collected ` +
        `${k('svm.ranges.removed') - before} range and refaulted: ${describe(w, a + M2)}`,
    );
    const verdict = worldVerdict(w);
    say(verdict.line);
    const { violations, retries } = verdict;
    return {
      lines,
      metrics: {
        simNs: sim.now,
        gpuFaults: k('gpu0.fault.raised'),
        rangeSizes: sizes,
        pte2m: k('svm.pte.2m'),
        pte64k: k('svm.pte.64k'),
        pte4k: k('svm.pte.4k'),
        toVramPages: k('svm.migrate.toVram.pages'),
        toRamPages: k('svm.migrate.toRam.pages'),
        tlbInvalidates: k('gpu0.tlb.invalidate') + k('gpu0.tlb.flush'),
        retries,
        rangesRemoved: k('svm.ranges.removed'),
        violations,
        dataOk,
      },
    };
  });
}
