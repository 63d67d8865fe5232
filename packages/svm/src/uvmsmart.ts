/**
 * UVMSmart's prefetchers (Ganguly et al., ISCA'19, "Interplay between hardware prefetcher and page
 * eviction policy in CPU-GPU unified virtual memory"; simulator `DebashisGanguly/gpgpu-sim_UVMSmart`,
 * `src/gpgpu-sim/gpu-sim.cc`) as swappable {@link GranulePolicy} implementations, so their
 * experiments can be re-run on hmmkit's driver model:
 *
 * - on-demand: the faulted 4 KiB pages only;
 * - Rp (random): each faulted page plus one pseudo-random 4 KiB page of the same 2 MiB block;
 * - SLp (sequential-local): the whole 64 KiB basic block around each faulted page;
 * - TBNp (tree-based neighbourhood): 2 MiB "large pages" as full binary trees with 64 KiB leaves;
 *   a faulted leaf becomes valid, then bottom-up any node more than half valid (and not full) has
 *   its whole subtree filled (`traverse_and_fill_lp_tree`).
 *
 * Each is applied per 2 MiB VA block with the batch's faulted mask (hmmkit services a fault batch
 * per block, as UVM does), where UVMSmart's GPGPU-Sim applies them per far fault; the range and
 * its bounds (VMA ∩ notifier window ∩ GPU VA ∩ existing range) are those of {@link uvmTreePolicy}
 * with prefetch disabled. Policies keep no state between calls, so Rp's "random" page is a hash of
 * the faulted page's address (deterministic per address).
 *
 * @module
 */
import { ArgumentError } from '@hmmkit/sim';
import {
  alignDown,
  type FaultContext,
  type GranuleChoice,
  type GranulePolicy,
  isGranuleError,
  PAGE_SIZE,
  SZ_2M,
  uvmTreePolicy,
} from './granule.ts';
import {
  PAGES_PER_BLOCK,
  type PageMask,
  pageMaskAndNot,
  pageMaskFill,
  pageMaskLast,
  pageMaskNew,
  pageMaskNext,
  pageMaskOr,
  pageMaskSet,
  pageMaskTest,
  pageMaskWeight,
} from './page-mask.ts';

/** UVMSmart prefetcher names. */
export const UVMSMART_PREFETCHERS = [
  'on-demand',
  'random-4k',
  'sequential-local-64k',
  'tree-neighbourhood',
] as const;
/** One of {@link UVMSMART_PREFETCHERS}. */
export type UvmSmartPrefetcher = (typeof UVMSMART_PREFETCHERS)[number];

/** Pages per 64 KiB basic block (UVMSmart's MIN_PREFETCH_SIZE leaf). */
const LEAF = 16;
/** Leaves per 2 MiB large page. */
const LEAVES = PAGES_PER_BLOCK / LEAF;

/** A 32-bit mix of a page number (Rp's deterministic "random" choice). */
function mix(page: number): number {
  let h = Math.imul((page % 0x40000000) | 0, 0x9e3779b1) ^ Math.floor(page / 0x40000000);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h >>> 0;
}

/**
 * Computes the pages to prefetch into `out` (block page indices; may include faulted or resident
 * pages: they are removed afterwards).
 */
type PrefetchRule = (faulted: PageMask, resident: PageMask | null, blockPage0: number, out: PageMask) => void;

const RULES: Record<UvmSmartPrefetcher, PrefetchRule> = {
  'on-demand': () => {},
  'random-4k': (faulted, _resident, blockPage0, out) => {
    for (let p = pageMaskNext(faulted, 0); p >= 0; p = pageMaskNext(faulted, p + 1)) {
      pageMaskSet(out, mix(blockPage0 + p) % PAGES_PER_BLOCK);
    }
  },
  'sequential-local-64k': (faulted, _resident, _b, out) => {
    for (let p = pageMaskNext(faulted, 0); p >= 0; p = pageMaskNext(faulted, p + 1)) {
      const first = p - (p % LEAF);
      pageMaskFill(out, first, first + LEAF);
    }
  },
  'tree-neighbourhood': (faulted, resident, _b, out) => {
    // leaf valid: faulted now (scheduled) or holding resident pages
    const valid = new Uint8Array(LEAVES);
    for (let l = 0; l < LEAVES; l++) {
      for (let i = l * LEAF; i < (l + 1) * LEAF; i++) {
        if (pageMaskTest(faulted, i) || (resident !== null && pageMaskTest(resident, i))) {
          valid[l] = 1;
          break;
        }
      }
    }
    // bottom-up: a node more than half valid and not full fills its subtree
    for (let size = 2; size <= LEAVES; size *= 2) {
      for (let n = 0; n < LEAVES; n += size) {
        let v = 0;
        for (let l = n; l < n + size; l++) v += valid[l]!;
        if (v * 2 > size && v < size) valid.fill(1, n, n + size);
      }
    }
    for (let l = 0; l < LEAVES; l++) if (valid[l] === 1) pageMaskFill(out, l * LEAF, (l + 1) * LEAF);
  },
};

/** Models one of UVMSmart's prefetchers (see the module comment). */
export function uvmSmartPrefetcher(name: UvmSmartPrefetcher): GranulePolicy {
  const rule = RULES[name];
  if (rule === undefined) {
    throw new ArgumentError(
      'uvmSmartPrefetcher',
      'name',
      `must be one of ${UVMSMART_PREFETCHERS.join(', ')}`,
      name,
    );
  }
  const base = uvmTreePolicy({ enable: false });
  const prefetch = pageMaskNew();
  return {
    name: `uvmsmart-${name}`,
    choose(ctx: FaultContext) {
      const r = base.choose(ctx);
      if (isGranuleError(r) || r.pages === null) return r;
      const blockStart = alignDown(ctx.va, SZ_2M);
      const faulted = r.pages; // the faulted pages inside the block's bounds
      prefetch.fill(0);
      rule(faulted, ctx.residency, blockStart / PAGE_SIZE, prefetch);
      // stay inside the range ∩ block, leave out pages already resident at the destination
      const first = Math.max(0, (r.start - blockStart) / PAGE_SIZE);
      const outer = Math.min(PAGES_PER_BLOCK, (r.end - blockStart) / PAGE_SIZE);
      const keep = pageMaskNew();
      pageMaskFill(keep, first, outer);
      if (ctx.residency !== null) pageMaskAndNot(keep, keep, ctx.residency);
      if (ctx.thrashing !== null) pageMaskAndNot(keep, keep, ctx.thrashing);
      for (let i = 0; i < keep.length; i++) prefetch[i]! &= keep[i]!;
      if (pageMaskWeight(prefetch) === 0) return r;
      const pages = pageMaskNew();
      pageMaskOr(pages, faulted, prefetch);
      const f = pageMaskNext(pages, 0);
      const l = pageMaskLast(pages);
      const choice: GranuleChoice = {
        start: r.start,
        end: r.end,
        faultStart: blockStart + f * PAGE_SIZE,
        faultEnd: blockStart + (l + 1) * PAGE_SIZE,
        pages,
      };
      return choice;
    },
  };
}
