import { ArgumentError } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  chooseGranule,
  type FaultContextInit,
  type GranuleChoice,
  isGranuleError,
  makeFaultContext,
  pageMaskFill,
  pageMaskNew,
  pageMaskSet,
  pageMaskToArray,
  SZ_2M,
  type UvmSmartPrefetcher,
  uvmSmartPrefetcher,
} from '../src/index.ts';

const K4 = 4096;
const block = 0x40000000;
const vma = { vmaStart: block, vmaEnd: block + 2 * SZ_2M };
const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);

function pages(name: UvmSmartPrefetcher, init: Omit<FaultContextInit, 'vmaStart' | 'vmaEnd'>): number[] {
  const r = chooseGranule(
    uvmSmartPrefetcher(name),
    makeFaultContext({ ...vma, residentAnywhere: true, ...init }),
  );
  if (isGranuleError(r)) throw new Error(`error ${r.error}`);
  return pageMaskToArray((r as GranuleChoice).pages!);
}

describe('UVMSmart prefetchers (ISCA’19)', () => {
  it('on-demand fetches only the faulted 4K pages', () => {
    const faulted = pageMaskNew();
    pageMaskSet(faulted, 3);
    pageMaskSet(faulted, 200);
    expect(pages('on-demand', { va: block + 3 * K4, faulted })).toEqual([3, 200]);
  });

  it('sequential-local fetches the 64K basic block around each faulted page', () => {
    const faulted = pageMaskNew();
    pageMaskSet(faulted, 17);
    pageMaskSet(faulted, 100);
    expect(pages('sequential-local-64k', { va: block + 17 * K4, faulted })).toEqual([
      ...range(16, 32),
      ...range(96, 112),
    ]);
  });

  it('random fetches one extra page of the same block per fault, deterministic per address', () => {
    const a = pages('random-4k', { va: block + 5 * K4 });
    expect(a).toContain(5);
    expect(a.length).toBeLessThanOrEqual(2);
    expect(a.every((p) => p >= 0 && p < 512)).toBe(true);
    expect(pages('random-4k', { va: block + 5 * K4 })).toEqual(a);
    // different faults pick different pages (not always the same neighbour)
    const extras = new Set<number>();
    for (let p = 0; p < 64; p++)
      for (const q of pages('random-4k', { va: block + p * K4 })) if (q !== p) extras.add(q);
    expect(extras.size).toBeGreaterThan(32);
  });

  it('tree-neighbourhood: a sequential stream fills a block in 6 faults (64K, 64K, 128K, 256K, 512K, 1M)', () => {
    const residency = pageMaskNew();
    const fetched: number[] = [];
    for (const fp of [0, 16, 32, 64, 128, 256]) {
      const got = pages('tree-neighbourhood', { va: block + fp * K4, residency });
      fetched.push(got.length);
      for (const q of got) pageMaskSet(residency, q);
    }
    // leaf 0; leaf 1 (128K full: nothing more); leaf 2 → 3/4 of 256K → leaf 3; leaf 4 → 5/8 → 4–7; ...
    expect(fetched.map((n) => n * K4)).toEqual([0x10000, 0x10000, 0x20000, 0x40000, 0x80000, 0x100000]);
  });

  it('tree-neighbourhood prefetches nothing resident or past the range, and never thrashing pages', () => {
    const residency = pageMaskNew();
    pageMaskFill(residency, 0, 48); // leaves 0–2 valid; a fault in leaf 3 fills the 256K node: nothing new
    expect(pages('tree-neighbourhood', { va: block + 48 * K4, residency })).toEqual(range(48, 64));
    const thrashing = pageMaskNew();
    pageMaskSet(thrashing, 60);
    const got = pages('sequential-local-64k', { va: block + 48 * K4, thrashing });
    expect(got).toEqual(range(48, 64).filter((p) => p !== 60));
    // a VMA ending mid-block bounds the prefetch
    const r = chooseGranule(
      uvmSmartPrefetcher('sequential-local-64k'),
      makeFaultContext({ va: block, vmaStart: block, vmaEnd: block + 8 * K4, residentAnywhere: true }),
    );
    expect(pageMaskToArray((r as GranuleChoice).pages!)).toEqual(range(0, 8));
  });

  it('rejects an unknown name', () => {
    expect(() => uvmSmartPrefetcher('nope' as UvmSmartPrefetcher)).toThrow(ArgumentError);
  });
});
