import { describe, expect, it } from 'vitest';
import {
  ACCESS_KIND,
  type AccessBatch,
  accessStats,
  createBatch,
  faultBatchModel,
  firstTouchWindows,
  type Kernel,
  PageIndex,
  StreamBuilder,
} from '../src/index.ts';

/** One batch from [page, warp, kind?] triples (va = page × 4096 + 8). */
function batchOf(items: readonly (readonly [number, number, number?])[]): AccessBatch {
  const b = createBatch(Math.max(1, items.length));
  items.forEach(([page, warp, kind], i) => {
    b.va[i] = page * 4096 + 8;
    b.warp[i] = warp;
    b.kind[i] = kind ?? ACCESS_KIND.READ;
    b.size[i] = 4;
  });
  b.count = items.length;
  return b;
}

describe('PageIndex', () => {
  it('assigns dense ids in order of first sight, across growth and large keys', () => {
    const ix = new PageIndex(2);
    const keys = [5, 2 ** 40 + 3, 7, 5, 2 ** 33, 7];
    expect(keys.map((k) => ix.idOf(k))).toEqual([0, 1, 2, 0, 3, 2]);
    for (let k = 0; k < 5000; k++) ix.idOf(1e9 + k * 4096);
    expect(ix.size).toBe(5004);
    expect(ix.find(2 ** 40 + 3)).toBe(1);
    expect(ix.find(12345)).toBe(-1);
  });
});

describe('accessStats', () => {
  it('counts pages, kinds, per-page accesses and footprint', () => {
    const s = accessStats([
      batchOf([
        [10, 0, ACCESS_KIND.READ],
        [10, 1, ACCESS_KIND.WRITE],
        [11, 0, ACCESS_KIND.ATOMIC],
        [20, 2],
      ]),
    ]);
    expect(s.accesses).toBe(4);
    expect([s.reads, s.writes, s.atomics]).toEqual([2, 1, 1]);
    expect(s.uniquePages).toBe(3);
    expect(s.footprintBytes).toBe(3 * 4096);
    expect(s.minPage).toBe(10);
    expect(s.maxPage).toBe(20);
    expect(s.maxAccessesPerPage).toBe(2);
    expect(s.accessesPerPageHist).toEqual([2, 1]);
    expect(s.bytesAccessed).toBe(16);
  });

  it('reuse distances are LRU stack distances in distinct pages, log2-binned', () => {
    // a a b c a d b : reuses: a@1 d=0; a@4 d=2 (b,c); b@6 d=3 (c,a,d)
    const s = accessStats([
      batchOf([
        [1, 0],
        [1, 0],
        [2, 0],
        [3, 0],
        [1, 0],
        [4, 0],
        [2, 0],
      ]),
    ]);
    expect(s.coldAccesses).toBe(4);
    // bins: 0 -> d=0; 1 -> [1,2); 2 -> [2,4)
    expect(s.reuseHist).toEqual([1, 0, 2]);
  });

  it('reuse histogram survives the timeline growing past its initial size', () => {
    const items: [number, number][] = [];
    for (let r = 0; r < 3; r++) for (let p = 0; p < 3000; p++) items.push([p, 0]);
    const s = accessStats([batchOf(items)]);
    expect(s.coldAccesses).toBe(3000);
    // Every reuse has exactly 2999 distinct pages in between: bin floor(log2(2999)) + 1 = 12.
    expect(s.reuseHist[12]).toBe(6000);
    expect(s.reuseHist.reduce((a, b) => a + b, 0)).toBe(6000);
    expect(accessStats([batchOf(items)], { reuse: false }).reuseHist).toEqual([]);
  });

  it('sequentiality: interleaved sequential streams ≈ 1, scattered pages ≈ 0', () => {
    const seq: [number, number][] = [];
    for (let p = 0; p < 200; p++) seq.push([p, 0], [1000 + p, 1]);
    expect(accessStats([batchOf(seq)]).sequentiality).toBeGreaterThan(0.98);
    const scattered: [number, number][] = [];
    for (let p = 0; p < 400; p++) scattered.push([(p * 7919) % 100003, 0]);
    expect(accessStats([batchOf(scattered)]).sequentiality).toBe(0);
  });
});

describe('firstTouchWindows', () => {
  it('cuts first touches into windows and marks their pages resident', () => {
    // 4 entries per window. Pages: 1 1 2 3 | 3(resident) 4 4 5 5 | ...
    const s = firstTouchWindows(
      [
        batchOf([
          [1, 0],
          [1, 1],
          [2, 0],
          [3, 0],
          [3, 1],
          [4, 0],
          [4, 1],
          [5, 0],
          [5, 1],
        ]),
      ],
      {
        windowSize: 4,
      },
    );
    expect(s.windows).toBe(2);
    expect(Array.from(s.uniquePerWindow)).toEqual([3, 2]);
    expect(s.duplicateFraction).toBeCloseTo(1 - 5 / 8);
    expect(s.tailEntries).toBe(0);
  });

  it('coalesces per SM when smOf is given', () => {
    // Warps 0,1 on SM 0, warps 2,3 on SM 1: page 1 from 4 warps = 2 entries.
    const b = batchOf([
      [1, 0],
      [1, 1],
      [1, 2],
      [1, 3],
      [2, 0],
      [2, 2],
    ]);
    const s = firstTouchWindows([b], { windowSize: 4, smOf: (w) => Math.floor(w / 2) });
    expect(s.windows).toBe(1);
    expect(s.uniquePerWindow[0]).toBe(2);
    const raw = firstTouchWindows([b], { windowSize: 4 });
    expect(raw.uniquePerWindow[0]).toBe(1);
    expect(raw.tailUnique).toBe(1);
    expect(() => firstTouchWindows([b], { windowSize: 0 })).toThrow();
  });
});

describe('faultBatchModel', () => {
  it('stalls a faulting warp until its batch is serviced, coalescing per SM', () => {
    // 4 warps, 1 CTA of 2 warps per SM, 2 SMs. Warp w reads pages [w>>1, 10 + w>>1].
    const b = new StreamBuilder(4);
    for (let w = 0; w < 4; w++) {
      b.push(Math.floor(w / 2) * 4096, ACCESS_KIND.READ, 4);
      b.push((10 + Math.floor(w / 2)) * 4096, ACCESS_KIND.READ, 4);
      b.endWarp();
    }
    const streams = b.finish();
    const k = { numSMs: 2, warpsPerCta: 2, streams } as unknown as Kernel;
    const s = faultBatchModel(k, { batchSize: 256 });
    // Batch 1: pages 0 (SM 0) and 1 (SM 1), warps 0+1 and 2+3 coalesce: 2 entries, 2 pages.
    // Batch 2: pages 10 and 11 likewise.
    expect(s.batches).toBe(2);
    expect(Array.from(s.faultsPerBatch)).toEqual([2, 2]);
    expect(Array.from(s.uniquePerBatch)).toEqual([2, 2]);
    const raw = faultBatchModel(k, { smCoalesce: false });
    expect(Array.from(raw.faultsPerBatch)).toEqual([4, 4]);
    expect(raw.duplicateFraction).toBe(0.5);
    // Batch size 1: every fault is its own batch.
    expect(faultBatchModel(k, { batchSize: 1 }).batches).toBe(4);
    expect(() => faultBatchModel(k, { batchSize: 0 })).toThrow();
  });
});
