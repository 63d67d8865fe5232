/**
 * Eviction policies: which VRAM to give back when a device's SVM pool is full. GpuSvm asks the
 * policy of the device's pool ({@link GpuSvmOptions.devmem}.eviction) for a victim until enough
 * pages are free; the default, {@link lruChunkEviction}, is UVM's `pick_root_chunk_to_evict`: the
 * least recently allocated 2 MiB chunk, whole. Policies see per-chunk usage in typed arrays and
 * may return part of a chunk (a page mask), so 4 KiB and 64 KiB eviction units (UVMSmart's LRU
 * 4K, random 4K, sequential-local 64K, tree-based neighbourhood) fit the same hook.
 *
 * @module
 */
import type { PageMask } from './page-mask.ts';

/** One device's SVM VRAM pool as an eviction policy sees it (read-only; indexed by 2 MiB chunk). */
export interface EvictionView {
  /** Index of the device in the GpuSvm. */
  readonly devIndex: number;
  /** Virtual time now (ns). */
  readonly now: number;
  /** Chunks in the pool. */
  readonly chunks: number;
  /** Pages in use per chunk (0: nothing to evict there). */
  readonly chunkUsed: Int32Array;
  /** Allocation-order stamp per chunk (larger = more recent; UVM moves a chunk to the LRU tail on allocation). */
  readonly chunkAllocStamp: Float64Array;
  /** Virtual time of the last bind (GPU fault, prefetch map) that mapped a page of the chunk (0: never). */
  readonly chunkLastUseNs: Float64Array;
  /** Binds that mapped a page of the chunk (each bind counts once per chunk): a frequency for LFU. */
  readonly chunkUses: Float64Array;
  /**
   * VA + 1 backed by each device page (0: free; see {@link pageVa}); chunk `c` holds pages
   * `[c * 512, c * 512 + 512)`. Zero means free so that unused pages of a large pool cost no memory.
   */
  readonly rmapVa1: Float64Array;
  /** Virtual time of the last bind that mapped each device page (0: never or free). */
  readonly pageLastUseNs: Float64Array;
}

/** The VA that device page `k` of the pool backs, or -1 when the page is free. */
export function pageVa(view: Pick<EvictionView, 'rmapVa1'>, k: number): number {
  return view.rmapVa1[k]! - 1;
}

/** A policy's choice: a chunk, whole or only the pages of `pages` (bit i = page i of the chunk). */
export interface EvictionVictim {
  readonly chunk: number;
  readonly pages?: PageMask;
}

/** Picks what to evict. Called until `needPages` pages are free, or it returns null or frees nothing. */
export interface EvictionPolicy {
  /** Short name for traces, errors and tables. */
  readonly name: string;
  /** The victim for `needPages` more free pages, or null when nothing should be evicted. */
  pickVictim(view: EvictionView, needPages: number): EvictionVictim | null;
}

/** UVM's default: the least recently allocated chunk that holds pages, evicted whole. */
export function lruChunkEviction(): EvictionPolicy {
  return {
    name: 'lru-chunk',
    pickVictim(view) {
      let best = -1;
      for (let c = 0; c < view.chunks; c++) {
        if (view.chunkUsed[c]! > 0 && (best < 0 || view.chunkAllocStamp[c]! < view.chunkAllocStamp[best]!))
          best = c;
      }
      return best < 0 ? null : { chunk: best };
    },
  };
}
