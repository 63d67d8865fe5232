/**
 * Shared pieces of the client-suite ports (KFDSVMRangeTest, xe_exec_system_allocator): worlds
 * shaped like the two drivers, GPU "dispatches" (a copy, a fill, a read-back) built on
 * {@link runKernel}, and where a page lives (system memory, or which GPU's VRAM).
 */
import { ACCESS } from '@hmmkit/gpu';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  PROT_READ,
  PROT_WRITE,
  PTE_DEVICE_PRIVATE,
  pteType,
} from '@hmmkit/mm';
import { createSim, type Sim } from '@hmmkit/sim';
import { expect } from 'vitest';
import {
  type Access,
  amdkfdPolicy,
  createSvmWorld,
  drmGpusvmPolicy,
  type KernelRun,
  perRangeNotifiers,
  runKernel,
  type SvmWorld,
  type SvmWorldOptions,
  worldVerdict,
} from '../../src/index.ts';

export const P = 4096;
export const K64 = 0x10000;
export const M2 = 0x200000;
export const R = ACCESS.READ;
export const W = ACCESS.WRITE;
export const A = ACCESS.ATOMIC;
/** Accesses per warp of the helpers' kernels. */
const WARP = 32;

/**
 * A KFD-like world (XNACK on): amdkfd granularity ranges, one notifier per range, VRAM on GPU
 * fault unless the preferred location says otherwise (svm_range_best_restore_location with every
 * GPU accessible).
 */
export function kfdWorld(sim: Sim, opts: SvmWorldOptions = {}): Promise<SvmWorld> {
  return createSvmWorld(sim, {
    granule: amdkfdPolicy(),
    notifiers: perRangeNotifiers(),
    devmem: { migrate: 'fault' },
    vramBytes: 32 << 20,
    ...opts,
  });
}

/** An xe-like world: drm_gpusvm chunks {2M, 64K, 4K}, VRAM on GPU fault (xe_svm_handle_pagefault). */
export function xeWorld(sim: Sim, opts: SvmWorldOptions = {}): Promise<SvmWorld> {
  return createSvmWorld(sim, {
    granule: drmGpusvmPolicy(),
    devmem: { migrate: 'fault' },
    vramBytes: 32 << 20,
    ...opts,
  });
}

/** mmap(NULL, len, RW, PRIVATE|ANON [| FIXED]) or throw. */
export async function mmapRw(w: SvmWorld, len: number, at?: number, extraFlags = 0): Promise<number> {
  const fixed = at === undefined ? 0 : MAP_FIXED;
  const a = await w.mm.mmap(
    at ?? 0,
    len,
    PROT_READ | PROT_WRITE,
    MAP_PRIVATE | MAP_ANONYMOUS | fixed | extraFlags,
  );
  if (a < 0) throw new Error(`mmap failed: ${a}`);
  return a;
}

/** Where the page at `va` lives: 'none' (no page), 'sys', or 'gpu<i>' (device-private on GPU i). */
export function where(w: SvmWorld, va: number): string {
  const e = w.mm.readEntry(va);
  if (e.flags === 0) return 'none';
  if (pteType(e.flags) === PTE_DEVICE_PRIVATE) {
    const d = w.svm.devmemIndexOf(e.val);
    return d < 0 ? 'device?' : `gpu${d}`;
  }
  return 'sys';
}

/** Number of pages of `[start, end)` living at `place` (see {@link where}). */
export function pagesAt(w: SvmWorld, start: number, end: number, place: string): number {
  let n = 0;
  for (let a = start; a < end; a += P) if (where(w, a) === place) n++;
  return n;
}

/** Splits accesses into warps of {@link WARP}. */
function warps(list: Access[]): Access[][] {
  const out: Access[][] = [];
  for (let i = 0; i < list.length; i += WARP) out.push(list.slice(i, i + WARP));
  return out;
}

/** A kernel on device `dev` that must not fail; returns its run. */
export async function kernel(w: SvmWorld, dev: number, accesses: Access[]): Promise<KernelRun> {
  const r = await runKernel(w, dev, warps(accesses));
  expect(r.failed, 'warps cancelled').toBe(0);
  return r;
}

/** A kernel of `accesses` (one per warp) whose cancelled warps are reported, not asserted. */
export function runKernelRaw(w: SvmWorld, dev: number, accesses: Access[]): Promise<KernelRun> {
  return runKernel(
    w,
    dev,
    accesses.map((a) => [a]),
  );
}

/** GPU reads of `count` dwords at `addr + k * stride`; returns the values. */
export async function gpuRead(
  w: SvmWorld,
  dev: number,
  addr: number,
  count: number,
  stride = 4,
): Promise<number[]> {
  const acc: Access[] = [];
  for (let k = 0; k < count; k++) acc.push([addr + k * stride, R, 0]);
  const r = await kernel(w, dev, acc);
  return Array.from(r.data);
}

/** GPU writes of `value(k)` to `addr + k * stride`. */
export async function gpuWrite(
  w: SvmWorld,
  dev: number,
  addr: number,
  count: number,
  value: (k: number) => number,
  stride = 4,
): Promise<void> {
  const acc: Access[] = [];
  for (let k = 0; k < count; k++) acc.push([addr + k * stride, W, value(k) >>> 0]);
  await kernel(w, dev, acc);
}

/**
 * A GPU copy of `count` dwords (`src + k * stride` → `dst + k * stride`), as a shader's or an SDMA
 * engine's load-then-store: one kernel loads, the next stores what was loaded.
 */
export async function gpuCopy(
  w: SvmWorld,
  dev: number,
  src: number,
  dst: number,
  count: number,
  stride = 4,
): Promise<void> {
  const v = await gpuRead(w, dev, src, count, stride);
  await gpuWrite(w, dev, dst, count, (k) => v[k]!, stride);
}

/** CPU fill of `[addr, addr + len)` with the 32-bit pattern `value` (memset-like, one write). */
export async function cpuFill32(w: SvmWorld, addr: number, len: number, value: number): Promise<void> {
  const b = new Uint8Array(len);
  new DataView(b.buffer).setUint32(0, value >>> 0, true);
  for (let i = 4; i < len; i *= 2) b.copyWithin(i, 0, Math.min(i, len - i));
  await w.mm.write(addr, b);
}

/** CPU reads of `count` dwords at `addr + k * stride`. */
export async function cpuRead(w: SvmWorld, addr: number, count: number, stride = 4): Promise<number[]> {
  const out: number[] = [];
  for (let k = 0; k < count; k++) out.push(await w.mm.readU32(addr + k * stride));
  return out;
}

/** The end-of-test coherence check: the oracle's full pass finds nothing. */
export function expectCoherent(w: SvmWorld): void {
  const v = worldVerdict(w);
  expect(w.oracle.violations.slice(0, 3)).toEqual([]);
  expect(v.violations).toBe(0);
}

/** Runs `body` as the main task of a fresh simulation built by `world`. */
export async function scenario(
  seed: number,
  world: (sim: Sim) => Promise<SvmWorld>,
  body: (w: SvmWorld) => Promise<void>,
): Promise<void> {
  const sim = createSim({ seed });
  const w = await world(sim);
  await sim.sched.runMain(async () => {
    await body(w);
    expectCoherent(w);
  });
}
