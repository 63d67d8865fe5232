/**
 * One cell of UVMSmart's (ISCA'19) prefetcher × eviction experiment on hmmkit's driver model,
 * shared by `bench/uvmsmart-oversub.ts` and its test: a workload whose footprint is `over` × the
 * VRAM pool, CPU-initialised, its kernels run through GpuSvm's fault handler with a UVMSmart
 * prefetcher and eviction policy.
 */
import { createSim } from '@hmmkit/sim';
import {
  createSvmWorld,
  mmapAnonymous,
  runKernel,
  SZ_512M,
  type UvmSmartEviction,
  type UvmSmartPrefetcher,
  uvmSmartEviction,
  uvmSmartPrefetcher,
  windowNotifiers,
  worldVerdict,
} from '@hmmkit/svm';
import { type GeneratorName, generate } from '@hmmkit/workloads';
import { onceFullPolicy } from './policies.ts';

/** What one cell runs. */
export interface UvmSmartCellSpec {
  readonly generator: GeneratorName;
  readonly params: Record<string, number>;
  /** Footprint ÷ VRAM pool (1.1 = 110 % oversubscription). */
  readonly over: number;
  readonly vramMiB: number;
  readonly prefetcher: UvmSmartPrefetcher;
  readonly eviction: UvmSmartEviction;
  /**
   * The prefetcher from the pool's first eviction on (UVMSmart's `-hwprefetch_oversub`, via
   * {@link onceFullPolicy} as the sweep's `granuleOnceFull`; its eviction-only experiments run
   * with none, i.e. `on-demand`). Absent: `prefetcher` throughout.
   */
  readonly onceFull?: UvmSmartPrefetcher | undefined;
}

/** What one cell measured. */
export interface UvmSmartCellResult {
  readonly kernelNs: number;
  readonly faults: number;
  readonly failed: number;
  readonly violations: number;
  readonly evicted: number;
  readonly d2h: number;
}

/** Runs one cell (seed 1, 20 SMs × 16 warps unless `params` says otherwise). */
export async function runUvmSmartCell(spec: UvmSmartCellSpec): Promise<UvmSmartCellResult> {
  const sim = createSim({ seed: 1 });
  const footprintBytes = Math.floor((spec.vramMiB * 2 ** 20 * spec.over) / 4096) * 4096;
  const w = generate(spec.generator, { footprintBytes, numSMs: 20, warpsPerSM: 16, ...spec.params });
  const world = await createSvmWorld(sim, {
    vramBytes: (spec.vramMiB + 2) * 2 ** 20,
    granule:
      spec.onceFull === undefined
        ? uvmSmartPrefetcher(spec.prefetcher)
        : onceFullPolicy(sim, uvmSmartPrefetcher(spec.prefetcher), uvmSmartPrefetcher(spec.onceFull)),
    notifiers: windowNotifiers(SZ_512M),
    devmem: { migrate: 'fault', bytes: spec.vramMiB * 2 ** 20, eviction: uvmSmartEviction(spec.eviction) },
  });
  let kernelNs = 0;
  let faults = 0;
  let failed = 0;
  await sim.sched.runMain(async () => {
    for (const a of w.arrays) {
      const len = Math.ceil(a.bytes / 4096) * 4096;
      await mmapAnonymous(world.mm, len, a.va);
      await world.mm.touch(a.va, len, true);
    }
    for (const ph of w.phases()) {
      if (ph.type !== 'kernel') continue;
      const r = await runKernel(world, 0, [], ph.kernel.streams);
      kernelNs += r.elapsedNs;
      faults += r.faults;
      failed += r.failed;
    }
  });
  return {
    kernelNs,
    faults,
    failed,
    violations: worldVerdict(world).violations,
    evicted: sim.counters.get('svm.evictions'),
    d2h: world.devs[0]!.copyEngine.bytesD2h.value,
  };
}
