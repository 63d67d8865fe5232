import { describe, expect, it } from 'vitest';
import { modPow2 } from '../src/index.ts';

describe('modPow2', () => {
  it('equals % for non-negative integers up to 2^53 and powers of two up to 2^52', () => {
    const xs = [0, 1, 4095, 4096, 4097, 2 ** 31 - 1, 2 ** 31, 2 ** 32 + 5, 0x7fff_ffff_f123, 2 ** 53 - 1];
    for (let k = 0; k <= 52; k++) {
      const m = 2 ** k;
      for (const x of xs) expect(modPow2(x, m)).toBe(x % m);
    }
  });
});
