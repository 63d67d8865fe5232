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
 * no prefetch once oversubscribed); without it a row's prefetcher acts throughout. Sweeps have
 * the same switch as `granulesOnceFull` / `--granules-once-full` (`onceFullPolicy`).
 */
import {
  UVMSMART_EVICTIONS,
  UVMSMART_PREFETCHERS,
  type UvmSmartEviction,
  type UvmSmartPrefetcher,
  uvmSmartPrefetcher,
} from '@hmmkit/svm';
import type { GeneratorName } from '@hmmkit/workloads';
import { runUvmSmartCell } from '../src/uvmsmart-cell.ts';

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

const cell = (
  gen: GeneratorName,
  params: Record<string, number>,
  pf: UvmSmartPrefetcher,
  ev: UvmSmartEviction,
) => runUvmSmartCell({ generator: gen, params, over, vramMiB, prefetcher: pf, eviction: ev, onceFull });

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
