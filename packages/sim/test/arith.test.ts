import { describe, expect, it } from 'vitest';
import { modPow2, pow2 } from '../src/index.ts';

describe('modPow2', () => {
  it('equals % for non-negative integers up to 2^53 and powers of two up to 2^52', () => {
    const xs = [0, 1, 4095, 4096, 4097, 2 ** 31 - 1, 2 ** 31, 2 ** 32 + 5, 0x7fff_ffff_f123, 2 ** 53 - 1];
    for (let k = 0; k <= 52; k++) {
      const m = 2 ** k;
      for (const x of xs) expect(modPow2(x, m)).toBe(x % m);
    }
  });
});

describe('pow2', () => {
  it('equals 2 ** k for integers in and out of its table, and for fractions', () => {
    for (let k = -70; k <= 1030; k++) expect(pow2(k)).toBe(2 ** k);
    expect(pow2(1.5)).toBe(2 ** 1.5);
  });
});
