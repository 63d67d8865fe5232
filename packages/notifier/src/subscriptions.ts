/**
 * Models mm/mmu_notifier.c: the per-mm subscriptions, classic notifiers, interval notifiers
 * and the invalidate_seq collision-retry protocol.
 *
 * The protocol, in short (see docs/notifier.md for the full state table):
 * - `invalidateSeq` starts at 2 and is even while idle. An invalidation that overlaps at least
 *   one interval notifier makes it odd ("fully excluded": the interval tree is frozen, inserts
 *   and removes are deferred); the last overlapping invalidation to end makes it even again,
 *   drains the deferred list and wakes waiters.
 * - Each interval notifier keeps its own odd sequence. A driver's invalidate() callback sets it
 *   to the current odd global value under the driver lock (`mmuIntervalSetSeq`); a mirroring
 *   thread samples it with `mmuIntervalReadBegin` and, under the same driver lock, checks
 *   `mmuIntervalReadRetry` before it programs device PTEs.
 *
 * @module
 */
import { IntervalTree, type IntervalTreeNode } from '@hmmkit/interval-tree';
import { ArgumentError, type Counter, Errno, StateError, ULONG_MAX, WaitQueue } from '@hmmkit/sim';
import {
  MMU_NOTIFIER_RANGE_BLOCKABLE,
  MmuNotifierRange,
  MmuNotifyEvent,
  mmuNotifierRangeBlockable,
  type NotifierMm,
} from './events.ts';
import { NotifierOccupancy } from './occupancy.ts';

declare module '@hmmkit/sim' {
  interface TraceEvents {
    /** An invalidation began: event, [start, end), the sequence handed to callbacks, interval notifiers hit. */
    'notifier.invalidateStart': [event: number, start: number, end: number, seq: number, hits: number];
    /** An invalidation ended; `seq` is the global sequence after it. */
    'notifier.invalidateEnd': [event: number, start: number, end: number, seq: number];
  }
}

/** Operations of a classic notifier (`struct mmu_notifier_ops`). Every member is optional. */
export interface MmuNotifierOps {
  /** Called once at mm teardown (or unregister): drop every secondary mapping. */
  release?(sub: MmuNotifier, mm: NotifierMm): void | Promise<void>;
  /** 0, or -EAGAIN when the range is not blockable and the notifier cannot proceed. */
  invalidateRangeStart?(sub: MmuNotifier, range: MmuNotifierRange): number | Promise<number>;
  /** Called after the primary PTEs changed. A notifier whose start can fail must not implement it. */
  invalidateRangeEnd?(sub: MmuNotifier, range: MmuNotifierRange): void | Promise<void>;
  /** Clear the accessed bit of secondary mappings in [start, end) and flush; true if any was young. */
  clearFlushYoung?(sub: MmuNotifier, mm: NotifierMm, start: number, end: number): boolean;
  /** Clear the accessed bit without flushing; true if any was young. */
  clearYoung?(sub: MmuNotifier, mm: NotifierMm, start: number, end: number): boolean;
  /** True if the secondary mapping of `address` is young. */
  testYoung?(sub: MmuNotifier, mm: NotifierMm, address: number): boolean;
}

/** A classic notifier (`struct mmu_notifier`). Register it with {@link mmuNotifierRegister}. */
export class MmuNotifier {
  readonly ops: MmuNotifierOps;
  /** The mm it is registered on (kept after unregister, as the kernel keeps `subscription->mm`). */
  mm: NotifierMm | null = null;
  /** @internal true while on the mm's list (`!hlist_unhashed`). */
  hashed = false;

  constructor(ops: MmuNotifierOps) {
    this.ops = ops;
  }
}

/** Operations of an interval notifier (`struct mmu_interval_notifier_ops`). */
export interface MmuIntervalNotifierOps {
  /**
   * Called for every invalidation overlapping the interval. Must call {@link mmuIntervalSetSeq}
   * with `curSeq` under the driver lock, then tear down device mappings in the range. Return false
   * only when the range is not blockable and the driver lock could not be taken.
   */
  invalidate(sub: MmuIntervalNotifier, range: MmuNotifierRange, curSeq: number): boolean | Promise<boolean>;
}

/** An interval notifier (`struct mmu_interval_notifier`). */
export class MmuIntervalNotifier {
  /** The mm it watches (null before the first insert). */
  mm: NotifierMm | null = null;
  ops: MmuIntervalNotifierOps | null = null;
  /** First watched address. */
  start = 0;
  /** Last watched address (inclusive, as in the kernel's interval tree). */
  last = 0;
  /** The notifier's own sequence; always odd once inserted. */
  invalidateSeq = 0;
  /** @internal the interval-tree node while in the tree. */
  node: IntervalTreeNode<MmuIntervalNotifier> | null = null;
  /** @internal true while on the deferred list. */
  deferred = false;

  /** True while inserted (in the tree, or waiting on the deferred list to enter it). */
  get isInserted(): boolean {
    return (this.node !== null) !== this.deferred;
  }
}

/** Per-mm notifier state (`struct mmu_notifier_subscriptions`), created by the first registration. */
export class MmuNotifierSubscriptions {
  /** Classic notifiers, newest first (`hlist_add_head`). */
  readonly list: MmuNotifier[] = [];
  hasItree = false;
  /** The global sequence: 2 at creation, odd while an invalidation hits an interval notifier. */
  invalidateSeq = 2;
  activeInvalidateRanges = 0;
  readonly itree = new IntervalTree<MmuIntervalNotifier>();
  /** @internal Which blocks the tree's notifiers touch: the fast miss test (see occupancy.ts). */
  readonly occupancy = new NotifierOccupancy();
  readonly wq: WaitQueue;
  /** Inserts and removes deferred while the tree is frozen, newest first. */
  readonly deferredList: MmuIntervalNotifier[] = [];
  /** @internal counters */
  readonly stats: {
    invalidations: Counter;
    callbacks: Counter;
    readBeginWaits: Counter;
    readRetries: Counter;
    deferred: Counter;
    wouldBlock: Counter;
    warnings: Counter;
  };

  constructor(mm: NotifierMm) {
    this.wq = new WaitQueue(mm.sim.sched);
    const c = mm.sim.counters;
    this.stats = {
      invalidations: c.counter('notifier.invalidations'),
      callbacks: c.counter('notifier.callbacks'),
      readBeginWaits: c.counter('notifier.readBeginWaits'),
      readRetries: c.counter('notifier.readRetries'),
      deferred: c.counter('notifier.deferred'),
      wouldBlock: c.counter('notifier.wouldBlock'),
      warnings: c.counter('notifier.warnings'),
    };
  }

  /** True while some invalidation overlapping an interval notifier is in progress (seq odd). */
  get isInvalidating(): boolean {
    return this.invalidateSeq % 2 === 1;
  }
}

/** Models mm_has_notifiers(). */
export function mmHasNotifiers(mm: NotifierMm): boolean {
  return mm.notifierSubscriptions !== null;
}

// ---------------------------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------------------------

/** Models __mmu_notifier_register(): the caller holds the mmap lock for write. `sub` null = itree mode. */
export function mmuNotifierRegisterLocked(sub: MmuNotifier | null, mm: NotifierMm): number {
  if (!mm.mmapLock.isWriteLocked) {
    throw new StateError('mmuNotifierRegisterLocked', 'the mmap lock must be held for write');
  }
  if (mm.mmUsers <= 0) throw new StateError('mmuNotifierRegister', 'mm_users is 0 (the mm is gone)');
  if (sub?.hashed) throw new StateError('mmuNotifierRegister', 'notifier already registered');
  let subs = mm.notifierSubscriptions;
  if (subs === null) {
    subs = new MmuNotifierSubscriptions(mm);
    mm.notifierSubscriptions = subs;
  }
  if (sub !== null) {
    sub.mm = mm;
    sub.hashed = true;
    subs.list.unshift(sub);
  } else {
    subs.hasItree = true;
  }
  return 0;
}

/** Models mmu_notifier_register(): takes the mmap lock for write. Returns 0. */
export async function mmuNotifierRegister(sub: MmuNotifier, mm: NotifierMm): Promise<number> {
  if (sub.hashed) throw new StateError('mmuNotifierRegister', 'notifier already registered');
  await mm.mmapLock.write();
  try {
    return mmuNotifierRegisterLocked(sub, mm);
  } finally {
    mm.mmapLock.writeUnlock();
  }
}

/**
 * Models mmu_notifier_unregister(): calls `release` unless mm teardown already did, then
 * removes the notifier. After it returns no callback runs.
 */
export async function mmuNotifierUnregister(sub: MmuNotifier, mm: NotifierMm): Promise<void> {
  if (sub.mm !== mm)
    throw new StateError('mmuNotifierUnregister', 'notifier was never registered on this mm');
  if (!sub.hashed) return;
  await sub.ops.release?.(sub, mm);
  const subs = mm.notifierSubscriptions!;
  const i = subs.list.indexOf(sub);
  if (i >= 0) subs.list.splice(i, 1);
  sub.hashed = false;
}

function checkInsertArgs(fn: string, sub: MmuIntervalNotifier, start: number, length: number): void {
  if (!Number.isSafeInteger(start) || start < 0) {
    throw new ArgumentError(fn, 'start', 'must be a non-negative integer address', start);
  }
  if (!Number.isSafeInteger(length) || length < 0) {
    throw new ArgumentError(fn, 'length', 'must be a non-negative integer', length);
  }
  if (sub.isInserted) throw new StateError(fn, 'interval notifier is already inserted');
}

function insertInterval(
  sub: MmuIntervalNotifier,
  mm: NotifierMm,
  subs: MmuNotifierSubscriptions,
  start: number,
  length: number,
  ops: MmuIntervalNotifierOps,
): number {
  if (length === 0 || start + (length - 1) > ULONG_MAX) return -Errno.EOVERFLOW;
  if (mm.mmUsers <= 0) return -Errno.EINVAL;
  sub.mm = mm;
  sub.ops = ops;
  sub.start = start;
  sub.last = start + (length - 1);
  if (subs.activeInvalidateRanges !== 0) {
    if (subs.isInvalidating) {
      // The tree is frozen: defer the insert to the last invalidate_range_end.
      sub.deferred = true;
      subs.deferredList.unshift(sub);
      subs.stats.deferred.value++;
    } else {
      // Some invalidation is running on an unknown range: assume it covers us.
      subs.invalidateSeq |= 1;
      itreeAdd(subs, sub);
    }
    sub.invalidateSeq = subs.invalidateSeq;
  } else {
    sub.invalidateSeq = subs.invalidateSeq - 1;
    itreeAdd(subs, sub);
  }
  return 0;
}

/**
 * Models mmu_interval_notifier_insert(): watch [start, start + length). Registers the mm's
 * subscriptions on first use (taking the mmap lock for write). Returns 0, -EOVERFLOW for a zero
 * or overflowing length, -EINVAL if the mm has no users. On return the notifier may still be on
 * the deferred list; use the read_begin/read_retry flow regardless.
 */
export async function mmuIntervalNotifierInsert(
  sub: MmuIntervalNotifier,
  mm: NotifierMm,
  start: number,
  length: number,
  ops: MmuIntervalNotifierOps,
): Promise<number> {
  checkInsertArgs('mmuIntervalNotifierInsert', sub, start, length);
  let subs = mm.notifierSubscriptions;
  if (subs === null || !subs.hasItree) {
    if (mm.mmUsers <= 0) return -Errno.EINVAL;
    await mm.mmapLock.write();
    try {
      mmuNotifierRegisterLocked(null, mm);
    } finally {
      mm.mmapLock.writeUnlock();
    }
    subs = mm.notifierSubscriptions!;
  }
  return insertInterval(sub, mm, subs, start, length, ops);
}

/** Models mmu_interval_notifier_insert_locked(): as insert, with the mmap lock already held for write. */
export function mmuIntervalNotifierInsertLocked(
  sub: MmuIntervalNotifier,
  mm: NotifierMm,
  start: number,
  length: number,
  ops: MmuIntervalNotifierOps,
): number {
  checkInsertArgs('mmuIntervalNotifierInsertLocked', sub, start, length);
  if (!mm.mmapLock.isWriteLocked) {
    throw new StateError('mmuIntervalNotifierInsertLocked', 'the mmap lock must be held for write');
  }
  let subs = mm.notifierSubscriptions;
  if (subs === null || !subs.hasItree) {
    if (mm.mmUsers <= 0) return -Errno.EINVAL;
    mmuNotifierRegisterLocked(null, mm);
    subs = mm.notifierSubscriptions!;
  }
  return insertInterval(sub, mm, subs, start, length, ops);
}

/**
 * Models mmu_interval_notifier_remove(). If an invalidation is running the removal is deferred
 * and this waits for it to end; after return no callback runs now or later. Must not be called
 * from an invalidate() callback (it would wait for itself: the scheduler reports a deadlock).
 */
export async function mmuIntervalNotifierRemove(sub: MmuIntervalNotifier): Promise<void> {
  const mm = sub.mm;
  if (mm === null || !sub.isInserted) {
    throw new StateError('mmuIntervalNotifierRemove', 'interval notifier is not inserted (removed twice?)');
  }
  const subs = mm.notifierSubscriptions!;
  let seq = 0;
  if (subs.isInvalidating) {
    if (sub.node === null) {
      // Inserted while frozen and not yet drained: just cancel the deferred insert.
      subs.deferredList.splice(subs.deferredList.indexOf(sub), 1);
      sub.deferred = false;
    } else {
      sub.deferred = true;
      subs.deferredList.unshift(sub);
      subs.stats.deferred.value++;
      seq = subs.invalidateSeq;
    }
  } else itreeDel(subs, sub);
  if (seq !== 0) await subs.wq.waitEvent(() => subs.invalidateSeq !== seq);
}

// ---------------------------------------------------------------------------------------------
// Read side
// ---------------------------------------------------------------------------------------------

/**
 * Models mmu_interval_read_begin(): samples the notifier's sequence; if an invalidation of this
 * notifier is in progress, sleeps until it ends. Does not loop: read_retry may already be true.
 */
export async function mmuIntervalReadBegin(sub: MmuIntervalNotifier): Promise<number> {
  const mm = sub.mm;
  if (mm === null) throw new StateError('mmuIntervalReadBegin', 'interval notifier was never inserted');
  const subs = mm.notifierSubscriptions!;
  const seq = sub.invalidateSeq;
  if (seq === subs.invalidateSeq) {
    subs.stats.readBeginWaits.value++;
    await subs.wq.waitEvent(() => subs.invalidateSeq !== seq);
  }
  return seq;
}

/**
 * Models mmu_interval_read_retry(): true if an invalidation collided with the read section that
 * began with `seq`. Call it under the driver lock that invalidate() holds around set_seq.
 */
export function mmuIntervalReadRetry(sub: MmuIntervalNotifier, seq: number): boolean {
  const retry = sub.invalidateSeq !== seq;
  if (retry && sub.mm !== null) sub.mm.notifierSubscriptions!.stats.readRetries.value++;
  return retry;
}

/** Models mmu_interval_check_retry(): the same test without the lock; true is reliable, false a hint. */
export function mmuIntervalCheckRetry(sub: MmuIntervalNotifier, seq: number): boolean {
  return sub.invalidateSeq !== seq;
}

/** Models mmu_interval_set_seq(): every invalidate() callback calls it with `curSeq`, under the driver lock. */
export function mmuIntervalSetSeq(sub: MmuIntervalNotifier, curSeq: number): void {
  sub.invalidateSeq = curSeq;
}

// ---------------------------------------------------------------------------------------------
// Write side (called by the mm)
// ---------------------------------------------------------------------------------------------

/** Puts `sub` into the interval tree (and the occupancy summary). */
function itreeAdd(subs: MmuNotifierSubscriptions, sub: MmuIntervalNotifier): void {
  sub.node = subs.itree.insert(sub.start, sub.last, sub);
  subs.occupancy.add(sub.start, sub.last);
}

/** Takes `sub` out of the interval tree (and the occupancy summary). */
function itreeDel(subs: MmuNotifierSubscriptions, sub: MmuIntervalNotifier): void {
  subs.itree.remove(sub.node!);
  sub.node = null;
  subs.occupancy.remove(sub.start, sub.last);
}

/**
 * interval_tree_iter_first() on the notifier tree, with the occupancy summary's fast miss in
 * front: the record of the first overlapping notifier, or 0 (see IntervalTree.iterFirstRecord).
 */
function itreeFirst(subs: MmuNotifierSubscriptions, start: number, last: number): number {
  return subs.occupancy.mayOverlap(start, last) ? subs.itree.iterFirstRecord(start, last) : 0;
}

function itreeInvEnd(subs: MmuNotifierSubscriptions): void {
  if (--subs.activeInvalidateRanges !== 0 || !subs.isInvalidating) return;
  subs.invalidateSeq++;
  // Drain newest first, as the kernel walks its hlist.
  for (const sub of subs.deferredList.splice(0)) {
    if (sub.node === null) itreeAdd(subs, sub);
    else itreeDel(subs, sub);
    sub.deferred = false;
  }
  subs.wq.wakeUpAll();
}

/**
 * mn_itree_invalidate(): enters the active range, makes the sequence odd when some interval
 * notifier overlaps, and calls invalidate() on each overlapping notifier in start order.
 * Synchronous (and allocation-free) while the callbacks answer synchronously; returns a promise
 * only from the first callback that returns one. 0, or -EAGAIN from a non-blockable range whose
 * callback failed (the active range is left again then).
 */
function itreeInvalidate(subs: MmuNotifierSubscriptions, range: MmuNotifierRange): number | Promise<number> {
  subs.activeInvalidateRanges++;
  const record = itreeFirst(subs, range.start, range.end - 1);
  if (record !== 0) subs.invalidateSeq |= 1;
  return itreeInvalidateWalk(subs, range, record, subs.invalidateSeq, 0);
}

/**
 * The walk of itreeInvalidate() from tree record `record` on (0: done), `hits` callbacks made so
 * far. It walks by record, reading each notifier from the tree's value array (the kernel's
 * container_of()), not through a node handle: one scattered memory access less per hit. The
 * tree is frozen while the walk runs (inserts and removes are deferred), so records stay valid.
 */
function itreeInvalidateWalk(
  subs: MmuNotifierSubscriptions,
  range: MmuNotifierRange,
  record: number,
  curSeq: number,
  hits: number,
): number | Promise<number> {
  const last = range.end - 1;
  const sim = range.mm.sim;
  const itree = subs.itree;
  while (record !== 0) {
    const sub = itree.recordValue(record);
    hits++;
    subs.stats.callbacks.value++;
    sim.charge(sim.costs.notifierCallbackNs);
    const ok = sub.ops!.invalidate(sub, range, curSeq);
    if (typeof ok !== 'boolean') return itreeInvalidateAwait(subs, range, record, curSeq, hits, ok);
    if (!ok && itreeInvalidateFailed(subs, range)) return -Errno.EAGAIN;
    record = itree.iterNextRecord(record, range.start, last);
  }
  if (sim.trace.wants('notifier.invalidateStart')) {
    sim.trace.emit('notifier.invalidateStart', range.event, range.start, range.end, curSeq, hits);
  }
  return 0;
}

/** Waits for the callback of the notifier in `record` to answer, then walks on. */
async function itreeInvalidateAwait(
  subs: MmuNotifierSubscriptions,
  range: MmuNotifierRange,
  record: number,
  curSeq: number,
  hits: number,
  answer: Promise<boolean>,
): Promise<number> {
  if (!(await answer) && itreeInvalidateFailed(subs, range)) return -Errno.EAGAIN;
  const next = subs.itree.iterNextRecord(record, range.start, range.end - 1);
  return itreeInvalidateWalk(subs, range, next, curSeq, hits);
}

/**
 * A callback answered false. Blockable range: WARN_ON (a blockable invalidate must not fail)
 * and go on, false. Otherwise leave the active range and return true: the caller returns -EAGAIN.
 */
function itreeInvalidateFailed(subs: MmuNotifierSubscriptions, range: MmuNotifierRange): boolean {
  if (mmuNotifierRangeBlockable(range)) {
    subs.stats.warnings.value++;
    return false;
  }
  subs.stats.wouldBlock.value++;
  itreeInvEnd(subs);
  return true;
}

async function hlistInvalidateStart(
  subs: MmuNotifierSubscriptions,
  range: MmuNotifierRange,
): Promise<number> {
  let ret = 0;
  const blockable = mmuNotifierRangeBlockable(range);
  for (const sub of [...subs.list]) {
    const start = sub.ops.invalidateRangeStart;
    if (start === undefined) continue;
    let r = start.call(sub.ops, sub, range);
    if (typeof r !== 'number') r = await r;
    if (r !== 0) {
      if (blockable || r !== -Errno.EAGAIN) subs.stats.warnings.value++;
      ret = r;
    }
  }
  if (ret !== 0) {
    // Non-blocking failure: the notifiers that succeeded expect their end now.
    for (const sub of [...subs.list]) {
      const end = sub.ops.invalidateRangeEnd;
      if (end !== undefined) await end.call(sub.ops, sub, range);
    }
  }
  return ret;
}

async function invalidateRangeStart(range: MmuNotifierRange): Promise<number> {
  const subs = range.mm.notifierSubscriptions!;
  subs.stats.invalidations.value++;
  if (subs.hasItree) {
    const ret = await itreeInvalidate(subs, range);
    if (ret !== 0) return ret;
  }
  if (subs.list.length !== 0) return hlistInvalidateStart(subs, range);
  return 0;
}

/**
 * Models mmu_notifier_invalidate_range_start(): marks the range blockable, runs every
 * overlapping interval notifier's invalidate() and then every classic invalidateRangeStart().
 * The caller changes the PTEs afterwards and then calls {@link mmuNotifierInvalidateRangeEnd}.
 */
export function mmuNotifierInvalidateRangeStart(range: MmuNotifierRange): Promise<void> {
  const subs = range.mm.notifierSubscriptions;
  if (subs === null) return DONE;
  range.flags |= MMU_NOTIFIER_RANGE_BLOCKABLE;
  if (subs.list.length !== 0) return invalidateRangeStartVoid(range);
  // No classic notifier: the interval part alone, synchronously while its callbacks are.
  subs.stats.invalidations.value++;
  if (!subs.hasItree) return DONE;
  const ret = itreeInvalidate(subs, range);
  return typeof ret === 'number' ? DONE : settled(ret);
}

async function invalidateRangeStartVoid(range: MmuNotifierRange): Promise<void> {
  await invalidateRangeStart(range);
}

async function settled(p: Promise<number>): Promise<void> {
  await p;
}

/** A settled promise: the synchronous paths return it instead of building an async frame. */
const DONE: Promise<void> = Promise.resolve();

/**
 * Models mmu_notifier_invalidate_range_start_nonblock() (the OOM reaper's path): returns 0, or
 * -EAGAIN when a callback would have to sleep; after -EAGAIN the caller must not modify the PTEs
 * nor call invalidate_range_end (the interval part is already undone).
 */
export async function mmuNotifierInvalidateRangeStartNonblock(range: MmuNotifierRange): Promise<number> {
  if (range.mm.notifierSubscriptions === null) return 0;
  range.flags &= ~MMU_NOTIFIER_RANGE_BLOCKABLE;
  return invalidateRangeStart(range);
}

/** Models mmu_notifier_invalidate_range_end(). */
export function mmuNotifierInvalidateRangeEnd(range: MmuNotifierRange): Promise<void> {
  const subs = range.mm.notifierSubscriptions;
  if (subs === null) return DONE;
  if (subs.list.length === 0) {
    // No classic notifier: nothing to await.
    if (subs.hasItree) itreeInvEnd(subs);
    traceEnd(subs, range);
    return DONE;
  }
  return invalidateRangeEndSlow(subs, range);
}

function traceEnd(subs: MmuNotifierSubscriptions, range: MmuNotifierRange): void {
  const sim = range.mm.sim;
  if (sim.trace.wants('notifier.invalidateEnd')) {
    sim.trace.emit('notifier.invalidateEnd', range.event, range.start, range.end, subs.invalidateSeq);
  }
}

async function invalidateRangeEndSlow(
  subs: MmuNotifierSubscriptions,
  range: MmuNotifierRange,
): Promise<void> {
  if (subs.hasItree) itreeInvEnd(subs);
  for (const sub of [...subs.list]) {
    const end = sub.ops.invalidateRangeEnd;
    if (end !== undefined) await end.call(sub.ops, sub, range);
  }
  traceEnd(subs, range);
}

/**
 * Models mmu_notifier_release() (exit_mmap): a blockable RELEASE invalidation over the whole
 * address space for interval notifiers, then every classic notifier's release(), which also
 * leaves the list.
 */
export async function mmuNotifierRelease(mm: NotifierMm): Promise<void> {
  const subs = mm.notifierSubscriptions;
  if (subs === null) return;
  if (subs.hasItree) {
    const range = new MmuNotifierRange(
      mm,
      0,
      ULONG_MAX,
      MMU_NOTIFIER_RANGE_BLOCKABLE,
      MmuNotifyEvent.RELEASE,
      null,
    );
    subs.stats.invalidations.value++;
    await itreeInvalidate(subs, range);
    itreeInvEnd(subs);
  }
  if (subs.list.length !== 0) {
    for (const sub of [...subs.list]) await sub.ops.release?.(sub, mm);
    for (const sub of subs.list) sub.hashed = false;
    subs.list.length = 0;
  }
}

/** Models mmu_notifier_clear_flush_young(): OR of every classic notifier's answer. */
export function mmuNotifierClearFlushYoung(mm: NotifierMm, start: number, end: number): boolean {
  let young = false;
  for (const sub of mm.notifierSubscriptions?.list ?? []) {
    if (sub.ops.clearFlushYoung?.(sub, mm, start, end)) young = true;
  }
  return young;
}

/** Models mmu_notifier_clear_young(). */
export function mmuNotifierClearYoung(mm: NotifierMm, start: number, end: number): boolean {
  let young = false;
  for (const sub of mm.notifierSubscriptions?.list ?? []) {
    if (sub.ops.clearYoung?.(sub, mm, start, end)) young = true;
  }
  return young;
}

/** Models mmu_notifier_test_young(): true at the first notifier that reports young. */
export function mmuNotifierTestYoung(mm: NotifierMm, address: number): boolean {
  for (const sub of mm.notifierSubscriptions?.list ?? []) {
    if (sub.ops.testYoung?.(sub, mm, address)) return true;
  }
  return false;
}
