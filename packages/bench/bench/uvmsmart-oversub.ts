/**
 * Issue 11, step 2: UVMSmart's prefetcher × eviction pairs under oversubscription (their ISCA'19
 * experiment, re-run on hmmkit's driver model). Each cell: a workload whose footprint is
 * `over` × the VRAM given to the svm, CPU-initialised, kernels run through GpuSvm's fault handler
 * with a UVMSmart prefetcher (GranulePolicy) and eviction policy (EvictionPolicy); the oracle
 * must find nothing. Prints total kernel time, far faults, evicted MiB, normalised to
 * tree-neighbourhood + lru-2m (UVMSmart's TBNp + LRU-2MB baseline). A few seconds per workload:
 *
 *     sh scripts/run.sh tsx packages/bench/bench/uvmsmart-oversub.ts [over=1.25] [vramMiB=8] [prefetchers] [onceFull]
 *
 * `prefetchers` (optional) is a comma list of UVMSmart prefetcher names to restrict the rows to.
 * `onceFull` (optional, 5th argument) is the prefetcher used after the pool's first eviction, as
 * UVMSmart's `-hwprefetch_oversub` (its eviction-only experiments run `-hwprefetch_oversub 0`:
 * no prefetch once oversubscribed); without it a row's prefetcher acts throughout.
 */
import { createSim, type Sim } from '@hmmkit/sim';
import {
  createSvmWorld,
  type GranulePolicy,
  mmapAnonymous,
  runKernel,
  SZ_512M,
  UVMSMART_EVICTIONS,
  UVMSMART_PREFETCHERS,
  type UvmSmartEviction,
  type UvmSmartPrefetcher,
  uvmSmartEviction,
  uvmSmartPrefetcher,
  windowNotifiers,
  worldVerdict,
} from '@hmmkit/svm';
import { type GeneratorName, generate } from '@hmmkit/workloads';

const over = Number(process.argv[2] ?? 1.25);
const vramMiB = Number(process.argv[3] ?? 8);
const onlyPf = process.argv[4]?.split(',');
for (const n of onlyPf ?? []) uvmSmartPrefetcher(n as UvmSmartPrefetcher); // throws on an unknown name
const onceFull = process.argv[5] as UvmSmartPrefetcher | undefined;
if (onceFull !== undefined) uvmSmartPrefetcher(onceFull); // throws on an unknown name
const PREFETCHERS = UVMSMART_PREFETCHERS.filter((pf) => onlyPf === undefined || onlyPf.includes(pf));
const WORKLOADS: [GeneratorName, Record<string, number>][] = [
  ['streaming', { iterations: 2 }],
  ['stencil', { iterations: 3 }],
];

/** `pf`, switching to `onceFull` (when given) from the pool's first eviction on. */
function prefetcher(sim: Sim, pf: UvmSmartPrefetcher): GranulePolicy {
  const before = uvmSmartPrefetcher(pf);
  if (onceFull === undefined) return before;
  const after = uvmSmartPrefetcher(onceFull);
  return {
    name: `${before.name}/${after.name}`,
    choose: (ctx) => (sim.counters.get('svm.evictions') > 0 ? after : before).choose(ctx),
  };
}

async function cell(
  gen: GeneratorName,
  params: Record<string, number>,
  pf: UvmSmartPrefetcher,
  ev: UvmSmartEviction,
) {
  const sim = createSim({ seed: 1 });
  const footprintBytes = Math.floor((vramMiB << 20) * over);
  const w = generate(gen, { footprintBytes, numSMs: 20, warpsPerSM: 16, ...params });
  const world = await createSvmWorld(sim, {
    vramBytes: (vramMiB + 2) << 20,
    granule: prefetcher(sim, pf),
    notifiers: windowNotifiers(SZ_512M),
    devmem: { migrate: 'fault', bytes: vramMiB << 20, eviction: uvmSmartEviction(ev) },
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
  const v = worldVerdict(world);
  const evicted = sim.counters.get('svm.evictions');
  return {
    kernelNs,
    faults,
    failed,
    violations: v.violations,
    evicted,
    d2h: world.devs[0]!.copyEngine.bytesD2h.value,
  };
}

for (const [gen, params] of WORKLOADS) {
  const base = await cell(gen, params, 'tree-neighbourhood', 'lru-2m');
  console.log(
    `\n== ${gen} (${(over * 100).toFixed(0)} % of ${vramMiB} MiB VRAM)${onceFull ? `, prefetcher ${onceFull} once oversubscribed` : ''}, normalised to tree-neighbourhood + lru-2m`,
  );
  console.log('prefetcher              eviction               kernel ms  ×base  far faults  D2H MiB  oracle');
  for (const pf of PREFETCHERS) {
    for (const ev of UVMSMART_EVICTIONS) {
      const r = pf === 'tree-neighbourhood' && ev === 'lru-2m' ? base : await cell(gen, params, pf, ev);
      console.log(
        `${pf.padEnd(23)} ${ev.padEnd(22)} ${(r.kernelNs / 1e6).toFixed(1).padStart(9)} ${(r.kernelNs / base.kernelNs).toFixed(2).padStart(6)} ` +
          `${String(r.faults).padStart(11)} ${(r.d2h / 2 ** 20).toFixed(1).padStart(8)} ${String(r.violations).padStart(7)}${r.failed > 0 ? ` failed ${r.failed}` : ''}`,
      );
    }
  }
}
