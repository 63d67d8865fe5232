/**
 * The MMU interval notifier callback (drm_gpusvm_notifier_invalidate + xe_svm_invalidate) and the bookkeeping of our own migrations in flight that the MIGRATE invalidation reads.
 *
 * @module
 */

import {
  type MmuIntervalNotifier,
  type MmuNotifierRange,
  MmuNotifyEvent,
  mmuIntervalSetSeq,
  mmuNotifierRangeBlockable,
} from '@hmmkit/notifier';
import { zapRangesLocked } from './bind.ts';
import { UNMAP_TRIGGER } from './events.ts';
import type { GpuSvm } from './gpusvm.ts';
import { alignDown, SZ_2M } from './granule.ts';
import { unmapFromGpus } from './migrate.ts';
import type { PageMask } from './page-mask.ts';
import { rangesWithValidPages, type SvmNotifier, type SvmRange } from './range.ts';

/**
 * The interval-notifier callback (drm_gpusvm_notifier_invalidate + xe_svm_invalidate): under the
 * notifier lock (write) set the sequence, zap every overlapping range's device PTEs over the
 * range's full bounds (one batched update and TLB invalidate per device), drop its pages; on
 * UNMAP mark it unmapped and queue it for the collector.
 *
 * Our own migrations are not skipped (xe skips only its own EXCLUSIVE events): migrate_vma_setup
 * collects the pages inside this MIGRATE invalidation, so this is the one point after which no
 * GPU fault can still bind a page that is about to move — a bind made before it is zapped here,
 * and a fault whose hmm walk finished before it fails read_retry. A migration of ours zaps only
 * the ranges holding a valid page it may move (inside the migration's span and page mask), so
 * migrating part of a 2 MiB block leaves the block's resident, mapped pages alone.
 */
export async function invalidate(
  svm: GpuSvm,
  n: SvmNotifier,
  sub: MmuIntervalNotifier,
  mr: MmuNotifierRange,
  curSeq: number,
): Promise<boolean> {
  if (!mmuNotifierRangeBlockable(mr)) return false;
  // our own make_device_exclusive() (exclusive.ts): the page stays where it is and its device
  // mapping is what we are about to write, so neither zap nor fail the read_retry that follows
  // (nouveau_svm_range_invalidate). The CPU's revocation carries owner null and zaps below.
  if (mr.event === MmuNotifyEvent.EXCLUSIVE && mr.owner === svm.owner) return true;
  await svm.notifierLock.write();
  try {
    mmuIntervalSetSeq(sub, curSeq);
    svm.c.invalidations.value++;
    const s = Math.max(mr.start, n.start);
    const e = Math.min(mr.end, n.end);
    const hit: SvmRange[] = [];
    if (mr.event === MmuNotifyEvent.MIGRATE && ownsMigration(svm, mr.owner)) {
      rangesWithValidPages(svm, s, e, migrationMask(svm, mr.start, mr.end), hit);
    } else {
      n.ranges.forEachOverlap(s, e - 1, (node) => {
        hit.push(node.value);
      });
      // a foreign invalidation with no range of ours under it (our own migrations are expected)
      if (hit.length === 0) svm.c.falseInvalidations.value++;
    }
    if (svm.mm.sim.trace.wants('svm.unmap.gpu')) {
      const trigger =
        mr.event === MmuNotifyEvent.UNMAP
          ? UNMAP_TRIGGER.UNMAP_FROM_CPU
          : mr.event === MmuNotifyEvent.MIGRATE
            ? UNMAP_TRIGGER.MMU_NOTIFY_MIGRATE
            : UNMAP_TRIGGER.MMU_NOTIFY;
      for (const r of hit) unmapFromGpus(svm, r.devMapped, r.start, r.end, trigger);
    }
    zapRangesLocked(svm, hit);
    for (const r of hit) {
      if (mr.event === MmuNotifyEvent.UNMAP && !r.unmapped) {
        r.unmapped = true;
        r.partialUnmap = r.start < mr.start || r.end > mr.end;
        svm.gcList.push(r);
      }
    }
    return true;
  } finally {
    svm.notifierLock.writeUnlock();
  }
}

/**
 * The pages of `[start, end)` that migrations of ours in flight may move, as a 2 MiB block mask,
 * or null for every page. Several migrations of ours can be in flight at once (a fault-driven
 * migration waiting for its copy while a CPU fault runs migrate_to_ram over the same range) and
 * an invalidation does not say whose it is, so the answer covers every migration whose span
 * contains it: null if any of them has no mask (or they lie in different blocks), else the union.
 */
export function migrationMask(svm: GpuSvm, start: number, end: number): PageMask | null {
  let out: PageMask | null = null;
  let block = -1;
  let n = 0;
  for (const m of svm.migrating) {
    if (!(m.start <= start && end <= m.end)) continue;
    if (m.pages === null) return null;
    const b = alignDown(m.start, SZ_2M);
    if (n > 0 && b !== block) return null;
    block = b;
    if (out === null) out = m.pages;
    else {
      const u = svm.unionMask;
      if (out !== u) u.set(out.subarray(0, u.length));
      for (let k = 0; k < u.length; k++) u[k] = u[k]! | (m.pages[k] ?? 0);
      out = u;
    }
    n++;
  }
  return n === 0 ? null : out;
}

/** Runs `body` (one migrate_vma of ours over `[start, end)`) with its page mask registered. */
export async function withMigration<T>(
  svm: GpuSvm,
  start: number,
  end: number,
  pages: PageMask | null,
  body: () => Promise<T>,
): Promise<T> {
  const m = { start, end, pages };
  svm.migrating.push(m);
  try {
    return await body();
  } finally {
    svm.migrating.splice(svm.migrating.indexOf(m), 1);
  }
}

export function ownsMigration(svm: GpuSvm, owner: unknown): boolean {
  return owner === svm.owner || svm.owners.includes(owner as object);
}
