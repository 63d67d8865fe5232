/**
 * Seeded access-pattern generators (uvm-costs §4.2). Each returns a {@link Workload} whose
 * kernels are warp-major streams: tasks (a warp-wide unit of work, e.g. 32 consecutive
 * elements) are dealt to `numSMs × warpsPerSM` warps round robin, so in issue order all warps
 * work side by side and a 4 KiB page of floats is hit by 32 warp-wide 128-byte accesses from
 * several CTAs (SMs) at once: fault bursts with duplicates.
 *
 * @module
 */
import { ArgumentError, Rng } from '@hmmkit/sim';
import { ACCESS_KIND } from './access.ts';
import {
  type ArrayRegion,
  checkBudget,
  dealTasks,
  type GeneratorParams,
  type Kernel,
  layoutArrays,
  makeKernel,
  makeWorkload,
  PATTERN,
  type Phase,
  resolveParams,
  type Workload,
  warpCount,
} from './kernel.ts';

const { READ, WRITE, ATOMIC } = ACCESS_KIND;

function intOpt(fn: string, name: string, v: number, lo: number, hi: number): number {
  if (!Number.isInteger(v) || v < lo || v > hi) {
    throw new ArgumentError(fn, name, `must be an integer in [${lo}, ${hi}]`, v);
  }
  return v;
}

function* kernelsPhases(count: number, build: (i: number) => Kernel): Generator<Phase, void, undefined> {
  for (let i = 0; i < count; i++) yield { type: 'kernel', index: i, kernel: build(i) };
}

function region(arrays: readonly ArrayRegion[], i: number): ArrayRegion {
  return arrays[i]!;
}

// ---------------------------------------------------------------------------------------------
/** Parameters of {@link streaming}. */
export interface StreamingParams extends GeneratorParams {
  /** Arrays (1..8). Default 3: `a[i] = b[i] + s*c[i]` (StreamTriad). With 1 the single array is only read. */
  readonly arrays?: number;
}

/**
 * StreamTriad / 2DCONV / Allen & Ge "linear": every array is swept once per kernel in order;
 * task t reads element chunk t (32 × elemSize bytes) of each input then writes it in the
 * output. Each page is touched by 4096 / (32·elemSize) warp accesses that run side by side.
 */
export function streaming(params: StreamingParams = {}): Workload {
  const fn = 'streaming';
  const p = resolveParams(fn, params);
  const nArr = intOpt(fn, 'params.arrays', params.arrays ?? 3, 1, 8);
  const chunk = 32 * p.elemSize;
  const n = Math.max(32, Math.floor(p.footprintBytes / (nArr * p.elemSize) / 32) * 32);
  const names = nArr === 3 ? ['a', 'b', 'c'] : Array.from({ length: nArr }, (_, i) => `s${i}`);
  const arrays = layoutArrays(
    p.baseVa,
    p.align,
    names.map((name) => ({ name, bytes: n * p.elemSize, elemSize: p.elemSize })),
  );
  const tasks = n / 32;
  checkBudget(fn, p, tasks * nArr);
  const W = warpCount(p);
  // Task t touches byte t·chunk of every array: with page-aligned arrays and a chunk dividing
  // 4 KiB, the 4096 / chunk tasks of each aligned run touch the same pages.
  const pageAligned = chunk <= 4096 && 4096 % chunk === 0 && arrays.every((r) => r.va % 4096 === 0);
  const samePages = pageAligned ? 4096 / chunk : 1;
  const build = (i: number): Kernel => {
    const streams = dealTasks(
      W,
      tasks,
      tasks * nArr,
      (t, b) => {
        const off = t * chunk;
        for (let a = 1; a < nArr; a++) b.push(region(arrays, a).va + off, READ, chunk);
        b.push(region(arrays, 0).va + off, nArr === 1 ? READ : WRITE, chunk);
      },
      p,
      samePages,
    );
    return makeKernel(`streaming#${i}`, PATTERN.STREAMING, p, arrays, streams);
  };
  return makeWorkload('streaming', PATTERN.STREAMING, p, arrays, p.iterations, () =>
    kernelsPhases(p.iterations, build),
  );
}

// ---------------------------------------------------------------------------------------------
/** Parameters of {@link strided}. */
export interface StridedParams extends GeneratorParams {
  /** Row pitch in bytes: distance between consecutive accesses of one column walk. Default 4096. */
  readonly strideBytes?: number;
}

/**
 * Column-major walk over a row-major matrix of pitch `strideBytes` (GEMM's B operand, the
 * column kernel of ATAX): task t reads 32 elements at row `t mod rows`, column chunk
 * `floor(t / rows)`. Consecutive tasks are `strideBytes` apart; each page is revisited once per
 * column chunk, `rows` tasks later.
 */
export function strided(params: StridedParams = {}): Workload {
  const fn = 'strided';
  const p = resolveParams(fn, params);
  const chunk = 32 * p.elemSize;
  const pitch = params.strideBytes ?? 4096;
  intOpt(fn, 'params.strideBytes', pitch, chunk, 2 ** 30);
  if (pitch % chunk !== 0) {
    throw new ArgumentError(fn, 'params.strideBytes', `must be a multiple of ${chunk} (32 elements)`, pitch);
  }
  const rows = Math.max(1, Math.floor(p.footprintBytes / pitch));
  const arrays = layoutArrays(p.baseVa, p.align, [{ name: 'm', bytes: rows * pitch, elemSize: p.elemSize }]);
  const perRow = pitch / chunk;
  const tasks = rows * perRow;
  checkBudget(fn, p, tasks);
  const W = warpCount(p);
  const base = region(arrays, 0).va;
  const build = (i: number): Kernel => {
    const streams = dealTasks(
      W,
      tasks,
      tasks,
      (t, b) => {
        const col = Math.floor(t / rows);
        const row = t - col * rows;
        b.push(base + row * pitch + col * chunk, READ, chunk);
      },
      p,
    );
    return makeKernel(`strided#${i}`, PATTERN.STRIDED, p, arrays, streams);
  };
  return makeWorkload('strided', PATTERN.STRIDED, p, arrays, p.iterations, () =>
    kernelsPhases(p.iterations, build),
  );
}

// ---------------------------------------------------------------------------------------------
/** Parameters of {@link stencil}. */
export interface StencilParams extends GeneratorParams {
  /** Equal-size arrays, 2..6. Arrays 0 and 1 ping-pong (in/out swap every iteration); the rest are read-only inputs. Default 2. */
  readonly arrays?: number;
  /** Bytes per grid row. Default 4096 (1024 floats). */
  readonly rowBytes?: number;
}

/**
 * hotspot / srad / FDTD-2D / Parboil stencil: each iteration is one kernel that reads rows
 * r-1, r, r+1 of the input grid (plus row r of each extra input) and writes row r of the
 * output, over the whole grid; input and output swap every iteration. Full reuse across
 * iterations: under oversubscription LRU evicts cyclically. Default 4 iterations.
 */
export function stencil(params: StencilParams = {}): Workload {
  const fn = 'stencil';
  const p = resolveParams(fn, params, { iterations: 4 });
  const nArr = intOpt(fn, 'params.arrays', params.arrays ?? 2, 2, 6);
  const chunk = 32 * p.elemSize;
  const rowBytes = params.rowBytes ?? 4096;
  intOpt(fn, 'params.rowBytes', rowBytes, chunk, 2 ** 30);
  if (rowBytes % chunk !== 0) {
    throw new ArgumentError(fn, 'params.rowBytes', `must be a multiple of ${chunk}`, rowBytes);
  }
  const rows = Math.max(3, Math.floor(p.footprintBytes / nArr / rowBytes));
  const names = ['grid0', 'grid1', 'in2', 'in3', 'in4', 'in5'].slice(0, nArr);
  const arrays = layoutArrays(
    p.baseVa,
    p.align,
    names.map((name) => ({ name, bytes: rows * rowBytes, elemSize: p.elemSize })),
  );
  const perRow = rowBytes / chunk;
  const tasks = rows * perRow;
  const perTask = 3 + (nArr - 2) + 1;
  checkBudget(fn, p, tasks * perTask);
  const W = warpCount(p);
  const build = (i: number): Kernel => {
    const src = region(arrays, i % 2).va;
    const dst = region(arrays, (i + 1) % 2).va;
    const streams = dealTasks(
      W,
      tasks,
      tasks * perTask,
      (t, b) => {
        const row = Math.floor(t / perRow);
        const off = row * rowBytes + (t - row * perRow) * chunk;
        if (row > 0) b.push(src + off - rowBytes, READ, chunk);
        b.push(src + off, READ, chunk);
        if (row < rows - 1) b.push(src + off + rowBytes, READ, chunk);
        for (let a = 2; a < nArr; a++) b.push(region(arrays, a).va + off, READ, chunk);
        b.push(dst + off, WRITE, chunk);
      },
      p,
    );
    return makeKernel(`stencil#${i}`, PATTERN.STENCIL, p, arrays, streams);
  };
  return makeWorkload('stencil', PATTERN.STENCIL, p, arrays, p.iterations, () =>
    kernelsPhases(p.iterations, build),
  );
}

// ---------------------------------------------------------------------------------------------
/**
 * Naive (Polybench) GEMM `C = A·B`, N×N each, N = the largest multiple of 32 with 3·N²·elemSize
 * ≤ footprint. A warp computes 32 consecutive elements of a row i of C: for each k it reads
 * B[k][j..j+31] (column walk, stride N·elemSize: one page per row when N ≥ 1024) and, once per
 * 32 k, A[i][k..k+31] (row-sequential); then writes C. All warps walk all of B: heavy reuse. To
 * stay within `maxAccesses`, only R rows of C, spread evenly over N, are computed (R = N when it fits).
 */
export function gemm(params: GeneratorParams = {}): Workload {
  const fn = 'gemm';
  const p = resolveParams(fn, params);
  const e = p.elemSize;
  const N = Math.max(32, Math.floor(Math.sqrt(p.footprintBytes / (3 * e)) / 32) * 32);
  const arrays = layoutArrays(
    p.baseVa,
    p.align,
    ['A', 'B', 'C'].map((name) => ({ name, bytes: N * N * e, elemSize: e })),
  );
  const nb = N / 32;
  const perTask = N + nb + 1;
  const R = Math.max(1, Math.min(N, Math.floor(p.maxAccesses / (perTask * nb))));
  const tasks = R * nb;
  const W = warpCount(p);
  const [A, B, C] = [region(arrays, 0).va, region(arrays, 1).va, region(arrays, 2).va];
  const pitch = N * e;
  const chunk = 32 * e;
  const build = (it: number): Kernel => {
    const streams = dealTasks(
      W,
      tasks,
      tasks * perTask,
      (t, b) => {
        const s = Math.floor(t / nb);
        const jb = t - s * nb;
        const i = Math.floor((s * N) / R);
        for (let k = 0; k < N; k++) {
          if (k % 32 === 0) b.push(A + i * pitch + k * e, READ, chunk);
          b.push(B + k * pitch + jb * chunk, READ, chunk);
        }
        b.push(C + i * pitch + jb * chunk, WRITE, chunk);
      },
      p,
    );
    return makeKernel(`gemm#${it}`, PATTERN.GEMM, p, arrays, streams);
  };
  return makeWorkload('gemm', PATTERN.GEMM, p, arrays, p.iterations, () =>
    kernelsPhases(p.iterations, build),
  );
}

// ---------------------------------------------------------------------------------------------
/**
 * Polybench ATAX `y = Aᵀ(A·x)`, two kernels per iteration over one N×N matrix. Kernel 1 (thread
 * per row): a warp owns 32 rows and for each column j issues 32 lane accesses, one per row
 * (column-major: 32 pages per step when the pitch ≥ 4 KiB). Kernel 2 (thread per column): a warp
 * owns 32 columns and for each row i reads A[i][j..j+31] (128 B, coalesced; warps side by side
 * cover a row sequentially). Vectors x, tmp, y are small and hot.
 */
export function atax(params: GeneratorParams = {}): Workload {
  const fn = 'atax';
  const p = resolveParams(fn, params);
  const e = p.elemSize;
  const N = Math.max(32, Math.floor(Math.sqrt(p.footprintBytes / e) / 32) * 32);
  const arrays = layoutArrays(p.baseVa, p.align, [
    { name: 'A', bytes: N * N * e, elemSize: e },
    { name: 'x', bytes: N * e, elemSize: e },
    { name: 'tmp', bytes: N * e, elemSize: e },
    { name: 'y', bytes: N * e, elemSize: e },
  ]);
  const nb = N / 32;
  const per1 = N * 32 + nb + 1;
  const per2 = N + nb + 1;
  checkBudget(fn, p, nb * per1);
  const W = warpCount(p);
  const [A, X, T, Y] = [0, 1, 2, 3].map((i) => region(arrays, i).va) as [number, number, number, number];
  const pitch = N * e;
  const chunk = 32 * e;
  const build = (k: number): Kernel => {
    const it = Math.floor(k / 2);
    if (k % 2 === 0) {
      const streams = dealTasks(
        W,
        nb,
        nb * per1,
        (rb, b) => {
          const r0 = rb * 32;
          for (let j = 0; j < N; j++) {
            if (j % 32 === 0) b.push(X + j * e, READ, chunk);
            for (let l = 0; l < 32; l++) b.push(A + (r0 + l) * pitch + j * e, READ, e);
          }
          b.push(T + r0 * e, WRITE, chunk);
        },
        p,
      );
      return makeKernel(
        `atax1#${it}`,
        PATTERN.ATAX,
        p,
        [region(arrays, 0), region(arrays, 1), region(arrays, 2)],
        streams,
      );
    }
    const streams = dealTasks(
      W,
      nb,
      nb * per2,
      (cb, b) => {
        for (let i = 0; i < N; i++) {
          if (i % 32 === 0) b.push(T + i * e, READ, chunk);
          b.push(A + i * pitch + cb * chunk, READ, chunk);
        }
        b.push(Y + cb * chunk, WRITE, chunk);
      },
      p,
    );
    return makeKernel(
      `atax2#${it}`,
      PATTERN.ATAX,
      p,
      [region(arrays, 0), region(arrays, 2), region(arrays, 3)],
      streams,
    );
  };
  const count = 2 * p.iterations;
  return makeWorkload('atax', PATTERN.ATAX, p, arrays, count, () => kernelsPhases(count, build));
}

// ---------------------------------------------------------------------------------------------
/**
 * Rodinia nw (Needleman-Wunsch): two N×N int matrices (score, reference), 16×16 tiles, one
 * kernel per anti-diagonal of tiles (2N/16 − 1 launches per iteration). A tile's warp reads the
 * score row above and the column to its left, the 16 reference rows, and writes 16 score rows:
 * 64-byte pieces of 16 different rows, i.e. 16 pages spread over the matrix when the pitch is
 * 4 KiB, and the active band drifts from the top-left to the bottom-right corner.
 */
export function wavefront(params: GeneratorParams = {}): Workload {
  const fn = 'wavefront';
  const p = resolveParams(fn, params);
  const e = 4;
  const N = Math.max(32, Math.floor(Math.sqrt(p.footprintBytes / (2 * e)) / 16) * 16);
  const arrays = layoutArrays(p.baseVa, p.align, [
    { name: 'score', bytes: N * N * e, elemSize: e },
    { name: 'reference', bytes: N * N * e, elemSize: e },
  ]);
  const T = N / 16;
  const diags = 2 * T - 1;
  const W = warpCount(p);
  const S = region(arrays, 0).va;
  const Rf = region(arrays, 1).va;
  const pitch = N * e;
  const build = (k: number): Kernel => {
    const d = k % diags;
    const lo = Math.max(0, d - T + 1);
    const hi = Math.min(d, T - 1);
    const streams = dealTasks(
      W,
      hi - lo + 1,
      (hi - lo + 1) * 49,
      (t, b) => {
        const bi = lo + t;
        const bj = d - bi;
        const r0 = bi * 16;
        const c0 = bj * 16;
        if (r0 > 0) b.push(S + (r0 - 1) * pitch + Math.max(0, c0 - 1) * e, READ, c0 > 0 ? 68 : 64);
        for (let r = 0; r < 16; r++) {
          if (c0 > 0) b.push(S + (r0 + r) * pitch + (c0 - 1) * e, READ, e);
          b.push(Rf + (r0 + r) * pitch + c0 * e, READ, 64);
        }
        for (let r = 0; r < 16; r++) b.push(S + (r0 + r) * pitch + c0 * e, WRITE, 64);
      },
      p,
    );
    return makeKernel(`nw#${Math.floor(k / diags)}.${d}`, PATTERN.WAVEFRONT, p, arrays, streams);
  };
  const count = diags * p.iterations;
  return makeWorkload('wavefront', PATTERN.WAVEFRONT, p, arrays, count, () => kernelsPhases(count, build));
}

// ---------------------------------------------------------------------------------------------
/** Parameters of {@link graphBfs}. */
export interface GraphParams extends GeneratorParams {
  /** Mean out-degree (degrees uniform in [1, 2·degree − 1]). Default 8. */
  readonly degree?: number;
  /** Fraction of edges to a node within ±window of the source. Default 0.8. */
  readonly locality?: number;
  /** Locality window in nodes. Default 1024. */
  readonly window?: number;
}

/** A generated CSR graph. */
export interface CsrGraph {
  readonly nodes: number;
  readonly rowPtr: Int32Array;
  readonly colIdx: Int32Array;
}

/** Generates the CSR graph {@link graphBfs} traverses (seeded). */
export function generateCsrGraph(
  nodes: number,
  degree: number,
  locality: number,
  window: number,
  seed: number,
): CsrGraph {
  const rng = new Rng(seed);
  const rowPtr = new Int32Array(nodes + 1);
  for (let u = 0; u < nodes; u++) rowPtr[u + 1] = rowPtr[u]! + 1 + rng.below(2 * degree - 1);
  const colIdx = new Int32Array(rowPtr[nodes]!);
  for (let u = 0; u < nodes; u++) {
    for (let i = rowPtr[u]!; i < rowPtr[u + 1]!; i++) {
      let v: number;
      if (rng.next() < locality) {
        v = u + rng.between(-window, window);
        if (v < 0) v = -v;
        if (v >= nodes) v = 2 * (nodes - 1) - v;
        if (v < 0) v = 0;
      } else {
        v = rng.below(nodes);
      }
      colIdx[i] = v;
    }
  }
  return { nodes, rowPtr, colIdx };
}

/**
 * Rodinia bfs over a generated CSR graph with some locality: per level two kernels. Kernel 1
 * (thread per node) streams the frontier mask; each frontier lane reads its rowPtr pair, its
 * edge range of colIdx (contiguous: CSR locality) and, per neighbour, visited[v] and, if
 * unvisited, writes cost[v] and updating[v] (data-dependent pages: ~`locality` of them near
 * the source node, the rest uniform). Kernel 2 streams updating[] and, where the chunk has new
 * nodes, writes mask/visited/updating. Levels run from node 0 until the frontier is empty
 * (or `iterations` levels if given).
 */
export function graphBfs(params: GraphParams = {}): Workload {
  const fn = 'graphBfs';
  const p = resolveParams(fn, params, { iterations: 1 << 20 });
  const degree = intOpt(fn, 'params.degree', params.degree ?? 8, 1, 1024);
  const locality = params.locality ?? 0.8;
  if (!(locality >= 0 && locality <= 1))
    throw new ArgumentError(fn, 'params.locality', 'must be in [0, 1]', locality);
  const window = intOpt(fn, 'params.window', params.window ?? 1024, 1, 2 ** 30);
  const n = Math.max(64, Math.floor(p.footprintBytes / (4 * (5 + degree)) / 32) * 32);
  const g = generateCsrGraph(n, degree, locality, window, p.seed);
  const m = g.colIdx.length;
  const arrays = layoutArrays(p.baseVa, p.align, [
    { name: 'rowPtr', bytes: (n + 1) * 4, elemSize: 4 },
    { name: 'colIdx', bytes: m * 4, elemSize: 4 },
    { name: 'mask', bytes: n * 4, elemSize: 4 },
    { name: 'updating', bytes: n * 4, elemSize: 4 },
    { name: 'visited', bytes: n * 4, elemSize: 4 },
    { name: 'cost', bytes: n * 4, elemSize: 4 },
  ]);
  const [RP, CI, MK, UP, VI, CO] = [0, 1, 2, 3, 4, 5].map((i) => region(arrays, i).va) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  checkBudget(fn, p, n / 16 + 2 * m + n);
  // Count levels once (cheap) so phaseCount is known.
  const levels = Math.min(p.iterations, bfsLevels(g));
  const W = warpCount(p);
  const tasks = n / 32;
  const phases = function* (): Generator<Phase, void, undefined> {
    const mask = new Uint8Array(n);
    const visited = new Uint8Array(n);
    const updating = new Uint8Array(n);
    mask[0] = 1;
    visited[0] = 1;
    for (let level = 0; level < levels; level++) {
      const k1 = dealTasks(
        W,
        tasks,
        tasks * 2,
        (t, b) => {
          const u0 = t * 32;
          b.push(MK + u0 * 4, READ, 128);
          let any = false;
          for (let l = 0; l < 32; l++) {
            const u = u0 + l;
            if (mask[u] === 0) continue;
            if (!any) {
              b.push(MK + u0 * 4, WRITE, 128);
              any = true;
            }
            b.push(RP + u * 4, READ, 8);
            for (let i = g.rowPtr[u]!; i < g.rowPtr[u + 1]!; i++) {
              b.push(CI + i * 4, READ, 4);
              const v = g.colIdx[i]!;
              b.push(VI + v * 4, READ, 4);
              if (visited[v] === 0) {
                b.push(CO + v * 4, WRITE, 4);
                b.push(UP + v * 4, WRITE, 4);
              }
            }
          }
        },
        p,
      );
      // Apply kernel 1's effect (after the build: it ran on the level's snapshot).
      for (let u = 0; u < n; u++) {
        if (mask[u] === 0) continue;
        mask[u] = 0;
        for (let i = g.rowPtr[u]!; i < g.rowPtr[u + 1]!; i++) {
          const v = g.colIdx[i]!;
          if (visited[v] === 0) updating[v] = 1;
        }
      }
      yield {
        type: 'kernel',
        index: 2 * level,
        kernel: makeKernel(`bfs1#${level}`, PATTERN.GRAPH, p, arrays, k1),
      };
      const k2 = dealTasks(
        W,
        tasks,
        tasks * 2,
        (t, b) => {
          const u0 = t * 32;
          b.push(UP + u0 * 4, READ, 128);
          for (let l = 0; l < 32; l++) {
            if (updating[u0 + l] !== 0) {
              b.push(MK + u0 * 4, WRITE, 128);
              b.push(VI + u0 * 4, WRITE, 128);
              b.push(UP + u0 * 4, WRITE, 128);
              break;
            }
          }
        },
        p,
      );
      for (let u = 0; u < n; u++) {
        if (updating[u] !== 0) {
          mask[u] = 1;
          visited[u] = 1;
          updating[u] = 0;
        }
      }
      yield {
        type: 'kernel',
        index: 2 * level + 1,
        kernel: makeKernel(`bfs2#${level}`, PATTERN.GRAPH, p, arrays, k2),
      };
    }
  };
  return makeWorkload('graphBfs', PATTERN.GRAPH, p, arrays, 2 * levels, phases);
}

/** Number of BFS levels from node 0 with a non-empty frontier. */
export function bfsLevels(g: CsrGraph): number {
  const visited = new Uint8Array(g.nodes);
  let frontier = new Int32Array(g.nodes);
  let next = new Int32Array(g.nodes);
  let nf = 1;
  frontier[0] = 0;
  visited[0] = 1;
  let levels = 0;
  while (nf > 0) {
    levels++;
    let nn = 0;
    for (let k = 0; k < nf; k++) {
      const u = frontier[k]!;
      for (let i = g.rowPtr[u]!; i < g.rowPtr[u + 1]!; i++) {
        const v = g.colIdx[i]!;
        if (visited[v] === 0) {
          visited[v] = 1;
          next[nn++] = v;
        }
      }
    }
    [frontier, next] = [next, frontier];
    nf = nn;
  }
  return levels;
}

// ---------------------------------------------------------------------------------------------
/** Parameters of {@link randomAccess}. */
export interface RandomParams extends GeneratorParams {
  /** Updates per kernel (lane-level). Default: one per table element, capped to fit maxAccesses. */
  readonly updates?: number;
  /** Issue each update as one ATOMIC instead of READ then WRITE. Default false. */
  readonly atomic?: boolean;
  /** 'updates' (HPCC RandomAccess) or 'pages' (Allen & Ge "random": every page once, in a random order). Default 'updates'. */
  readonly mode?: 'updates' | 'pages';
}

/**
 * HPCC RandomAccess (`T[r mod size] ^= r`): each lane updates a uniformly random element
 * (elemSize default 8), no locality at all, so prefetching only adds traffic. Mode 'pages'
 * is Allen & Ge's random page touch: each page written once in a random permutation.
 */
export function randomAccess(params: RandomParams = {}): Workload {
  const fn = 'randomAccess';
  const p = resolveParams(fn, params, { elemSize: 8 });
  const e = p.elemSize;
  const words = Math.floor(p.footprintBytes / e);
  const mode = params.mode ?? 'updates';
  if (mode !== 'updates' && mode !== 'pages')
    throw new ArgumentError(fn, 'params.mode', "must be 'updates' or 'pages'", mode);
  const atomic = params.atomic === true;
  const perUpdate = atomic ? 1 : 2;
  const pages = Math.ceil((words * e) / 4096);
  const arrays = layoutArrays(p.baseVa, p.align, [{ name: 'table', bytes: words * e, elemSize: e }]);
  const T = region(arrays, 0).va;
  const W = warpCount(p);
  let updates: number;
  if (mode === 'pages') {
    updates = pages;
    checkBudget(fn, p, pages);
  } else if (params.updates !== undefined) {
    updates = intOpt(fn, 'params.updates', params.updates, 1, 2 ** 31);
    checkBudget(fn, p, updates * perUpdate);
  } else {
    updates = Math.max(1, Math.min(words, Math.floor(p.maxAccesses / perUpdate)));
  }
  const build = (it: number): Kernel => {
    const rng = new Rng((p.seed + Math.imul(it, 0x9e3779b1)) >>> 0);
    if (mode === 'pages') {
      const perm = new Int32Array(pages);
      for (let i = 0; i < pages; i++) perm[i] = i;
      for (let i = pages - 1; i > 0; i--) {
        const j = rng.below(i + 1);
        const x = perm[i]!;
        perm[i] = perm[j]!;
        perm[j] = x;
      }
      const streams = dealTasks(
        W,
        pages,
        pages,
        (t, b) => {
          b.push(T + perm[t]! * 4096, WRITE, e);
        },
        p,
      );
      return makeKernel(`random-pages#${it}`, PATTERN.RANDOM, p, arrays, streams);
    }
    // Draw indices in task order (independent of the warp count).
    const idx = new Float64Array(updates);
    for (let i = 0; i < updates; i++) idx[i] = rng.below(words);
    const tasks = Math.ceil(updates / 32);
    const streams = dealTasks(
      W,
      tasks,
      updates * perUpdate,
      (t, b) => {
        const end = Math.min(updates, t * 32 + 32);
        for (let i = t * 32; i < end; i++) {
          const va = T + idx[i]! * e;
          if (atomic) b.push(va, ATOMIC, e);
          else {
            b.push(va, READ, e);
            b.push(va, WRITE, e);
          }
        }
      },
      p,
    );
    return makeKernel(`random#${it}`, PATTERN.RANDOM, p, arrays, streams);
  };
  return makeWorkload('randomAccess', PATTERN.RANDOM, p, arrays, p.iterations, () =>
    kernelsPhases(p.iterations, build),
  );
}

// ---------------------------------------------------------------------------------------------
/** Parameters of {@link kmeans}. */
export interface KmeansParams extends GeneratorParams {
  /** Features per point. Default 34 (Rodinia kdd_cup). */
  readonly features?: number;
  /** Clusters. Default 5. */
  readonly clusters?: number;
}

/**
 * Rodinia kmeans: every iteration (default 5) one kernel, a thread per point; features are
 * stored feature-major (`f·npoints + p`), so a warp reads 128 B of each feature row once per
 * cluster (pages `npoints·4` bytes apart) plus the small, hot centroid array, then writes its
 * membership chunk. Working set ≈ footprint, fully reused every iteration.
 */
export function kmeans(params: KmeansParams = {}): Workload {
  const fn = 'kmeans';
  const p = resolveParams(fn, params, { iterations: 5 });
  const nf = intOpt(fn, 'params.features', params.features ?? 34, 1, 4096);
  const k = intOpt(fn, 'params.clusters', params.clusters ?? 5, 1, 4096);
  const np = Math.max(32, Math.floor(p.footprintBytes / (4 * (nf + 1)) / 32) * 32);
  const arrays = layoutArrays(p.baseVa, p.align, [
    { name: 'features', bytes: np * nf * 4, elemSize: 4 },
    { name: 'clusters', bytes: k * nf * 4, elemSize: 4 },
    { name: 'membership', bytes: np * 4, elemSize: 4 },
  ]);
  const [F, Cl, M] = [0, 1, 2].map((i) => region(arrays, i).va) as [number, number, number];
  const tasks = np / 32;
  const perTask = k * (nf + Math.ceil(nf / 32)) + 1;
  checkBudget(fn, p, tasks * perTask);
  const W = warpCount(p);
  const build = (it: number): Kernel => {
    const streams = dealTasks(
      W,
      tasks,
      tasks * perTask,
      (t, b) => {
        const p0 = t * 32;
        for (let c = 0; c < k; c++) {
          for (let f = 0; f < nf; f++) {
            if (f % 32 === 0) b.push(Cl + (c * nf + f) * 4, READ, Math.min(32, nf - f) * 4);
            b.push(F + (f * np + p0) * 4, READ, 128);
          }
        }
        b.push(M + p0 * 4, WRITE, 128);
      },
      p,
    );
    return makeKernel(`kmeans#${it}`, PATTERN.REUSE, p, arrays, streams);
  };
  return makeWorkload('kmeans', PATTERN.REUSE, p, arrays, p.iterations, () =>
    kernelsPhases(p.iterations, build),
  );
}

// ---------------------------------------------------------------------------------------------
/** Every generator by name (for CLIs and sweeps). */
export const GENERATORS = {
  streaming,
  strided,
  stencil,
  gemm,
  atax,
  wavefront,
  graphBfs,
  randomAccess,
  kmeans,
} as const;
/** A key of {@link GENERATORS}. */
export type GeneratorName = keyof typeof GENERATORS;

/** Runs the generator `name` with `params` (generator-specific fields pass through). */
export function generate(
  name: GeneratorName,
  params: GeneratorParams & Record<string, unknown> = {},
): Workload {
  const g = GENERATORS[name] as ((p: GeneratorParams) => Workload) | undefined;
  if (g === undefined)
    throw new ArgumentError('generate', 'name', `must be one of ${Object.keys(GENERATORS).join(', ')}`, name);
  return g(params);
}
