/**
 * Invalidations and TLB flushes of one mm: mmu_notifier_range_init + invalidate_range_start/end
 * (include/linux/mmu_notifier.h) as the mm issues them, and the batched flush_tlb_range of
 * migrate_vma_collect_pmd (mm/migrate_device.c).
 *
 * @module
 */
import {
  type MmuNotifierRange,
  type MmuNotifyEvent,
  mmuNotifierInvalidateRangeEnd,
  mmuNotifierInvalidateRangeStart,
  mmuNotifierRangeInit,
} from '@hmmkit/notifier';
import { PMD_SIZE } from './constants.ts';
import type { Mm } from './mm.ts';

/**
 * @internal Starts an invalidation of this mm (mmu_notifier_range_init +
 * invalidate_range_start, plus the invalidation log and trace); null when no one listens.
 */
export async function invStart(
  mm: Mm,
  event: MmuNotifyEvent,
  start: number,
  end: number,
  owner: unknown = null,
) {
  mm.invalidationLog?.push({ event, start, end, owner });
  if (mm.sim.trace.wants('mm.invalidate')) mm.sim.trace.emit('mm.invalidate', mm.id, event, start, end);
  if (mm.notifierSubscriptions === null) {
    mm.invDepth++;
    return null;
  }
  const r = mmuNotifierRangeInit(event, 0, mm, start, end, owner);
  await mmuNotifierInvalidateRangeStart(r);
  mm.invDepth++; // only once started: a failed start has no invEnd to pay the queued flushes
  return r;
}

/** @internal Ends an invalidation started by {@link invStart}. */
export async function invEnd(mm: Mm, r: MmuNotifierRange | null): Promise<void> {
  if (mm.invDepth > 0) mm.invDepth--;
  // Linux flushes the CPU TLB before invalidate_range_end: the batched flushes are paid here.
  flushTlbPending(mm);
  if (r !== null) await mmuNotifierInvalidateRangeEnd(r);
}

/** @internal Charges one TLB shootdown (flush_tlb_range after changing present entries). */
export function flushTlb(mm: Mm): void {
  mm.machine.stats.tlbFlush.value++;
  mm.sim.charge(mm.sim.costs.cpuTlbShootdownNs);
}

/**
 * @internal Queues the TLB flush for a present entry at `addr` changed inside an open
 * invalidation (invStart … invEnd), as migrate_vma_collect_pmd() does: Linux clears the PTEs
 * of one PMD table and issues ONE flush_tlb_range() for it after the loop. Entries of the same
 * 2 MiB block share one flush; the queued flushes are charged at the next {@link invEnd}
 * (Linux flushes before invalidate_range_end). Outside an invalidation it flushes at once.
 */
export function flushTlbDeferred(mm: Mm, addr: number): void {
  if (mm.invDepth === 0) {
    flushTlb(mm);
    return;
  }
  const block = Math.floor(addr / PMD_SIZE);
  if (block !== mm.tlbPendingBlock) {
    mm.tlbPendingBlock = block;
    mm.tlbPendingFlushes++;
  }
}

/** @internal Charges the flushes queued by {@link flushTlbDeferred} (one per 2 MiB block touched). */
export function flushTlbPending(mm: Mm): void {
  for (; mm.tlbPendingFlushes > 0; mm.tlbPendingFlushes--) flushTlb(mm);
  mm.tlbPendingBlock = -1;
}
