/**
 * NVIDIA UVM-style SVM (kernel-open/nvidia-uvm, HMM mode): replayable faults fetched in batches
 * and coalesced, the tree prefetcher (`uvmTreePolicy`, uvm_perf_prefetch), thrashing detection
 * and pinning (uvm_perf_thrashing), and eviction of the least recently allocated 2 MiB VRAM chunk
 * when the device memory runs out. The GPU runs `@hmmkit/workloads` streaming kernels.
 */
import { ACCESS, APERTURE_NAMES, WALK } from '@hmmkit/gpu';
import { createSim, formatNs, type Sim } from '@hmmkit/sim';
import {
  createSvmWorld,
  mmapAnonymous,
  runKernel,
  type SvmWorld,
  uvmTreePolicy,
  worldVerdict,
} from '@hmmkit/svm';
import { streaming, type Workload } from '@hmmkit/workloads';

const M2 = 0x200000;
const MIB = 0x100000;
/** Device memory the driver may use for migrated pages (at scale 1). */
const VRAM_POOL = 8 * MIB;
/** Streaming footprints (at scale 1): one that fits the pool, one three times the pool. */
const FIT = 6 * MIB;
const OVER = 24 * MIB;

/** Numbers of one phase (deltas of the counters). */
export interface PhaseMetrics {
  readonly simNs: number;
  readonly faultsRaised: number;
  readonly faultsFetched: number;
  readonly duplicates: number;
  readonly batches: number;
  readonly serviced: number;
  readonly toVramPages: number;
  readonly toRamPages: number;
  readonly evictions: number;
}

/** Numbers of one run. */
export interface UvmMetrics {
  readonly fit: PhaseMetrics;
  readonly oversubscribed: PhaseMetrics;
  readonly thrashingPins: number;
  readonly thrashingAperture: string;
  readonly violations: number;
}

/** Printed lines and metrics. */
export interface UvmResult {
  readonly lines: string[];
  readonly metrics: UvmMetrics;
}

const NAMES = [
  'gpu0.fault.raised',
  'gpu0.fault.fetched',
  'gpu0.fault.duplicates',
  'gpu0.fault.batches',
  'svm.faults',
  'svm.migrate.toVram.pages',
  'svm.migrate.toRam.pages',
  'svm.evictions',
] as const;

function snapshot(sim: Sim): number[] {
  return [sim.now, ...NAMES.map((n) => sim.counters.get(n))];
}

function delta(sim: Sim, s: number[]): PhaseMetrics {
  const e = snapshot(sim);
  const d = (i: number) => e[i]! - s[i]!;
  return {
    simNs: d(0),
    faultsRaised: d(1),
    faultsFetched: d(2),
    duplicates: d(3),
    batches: d(4),
    serviced: d(5),
    toVramPages: d(6),
    toRamPages: d(7),
    evictions: d(8),
  };
}

/** Maps a workload's arrays and runs its kernels on gpu0; returns the phase's counter deltas. */
async function runWorkload(w: SvmWorld, wl: Workload): Promise<PhaseMetrics> {
  for (const arr of wl.arrays) await mmapAnonymous(w.mm, Math.ceil(arr.bytes / M2) * M2, arr.va);
  const s = snapshot(w.sim);
  for (const ph of wl.phases()) {
    if (ph.type !== 'kernel') continue;
    await runKernel(w, 0, [], ph.kernel.streams);
  }
  return delta(w.sim, s);
}

function describe(name: string, m: PhaseMetrics): string {
  const unique = m.faultsFetched - m.duplicates;
  return (
    `${name}: ${m.faultsRaised} faults raised, fetched in ${m.batches} batches of ` +
    `${(m.faultsFetched / Math.max(1, m.batches)).toFixed(0)} entries, ${m.duplicates} coalesced as duplicates, ` +
    `${(unique / Math.max(1, m.batches)).toFixed(1)} unique pages per batch; ${m.serviced} serviced → ` +
    `${m.toVramPages} pages to VRAM (${(m.toVramPages / Math.max(1, m.serviced)).toFixed(1)} per serviced fault), ` +
    `${m.evictions} evictions, ${formatNs(m.simNs)}`
  );
}

/** Options of {@link run}. */
export interface UvmRunOptions {
  /** Tree prefetcher on (default) or off (for comparison). */
  readonly prefetch?: boolean;
  readonly seed?: number;
  /**
   * Size of the scenario: pool, footprints and warps per SM scale together (1: 8 MiB pool, 6 and
   * 24 MiB streams, 16 warps per SM; 1/4: 2 MiB, 1.5 and 6 MiB, 4 warps). Default 1.
   */
  readonly scale?: 1 | 0.5 | 0.25;
}

/** Footprint sizes of one run. */
export function uvmSizes(scale: number): { pool: number; fit: number; over: number; warpsPerSM: number } {
  return { pool: VRAM_POOL * scale, fit: FIT * scale, over: OVER * scale, warpsPerSM: 16 * scale };
}

/** Runs the scenario; `prefetch: false` turns the tree prefetcher off (for comparison). */
export async function run(opts: UvmRunOptions = {}): Promise<UvmResult> {
  const sim = createSim({ seed: opts.seed ?? 1 });
  const z = uvmSizes(opts.scale ?? 1);
  const w = await createSvmWorld(sim, {
    granule: uvmTreePolicy({ enable: opts.prefetch ?? true }),
    devmem: { migrate: 'fault', bytes: z.pool },
    faultWrite: 'access',
    thrashing: true,
  });
  return sim.sched.runMain(async () => {
    const lines: string[] = [];
    const say = (s: string) => lines.push(s);
    const shape = { numSMs: 8, warpsPerSM: z.warpsPerSM, iterations: 1 };
    // 1. a streaming kernel (read b, c; write a) that fits in the pool
    const fit = await runWorkload(w, streaming({ ...shape, footprintBytes: z.fit, baseVa: 0x1_0000_0000 }));
    say(describe(`streaming ${z.fit / MIB} MiB (fits VRAM)`, fit));
    // 2. the same over three times the pool, so chunks are evicted (LRU by allocation)
    const over = await runWorkload(w, streaming({ ...shape, footprintBytes: z.over, baseVa: 0x2_0000_0000 }));
    say(describe(`streaming ${z.over / MIB} MiB (3× VRAM)`, over));
    // 3. CPU/GPU ping-pong on one page, faster than the 500 µs lapse: the page gets pinned
    const p = 0x3_0000_0000;
    await mmapAnonymous(w.mm, M2, p);
    for (let i = 0; i < 4; i++) {
      await runKernel(w, 0, [[[p, ACCESS.WRITE, i]]]);
      await w.mm.writeU32(p + 4, i);
    }
    await runKernel(w, 0, [[[p, ACCESS.READ, 0]]]);
    const t = w.devs[0]!.pageTable.translate(p);
    const ap = t.status === WALK.MAPPED ? (APERTURE_NAMES[t.aperture] ?? '?') : 'unmapped';
    const pins = sim.counters.get('svm.thrashing.pins');
    say(
      `ping-pong: 4 × (GPU write, CPU write) on one page → ${pins} pages pinned by the thrashing detector; the next GPU fault ` +
        `maps it remotely from ${ap} instead of migrating it`,
    );
    const verdict = worldVerdict(w);
    say(verdict.line);
    const { violations } = verdict;
    return {
      lines,
      metrics: { fit, oversubscribed: over, thrashingPins: pins, thrashingAperture: ap, violations },
    };
  });
}
