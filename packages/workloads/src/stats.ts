/**
 * Statistics over access streams, for reports: footprint, unique pages, accesses per page, a
 * coarse (log2-binned) reuse-distance histogram, sequentiality, and the fault-window helper that
 * calibrates generators against Allen & Ge's batch observations (uvm-costs §2.1).
 *
 * All functions take issue-ordered {@link AccessBatch}es (from {@link issueOrder} or a trace
 * reader), so they work on streams that are never held whole in memory. Pages are 4 KiB.
 *
 * @module
 */
import { ArgumentError, modPow2 } from '@hmmkit/sim';
import { type AccessBatch, issueOrder, PAGE_SIZE, type WarpStreams } from './access.ts';
import { type Kernel, smOfWarp } from './kernel.ts';

const TWO32 = 4294967296;

/**
 * Open-addressing hash from page numbers (integers < 2^52) to dense ids 0, 1, 2, ... in order
 * of first sight. Typed arrays only: no per-page objects or Map entries.
 */
export class PageIndex {
  private keys: Float64Array;
  private ids: Int32Array;
  private mask: number;
  /** Distinct keys inserted. */
  size = 0;

  constructor(capacityHint = 1024) {
    let cap = 16;
    while (cap < capacityHint * 2) cap *= 2;
    this.keys = new Float64Array(cap).fill(-1);
    this.ids = new Int32Array(cap);
    this.mask = cap - 1;
  }

  /** The id of `key`, inserting it if new (then the id is the previous `size`). */
  idOf(key: number): number {
    let h = hash(key) & this.mask;
    for (;;) {
      const k = this.keys[h]!;
      if (k === key) return this.ids[h]!;
      if (k === -1) break;
      h = (h + 1) & this.mask;
    }
    const id = this.size++;
    this.keys[h] = key;
    this.ids[h] = id;
    if (this.size * 2 > this.keys.length) this.grow();
    return id;
  }

  /** The id of `key`, or -1. */
  find(key: number): number {
    let h = hash(key) & this.mask;
    for (;;) {
      const k = this.keys[h]!;
      if (k === key) return this.ids[h]!;
      if (k === -1) return -1;
      h = (h + 1) & this.mask;
    }
  }

  private grow(): void {
    const oldK = this.keys;
    const oldI = this.ids;
    const cap = oldK.length * 2;
    this.keys = new Float64Array(cap).fill(-1);
    this.ids = new Int32Array(cap);
    this.mask = cap - 1;
    for (let i = 0; i < oldK.length; i++) {
      const k = oldK[i]!;
      if (k === -1) continue;
      let h = hash(k) & this.mask;
      while (this.keys[h] !== -1) h = (h + 1) & this.mask;
      this.keys[h] = k;
      this.ids[h] = oldI[i]!;
    }
  }
}

function hash(key: number): number {
  const lo = modPow2(key, TWO32);
  const hi = Math.floor(key / TWO32);
  const x = Math.imul(lo ^ Math.imul(hi, 0x27d4eb2d), 0x9e3779b1);
  return (x ^ (x >>> 15)) & 0x7fffffff;
}

function grownInt32(a: Int32Array<ArrayBuffer>, need: number): Int32Array<ArrayBuffer> {
  if (need <= a.length) return a;
  let cap = a.length * 2;
  while (cap < need) cap *= 2;
  const b = new Int32Array(cap);
  b.set(a);
  return b;
}

/** Result of {@link accessStats}. */
export interface AccessStats {
  readonly accesses: number;
  readonly reads: number;
  readonly writes: number;
  readonly atomics: number;
  /** Sum of access sizes. */
  readonly bytesAccessed: number;
  /** Distinct 4 KiB pages touched (an access counts for its first page). */
  readonly uniquePages: number;
  /** uniquePages × 4096. */
  readonly footprintBytes: number;
  /** Lowest and highest page number touched (-1 if none). */
  readonly minPage: number;
  readonly maxPage: number;
  /** accesses / uniquePages. */
  readonly meanAccessesPerPage: number;
  readonly maxAccessesPerPage: number;
  /** Pages by access count, log2 bins: bin k holds pages with count in [2^k, 2^(k+1)). */
  readonly accessesPerPageHist: readonly number[];
  /**
   * Reuse (LRU stack) distance in distinct pages between two accesses to one page, log2 bins:
   * bin 0 = distance 0 (no other page in between), bin k ≥ 1 = [2^(k-1), 2^k). First touches
   * are counted in `coldAccesses`, not here. Empty when disabled.
   */
  readonly reuseHist: readonly number[];
  readonly coldAccesses: number;
  /**
   * Of the page changes in issue order, the fraction that go to page p+1 of one of the last
   * {@link SEQ_STREAMS} distinct pages (what a 32-stream next-page detector would catch, so
   * interleaved sequential arrays count as sequential): ≈1 for streaming, ≈0 for random.
   */
  readonly sequentiality: number;
}

/** Options of {@link accessStats}. */
export interface StatsOptions {
  /** Compute the reuse-distance histogram (O(n log n), about 5 bytes per access). Default true. */
  readonly reuse?: boolean;
}

/** Distinct recent pages the sequentiality detector remembers. */
export const SEQ_STREAMS = 32;

function log2Bin(x: number): number {
  return x < 1 ? 0 : Math.floor(Math.log2(x));
}

/** Footprint, per-page counts, reuse distances and sequentiality of an issue-ordered stream. */
export function accessStats(batches: Iterable<AccessBatch>, opts: StatsOptions = {}): AccessStats {
  const doReuse = opts.reuse !== false;
  const index = new PageIndex(4096);
  let perPage = new Int32Array(4096);
  let lastTime = new Int32Array(4096); // position of the page's last access in the reuse timeline
  // Fenwick tree over timeline positions: 1 where a position is its page's latest access.
  let fen = new Int32Array(1 << 12);
  let marks = new Uint8Array(1 << 12);
  let time = 0;
  let accesses = 0;
  let reads = 0;
  let writes = 0;
  let atomics = 0;
  let bytes = 0;
  let minPage = Infinity;
  let maxPage = -1;
  const reuse: number[] = [];
  let cold = 0;
  let prevPage = -2;
  let changes = 0;
  let seq = 0;
  const recent = new Float64Array(SEQ_STREAMS).fill(-2);
  let recentPos = 0;
  const fenAdd = (i: number, d: number): void => {
    for (let j = i + 1; j <= fen.length; j += j & -j) fen[j - 1]! += d;
  };
  const fenSum = (i: number): number => {
    // sum of positions [0, i)
    let s = 0;
    for (let j = i; j > 0; j -= j & -j) s += fen[j - 1]!;
    return s;
  };
  for (const b of batches) {
    for (let i = 0; i < b.count; i++) {
      const page = Math.floor(b.va[i]! / PAGE_SIZE);
      const kind = b.kind[i]!;
      accesses++;
      if (kind === 1) reads++;
      else if (kind === 2) writes++;
      else if (kind === 3) atomics++;
      bytes += b.size[i]!;
      if (page < minPage) minPage = page;
      if (page > maxPage) maxPage = page;
      const before = index.size;
      const id = index.idOf(page);
      if (id >= perPage.length) {
        perPage = grownInt32(perPage, id + 1);
        lastTime = grownInt32(lastTime, id + 1);
      }
      perPage[id]!++;
      if (page !== prevPage) {
        if (prevPage >= 0) {
          changes++;
          let known = false;
          for (let r = 0; r < SEQ_STREAMS; r++) {
            const q = recent[r]!;
            if (q === page - 1) seq++;
            if (q === page) known = true;
          }
          if (!known) {
            recent[recentPos] = page;
            recentPos = (recentPos + 1) % SEQ_STREAMS;
          }
        } else {
          recent[recentPos] = page;
          recentPos = (recentPos + 1) % SEQ_STREAMS;
        }
        prevPage = page;
      }
      if (!doReuse) continue;
      if (id === before) {
        cold++;
      } else {
        const last = lastTime[id]!;
        const d = fenSum(time) - fenSum(last + 1);
        const bin = d === 0 ? 0 : log2Bin(d) + 1;
        while (reuse.length <= bin) reuse.push(0);
        reuse[bin]!++;
        marks[last] = 0;
        fenAdd(last, -1);
      }
      if (time >= fen.length) {
        const nm = new Uint8Array(marks.length * 2);
        nm.set(marks);
        marks = nm;
        fen = new Int32Array(nm.length);
        for (let j = 0; j < time; j++) if (marks[j] === 1) fenAdd(j, 1);
      }
      marks[time] = 1;
      fenAdd(time, 1);
      lastTime[id] = time;
      time++;
    }
  }
  const unique = index.size;
  const hist: number[] = [];
  let maxPer = 0;
  for (let id = 0; id < unique; id++) {
    const c = perPage[id]!;
    if (c > maxPer) maxPer = c;
    const bin = log2Bin(c);
    while (hist.length <= bin) hist.push(0);
    hist[bin]!++;
  }
  return {
    accesses,
    reads,
    writes,
    atomics,
    bytesAccessed: bytes,
    uniquePages: unique,
    footprintBytes: unique * PAGE_SIZE,
    minPage: maxPage < 0 ? -1 : minPage,
    maxPage,
    meanAccessesPerPage: unique === 0 ? 0 : accesses / unique,
    maxAccessesPerPage: maxPer,
    accessesPerPageHist: hist,
    reuseHist: reuse,
    coldAccesses: doReuse ? cold : 0,
    sequentiality: changes === 0 ? 0 : seq / changes,
  };
}

/** Stats of a kernel, in issue order. */
export function kernelStats(k: Kernel | WarpStreams, opts: StatsOptions = {}): AccessStats {
  const streams = 'streams' in k ? k.streams : k;
  return accessStats(issueOrder(streams), opts);
}

/** Options of {@link firstTouchWindows}. */
export interface WindowOptions {
  /** Fault entries per window (the driver's batch size). Default 256. */
  readonly windowSize?: number;
  /**
   * SM of a warp, to coalesce duplicates as a uTLB does: accesses from one SM to one page in
   * one window make one entry. Omit to count every first-touch access as an entry.
   */
  readonly smOf?: (warp: number) => number;
}

/** Result of {@link firstTouchWindows}. */
export interface WindowStats {
  /** Complete windows (a trailing partial window is reported separately). */
  readonly windows: number;
  /** Unique pages in each complete window. */
  readonly uniquePerWindow: Int32Array;
  readonly meanUnique: number;
  readonly minUnique: number;
  readonly maxUnique: number;
  /** 1 − unique / entries over complete windows. */
  readonly duplicateFraction: number;
  /** Entries and unique pages of the trailing partial window. */
  readonly tailEntries: number;
  readonly tailUnique: number;
}

/**
 * Cuts the stream of first-touch accesses into windows of `windowSize` entries and counts unique
 * pages per window: an access is a first touch when its page was not in an earlier window
 * (earlier windows' pages count as resident, as after a serviced batch). With `smOf`, one SM's
 * accesses to a page in a window coalesce into one entry. This is what a fault batch of that
 * size would hold if the GPU kept issuing in order; Allen & Ge see ≈256 entries with ≈50–65
 * unique pages for stream triad (uvm-costs §2.1).
 */
export function firstTouchWindows(batches: Iterable<AccessBatch>, opts: WindowOptions = {}): WindowStats {
  const size = opts.windowSize ?? 256;
  if (!Number.isInteger(size) || size < 1 || size > 1 << 20) {
    throw new ArgumentError('firstTouchWindows', 'opts.windowSize', 'must be an integer in [1, 2^20]', size);
  }
  const smOf = opts.smOf;
  const pages = new PageIndex(4096);
  let resident = new Uint8Array(4096);
  let inWindow = new Int32Array(4096); // window number + 1 when the page is in the open window
  const keys = new PageIndex(1024);
  let keyWindow = new Int32Array(1024);
  const pending = new Int32Array(size); // page ids of the open window
  let out = new Int32Array(64);
  let windows = 0;
  let entries = 0;
  let unique = 0;
  let totalEntries = 0;
  let totalUnique = 0;
  for (const b of batches) {
    for (let i = 0; i < b.count; i++) {
      const page = Math.floor(b.va[i]! / PAGE_SIZE);
      const id = pages.idOf(page);
      if (id >= resident.length) {
        const r = new Uint8Array(Math.max(id + 1, resident.length * 2));
        r.set(resident);
        resident = r;
        inWindow = grownInt32(inWindow, r.length);
      }
      if (resident[id] === 1) continue;
      if (smOf !== undefined) {
        const kid = keys.idOf(page * 1024 + (smOf(b.warp[i]!) % 1024));
        keyWindow = grownInt32(keyWindow, kid + 1);
        if (keyWindow[kid] === windows + 1) continue; // coalesced in the uTLB
        keyWindow[kid] = windows + 1;
      }
      entries++;
      if (inWindow[id] !== windows + 1) {
        inWindow[id] = windows + 1;
        pending[unique++] = id;
      }
      if (entries === size) {
        out = grownInt32(out, windows + 1);
        out[windows] = unique;
        for (let k = 0; k < unique; k++) resident[pending[k]!] = 1;
        totalEntries += entries;
        totalUnique += unique;
        windows++;
        entries = 0;
        unique = 0;
      }
    }
  }
  const per = out.slice(0, windows);
  let mn = windows === 0 ? 0 : Infinity;
  let mx = 0;
  for (let k = 0; k < windows; k++) {
    const u = per[k]!;
    if (u < mn) mn = u;
    if (u > mx) mx = u;
  }
  return {
    windows,
    uniquePerWindow: per,
    meanUnique: windows === 0 ? 0 : totalUnique / windows,
    minUnique: mn,
    maxUnique: mx,
    duplicateFraction: totalEntries === 0 ? 0 : 1 - totalUnique / totalEntries,
    tailEntries: entries,
    tailUnique: unique,
  };
}

/** {@link firstTouchWindows} over a kernel in issue order, coalescing per SM ({@link smOfWarp}). */
export function kernelFaultWindows(k: Kernel, windowSize = 256): WindowStats {
  return firstTouchWindows(issueOrder(k.streams), { windowSize, smOf: (w) => smOfWarp(k, w) });
}

/** Result of {@link faultBatchModel}. */
export interface FaultBatchStats {
  readonly batches: number;
  /** Fault entries (after per-SM coalescing) in each batch. */
  readonly faultsPerBatch: Int32Array;
  /** Unique pages in each batch. */
  readonly uniquePerBatch: Int32Array;
  readonly meanFaults: number;
  readonly meanUnique: number;
  /** 1 − unique / faults over all batches. */
  readonly duplicateFraction: number;
}

/**
 * A stall-aware first-order fault model of a kernel on an empty GPU: warps issue round robin;
 * an access to a non-resident page raises a fault entry (one per SM and page per batch when
 * `smCoalesce`, as a uTLB does) and stalls its warp; a batch is serviced when it holds
 * `batchSize` entries or every live warp is stalled, which makes its pages resident and
 * replays every warp. No prefetch, no eviction, zero service time: what a driver's fault
 * batches would hold, to cross-check the GPU engine and the §2.1 numbers.
 */
export function faultBatchModel(
  k: Kernel,
  opts: { readonly batchSize?: number; readonly smCoalesce?: boolean } = {},
): FaultBatchStats {
  const size = opts.batchSize ?? 256;
  if (!Number.isInteger(size) || size < 1 || size > 1 << 20) {
    throw new ArgumentError('faultBatchModel', 'opts.batchSize', 'must be an integer in [1, 2^20]', size);
  }
  const coalesce = opts.smCoalesce !== false;
  const { vas, warpStart } = k.streams;
  const W = warpStart.length - 1;
  const cursor = Int32Array.from(warpStart.subarray(0, W));
  const stalled = new Uint8Array(W);
  const pages = new PageIndex(4096);
  let resident = new Uint8Array(4096);
  let pendingMark = new Int32Array(4096);
  const keys = new PageIndex(1024);
  let keyMark = new Int32Array(1024);
  const pending = new Int32Array(Math.max(size, W) + 1);
  let faults = new Int32Array(64);
  let uniq = new Int32Array(64);
  let batches = 0;
  let entries = 0;
  let unique = 0;
  let totalF = 0;
  let totalU = 0;
  const close = (): void => {
    faults = grownInt32(faults, batches + 1);
    uniq = grownInt32(uniq, batches + 1);
    faults[batches] = entries;
    uniq[batches] = unique;
    totalF += entries;
    totalU += unique;
    for (let j = 0; j < unique; j++) resident[pending[j]!] = 1;
    stalled.fill(0);
    batches++;
    entries = 0;
    unique = 0;
  };
  for (;;) {
    let live = 0;
    let moved = false;
    for (let w = 0; w < W; w++) {
      const i = cursor[w]!;
      if (i >= warpStart[w + 1]!) continue;
      live++;
      if (stalled[w] === 1) continue;
      const page = Math.floor(vas[i]! / PAGE_SIZE);
      const id = pages.idOf(page);
      if (id >= resident.length) {
        const r = new Uint8Array(Math.max(id + 1, resident.length * 2));
        r.set(resident);
        resident = r;
        pendingMark = grownInt32(pendingMark, r.length);
      }
      if (resident[id] === 1) {
        cursor[w] = i + 1;
        moved = true;
        continue;
      }
      stalled[w] = 1;
      moved = true;
      if (coalesce) {
        const kid = keys.idOf(page * 1024 + (smOfWarp(k, w) % 1024));
        keyMark = grownInt32(keyMark, kid + 1);
        if (keyMark[kid] === batches + 1) continue;
        keyMark[kid] = batches + 1;
      }
      entries++;
      if (pendingMark[id] !== batches + 1) {
        pendingMark[id] = batches + 1;
        pending[unique++] = id;
      }
      if (entries === size) close();
    }
    if (live === 0) break;
    if (!moved) {
      if (entries === 0) break; // cannot happen: a stalled warp always has a pending fault
      close();
    }
  }
  if (entries > 0) close();
  return {
    batches,
    faultsPerBatch: faults.slice(0, batches),
    uniquePerBatch: uniq.slice(0, batches),
    meanFaults: batches === 0 ? 0 : totalF / batches,
    meanUnique: batches === 0 ? 0 : totalU / batches,
    duplicateFraction: totalF === 0 ? 0 : 1 - totalU / totalF,
  };
}
