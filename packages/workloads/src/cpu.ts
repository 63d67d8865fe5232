/**
 * CPU-side activity between kernels, as plain data: what an mm-driving runner executes later
 * (this package does not depend on `@hmmkit/mm`). Values of PROT_* and MADV_* are Linux's.
 *
 * @module
 */
import { ArgumentError, Rng } from '@hmmkit/sim';
import type { ArrayRegion, Phase, Workload } from './kernel.ts';

/** `mmap`/`mprotect` protection bits (include/uapi/asm-generic/mman-common.h). */
export const PROT = { NONE: 0, READ: 1, WRITE: 2, EXEC: 4 } as const;

/** `madvise` advice values (include/uapi/asm-generic/mman-common.h). */
export const MADV = {
  NORMAL: 0,
  RANDOM: 1,
  SEQUENTIAL: 2,
  WILLNEED: 3,
  DONTNEED: 4,
  FREE: 8,
  REMOVE: 9,
  DONTFORK: 10,
  DOFORK: 11,
  MERGEABLE: 12,
  HUGEPAGE: 14,
  NOHUGEPAGE: 15,
  COLD: 20,
  PAGEOUT: 21,
  POPULATE_READ: 22,
  POPULATE_WRITE: 23,
} as const;
/** One of the {@link MADV} values. */
export type MadviseAdvice = (typeof MADV)[keyof typeof MADV];

/**
 * CPU accesses over `[addr, addr+len)`: one access every `stride` bytes (default 4096: one per
 * page), read or write. Models a CPU thread touching an array between kernels.
 */
export interface CpuTouchOp {
  readonly op: 'touch';
  readonly addr: number;
  readonly len: number;
  readonly write: boolean;
  readonly stride: number;
}
/** Models mmap(addr, len, prot, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED). */
export interface CpuMmapOp {
  readonly op: 'mmap';
  readonly addr: number;
  readonly len: number;
  readonly prot: number;
}
/** Models munmap(addr, len). */
export interface CpuMunmapOp {
  readonly op: 'munmap';
  readonly addr: number;
  readonly len: number;
}
/** Models mprotect(addr, len, prot). */
export interface CpuMprotectOp {
  readonly op: 'mprotect';
  readonly addr: number;
  readonly len: number;
  readonly prot: number;
}
/** Models madvise(addr, len, advice). */
export interface CpuMadviseOp {
  readonly op: 'madvise';
  readonly addr: number;
  readonly len: number;
  readonly advice: MadviseAdvice;
}
/** Models fork(): the child's copy-on-write duplicate of the address space (write-protects private pages). */
export interface CpuForkOp {
  readonly op: 'fork';
}

/** A CPU-side operation. */
export type CpuOp = CpuTouchOp | CpuMmapOp | CpuMunmapOp | CpuMprotectOp | CpuMadviseOp | CpuForkOp;

function checkRange(fn: string, addr: number, len: number): void {
  if (!Number.isInteger(addr) || addr < 0 || addr % 4096 !== 0) {
    throw new ArgumentError(fn, 'addr', 'must be a non-negative multiple of 4096', addr);
  }
  if (!Number.isInteger(len) || len <= 0)
    throw new ArgumentError(fn, 'len', 'must be a positive integer', len);
}

/** A CPU touch of a range (read or write), one access per `stride` bytes. */
export function cpuTouch(addr: number, len: number, write: boolean, stride = 4096): CpuTouchOp {
  checkRange('cpuTouch', addr, len);
  if (!Number.isInteger(stride) || stride < 1) {
    throw new ArgumentError('cpuTouch', 'stride', 'must be a positive integer', stride);
  }
  return { op: 'touch', addr, len, write, stride };
}

/** Options of the storm generators. */
export interface StormOptions {
  /** Operations to generate. */
  readonly count: number;
  /** Sub-range length in pages: uniform in [1, maxPages]. Default 16. */
  readonly maxPages?: number;
  readonly seed?: number;
}

function storm<T extends CpuOp>(
  fn: string,
  region: Pick<ArrayRegion, 'va' | 'bytes'>,
  opts: StormOptions,
  make: (addr: number, len: number, k: number, rng: Rng) => T,
): T[] {
  const pages = Math.floor(region.bytes / 4096);
  if (region.va % 4096 !== 0 || pages < 1) {
    throw new ArgumentError(fn, 'region', 'must be page aligned and hold at least one page', region.va);
  }
  if (!Number.isInteger(opts.count) || opts.count < 0 || opts.count > 1 << 24) {
    throw new ArgumentError(fn, 'opts.count', 'must be an integer in [0, 2^24]', opts.count);
  }
  const maxPages = opts.maxPages ?? 16;
  if (!Number.isInteger(maxPages) || maxPages < 1) {
    throw new ArgumentError(fn, 'opts.maxPages', 'must be a positive integer', maxPages);
  }
  const rng = new Rng(opts.seed ?? 1);
  const out: T[] = [];
  for (let k = 0; k < opts.count; k++) {
    const n = 1 + rng.below(Math.min(maxPages, pages));
    const first = rng.below(pages - n + 1);
    out.push(make(region.va + first * 4096, n * 4096, k, rng));
  }
  return out;
}

/**
 * munmap of random page-aligned sub-ranges of `region`, each followed by an mmap of the same
 * range (so the region stays usable): a notifier-invalidation storm.
 */
export function munmapStorm(region: Pick<ArrayRegion, 'va' | 'bytes'>, opts: StormOptions): CpuOp[] {
  const out: CpuOp[] = [];
  for (const u of storm('munmapStorm', region, opts, (addr, len) => ({ op: 'munmap' as const, addr, len }))) {
    out.push(u, { op: 'mmap', addr: u.addr, len: u.len, prot: PROT.READ | PROT.WRITE });
  }
  return out;
}

/** mprotect storm: alternately drops write (PROT_READ) and restores PROT_READ|PROT_WRITE on random sub-ranges. */
export function mprotectStorm(
  region: Pick<ArrayRegion, 'va' | 'bytes'>,
  opts: StormOptions,
): CpuMprotectOp[] {
  return storm('mprotectStorm', region, opts, (addr, len, k) => ({
    op: 'mprotect' as const,
    addr,
    len,
    prot: k % 2 === 0 ? PROT.READ : PROT.READ | PROT.WRITE,
  }));
}

/** madvise storm over random sub-ranges with the given advice (default MADV_DONTNEED). */
export function madviseStorm(
  region: Pick<ArrayRegion, 'va' | 'bytes'>,
  opts: StormOptions & { readonly advice?: MadviseAdvice },
): CpuMadviseOp[] {
  const advice = opts.advice ?? MADV.DONTNEED;
  return storm('madviseStorm', region, opts, (addr, len) => ({ op: 'madvise' as const, addr, len, advice }));
}

/** Options of {@link withCpuPhases}. */
export interface CpuPhaseOptions {
  /** Name suffix of the derived workload. Default '+cpu'. */
  readonly suffix?: string;
  /** Also run `between(-1)` before the first kernel. Default false. */
  readonly before?: boolean;
}

/**
 * Interleaves CPU phases with a workload's kernels: after kernel k (k = 0, 1, ...) a CPU phase with
 * `between(k)` ops is inserted when that list is non-empty. Phase indices are renumbered.
 */
export function withCpuPhases(
  w: Workload,
  between: (kernelIndex: number) => readonly CpuOp[],
  opts: CpuPhaseOptions = {},
): Workload {
  // Count phases without building kernels: `between` must be pure (it is asked again later).
  let extra = opts.before === true && between(-1).length > 0 ? 1 : 0;
  for (let k = 0; k < w.kernelCount; k++) if (between(k).length > 0) extra++;
  const phases = function* (): Generator<Phase, void, undefined> {
    let index = 0;
    let k = 0;
    if (opts.before === true) {
      const ops = between(-1);
      if (ops.length > 0) yield { type: 'cpu', index: index++, ops };
    }
    for (const ph of w.phases()) {
      if (ph.type === 'cpu') {
        yield { type: 'cpu', index: index++, ops: ph.ops };
        continue;
      }
      yield { type: 'kernel', index: index++, kernel: ph.kernel };
      const ops = between(k++);
      if (ops.length > 0) yield { type: 'cpu', index: index++, ops };
    }
  };
  return { ...w, name: w.name + (opts.suffix ?? '+cpu'), phaseCount: w.phaseCount + extra, phases };
}

/**
 * CPU/GPU ping-pong: after every kernel, the CPU reads then writes each listed array (or all of
 * the workload's arrays), one access per page, so pages migrate back and forth.
 */
export function pingPong(w: Workload, arrays: readonly ArrayRegion[] = w.arrays): Workload {
  const ops: CpuOp[] = [];
  for (const a of arrays) {
    const len = Math.ceil(a.bytes / 4096) * 4096;
    ops.push(cpuTouch(a.va, len, false), cpuTouch(a.va, len, true));
  }
  return withCpuPhases(w, () => ops, { suffix: '+pingpong' });
}
