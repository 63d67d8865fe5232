/**
 * The access-stream representation: typed arrays, never one object per access.
 *
 * A kernel's accesses are stored warp-major ({@link WarpStreams}, a CSR layout: warp `w` runs
 * accesses `warpStart[w] .. warpStart[w+1]-1`), which is structurally the `AccessStreams` that
 * `@hmmkit/gpu`'s `GpuEngine.run` takes. The order in which the GPU issues them (one access per
 * warp per round, round robin over warps still running) is produced on demand by
 * {@link issueOrder} as reusable {@link AccessBatch}es (va + kind + warp + size arrays).
 *
 * @module
 */
import { ArgumentError, StateError } from '@hmmkit/sim';

/**
 * Access kinds. The values equal `@hmmkit/gpu`'s `ACCESS` (READ 1, WRITE 2, ATOMIC 3; 0 is the
 * GPU's PREFETCH, which workloads never issue), so kind arrays pass to the engine unchanged.
 */
export const ACCESS_KIND = { READ: 1, WRITE: 2, ATOMIC: 3 } as const;
/** One of the {@link ACCESS_KIND} values. */
export type AccessKind = (typeof ACCESS_KIND)[keyof typeof ACCESS_KIND];
/** Names of access kinds by value (index 0 unused). */
export const ACCESS_KIND_NAMES = ['NONE', 'READ', 'WRITE', 'ATOMIC'] as const;

/** Bytes of one warp-wide coalesced access: 32 lanes × 4 B. */
export const WARP_ACCESS_BYTES = 128;
/** Base page size used by stats and generators (4 KiB). */
export const PAGE_SIZE = 4096;

/**
 * A kernel's accesses, warp-major. Structurally compatible with `@hmmkit/gpu`'s `AccessStreams`
 * (`vas`, `access`, `warpStart`); `sizes` is extra (bytes per access, 1..65535).
 */
export interface WarpStreams {
  /** Virtual address of each access. */
  readonly vas: Float64Array;
  /** {@link ACCESS_KIND} of each access. */
  readonly access: Uint8Array;
  /** Bytes touched by each access (a warp-wide float access is 128). */
  readonly sizes: Uint16Array;
  /** Offsets of each warp's accesses; length = warps + 1. */
  readonly warpStart: Int32Array;
}

/**
 * A chunk of accesses in issue order. Arrays have a fixed capacity; entries `0 .. count-1` are
 * valid. Iterators reuse one batch: copy what you need before asking for the next.
 */
export interface AccessBatch {
  count: number;
  readonly va: Float64Array;
  readonly kind: Uint8Array;
  readonly warp: Uint16Array;
  readonly size: Uint16Array;
}

/** Allocates an empty {@link AccessBatch} of `capacity` entries. */
export function createBatch(capacity: number): AccessBatch {
  if (!Number.isInteger(capacity) || capacity < 1 || capacity > 1 << 24) {
    throw new ArgumentError('createBatch', 'capacity', 'must be an integer in [1, 2^24]', capacity);
  }
  return {
    count: 0,
    va: new Float64Array(capacity),
    kind: new Uint8Array(capacity),
    warp: new Uint16Array(capacity),
    size: new Uint16Array(capacity),
  };
}

/** Where a task's accesses go (a {@link StreamBuilder}, or a page-resolution collector). */
export interface AccessSink {
  /** Appends one access of the current warp. */
  push(va: number, kind: AccessKind, size: number): void;
}

/**
 * Growable warp-major builder. Call {@link StreamBuilder.endWarp} after each warp's accesses
 * (warps in order 0, 1, 2, ...); {@link StreamBuilder.finish} returns trimmed arrays.
 */
export class StreamBuilder implements AccessSink {
  private vas: Float64Array;
  private kinds: Uint8Array;
  private sz: Uint16Array;
  private readonly warpStart: Int32Array;
  private n = 0;
  private w = 0;

  /** `warps` warps; `capacityHint` accesses preallocated (grows by doubling). */
  constructor(warps: number, capacityHint = 1024) {
    if (!Number.isInteger(warps) || warps < 1 || warps > 65535) {
      throw new ArgumentError('StreamBuilder', 'warps', 'must be an integer in [1, 65535]', warps);
    }
    const cap = Math.max(16, Math.min(Math.floor(capacityHint), 1 << 28));
    this.vas = new Float64Array(cap);
    this.kinds = new Uint8Array(cap);
    this.sz = new Uint16Array(cap);
    this.warpStart = new Int32Array(warps + 1);
  }

  /** Accesses pushed so far. */
  get length(): number {
    return this.n;
  }

  /** Appends one access to the current warp. */
  push(va: number, kind: AccessKind, size: number): void {
    if (this.n === this.vas.length) this.grow();
    const i = this.n++;
    this.vas[i] = va;
    this.kinds[i] = kind;
    this.sz[i] = size;
  }

  /** Closes the current warp. */
  endWarp(): void {
    if (this.w === this.warpStart.length - 1)
      throw new StateError('StreamBuilder.endWarp', 'every warp is already closed');
    this.w++;
    this.warpStart[this.w] = this.n;
  }

  /** Returns the streams; every warp must have been closed. */
  finish(): WarpStreams {
    const warps = this.warpStart.length - 1;
    if (this.w !== warps) throw new StateError('StreamBuilder.finish', `${warps - this.w} warps not closed`);
    const n = this.n;
    return {
      vas: n === this.vas.length ? this.vas : this.vas.slice(0, n),
      access: n === this.kinds.length ? this.kinds : this.kinds.slice(0, n),
      sizes: n === this.sz.length ? this.sz : this.sz.slice(0, n),
      warpStart: this.warpStart,
    };
  }

  private grow(): void {
    const cap = this.vas.length * 2;
    const v = new Float64Array(cap);
    v.set(this.vas);
    const k = new Uint8Array(cap);
    k.set(this.kinds);
    const s = new Uint16Array(cap);
    s.set(this.sz);
    this.vas = v;
    this.kinds = k;
    this.sz = s;
  }
}

/**
 * Yields a kernel's accesses in GPU issue order: round r holds access r of every warp that still
 * has one, warps in id order (the engine's round robin without stalls). The same `batch` object
 * is yielded each time, refilled; at most `capacity` entries per batch.
 */
export function* issueOrder(streams: WarpStreams, capacity = 4096): Generator<AccessBatch, void, undefined> {
  const batch = createBatch(capacity);
  const { vas, access, sizes, warpStart } = streams;
  const warps = warpStart.length - 1;
  // Live warps list, compacted as warps finish.
  const live = new Int32Array(warps);
  let nLive = 0;
  for (let w = 0; w < warps; w++) if (warpStart[w + 1]! > warpStart[w]!) live[nLive++] = w;
  let round = 0;
  let c = 0;
  while (nLive > 0) {
    let keep = 0;
    for (let j = 0; j < nLive; j++) {
      const w = live[j]!;
      const i = warpStart[w]! + round;
      batch.va[c] = vas[i]!;
      batch.kind[c] = access[i]!;
      batch.warp[c] = w;
      batch.size[c] = sizes[i]!;
      c++;
      if (c === capacity) {
        batch.count = c;
        yield batch;
        c = 0;
      }
      if (i + 1 < warpStart[w + 1]!) live[keep++] = w;
    }
    nLive = keep;
    round++;
  }
  if (c > 0) {
    batch.count = c;
    yield batch;
  }
}

/**
 * Rebuilds warp-major streams from issue-ordered batches (e.g. read from a trace). Warp ids must
 * be below `warps`; per-warp order is the order of appearance.
 */
export function streamsFromBatches(batches: Iterable<AccessBatch>, warps: number): WarpStreams {
  if (!Number.isInteger(warps) || warps < 1 || warps > 65536) {
    throw new ArgumentError('streamsFromBatches', 'warps', 'must be an integer in [1, 65536]', warps);
  }
  // Two passes would need the batches twice; instead gather into flat arrays, then scatter.
  let cap = 1024;
  let va = new Float64Array(cap);
  let kind = new Uint8Array(cap);
  let size = new Uint16Array(cap);
  let warp = new Uint16Array(cap);
  let n = 0;
  const counts = new Int32Array(warps + 1);
  for (const b of batches) {
    if (n + b.count > cap) {
      while (n + b.count > cap) cap *= 2;
      const v2 = new Float64Array(cap);
      v2.set(va.subarray(0, n));
      va = v2;
      const k2 = new Uint8Array(cap);
      k2.set(kind.subarray(0, n));
      kind = k2;
      const s2 = new Uint16Array(cap);
      s2.set(size.subarray(0, n));
      size = s2;
      const w2 = new Uint16Array(cap);
      w2.set(warp.subarray(0, n));
      warp = w2;
    }
    for (let i = 0; i < b.count; i++) {
      const w = b.warp[i]!;
      if (w >= warps) throw new ArgumentError('streamsFromBatches', 'warps', `must exceed every warp id`, w);
      va[n] = b.va[i]!;
      kind[n] = b.kind[i]!;
      size[n] = b.size[i]!;
      warp[n] = w;
      counts[w + 1]!++;
      n++;
    }
  }
  const warpStart = new Int32Array(warps + 1);
  for (let w = 0; w < warps; w++) warpStart[w + 1] = warpStart[w]! + counts[w + 1]!;
  const cursor = Int32Array.from(warpStart.subarray(0, warps));
  const vas = new Float64Array(n);
  const access = new Uint8Array(n);
  const sizes = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    const j = cursor[warp[i]!]!++;
    vas[j] = va[i]!;
    access[j] = kind[i]!;
    sizes[j] = size[i]!;
  }
  return { vas, access, sizes, warpStart };
}
