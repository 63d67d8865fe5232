import { ArgumentError, Errno } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import { ATOMIC_ACCESS, AttrMap, needVramForAtomic, pteAtomicAllowed } from '../src/index.ts';

const { UNDEFINED, DEVICE, GLOBAL, CPU } = ATOMIC_ACCESS;

describe('xe_vma_need_vram_for_atomic (needVramForAtomic)', () => {
  it('discrete GPU: UNDEFINED, GLOBAL and DEVICE need VRAM, CPU refuses', () => {
    expect([UNDEFINED, DEVICE, GLOBAL, CPU].map((m) => needVramForAtomic(m, true, true))).toEqual([
      1,
      1,
      1,
      -Errno.EACCES,
    ]);
  });
  it('DEVICE with atomics on system memory needs no VRAM', () => {
    expect(needVramForAtomic(DEVICE, true, true, true)).toBe(0);
    expect(needVramForAtomic(GLOBAL, true, true, true)).toBe(1);
  });
  it('integrated GPU or a non-atomic access: never', () => {
    for (const m of [UNDEFINED, DEVICE, GLOBAL, CPU]) {
      expect(needVramForAtomic(m, false, true)).toBe(0);
      expect(needVramForAtomic(m, true, false)).toBe(0);
    }
  });
  it('PTE atomic-enable: VRAM yes (not under CPU), system memory only where no VRAM is needed', () => {
    expect(pteAtomicAllowed(GLOBAL, true, true)).toBe(true);
    expect(pteAtomicAllowed(GLOBAL, true, false)).toBe(false);
    expect(pteAtomicAllowed(CPU, true, true)).toBe(false);
    expect(pteAtomicAllowed(CPU, false, false)).toBe(true);
  });
});

describe('advise({ atomic, pat }): bad values are ArgumentErrors, nothing changed', () => {
  for (const [k, v] of [
    ['atomic', 5],
    ['atomic', -1],
    ['atomic', 1.5],
    ['pat', 256],
    ['pat', -1],
  ] as const) {
    it(`${k} = ${v}`, () => {
      const m = new AttrMap({ numDevices: 1 });
      m.advise(0, 0x10000, { atomic: GLOBAL, pat: 1 });
      const before = m.state;
      expect(() => m.advise(0, 0x2000, { [k]: v })).toThrow(ArgumentError);
      expect(m.state).toBe(before);
    });
  }
  it('values are kept per interval and compare', () => {
    const m = new AttrMap({ numDevices: 1 });
    m.advise(0, 0x4000, { atomic: DEVICE });
    m.advise(0x2000, 0x4000, { pat: 2 });
    expect(m.segments(0, 0x4000).map((s) => [s.attrs.atomic, s.attrs.pat ?? 0])).toEqual([
      [DEVICE, 0],
      [DEVICE, 2],
    ]);
  });
});
