/**
 * Fault-around (granule) policies: given one GPU fault and everything a driver can see at that
 * moment (a {@link FaultContext}), decide which VA range the framework creates (or reuses) and which
 * pages it faults in / migrates. Each policy is a pure function of the context; the framework owns
 * every side effect. Five policies model real drivers: drm_gpusvm/xe, amdkfd, nouveau, NVIDIA UVM's
 * tree prefetcher and "the whole VMA".
 *
 * @module
 */
import type { AccessType } from '@hmmkit/gpu';
import { alignDown, PAGE_SIZE } from '@hmmkit/mm';
import { ArgumentError, Errno, pow2 } from '@hmmkit/sim';
import { DEFAULT_ATTRS, LOC, MAX_GRANULARITY, type RangeAttrs } from './attrs.ts';
import {
  PAGES_PER_BLOCK,
  type PageMask,
  pageMaskAndNot,
  pageMaskClearRange,
  pageMaskEmpty,
  pageMaskFill,
  pageMaskLast,
  pageMaskNew,
  pageMaskNext,
  pageMaskOr,
  pageMaskSet,
  pageMaskWeight,
  pageMaskWord,
} from './page-mask.ts';

// One home for the page size and ALIGN_DOWN: @hmmkit/mm (re-exported for svm's users).
export { alignDown, PAGE_SIZE } from '@hmmkit/mm';
/** 64 KiB. */
export const SZ_64K = 0x10000;
/** 2 MiB: the VA block of UVM, the PMD size of x86-64. */
export const SZ_2M = 0x200000;
/** 512 MiB: drm_gpusvm/xe's default notifier size. */
export const SZ_512M = 0x20000000;

/** A half-open VA span `[start, end)`. */
export interface Span {
  readonly start: number;
  readonly end: number;
}

/**
 * The driver's existing ranges, as a policy may query them (all bounds half-open). Build one with
 * {@link rangesFromSpans} or let the framework pass its interval tree.
 */
export interface ExistingRanges {
  /** The range containing `va`, or null. */
  containing(va: number): Span | null;
  /** Whether some range overlaps `[start, end)` (`drm_gpusvm_range_find`). */
  overlaps(start: number, end: number): boolean;
  /** End of the last range lying wholly below `va`, or 0 if none. */
  prevEnd(va: number): number;
  /** Start of the first range starting above `va`, or `Infinity` if none. */
  nextStart(va: number): number;
}

/** Everything a granule policy may look at for one fault. Addresses are bytes, bounds half-open. */
export interface FaultContext {
  /** Faulting address (any byte in the page). */
  readonly va: number;
  /** Access type of the fault (`ACCESS` from @hmmkit/gpu). */
  readonly access: AccessType;
  /** The CPU VMA around `va`. */
  readonly vmaStart: number;
  readonly vmaEnd: number;
  /** vm_flags of that VMA. */
  readonly vmaFlags: number;
  /** The notifier window the range must fit (the whole mm when notifiers are per range). */
  readonly windowStart: number;
  readonly windowEnd: number;
  /** The GPU VA range the device may use (`gpuva_start/end` of drm_gpusvm_range_find_or_insert). */
  readonly gpuvaStart: number;
  readonly gpuvaEnd: number;
  /** Ranges the driver already has near `va` (at least those in the window). */
  readonly ranges: ExistingRanges;
  /** CPU map order at `va` (0 = 4K PTE, 9 = 2M PMD, 18 = 1G PUD; `hmm_pfn_to_map_order`). */
  readonly cpuMapOrder: number;
  /** Where the fault would make the data resident (a location, see `LOC`). */
  readonly destination: number;
  /** Pages of the 2 MiB block around `va` already resident at `destination`, or null (none). */
  readonly residency: PageMask | null;
  /** Whether any page of the 2 MiB block is resident anywhere (UVM `va_block->resident` non-empty). */
  readonly residentAnywhere: boolean;
  /** Pages of the block faulted in this batch, or null (just the page of `va`). */
  readonly faulted: PageMask | null;
  /** Pages of the block the thrashing detector flagged, or null. */
  readonly thrashing: PageMask | null;
  /** Faults migrated to `destination` in this block before this batch (UVM min_faults counter). */
  readonly faultMigrations: number;
  /** Attributes at `va`. */
  readonly attrs: RangeAttrs;
  /**
   * The attribute interval around `va` (the span over which `attrs` holds): a range never crosses
   * an attribute boundary (amdkfd splits its ranges there, xe its VMAs on madvise).
   */
  readonly attrStart: number;
  readonly attrEnd: number;
  /**
   * Snapshot predicate: true if every page of `[start, end)` is already CPU-faulted (VALID in a
   * snapshot `hmm_range_fault`, `drm_gpusvm_check_pages`). Null means "assume yes".
   */
  readonly checkPages: ((start: number, end: number) => boolean) | null;
}

/** What a policy decided. */
export interface GranuleChoice {
  /** The range to create or reuse (must contain `va`, lie in VMA ∩ window ∩ GPU VA, overlap no other range). */
  readonly start: number;
  readonly end: number;
  /** The span to fault in / migrate now (inside `[start, end)`, contains `va`). */
  readonly faultStart: number;
  readonly faultEnd: number;
  /**
   * Optional page subset of the 2 MiB block around `va` (bit i = page `blockStart/4096 + i`) to fault
   * or migrate, inside `[faultStart, faultEnd)`; null = every page of that span.
   */
  readonly pages: PageMask | null;
}

/** A policy's refusal: `error` is a negative errno (e.g. `-Errno.EINVAL`: no chunk fits). */
export interface GranuleError {
  readonly error: number;
}

/** Result of {@link GranulePolicy.choose}. */
export type GranuleResult = GranuleChoice | GranuleError;

/** A fault-around policy: a name and a pure function of the fault context. */
export interface GranulePolicy {
  /** Short name for traces and benchmark tables. */
  readonly name: string;
  /** Decide the range and fault span for one fault. Must not keep state between calls. */
  choose(ctx: FaultContext): GranuleResult;
  /**
   * Optional: the span a CPU fault on a device page at `va` migrates back to system memory
   * (dev_pagemap_ops.migrate_to_ram), given the range containing `va` (null if none) and the
   * attributes at `va`. It must contain `va`'s page; the framework clips it to the range and the
   * VMA. Default: the whole range (drm_pagemap migrates the range's device allocation), or just the
   * page without a range.
   */
  migrateToRamSpan?(va: number, range: Span | null, attrs: RangeAttrs): Span;
}

/** Whether a result is an error. */
export function isGranuleError(r: GranuleResult): r is GranuleError {
  return (r as GranuleError).error !== undefined;
}

// ---------------------------------------------------------------------------------------------
// Helpers

/** A choice where range and fault span coincide. */
function whole(start: number, end: number): GranuleChoice {
  return { start, end, faultStart: start, faultEnd: end, pages: null };
}

/** Lower bound every policy respects: VMA, notifier window, GPU VA range. */
function lowLimit(ctx: FaultContext): number {
  return Math.max(ctx.vmaStart, ctx.windowStart, ctx.gpuvaStart, ctx.attrStart);
}

/** Upper bound every policy respects. */
function highLimit(ctx: FaultContext): number {
  return Math.min(ctx.vmaEnd, ctx.windowEnd, ctx.gpuvaEnd, ctx.attrEnd);
}

/** Existing ranges over a sorted, non-overlapping array of spans (binary search). */
export function rangesFromSpans(spans: readonly Span[]): ExistingRanges {
  const sorted = [...spans].sort((a, b) => a.start - b.start);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.start < sorted[i - 1]!.end) {
      throw new ArgumentError('rangesFromSpans', 'spans', 'must not overlap', sorted[i]);
    }
  }
  return rangesView(sorted);
}

/**
 * The {@link ExistingRanges} view of `sorted` (start order, non-overlapping), read in place: a
 * caller may keep mutating the array. `live` filters what `containing` reports (e.g. ranges
 * already unmapped but not yet collected still block overlap).
 */
export function rangesView<T extends Span>(
  sorted: readonly T[],
  live: (s: T) => boolean = () => true,
): ExistingRanges {
  /** Index of the last span with start <= va, or -1. */
  const floor = (va: number): number => {
    let lo = 0;
    let hi = sorted.length - 1;
    let ans = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid]!.start <= va) {
        ans = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return ans;
  };
  return {
    containing(va) {
      const s = sorted[floor(va)];
      return s !== undefined && va < s.end && live(s) ? s : null;
    },
    overlaps(start, end) {
      const s = sorted[floor(end - 1)];
      return s !== undefined && s.end > start;
    },
    prevEnd(va) {
      let i = floor(va);
      const s = sorted[i];
      if (s !== undefined && va < s.end) i--;
      return i >= 0 ? sorted[i]!.end : 0;
    },
    nextStart(va) {
      const s = sorted[floor(va) + 1];
      return s !== undefined ? s.start : Number.POSITIVE_INFINITY;
    },
  };
}

/** No existing ranges. */
export const NO_RANGES: ExistingRanges = rangesFromSpans([]);

/** Options of {@link makeFaultContext}: any field of {@link FaultContext} but `va` and the VMA. */
export type FaultContextInit = Partial<FaultContext> & Pick<FaultContext, 'va' | 'vmaStart' | 'vmaEnd'>;

/**
 * Builds a {@link FaultContext} with neutral defaults (read fault, whole mm as window and GPU VA,
 * no ranges, 4K CPU mapping, destination device 0, nothing resident, default attributes).
 */
export function makeFaultContext(init: FaultContextInit): FaultContext {
  return {
    access: 1,
    vmaFlags: 0x3,
    windowStart: 0,
    windowEnd: Number.MAX_SAFE_INTEGER,
    gpuvaStart: 0,
    gpuvaEnd: Number.MAX_SAFE_INTEGER,
    ranges: NO_RANGES,
    cpuMapOrder: 0,
    destination: 1,
    residency: null,
    residentAnywhere: false,
    faulted: null,
    thrashing: null,
    faultMigrations: 0,
    attrs: DEFAULT_ATTRS,
    attrStart: 0,
    attrEnd: Number.MAX_SAFE_INTEGER,
    checkPages: null,
    ...init,
  };
}

/**
 * Validates a context (throws ArgumentError) and a policy's answer against it (throws StateError-free
 * ArgumentError naming the policy): the contract the framework relies on.
 */
export function chooseGranule(policy: GranulePolicy, ctx: FaultContext): GranuleResult {
  const fn = 'chooseGranule';
  if (!Number.isSafeInteger(ctx.va) || ctx.va < 0)
    throw new ArgumentError(fn, 'ctx.va', 'must be a uint', ctx.va);
  if (!(ctx.vmaStart <= ctx.va && ctx.va < ctx.vmaEnd)) {
    throw new ArgumentError(fn, 'ctx.va', 'must lie in [vmaStart, vmaEnd)', ctx.va);
  }
  if (!(ctx.windowStart <= ctx.va && ctx.va < ctx.windowEnd)) {
    throw new ArgumentError(fn, 'ctx.va', 'must lie in the notifier window', ctx.va);
  }
  if (!(ctx.attrStart <= ctx.va && ctx.va < ctx.attrEnd)) {
    throw new ArgumentError(fn, 'ctx.va', 'must lie in [attrStart, attrEnd)', ctx.va);
  }
  if (ctx.vmaStart % PAGE_SIZE !== 0 || ctx.vmaEnd % PAGE_SIZE !== 0) {
    throw new ArgumentError(fn, 'ctx.vmaStart', 'VMA bounds must be page aligned', ctx.vmaStart);
  }
  if (!Number.isInteger(ctx.cpuMapOrder) || ctx.cpuMapOrder < 0 || ctx.cpuMapOrder > 30) {
    throw new ArgumentError(fn, 'ctx.cpuMapOrder', 'must be an integer in [0, 30]', ctx.cpuMapOrder);
  }
  return checkGranuleChoice(fn, policy, ctx, policy.choose(ctx));
}

/**
 * Checks a policy's answer `r` for `ctx` (what {@link chooseGranule} and GpuSvm's fault path rely
 * on): an error is a negative errno; a choice has page-aligned bounds, a range inside VMA ∩
 * notifier window ∩ GPU VA ∩ attribute interval, a fault span inside the range containing the
 * fault, a mask that is a 2 MiB block mask, and it reuses the range containing `va` or overlaps
 * none. Throws ArgumentError naming `fn` and the policy; returns `r` unchanged.
 */
export function checkGranuleChoice(
  fn: string,
  policy: GranulePolicy,
  ctx: FaultContext,
  r: GranuleResult,
): GranuleResult {
  if (r === null || typeof r !== 'object') {
    throw new ArgumentError(fn, 'policy', `${policy.name}: must return a choice or an error`, r);
  }
  if (isGranuleError(r)) {
    if (!(Number.isInteger(r.error) && r.error < 0))
      throw new ArgumentError(fn, 'policy', `${policy.name}: error must be a negative errno`, r);
    return r;
  }
  const nums = [r.start, r.end, r.faultStart, r.faultEnd];
  if (!nums.every((x) => Number.isSafeInteger(x) && x >= 0 && x % PAGE_SIZE === 0)) {
    throw new ArgumentError(
      fn,
      'policy',
      `${policy.name}: choice violates the granule contract (range and fault span must be page aligned)`,
      r,
    );
  }
  if (!(r.start <= r.faultStart && r.faultStart <= ctx.va && ctx.va < r.faultEnd && r.faultEnd <= r.end)) {
    throw new ArgumentError(
      fn,
      'policy',
      `${policy.name}: choice violates the granule contract (fault span must contain va and lie in the range)`,
      r,
    );
  }
  const existing = ctx.ranges.containing(ctx.va);
  if (existing !== null) {
    // An existing range may outlive a later VMA split or attribute change (drm_gpusvm finds it
    // before any VMA check); the bounds below apply to new ranges only.
    if (existing.start !== r.start || existing.end !== r.end) {
      throw new ArgumentError(fn, 'policy', `${policy.name}: must reuse the range containing va`, r);
    }
  } else if (!(r.start >= lowLimit(ctx) && r.end <= highLimit(ctx))) {
    throw new ArgumentError(
      fn,
      'policy',
      `${policy.name}: choice violates the granule contract (range must lie in VMA ∩ notifier window ∩ GPU VA ∩ attribute interval)`,
      r,
    );
  }
  if (r.pages !== null && !(r.pages instanceof Uint32Array && r.pages.length >= 16)) {
    throw new ArgumentError(
      fn,
      'policy',
      `${policy.name}: choice violates the granule contract (pages must be null or a 2 MiB block mask)`,
      r,
    );
  }
  if (existing === null && ctx.ranges.overlaps(r.start, r.end)) {
    throw new ArgumentError(fn, 'policy', `${policy.name}: new range overlaps an existing range`, r);
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// (a) drm_gpusvm / xe

/** Options of {@link drmGpusvmPolicy}. */
export interface DrmGpusvmPolicyOptions {
  /** Powers of two, descending, ending with 4K (xe: {2M, 64K, 4K}). */
  readonly chunkSizes?: readonly number[];
  /** Chunks of at most this size must pass the check-pages snapshot (xe dGPU: 64K; 0 = never). */
  readonly checkPagesThreshold?: number;
}

/**
 * Models `drm_gpusvm_range_chunk_size()` inside `drm_gpusvm_range_find_or_insert()`: an existing
 * range containing the address is returned; otherwise the first chunk size whose aligned block fits
 * VMA ∩ notifier ∩ GPU VA, and (if not 4K) overlaps no range and, when ≤ the threshold, passes the
 * check-pages snapshot. -EINVAL when nothing fits.
 */
export function drmGpusvmPolicy(opts: DrmGpusvmPolicyOptions = {}): GranulePolicy {
  const sizes = [...(opts.chunkSizes ?? [SZ_2M, SZ_64K, PAGE_SIZE])];
  const threshold = opts.checkPagesThreshold ?? SZ_64K;
  const fn = 'drmGpusvmPolicy';
  if (sizes.length === 0 || sizes[sizes.length - 1] !== PAGE_SIZE) {
    throw new ArgumentError(fn, 'chunkSizes', 'must be non-empty and end with 4K', sizes);
  }
  for (let i = 0; i < sizes.length; i++) {
    const c = sizes[i]!;
    if (!Number.isSafeInteger(c) || c < PAGE_SIZE || (c & (c - 1)) !== 0 || (i > 0 && c >= sizes[i - 1]!)) {
      throw new ArgumentError(fn, 'chunkSizes', 'must be descending powers of two >= 4K', sizes);
    }
  }
  if (!Number.isSafeInteger(threshold) || threshold < 0) {
    throw new ArgumentError(fn, 'checkPagesThreshold', 'must be a uint', threshold);
  }
  return {
    name: 'drm_gpusvm',
    choose(ctx) {
      const existing = ctx.ranges.containing(ctx.va);
      if (existing !== null) return whole(existing.start, existing.end);
      const lo = lowLimit(ctx);
      const hi = highLimit(ctx);
      for (let i = 0; i < sizes.length; i++) {
        const c = sizes[i]!;
        const start = alignDown(ctx.va, c);
        const end = start + c;
        if (start < lo || end > hi) continue;
        if (c !== PAGE_SIZE) {
          if (ctx.ranges.overlaps(start, end)) continue;
          if (c <= threshold && ctx.checkPages !== null && !ctx.checkPages(start, end)) continue;
        }
        return whole(start, end);
      }
      return { error: -Errno.EINVAL };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// (b) amdkfd

/** Options of {@link amdkfdPolicy}. */
export interface AmdkfdPolicyOptions {
  /**
   * Granularity (log2 pages) when the attributes do not set one; amdkfd `svm_default_granularity`.
   * Attributes' `granularity` wins (our attributes are kept apart from ranges, so they apply to
   * new ranges too).
   */
  readonly useAttrGranularity?: boolean;
  /** Default granularity, log2 pages (9). */
  readonly defaultGranularity?: number;
}

/**
 * Models `svm_range_get_range_boundaries()` (new range: the `2^granularity`-page aligned block
 * around the fault clipped to the VMA and to the neighbouring ranges) and the restore path's
 * migration window (`2^granularity`-aligned block around the fault clipped to the range).
 */
export function amdkfdPolicy(opts: AmdkfdPolicyOptions = {}): GranulePolicy {
  const def = opts.defaultGranularity ?? 9;
  const useAttr = opts.useAttrGranularity ?? true;
  if (!Number.isInteger(def) || def < 0 || def > MAX_GRANULARITY) {
    throw new ArgumentError('amdkfdPolicy', 'defaultGranularity', 'must be an integer in [0, 63]', def);
  }
  return {
    name: 'amdkfd',
    choose(ctx) {
      const g = Math.min(useAttr ? ctx.attrs.granularity : def, MAX_GRANULARITY);
      const size = 2 ** g * PAGE_SIZE;
      const gStart = alignDown(ctx.va, size);
      const gEnd = gStart + size;
      const existing = ctx.ranges.containing(ctx.va);
      if (existing !== null) {
        return {
          start: existing.start,
          end: existing.end,
          faultStart: Math.max(gStart, existing.start),
          faultEnd: Math.min(gEnd, existing.end),
          pages: null,
        };
      }
      const start = Math.max(gStart, lowLimit(ctx), ctx.ranges.prevEnd(ctx.va));
      const end = Math.min(gEnd, highLimit(ctx), ctx.ranges.nextStart(ctx.va));
      return whole(start, end);
    },
    // svm_migrate_to_ram(): the 2^granularity-page block around the fault, clipped to the range,
    // with the range's current granularity (a later advise applies to existing ranges)
    migrateToRamSpan(va, range, attrs) {
      const g = Math.min(useAttr ? attrs.granularity : def, MAX_GRANULARITY);
      const size = 2 ** g * PAGE_SIZE;
      const gStart = alignDown(va, size);
      if (range === null)
        return { start: alignDown(va, PAGE_SIZE), end: alignDown(va, PAGE_SIZE) + PAGE_SIZE };
      return { start: Math.max(gStart, range.start), end: Math.min(gStart + size, range.end) };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// (c) nouveau

/**
 * Models nouveau_svm's fault window: one page, widened to the CPU map order reported by
 * `hmm_range_fault` (`args->p.addr &= ~(size - 1)`). A widened window that would leave VMA,
 * window, GPU VA or hit another range falls back to the single page.
 */
export function nouveauPolicy(): GranulePolicy {
  return {
    name: 'nouveau',
    choose(ctx) {
      const existing = ctx.ranges.containing(ctx.va);
      if (existing !== null) return whole(existing.start, existing.end);
      const size = 2 ** ctx.cpuMapOrder * PAGE_SIZE;
      const start = alignDown(ctx.va, size);
      const end = start + size;
      if (
        size > PAGE_SIZE &&
        start >= lowLimit(ctx) &&
        end <= highLimit(ctx) &&
        !ctx.ranges.overlaps(start, end)
      ) {
        return whole(start, end);
      }
      const p = alignDown(ctx.va, PAGE_SIZE);
      return whole(p, p + PAGE_SIZE);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// (e) whole VMA

/**
 * The whole VMA (clipped to window, GPU VA and the neighbouring ranges): the policy reviewers
 * reject, modelled to measure why (huge migrations, false invalidations).
 */
export function wholeVmaPolicy(): GranulePolicy {
  return {
    name: 'whole-vma',
    choose(ctx) {
      const existing = ctx.ranges.containing(ctx.va);
      if (existing !== null) return whole(existing.start, existing.end);
      const start = Math.max(lowLimit(ctx), ctx.ranges.prevEnd(ctx.va));
      const end = Math.min(highLimit(ctx), ctx.ranges.nextStart(ctx.va));
      return whole(start, end);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// (d) NVIDIA UVM tree prefetcher

/** Options of {@link uvmTreePolicy} (UVM module parameters). */
export interface UvmTreePolicyOptions {
  /** `uvm_perf_prefetch_enable` (1). */
  readonly enable?: boolean;
  /** `uvm_perf_prefetch_threshold`, percent 1..100 (51). */
  readonly threshold?: number;
  /** `uvm_perf_prefetch_min_faults`, 1..20 (1). */
  readonly minFaults?: number;
  /** Big page size of the destination (64K). */
  readonly bigPageSize?: number;
}

/**
 * Models `uvm_perf_prefetch_prenotify_fault_migrations()` / `compute_prefetch_region()` for HMM
 * blocks: the range is the 2 MiB VA block ∩ VMA ∩ window ∩ GPU VA (∩ the gap between neighbouring
 * ranges, or the containing range); the pages are the faulted pages plus the prefetch mask computed
 * on an implicit bitmap tree (popcounts of aligned power-of-two windows) — see uvm-costs §1.3.
 */
export function uvmTreePolicy(opts: UvmTreePolicyOptions = {}): GranulePolicy {
  const fn = 'uvmTreePolicy';
  const enable = opts.enable ?? true;
  const threshold = opts.threshold ?? 51;
  const minFaults = opts.minFaults ?? 1;
  const big = opts.bigPageSize ?? SZ_64K;
  if (!Number.isInteger(threshold) || threshold < 1 || threshold > 100) {
    throw new ArgumentError(fn, 'threshold', 'must be an integer in [1, 100]', threshold);
  }
  if (!Number.isInteger(minFaults) || minFaults < 1 || minFaults > 20) {
    throw new ArgumentError(fn, 'minFaults', 'must be an integer in [1, 20]', minFaults);
  }
  if (big !== SZ_64K && big !== 0x20000) {
    throw new ArgumentError(fn, 'bigPageSize', 'must be 64K or 128K', big);
  }
  const bigPages = big / PAGE_SIZE;
  // Scratch masks with room for ghost leaves (reused: the policy keeps no state between calls).
  const tree = pageMaskNew(PAGES_PER_BLOCK + 32);
  const migrate = pageMaskNew(PAGES_PER_BLOCK);
  const prefetch = pageMaskNew(PAGES_PER_BLOCK + 32);
  return {
    name: 'uvm-tree',
    choose(ctx) {
      const blockStart = alignDown(ctx.va, SZ_2M);
      let lo = Math.max(blockStart, lowLimit(ctx));
      let hi = Math.min(blockStart + SZ_2M, highLimit(ctx));
      const existing = ctx.ranges.containing(ctx.va);
      if (existing !== null) {
        // The range is whatever exists; prefetch stays inside range ∩ block.
        lo = Math.max(lo, existing.start);
        hi = Math.min(hi, existing.end);
      } else {
        lo = Math.max(lo, ctx.ranges.prevEnd(ctx.va));
        hi = Math.min(hi, ctx.ranges.nextStart(ctx.va));
      }
      lo = Math.ceil(lo / PAGE_SIZE) * PAGE_SIZE;
      hi = alignDown(hi, PAGE_SIZE);
      const rStart = existing?.start ?? lo;
      const rEnd = existing?.end ?? hi;
      const first = (lo - blockStart) / PAGE_SIZE; // max_region, block page indices
      const outer = (hi - blockStart) / PAGE_SIZE;
      const vaPage = Math.floor((ctx.va - blockStart) / PAGE_SIZE);

      // faulted ∩ max_region (always including the faulting page)
      const faulted = pageMaskNew();
      if (ctx.faulted !== null) pageMaskOr(faulted, faulted, ctx.faulted);
      pageMaskSet(faulted, vaPage);
      clipMask(faulted, first, outer);
      const nFaulted = pageMaskWeight(faulted);
      const migrations = ctx.faultMigrations + nFaulted;

      prefetch.fill(0);
      const preferred = ctx.attrs.preferredLoc;
      if (!enable) {
        // no prefetch
      } else if (!ctx.residentAnywhere && ctx.destination === preferred) {
        pageMaskFill(prefetch, first, outer); // first touch at the preferred location
      } else if (preferred === LOC.UNDEFINED || preferred === ctx.destination) {
        treePrefetch(ctx, faulted, first, outer);
      }
      // prefetch &= ~faulted, &= ~thrashing, clipped to max_region
      pageMaskAndNot(prefetch, prefetch, faulted);
      if (ctx.thrashing !== null) pageMaskAndNot(prefetch, prefetch, ctx.thrashing);
      // Already resident at the destination: nothing to move (make_resident skips them).
      if (ctx.residency !== null) pageMaskAndNot(prefetch, prefetch, ctx.residency);
      clipMask(prefetch, first, outer);
      const pages = pageMaskNew();
      pageMaskOr(pages, faulted, faulted);
      if (migrations >= minFaults && !pageMaskEmpty(prefetch, 0, PAGES_PER_BLOCK)) {
        pageMaskOr(pages, pages, prefetch);
      }
      const f = pageMaskNext(pages, 0);
      const l = pageMaskLast(pages);
      return {
        start: rStart,
        end: rEnd,
        faultStart: blockStart + f * PAGE_SIZE,
        faultEnd: blockStart + (l + 1) * PAGE_SIZE,
        pages,
      };
    },
  };

  /** Steps 1-4 of §1.3 on the tree mask; result into `prefetch` (block page indices). */
  function treePrefetch(ctx: FaultContext, faulted: PageMask, first: number, outer: number): void {
    const n = outer - first;
    // Ghost leaves so that the tree is aligned to big pages: the block page `first` sits at tree
    // index `ghost`, so tree index j <-> block page first - ghost + j, and big pages are aligned.
    const ghost = first % bigPages;
    const leafCount = n + ghost;
    // leaves = (resident | faulted) >> first, then << ghost
    const residency = ctx.residency; // read once: a fault context may compute it on first read
    const shift = first - ghost; // tree index j <-> block page j + shift (≥ 0)
    for (let w = 0; w < tree.length; w++) {
      const v = pageMaskWord(faulted, w * 32 + shift);
      tree[w] = residency === null ? v : (v | pageMaskWord(residency, w * 32 + shift)) >>> 0;
    }
    pageMaskClearRange(tree, 0, ghost);
    pageMaskClearRange(tree, leafCount, tree.length * 32);
    // Grow fault granularity: prefix, each big page, suffix (in tree coordinates, ghost-aligned).
    const thr = ctx.thrashing;
    for (let u = 0; u < leafCount; u += bigPages) {
      const tFirst = Math.max(u, ghost);
      const tOuter = Math.min(u + bigPages, leafCount);
      const bFirst = tFirst - ghost + first;
      const bOuter = tOuter - ghost + first;
      if (!pageMaskEmpty(faulted, bFirst, bOuter) && (thr === null || pageMaskEmpty(thr, bFirst, bOuter))) {
        pageMaskFill(tree, tFirst, tOuter);
      }
    }
    // migrate = faulted & ~thrashing
    if (thr !== null) pageMaskAndNot(migrate, faulted, thr);
    else migrate.set(faulted);
    let levels = 1;
    while (1 << (levels - 1) < leafCount) levels++;
    const rFirst = ghost; // region in tree coordinates
    const rOuter = ghost + n;
    // Each migrated page takes the largest tree node around it whose occupancy passes the
    // threshold: scan from the root down and stop at the first that passes. The pages inside that
    // node share its ancestors (which did not pass), so they would pick the same node: skip them.
    for (let p = pageMaskNext(migrate, first); p >= 0 && p < outer; p = pageMaskNext(migrate, p + 1)) {
      const leaf = p - first + ghost;
      let cFirst = -1;
      let cOuter = -1;
      for (let level = 0; level < levels; level++) {
        const size = pow2(levels - 1 - level);
        const nFirst = leaf - (leaf % size);
        const nOuter = Math.min(nFirst + size, leafCount);
        const count = pageMaskWeight(tree, nFirst, nOuter);
        if (count * 100 > (nOuter - nFirst) * threshold) {
          cFirst = nFirst;
          cOuter = nOuter;
          break;
        }
      }
      if (cFirst < 0) continue;
      const nodeEnd = cOuter - ghost + first; // block page just past the node
      cFirst = Math.max(cFirst, rFirst);
      cOuter = Math.min(cOuter, rOuter);
      pageMaskFill(prefetch, cFirst - ghost + first, cOuter - ghost + first);
      if (cOuter === rOuter) break;
      p = nodeEnd - 1;
    }
  }
}

/** Clears every bit outside `[first, outer)` of a block mask. */
function clipMask(m: PageMask, first: number, outer: number): void {
  const tmp = pageMaskNew(m.length * 32);
  pageMaskFill(tmp, first, outer);
  for (let w = 0; w < m.length; w++) m[w] = (m[w]! & tmp[w]!) >>> 0;
}
