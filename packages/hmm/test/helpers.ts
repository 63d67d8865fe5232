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
  VM_FAULT_SIGBUS,
  type VmFault,
} from '@hmmkit/mm';
import {
  MmuIntervalNotifier,
  mmuIntervalNotifierInsert,
  mmuIntervalReadBegin,
  mmuIntervalSetSeq,
  mmuNotifyEventName,
} from '@hmmkit/notifier';
import { createSim, type Sim } from '@hmmkit/sim';
import {
  DeviceMemory,
  HmmRange,
  hmmRangeFault,
  MIGRATE_PFN_MIGRATE,
  MIGRATE_VMA_SELECT_DEVICE_COHERENT,
  MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
  MIGRATE_VMA_SELECT_SYSTEM,
  MigrateVma,
  migratePfn,
  migratePfnFlags,
  migratePfnToPfn,
  migrateVmaFinalize,
  migrateVmaPages,
  migrateVmaSetup,
} from '../src/index.ts';

export const P = PAGE_SIZE;
export const RW = PROT_READ | PROT_WRITE;
export const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
export const OWNER = 'dev0';

/** One invalidation seen by the test's interval notifier. */
export interface Inv {
  event: string;
  start: number;
  end: number;
  owner: unknown;
}

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
  const sub = new MmuIntervalNotifier();
  const invs: Inv[] = [];
  await mmuIntervalNotifierInsert(sub, mm, 0, 2 ** 47, {
    invalidate(s, r, cur) {
      invs.push({ event: mmuNotifyEventName(r.event), start: r.start, end: r.end, owner: r.owner });
      mmuIntervalSetSeq(s, cur);
      return true;
    },
  });
  return { sim, machine, mm, sub, invs };
}

/** Result of one {@link fault} call. */
export interface FaultResult {
  ret: number;
  range: HmmRange;
  /** Output flags per page. */
  flags: number[];
  /** Output pfns per page. */
  pfns: number[];
}

/** One hmmRangeFault under the mmap read lock with a fresh notifier sequence. */
export async function fault(
  mm: Mm,
  sub: MmuIntervalNotifier,
  start: number,
  npages: number,
  opts: { defaultFlags?: number; pfnFlagsMask?: number; req?: number[]; owner?: unknown } = {},
): Promise<FaultResult> {
  const range = new HmmRange({
    notifier: sub,
    start,
    end: start + npages * P,
    defaultFlags: opts.defaultFlags ?? 0,
    pfnFlagsMask: opts.pfnFlagsMask ?? 0,
    devPrivateOwner: opts.owner ?? null,
  });
  if (opts.req) range.hmmFlags.set(opts.req);
  range.notifierSeq = await mmuIntervalReadBegin(sub);
  await mm.mmapLock.read();
  let ret: number;
  try {
    ret = await hmmRangeFault(range);
  } finally {
    mm.mmapLock.readUnlock();
  }
  return { ret, range, flags: [...range.hmmFlags], pfns: [...range.hmmPfns] };
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
) {
  const phys = machine.phys;
  const calls: VmFault[] = [];
  const sel = type === 'private' ? MIGRATE_VMA_SELECT_DEVICE_PRIVATE : MIGRATE_VMA_SELECT_DEVICE_COHERENT;

  /** Migrates [start, start + n pages) back to system memory (caller holds the mmap lock). */
  async function migrateBack(vmaMm: Mm, start: number, n: number, faultPage = -1): Promise<MigrateVma> {
    const vma = vmaMm.vmaLookup(start)!;
    const args = new MigrateVma({ vma, start, end: start + n * P, pgmapOwner: owner, flags: sel, faultPage });
    const r = await migrateVmaSetup(args);
    if (r !== 0) throw new Error(`setup ${r}`);
    for (let i = 0; i < args.npages; i++) {
      const s = args.src[i]!;
      if (!(migratePfnFlags(s) & MIGRATE_PFN_MIGRATE)) continue;
      const spfn = migratePfnToPfn(s);
      const d = phys.allocPage(0);
      phys.trylockPage(d);
      if (spfn >= 0) phys.copyPage(d, spfn);
      args.dst[i] = migratePfn(d);
    }
    await migrateVmaPages(args);
    await migrateVmaFinalize(args);
    return args;
  }

  const mem = new DeviceMemory(machine, {
    type,
    owner,
    nrPages: 2048,
    migrateToRam: async (vmf) => {
      calls.push(vmf);
      const n = vmf.order === 9 ? 512 : 1;
      try {
        await migrateBack(vmf.mm, vmf.address, n, vmf.page);
      } catch {
        return VM_FAULT_SIGBUS;
      }
      return 0;
    },
  });

  /** Migrates [start, start + n pages) to device memory (caller holds the mmap lock). */
  async function toDevice(target: Mm, start: number, n: number, flags = MIGRATE_VMA_SELECT_SYSTEM) {
    const vma = target.vmaLookup(start)!;
    const args = new MigrateVma({ vma, start, end: start + n * P, pgmapOwner: owner, flags });
    const r = await migrateVmaSetup(args);
    if (r !== 0) return { r, args };
    for (let i = 0; i < args.npages; i++) {
      const s = args.src[i]!;
      if (!(migratePfnFlags(s) & MIGRATE_PFN_MIGRATE)) continue;
      const spfn = migratePfnToPfn(s);
      const d = mem.allocPage();
      if (d < 0) continue;
      if (spfn >= 0) phys.copyPage(d, spfn);
      args.dst[i] = migratePfn(d);
    }
    await migrateVmaPages(args);
    await migrateVmaFinalize(args);
    return { r, args };
  }

  /** toDevice under the mmap read lock. */
  async function toDeviceLocked(target: Mm, start: number, n: number, flags = MIGRATE_VMA_SELECT_SYSTEM) {
    await target.mmapLock.read();
    try {
      return await toDevice(target, start, n, flags);
    } finally {
      target.mmapLock.readUnlock();
    }
  }

  return { mem, calls, toDevice, toDeviceLocked, migrateBack, owner };
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
