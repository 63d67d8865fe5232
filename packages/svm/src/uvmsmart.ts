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
 * Its eviction policies (LRU 2M, LFU 2M, random 4K, sequential-local 64K, tree-based
 * neighbourhood) are {@link EvictionPolicy} implementations for GpuSvm's eviction hook (below).
 *
 * Each prefetcher is applied per 2 MiB VA block with the batch's faulted mask (hmmkit services a fault batch
 * per block, as UVM does), where UVMSmart's GPGPU-Sim applies them per far fault; the range and
 * its bounds (VMA ∩ notifier window ∩ GPU VA ∩ existing range) are those of {@link uvmTreePolicy}
 * with prefetch disabled. Policies keep no state between calls, so Rp's "random" page is a hash of
 * the faulted page's address (deterministic per address).
 *
 * @module
 */
import { ArgumentError, Rng } from '@hmmkit/sim';
import type { EvictionPolicy, EvictionView } from './eviction.ts';
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

// ---------------------------------------------------------------------------------------------
// Eviction (UVMSmart's eviction policies against GpuSvm's EvictionPolicy hook)

/** UVMSmart eviction policy names. */
export const UVMSMART_EVICTIONS = [
  'lru-4k',
  'lru-2m',
  'lfu-2m',
  'random-4k',
  'sequential-local-64k',
  'tree-neighbourhood',
] as const;
/** One of {@link UVMSMART_EVICTIONS}. */
export type UvmSmartEviction = (typeof UVMSMART_EVICTIONS)[number];

/** The used chunk that minimises (key1, key2), or -1. */
function pickChunk(view: EvictionView, key1: Float64Array, key2: Float64Array): number {
  let best = -1;
  for (let c = 0; c < view.chunks; c++) {
    if (view.chunkUsed[c]! <= 0) continue;
    if (best < 0 || key1[c]! < key1[best]! || (key1[c] === key1[best] && key2[c]! < key2[best]!)) best = c;
  }
  return best;
}

/** The leaves (64 KiB groups) of `chunk` holding pages, as a 32-entry 0/1 array. */
function chunkLeaves(view: EvictionView, chunk: number): Uint8Array {
  const leaves = new Uint8Array(LEAVES);
  const base = chunk * PAGES_PER_BLOCK;
  for (let i = 0; i < PAGES_PER_BLOCK; i++) if (view.rmapVa1[base + i]! > 0) leaves[Math.floor(i / LEAF)] = 1;
  return leaves;
}

/** A mask of the used pages of `chunk` inside leaves `[first, outer)`. */
function leafMask(view: EvictionView, chunk: number, leaves: Uint8Array): PageMask {
  const m = pageMaskNew();
  const base = chunk * PAGES_PER_BLOCK;
  for (let i = 0; i < PAGES_PER_BLOCK; i++) {
    if (leaves[Math.floor(i / LEAF)] === 1 && view.rmapVa1[base + i]! > 0) pageMaskSet(m, i);
  }
  return m;
}

/**
 * Models one of UVMSmart's eviction policies (`gpu-sim.cc`): `lru-4k` (the least recently mapped
 * 4 KiB page, with the pages of its chunk that the same bind mapped, up to the pages needed), `lru-2m` (the chunk least recently
 * mapped, whole: UVMSmart's default), `lfu-2m` (the chunk mapped least often, whole), `random-4k`
 * (one random used page of a random used chunk per call), `sequential-local-64k` (the first used
 * 64 KiB group of the least recently mapped chunk) and `tree-neighbourhood` (TBNe: that group, then,
 * bottom-up, every node of the chunk's 64K-leaf tree left less than half valid is emptied too:
 * `traverse_and_remove_lp_tree`). `seed` drives `random-4k`.
 */
export function uvmSmartEviction(name: UvmSmartEviction, seed = 1): EvictionPolicy {
  if (!UVMSMART_EVICTIONS.includes(name)) {
    throw new ArgumentError(
      'uvmSmartEviction',
      'name',
      `must be one of ${UVMSMART_EVICTIONS.join(', ')}`,
      name,
    );
  }
  const rng = new Rng(seed);
  return {
    name: `uvmsmart-${name}`,
    pickVictim(view, needPages) {
      switch (name) {
        case 'lru-2m': {
          const c = pickChunk(view, view.chunkLastUseNs, view.chunkAllocStamp);
          return c < 0 ? null : { chunk: c };
        }
        case 'lfu-2m': {
          const c = pickChunk(view, view.chunkUses, view.chunkLastUseNs);
          return c < 0 ? null : { chunk: c };
        }
        case 'lru-4k': {
          // the least recently mapped used page; the other pages of its chunk mapped by the same
          // bind (same stamp) go with it, up to needPages: one migrate_vma instead of one per page
          const t = view.pageLastUseNs;
          let best = -1;
          for (let k = 0; k < view.rmapVa1.length; k++) {
            if (view.rmapVa1[k]! > 0 && (best < 0 || t[k]! < t[best]!)) best = k;
          }
          if (best < 0) return null;
          const chunk = Math.floor(best / PAGES_PER_BLOCK);
          const base = chunk * PAGES_PER_BLOCK;
          const pages = pageMaskNew();
          let n = 0;
          for (let i = best - base; i < PAGES_PER_BLOCK && n < Math.max(1, needPages); i++) {
            if (view.rmapVa1[base + i]! > 0 && t[base + i] === t[best]) {
              pageMaskSet(pages, i);
              n++;
            }
          }
          return { chunk, pages };
        }
        case 'random-4k': {
          let used = 0;
          for (let c = 0; c < view.chunks; c++) if (view.chunkUsed[c]! > 0) used++;
          if (used === 0) return null;
          let k = rng.below(used);
          let chunk = 0;
          for (; chunk < view.chunks; chunk++) if (view.chunkUsed[chunk]! > 0 && k-- === 0) break;
          const base = chunk * PAGES_PER_BLOCK;
          let p = rng.below(view.chunkUsed[chunk]!);
          const pages = pageMaskNew();
          for (let i = 0; i < PAGES_PER_BLOCK; i++) {
            if (view.rmapVa1[base + i]! > 0 && p-- === 0) {
              pageMaskSet(pages, i);
              break;
            }
          }
          return { chunk, pages };
        }
        default: {
          const chunk = pickChunk(view, view.chunkLastUseNs, view.chunkAllocStamp);
          if (chunk < 0) return null;
          const valid = chunkLeaves(view, chunk);
          const evict = new Uint8Array(LEAVES);
          const first = valid.indexOf(1);
          evict[first] = 1;
          if (name === 'tree-neighbourhood') {
            valid[first] = 0;
            for (let size = 2; size <= LEAVES; size *= 2) {
              for (let n = 0; n < LEAVES; n += size) {
                let v = 0;
                for (let l = n; l < n + size; l++) v += valid[l]!;
                if (v > 0 && v * 2 < size) {
                  for (let l = n; l < n + size; l++) if (valid[l] === 1) evict[l] = 1;
                  valid.fill(0, n, n + size);
                }
              }
            }
          }
          return { chunk, pages: leafMask(view, chunk, evict) };
        }
      }
    },
  };
}
