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

/** The attributes of one VA interval. Plain data (immer-friendly, comparable field by field). */
export interface RangeAttrs {
  /** Preferred location ({@link LOC} or a device location). */
  readonly preferredLoc: number;
  /** Devices that should keep a mapping wherever the data lives: bit `i` = device index `i`. */
  readonly accessedBy: number;
  /** Read-mostly: reads may duplicate the data (UVM read duplication, amdkfd GPU_READ_MOSTLY). */
  readonly readMostly: boolean;
  /** Migration granularity, log2 pages (amdkfd GRANULARITY). */
  readonly granularity: number;
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
    a.granularity === b.granularity
  );
}
