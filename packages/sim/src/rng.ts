/**
 * A small seeded PRNG (xoshiro128**, 32-bit state words) for every random choice in a
 * simulation: scheduler interleavings and workload generators. Same seed, same stream.
 *
 * @module
 */

/** Seeded pseudo-random generator. Not cryptographic; fast and reproducible. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    // splitmix32 expands the seed into four non-zero words.
    let s = (Math.trunc(seed) ^ 0x9e3779b9) >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next() | 1;
  }

  /** A uniform 32-bit unsigned integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result;
  }

  /** A uniform float in [0, 1). */
  next(): number {
    return this.nextU32() / 4294967296;
  }

  /** A uniform integer in [0, n) for 0 < n <= 2^32. */
  below(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** A uniform integer in [lo, hi] (inclusive). */
  between(lo: number, hi: number): number {
    return lo + this.below(hi - lo + 1);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
