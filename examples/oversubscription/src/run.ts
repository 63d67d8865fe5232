/**
 * Oversubscription: 12 MiB of CPU-initialised data through a 4 MiB device-memory pool. Every GPU
 * fault migrates its range to VRAM (xe/drm_gpusvm 2M chunks); when the pool is full the least
 * recently allocated 2 MiB chunk is evicted back to system memory (migrate_device_range), and a
 * later pass faults it back in (refetch). At the end the CPU reads every byte and compares it
 * with what the CPU wrote plus the words the GPU changed.
 */
import { ACCESS } from '@hmmkit/gpu';
import { createSim, formatNs } from '@hmmkit/sim';
import {
  type Access,
  createSvmWorld,
  drmGpusvmPolicy,
  mmapAnonymous,
  runKernel,
  worldVerdict,
} from '@hmmkit/svm';

const P = 4096;
const MIB = 0x100000;
const BASE = 0x1_0000_0000;

/** Numbers of one run. */
export interface OversubMetrics {
  readonly simNs: number;
  readonly footprintPages: number;
  readonly poolPages: number;
  readonly gpuFaults: number;
  readonly toVramPages: number;
  readonly refetchedPages: number;
  readonly toRamPages: number;
  readonly evictions: number;
  readonly gpuReadMismatches: number;
  readonly bytesCompared: number;
  readonly byteMismatches: number;
  readonly violations: number;
}

/** Printed lines and metrics. */
export interface OversubResult {
  readonly lines: string[];
  readonly metrics: OversubMetrics;
}

/** The byte the CPU writes at offset `j` of page `i`. */
const pattern = (i: number, j: number): number => (i * 31 + j * 7 + (j >> 8)) & 255;
/** The word the GPU stores at offset 8 of page `i` in pass 2. */
const gpuWord = (i: number): number => (i * 2654435761) >>> 0;
/** The little-endian word of `pattern` at offset `o` of page `i`. */
const patternWord = (i: number, o: number): number =>
  (pattern(i, o) | (pattern(i, o + 1) << 8) | (pattern(i, o + 2) << 16) | (pattern(i, o + 3) << 24)) >>> 0;

/** Runs the scenario: `footprintMiB` of data through a `poolMiB` device-memory pool. */
export async function run(
  opts: { footprintMiB?: number; poolMiB?: number; seed?: number } = {},
): Promise<OversubResult> {
  const sim = createSim({ seed: opts.seed ?? 1 });
  const footprint = (opts.footprintMiB ?? 12) * MIB;
  const pool = (opts.poolMiB ?? 4) * MIB;
  const w = await createSvmWorld(sim, {
    granule: drmGpusvmPolicy(),
    devmem: { migrate: 'fault', bytes: pool },
  });
  return sim.sched.runMain(async () => {
    const lines: string[] = [];
    const say = (s: string) => lines.push(s);
    const k = (n: string) => sim.counters.get(n);
    const n = footprint / P;
    const a = await mmapAnonymous(w.mm, footprint, BASE);
    const page = new Uint8Array(P);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < P; j++) page[j] = pattern(i, j);
      await w.mm.write(a + i * P, page);
    }
    say(
      `${footprint / MIB} MiB written by the CPU (${n} pages, a per-page byte pattern); device-memory pool ${pool / MIB} MiB`,
    );
    // 8 warps, each striding through the whole buffer: pages of every 2 MiB chunk are live at once
    const warps = (mk: (i: number) => Access): Access[][] =>
      Array.from({ length: 8 }, (_, wi) => Array.from({ length: n / 8 }, (_, j) => mk(j * 8 + wi)));
    // pass 1: read a word of every page
    const k1 = await runKernel(
      w,
      0,
      warps((i) => [a + i * P + 4 * (i % 64), ACCESS.READ, 0]),
    );
    let gpuReadMismatches = 0;
    for (let wi = 0; wi < 8; wi++) {
      for (let j = 0; j < n / 8; j++) {
        const i = j * 8 + wi;
        if (k1.data[wi * (n / 8) + j] !== patternWord(i, 4 * (i % 64))) gpuReadMismatches++;
      }
    }
    const ev1 = k('svm.evictions');
    say(
      `pass 1 (GPU reads every page): ${k1.faults} GPU faults, ${k('svm.migrate.toVram.pages')} pages migrated ` +
        `to VRAM, ${ev1} chunk evictions, ${gpuReadMismatches} wrong words read, ${formatNs(k1.elapsedNs)}`,
    );
    // pass 2: write a word into every page (the evicted chunks are fetched again)
    const before = k('svm.migrate.toVram.pages');
    const k2 = await runKernel(
      w,
      0,
      warps((i) => [a + i * P + 8, ACCESS.WRITE, gpuWord(i)]),
    );
    const refetched = k('svm.migrate.toVram.pages') - before;
    say(
      `pass 2 (GPU writes every page): ${k2.faults} GPU faults, ${refetched} pages refetched into VRAM, ` +
        `${k('svm.evictions') - ev1} more evictions, ${formatNs(k2.elapsedNs)}`,
    );
    // the CPU compares every byte (pages still in VRAM come back through migrate_to_ram)
    let mismatches = 0;
    const want = new Uint8Array(P);
    const dv = new DataView(want.buffer);
    for (let i = 0; i < n; i++) {
      await w.mm.readInto(a + i * P, page);
      for (let j = 0; j < P; j++) want[j] = pattern(i, j);
      dv.setUint32(8, gpuWord(i), true);
      for (let j = 0; j < P; j++) if (page[j] !== want[j]) mismatches++;
    }
    say(
      `CPU check: ${footprint} bytes compared, ${mismatches} differ; ${k('svm.migrate.toRam.pages')} pages ` +
        `went back to system memory (evictions + CPU faults)`,
    );
    const verdict = worldVerdict(w);
    say(verdict.line);
    const { violations } = verdict;
    return {
      lines,
      metrics: {
        simNs: sim.now,
        footprintPages: n,
        poolPages: pool / P,
        gpuFaults: k('gpu0.fault.raised'),
        toVramPages: k('svm.migrate.toVram.pages'),
        refetchedPages: refetched,
        toRamPages: k('svm.migrate.toRam.pages'),
        evictions: k('svm.evictions'),
        gpuReadMismatches,
        bytesCompared: footprint,
        byteMismatches: mismatches,
        violations,
      },
    };
  });
}
