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
import { ArgumentError, modPow2, Rng } from '@hmmkit/sim';
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
  let h = Math.imul(modPow2(page, 0x40000000) | 0, 0x9e3779b1) ^ Math.floor(page / 0x40000000);
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
      pageMaskSet(out, modPow2(mix(blockPage0 + p), PAGES_PER_BLOCK));
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

/** Device pages `ks` of one chunk, with the VA + 1 each backed when chosen. */
interface ChunkPart {
  readonly chunk: number;
  readonly ks: number[];
  readonly va1: number[];
}

/**
 * UVMSmart's sequential-local (`tbn` false) and tree-based neighbourhood (TBNe) eviction on the
 * pool (`gpu-sim.cc` `page_eviction_procedure`, `sort_valid_pages`, `traverse_and_remove_lp_tree`).
 * Its tree is a 2 MiB *VA* large page with 64 KiB VA basic blocks as leaves, and its eviction
 * order groups the basic blocks by large page, large pages by their most recently validated basic
 * block (oldest first), and basic blocks within one by validation time. So: the VA block whose
 * newest page is oldest; in it, the leaf whose newest page is oldest; with TBNe, then, bottom-up,
 * every node of the block's tree left non-empty but less than half valid is emptied too. A leaf
 * is valid when it holds a page in this pool (UVMSmart also asks that every page of a basic block
 * be valid to evict it, which its prefetchers guarantee and on-demand paging does not: here a
 * partly resident leaf is evicted with the pages it has). Returns the chosen pages by chunk (a
 * VA block's pages need not share a chunk), in chunk order.
 */
function vaTreeVictims(view: EvictionView, tbn: boolean): ChunkPart[] {
  const n = view.rmapVa1.length;
  const newest = new Map<number, number>();
  for (let k = 0; k < n; k++) {
    const va1 = view.rmapVa1[k]!;
    if (va1 <= 0) continue;
    const b = Math.floor((va1 - 1) / SZ_2M);
    const t = view.pageLastUseNs[k]!;
    const cur = newest.get(b);
    if (cur === undefined || t > cur) newest.set(b, t);
  }
  let block = -1;
  for (const [b, t] of newest) {
    if (block < 0 || t < newest.get(block)! || (t === newest.get(block)! && b < block)) block = b;
  }
  if (block < 0) return [];
  const leafTime = new Float64Array(LEAVES).fill(-1);
  for (let k = 0; k < n; k++) {
    const va1 = view.rmapVa1[k]!;
    if (va1 <= 0 || Math.floor((va1 - 1) / SZ_2M) !== block) continue;
    const l = Math.floor(modPow2(va1 - 1, SZ_2M) / (LEAF * PAGE_SIZE));
    leafTime[l] = Math.max(leafTime[l]!, view.pageLastUseNs[k]!);
  }
  const valid = new Uint8Array(LEAVES);
  let first = -1;
  for (let l = 0; l < LEAVES; l++) {
    if (leafTime[l]! < 0) continue;
    valid[l] = 1;
    if (first < 0 || leafTime[l]! < leafTime[first]!) first = l;
  }
  const evict = new Uint8Array(LEAVES);
  evict[first] = 1;
  if (tbn) {
    valid[first] = 0;
    for (let size = 2; size <= LEAVES; size *= 2) {
      for (let s = 0; s < LEAVES; s += size) {
        let v = 0;
        for (let l = s; l < s + size; l++) v += valid[l]!;
        if (v > 0 && v * 2 < size) {
          for (let l = s; l < s + size; l++) if (valid[l] === 1) evict[l] = 1;
          valid.fill(0, s, s + size);
        }
      }
    }
  }
  const parts = new Map<number, ChunkPart>();
  for (let k = 0; k < n; k++) {
    const va1 = view.rmapVa1[k]!;
    if (va1 <= 0 || Math.floor((va1 - 1) / SZ_2M) !== block) continue;
    if (evict[Math.floor(modPow2(va1 - 1, SZ_2M) / (LEAF * PAGE_SIZE))] !== 1) continue;
    const c = Math.floor(k / PAGES_PER_BLOCK);
    let p = parts.get(c);
    if (p === undefined) {
      p = { chunk: c, ks: [], va1: [] };
      parts.set(c, p);
    }
    p.ks.push(k);
    p.va1.push(va1);
  }
  return [...parts.values()].sort((a, b) => a.chunk - b.chunk);
}

/**
 * Models one of UVMSmart's eviction policies (`gpu-sim.cc`): `lru-4k` (the least recently mapped
 * 4 KiB page, with the pages of its chunk that the same bind mapped, up to the pages needed), `lru-2m` (the chunk least recently
 * mapped, whole: UVMSmart's default), `lfu-2m` (the chunk mapped least often, whole), `random-4k`
 * (one random used page of a random used chunk per call), `sequential-local-64k` (the least
 * recently mapped 64 KiB VA basic block of the VA block least recently mapped) and
 * `tree-neighbourhood` (TBNe: that basic block, then, bottom-up, every node of the VA block's
 * 64K-leaf tree left non-empty but less than half valid is emptied too,
 * `traverse_and_remove_lp_tree`; see `vaTreeVictims`). `seed` drives `random-4k`.
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
  /** The not yet evicted chunks of the last sequential-local / TBNe decision. */
  const pending: (ChunkPart & { dev: number })[] = [];
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
          // one UVMSmart eviction can span several chunks: hand out the rest of the last one first
          while (pending.length > 0) {
            const v = pending.shift()!;
            if (v.dev !== view.devIndex) continue;
            const m = pageMaskNew();
            let n = 0;
            for (let j = 0; j < v.ks.length; j++) {
              const k = v.ks[j]!;
              if (view.rmapVa1[k] === v.va1[j]) {
                pageMaskSet(m, k - v.chunk * PAGES_PER_BLOCK);
                n++;
              }
            }
            if (n > 0) return { chunk: v.chunk, pages: m };
          }
          const victims = vaTreeVictims(view, name === 'tree-neighbourhood');
          if (victims.length === 0) return null;
          for (let i = 1; i < victims.length; i++) pending.push({ ...victims[i]!, dev: view.devIndex });
          const first = victims[0]!;
          const m = pageMaskNew();
          for (const k of first.ks) pageMaskSet(m, k - first.chunk * PAGES_PER_BLOCK);
          return { chunk: first.chunk, pages: m };
        }
      }
    },
  };
}
