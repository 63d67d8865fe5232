/**
 * Errors and errno values shared by every hmmkit package.
 *
 * Two kinds of failure, as in the kernel:
 * - a protocol call (hmmRangeFault, mmap, a notifier insert, ...) returns Linux's code: 0 or a
 *   negative {@link Errno} value, so that a driver's retry loop reads like the kernel's;
 * - a caller's invalid argument (an unaligned address where the kernel would BUG or the
 *   simulation cannot represent it, a wrong type, an unknown name) throws an
 *   {@link ArgumentError} that names the argument and the rule, and leaves all state unchanged.
 *
 * @module
 */

/** Linux errno values (positive, as in `include/uapi/asm-generic/errno-base.h`); calls return `-Errno.X`. */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  EFBIG: 27,
  ENOSPC: 28,
  ERANGE: 34,
  EOVERFLOW: 75,
  EOPNOTSUPP: 95,
} as const;

/** One of the {@link Errno} names. */
export type ErrnoName = keyof typeof Errno;

const errnoNames = new Map<number, ErrnoName>(
  (Object.keys(Errno) as ErrnoName[]).map((name) => [Errno[name], name]),
);

/** `"-EBUSY"` for -16, `"0"` for 0: for messages and test failure output. */
export function errnoName(code: number): string {
  if (code === 0) return '0';
  const name = errnoNames.get(Math.abs(code));
  if (name === undefined) return String(code);
  return code < 0 ? `-${name}` : name;
}

/** Base class of every error hmmkit throws on purpose. */
export class HmmkitError extends Error {
  override name = 'HmmkitError';
}

/**
 * A caller passed an argument that breaks a rule of the API. Thrown before any state is
 * touched, so the structure the call was made on is exactly as it was.
 */
export class ArgumentError extends HmmkitError {
  override name = 'ArgumentError';
  /** The function that rejected the call, e.g. `"mmuIntervalNotifierInsert"`. */
  readonly fn: string;
  /** The argument's name as in the signature, e.g. `"length"`. */
  readonly argument: string;
  /** The rule it broke, as a phrase: `"must be a multiple of 4096"`. */
  readonly rule: string;
  /** The offending value. */
  readonly value: unknown;

  constructor(fn: string, argument: string, rule: string, value?: unknown) {
    super(`${fn}: argument '${argument}' ${rule} (got ${describe(value)})`);
    this.fn = fn;
    this.argument = argument;
    this.rule = rule;
    this.value = value;
  }
}

/** A call came at a moment its protocol forbids (e.g. removing a notifier twice, unlocking a free mutex). */
export class StateError extends HmmkitError {
  override name = 'StateError';
  readonly fn: string;
  constructor(fn: string, message: string) {
    super(`${fn}: ${message}`);
    this.fn = fn;
  }
}

function describe(value: unknown): string {
  if (typeof value === 'number') {
    return Number.isInteger(value) && Math.abs(value) >= 4096 ? `0x${value.toString(16)}` : String(value);
  }
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === undefined) return 'undefined';
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** Throws unless `value` is an integer in [0, 2^53). Used for addresses, lengths and counts. */
export function checkUint(fn: string, argument: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new ArgumentError(fn, argument, 'must be a non-negative safe integer', value);
  }
}

/**
 * The largest address or length the simulation represents: `ULONG_MAX` of a 64-bit kernel
 * stands in as 2^53 − 1, the largest integer a JS number holds exactly. Every user VA (48- or
 * 57-bit) fits far below it.
 */
export const ULONG_MAX = Number.MAX_SAFE_INTEGER;
