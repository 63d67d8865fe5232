/**
 * Range attribute values (amdkfd's `KFD_IOCTL_SVM_ATTR_*`, UVM's `uvm_va_policy_t`): the per-VA
 * policy a user sets with `advise`. Kept apart from VMAs; see `attr-map.ts` for the interval map.
 *
 * @module
 */

/**
 * Memory locations. A location is a number: `LOC.UNDEFINED` (no preference), `LOC.SYSMEM`
 * (system memory), or `k >= 1` for the VRAM of device index `k - 1` (see {@link deviceLoc}).
 * Mirrors amdkfd's `KFD_IOCTL_SVM_LOCATION_{UNDEFINED,SYSMEM}` and gpu ids.
 */
export const LOC = { UNDEFINED: -1, SYSMEM: 0 } as const;

/** The location of device `index`'s VRAM. */
export function deviceLoc(index: number): number {
  return index + 1;
}

/** Device index of a VRAM location, or -1 for system memory / undefined. */
export function locDevice(loc: number): number {
  return loc >= 1 ? loc - 1 : -1;
}

/** Default granularity, log2 pages (amdkfd `svm_default_granularity = 9`, i.e. 2 MiB). */
export const DEFAULT_GRANULARITY = 9;
/** Largest granularity amdkfd accepts (`0x3F`). */
export const MAX_GRANULARITY = 0x3f;
/** Devices representable in an `accessedBy` bitmask. */
export const MAX_DEVICES = 31;

/**
 * amdkfd's range flags (`KFD_IOCTL_SVM_FLAG_*`). GPU_RO is enforced (the device maps the range
 * read-only and a GPU write fault on it is refused with -EPERM); GPU_READ_MOSTLY is the
 * `readMostly` attribute; GPU_ALWAYS_MAPPED maps the range on set_attr with XNACK off; the others
 * are kept and reported only (hmmkit has one coherence model and no executable-memory check).
 */
export const SVM_FLAG = {
  HOST_ACCESS: 0x1,
  COHERENT: 0x2,
  HIVE_LOCAL: 0x4,
  GPU_RO: 0x8,
  GPU_EXEC: 0x10,
  GPU_READ_MOSTLY: 0x20,
  GPU_ALWAYS_MAPPED: 0x40,
  EXT_COHERENT: 0x80,
} as const;
/** Every defined flag bit. */
export const SVM_FLAGS_ALL = 0xff;
/** Flags of memory nobody advised (amdkfd svm_range_set_default_attributes: HOST_ACCESS | COHERENT). */
export const DEFAULT_SVM_FLAGS = SVM_FLAG.HOST_ACCESS | SVM_FLAG.COHERENT;

/**
 * The attributes of one VA interval. Plain data (immer-friendly, comparable field by field).
 * `prefetchLoc` and `flags` are absent while they hold their defaults (see {@link attrPrefetchLoc},
 * {@link attrFlags}), so values written before they existed compare equal.
 */
export interface RangeAttrs {
  /** Preferred location ({@link LOC} or a device location). */
  readonly preferredLoc: number;
  /** Devices that should keep a mapping wherever the data lives: bit `i` = device index `i`. */
  readonly accessedBy: number;
  /** Read-mostly: reads may duplicate the data (UVM read duplication, amdkfd GPU_READ_MOSTLY). */
  readonly readMostly: boolean;
  /** Migration granularity, log2 pages (amdkfd GRANULARITY). */
  readonly granularity: number;
  /** amdkfd PREFETCH_LOC: where the range was last asked to be (absent: LOC.UNDEFINED). */
  readonly prefetchLoc?: number;
  /** {@link SVM_FLAG} bits other than GPU_READ_MOSTLY (absent: {@link DEFAULT_SVM_FLAGS}). */
  readonly flags?: number;
  /** xe's atomic-access attribute (`ATOMIC_ACCESS` in atomic.ts; absent: never advised). */
  readonly atomic?: number;
  /** xe's PAT index for the device PTEs (pat.ts; absent: 0). */
  readonly pat?: number;
}

/** The prefetch location of `a` (LOC.UNDEFINED when never set). */
export function attrPrefetchLoc(a: RangeAttrs): number {
  return a.prefetchLoc ?? LOC.UNDEFINED;
}

/** The flags of `a`, GPU_READ_MOSTLY included when `readMostly`. */
export function attrFlags(a: RangeAttrs): number {
  return (a.flags ?? DEFAULT_SVM_FLAGS) | (a.readMostly ? SVM_FLAG.GPU_READ_MOSTLY : 0);
}

/** Attributes of memory nobody advised. */
export const DEFAULT_ATTRS: RangeAttrs = Object.freeze({
  preferredLoc: LOC.UNDEFINED,
  accessedBy: 0,
  readMostly: false,
  granularity: DEFAULT_GRANULARITY,
});

/** Whether two attribute values are equal (the merge criterion). */
export function attrsEqual(a: RangeAttrs, b: RangeAttrs): boolean {
  return (
    a.preferredLoc === b.preferredLoc &&
    a.accessedBy === b.accessedBy &&
    a.readMostly === b.readMostly &&
    a.granularity === b.granularity &&
    attrPrefetchLoc(a) === attrPrefetchLoc(b) &&
    attrFlags(a) === attrFlags(b) &&
    a.atomic === b.atomic &&
    (a.pat ?? 0) === (b.pat ?? 0)
  );
}
