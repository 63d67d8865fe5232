/**
 * The kselftest harness pieces of tools/testing/selftests/mm/hmm-tests.c, ported: fixtures
 * (`hmm`, `hmm2`), `struct hmm_buffer`, `hmm_dmirror_cmd()`, the int-pattern helpers and fork
 * with a "waitpid" that reports whether the child exited normally.
 */
import {
  createMachine,
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  type Machine,
  type MachineOptions,
  Mm,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '@hmmkit/mm';
import { createSim, type Sim } from '@hmmkit/sim';
import {
  type Dmirror,
  dmirrorOpen,
  HMM_DMIRROR_MIGRATE_TO_DEV,
  HMM_DMIRROR_MIGRATE_TO_SYS,
} from '../src/index.ts';

/** `HMM_BUFFER_SIZE` (1024 << 12). */
export const HMM_BUFFER_SIZE = 1024 << 12;
/** `NTIMES`. */
export const NTIMES = 10;
/** `TWOMEG`. */
export const TWOMEG = 1 << 21;
export const PS = PAGE_SIZE;

/** The `hmm` fixture variants: device number of `hmm_device_private` / `hmm_device_coherent`. */
export const HMM_VARIANTS = [
  { name: 'hmm_device_private', device: 0, coherent: false },
  { name: 'hmm_device_coherent', device: 2, coherent: true },
] as const;

/** The `hmm2` fixture variants. */
export const HMM2_VARIANTS = [
  { name: 'hmm2_device_private', device0: 0, device1: 1, coherent: false },
  { name: 'hmm2_device_coherent', device0: 2, device1: 3, coherent: true },
] as const;

/** A fresh machine and process (the test binary). */
export function boot(opts: MachineOptions = {}, seed = 1): { sim: Sim; machine: Machine; mm: Mm } {
  const sim = createSim({ seed });
  const machine = createMachine(sim, opts);
  return { sim, machine, mm: new Mm(machine) };
}

/** FIXTURE_SETUP(hmm): opens the variant's device. */
export async function hmmSetup(device: number, opts: MachineOptions = {}, seed = 1) {
  const b = boot(opts, seed);
  const fd = await dmirrorOpen(b.machine, b.mm, device);
  return { ...b, fd };
}

/** `struct hmm_buffer`. */
export interface HmmBuffer {
  ptr: number;
  mirror: Uint8Array;
  size: number;
  cpages: number;
  faults: number;
}

/** A buffer with `mirror = malloc(mirrorSize)` (garbage-free: zeroed). */
export function hmmBuffer(ptr: number, size: number, mirrorSize = size): HmmBuffer {
  return { ptr, mirror: new Uint8Array(mirrorSize), size, cpages: 0, faults: 0 };
}

/**
 * `hmm_dmirror_cmd()`: addr = buffer.ptr, ptr = buffer.mirror; on failure returns -errno and
 * leaves buffer.cpages/faults untouched, on success copies them back.
 */
export async function hmmDmirrorCmd(fd: Dmirror, request: number, buffer: HmmBuffer, npages: number) {
  const r = await fd.ioctl(request, { addr: buffer.ptr, ptr: buffer.mirror, npages });
  if (r.ret !== 0) return r.ret;
  buffer.cpages = r.cpages;
  buffer.faults = r.faults;
  return 0;
}

/** An Int32Array view of a byte buffer. */
export function i32(b: Uint8Array): Int32Array {
  return new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

/** `for (i...) p[i] = f(i)` over `n` ints. */
export function ints(n: number, f: (i: number) => number): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = f(i);
  return a;
}

/**
 * The first index where `a[i] !== f(i)` (in `[from, to)`), or -1: the C loops' ASSERT_EQ in one
 * assertion (vitest's deep equality is slow on million-entry arrays).
 */
export function firstMismatch(a: Int32Array, f: (i: number) => number, from = 0, to = a.length): number {
  for (let i = from; i < to; i++) if (a[i] !== (f(i) | 0)) return i;
  return -1;
}

/** `for (i...) ptr[i] = f(i)` through the CPU (faults like the C stores). */
export async function cpuInit(mm: Mm, addr: number, size: number, f: (i: number) => number): Promise<void> {
  await mm.writeI32Array(addr, ints(size / 4, f));
}

/** The ints at `addr` read through the CPU. */
export async function cpuRead(mm: Mm, addr: number, size: number): Promise<Int32Array> {
  return mm.readI32Array(addr, size / 4);
}

/** `ALIGN(x, a)`. */
export function align(x: number, a: number): number {
  return Math.ceil(x / a) * a;
}

/**
 * fork() + the child's body + waitpid(): returns `WIFEXITED`, i.e. true when the child body
 * completed (a failed assertion in the child "aborts" it, as kselftest's ASSERT does). The child
 * then exits (`_exit`).
 */
export async function forkAndWait(
  mm: Mm,
  child: (c: Mm) => Promise<void>,
): Promise<{ exited: boolean; error: unknown }> {
  const c = await mm.fork();
  let exited = true;
  let error: unknown = null;
  try {
    await child(c);
  } catch (e) {
    exited = false;
    error = e;
  }
  await c.exit();
  return { exited, error };
}

/** run_migration_benchmark(): returns 0 when every ioctl returned 0. */
export async function runMigrationBenchmark(
  mm: Mm,
  fd: Dmirror,
  useThp: number,
  bufferSize: number,
  iterations: number,
): Promise<number> {
  const npages = bufferSize / PS;
  const ptr = await mm.mmap(0, bufferSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  if (ptr < 0) return -1;
  let ret = await mm.madvise(ptr, bufferSize, useThp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
  if (ret) return ret;
  const b = hmmBuffer(ptr, bufferSize);
  b.mirror.fill(0xff);
  await cpuInit(mm, ptr, bufferSize, (i) => i & 0xff);
  ret = await hmmDmirrorCmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, npages);
  if (ret) return ret;
  ret = await hmmDmirrorCmd(fd, HMM_DMIRROR_MIGRATE_TO_SYS, b, npages);
  if (ret) return ret;
  for (let i = 0; i < iterations; i++) {
    ret = await hmmDmirrorCmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, npages);
    if (ret) return ret;
    ret = await hmmDmirrorCmd(fd, HMM_DMIRROR_MIGRATE_TO_SYS, b, npages);
    if (ret) return ret;
  }
  await mm.munmap(ptr, bufferSize);
  return 0;
}
