/**
 * Allen & Ge's page-touch microbenchmarks (uvm-eval "linear" and "random"; uvm-costs §2.1), as
 * workloads for calibration: every page of one array written once (4 bytes). In `linear` each
 * thread touches its own page, so a warp's 32 lanes cover 32 consecutive pages (modelled as 32
 * successive accesses of that warp), warps dealt grid-stride over the array; in `random` the
 * pages are visited in a seeded random permutation.
 *
 * @module
 */
import { ArgumentError, Rng } from '@hmmkit/sim';
import {
  ACCESS_KIND,
  customWorkload,
  dealTasks,
  type GeneratorParams,
  layoutArrays,
  makeKernel,
  PATTERN,
  resolveParams,
  type Workload,
  warpCount,
} from '@hmmkit/workloads';

/** Parameters of {@link pageTouch}. */
export interface PageTouchParams extends GeneratorParams {
  /** 'linear' (default) or 'random' page order. */
  readonly order?: 'linear' | 'random';
}

/** Allen & Ge's page-touch microbenchmark: one write per page of a `footprintBytes` array, one kernel per iteration. */
export function pageTouch(params: PageTouchParams = {}): Workload {
  const fn = 'pageTouch';
  const p = resolveParams(fn, params);
  const order = params.order ?? 'linear';
  if (order !== 'linear' && order !== 'random') {
    throw new ArgumentError(fn, 'params.order', "must be 'linear' or 'random'", order);
  }
  const pages = Math.max(32, Math.floor(p.footprintBytes / 4096 / 32) * 32);
  const arrays = layoutArrays(p.baseVa, p.align, [{ name: 'pages', bytes: pages * 4096, elemSize: 4 }]);
  const va = arrays[0]!.va;
  const perm = new Float64Array(pages);
  for (let i = 0; i < pages; i++) perm[i] = i;
  if (order === 'random') {
    const rng = new Rng(p.seed);
    for (let i = pages - 1; i > 0; i--) {
      const j = rng.below(i + 1);
      const t = perm[i]!;
      perm[i] = perm[j]!;
      perm[j] = t;
    }
  }
  const W = warpCount(p);
  const kernel = (i: number) =>
    makeKernel(
      `pageTouch-${order}#${i}`,
      order === 'linear' ? PATTERN.STREAMING : PATTERN.RANDOM,
      p,
      arrays,
      dealTasks(W, pages / 32, pages, (t, b) => {
        for (let l = 0; l < 32; l++) b.push(va + perm[t * 32 + l]! * 4096, ACCESS_KIND.WRITE, 4);
      }),
    );
  const w = customWorkload(`pageTouch-${order}`, PATTERN.STREAMING, arrays, p.iterations, kernel, params);
  return { ...w, params: p };
}
