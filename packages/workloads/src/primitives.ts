/**
 * The synthesis recipe's primitives (uvm-costs §4.2) for building custom kernels: each is a list
 * of tasks (a warp-wide unit of work) that {@link buildKernel} deals to warps round robin.
 * Combine them with {@link zip} (task t of every primitive in one task: StreamTriad's
 * read b, read c, write a) or {@link concat} (one pass after the other).
 *
 * @module
 */
import { ArgumentError, Rng } from '@hmmkit/sim';
import { ACCESS_KIND, type AccessKind, type AccessSink } from './access.ts';
import {
  type ArrayRegion,
  checkBudget,
  dealTasks,
  type GeneratorParams,
  type Kernel,
  makeKernel,
  makeWorkload,
  type PatternClass,
  type Phase,
  resolveParams,
  type Workload,
  warpCount,
} from './kernel.ts';

/** A list of tasks; `emit(t, b)` pushes task t's accesses. */
export interface Primitive {
  readonly tasks: number;
  /** Accesses per task (an estimate for preallocation and the budget check). */
  readonly perTask: number;
  emit(task: number, b: AccessSink): void;
}

function checkRegion(fn: string, r: ArrayRegion): void {
  if (!Number.isInteger(r.va) || r.va < 0 || !Number.isInteger(r.bytes) || r.bytes < 1) {
    throw new ArgumentError(fn, 'region', 'must have an integer va ≥ 0 and bytes ≥ 1', r.name);
  }
}

/** `stream(arr, from, to)`: 32-element warp accesses over `[from, to)` bytes of `region`, in order. */
export function streamPass(
  region: ArrayRegion,
  opts: { readonly from?: number; readonly to?: number; readonly kind?: AccessKind } = {},
): Primitive {
  checkRegion('streamPass', region);
  const from = opts.from ?? 0;
  const to = opts.to ?? region.bytes;
  if (!Number.isInteger(from) || !Number.isInteger(to) || from < 0 || to > region.bytes || from >= to) {
    throw new ArgumentError('streamPass', 'opts', 'needs integers 0 ≤ from < to ≤ region.bytes', {
      from,
      to,
    });
  }
  const chunk = 32 * region.elemSize;
  const kind = opts.kind ?? ACCESS_KIND.READ;
  const base = region.va + from;
  const len = to - from;
  return {
    tasks: Math.ceil(len / chunk),
    perTask: 1,
    emit(t, b) {
      const off = t * chunk;
      b.push(base + off, kind, Math.min(chunk, len - off));
    },
  };
}

/** `strided(arr, stride, count)`: `count` warp accesses `strideBytes` apart, wrapping inside the region. */
export function stridedPass(
  region: ArrayRegion,
  opts: { readonly strideBytes: number; readonly count?: number; readonly kind?: AccessKind },
): Primitive {
  checkRegion('stridedPass', region);
  const chunk = 32 * region.elemSize;
  const stride = opts.strideBytes;
  if (!Number.isInteger(stride) || stride < chunk || stride % chunk !== 0) {
    throw new ArgumentError(
      'stridedPass',
      'opts.strideBytes',
      `must be a positive multiple of ${chunk}`,
      stride,
    );
  }
  const rows = Math.max(1, Math.floor(region.bytes / stride));
  const perRow = stride / chunk;
  const count = opts.count ?? rows * perRow;
  if (!Number.isInteger(count) || count < 1)
    throw new ArgumentError('stridedPass', 'opts.count', 'must be ≥ 1', count);
  const kind = opts.kind ?? ACCESS_KIND.READ;
  return {
    tasks: count,
    perTask: 1,
    emit(t, b) {
      const col = Math.floor(t / rows) % perRow;
      const row = t % rows;
      b.push(region.va + row * stride + col * chunk, kind, chunk);
    },
  };
}

/**
 * `stencil(arrays, rows, cols, halo)`: for each 32-element piece of each row, read rows
 * r−halo..r+halo of `src` and row r of every `extra` input, then write row r of `dst`.
 */
export function stencilPass(
  src: ArrayRegion,
  dst: ArrayRegion,
  opts: { readonly rowBytes: number; readonly halo?: number; readonly extra?: readonly ArrayRegion[] },
): Primitive {
  checkRegion('stencilPass', src);
  checkRegion('stencilPass', dst);
  const chunk = 32 * src.elemSize;
  const rowBytes = opts.rowBytes;
  if (!Number.isInteger(rowBytes) || rowBytes < chunk || rowBytes % chunk !== 0) {
    throw new ArgumentError(
      'stencilPass',
      'opts.rowBytes',
      `must be a positive multiple of ${chunk}`,
      rowBytes,
    );
  }
  const halo = opts.halo ?? 1;
  if (!Number.isInteger(halo) || halo < 0 || halo > 64) {
    throw new ArgumentError('stencilPass', 'opts.halo', 'must be an integer in [0, 64]', halo);
  }
  const extra = opts.extra ?? [];
  const rows = Math.floor(Math.min(src.bytes, dst.bytes) / rowBytes);
  const perRow = rowBytes / chunk;
  return {
    tasks: rows * perRow,
    perTask: 2 * halo + 2 + extra.length,
    emit(t, b) {
      const row = Math.floor(t / perRow);
      const off = row * rowBytes + (t - row * perRow) * chunk;
      for (let d = -halo; d <= halo; d++) {
        if (row + d >= 0 && row + d < rows) b.push(src.va + off + d * rowBytes, ACCESS_KIND.READ, chunk);
      }
      for (const e of extra) b.push(e.va + off, ACCESS_KIND.READ, chunk);
      b.push(dst.va + off, ACCESS_KIND.WRITE, chunk);
    },
  };
}

/**
 * `gatherCsr(graph, frontier)`: one task per frontier node u: read rowPtr[u], then for each edge
 * read colIdx[e] and `data[v]` (4-byte elements). Regions hold the CSR arrays at their VAs.
 */
export function gatherCsr(
  graph: { readonly rowPtr: Int32Array; readonly colIdx: Int32Array },
  frontier: Int32Array,
  regions: { readonly rowPtr: ArrayRegion; readonly colIdx: ArrayRegion; readonly data: ArrayRegion },
): Primitive {
  for (const r of [regions.rowPtr, regions.colIdx, regions.data]) checkRegion('gatherCsr', r);
  const nodes = graph.rowPtr.length - 1;
  for (const u of frontier) {
    if (u < 0 || u >= nodes)
      throw new ArgumentError('gatherCsr', 'frontier', `must hold node ids < ${nodes}`, u);
  }
  const avg = nodes > 0 ? graph.colIdx.length / nodes : 0;
  return {
    tasks: frontier.length,
    perTask: 1 + 2 * Math.ceil(avg),
    emit(t, b) {
      const u = frontier[t]!;
      b.push(regions.rowPtr.va + u * 4, ACCESS_KIND.READ, 8);
      for (let e = graph.rowPtr[u]!; e < graph.rowPtr[u + 1]!; e++) {
        b.push(regions.colIdx.va + e * 4, ACCESS_KIND.READ, 4);
        b.push(regions.data.va + graph.colIdx[e]! * 4, ACCESS_KIND.READ, 4);
      }
    },
  };
}

/** `random(n, dist)`: `count` uniformly random element accesses of `kind` in `region` (seeded; 32 per task). */
export function randomPass(
  region: ArrayRegion,
  opts: { readonly count: number; readonly seed?: number; readonly kind?: AccessKind },
): Primitive {
  checkRegion('randomPass', region);
  const count = opts.count;
  if (!Number.isInteger(count) || count < 1 || count > 1 << 28) {
    throw new ArgumentError('randomPass', 'opts.count', 'must be an integer in [1, 2^28]', count);
  }
  const words = Math.max(1, Math.floor(region.bytes / region.elemSize));
  const rng = new Rng(opts.seed ?? 1);
  const idx = new Float64Array(count);
  for (let i = 0; i < count; i++) idx[i] = rng.below(words);
  const kind = opts.kind ?? ACCESS_KIND.READ;
  return {
    tasks: Math.ceil(count / 32),
    perTask: 32,
    emit(t, b) {
      const end = Math.min(count, t * 32 + 32);
      for (let i = t * 32; i < end; i++) b.push(region.va + idx[i]! * region.elemSize, kind, region.elemSize);
    },
  };
}

/** Task t runs task t of every primitive that has one, in argument order. */
export function zip(...prims: readonly Primitive[]): Primitive {
  let tasks = 0;
  let perTask = 0;
  for (const p of prims) {
    tasks = Math.max(tasks, p.tasks);
    perTask += p.perTask;
  }
  return {
    tasks,
    perTask,
    emit(t, b) {
      for (const p of prims) if (t < p.tasks) p.emit(t, b);
    },
  };
}

/** The tasks of each primitive, one primitive after the other. */
export function concat(...prims: readonly Primitive[]): Primitive {
  const starts: number[] = [];
  let tasks = 0;
  let accesses = 0;
  for (const p of prims) {
    starts.push(tasks);
    tasks += p.tasks;
    accesses += p.tasks * p.perTask;
  }
  return {
    tasks,
    perTask: tasks === 0 ? 0 : accesses / tasks,
    emit(t, b) {
      let i = starts.length - 1;
      while (starts[i]! > t) i--;
      prims[i]!.emit(t - starts[i]!, b);
    },
  };
}

/**
 * Builds a kernel from a primitive: tasks dealt to `numSMs × warpsPerSM` warps round robin.
 * Throws if the estimated accesses exceed `maxAccesses`.
 */
export function buildKernel(
  name: string,
  pattern: PatternClass,
  arrays: readonly ArrayRegion[],
  prim: Primitive,
  params: GeneratorParams = {},
): Kernel {
  const p = resolveParams('buildKernel', params);
  const estimate = Math.ceil(prim.tasks * prim.perTask);
  checkBudget('buildKernel', p, estimate);
  return makeKernel(name, pattern, p, arrays, dealTasks(warpCount(p), prim.tasks, estimate, prim.emit, p));
}

/** A GPU-only workload of `count` kernels built on demand by `kernel(i)` (for custom patterns). */
export function customWorkload(
  name: string,
  pattern: PatternClass,
  arrays: readonly ArrayRegion[],
  count: number,
  kernel: (i: number) => Kernel,
  params: GeneratorParams = {},
): Workload {
  const p = resolveParams('customWorkload', { ...params, iterations: Math.max(1, count) });
  const phases = function* (): Generator<Phase, void, undefined> {
    for (let i = 0; i < count; i++) yield { type: 'kernel', index: i, kernel: kernel(i) };
  };
  return makeWorkload(name, pattern, p, arrays, count, phases);
}
