/**
 * Thrashing detection after NVIDIA UVM's `uvm_perf_thrashing.c`, reduced to what a policy needs:
 * per 4 KiB page, migrations closer together than `lapse` count as thrashing events; at
 * `threshold` consecutive events the page is pinned where it is for `pin` (other processors map
 * it remotely instead of migrating it), and a gap longer than `lapse` resets the count. State is
 * kept per 2 MiB block in typed arrays (one Map entry per block touched, none per page).
 *
 * @module
 */
import { ArgumentError } from '@hmmkit/sim';
import { PAGES_PER_BLOCK, type PageMask } from './page-mask.ts';

/** Parameters (UVM module parameters, in ns). */
export interface ThrashingParams {
  /** `uvm_perf_thrashing_threshold` (3, max 7): consecutive events that make a page thrashing. */
  readonly threshold: number;
  /** `uvm_perf_thrashing_lapse_usec` (500 µs): two events closer than this count. */
  readonly lapseNs: number;
  /** `uvm_perf_thrashing_pin` × lapse (300 × 500 µs = 150 ms): how long a page stays pinned. */
  readonly pinNs: number;
}

/** UVM's defaults. */
export const UVM_THRASHING_DEFAULTS: ThrashingParams = Object.freeze({
  threshold: 3,
  lapseNs: 500_000,
  pinNs: 150_000_000,
});

const BLOCK = 0x200000;

/** Per-page thrashing state of one address space. */
export class ThrashingDetector {
  readonly params: ThrashingParams;
  private readonly slots = new Map<number, number>();
  private last = new Float64Array(0);
  private count = new Uint8Array(0);
  private pinnedUntil = new Float64Array(0);
  /** Pages that became pinned. */
  pins = 0;

  constructor(params: Partial<ThrashingParams> = {}) {
    const p = { ...UVM_THRASHING_DEFAULTS, ...params };
    if (!Number.isInteger(p.threshold) || p.threshold < 1 || p.threshold > 7) {
      throw new ArgumentError('ThrashingDetector', 'threshold', 'must be an integer in [1, 7]', p.threshold);
    }
    if (!(p.lapseNs > 0) || !Number.isFinite(p.lapseNs)) {
      throw new ArgumentError('ThrashingDetector', 'lapseNs', 'must be a positive number', p.lapseNs);
    }
    if (!(p.pinNs >= 0) || !Number.isFinite(p.pinNs)) {
      throw new ArgumentError('ThrashingDetector', 'pinNs', 'must be a non-negative number', p.pinNs);
    }
    this.params = p;
  }

  private slot(va: number, create: boolean): number {
    const b = Math.floor(va / BLOCK);
    let s = this.slots.get(b);
    if (s === undefined) {
      if (!create) return -1;
      s = this.slots.size;
      this.slots.set(b, s);
      const n = (s + 1) * PAGES_PER_BLOCK;
      if (n > this.last.length) {
        const cap = Math.max(n, this.last.length * 2);
        const l = new Float64Array(cap).fill(Number.NEGATIVE_INFINITY);
        l.set(this.last);
        const c = new Uint8Array(cap);
        c.set(this.count);
        const p = new Float64Array(cap);
        p.set(this.pinnedUntil);
        this.last = l;
        this.count = c;
        this.pinnedUntil = p;
      }
    }
    return s * PAGES_PER_BLOCK + (Math.floor(va / 4096) % PAGES_PER_BLOCK);
  }

  /** Records a fault-driven migration of the page at `va` at time `now`; true if it is now pinned. */
  recordMigration(va: number, now: number): boolean {
    const i = this.slot(va, true);
    if (this.pinnedUntil[i]! > now) return true;
    const gap = now - this.last[i]!;
    this.last[i] = now;
    if (gap < this.params.lapseNs) {
      const c = Math.min(this.count[i]! + 1, 7);
      this.count[i] = c;
      if (c >= this.params.threshold) {
        this.pinnedUntil[i] = now + this.params.pinNs;
        this.count[i] = 0;
        this.pins++;
        return true;
      }
    } else {
      this.count[i] = 0;
    }
    return false;
  }

  /** Whether the page at `va` is pinned (thrashing) at `now`. */
  isThrashing(va: number, now: number): boolean {
    const i = this.slot(va, false);
    return i >= 0 && this.pinnedUntil[i]! > now;
  }

  /** Fills `out` with the thrashing pages of the 2 MiB block at `blockStart`; false if none. */
  blockMask(blockStart: number, now: number, out: PageMask): boolean {
    out.fill(0);
    const s = this.slot(blockStart, false);
    if (s < 0) return false;
    let any = false;
    for (let k = 0; k < PAGES_PER_BLOCK; k++) {
      if (this.pinnedUntil[s + k]! > now) {
        out[k >> 5] = out[k >> 5]! | (1 << (k & 31));
        any = true;
      }
    }
    return any;
  }
}
