/**
 * Non-retryable GPU faults (amdkfd with XNACK off): the device cannot replay a fault, so every
 * page a kernel touches must be mapped before the launch — by {@link GpuSvm.prefetch} (KFD maps a
 * range on set_attr / prefetch when XNACK is off) — and a GPU fault on a page nobody mapped for the
 * device is fatal: the driver delivers a memory exception with the fault address and access type
 * (KFD's HSA_EVENTTYPE_MEMORY from kfd_signal_vm_fault_event after svm_range_restore_pages
 * returned -EFAULT) and kills the queue (kfd_dqm_evict_pasid: the process's queues are evicted and
 * never restored).
 *
 * Pages the device was given stay its right across CPU invalidations: with XNACK off KFD quiesces
 * the queues when an MMU notifier invalidates a mapped range (svm_range_evict), and its restore
 * worker revalidates and remaps the range before the queues resume. The simulated engine cannot be
 * preempted, so a wave touching such a page faults instead; the driver treats that fault as the
 * queue's eviction: it revalidates the page in place (no migration, as the restore worker does)
 * and replays. Observably the same: the wave's access completes on the current page.
 *
 * Killing the queue: the engine has no preemption (gpu engine.ts), so the kill unmaps every device
 * PTE of the SVM on that device and from then on cancels every fault of the device: each wave
 * stops at its next memory access, which is never performed. A halted hardware queue performs no
 * further memory access either; the difference is only in time (ALU work after the kill).
 *
 * @module
 */

import type { FaultBatch } from '@hmmkit/gpu';
import {
  MmuIntervalNotifier,
  MmuNotifyEvent,
  mmuIntervalNotifierInsert,
  mmuIntervalSetSeq,
} from '@hmmkit/notifier';
import { ArgumentError, Errno } from '@hmmkit/sim';
import { QUEUE_EVICTION_TRIGGER } from './events.ts';
import { faultLocked } from './fault.ts';
import type { GpuSvm } from './gpusvm.ts';

/** A fatal GPU memory fault (KFD's HSA_EVENTTYPE_MEMORY, `MemoryAccessFault`). */
export interface MemoryException {
  /** Index of the faulting device in {@link GpuSvm.devices}. */
  readonly devIndex: number;
  /** Page-aligned fault address (KFD reports the faulting page). */
  readonly va: number;
  /** ACCESS type of the fault (READ, WRITE or ATOMIC). */
  readonly access: number;
  /** Instance (VA space / channel) the faulting kernel ran in. */
  readonly instance: number;
  /** Why the fault was fatal: -EFAULT (nothing mapped there for the device) or -EPERM (a write to read-only memory). */
  readonly errno: number;
  /** Virtual time of the exception (ns). */
  readonly timeNs: number;
}

/** Listener of memory exceptions. */
export type MemoryExceptionListener = (e: MemoryException) => void;

/**
 * A set of disjoint, sorted, page-aligned VA spans kept as a flat list `[s0, e0, s1, e1, ...]`
 * (not a hot path: changed by prefetch and munmap, read by the fault handler once per fault).
 */
export class SpanSet {
  /** @internal `[start, end)` pairs, sorted and disjoint, neighbours merged. */
  readonly list: number[] = [];

  /** Adds `[start, end)`. */
  add(start: number, end: number): void {
    const out: number[] = [];
    let s = start;
    let e = end;
    let placed = false;
    const l = this.list;
    for (let k = 0; k < l.length; k += 2) {
      const a = l[k]!;
      const b = l[k + 1]!;
      if (b < s) out.push(a, b);
      else if (a > e) {
        if (!placed) out.push(s, e);
        placed = true;
        out.push(a, b);
      } else {
        s = Math.min(s, a);
        e = Math.max(e, b);
      }
    }
    if (!placed) out.push(s, e);
    l.length = 0;
    l.push(...out);
  }

  /** Removes `[start, end)`. */
  remove(start: number, end: number): void {
    const out: number[] = [];
    const l = this.list;
    for (let k = 0; k < l.length; k += 2) {
      const a = l[k]!;
      const b = l[k + 1]!;
      if (b <= start || a >= end) {
        out.push(a, b);
        continue;
      }
      if (a < start) out.push(a, start);
      if (b > end) out.push(end, b);
    }
    l.length = 0;
    l.push(...out);
  }

  /** Whether the set holds all of `[start, end)`. */
  covers(start: number, end: number): boolean {
    const l = this.list;
    for (let k = 0; k < l.length; k += 2) if (l[k]! <= start && end <= l[k + 1]!) return true;
    return false;
  }

  /** Whether `va` lies in the set. */
  has(va: number): boolean {
    const l = this.list;
    let lo = 0;
    let hi = l.length / 2 - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (va < l[2 * mid]!) hi = mid - 1;
      else if (va >= l[2 * mid + 1]!) lo = mid + 1;
      else return true;
    }
    return false;
  }

  /** Bytes in the set. */
  get bytes(): number {
    let n = 0;
    for (let k = 0; k < this.list.length; k += 2) n += this.list[k + 1]! - this.list[k]!;
    return n;
  }
}

/** The XNACK-off state of one {@link GpuSvm}: what each device may touch, killed queues. */
export class NoRetryState {
  /** Per device: the VA the queue was given (mapped before launch); kept across CPU invalidations. */
  readonly granted: SpanSet[];
  /** Per device: 1 once its queue was killed by a fatal fault. */
  readonly killed: Uint8Array;
  /** VA watched by a grant notifier of ours (its munmap revokes the grants). */
  readonly watched = new SpanSet();
  /** Queue evictions serviced by a restore (a wave touched a granted page an invalidation unmapped). */
  restores = 0;

  constructor(devices: number) {
    this.granted = Array.from({ length: devices }, () => new SpanSet());
    this.killed = new Uint8Array(devices);
  }
}

/**
 * Records that device `d` was given `[start, end)` (mapped on it before launch). A span no grant
 * covered yet gets an interval notifier of its own whose UNMAP invalidation revokes the grant, so
 * munmap revokes it whether or not a range of ours still covers the span (ranges and their
 * notifiers come and go with the garbage collector).
 */
export async function grant(svm: GpuSvm, d: number, start: number, end: number): Promise<void> {
  const nr = svm.noRetry;
  if (nr === null) return;
  nr.granted[d]!.add(start, end);
  if (nr.watched.covers(start, end)) return;
  const sub = new MmuIntervalNotifier();
  const ret = await mmuIntervalNotifierInsert(sub, svm.mm, start, end - start, {
    invalidate: (s, mr, seq) => {
      mmuIntervalSetSeq(s, seq);
      if (mr.event === MmuNotifyEvent.UNMAP) revoke(svm, Math.max(mr.start, start), Math.min(mr.end, end));
      return true;
    },
  });
  if (ret === 0) nr.watched.add(start, end);
}

/** Forgets `[start, end)` on every device (munmap: KFD removes the SVM range). */
export function revoke(svm: GpuSvm, start: number, end: number): void {
  const nr = svm.noRetry;
  if (nr === null) return;
  for (const g of nr.granted) g.remove(start, end);
  nr.watched.remove(start, end);
}

/**
 * The XNACK-off fault handler's service of one fetched batch (replaces service_fault_batch):
 * a fault on a page granted to the device is a queue eviction — revalidate in place, no
 * migration — and a fault anywhere else (or one the restore cannot service, such as a write to
 * read-only memory) is fatal: exception, cancel, queue killed. Every fault of a killed queue is
 * cancelled. Returns the number of pages restored.
 */
export async function serviceNoRetryBatch(svm: GpuSvm, devIndex: number, batch: FaultBatch): Promise<number> {
  const nr = svm.noRetry!;
  const fb = svm.devices[devIndex]!.faultBuffer;
  let restored = 0;
  svm.c.faults.add(batch.count);
  for (let k = 0; k < batch.count; k++) {
    const e = batch.order[k]!;
    const va = batch.va[e]!;
    const access = batch.access[e]!;
    const inst = batch.instance[e]!;
    if (nr.killed[devIndex] === 1) {
      fb.cancel(va, inst);
      continue;
    }
    let ret = -Errno.EFAULT;
    if (nr.granted[devIndex]!.has(va)) {
      const t = svm.mm.sim.trace;
      const devId = svm.devices[devIndex]!.id;
      if (t.wants('svm.queue.evict')) t.emit('svm.queue.evict', devId, QUEUE_EVICTION_TRIGGER.SVM);
      await svm.lock.lock();
      try {
        ret = await faultLocked(svm, devIndex, va, access, null, 0, false);
      } finally {
        svm.lock.unlock();
      }
      if (ret === 0) {
        if (t.wants('svm.queue.restore')) t.emit('svm.queue.restore', devId);
        nr.restores++;
        restored++;
        continue;
      }
    }
    await killQueue(svm, devIndex, va, access, inst, ret);
    fb.cancel(va, inst);
  }
  return restored;
}

/**
 * A fatal fault: delivers the exception (trace event `svm.memory.exception`, listeners, the
 * exception list), marks the queue killed and unmaps every PTE of the SVM on the device.
 */
async function killQueue(
  svm: GpuSvm,
  devIndex: number,
  va: number,
  access: number,
  instance: number,
  errno: number,
): Promise<void> {
  const nr = svm.noRetry!;
  const sim = svm.mm.sim;
  const ex: MemoryException = { devIndex, va, access, instance, errno, timeNs: sim.now };
  svm.exceptions.push(ex);
  nr.killed[devIndex] = 1;
  if (sim.trace.wants('svm.memory.exception')) {
    sim.trace.emit('svm.memory.exception', svm.devices[devIndex]!.id, va, access, errno);
  }
  for (const l of [...svm.exceptionListeners]) l(ex);
  await svm.notifierLock.write();
  try {
    zapDeviceLocked(svm, devIndex);
  } finally {
    svm.notifierLock.writeUnlock();
  }
}

/** Unmaps every SVM PTE of device `d` (notifier lock held); other devices keep theirs. */
export function zapDeviceLocked(svm: GpuSvm, d: number): void {
  const bit = 1 << d;
  const dev = svm.devices[d]!;
  const u = dev.beginUpdate(svm.ptUpdate);
  for (const r of svm.sorted) {
    if ((r.devMapped & bit) === 0) continue;
    dev.pageTable.unmap(r.start, r.end - r.start, u.pt);
    u.tlb.invalidate(r.start, r.end - r.start);
    for (let i = 0; i < r.npages; i++) r.devMap[i] = r.devMap[i]! & ~bit;
    r.devMapped &= ~bit;
  }
  u.end();
}

/** Checks a device index argument. */
export function checkDevice(svm: GpuSvm, fn: string, devIndex: number): void {
  if (!Number.isInteger(devIndex) || svm.devices[devIndex] === undefined) {
    throw new ArgumentError(fn, 'devIndex', 'no such device', devIndex);
  }
}
