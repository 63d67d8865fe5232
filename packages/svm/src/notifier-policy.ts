/**
 * Notifier granularity policies: how much VA one MMU interval notifier covers. One per range
 * (amdkfd), one per fixed aligned window (drm_gpusvm's `notifier_size`, xe default 512 MiB), or one
 * for the whole mm (nouveau's single classic notifier). Coarse notifiers mean fewer interval-tree
 * nodes but more false retries (an invalidation bumps the sequence number of every range inside).
 *
 * @module
 */
import { ArgumentError } from '@hmmkit/sim';
import { alignDown, PAGE_SIZE, type Span, SZ_512M } from './granule.ts';

/** Kinds of notifier policy. */
export const NOTIFIER_KIND = { PER_RANGE: 'per-range', WINDOW: 'window', WHOLE_MM: 'whole-mm' } as const;
/** One of {@link NOTIFIER_KIND}. */
export type NotifierKind = (typeof NOTIFIER_KIND)[keyof typeof NOTIFIER_KIND];

/** A notifier granularity policy: a pure function from a fault address to a notifier window. */
export interface NotifierPolicy {
  /** Name for traces and tables. */
  readonly name: string;
  /** Which kind (the framework orders its fault steps by it). */
  readonly kind: NotifierKind;
  /**
   * The window the range of a fault at `va` must fit, and the notifier to find or create covers;
   * `[mmStart, mmEnd)` is the VA the framework manages. For PER_RANGE this is `[mmStart, mmEnd)`
   * and the notifier is created afterwards over exactly the chosen range ({@link notifierSpan}).
   */
  window(va: number, mmStart: number, mmEnd: number): Span;
}

/** One notifier per range, covering exactly the range (amdkfd `svm_range` notifiers). */
export function perRangeNotifiers(): NotifierPolicy {
  return { name: 'per-range', kind: NOTIFIER_KIND.PER_RANGE, window: (_va, s, e) => ({ start: s, end: e }) };
}

/**
 * One notifier per `size`-aligned window, `[ALIGN_DOWN(va, size), ALIGN(va + 1, size))`, clipped
 * to the managed VA (drm_gpusvm `drm_gpusvm_notifier_alloc`; xe `svm_notifier_size` = 512 MiB).
 */
export function windowNotifiers(size: number = SZ_512M): NotifierPolicy {
  if (!Number.isSafeInteger(size) || size < PAGE_SIZE || 2 ** Math.round(Math.log2(size)) !== size) {
    throw new ArgumentError('windowNotifiers', 'size', 'must be a power of two >= 4096', size);
  }
  return {
    name: `window-${size >= 0x100000 ? `${size / 0x100000}M` : `${size / 1024}K`}`,
    kind: NOTIFIER_KIND.WINDOW,
    window(va, mmStart, mmEnd) {
      const start = alignDown(va, size);
      return { start: Math.max(start, mmStart), end: Math.min(start + size, mmEnd) };
    },
  };
}

/** One notifier over the whole managed VA (nouveau's one notifier per SVMM). */
export function wholeMmNotifier(): NotifierPolicy {
  return { name: 'whole-mm', kind: NOTIFIER_KIND.WHOLE_MM, window: (_va, s, e) => ({ start: s, end: e }) };
}

/**
 * The span of the notifier that must cover a range `[start, end)` chosen for a fault at `va`:
 * the range itself for PER_RANGE, the policy window otherwise.
 */
export function notifierSpan(
  policy: NotifierPolicy,
  va: number,
  range: Span,
  mmStart: number,
  mmEnd: number,
): Span {
  if (policy.kind === NOTIFIER_KIND.PER_RANGE) return { start: range.start, end: range.end };
  return policy.window(va, mmStart, mmEnd);
}
