import { ArgumentError } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  ACCESS_KIND,
  buildKernel,
  concat,
  customWorkload,
  gatherCsr,
  type Kernel,
  kernelStats,
  kernelsOf,
  layoutArrays,
  randomPass,
  stencil,
  stencilPass,
  streaming,
  streamPass,
  stridedPass,
  zip,
} from '../src/index.ts';

const geo = { numSMs: 2, warpsPerSM: 4 } as const;

function same(a: Kernel, b: Kernel): void {
  expect(Array.from(a.streams.warpStart)).toEqual(Array.from(b.streams.warpStart));
  expect(Buffer.from(a.streams.vas.buffer).equals(Buffer.from(b.streams.vas.buffer))).toBe(true);
  expect(Array.from(a.streams.access)).toEqual(Array.from(b.streams.access));
  expect(Array.from(a.streams.sizes)).toEqual(Array.from(b.streams.sizes));
}

describe('primitives', () => {
  it('zip of stream passes reproduces the streaming generator (triad)', () => {
    const w = streaming({ footprintBytes: 1 << 20, ...geo });
    const [a, b, c] = w.arrays as [never, never, never];
    const k = buildKernel(
      'triad',
      'streaming',
      w.arrays,
      zip(streamPass(b), streamPass(c), streamPass(a, { kind: ACCESS_KIND.WRITE })),
      geo,
    );
    same(k, kernelsOf(w)[0]!);
  });

  it('stencilPass reproduces the stencil generator', () => {
    const w = stencil({ footprintBytes: 1 << 20, arrays: 3, iterations: 1, ...geo });
    const [g0, g1, in2] = w.arrays as [never, never, never];
    const k = buildKernel(
      'st',
      'stencil',
      w.arrays,
      stencilPass(g0, g1, { rowBytes: 4096, extra: [in2] }),
      geo,
    );
    same(k, kernelsOf(w)[0]!);
    expect(() => stencilPass(g0, g1, { rowBytes: 100 })).toThrow(ArgumentError);
  });

  it('concat runs passes back to back (backprop: forward then weight adjust)', () => {
    const [x, wts] = layoutArrays(1 << 30, 1 << 21, [
      { name: 'x', bytes: 64 * 1024, elemSize: 4 },
      { name: 'w', bytes: 256 * 1024, elemSize: 4 },
    ]) as [never, never];
    const p = concat(streamPass(x), streamPass(wts), streamPass(wts, { kind: ACCESS_KIND.WRITE }));
    expect(p.tasks).toBe(512 + 2048 + 2048);
    const k = buildKernel('bp', 'streaming', [x, wts], p, { numSMs: 1, warpsPerSM: 1 });
    const { vas, access } = k.streams;
    expect(vas[0]).toBe(1 << 30);
    expect(vas[512]).toBe((1 << 30) + (1 << 21));
    expect(access[512 + 2048]).toBe(ACCESS_KIND.WRITE);
    expect(kernelStats(k).uniquePages).toBe(16 + 64);
  });

  it('stridedPass and randomPass', () => {
    const [m] = layoutArrays(0, 4096, [{ name: 'm', bytes: 1 << 20, elemSize: 4 }]) as [never];
    const s = buildKernel('s', 'strided', [m], stridedPass(m, { strideBytes: 8192, count: 100 }), {
      numSMs: 1,
      warpsPerSM: 1,
    });
    expect(s.accesses).toBe(100);
    expect(s.streams.vas[1]! - s.streams.vas[0]!).toBe(8192);
    const r1 = buildKernel('r', 'random', [m], randomPass(m, { count: 1000, seed: 4 }), geo);
    const r2 = buildKernel('r', 'random', [m], randomPass(m, { count: 1000, seed: 4 }), geo);
    same(r1, r2);
    expect(r1.accesses).toBe(1000);
    expect(() => randomPass(m, { count: 0 })).toThrow(ArgumentError);
    expect(() => stridedPass(m, { strideBytes: 64 })).toThrow(ArgumentError);
    expect(() => streamPass(m, { from: 10, to: 5 })).toThrow(ArgumentError);
  });

  it('gatherCsr reads rowPtr, the contiguous edge range and neighbour data', () => {
    const graph = { rowPtr: Int32Array.from([0, 2, 3, 5]), colIdx: Int32Array.from([1, 2, 0, 0, 1]) };
    const [rp, ci, data] = layoutArrays(0x10000, 4096, [
      { name: 'rowPtr', bytes: 16, elemSize: 4 },
      { name: 'colIdx', bytes: 20, elemSize: 4 },
      { name: 'data', bytes: 12, elemSize: 4 },
    ]) as [never, never, never];
    const k = buildKernel(
      'g',
      'graph',
      [rp, ci, data],
      gatherCsr(graph, Int32Array.from([2]), { rowPtr: rp, colIdx: ci, data }),
      { numSMs: 1, warpsPerSM: 1 },
    );
    expect(Array.from(k.streams.vas)).toEqual([
      0x10000 + 8,
      0x11000 + 12,
      0x12000,
      0x11000 + 16,
      0x12000 + 4,
    ]);
    expect(() => gatherCsr(graph, Int32Array.from([3]), { rowPtr: rp, colIdx: ci, data })).toThrow(
      ArgumentError,
    );
  });

  it('customWorkload builds kernels lazily and checks the budget', () => {
    const [m] = layoutArrays(0, 4096, [{ name: 'm', bytes: 1 << 20, elemSize: 4 }]) as [never];
    let built = 0;
    const w = customWorkload('two', 'streaming', [m], 2, (i) => {
      built++;
      return buildKernel(`k${i}`, 'streaming', [m], streamPass(m), geo);
    });
    expect(built).toBe(0);
    expect(kernelsOf(w).map((k) => k.name)).toEqual(['k0', 'k1']);
    expect(built).toBe(2);
    expect(() => buildKernel('big', 'streaming', [m], streamPass(m), { maxAccesses: 10 })).toThrow(
      /maxAccesses/,
    );
  });
});
