import { ArgumentError } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  ACCESS_KIND,
  type AccessSink,
  atax,
  bfsLevels,
  dealTasks,
  faultBatchModel,
  GENERATORS,
  type GeneratorName,
  gemm,
  generate,
  generateCsrGraph,
  graphBfs,
  type Kernel,
  kernelFaultWindows,
  kernelStats,
  kernelsOf,
  kmeans,
  randomAccess,
  smOfWarp,
  stencil,
  streaming,
  strided,
  type Workload,
  wavefront,
} from '../src/index.ts';

const MiB = 1 << 20;
const small = { footprintBytes: 2 * MiB, numSMs: 4, warpsPerSM: 8 } as const;

function pagesOf(k: Kernel, arrayName?: string, kind?: number): Set<number> {
  const set = new Set<number>();
  const a = arrayName === undefined ? undefined : k.arrays.find((r) => r.name === arrayName);
  const { vas, access } = k.streams;
  for (let i = 0; i < vas.length; i++) {
    const va = vas[i]!;
    if (kind !== undefined && access[i] !== kind) continue;
    if (a !== undefined && (va < a.va || va >= a.va + a.bytes)) continue;
    set.add(Math.floor(va / 4096));
  }
  return set;
}

function sameStreams(a: Workload, b: Workload): boolean {
  const ka = kernelsOf(a);
  const kb = kernelsOf(b);
  if (ka.length !== kb.length) return false;
  for (let i = 0; i < ka.length; i++) {
    const x = ka[i]!.streams;
    const y = kb[i]!.streams;
    if (x.vas.length !== y.vas.length) return false;
    for (let j = 0; j < x.vas.length; j++) {
      if (x.vas[j] !== y.vas[j] || x.access[j] !== y.access[j] || x.sizes[j] !== y.sizes[j]) return false;
    }
    for (let w = 0; w < x.warpStart.length; w++) if (x.warpStart[w] !== y.warpStart[w]) return false;
  }
  return true;
}

describe('every generator', () => {
  const names = Object.keys(GENERATORS) as GeneratorName[];
  for (const name of names) {
    it(`${name}: deterministic, in bounds, warps = SMs × warpsPerSM`, () => {
      const params = { ...small, seed: 7, iterations: 2, maxAccesses: 1 << 20 };
      const w1 = generate(name, params);
      const w2 = generate(name, params);
      expect(sameStreams(w1, w2)).toBe(true);
      expect(w1.footprintBytes).toBeGreaterThan(0);
      expect(w1.footprintBytes).toBeLessThanOrEqual(small.footprintBytes + 64 * 1024);
      let kernels = 0;
      for (const ph of w1.phases()) {
        expect(ph.type).toBe('kernel');
        if (ph.type !== 'kernel') continue;
        kernels++;
        const k = ph.kernel;
        expect(k.warps).toBe(32);
        expect(k.streams.warpStart.length).toBe(33);
        expect(k.accesses).toBe(k.streams.vas.length);
        const { vas, sizes, access } = k.streams;
        let outside = 0;
        let badKind = 0;
        const arrs = w1.arrays;
        for (let i = 0; i < vas.length; i++) {
          const va = vas[i]!;
          let inside = false;
          for (const a of arrs) if (va >= a.va && va + sizes[i]! <= a.va + a.bytes) inside = true;
          if (!inside) outside++;
          if (access[i]! < 1 || access[i]! > 3) badKind++;
        }
        expect(outside).toBe(0);
        expect(badKind).toBe(0);
      }
      expect(kernels).toBe(w1.phaseCount);
      expect(kernels).toBe(w1.kernelCount);
    });
  }

  it('validates shared parameters before building anything', () => {
    expect(() => streaming({ footprintBytes: 100 })).toThrow(ArgumentError);
    expect(() => streaming({ elemSize: 3 })).toThrow(ArgumentError);
    expect(() => streaming({ baseVa: 4097 })).toThrow(ArgumentError);
    expect(() => streaming({ numSMs: 2000, warpsPerSM: 64 })).toThrow(ArgumentError);
    expect(() => streaming({ footprintBytes: 64 * MiB, maxAccesses: 1000 })).toThrow(/maxAccesses/);
    expect(() => generate('nope' as GeneratorName)).toThrow(ArgumentError);
  });

  it('seed changes the random and graph streams', () => {
    const a = randomAccess({ ...small, seed: 1 });
    const b = randomAccess({ ...small, seed: 2 });
    expect(sameStreams(a, b)).toBe(false);
    expect(sameStreams(graphBfs({ ...small, seed: 1 }), graphBfs({ ...small, seed: 2 }))).toBe(false);
  });
});

describe('page resolution', () => {
  /** Reference: warp-level streams re-cut into waves of one task per warp, deduplicated per (page, kind). */
  function byPageReference(k: Kernel, perTask: number): { vas: number[]; kinds: number[] }[] {
    const { vas, access, warpStart } = k.streams;
    const W = warpStart.length - 1;
    const out = Array.from({ length: W }, () => ({ vas: [] as number[], kinds: [] as number[] }));
    for (let wave = 0; ; wave++) {
      const seen = new Set<string>();
      let any = false;
      for (let w = 0; w < W; w++) {
        const i0 = warpStart[w]! + wave * perTask;
        if (i0 >= warpStart[w + 1]!) continue;
        any = true;
        for (let i = i0; i < i0 + perTask; i++) {
          const key = `${Math.floor(vas[i]! / 4096)}:${access[i]}`;
          if (seen.has(key)) continue;
          seen.add(key);
          out[w]!.vas.push(vas[i]!);
          out[w]!.kinds.push(access[i]!);
        }
      }
      if (!any) return out;
    }
  }

  it('keeps the first access of each wave to each page and kind, in warp order', () => {
    for (const arrays of [1, 3]) {
      const warp = kernelsOf(streaming({ ...small, arrays }))[0]!;
      const page = kernelsOf(streaming({ ...small, arrays, resolution: 'page' }))[0]!;
      const ref = byPageReference(warp, arrays);
      const W = page.streams.warpStart.length - 1;
      expect(W).toBe(warp.warps);
      for (let w = 0; w < W; w++) {
        const a = page.streams.warpStart[w]!;
        const b = page.streams.warpStart[w + 1]!;
        expect(Array.from(page.streams.vas.subarray(a, b))).toEqual(ref[w]!.vas);
        expect(Array.from(page.streams.access.subarray(a, b))).toEqual(ref[w]!.kinds);
      }
      // the same pages are touched with the same kinds, with far fewer accesses
      for (const kind of [ACCESS_KIND.READ, ACCESS_KIND.WRITE]) {
        expect(pagesOf(page, undefined, kind)).toEqual(pagesOf(warp, undefined, kind));
      }
      expect(page.accesses * 8).toBeLessThan(warp.accesses);
    }
  });

  it('streams the same when whole runs of same-page tasks are skipped (waves starting mid-run)', () => {
    // 15 warps: waves start at every offset of the 32-task (elemSize 4) or 16-task (8) runs
    for (const elemSize of [4, 8]) {
      for (const arrays of [1, 3]) {
        const q = { footprintBytes: 2 * MiB, numSMs: 3, warpsPerSM: 5, elemSize, arrays } as const;
        const warp = kernelsOf(streaming(q))[0]!;
        const page = kernelsOf(streaming({ ...q, resolution: 'page' }))[0]!;
        const ref = byPageReference(warp, arrays);
        for (let w = 0; w < page.warps; w++) {
          const a = page.streams.warpStart[w]!;
          const b = page.streams.warpStart[w + 1]!;
          expect(Array.from(page.streams.vas.subarray(a, b))).toEqual(ref[w]!.vas);
          expect(Array.from(page.streams.access.subarray(a, b))).toEqual(ref[w]!.kinds);
        }
      }
    }
    const emit = (t: number, b: AccessSink) =>
      b.push(0x100000 + Math.floor(t / 8) * 4096, ACCESS_KIND.READ, 4);
    const p = { resolution: 'page', maxAccesses: 1 << 20 } as const;
    const once = dealTasks(5, 200, 200, emit, p, 1);
    const skipping = dealTasks(5, 200, 200, emit, p, 8);
    expect(Array.from(skipping.vas)).toEqual(Array.from(once.vas));
    expect(Array.from(skipping.warpStart)).toEqual(Array.from(once.warpStart));
    expect(() => dealTasks(5, 200, 200, emit, p, 3)).toThrow(ArgumentError);
  });

  it('applies to every generator; warp resolution is the default and unchanged', () => {
    for (const name of Object.keys(GENERATORS) as GeneratorName[]) {
      const a = kernelsOf(generate(name, { ...small, seed: 3 }))[0]!;
      const b = kernelsOf(generate(name, { ...small, seed: 3, resolution: 'warp' }))[0]!;
      const c = kernelsOf(generate(name, { ...small, seed: 3, resolution: 'page' }))[0]!;
      let same = a.accesses === b.accesses;
      for (let i = 0; same && i < a.accesses; i++) same = a.streams.vas[i] === b.streams.vas[i];
      expect(same).toBe(true);
      expect(c.accesses).toBeLessThanOrEqual(a.accesses);
      expect(pagesOf(c)).toEqual(pagesOf(a));
    }
  });

  it('waves wider than the dedupe table start with (5,120 warps, one random page each) keep every page', () => {
    const wide = { footprintBytes: 64 * MiB, numSMs: 160, warpsPerSM: 32, mode: 'pages' } as const;
    const warp = kernelsOf(randomAccess(wide))[0]!;
    const page = kernelsOf(randomAccess({ ...wide, resolution: 'page' }))[0]!;
    // every page is touched once: nothing to drop, and the streams are identical
    expect(page.accesses).toBe(warp.accesses);
    expect(Array.from(page.streams.warpStart)).toEqual(Array.from(warp.streams.warpStart));
    let same = true;
    for (let i = 0; same && i < warp.accesses; i++) same = page.streams.vas[i] === warp.streams.vas[i];
    expect(same).toBe(true);
    // a wave of 64,000 warps × 3 arrays touches 6,000 (page, kind) keys, each 32 times: the
    // table grows mid-wave and must still drop every duplicate
    const s = { footprintBytes: 48 * MiB, numSMs: 1000, warpsPerSM: 64, arrays: 3 } as const;
    const sw = kernelsOf(streaming(s))[0]!;
    const sp = kernelsOf(streaming({ ...s, resolution: 'page' }))[0]!;
    const ref = byPageReference(sw, 3);
    const flat = ref.flatMap((w) => w.vas);
    expect(sp.accesses).toBe(flat.length);
    let ok = true;
    for (let i = 0; ok && i < flat.length; i++) ok = sp.streams.vas[i] === flat[i];
    expect(ok).toBe(true);
  });

  it('checks the kept accesses against maxAccesses and rejects unknown resolutions', () => {
    // warp level: 24 MiB of floats is 196,608 accesses, over the budget; page level keeps ~6k
    const big = { footprintBytes: 24 * MiB, numSMs: 4, warpsPerSM: 8, maxAccesses: 10_000 } as const;
    expect(() => kernelsOf(streaming(big))).toThrow(ArgumentError);
    expect(kernelsOf(streaming({ ...big, resolution: 'page' }))[0]!.accesses).toBeLessThanOrEqual(10_000);
    expect(() => kernelsOf(streaming({ ...big, maxAccesses: 1000, resolution: 'page' }))).toThrow(
      /maxAccesses/,
    );
    expect(() => streaming({ ...small, resolution: 'line' as 'page' })).toThrow(ArgumentError);
  });
});

describe('streaming', () => {
  it('touches every page of every array exactly 32 times (floats), in order', () => {
    const k = kernelsOf(streaming(small))[0]!;
    const st = kernelStats(k);
    let pages = 0;
    for (const a of k.arrays) pages += Math.ceil(a.bytes / 4096);
    expect(st.uniquePages).toBe(pages);
    expect(st.maxAccessesPerPage).toBe(32);
    expect(st.meanAccessesPerPage).toBeCloseTo(32, 0);
    expect(st.sequentiality).toBeGreaterThan(0.8);
    expect(st.writes * 2).toBe(st.reads);
  });

  it('calibration: 256-entry windows hold ~50–65 unique pages (Allen & Ge stream triad)', () => {
    const k = kernelsOf(streaming({ footprintBytes: 16 * MiB }))[0]!;
    expect(k.warps).toBe(80 * 32);
    const fw = kernelFaultWindows(k, 256);
    expect(fw.windows).toBeGreaterThan(20);
    expect(fw.meanUnique).toBeGreaterThanOrEqual(45);
    expect(fw.meanUnique).toBeLessThanOrEqual(80);
    expect(fw.duplicateFraction).toBeGreaterThan(0.65);
    expect(fw.duplicateFraction).toBeLessThan(0.85);
    // With warps stalling on their fault: still (nearly) full batches of ~64 unique pages.
    const fb = faultBatchModel(k, { batchSize: 256 });
    expect(fb.meanFaults).toBeGreaterThan(230);
    expect(fb.meanUnique).toBeGreaterThanOrEqual(45);
    expect(fb.meanUnique).toBeLessThanOrEqual(80);
    // Without per-SM (uTLB) coalescing a batch holds only 8 pages: 32 warps per page.
    expect(faultBatchModel(k, { smCoalesce: false }).meanUnique).toBeLessThan(12);
  });

  it('one array is read only', () => {
    const k = kernelsOf(streaming({ ...small, arrays: 1 }))[0]!;
    expect(k.streams.access.every((a) => a === ACCESS_KIND.READ)).toBe(true);
  });
});

describe('strided', () => {
  it('consecutive tasks are strideBytes apart; each page revisited once per column chunk', () => {
    const k = kernelsOf(strided({ ...small, strideBytes: 8192 }))[0]!;
    const { vas, warpStart } = k.streams;
    // Warp 0 runs tasks 0, W, 2W ...: rows advance by W (mod rows).
    const rows = k.footprintBytes / 8192;
    expect(vas[warpStart[0]! + 1]! - vas[warpStart[0]!]!).toBe(32 * 8192);
    // Warps 0 and 1 run neighbouring rows.
    expect(vas[warpStart[1]!]! - vas[warpStart[0]!]!).toBe(8192);
    const st = kernelStats(k);
    expect(st.uniquePages).toBe(rows * 2);
    expect(st.maxAccessesPerPage).toBe(32);
    // Nearly every page change in issue order skips pages (stride 2 pages).
    expect(st.sequentiality).toBeLessThan(0.05);
    expect(() => strided({ strideBytes: 100 })).toThrow(ArgumentError);
  });
});

describe('stencil', () => {
  it('ping-pongs: kernel i reads grid i%2 and writes grid (i+1)%2, sweeping all of both', () => {
    const w = stencil({ ...small, iterations: 4, arrays: 3 });
    const ks = kernelsOf(w);
    expect(ks.length).toBe(4);
    ks.forEach((k, i) => {
      const src = `grid${i % 2}`;
      const dst = `grid${(i + 1) % 2}`;
      const writes = pagesOf(k, undefined, ACCESS_KIND.WRITE);
      expect(writes).toEqual(pagesOf(k, dst));
      expect(pagesOf(k, src, ACCESS_KIND.WRITE).size).toBe(0);
      expect(pagesOf(k, src).size).toBe(k.arrays[0]!.bytes / 4096);
      expect(pagesOf(k, 'in2', ACCESS_KIND.WRITE).size).toBe(0);
      expect(pagesOf(k, 'in2').size).toBe(k.arrays[2]!.bytes / 4096);
    });
    expect(() => stencil({ arrays: 7 })).toThrow(ArgumentError);
    expect(() => stencil({ arrays: 1 })).toThrow(ArgumentError);
  });
});

describe('gemm', () => {
  it('A row-sequential, B column-strided by N·4, heavy reuse of B', () => {
    const k = kernelsOf(
      gemm({ footprintBytes: 12 * MiB, numSMs: 2, warpsPerSM: 4, maxAccesses: 1 << 20 }),
    )[0]!;
    const [A, B] = [k.arrays[0]!, k.arrays[1]!];
    const N = Math.round(Math.sqrt(A.bytes / 4));
    expect(N).toBe(1024);
    const { vas, warpStart } = k.streams;
    const bv: number[] = [];
    const av: number[] = [];
    for (let i = warpStart[0]!; i < warpStart[1]!; i++) {
      const va = vas[i]!;
      if (va >= B.va && va < B.va + B.bytes) bv.push(va);
      else if (va >= A.va && va < A.va + A.bytes) av.push(va);
    }
    for (let j = 1; j < N; j++) expect(bv[j]! - bv[j - 1]!).toBe(N * 4);
    expect(av[1]! - av[0]!).toBe(128);
    expect(pagesOf(k, 'B').size).toBe(B.bytes / 4096);
    const st = kernelStats(k, { reuse: false });
    expect(st.meanAccessesPerPage).toBeGreaterThan(100);
  });

  it('samples rows of C to fit maxAccesses', () => {
    const k = kernelsOf(
      gemm({ footprintBytes: 12 * MiB, numSMs: 2, warpsPerSM: 4, maxAccesses: 1 << 18 }),
    )[0]!;
    expect(k.accesses).toBeLessThanOrEqual(1 << 18);
    expect(pagesOf(k, 'C', ACCESS_KIND.WRITE).size).toBeGreaterThan(1);
  });
});

describe('atax', () => {
  it('kernel 1 is column-major over rows (32 pages per step), kernel 2 coalesced rows', () => {
    const [k1, k2] = kernelsOf(atax({ footprintBytes: 4 * MiB, numSMs: 2, warpsPerSM: 4 }));
    const A = k1!.arrays[0]!;
    const N = Math.round(Math.sqrt(A.bytes / 4));
    const s1 = k1!.streams;
    // First 33 accesses of warp 0: x chunk, then 32 lanes in 32 rows of column 0.
    const pages = new Set<number>();
    for (let i = 1; i <= 32; i++) pages.add(Math.floor(s1.vas[i]! / 4096));
    expect(pages.size).toBe(32);
    expect(s1.sizes[1]).toBe(4);
    const s2 = k2!.streams;
    expect(s2.sizes[1]).toBe(128);
    expect(s2.vas[2]! - s2.vas[1]!).toBe(N * 4);
    expect(pagesOf(k1!, 'A')).toEqual(pagesOf(k2!, 'A'));
  });
});

describe('wavefront', () => {
  it('one launch per anti-diagonal, tiles on it only, band drifting', () => {
    const w = wavefront({ footprintBytes: 2 * MiB, numSMs: 2, warpsPerSM: 4 });
    const ks = kernelsOf(w);
    const S = ks[0]!.arrays[1]!; // reference matrix
    const N = Math.round(Math.sqrt(S.bytes / 4));
    const T = N / 16;
    expect(ks.length).toBe(2 * T - 1);
    let prevMean = -1;
    ks.forEach((k, d) => {
      const { vas } = k.streams;
      let sum = 0;
      let n = 0;
      for (let i = 0; i < vas.length; i++) {
        const va = vas[i]!;
        if (va < S.va || va >= S.va + S.bytes) continue;
        const off = (va - S.va) / 4;
        const bi = Math.floor(Math.floor(off / N) / 16);
        const bj = Math.floor((off % N) / 16);
        expect(bi + bj).toBe(d);
        sum += Math.floor(off / N);
        n++;
      }
      const mean = sum / n;
      expect(mean).toBeGreaterThanOrEqual(prevMean);
      prevMean = mean;
    });
    // The middle diagonal has a tile in every row band: 16 rows per tile, every page of the matrix.
    const mid = ks[T - 1]!;
    expect(pagesOf(mid, 'reference').size).toBe(S.bytes / 4096);
    // An early diagonal touches only the top-left corner.
    expect(pagesOf(ks[1]!, 'reference').size).toBeLessThanOrEqual((32 * N * 4) / 4096);
  });
});

describe('graphBfs', () => {
  it('graph has the requested locality and BFS covers the reachable nodes', () => {
    const g = generateCsrGraph(4096, 8, 0.8, 64, 3);
    let near = 0;
    for (let u = 0; u < g.nodes; u++) {
      for (let i = g.rowPtr[u]!; i < g.rowPtr[u + 1]!; i++) if (Math.abs(g.colIdx[i]! - u) <= 64) near++;
    }
    const frac = near / g.colIdx.length;
    expect(frac).toBeGreaterThan(0.75);
    expect(frac).toBeLessThan(0.86);
    expect(g.colIdx.length / g.nodes).toBeGreaterThan(7);
    expect(g.colIdx.length / g.nodes).toBeLessThan(9);
    expect(bfsLevels(g)).toBeGreaterThan(2);
  });

  it('frontier kernels read contiguous CSR edge ranges; level 0 expands node 0 only', () => {
    const w = graphBfs({ ...small, seed: 5 });
    expect(w.phaseCount % 2).toBe(0);
    const ks = kernelsOf(w);
    const k0 = ks[0]!;
    const ci = k0.arrays.find((a) => a.name === 'colIdx')!;
    const colReads: number[] = [];
    const { vas } = k0.streams;
    for (let i = 0; i < vas.length; i++)
      if (vas[i]! >= ci.va && vas[i]! < ci.va + ci.bytes) colReads.push(vas[i]!);
    expect(colReads.length).toBeGreaterThan(0);
    expect(colReads[0]).toBe(ci.va);
    for (let j = 1; j < colReads.length; j++) expect(colReads[j]! - colReads[j - 1]!).toBe(4);
    // Frontier grows then shrinks: cost writes per level are data dependent.
    const costWrites = ks
      .filter((_, i) => i % 2 === 0)
      .map((k) => pagesOf(k, 'cost', ACCESS_KIND.WRITE).size + 0);
    expect(Math.max(...costWrites)).toBeGreaterThan(costWrites[0]!);
    // Locality: most visited[] reads of level 1 fall near its frontier.
    const k2 = ks[2]!;
    expect(kernelStats(k2).uniquePages).toBeGreaterThan(kernelStats(k0).uniquePages);
  });
});

describe('graphBfs frontier locality', () => {
  it('about `locality` of the neighbour pages a frontier node reads lie within the window', () => {
    const w = graphBfs({ ...small, seed: 11, locality: 0.8, window: 256 });
    const ks = kernelsOf(w);
    const rp = ks[0]!.arrays.find((a) => a.name === 'rowPtr')!;
    const vi = ks[0]!.arrays.find((a) => a.name === 'visited')!;
    let near = 0;
    let total = 0;
    for (let level = 0; level < ks.length; level += 2) {
      const { vas, sizes, warpStart } = ks[level]!.streams;
      for (let wp = 0; wp + 1 < warpStart.length; wp++) {
        let u = -1;
        for (let i = warpStart[wp]!; i < warpStart[wp + 1]!; i++) {
          const va = vas[i]!;
          if (va >= rp.va && va < rp.va + rp.bytes) u = (va - rp.va) / 4;
          else if (sizes[i] === 4 && va >= vi.va && va < vi.va + vi.bytes && u >= 0) {
            total++;
            if (Math.abs((va - vi.va) / 4 - u) <= 256) near++;
          }
        }
      }
    }
    expect(total).toBeGreaterThan(1000);
    expect(near / total).toBeGreaterThan(0.75);
    expect(near / total).toBeLessThan(0.86);
  });
});

describe('randomAccess', () => {
  it('uniform: pages evenly hit, no sequentiality', () => {
    const k = kernelsOf(randomAccess({ ...small, updates: 1 << 16 }))[0]!;
    const st = kernelStats(k);
    expect(st.uniquePages).toBe(512);
    expect(st.maxAccessesPerPage).toBeLessThan(3 * st.meanAccessesPerPage);
    // Chance level: page-1 is among the last 32 distinct pages with probability 32/512.
    expect(st.sequentiality).toBeLessThan((2 * 32) / 512);
    expect(st.reads).toBe(st.writes);
  });

  it('atomic mode issues ATOMIC; pages mode touches each page once', () => {
    const k = kernelsOf(randomAccess({ ...small, updates: 1000, atomic: true }))[0]!;
    expect(k.accesses).toBe(1000);
    expect(k.streams.access.every((a) => a === ACCESS_KIND.ATOMIC)).toBe(true);
    const kp = kernelsOf(randomAccess({ ...small, mode: 'pages' }))[0]!;
    const st = kernelStats(kp);
    expect(st.uniquePages).toBe(512);
    expect(st.maxAccessesPerPage).toBe(1);
    expect(() => randomAccess({ mode: 'x' as 'pages' })).toThrow(ArgumentError);
  });
});

describe('kmeans', () => {
  it('every iteration sweeps the same pages; the centroid page is hot', () => {
    const ks = kernelsOf(kmeans({ ...small, iterations: 3 }));
    expect(ks.length).toBe(3);
    const p0 = pagesOf(ks[0]!);
    expect(pagesOf(ks[2]!)).toEqual(p0);
    const cl = ks[0]!.arrays[1]!;
    const st = kernelStats(ks[0]!);
    let clusterHits = 0;
    const { vas } = ks[0]!.streams;
    for (let i = 0; i < vas.length; i++) if (vas[i]! >= cl.va && vas[i]! < cl.va + cl.bytes) clusterHits++;
    expect(clusterHits).toBeGreaterThan(20 * st.meanAccessesPerPage);
  });
});

describe('smOfWarp', () => {
  it('deals CTAs round robin to SMs', () => {
    const k = { numSMs: 4, warpsPerCta: 8 };
    expect(smOfWarp(k, 0)).toBe(0);
    expect(smOfWarp(k, 7)).toBe(0);
    expect(smOfWarp(k, 8)).toBe(1);
    expect(smOfWarp(k, 32)).toBe(0);
  });
});
