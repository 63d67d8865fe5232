/**
 * Range attributes over VA, kept apart from VMAs (like UVM's policy ranges and amdkfd's
 * `KFD_IOCTL_SVM` attributes): a sorted list of non-overlapping intervals with non-default
 * attributes, split on `advise` and merged when neighbours become equal. The state is an immer
 * immutable value: a snapshot is just a reference, `advise` yields immer patches (and their
 * inverse for undo), and {@link diffAttrStates} lists where two snapshots differ.
 *
 * @module
 */
import { ArgumentError } from '@hmmkit/sim';
import { enablePatches, Immer, type Patch } from 'immer';
import {
  attrFlags,
  attrPrefetchLoc,
  attrsEqual,
  DEFAULT_ATTRS,
  DEFAULT_SVM_FLAGS,
  LOC,
  MAX_DEVICES,
  MAX_GRANULARITY,
  type RangeAttrs,
  SVM_FLAG,
  SVM_FLAGS_ALL,
} from './attrs.ts';
import { PAGE_SIZE } from './granule.ts';

enablePatches();

/** Immer instance of the attribute map (frozen snapshots: advise is not a hot path). */
const immer = new Immer({ autoFreeze: true });

/** One interval of attributes `[start, end)`. */
export interface AttrInterval {
  readonly start: number;
  readonly end: number;
  readonly attrs: RangeAttrs;
}

/** An immutable snapshot of the attribute map: sorted, non-overlapping, merged, non-default only. */
export interface AttrState {
  readonly intervals: readonly AttrInterval[];
}

/** An attribute update: fields to set; `setAccessedBy`/`clearAccessedBy` edit the device bitmask. */
export interface AttrUpdate {
  readonly preferredLoc?: number;
  readonly accessedBy?: number;
  readonly setAccessedBy?: number;
  readonly clearAccessedBy?: number;
  readonly readMostly?: boolean;
  readonly granularity?: number;
  /** amdkfd PREFETCH_LOC (recorded only; {@link GpuSvm.setAttr} also migrates). */
  readonly prefetchLoc?: number;
  /** amdkfd SET_FLAGS / CLR_FLAGS ({@link SVM_FLAG} bits; GPU_READ_MOSTLY sets/clears `readMostly`). */
  readonly setFlags?: number;
  readonly clearFlags?: number;
  /** xe DRM_XE_MEM_RANGE_ATTR_ATOMIC (`ATOMIC_ACCESS` in atomic.ts). */
  readonly atomic?: number;
  /** xe DRM_XE_MEM_RANGE_ATTR_PAT (pat.ts checks it against the devices' PTE format). */
  readonly pat?: number;
}

/** Patches of one `advise` (apply `inversePatches` with {@link AttrMap.applyPatches} to undo). */
export interface AttrChange {
  readonly patches: readonly Patch[];
  readonly inversePatches: readonly Patch[];
}

/** A span where two snapshots differ. */
export interface AttrDiff {
  readonly start: number;
  readonly end: number;
  readonly before: RangeAttrs;
  readonly after: RangeAttrs;
}

/** Empty state. */
export const EMPTY_ATTR_STATE: AttrState = immer.produce({ intervals: [] } as AttrState, () => {});

/** Index of the last interval with start <= va, or -1. */
function floorIndex(list: readonly AttrInterval[], va: number): number {
  let lo = 0;
  let hi = list.length - 1;
  let ans = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid]!.start <= va) {
      ans = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return ans;
}

/** Attributes at `va` in a snapshot. */
export function attrsAt(state: AttrState, va: number): RangeAttrs {
  const iv = state.intervals[floorIndex(state.intervals, va)];
  return iv !== undefined && va < iv.end ? iv.attrs : DEFAULT_ATTRS;
}

/** Intervals covering `[start, end)` exactly, gaps filled with the defaults. */
export function attrSegments(state: AttrState, start: number, end: number): AttrInterval[] {
  const out: AttrInterval[] = [];
  let pos = start;
  let i = Math.max(floorIndex(state.intervals, start), 0);
  const list = state.intervals;
  while (pos < end) {
    const iv = list[i];
    if (iv === undefined || iv.start >= end) {
      out.push({ start: pos, end, attrs: DEFAULT_ATTRS });
      break;
    }
    if (iv.end <= pos) {
      i++;
      continue;
    }
    if (iv.start > pos) {
      out.push({ start: pos, end: iv.start, attrs: DEFAULT_ATTRS });
      pos = iv.start;
    }
    const e = Math.min(iv.end, end);
    out.push({ start: pos, end: e, attrs: iv.attrs });
    pos = e;
    i++;
  }
  return out;
}

/** Where two snapshots differ, as maximal spans with one before/after value each. */
export function diffAttrStates(a: AttrState, b: AttrState): AttrDiff[] {
  const cuts = new Set<number>();
  for (const s of [a, b]) for (const iv of s.intervals) cuts.add(iv.start).add(iv.end);
  const points = [...cuts].sort((x, y) => x - y);
  const out: AttrDiff[] = [];
  for (let k = 0; k + 1 < points.length; k++) {
    const start = points[k]!;
    const end = points[k + 1]!;
    const before = attrsAt(a, start);
    const after = attrsAt(b, start);
    if (attrsEqual(before, after)) continue;
    const last = out[out.length - 1];
    if (
      last !== undefined &&
      last.end === start &&
      attrsEqual(last.before, before) &&
      attrsEqual(last.after, after)
    ) {
      out[out.length - 1] = { start: last.start, end, before, after };
    } else out.push({ start, end, before, after });
  }
  return out;
}

/** Applies an update to one attribute value. */
function applyUpdate(a: RangeAttrs, u: AttrUpdate): RangeAttrs {
  let acc = u.accessedBy ?? a.accessedBy;
  if (u.setAccessedBy !== undefined) acc |= u.setAccessedBy;
  if (u.clearAccessedBy !== undefined) acc &= ~u.clearAccessedBy;
  let flags = attrFlags(a);
  if (u.setFlags !== undefined) flags |= u.setFlags;
  if (u.clearFlags !== undefined) flags &= ~u.clearFlags;
  let readMostly = u.readMostly ?? a.readMostly;
  if (u.setFlags !== undefined || u.clearFlags !== undefined)
    readMostly = (flags & SVM_FLAG.GPU_READ_MOSTLY) !== 0;
  flags &= ~SVM_FLAG.GPU_READ_MOSTLY;
  const prefetchLoc = u.prefetchLoc ?? attrPrefetchLoc(a);
  const r: RangeAttrs = {
    preferredLoc: u.preferredLoc ?? a.preferredLoc,
    accessedBy: acc >>> 0,
    readMostly,
    granularity: u.granularity ?? a.granularity,
    // absent while default, so values compare (and print) as before these attributes existed
    ...(prefetchLoc === LOC.UNDEFINED ? {} : { prefetchLoc }),
    ...(flags === DEFAULT_SVM_FLAGS ? {} : { flags }),
    ...(u.atomic !== undefined ? { atomic: u.atomic } : a.atomic !== undefined ? { atomic: a.atomic } : {}),
    ...((u.pat ?? a.pat ?? 0) === 0 ? {} : { pat: u.pat ?? a.pat }),
  };
  return attrsEqual(r, a) ? a : r;
}

/**
 * The attribute map of one address space, over all devices. Models amdkfd's `svm_ioctl_set_attr`
 * / UVM's `uvm_api_set_preferred_location` etc. as one `advise(start, end, update)`.
 */
export class AttrMap {
  private cur: AttrState = EMPTY_ATTR_STATE;
  private readonly listeners: ((start: number, end: number) => void)[] = [];
  /** Devices that may be named (preferred location / accessedBy bits). */
  readonly numDevices: number;

  constructor(opts: { numDevices?: number } = {}) {
    const n = opts.numDevices ?? MAX_DEVICES;
    if (!Number.isInteger(n) || n < 0 || n > MAX_DEVICES) {
      throw new ArgumentError('AttrMap', 'numDevices', `must be an integer in [0, ${MAX_DEVICES}]`, n);
    }
    this.numDevices = n;
  }

  /** The current snapshot (immutable; keep it to diff or restore later). */
  get state(): AttrState {
    return this.cur;
  }

  /** Attributes at `va`. */
  lookup(va: number): RangeAttrs {
    return attrsAt(this.cur, va);
  }

  /**
   * The maximal interval around `va` over which the attributes are those of `va` (a gap between
   * advised intervals holds the defaults; the last gap ends at `Number.MAX_SAFE_INTEGER`).
   */
  intervalAt(va: number): AttrInterval {
    const list = this.cur.intervals;
    const i = floorIndex(list, va);
    const iv = list[i];
    if (iv !== undefined && va < iv.end) return iv;
    const start = iv === undefined ? 0 : iv.end;
    const next = list[i + 1];
    return { start, end: next === undefined ? Number.MAX_SAFE_INTEGER : next.start, attrs: DEFAULT_ATTRS };
  }

  /**
   * Registers `fn` to hear of every change of the map: called once per span where the attributes
   * changed, after the change (by {@link advise}, {@link applyPatches} or {@link restore}). Returns
   * a function that unregisters it. GpuSvm listens to split its ranges at the new boundaries.
   */
  onChange(fn: (start: number, end: number) => void): () => void {
    this.listeners.push(fn);
    return () => {
      const k = this.listeners.indexOf(fn);
      if (k >= 0) this.listeners.splice(k, 1);
    };
  }

  /** Moves to `next` and tells the listeners where it differs from the current state. */
  private commit(next: AttrState): void {
    const prev = this.cur;
    this.cur = next;
    if (this.listeners.length === 0 || prev === next) return;
    for (const d of diffAttrStates(prev, next)) for (const fn of [...this.listeners]) fn(d.start, d.end);
  }

  /** Intervals covering `[start, end)` with defaults in the gaps. */
  segments(start: number, end: number): AttrInterval[] {
    return attrSegments(this.cur, start, end);
  }

  /**
   * Sets attributes over `[start, end)` (page aligned): splits the intervals at the boundaries,
   * updates the covered parts, merges equal neighbours and drops default-valued spans. Invalid
   * input throws ArgumentError with the map unchanged.
   */
  advise(start: number, end: number, update: AttrUpdate): AttrChange {
    this.check(start, end, update);
    const list = this.cur.intervals;
    // Window of affected intervals, widened by one neighbour on each side for the merge.
    let i0 = floorIndex(list, start);
    if (i0 < 0) i0 = 0;
    else if (list[i0]!.end < start) i0++;
    if (i0 > 0 && list[i0 - 1]!.end === start) i0--;
    let i1 = floorIndex(list, end - 1) + 1; // exclusive
    if (list[i1] !== undefined && list[i1]!.start === end) i1++;
    const old = list.slice(i0, i1);
    const lo = Math.min(start, old[0]?.start ?? start);
    const hi = Math.max(end, old[old.length - 1]?.end ?? end);
    const pieces: AttrInterval[] = [];
    for (const seg of attrSegments(this.cur, lo, hi)) {
      // split the segment at start/end and update the covered part
      const cuts = [
        seg.start,
        Math.max(seg.start, Math.min(start, seg.end)),
        Math.min(seg.end, Math.max(end, seg.start)),
        seg.end,
      ];
      for (let k = 0; k < 3; k++) {
        const s = cuts[k]!;
        const e = cuts[k + 1]!;
        if (s >= e) continue;
        const attrs = s >= start && e <= end ? applyUpdate(seg.attrs, update) : seg.attrs;
        if (attrsEqual(attrs, DEFAULT_ATTRS)) continue;
        const last = pieces[pieces.length - 1];
        if (last !== undefined && last.end === s && attrsEqual(last.attrs, attrs)) {
          pieces[pieces.length - 1] = { start: last.start, end: e, attrs: last.attrs };
        } else pieces.push({ start: s, end: e, attrs });
      }
    }
    const same =
      pieces.length === old.length &&
      pieces.every(
        (p, k) => p.start === old[k]!.start && p.end === old[k]!.end && attrsEqual(p.attrs, old[k]!.attrs),
      );
    if (same) return { patches: [], inversePatches: [] };
    const [next, patches, inversePatches] = immer.produceWithPatches(this.cur, (d) => {
      d.intervals.splice(i0, i1 - i0, ...pieces);
    });
    this.commit(next);
    return { patches, inversePatches };
  }

  /** Applies patches from {@link advise} (e.g. `inversePatches` to undo). */
  applyPatches(patches: readonly Patch[]): void {
    this.commit(immer.applyPatches(this.cur, patches as Patch[]));
  }

  /** Restores a snapshot taken from {@link state}. */
  restore(state: AttrState): void {
    this.commit(state);
  }

  private check(start: number, end: number, u: AttrUpdate): void {
    const fn = 'advise';
    if (u === null || typeof u !== 'object') {
      throw new ArgumentError(fn, 'update', 'must be an AttrUpdate object', u);
    }
    if (!Number.isSafeInteger(start) || start < 0 || start % PAGE_SIZE !== 0) {
      throw new ArgumentError(fn, 'start', 'must be a page-aligned uint', start);
    }
    if (!Number.isSafeInteger(end) || end <= start || end % PAGE_SIZE !== 0) {
      throw new ArgumentError(fn, 'end', 'must be page aligned and > start', end);
    }
    const maxMask = 2 ** this.numDevices - 1;
    if (u.preferredLoc !== undefined) {
      const p = u.preferredLoc;
      if (!Number.isInteger(p) || p < LOC.UNDEFINED || p > this.numDevices) {
        throw new ArgumentError(
          fn,
          'preferredLoc',
          `must be LOC.UNDEFINED, LOC.SYSMEM or 1..${this.numDevices}`,
          p,
        );
      }
    }
    for (const k of ['accessedBy', 'setAccessedBy', 'clearAccessedBy'] as const) {
      const v = u[k];
      if (v !== undefined && (!Number.isInteger(v) || v < 0 || v > maxMask)) {
        throw new ArgumentError(fn, k, `must be a device bitmask within ${this.numDevices} devices`, v);
      }
    }
    if (u.granularity !== undefined) {
      const g = u.granularity;
      if (!Number.isInteger(g) || g < 0 || g > MAX_GRANULARITY) {
        throw new ArgumentError(fn, 'granularity', `must be an integer in [0, ${MAX_GRANULARITY}]`, g);
      }
    }
    if (u.atomic !== undefined && (!Number.isInteger(u.atomic) || u.atomic < 0 || u.atomic > 4)) {
      throw new ArgumentError(fn, 'atomic', 'must be an ATOMIC_ACCESS value (0..4)', u.atomic);
    }
    if (u.pat !== undefined && (!Number.isInteger(u.pat) || u.pat < 0 || u.pat > 255)) {
      throw new ArgumentError(fn, 'pat', 'must be an integer in [0, 255]', u.pat);
    }
    if (u.readMostly !== undefined && typeof u.readMostly !== 'boolean') {
      throw new ArgumentError(fn, 'readMostly', 'must be a boolean', u.readMostly);
    }
    if (u.prefetchLoc !== undefined) {
      const p = u.prefetchLoc;
      if (!Number.isInteger(p) || p < LOC.UNDEFINED || p > this.numDevices) {
        throw new ArgumentError(
          fn,
          'prefetchLoc',
          `must be LOC.UNDEFINED, LOC.SYSMEM or 1..${this.numDevices}`,
          p,
        );
      }
    }
    for (const k of ['setFlags', 'clearFlags'] as const) {
      const v = u[k];
      if (v !== undefined && (!Number.isInteger(v) || v < 0 || v > SVM_FLAGS_ALL)) {
        throw new ArgumentError(fn, k, 'must be a mask of SVM_FLAG bits', v);
      }
    }
    if ((u.setFlags !== undefined || u.clearFlags !== undefined) && u.readMostly !== undefined) {
      throw new ArgumentError(
        fn,
        'readMostly',
        'give readMostly or the GPU_READ_MOSTLY flag, not both',
        u.readMostly,
      );
    }
  }
}
