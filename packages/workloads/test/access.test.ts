import { ArgumentError, StateError } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  ACCESS_KIND,
  type AccessBatch,
  createBatch,
  issueOrder,
  StreamBuilder,
  streamsFromBatches,
  type WarpStreams,
} from '../src/index.ts';

function build(warps: number[][]): WarpStreams {
  const b = new StreamBuilder(warps.length, 2);
  for (const w of warps) {
    for (const va of w) b.push(va, ACCESS_KIND.READ, 128);
    b.endWarp();
  }
  return b.finish();
}

function collect(batches: Iterable<AccessBatch>): { va: number[]; warp: number[] } {
  const va: number[] = [];
  const warp: number[] = [];
  for (const b of batches) {
    for (let i = 0; i < b.count; i++) {
      va.push(b.va[i]!);
      warp.push(b.warp[i]!);
    }
  }
  return { va, warp };
}

describe('StreamBuilder', () => {
  it('builds CSR warp-major arrays and grows past its hint', () => {
    const s = build([[1, 2, 3], [], [10, 11, 12, 13, 14]]);
    expect(Array.from(s.warpStart)).toEqual([0, 3, 3, 8]);
    expect(Array.from(s.vas)).toEqual([1, 2, 3, 10, 11, 12, 13, 14]);
    expect(s.access.length).toBe(8);
    expect(s.sizes[0]).toBe(128);
  });

  it('rejects a bad warp count and unfinished warps', () => {
    expect(() => new StreamBuilder(0)).toThrow(ArgumentError);
    const b = new StreamBuilder(2);
    b.endWarp();
    expect(() => b.finish()).toThrow(StateError);
    b.endWarp();
    expect(() => b.endWarp()).toThrow(StateError);
    expect(b.finish().warpStart.length).toBe(3);
  });
});

describe('issueOrder', () => {
  it('interleaves warps round robin, dropping finished ones', () => {
    const s = build([[1, 2, 3], [], [10, 11, 12, 13], [20]]);
    const { va, warp } = collect(issueOrder(s, 3));
    expect(va).toEqual([1, 10, 20, 2, 11, 3, 12, 13]);
    expect(warp).toEqual([0, 2, 3, 0, 2, 0, 2, 2]);
  });

  it('reuses one batch and respects its capacity', () => {
    const s = build([[1, 2, 3, 4, 5]]);
    const seen = new Set<AccessBatch>();
    let n = 0;
    for (const b of issueOrder(s, 2)) {
      seen.add(b);
      expect(b.count).toBeLessThanOrEqual(2);
      n += b.count;
    }
    expect(seen.size).toBe(1);
    expect(n).toBe(5);
  });

  it('streamsFromBatches inverts issueOrder', () => {
    const s = build([[1, 2, 3], [], [10, 11, 12, 13], [20]]);
    const copy: AccessBatch[] = [];
    for (const b of issueOrder(s, 3)) {
      copy.push({
        count: b.count,
        va: b.va.slice(),
        kind: b.kind.slice(),
        warp: b.warp.slice(),
        size: b.size.slice(),
      });
    }
    const back = streamsFromBatches(copy, 4);
    expect(Array.from(back.vas)).toEqual(Array.from(s.vas));
    expect(Array.from(back.warpStart)).toEqual(Array.from(s.warpStart));
    expect(() => streamsFromBatches(copy, 2)).toThrow(ArgumentError);
  });

  it('createBatch validates capacity', () => {
    expect(() => createBatch(0)).toThrow(ArgumentError);
    expect(createBatch(8).va.length).toBe(8);
  });
});
