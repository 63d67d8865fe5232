import { ArgumentError, Rng } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  CompiledField,
  compileFormat,
  FORMATS,
  type FormatDesc,
  nvMmuV2,
  nvMmuV2Desc,
  nvMmuV3,
  readBits,
  toyFormatDesc,
  writeBits,
} from '../src/index.ts';

/** Reference: the entry as one BigInt (test oracle only). */
function big(w: Uint32Array, words: number): bigint {
  let v = 0n;
  for (let i = words - 1; i >= 0; i--) v = (v << 32n) | BigInt(w[i]!);
  return v;
}

describe('bit fields across 32-bit halves', () => {
  it('readBits/writeBits agree with a BigInt reference for random fields and values', () => {
    const rng = new Rng(7);
    for (let iter = 0; iter < 2000; iter++) {
      const w = new Uint32Array(4);
      for (let i = 0; i < 4; i++) w[i] = rng.nextU32();
      const lo = rng.below(120);
      const width = 1 + rng.below(Math.min(53, 128 - lo));
      const hi = lo + width - 1;
      const value = Math.floor(rng.next() * 2 ** width);
      const before = big(w, 4);
      writeBits(w, 0, hi, lo, value);
      const mask = ((1n << BigInt(width)) - 1n) << BigInt(lo);
      const expected = (before & ~mask) | (BigInt(value) << BigInt(lo));
      expect(big(w, 4)).toBe(expected);
      expect(readBits(w, 0, hi, lo)).toBe(value);
      const f = new CompiledField('f', [hi, lo], 128);
      expect(f.read(w, 0)).toBe(value);
    }
  });

  it('rejects malformed fields', () => {
    expect(() => new CompiledField('x', [3, 4], 64)).toThrow(ArgumentError);
    expect(() => new CompiledField('x', [64, 0], 64)).toThrow(ArgumentError);
    expect(() => new CompiledField('x', [60, 0], 64)).toThrow(/53 bits/);
  });
});

describe('every preset layout: encode/decode round trip and bounds', () => {
  for (const fmt of Object.values(FORMATS)) {
    it(`${fmt.name}: each field round-trips at 0, max and a random value, and max+1 is rejected`, () => {
      const rng = new Rng(3);
      for (const level of fmt.levels) {
        const layouts = [level.fields, level.pte?.layout, level.bigPte?.layout].filter(
          (x) => x !== undefined,
        );
        for (const fields of layouts) {
          for (const f of Object.values(fields!)) {
            const words = f.hi >= 64 ? 4 : 2;
            for (const v of [0, f.max, Math.floor(rng.next() * f.max)]) {
              const w = new Uint32Array(4);
              for (let i = 0; i < words; i++) w[i] = rng.nextU32();
              const before = big(w, words);
              f.write(w, 0, v);
              expect(f.read(w, 0)).toBe(v);
              const mask = ((1n << BigInt(f.width)) - 1n) << BigInt(f.lo);
              expect(big(w, words) & ~mask).toBe(before & ~mask);
            }
            const w = new Uint32Array(4).fill(0xa5a5a5a5);
            expect(() => f.write(w, 0, f.max + 1)).toThrow(ArgumentError);
            expect(() => f.write(w, 0, -1)).toThrow(ArgumentError);
            expect(w).toEqual(new Uint32Array(4).fill(0xa5a5a5a5));
            expect(f.fits(f.max + 1)).toBe(false);
            expect(f.fits(-1)).toBe(false);
            expect(f.fits(0.5)).toBe(false);
          }
        }
      }
    });
  }

  it('field widths match dev_mmu.h / amdgpu_vm.h', () => {
    const pt2 = nvMmuV2.levels[4]!.pte!.layout;
    expect(pt2['addressVid']!.width).toBe(25); // 128 GiB reach
    expect(pt2['addressSys']!.width).toBe(46);
    const pt3 = nvMmuV3.levels[5]!.pte!.layout;
    expect(pt3['address']!.width).toBe(40);
    expect(pt3['pcf']!.width).toBe(5);
    const dual2 = nvMmuV2.levels[3]!.fields;
    expect(dual2['addressBigVid']!.width).toBe(29);
    expect(dual2['addressSmallVid']!.width).toBe(25);
    const amd = FORMATS['amd-gfx9']!;
    expect(amd.levels.map((l) => l.entries)).toEqual([512, 512, 512, 512]);
    expect(amd.levels[3]!.pte!.fragment!.width).toBe(5);
  });

  it('derives geometry: levels, entries, table sizes, page sizes', () => {
    expect(nvMmuV2.levels.map((l) => l.entries)).toEqual([4, 512, 512, 256, 512]);
    expect(nvMmuV2.levels.map((l) => l.tableBytes)).toEqual([4096, 4096, 4096, 4096, 4096]);
    expect(nvMmuV2.levels[3]!.bigEntries).toBe(32);
    expect(nvMmuV2.pageSizes).toEqual([4096, 65536, 2 ** 21, 2 ** 29]);
    expect(nvMmuV3.levels.map((l) => l.entries)).toEqual([2, 512, 512, 512, 256, 512]);
    expect(nvMmuV3.vaBits).toBe(57);
    expect(FORMATS['amd-gfx9']!.pageSizes).toContain(65536);
    expect(FORMATS['amd-gfx9']!.targets.get(16)!.fragment).toBe(4);
    expect(FORMATS['amd-gfx9']!.hasDualPde).toBe(false);
  });
});

describe('compileFormat validation', () => {
  it('rejects descriptors that break the rules, naming the part', () => {
    const bad = (d: Partial<FormatDesc>) => () => compileFormat({ ...nvMmuV2Desc, ...d });
    expect(bad({ vaBits: 48 })).toThrow(/vaHi/);
    expect(bad({ levels: [] })).toThrow(ArgumentError);
    const lv = [...toyFormatDesc.levels];
    lv[1] = { ...lv[1]!, vaHi: 19 };
    expect(() => compileFormat({ ...toyFormatDesc, levels: lv })).toThrow(/continue/);
    const lv2 = [...toyFormatDesc.levels];
    lv2[1] = { ...lv2[1]!, pte: { ...lv2[1]!.pte!, valid: { nope: 1 } } };
    expect(() => compileFormat({ ...toyFormatDesc, levels: lv2 })).toThrow(/unknown field 'nope'/);
  });
});
