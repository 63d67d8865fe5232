/**
 * Ranges and notifiers (drm_gpusvm's range/notifier bookkeeping): the notifier and range objects, the VA-sorted index of ranges, notifier insertion, range removal and the garbage collector, and the retirement of ranges an attribute change splits.
 *
 * @module
 */

import { IntervalTree, type IntervalTreeNode } from '@hmmkit/interval-tree';
import { MmuIntervalNotifier, mmuIntervalNotifierInsert, mmuIntervalNotifierRemove } from '@hmmkit/notifier';
import { zapRangesLocked } from './bind.ts';
import type { GpuSvm } from './gpusvm.ts';
import { alignDown, PAGE_SIZE, type Span, SZ_2M } from './granule.ts';
import { invalidate } from './invalidate.ts';
import { NOTIFIER_KIND } from './notifier-policy.ts';
import { type PageMask, pageMaskTest } from './page-mask.ts';

/** One MMU interval notifier of the framework (`struct drm_gpusvm_notifier`). */
export class SvmNotifier {
  readonly start: number;
  readonly end: number;
  readonly sub = new MmuIntervalNotifier();
  /** The notifier's ranges. */
  readonly ranges = new IntervalTree<SvmRange>();
  /** @internal node in the framework's notifier tree. */
  node: IntervalTreeNode<SvmNotifier> | null = null;
  constructor(start: number, end: number) {
    this.start = start;
    this.end = end;
  }
}

/** One range (`struct drm_gpusvm_range`): fixed bounds, pages, per-device mapping state. */
export class SvmRange {
  readonly start: number;
  readonly end: number;
  readonly npages: number;
  readonly notifier: SvmNotifier;
  /** CPU pfn per page (valid where `pageValid`). */
  readonly pfns: Float64Array;
  /** hmm flags per page at the last get_pages. */
  readonly flags: Uint16Array;
  /** 1 where the pfn is valid (cleared by every invalidation of the range). */
  readonly pageValid: Uint8Array;
  /** Per page: bit d set when device d maps it. */
  readonly devMap: Uint8Array;
  /**
   * Per page: 1 while the page is device-exclusive to us and mapped atomic-enabled (nouveau's
   * atomic path, exclusive.ts); null until the first such page. Cleared by every zap.
   */
  exclusive: Uint8Array | null = null;
  /** Devices holding any PTE of the range. */
  devMapped = 0;
  /** Set by an UNMAP invalidation: the range waits for the garbage collector. */
  unmapped = false;
  /** The UNMAP covered only part of the range. */
  partialUnmap = false;
  /** Virtual time of the last fault/bind (for LRU-style reports). */
  lastUse = 0;
  /** Notifier sequence the recorded pages are valid for (`svm_pages->notifier_seq`). */
  notifierSeq = 0;
  /** @internal */
  node: IntervalTreeNode<SvmRange> | null = null;
  /** Removed by the garbage collector or fini. */
  removed = false;

  constructor(start: number, end: number, notifier: SvmNotifier) {
    this.start = start;
    this.end = end;
    this.notifier = notifier;
    this.npages = (end - start) / PAGE_SIZE;
    this.pfns = new Float64Array(this.npages);
    this.flags = new Uint16Array(this.npages);
    this.pageValid = new Uint8Array(this.npages);
    this.devMap = new Uint8Array(this.npages);
  }
}

/**
 * An attribute change over `[start, end)`: a range that now straddles `start` or `end` spans two
 * attribute values, which amdkfd (svm_range_split at set_attr) and xe (madvise splits the VMA and
 * drops its SVM ranges) never allow. Such a range is retired like a partially unmapped one — its
 * device PTEs stay valid (the CPU mapping did not change) until the garbage collector, which
 * every fault runs first, zaps and removes it; the next fault creates ranges on each side.
 * Device pages stay where they are (the CPU keeps their device-private entries).
 */
export function attrsChanged(svm: GpuSvm, start: number, end: number): void {
  for (const cut of [start, end]) {
    const r = svm.rangeFind(cut);
    if (r === null || r.start === cut || r.unmapped) continue;
    r.unmapped = true;
    r.partialUnmap = true;
    svm.gcList.push(r);
  }
}

/** Finds or creates (mmu_interval_notifier_insert) the notifier covering `span`. */
export async function notifierFindOrInsert(svm: GpuSvm, span: Span): Promise<SvmNotifier | number> {
  if (svm.notifierPolicy.kind !== NOTIFIER_KIND.PER_RANGE) {
    const node = svm.notifierTree.iterFirst(span.start, span.start);
    if (node !== null) return node.value;
  }
  const n = new SvmNotifier(span.start, span.end);
  const ret = await mmuIntervalNotifierInsert(n.sub, svm.mm, span.start, span.end - span.start, {
    invalidate: (sub, range, curSeq) => invalidate(svm, n, sub, range, curSeq),
  });
  if (ret !== 0) return ret;
  n.node = svm.notifierTree.insert(span.start, span.end - 1, n);
  svm.c.notifiersCreated.value++;
  return n;
}

/** Models the xe garbage collector: removes queued unmapped ranges (call with the SVM lock). */
export async function garbageCollectLocked(svm: GpuSvm): Promise<void> {
  while (svm.gcList.length > 0) {
    const r = svm.gcList.pop()!;
    await rangeRemove(svm, r);
  }
}

/** Models drm_gpusvm_range_remove(): unbind, drop, remove; the notifier goes with its last range. */
export async function rangeRemove(svm: GpuSvm, r: SvmRange): Promise<void> {
  if (r.removed) return;
  await svm.notifierLock.write();
  try {
    zapRangesLocked(svm, [r]);
    const n = r.notifier;
    if (r.node !== null) n.ranges.remove(r.node);
    r.node = null;
    r.removed = true;
    sortedRemove(svm, r);
    svm.c.rangesRemoved.value++;
  } finally {
    svm.notifierLock.writeUnlock();
  }
  const n = r.notifier;
  if (n.ranges.size === 0 && n.node !== null) {
    svm.notifierTree.remove(n.node);
    n.node = null;
    await mmuIntervalNotifierRemove(n.sub);
    svm.c.notifiersRemoved.value++;
  }
}

export function sortedIndex(svm: GpuSvm, start: number): number {
  const s = svm.sorted;
  let lo = 0;
  let hi = s.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (s[mid]!.start < start) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export function sortedInsert(svm: GpuSvm, r: SvmRange): void {
  svm.sorted.splice(sortedIndex(svm, r.start), 0, r);
}

export function sortedRemove(svm: GpuSvm, r: SvmRange): void {
  const i = sortedIndex(svm, r.start);
  if (svm.sorted[i] === r) svm.sorted.splice(i, 1);
}

export function rangeAtOrAfter(svm: GpuSvm, va: number): SvmRange | null {
  const i = sortedIndex(svm, va);
  const prev = svm.sorted[i - 1];
  if (prev !== undefined && prev.end > va) return prev;
  return svm.sorted[i] ?? null;
}

export function nextRange(svm: GpuSvm, r: SvmRange): SvmRange | null {
  const i = sortedIndex(svm, r.start);
  return svm.sorted[i + 1] ?? null;
}

/**
 * Collects into `out` the ranges holding a valid page in `[start, end)` (restricted to the 2 MiB
 * block mask `pages` when given). Call with the notifier lock held.
 */
export function rangesWithValidPages(
  svm: GpuSvm,
  start: number,
  end: number,
  pages: PageMask | null,
  out: SvmRange[],
): void {
  const blockStart = alignDown(start, SZ_2M);
  for (let r = rangeAtOrAfter(svm, start); r !== null && r.start < end; r = nextRange(svm, r)) {
    const a = Math.max(start, r.start);
    const b = Math.min(end, r.end);
    for (let p = a; p < b; p += PAGE_SIZE) {
      if (pages !== null && p - blockStart < SZ_2M && !pageMaskTest(pages, (p - blockStart) / PAGE_SIZE))
        continue;
      if (r.pageValid[(p - r.start) / PAGE_SIZE] === 1) {
        out.push(r);
        break;
      }
    }
  }
}
