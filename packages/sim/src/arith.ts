/**
 * Integer arithmetic on addresses and page numbers, which are plain numbers up to 2^53.
 *
 * `x % m` on a number past 2^31 is a floating-point remainder: V8 calls fmod() for it, about
 * 17 ns, where the same result from a division by a power of two, a floor and a multiply takes
 * under 1 ns. Hot paths (every GPU access, every page of a migration) use {@link modPow2}.
 * Likewise `2 ** k` with a variable `k` is a call of pow(), about 46 ns: they use {@link pow2}.
 *
 * @module
 */

/**
 * `x % m` for `x ≥ 0` and `m` a power of two (both integers below 2^53): exact, because dividing
 * and multiplying by a power of two are exact in floating point.
 */
export function modPow2(x: number, m: number): number {
  return x - Math.floor(x / m) * m;
}

const POW2 = Float64Array.from({ length: 64 }, (_, i) => 2 ** i);

/** 2^k: a table read for the integers 0..63 (exact), `2 ** k` (a pow() call) for any other k. */
export function pow2(k: number): number {
  return POW2[k] ?? 2 ** k;
}
