/**
 * Notifier events and the invalidation range (`struct mmu_notifier_range`).
 *
 * @module
 */
import { ArgumentError, type RwSemaphore, type Sim, ULONG_MAX } from '@hmmkit/sim';
import type { MmuNotifierSubscriptions } from './subscriptions.ts';

/** `enum mmu_notifier_event`, values in the kernel's order. */
export const MmuNotifyEvent = {
  /** munmap, or mremap moving the range: the VMA is gone. */
  UNMAP: 0,
  /** PTEs cleared for another reason: MADV_DONTNEED/zap, COW, reclaim, migration, THP split. */
  CLEAR: 1,
  /** Whole-range protection change (mprotect). */
  PROTECTION_VMA: 2,
  /** Per-page R/W change, e.g. fork write-protecting COW PTEs. */
  PROTECTION_PAGE: 3,
  /** Soft-dirty tracking. */
  SOFT_DIRTY: 4,
  /** Interval-notifier invalidation at mm exit. */
  RELEASE: 5,
  /** migrate_vma collect/insert; `owner` is the migrating pgmap owner. */
  MIGRATE: 6,
  /** make_device_exclusive(), `owner` = the caller; its revocation has owner null. */
  EXCLUSIVE: 7,
} as const;

/** One of {@link MmuNotifyEvent}'s values. */
export type MmuNotifyEvent = (typeof MmuNotifyEvent)[keyof typeof MmuNotifyEvent];

const eventNames = Object.fromEntries(Object.entries(MmuNotifyEvent).map(([k, v]) => [v, k])) as Record<
  MmuNotifyEvent,
  keyof typeof MmuNotifyEvent
>;

/** `"UNMAP"` for 0, and so on: for traces, messages and tests. */
export function mmuNotifyEventName(event: MmuNotifyEvent): keyof typeof MmuNotifyEvent {
  return eventNames[event];
}

/** `MMU_NOTIFIER_RANGE_BLOCKABLE`: callbacks may sleep. */
export const MMU_NOTIFIER_RANGE_BLOCKABLE = 1;

/**
 * What the notifier needs from an mm (`@hmmkit/mm`'s `Mm` implements it; tests may fake it).
 */
export interface NotifierMm {
  /** The simulation the mm lives in (scheduler, clock, costs, counters). */
  readonly sim: Sim;
  /** `mm->mmap_lock`. */
  readonly mmapLock: RwSemaphore;
  /** `mm->mm_users`: 0 once the address space is torn down. */
  mmUsers: number;
  /** `mm->notifier_subscriptions`: created lazily by the first registration. */
  notifierSubscriptions: MmuNotifierSubscriptions | null;
}

/** `struct mmu_notifier_range`. `end` is exclusive. */
export class MmuNotifierRange {
  readonly mm: NotifierMm;
  readonly start: number;
  readonly end: number;
  /** `MMU_NOTIFIER_RANGE_BLOCKABLE` or 0; set by the start call as in the kernel. */
  flags: number;
  readonly event: MmuNotifyEvent;
  /** Cookie of the initiator (MIGRATE / EXCLUSIVE), so a driver can skip its own invalidation. */
  readonly owner: unknown;

  constructor(
    mm: NotifierMm,
    start: number,
    end: number,
    flags: number,
    event: MmuNotifyEvent,
    owner: unknown,
  ) {
    this.mm = mm;
    this.start = start;
    this.end = end;
    this.flags = flags;
    this.event = event;
    this.owner = owner;
  }
}

/**
 * Models mmu_notifier_range_init() and mmu_notifier_range_init_owner(). Requires
 * 0 <= start < end <= ULONG_MAX (integers) and a known event.
 */
export function mmuNotifierRangeInit(
  event: MmuNotifyEvent,
  flags: number,
  mm: NotifierMm,
  start: number,
  end: number,
  owner: unknown = null,
): MmuNotifierRange {
  const fn = 'mmuNotifierRangeInit';
  if (!Number.isSafeInteger(start) || start < 0)
    throw new ArgumentError(fn, 'start', 'must be a non-negative integer', start);
  if (!Number.isSafeInteger(end) || end <= start || end > ULONG_MAX) {
    throw new ArgumentError(fn, 'end', 'must be an integer with start < end <= ULONG_MAX', end);
  }
  if (eventNames[event] === undefined)
    throw new ArgumentError(fn, 'event', 'must be an MmuNotifyEvent value', event);
  return new MmuNotifierRange(mm, start, end, flags, event, owner);
}

/** Models mmu_notifier_range_blockable(). */
export function mmuNotifierRangeBlockable(range: MmuNotifierRange): boolean {
  return (range.flags & MMU_NOTIFIER_RANGE_BLOCKABLE) !== 0;
}
