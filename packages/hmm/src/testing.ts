/**
 * `@hmmkit/hmm/testing`: what every hmm test suite otherwise rewrites — a whole-address-space
 * interval notifier that records invalidations, one hmm_range_fault call made the way a driver
 * makes it, and a small device-memory driver (migrate to and from device memory, a
 * migrate_to_ram that migrates the faulting page or device THP back).
 *
 * @module
 */
import { type Machine, type Mm, PAGE_SIZE, VM_FAULT_SIGBUS, type VmFault } from '@hmmkit/mm';
import {
  MmuIntervalNotifier,
  mmuIntervalNotifierInsert,
  mmuIntervalReadBegin,
  mmuIntervalSetSeq,
  mmuNotifyEventName,
} from '@hmmkit/notifier';
import { DeviceMemory } from './device-memory.ts';
import {
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
} from './migrate.ts';
import { HmmRange, hmmRangeFault } from './range-fault.ts';

/** One invalidation seen by {@link recordInvalidations}'s notifier. */
export interface RecordedInvalidation {
  /** The MmuNotifyEvent name (`UNMAP`, `CLEAR`, `MIGRATE`…). */
  event: string;
  start: number;
  end: number;
  owner: unknown;
}

/** Result of {@link recordInvalidations}. */
export interface InvalidationRecorder {
  /** The interval notifier over the whole user address space. */
  sub: MmuIntervalNotifier;
  /** Every invalidation, in order. */
  invs: RecordedInvalidation[];
  /** Forgets what was recorded. */
  clear(): void;
}

/**
 * Inserts an interval notifier over [0, 2^47) — the whole user address space of `mm` — that records every
 * invalidation and accepts it (bumps the sequence, returns true).
 */
export async function recordInvalidations(mm: Mm): Promise<InvalidationRecorder> {
  const sub = new MmuIntervalNotifier();
  const invs: RecordedInvalidation[] = [];
  await mmuIntervalNotifierInsert(sub, mm, 0, 2 ** 47, {
    invalidate(s, r, cur) {
      invs.push({ event: mmuNotifyEventName(r.event), start: r.start, end: r.end, owner: r.owner });
      mmuIntervalSetSeq(s, cur);
      return true;
    },
  });
  return {
    sub,
    invs,
    clear() {
      invs.length = 0;
    },
  };
}

/** Options of {@link hmmFaultOnce}. */
export interface HmmFaultOnceOptions {
  defaultFlags?: number;
  pfnFlagsMask?: number;
  /** Per-page request flags (copied into hmmFlags). */
  req?: readonly number[];
  /** dev_private_owner. */
  owner?: unknown;
}

/** Result of {@link hmmFaultOnce}. */
export interface HmmFaultOnceResult {
  /** hmmRangeFault's return (0, -EBUSY, -EFAULT…). */
  ret: number;
  range: HmmRange;
  /** Output flags per page (a copy). */
  flags: number[];
  /** Output pfns per page (a copy). */
  pfns: number[];
}

/**
 * One hmm_range_fault() call as a driver makes it: mmu_interval_read_begin, the mmap read lock,
 * hmmRangeFault, unlock. No retry: -EBUSY is returned to the caller (see hmmRangeFaultLocked
 * for the whole driver loop).
 */
export async function hmmFaultOnce(
  mm: Mm,
  sub: MmuIntervalNotifier,
  start: number,
  npages: number,
  opts: HmmFaultOnceOptions = {},
): Promise<HmmFaultOnceResult> {
  const range = new HmmRange({
    notifier: sub,
    start,
    end: start + npages * PAGE_SIZE,
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

/** The driver returned by {@link makeTestDriver}. */
export interface TestDriver {
  /** Its device memory. */
  mem: DeviceMemory;
  /** Every migrate_to_ram call, in order. */
  calls: VmFault[];
  owner: unknown;
  /** Migrates [start, start + n pages) to device memory (caller holds the mmap lock). */
  toDevice(target: Mm, start: number, n: number, flags?: number): Promise<{ r: number; args: MigrateVma }>;
  /** {@link toDevice} under the mmap read lock. */
  toDeviceLocked(
    target: Mm,
    start: number,
    n: number,
    flags?: number,
  ): Promise<{ r: number; args: MigrateVma }>;
  /** Migrates [start, start + n pages) back to system memory (caller holds the mmap lock). */
  migrateBack(target: Mm, start: number, n: number, faultPage?: number): Promise<MigrateVma>;
}

/**
 * A small device driver on `@hmmkit/hmm`: `nrPages` of device-private (or device-coherent)
 * memory owned by `owner`, migration to it (copying the data), and a migrate_to_ram that moves
 * the faulting page (or a device THP, order 9) back.
 */
export function makeTestDriver(
  machine: Machine,
  type: 'private' | 'coherent' = 'private',
  owner: unknown = 'dev0',
  nrPages = 2048,
): TestDriver {
  const phys = machine.phys;
  const calls: VmFault[] = [];
  const sel = type === 'private' ? MIGRATE_VMA_SELECT_DEVICE_PRIVATE : MIGRATE_VMA_SELECT_DEVICE_COHERENT;

  async function migrateBack(target: Mm, start: number, n: number, faultPage = -1): Promise<MigrateVma> {
    const vma = target.vmaLookup(start);
    if (vma === null) throw new Error(`migrateBack: no VMA at 0x${start.toString(16)}`);
    const args = new MigrateVma({
      vma,
      start,
      end: start + n * PAGE_SIZE,
      pgmapOwner: owner,
      flags: sel,
      faultPage,
    });
    const r = await migrateVmaSetup(args);
    if (r !== 0) throw new Error(`migrateBack: setup ${r}`);
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
    nrPages,
    migrateToRam: async (vmf) => {
      calls.push(vmf);
      try {
        await migrateBack(vmf.mm, vmf.address, vmf.order === 9 ? 512 : 1, vmf.page);
      } catch {
        return VM_FAULT_SIGBUS;
      }
      return 0;
    },
  });

  async function toDevice(target: Mm, start: number, n: number, flags = MIGRATE_VMA_SELECT_SYSTEM) {
    const vma = target.vmaLookup(start);
    if (vma === null) throw new Error(`toDevice: no VMA at 0x${start.toString(16)}`);
    const args = new MigrateVma({ vma, start, end: start + n * PAGE_SIZE, pgmapOwner: owner, flags });
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

  async function toDeviceLocked(target: Mm, start: number, n: number, flags = MIGRATE_VMA_SELECT_SYSTEM) {
    await target.mmapLock.read();
    try {
      return await toDevice(target, start, n, flags);
    } finally {
      target.mmapLock.readUnlock();
    }
  }

  return { mem, calls, owner, toDevice, toDeviceLocked, migrateBack };
}
