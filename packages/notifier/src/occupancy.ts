/**
 * A coarse occupancy summary of the interval notifiers of one mm: which 2 MiB, 1 GiB and
 * 512 GiB blocks some notifier touches. Not a kernel structure: the kernel probes its interval
 * tree on every invalidation; the simulation keeps this summary beside the tree so that an
 * invalidation overlapping no notifier (the common case) is known to miss after one or two hash
 * probes instead of a descent through a tree of up to 10^6 scattered nodes. The tree stays the
 * authority: a "maybe" answer always goes to the tree, so results are the tree's.
 *
 * Each notifier is counted at the finest level where it spans at most {@link MAX_UNITS} blocks
 * (a notifier wider than that at every level is counted as wide and turns the summary off while
 * it lives). A query reads one bit per block: per level, a bitmap in 64 GiB-of-blocks chunks
 * kept in address order (queries that move through the address space stay in cache, unlike a
 * probe of scattered tree nodes or of a hash). The exact counts behind the bits, needed for
 * removal, live in an open-addressing hash of typed arrays that only add and remove touch: no
 * per-block objects.
 *
 * @module
 */

/** Block shifts of the levels, finest first: 2 MiB, 1 GiB, 512 GiB. */
const SHIFTS = [21, 30, 39] as const;
const SPANS = [2 ** 21, 2 ** 30, 2 ** 39] as const;
/** Most blocks one notifier is counted in (per level), and most blocks one query probes per level. */
const MAX_UNITS = 64;
const EMPTY = -1;
/** Blocks per bitmap chunk (2^15: 4 KiB of bits). */
const CHUNK_SHIFT = 15;
const CHUNK_BLOCKS = 2 ** CHUNK_SHIFT;

/** The summary; {@link add} and {@link remove} must mirror the interval tree's inserts and removes. */
export class NotifierOccupancy {
  /** Notifiers counted per level. */
  private readonly perLevel = new Int32Array(SHIFTS.length);
  /** Notifiers too wide for any level. */
  private wide = 0;
  /** Hash slots: key (block * 4 + level, EMPTY when free) and count, interleaved (one cache line). */
  private slots = new Float64Array(2 * 1024).fill(EMPTY);
  /** Slots whose key is set (a count may have dropped to 0). */
  private keys = 0;
  /** Per level: chunk index → bitmap of its blocks with a non-zero count. */
  private readonly bits: Map<number, Uint32Array>[] = SHIFTS.map(() => new Map());

  /** Counts the notifier `[start, last]` (inclusive bounds). */
  add(start: number, last: number): void {
    this.update(start, last, 1);
  }

  /** Uncounts a notifier previously added with the same bounds. */
  remove(start: number, last: number): void {
    this.update(start, last, -1);
  }

  /**
   * False only when no counted notifier can overlap `[start, last]`; true means "ask the tree".
   * Exact for the blocks it probes: a notifier overlapping the query shares a block with it at
   * the notifier's own level.
   */
  mayOverlap(start: number, last: number): boolean {
    if (this.wide !== 0 || !(start <= last)) return true; // bad bounds: the tree reports them
    for (let l = 0; l < SHIFTS.length; l++) {
      if (this.perLevel[l] === 0) continue;
      const span = SPANS[l]!;
      const first = Math.floor(start / span);
      const end = Math.floor(last / span);
      if (end - first >= MAX_UNITS) return true;
      const bits = this.bits[l]!;
      for (let b = first; b <= end; b++) {
        const chunk = bits.get(Math.floor(b / CHUNK_BLOCKS));
        if (chunk === undefined) continue;
        const off = b % CHUNK_BLOCKS;
        if (chunk[off >>> 5]! & (1 << (off & 31))) return true;
      }
    }
    return false;
  }

  private update(start: number, last: number, delta: number): void {
    for (let l = 0; l < SHIFTS.length; l++) {
      const span = SPANS[l]!;
      const first = Math.floor(start / span);
      const end = Math.floor(last / span);
      if (end - first >= MAX_UNITS) continue;
      this.perLevel[l]! += delta;
      for (let b = first; b <= end; b++) {
        const c = this.bump(b * 4 + l, delta);
        if (c === 0 || (c === 1 && delta === 1)) this.setBit(l, b, c !== 0);
      }
      return;
    }
    this.wide += delta;
  }

  /** Sets (`on`) or clears block `b`'s bit at level `l`; called on a count's 0 ↔ 1 change only. A chunk goes with its last bit. */
  private setBit(l: number, b: number, on: boolean): void {
    const bits = this.bits[l]!;
    const ci = Math.floor(b / CHUNK_BLOCKS);
    let chunk = bits.get(ci);
    if (chunk === undefined) {
      chunk = new Uint32Array(CHUNK_BLOCKS / 32 + 1); // the last word counts the set bits
      bits.set(ci, chunk);
    }
    const off = b % CHUNK_BLOCKS;
    const pop = CHUNK_BLOCKS / 32;
    if (on) {
      chunk[off >>> 5] = chunk[off >>> 5]! | (1 << (off & 31));
      chunk[pop]!++;
    } else {
      chunk[off >>> 5] = chunk[off >>> 5]! & ~(1 << (off & 31));
      if (--chunk[pop]! === 0) bits.delete(ci);
    }
  }

  /** Adds `delta` to `key`'s count and returns the new count. */
  private bump(key: number, delta: number): number {
    const s = this.slots;
    const mask = s.length / 2 - 1;
    let i = hash(key) & mask;
    for (;;) {
      const k = s[2 * i]!;
      if (k === key) {
        const c = s[2 * i + 1]! + delta;
        s[2 * i + 1] = c;
        return c;
      }
      if (k === EMPTY) break;
      i = (i + 1) & mask;
    }
    // a new key (only an add can get here)
    s[2 * i] = key;
    s[2 * i + 1] = delta;
    if (++this.keys * 4 > (mask + 1) * 3) this.rehash();
    return delta;
  }

  /** Doubles the table (or rebuilds it at its size when most keys count 0), dropping zero counts. */
  private rehash(): void {
    const old = this.slots;
    let live = 0;
    for (let i = 1; i < old.length; i += 2) if (old[i] !== 0) live++;
    let n = old.length / 2;
    while (live * 2 > n) n *= 2;
    const s = new Float64Array(2 * n).fill(EMPTY);
    const mask = n - 1;
    for (let i = 0; i < old.length; i += 2) {
      const key = old[i]!;
      const c = old[i + 1]!;
      if (key === EMPTY || c === 0) continue;
      let j = hash(key) & mask;
      while (s[2 * j] !== EMPTY) j = (j + 1) & mask;
      s[2 * j] = key;
      s[2 * j + 1] = c;
    }
    this.slots = s;
    this.keys = live;
  }
}

/** Mixes a key below 2^53 into 32 bits (both halves folded, then murmur3's fmix32). */
function hash(key: number): number {
  let h = (key >>> 0) ^ Math.imul(Math.floor(key / 4294967296), 0x27d4eb2d);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
