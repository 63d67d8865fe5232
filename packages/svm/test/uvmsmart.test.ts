import { ArgumentError } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  chooseGranule,
  type EvictionView,
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
  uvmSmartEviction,
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

/** A pool of `chunks` chunks; `used[c]` = list of used page indices of chunk c. */
function view(
  used: number[][],
  lastUse: number[],
  uses: number[],
  alloc: number[],
  pageUse: (c: number, p: number) => number = (c) => lastUse[c]!,
): EvictionView {
  const chunks = used.length;
  const rmapVa1 = new Float64Array(chunks * 512);
  const pageLastUseNs = new Float64Array(chunks * 512);
  const chunkUsed = new Int32Array(chunks);
  used.forEach((ps, c) => {
    for (const p of ps) {
      rmapVa1[c * 512 + p] = block + (c * 512 + p) * K4 + 1;
      pageLastUseNs[c * 512 + p] = pageUse(c, p);
    }
    chunkUsed[c] = ps.length;
  });
  return {
    devIndex: 0,
    now: 1e6,
    chunks,
    chunkUsed,
    chunkAllocStamp: Float64Array.from(alloc),
    chunkLastUseNs: Float64Array.from(lastUse),
    chunkUses: Float64Array.from(uses),
    rmapVa1,
    pageLastUseNs,
  };
}

describe('UVMSmart eviction policies', () => {
  const full = range(0, 512);
  const v = view([full, full, [], full], [300, 100, 0, 200], [1, 9, 0, 5], [1, 2, 3, 4]);

  it('lru-2m evicts the least recently used chunk whole; lfu-2m the least used', () => {
    expect(uvmSmartEviction('lru-2m').pickVictim(v, 1)).toEqual({ chunk: 1 });
    expect(uvmSmartEviction('lfu-2m').pickVictim(v, 1)).toEqual({ chunk: 0 });
    expect(uvmSmartEviction('lru-2m').pickVictim(view([[], []], [0, 0], [0, 0], [0, 0]), 1)).toBeNull();
  });

  it('random-4k evicts one used page, different ones over calls', () => {
    const p = uvmSmartEviction('random-4k', 7);
    const seen = new Set<string>();
    for (let k = 0; k < 20; k++) {
      const r = p.pickVictim(v, 1)!;
      expect(r.chunk).not.toBe(2); // the empty chunk
      const pages = pageMaskToArray(r.pages!);
      expect(pages.length).toBe(1);
      seen.add(`${r.chunk}:${pages[0]}`);
    }
    expect(seen.size).toBeGreaterThan(10);
  });

  it('sequential-local-64k evicts the oldest used 64K basic block of the LRU VA block', () => {
    const w = view([range(40, 512), full], [100, 200], [1, 1], [1, 2]);
    const r = uvmSmartEviction('sequential-local-64k').pickVictim(w, 1)!;
    expect(r.chunk).toBe(0);
    expect(pageMaskToArray(r.pages!)).toEqual(range(40, 48)); // leaf 2 (pages 32–47), its used pages
  });

  it('tree-neighbourhood pre-evicts every subtree left under half valid (TBNe)', () => {
    // leaves 0 and 1 used, leaf 2 used, rest empty: evicting leaf 0 leaves the 128K node 0–1 at
    // 1/2 (kept), the 256K node 0–3 at 2/4 (kept), 512K 0–7 at 2/8 → emptied: leaves 1 and 2 go too
    const w = view([range(0, 48)], [1], [1], [1]);
    const r = uvmSmartEviction('tree-neighbourhood').pickVictim(w, 1)!;
    expect(pageMaskToArray(r.pages!)).toEqual(range(0, 48));
    // a full chunk: evicting one leaf leaves every node more than half valid
    const r2 = uvmSmartEviction('tree-neighbourhood').pickVictim(view([full], [1], [1], [1]), 1)!;
    expect(pageMaskToArray(r2.pages!)).toEqual(range(0, 16));
  });

  it('sequential-local-64k and TBNe work on the VA tree, not on the chunk a VA block happens to sit in', () => {
    // UVMSmart's large-page tree is a 2 MiB VA block (gpu-sim.cc lp_tree_node by VA). After partial
    // evictions a VA block's pages spread over chunks and a chunk mixes VA blocks. Here VA block A
    // holds leaves 0–2: leaf 0 (oldest, t=5) in chunk 1 pages 0–15, leaves 1–2 (t=10) in chunk 0
    // pages 0–31; VA block B (t=50) fills chunk 0 pages 256–511.
    const rmapVa1 = new Float64Array(1024);
    const pageLastUseNs = new Float64Array(1024);
    const put = (k: number, va: number, t: number) => {
      rmapVa1[k] = va + 1;
      pageLastUseNs[k] = t;
    };
    for (let i = 0; i < 16; i++) put(512 + i, block + i * K4, 5);
    for (let i = 0; i < 32; i++) put(i, block + (16 + i) * K4, 10);
    for (let i = 0; i < 256; i++) put(256 + i, block + 0x200000 + i * K4, 50);
    const w: EvictionView = {
      devIndex: 0,
      now: 1e6,
      chunks: 2,
      chunkUsed: Int32Array.from([288, 16]),
      chunkAllocStamp: Float64Array.from([2, 1]),
      chunkLastUseNs: Float64Array.from([50, 5]),
      chunkUses: Float64Array.from([2, 1]),
      rmapVa1,
      pageLastUseNs,
    };
    // sequential-local: the oldest VA basic block of the oldest VA block: A's leaf 0, in chunk 1
    const sl = uvmSmartEviction('sequential-local-64k').pickVictim(w, 1)!;
    expect(sl.chunk).toBe(1);
    expect(pageMaskToArray(sl.pages!)).toEqual(range(0, 16));
    // TBNe: leaf 0, then the 512K node 0–7 is left at 2/8 → leaves 1–2 go too (chunk 0 pages
    // 0–31), handed out on the next call; B is untouched
    const tbne = uvmSmartEviction('tree-neighbourhood');
    const a = tbne.pickVictim(w, 1)!;
    const b = tbne.pickVictim(w, 1)!;
    expect([a.chunk, pageMaskToArray(a.pages!)]).toEqual([0, range(0, 32)]);
    expect([b.chunk, pageMaskToArray(b.pages!)]).toEqual([1, range(0, 16)]);
  });

  it('lru-4k evicts the least recently mapped page, with its bind-mates of the same chunk', () => {
    // chunk 0's page 7 is the oldest (10); pages 8 and 9 share its bind; chunk 1 is newer (50)
    const w = view([range(0, 16), range(0, 16)], [60, 50], [1, 1], [1, 2], (c, p) =>
      c === 1 ? 50 : p >= 7 && p <= 9 ? 10 : 60,
    );
    const p = uvmSmartEviction('lru-4k');
    const r = p.pickVictim(w, 8)!;
    expect(r.chunk).toBe(0);
    expect(pageMaskToArray(r.pages!)).toEqual([7, 8, 9]);
    // needPages caps the victim: one page asked, one page given
    expect(pageMaskToArray(p.pickVictim(w, 1)!.pages!)).toEqual([7]);
    expect(p.pickVictim(view([[], []], [0, 0], [0, 0], [0, 0]), 1)).toBeNull();
  });

  it('rejects an unknown name', () => {
    expect(() => uvmSmartEviction('lru-8k' as never)).toThrow(ArgumentError);
  });
});
