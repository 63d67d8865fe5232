import { ArgumentError, Errno } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  alignDown,
  amdkfdPolicy,
  chooseGranule,
  DEFAULT_ATTRS,
  deviceLoc,
  drmGpusvmPolicy,
  type FaultContextInit,
  type GranuleChoice,
  type GranulePolicy,
  type GranuleResult,
  isGranuleError,
  LOC,
  makeFaultContext,
  nouveauPolicy,
  type PageMask,
  pageMaskFill,
  pageMaskNew,
  pageMaskSet,
  pageMaskToArray,
  pageMaskWeight,
  rangesFromSpans,
  SZ_2M,
  SZ_64K,
  uvmTreePolicy,
  wholeVmaPolicy,
} from '../src/index.ts';

const K4 = 4096;

function choose(policy: GranulePolicy, init: FaultContextInit): GranuleChoice {
  const r = chooseGranule(policy, makeFaultContext(init));
  if (isGranuleError(r)) throw new Error(`unexpected error ${r.error}`);
  return r;
}

function span(r: GranuleResult): [number, number, number, number] {
  if (isGranuleError(r)) return [r.error, 0, 0, 0];
  return [r.start, r.end, r.faultStart, r.faultEnd];
}

describe('drm_gpusvm chunk policy', () => {
  const p = drmGpusvmPolicy();

  it('takes the 2M chunk when it fits the VMA', () => {
    const r = choose(p, { va: 0x10234567, vmaStart: 0x10000000, vmaEnd: 0x10400000 });
    expect(span(r)).toEqual([0x10200000, 0x10400000, 0x10200000, 0x10400000]);
    expect(r.pages).toBeNull();
  });

  it('falls to 64K when the 2M block leaves the VMA, and to 4K when 64K does too', () => {
    expect(span(choose(p, { va: 0x10012345, vmaStart: 0x10010000, vmaEnd: 0x10110000 }))).toEqual([
      0x10010000, 0x10020000, 0x10010000, 0x10020000,
    ]);
    expect(span(choose(p, { va: 0x10003000, vmaStart: 0x10001000, vmaEnd: 0x10005000 }))).toEqual([
      0x10003000, 0x10004000, 0x10003000, 0x10004000,
    ]);
  });

  it('respects the notifier window', () => {
    const r = choose(p, {
      va: 0x1ff80000,
      vmaStart: 0x1ff00000,
      vmaEnd: 0x20100000,
      windowStart: 0,
      windowEnd: 0x20000000,
    });
    expect(span(r)).toEqual([0x1fe00000 + 0x180000, 0x1ff90000, 0x1ff80000, 0x1ff90000]);
  });

  it('skips a chunk that overlaps an existing range (overlap rule), but never for 4K', () => {
    const ranges = rangesFromSpans([{ start: 0x10000000, end: 0x10010000 }]);
    const r = choose(p, { va: 0x10100000, vmaStart: 0x10000000, vmaEnd: 0x10400000, ranges });
    expect(span(r)).toEqual([0x10100000, 0x10110000, 0x10100000, 0x10110000]);
    // every 64K block around is covered by 4K ranges except the faulting page
    const r2 = choose(p, {
      va: 0x10001000,
      vmaStart: 0x10000000,
      vmaEnd: 0x10400000,
      ranges: rangesFromSpans([{ start: 0x10000000, end: 0x10001000 }]),
    });
    expect(span(r2)).toEqual([0x10001000, 0x10002000, 0x10001000, 0x10002000]);
  });

  it('returns the existing range containing the address', () => {
    const ranges = rangesFromSpans([{ start: 0x10200000, end: 0x10400000 }]);
    const r = choose(p, { va: 0x10300000, vmaStart: 0x10000000, vmaEnd: 0x10400000, ranges });
    expect(span(r)).toEqual([0x10200000, 0x10400000, 0x10200000, 0x10400000]);
  });

  it('consults check-pages only for chunks within the threshold and not for 4K', () => {
    const calls: [number, number][] = [];
    const checkPages = (s: number, e: number): boolean => {
      calls.push([s, e]);
      return false;
    };
    // 2M does not fit (VMA of 1 MiB), 64K fails the snapshot, 4K is taken unchecked.
    const r = choose(p, { va: 0x10012345, vmaStart: 0x10000000, vmaEnd: 0x10100000, checkPages });
    expect(span(r)).toEqual([0x10012000, 0x10013000, 0x10012000, 0x10013000]);
    expect(calls).toEqual([[0x10010000, 0x10020000]]);
    // 2M is above the 64K threshold: no snapshot
    calls.length = 0;
    choose(p, { va: 0x10012345, vmaStart: 0x10000000, vmaEnd: 0x10200000, checkPages });
    expect(calls).toEqual([]);
    // a passing snapshot keeps 64K
    const ok = choose(p, {
      va: 0x10012345,
      vmaStart: 0x10000000,
      vmaEnd: 0x10100000,
      checkPages: () => true,
    });
    expect(span(ok)).toEqual([0x10010000, 0x10020000, 0x10010000, 0x10020000]);
  });

  it('returns -EINVAL when no chunk fits the GPU VA range', () => {
    const r = chooseGranule(
      p,
      makeFaultContext({ va: 0x10003000, vmaStart: 0x10000000, vmaEnd: 0x10400000, gpuvaEnd: 0x10003000 }),
    );
    expect(r).toEqual({ error: -Errno.EINVAL });
  });

  it('validates its options', () => {
    expect(() => drmGpusvmPolicy({ chunkSizes: [SZ_2M, SZ_64K] })).toThrow(ArgumentError);
    expect(() => drmGpusvmPolicy({ chunkSizes: [SZ_64K, SZ_2M, K4] })).toThrow(ArgumentError);
    expect(() => drmGpusvmPolicy({ chunkSizes: [0x30000, K4] })).toThrow(ArgumentError);
    expect(() => drmGpusvmPolicy({ checkPagesThreshold: -1 })).toThrow(ArgumentError);
    // custom sizes work
    const q = drmGpusvmPolicy({ chunkSizes: [0x8000, K4] });
    expect(span(choose(q, { va: 0x10009000, vmaStart: 0x10000000, vmaEnd: 0x10400000 }))).toEqual([
      0x10008000, 0x10010000, 0x10008000, 0x10010000,
    ]);
  });
});

describe('amdkfd granule policy', () => {
  const p = amdkfdPolicy();
  const vma = { vmaStart: 0x10100000, vmaEnd: 0x10500000 };

  it('takes the 2^9-page aligned block, clipped to the VMA', () => {
    expect(span(choose(p, { va: 0x10345000, ...vma }))).toEqual([
      0x10200000, 0x10400000, 0x10200000, 0x10400000,
    ]);
    expect(span(choose(p, { va: 0x10123000, ...vma }))).toEqual([
      0x10100000, 0x10200000, 0x10100000, 0x10200000,
    ]);
  });

  it('clips to the neighbouring ranges', () => {
    const ranges = rangesFromSpans([
      { start: 0x10200000, end: 0x10210000 },
      { start: 0x10380000, end: 0x10390000 },
    ]);
    expect(span(choose(p, { va: 0x10300000, ...vma, ranges }))).toEqual([
      0x10210000, 0x10380000, 0x10210000, 0x10380000,
    ]);
  });

  it('uses the granularity attribute; an existing range keeps its bounds and migrates the granule', () => {
    const attrs = { ...DEFAULT_ATTRS, granularity: 4 };
    expect(span(choose(p, { va: 0x10345000, ...vma, attrs }))).toEqual([
      0x10340000, 0x10350000, 0x10340000, 0x10350000,
    ]);
    const ranges = rangesFromSpans([{ start: 0x10100000, end: 0x10500000 }]);
    expect(span(choose(p, { va: 0x10345000, ...vma, attrs, ranges }))).toEqual([
      0x10100000, 0x10500000, 0x10340000, 0x10350000,
    ]);
    const one = { ...DEFAULT_ATTRS, granularity: 0 };
    expect(span(choose(p, { va: 0x10345678, ...vma, attrs: one }))).toEqual([
      0x10345000, 0x10346000, 0x10345000, 0x10346000,
    ]);
    // a fixed policy ignores the attribute
    const fixed = amdkfdPolicy({ useAttrGranularity: false, defaultGranularity: 4 });
    expect(span(choose(fixed, { va: 0x10345000, ...vma }))).toEqual([
      0x10340000, 0x10350000, 0x10340000, 0x10350000,
    ]);
    expect(() => amdkfdPolicy({ defaultGranularity: 64 })).toThrow(ArgumentError);
  });
});

describe('nouveau policy', () => {
  const p = nouveauPolicy();
  it('faults one page at CPU map order 0', () => {
    expect(span(choose(p, { va: 0x10345678, vmaStart: 0x10000000, vmaEnd: 0x10400000 }))).toEqual([
      0x10345000, 0x10346000, 0x10345000, 0x10346000,
    ]);
  });
  it('widens to the CPU map order', () => {
    expect(
      span(choose(p, { va: 0x10345678, vmaStart: 0x10000000, vmaEnd: 0x10400000, cpuMapOrder: 9 })),
    ).toEqual([0x10200000, 0x10400000, 0x10200000, 0x10400000]);
    expect(
      span(choose(p, { va: 0x10345678, vmaStart: 0x10000000, vmaEnd: 0x10400000, cpuMapOrder: 4 })),
    ).toEqual([0x10340000, 0x10350000, 0x10340000, 0x10350000]);
  });
  it('falls back to one page when the widened window hits a range', () => {
    const ranges = rangesFromSpans([{ start: 0x10200000, end: 0x10201000 }]);
    expect(
      span(choose(p, { va: 0x10345678, vmaStart: 0x10000000, vmaEnd: 0x10400000, cpuMapOrder: 9, ranges })),
    ).toEqual([0x10345000, 0x10346000, 0x10345000, 0x10346000]);
  });
});

describe('whole-VMA policy', () => {
  it('takes the VMA clipped to the window and neighbours', () => {
    const p = wholeVmaPolicy();
    expect(span(choose(p, { va: 0x10345678, vmaStart: 0x10001000, vmaEnd: 0x10401000 }))).toEqual([
      0x10001000, 0x10401000, 0x10001000, 0x10401000,
    ]);
    const ranges = rangesFromSpans([{ start: 0x10100000, end: 0x10200000 }]);
    expect(
      span(
        choose(p, {
          va: 0x10345678,
          vmaStart: 0x10001000,
          vmaEnd: 0x10401000,
          ranges,
          windowEnd: 0x10400000,
        }),
      ),
    ).toEqual([0x10200000, 0x10400000, 0x10200000, 0x10400000]);
  });
});

describe('UVM tree prefetcher', () => {
  const p = uvmTreePolicy();
  const block = 0x40000000;
  const vma = { vmaStart: block, vmaEnd: block + 2 * SZ_2M };
  const pagesOf = (r: GranuleChoice): number[] => pageMaskToArray(r.pages!);
  const rangeArr = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);

  it('streams through an empty block in 6 fault rounds with doubling fetch sizes (§1.3)', () => {
    const residency = pageMaskNew();
    const faultPages = [0, 16, 32, 64, 128, 256];
    const fetched: number[] = [];
    for (const fp of faultPages) {
      const r = choose(p, { va: block + fp * K4, ...vma, residency, residentAnywhere: true });
      expect(r.start).toBe(block);
      expect(r.end).toBe(block + SZ_2M);
      const pages = pagesOf(r);
      expect(pages[0]).toBe(fp);
      expect(pages).toEqual(rangeArr(fp, fp + pages.length));
      fetched.push(pages.length * K4);
      for (const q of pages) pageMaskSet(residency, q);
    }
    expect(fetched).toEqual([SZ_64K, SZ_64K, 0x20000, 0x40000, 0x80000, 0x100000]);
    expect(pageMaskWeight(residency)).toBe(512);
  });

  it('fills the block on first touch at the preferred location', () => {
    const attrs = { ...DEFAULT_ATTRS, preferredLoc: deviceLoc(0) };
    const r = choose(p, { va: block + 0x5000, ...vma, attrs, destination: deviceLoc(0) });
    expect(pageMaskWeight(r.pages!)).toBe(512);
    expect([r.faultStart, r.faultEnd]).toEqual([block, block + SZ_2M]);
    // not a first touch: back to the tree (64K growth)
    const r2 = choose(p, {
      va: block + 0x5000,
      ...vma,
      attrs,
      destination: deviceLoc(0),
      residentAnywhere: true,
    });
    expect(pagesOf(r2)).toEqual(rangeArr(0, 16));
  });

  it('does not prefetch away from the preferred location', () => {
    const attrs = { ...DEFAULT_ATTRS, preferredLoc: LOC.SYSMEM };
    const r = choose(p, {
      va: block + 0x5000,
      ...vma,
      attrs,
      destination: deviceLoc(0),
      residentAnywhere: true,
    });
    expect(pagesOf(r)).toEqual([5]);
    expect([r.faultStart, r.faultEnd]).toEqual([block + 0x5000, block + 0x6000]);
  });

  it('honours min_faults', () => {
    const q = uvmTreePolicy({ minFaults: 2 });
    expect(pagesOf(choose(q, { va: block, ...vma, residentAnywhere: true }))).toEqual([0]);
    expect(pagesOf(choose(q, { va: block, ...vma, residentAnywhere: true, faultMigrations: 1 }))).toEqual(
      rangeArr(0, 16),
    );
  });

  it('never grows or prefetches thrashing pages', () => {
    const thrashing = pageMaskNew();
    pageMaskSet(thrashing, 5);
    const r = choose(p, { va: block, ...vma, residentAnywhere: true, thrashing });
    expect(pagesOf(r)).toEqual([0]);
  });

  it('handles several faulted pages and picks the largest qualifying node per fault', () => {
    const faulted = pageMaskNew();
    pageMaskSet(faulted, 0);
    pageMaskSet(faulted, 40);
    const r = choose(p, { va: block, ...vma, residentAnywhere: true, faulted });
    expect(pagesOf(r)).toEqual([...rangeArr(0, 16), ...rangeArr(32, 48)]);
    expect([r.faultStart, r.faultEnd]).toEqual([block, block + 48 * K4]);
    // with 3/4 of the first 256K resident, a fault in the last quarter fetches the whole 256K node
    const residency: PageMask = pageMaskNew();
    pageMaskFill(residency, 0, 40);
    const r2 = choose(p, { va: block + 60 * K4, ...vma, residentAnywhere: true, residency });
    expect(pagesOf(r2)).toEqual(rangeArr(40, 64));
  });

  it('clamps to block ∩ VMA and aligns an unaligned VMA start to big pages with ghost leaves', () => {
    const r = choose(p, {
      va: block + 8 * K4,
      vmaStart: block + 8 * K4,
      vmaEnd: block + SZ_2M,
      residentAnywhere: true,
    });
    expect([r.start, r.end]).toEqual([block + 8 * K4, block + SZ_2M]);
    expect(pagesOf(r)).toEqual(rangeArr(8, 16));
    // a VMA ending mid-block: first touch fills only block ∩ VMA
    const attrs = { ...DEFAULT_ATTRS, preferredLoc: deviceLoc(0) };
    const r2 = choose(p, {
      va: block,
      vmaStart: block,
      vmaEnd: block + 100 * K4,
      attrs,
      destination: deviceLoc(0),
    });
    expect(pagesOf(r2)).toEqual(rangeArr(0, 100));
  });

  it('can be disabled and validates its options', () => {
    const off = uvmTreePolicy({ enable: false });
    expect(pagesOf(choose(off, { va: block + 0x3000, ...vma, residentAnywhere: true }))).toEqual([3]);
    expect(() => uvmTreePolicy({ threshold: 0 })).toThrow(ArgumentError);
    expect(() => uvmTreePolicy({ minFaults: 21 })).toThrow(ArgumentError);
    expect(() => uvmTreePolicy({ bigPageSize: 0x1000 })).toThrow(ArgumentError);
  });
});

describe('chooseGranule contract checks', () => {
  it('rejects a bad context before calling the policy', () => {
    let called = 0;
    const spy: GranulePolicy = {
      name: 'spy',
      choose: (ctx) => {
        called++;
        return { start: ctx.va, end: ctx.va + K4, faultStart: ctx.va, faultEnd: ctx.va + K4, pages: null };
      },
    };
    expect(() =>
      chooseGranule(spy, makeFaultContext({ va: 0x5000, vmaStart: 0x6000, vmaEnd: 0x8000 })),
    ).toThrow(ArgumentError);
    expect(() => chooseGranule(spy, makeFaultContext({ va: -1, vmaStart: 0, vmaEnd: 0x8000 }))).toThrow(
      ArgumentError,
    );
    expect(called).toBe(0);
  });

  it('rejects a user policy whose answer breaks the contract', () => {
    const bad: GranulePolicy = {
      name: 'bad',
      choose: (ctx) => ({
        start: ctx.vmaStart - K4,
        end: ctx.vmaEnd,
        faultStart: ctx.va,
        faultEnd: ctx.va + K4,
        pages: null,
      }),
    };
    expect(() =>
      chooseGranule(bad, makeFaultContext({ va: 0x7000, vmaStart: 0x6000, vmaEnd: 0x8000 })),
    ).toThrow(/granule contract/);
    const overlap: GranulePolicy = {
      name: 'overlap',
      choose: (ctx) => ({
        start: ctx.vmaStart,
        end: ctx.vmaEnd,
        faultStart: 0x7000,
        faultEnd: 0x8000,
        pages: null,
      }),
    };
    const ranges = rangesFromSpans([{ start: 0x6000, end: 0x7000 }]);
    expect(() =>
      chooseGranule(overlap, makeFaultContext({ va: 0x7000, vmaStart: 0x6000, vmaEnd: 0x8000, ranges })),
    ).toThrow(/overlaps/);
  });

  it('rangesFromSpans answers neighbour queries and rejects overlaps', () => {
    const r = rangesFromSpans([
      { start: 0x3000, end: 0x5000 },
      { start: 0x1000, end: 0x2000 },
    ]);
    expect(r.containing(0x3000)).toEqual({ start: 0x3000, end: 0x5000 });
    expect(r.containing(0x2000)).toBeNull();
    expect(r.overlaps(0x2000, 0x3000)).toBe(false);
    expect(r.overlaps(0x2000, 0x3001)).toBe(true);
    expect(r.overlaps(0x0, 0x1001)).toBe(true);
    expect(r.prevEnd(0x2800)).toBe(0x2000);
    expect(r.prevEnd(0x4000)).toBe(0x2000);
    expect(r.prevEnd(0x800)).toBe(0);
    expect(r.nextStart(0x2800)).toBe(0x3000);
    expect(r.nextStart(0x3000)).toBe(Number.POSITIVE_INFINITY);
    expect(() =>
      rangesFromSpans([
        { start: 0, end: 0x2000 },
        { start: 0x1000, end: 0x3000 },
      ]),
    ).toThrow(ArgumentError);
  });
});

describe('a user-written policy (README example)', () => {
  const window256k: GranulePolicy = {
    name: 'window-256k',
    choose(ctx) {
      const hit = ctx.ranges.containing(ctx.va);
      if (hit)
        return { start: hit.start, end: hit.end, faultStart: hit.start, faultEnd: hit.end, pages: null };
      const s = alignDown(ctx.va, 0x40000);
      const start = Math.max(s, ctx.vmaStart, ctx.windowStart, ctx.gpuvaStart, ctx.ranges.prevEnd(ctx.va));
      const end = Math.min(
        s + 0x40000,
        ctx.vmaEnd,
        ctx.windowEnd,
        ctx.gpuvaEnd,
        ctx.ranges.nextStart(ctx.va),
      );
      return { start, end, faultStart: start, faultEnd: end, pages: null };
    },
  };
  it('passes the contract checks on hand-computed cases', () => {
    expect(span(choose(window256k, { va: 0x10045000, vmaStart: 0x10000000, vmaEnd: 0x10400000 }))).toEqual([
      0x10040000, 0x10080000, 0x10040000, 0x10080000,
    ]);
    const ranges = rangesFromSpans([{ start: 0x10050000, end: 0x10060000 }]);
    expect(
      span(choose(window256k, { va: 0x10045000, vmaStart: 0x10044000, vmaEnd: 0x10400000, ranges })),
    ).toEqual([0x10044000, 0x10050000, 0x10044000, 0x10050000]);
  });
});
