/**
 * A device TLB: set-associative, page-size aware (one array per page size, or one unified
 * array whose entries carry their size), LRU within a set, range invalidation and full flush,
 * and {@link TlbBatch}, UVM's `uvm_tlb_batch`: ranges are collected and issued one invalidate
 * each, or one full flush when there are more than `tlbBatchMaxRanges` of them.
 *
 * State lives in flat typed arrays; a lookup is index arithmetic and compares. A hit is served
 * from a direct-mapped memo of earlier lookups (4K page number → slot), valid until the next
 * fill or invalidate: while the TLB does not change, the same page finds the same slot, so the
 * memo returns exactly what the probe (every size, smallest first, every way) would.
 *
 * @module
 */
import { ArgumentError, type Counter, modPow2, pow2, type Sim } from '@hmmkit/sim';
import type { Aperture } from './format.ts';

/** Options of a {@link Tlb}. */
export interface TlbOptions {
  /** Page shifts the TLB caches, e.g. [12, 16, 21] (default). A larger page is cached at the largest size ≤ it. */
  readonly pageShifts?: readonly number[];
  /** `false` (default): one array per page size; `true`: one array shared by every size. */
  readonly unified?: boolean;
  /** Entries per array (per size when separate); default 512. Must be a multiple of `ways`. */
  readonly entries?: number;
  /** Associativity; default 8. entries / ways must be a power of two. */
  readonly ways?: number;
  /** Per-page-shift overrides of entries/ways (separate mode). */
  readonly perSize?: Readonly<Record<number, { readonly entries: number; readonly ways: number }>>;
  /** Counter name prefix (default 'gpu': counters `gpu.tlb.hit` ...). Give each device its own to separate them. */
  readonly counterPrefix?: string;
}

/** Flag bits of a cached translation. */
export const TLB_FLAG = { WRITABLE: 1, ATOMIC: 2 } as const;

/** Entries of the lookup memo (a power of two). */
const MEMO_SIZE = 16384;

interface Bank {
  readonly offset: number;
  readonly sets: number;
  readonly ways: number;
}

/** A device TLB. See the module comment. */
export class Tlb {
  readonly sim: Sim;
  readonly unified: boolean;
  /** Page shifts cached, ascending. */
  readonly pageShifts: readonly number[];
  /** Virtual page number per slot (-1 = empty). */
  readonly tags: Float64Array;
  /** Page shift per slot. */
  readonly shifts: Uint8Array;
  /** Physical base address of the cached page per slot. */
  readonly pas: Float64Array;
  /** TLB_FLAG bits per slot. */
  readonly flags: Uint8Array;
  /** Aperture per slot. */
  readonly apertures: Uint8Array;
  /** Peer id per slot (PEER aperture). */
  readonly peers: Uint8Array;
  /** Scratch of {@link overlapping}: the slots it found. */
  readonly overlapSlots: Int32Array;
  private readonly stamps: Float64Array;
  private tick = 0;
  /** Lookup memo: 4K page number, slot found, and the TLB generation it was found in. */
  private readonly memoPage: Float64Array;
  private readonly memoSlot: Int32Array;
  private readonly memoGen: Float64Array;
  /** Valid entries of each set, at the set's first slot (a probe skips an empty set). */
  private readonly setFill: Int32Array;
  /** First slot of the set of each slot. */
  private readonly setOf: Int32Array;
  /** Bumped by every fill and invalidate: memo entries of older generations are void. */
  private gen = 1;
  private readonly banks: readonly Bank[];
  /** Probe list: for probe p, its bank and shift. */
  private readonly probeBank: Int32Array;
  private readonly probeShift: Int32Array;
  private readonly probeInv: Float64Array;
  private readonly probeOffset: Int32Array;
  private readonly probeSetMask: Int32Array;
  private readonly probeWays: Int32Array;
  readonly hits: Counter;
  readonly misses: Counter;
  readonly fills: Counter;
  readonly invalidates: Counter;
  readonly flushes: Counter;

  constructor(sim: Sim, options: TlbOptions = {}) {
    this.sim = sim;
    this.unified = options.unified ?? false;
    const shifts = [...(options.pageShifts ?? [12, 16, 21])].sort((a, b) => a - b);
    if (shifts.length === 0 || shifts.some((s) => !Number.isInteger(s) || s < 12 || s > 40)) {
      throw new ArgumentError(
        'Tlb',
        'options.pageShifts',
        'must be integers in [12, 40]',
        options.pageShifts,
      );
    }
    this.pageShifts = shifts;
    const geo = (entries: number, ways: number, arg: string) => {
      const sets = entries / ways;
      if (
        !Number.isInteger(ways) ||
        ways < 1 ||
        !Number.isInteger(sets) ||
        sets < 1 ||
        (sets & (sets - 1)) !== 0
      ) {
        throw new ArgumentError('Tlb', arg, 'entries / ways must be a power of two', { entries, ways });
      }
      return { sets, ways };
    };
    const banks: Bank[] = [];
    let total = 0;
    const entries = options.entries ?? 512;
    const ways = options.ways ?? 8;
    if (this.unified) {
      const g = geo(entries, ways, 'options.entries');
      banks.push({ offset: 0, ...g });
      total = entries;
    } else {
      for (const s of shifts) {
        const o = options.perSize?.[s];
        const g = geo(o?.entries ?? entries, o?.ways ?? ways, `options.perSize.${s}`);
        banks.push({ offset: total, ...g });
        total += g.sets * g.ways;
      }
    }
    this.banks = banks;
    this.probeBank = new Int32Array(shifts.length);
    this.probeShift = new Int32Array(shifts.length);
    this.probeInv = new Float64Array(shifts.length);
    this.probeOffset = new Int32Array(shifts.length);
    this.probeSetMask = new Int32Array(shifts.length);
    this.probeWays = new Int32Array(shifts.length);
    shifts.forEach((s, i) => {
      const b = this.unified ? 0 : i;
      this.probeBank[i] = b;
      this.probeShift[i] = s;
      this.probeInv[i] = 2 ** -s;
      this.probeOffset[i] = banks[b]!.offset;
      this.probeSetMask[i] = banks[b]!.sets - 1;
      this.probeWays[i] = banks[b]!.ways;
    });
    this.tags = new Float64Array(total).fill(-1);
    this.shifts = new Uint8Array(total);
    this.pas = new Float64Array(total);
    this.flags = new Uint8Array(total);
    this.apertures = new Uint8Array(total);
    this.peers = new Uint8Array(total);
    this.stamps = new Float64Array(total);
    this.overlapSlots = new Int32Array(total);
    this.setFill = new Int32Array(total);
    this.setOf = new Int32Array(total);
    for (const b of banks)
      for (let i = 0; i < b.sets * b.ways; i++)
        this.setOf[b.offset + i] = b.offset + Math.floor(i / b.ways) * b.ways;
    this.memoPage = new Float64Array(MEMO_SIZE); // no fill: generation 0 (the initial memoGen) is never current
    this.memoSlot = new Int32Array(MEMO_SIZE);
    this.memoGen = new Float64Array(MEMO_SIZE);
    const c = sim.counters;
    const px = options.counterPrefix ?? 'gpu';
    this.hits = c.counter(`${px}.tlb.hit`);
    this.misses = c.counter(`${px}.tlb.miss`);
    this.fills = c.counter(`${px}.tlb.fill`);
    this.invalidates = c.counter(`${px}.tlb.invalidate`);
    this.flushes = c.counter(`${px}.tlb.flush`);
  }

  /** Total entries. */
  get capacity(): number {
    return this.tags.length;
  }

  /** Slot caching `va`, or -1. Does not count or touch LRU (for oracles and tests). */
  peek(va: number): number {
    const n = this.probeShift.length;
    const tags = this.tags;
    const shifts = this.shifts;
    for (let p = 0; p < n; p++) {
      const shift = this.probeShift[p]!;
      const ways = this.probeWays[p]!;
      const vpn = Math.floor(va * this.probeInv[p]!);
      const base = this.probeOffset[p]! + (vpn & this.probeSetMask[p]!) * ways;
      if (this.setFill[base] === 0) continue;
      const end = base + ways;
      for (let i = base; i < end; i++) {
        if (tags[i] === vpn && shifts[i] === shift) return i;
      }
    }
    return -1;
  }

  /** Looks `va` up: the slot on a hit (LRU updated, hit counted), -1 on a miss (counted). */
  lookup(va: number): number {
    const page = Math.floor(va / 4096);
    // the page number's low bits: `&` reads the low 32 bits of an integer below 2^53, which is all
    // the hash needs (`page % MEMO_SIZE` on a page number past 2^31 is a float modulo: 17 ns)
    const h = page & (MEMO_SIZE - 1);
    let i: number;
    if (this.memoPage[h] === page && this.memoGen[h] === this.gen) i = this.memoSlot[h]!;
    else {
      i = this.peek(va);
      this.memoPage[h] = page;
      this.memoSlot[h] = i;
      this.memoGen[h] = this.gen;
    }
    if (i >= 0) {
      this.stamps[i] = ++this.tick;
      this.hits.value++;
    } else {
      this.misses.value++;
    }
    return i;
  }

  /** Physical address of `va` through slot `i` (from {@link lookup}). */
  paOf(i: number, va: number): number {
    return this.pas[i]! + modPow2(va, pow2(this.shifts[i]!));
  }

  /**
   * Caches the translation of the page of 2^pageShift containing `va` (at the largest cached
   * size ≤ pageShift). `pa` is the physical address of `va` itself; `flags` are TLB_FLAG bits.
   */
  fill(va: number, pageShift: number, pa: number, flags: number, aperture: Aperture, peerId = 0): number {
    let p = -1;
    for (let k = 0; k < this.probeShift.length; k++) if (this.probeShift[k]! <= pageShift) p = k;
    if (p < 0) p = 0; // smaller than every cached size cannot happen for >= 4K pages
    const shift = this.probeShift[p]!;
    const bank = this.banks[this.probeBank[p]!]!;
    const vpn = Math.floor(va * this.probeInv[p]!);
    const base = bank.offset + (vpn & (bank.sets - 1)) * bank.ways;
    let victim = base;
    let oldest = Number.POSITIVE_INFINITY;
    for (let k = 0; k < bank.ways; k++) {
      const i = base + k;
      if (this.tags[i] === vpn && this.shifts[i] === shift) {
        victim = i;
        break;
      }
      if (this.tags[i] === -1) {
        victim = i;
        oldest = -1;
      } else if (this.stamps[i]! < oldest) {
        victim = i;
        oldest = this.stamps[i]!;
      }
    }
    const span = pow2(shift);
    this.gen++;
    if (this.tags[victim] === -1) this.setFill[base]!++;
    this.tags[victim] = vpn;
    this.shifts[victim] = shift;
    this.pas[victim] = pa - modPow2(va, span);
    this.flags[victim] = flags;
    this.apertures[victim] = aperture;
    this.peers[victim] = peerId;
    this.stamps[victim] = ++this.tick;
    this.fills.value++;
    return victim;
  }

  /** Drops every entry overlapping [start, start + size). Returns how many were dropped. No cost charged. */
  invalidateRange(start: number, size: number): number {
    const n = this.overlapping(start, start + size);
    const slots = this.overlapSlots;
    const tags = this.tags;
    this.gen++;
    for (let k = 0; k < n; k++) {
      const i = slots[k]!;
      tags[i] = -1;
      this.setFill[this.setOf[i]!]!--;
    }
    this.invalidates.value++;
    return n;
  }

  /**
   * The slots whose cached page overlaps `[start, end)`, into {@link overlapSlots} (valid until
   * the next call), in no particular order; returns how many. Per cached size it probes only the
   * sets the range's page numbers map to, or scans the size's array when the range has more
   * pages of that size than the array has sets.
   */
  overlapping(start: number, end: number): number {
    const out = this.overlapSlots;
    const tags = this.tags;
    const shifts = this.shifts;
    let n = 0;
    if (!(start < end)) return 0;
    for (let p = 0; p < this.probeShift.length; p++) {
      const shift = this.probeShift[p]!;
      const inv = this.probeInv[p]!;
      const ways = this.probeWays[p]!;
      const mask = this.probeSetMask[p]!;
      const offset = this.probeOffset[p]!;
      const vFirst = Math.floor(start * inv);
      const vLast = Math.floor((end - 1) * inv);
      if (vLast - vFirst > mask) {
        const bankEnd = offset + (mask + 1) * ways;
        for (let i = offset; i < bankEnd; i++) {
          const t = tags[i]!;
          if (t >= vFirst && t <= vLast && shifts[i] === shift) out[n++] = i;
        }
        continue;
      }
      for (let v = vFirst; v <= vLast; v++) {
        const base = offset + (v & mask) * ways;
        if (this.setFill[base] === 0) continue;
        for (let i = base; i < base + ways; i++) if (tags[i] === v && shifts[i] === shift) out[n++] = i;
      }
    }
    return n;
  }

  /** Drops every entry (full flush). No cost charged. */
  invalidateAll(): void {
    this.tags.fill(-1);
    this.setFill.fill(0);
    this.gen++;
    this.flushes.value++;
  }

  /**
   * Calls `fn(va, size, pa, flags)` for every cached translation (cold path: oracles, reports).
   * `va` and `pa` are the bases of the cached page.
   */
  forEachEntry(fn: (va: number, size: number, pa: number, flags: number) => void): void {
    for (let i = 0; i < this.tags.length; i++) {
      const t = this.tags[i]!;
      if (t < 0) continue;
      const span = pow2(this.shifts[i]!);
      fn(t * span, span, this.pas[i]!, this.flags[i]!);
    }
  }

  /** Number of valid entries. */
  get occupancy(): number {
    let n = 0;
    for (let i = 0; i < this.tags.length; i++) if (this.tags[i]! >= 0) n++;
    return n;
  }
}

/**
 * Models `uvm_tlb_batch_t` (uvm_tlb_batch.h): collect VA ranges to invalidate, then
 * {@link end} issues one invalidate per range, or a single full flush when more than
 * `maxRanges` (default `tlbBatchMaxRanges`) were collected. Each invalidate or flush is
 * charged `tlbInvalidateNs`.
 */
export class TlbBatch {
  readonly tlb: Tlb;
  readonly maxRanges: number;
  private readonly starts: Float64Array;
  private readonly sizes: Float64Array;
  private count = 0;
  private full = false;

  constructor(tlb: Tlb, maxRanges: number = tlb.sim.costs.tlbBatchMaxRanges) {
    if (!Number.isInteger(maxRanges) || maxRanges < 0) {
      throw new ArgumentError('TlbBatch', 'maxRanges', 'must be a non-negative integer', maxRanges);
    }
    this.tlb = tlb;
    this.maxRanges = maxRanges;
    this.starts = new Float64Array(maxRanges);
    this.sizes = new Float64Array(maxRanges);
  }

  /** Ranges collected so far (maxRanges + 1 once a full flush is due). */
  get pending(): number {
    return this.full ? this.maxRanges + 1 : this.count;
  }

  /** True once a full flush is due. */
  get needsFullFlush(): boolean {
    return this.full;
  }

  /** Models uvm_tlb_batch_invalidate(): adds a range. Adjacent or overlapping ranges are not merged. */
  invalidate(start: number, size: number): void {
    if (!Number.isSafeInteger(start) || start < 0 || !Number.isSafeInteger(size) || size <= 0) {
      throw new ArgumentError(
        'TlbBatch.invalidate',
        'start/size',
        'must be a non-negative start and a positive size',
        {
          start,
          size,
        },
      );
    }
    if (this.full) return;
    if (this.count === this.maxRanges) {
      this.full = true;
      return;
    }
    this.starts[this.count] = start;
    this.sizes[this.count] = size;
    this.count++;
  }

  /** Asks for a full flush regardless of the ranges. */
  invalidateAll(): void {
    this.full = true;
  }

  /**
   * Models uvm_tlb_batch_end(): issues the invalidates, charges them, resets the batch.
   * Returns the number of invalidate operations issued (0, 1 full flush, or one per range).
   */
  end(): number {
    const sim = this.tlb.sim;
    let ops = 0;
    if (this.full) {
      this.tlb.invalidateAll();
      ops = 1;
    } else {
      for (let i = 0; i < this.count; i++) this.tlb.invalidateRange(this.starts[i]!, this.sizes[i]!);
      ops = this.count;
    }
    if (ops > 0) sim.charge(ops * sim.costs.tlbInvalidateNs);
    this.count = 0;
    this.full = false;
    return ops;
  }
}
