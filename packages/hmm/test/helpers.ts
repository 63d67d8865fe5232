import {
  createMachine,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  type Machine,
  type MachineOptions,
  Mm,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '@hmmkit/mm';
import type { MmuIntervalNotifier } from '@hmmkit/notifier';
import { createSim, type Sim } from '@hmmkit/sim';
import {
  type HmmFaultOnceOptions,
  type HmmFaultOnceResult,
  hmmFaultOnce,
  makeTestDriver,
  type RecordedInvalidation,
  recordInvalidations,
  type TestDriver,
} from '../src/testing.ts';

export const P = PAGE_SIZE;
export const RW = PROT_READ | PROT_WRITE;
export const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
export const OWNER = 'dev0';

/** One invalidation seen by the test's interval notifier. */
export type Inv = RecordedInvalidation;

/** A sim, machine, process, and a whole-address-space interval notifier recording invalidations. */
export async function env(options: MachineOptions = {}): Promise<{
  sim: Sim;
  machine: Machine;
  mm: Mm;
  sub: MmuIntervalNotifier;
  invs: Inv[];
}> {
  const sim = createSim({ seed: 1 });
  const machine = createMachine(sim, options);
  const mm = new Mm(machine);
  const { sub, invs } = await recordInvalidations(mm);
  return { sim, machine, mm, sub, invs };
}

/** Result of one {@link fault} call. */
export type FaultResult = HmmFaultOnceResult;

/** One hmmRangeFault under the mmap read lock with a fresh notifier sequence. */
export function fault(
  mm: Mm,
  sub: MmuIntervalNotifier,
  start: number,
  npages: number,
  opts: HmmFaultOnceOptions = {},
): Promise<FaultResult> {
  return hmmFaultOnce(mm, sub, start, npages, opts);
}

/** A private anonymous RW mapping of `n` pages, optionally 2 MiB aligned. */
export async function anon(mm: Mm, n: number, prot = RW, aligned = false): Promise<number> {
  if (!aligned) return mm.mmap(0, n * P, prot, ANON);
  const raw = await mm.mmap(0, n * P + 2 * 1024 * 1024, prot, ANON);
  const a = Math.ceil(raw / (2 * 1024 * 1024)) * 2 * 1024 * 1024;
  return a;
}

/** A small device driver built on @hmmkit/hmm: device memory + migrate to/from it. */
export function makeDriver(
  machine: Machine,
  type: 'private' | 'coherent' = 'private',
  owner: unknown = OWNER,
): TestDriver {
  return makeTestDriver(machine, type, owner);
}

/** Bytes 0..n-1 with a pattern depending on `seed`. */
export function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 17 + 1) & 255;
  return b;
}

/** Byte-for-byte equality (fast). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return (
    Buffer.compare(
      Buffer.from(a.buffer, a.byteOffset, a.byteLength),
      Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    ) === 0
  );
}
