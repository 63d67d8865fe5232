/**
 * lib/test_hmm_uapi.h: the dmirror commands, the SNAPSHOT byte encoding and the command block.
 *
 * @module
 */

/** `HMM_DMIRROR_READ` (`_IOWR('H', 0x00, struct hmm_dmirror_cmd)`): the device reads memory. */
export const HMM_DMIRROR_READ = 0x00;
/** `HMM_DMIRROR_WRITE`: the device writes memory. */
export const HMM_DMIRROR_WRITE = 0x01;
/** `HMM_DMIRROR_MIGRATE_TO_DEV`: migrate system pages to device memory. */
export const HMM_DMIRROR_MIGRATE_TO_DEV = 0x02;
/** `HMM_DMIRROR_MIGRATE_TO_SYS`: migrate device pages back to system memory. */
export const HMM_DMIRROR_MIGRATE_TO_SYS = 0x03;
/** `HMM_DMIRROR_SNAPSHOT`: one byte per page describing the CPU mapping (no faults). */
export const HMM_DMIRROR_SNAPSHOT = 0x04;
/** `HMM_DMIRROR_EXCLUSIVE`: make pages device-exclusive (atomic access). */
export const HMM_DMIRROR_EXCLUSIVE = 0x05;
/** `HMM_DMIRROR_CHECK_EXCLUSIVE`: -EPERM if the device still holds atomic access to a page. */
export const HMM_DMIRROR_CHECK_EXCLUSIVE = 0x06;
/** `HMM_DMIRROR_RELEASE`: evict every chunk of the device's memory to system memory. */
export const HMM_DMIRROR_RELEASE = 0x07;
/** `HMM_DMIRROR_FLAGS`: set the per-open flags to `npages`. */
export const HMM_DMIRROR_FLAGS = 0x08;

/** Every dmirror command number. */
export type HmmDmirrorRequest =
  | typeof HMM_DMIRROR_READ
  | typeof HMM_DMIRROR_WRITE
  | typeof HMM_DMIRROR_MIGRATE_TO_DEV
  | typeof HMM_DMIRROR_MIGRATE_TO_SYS
  | typeof HMM_DMIRROR_SNAPSHOT
  | typeof HMM_DMIRROR_EXCLUSIVE
  | typeof HMM_DMIRROR_CHECK_EXCLUSIVE
  | typeof HMM_DMIRROR_RELEASE
  | typeof HMM_DMIRROR_FLAGS;

/** `HMM_DMIRROR_FLAG_FAIL_ALLOC`: the next large (THP) device allocation fails once. */
export const HMM_DMIRROR_FLAG_FAIL_ALLOC = 1;

/** SNAPSHOT byte values (`enum` in test_hmm_uapi.h). */
export const HMM_DMIRROR_PROT_ERROR = 0xff;
/** Not mapped (or a foreign device-private page that was not faulted). */
export const HMM_DMIRROR_PROT_NONE = 0x00;
/** Read access. */
export const HMM_DMIRROR_PROT_READ = 0x01;
/** Write access. */
export const HMM_DMIRROR_PROT_WRITE = 0x02;
/** Mapped by a PMD (2 MiB). */
export const HMM_DMIRROR_PROT_PMD = 0x04;
/** Mapped by a PUD (1 GiB). */
export const HMM_DMIRROR_PROT_PUD = 0x08;
/** The zero page. */
export const HMM_DMIRROR_PROT_ZERO = 0x10;
/** A device-private page of this device. */
export const HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL = 0x20;
/** A device-private page of another device. */
export const HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE = 0x30;
/** A device-coherent page of this device. */
export const HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL = 0x40;
/** A device-coherent page of another device. */
export const HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE = 0x50;

/** `HMM_DMIRROR_MEMORY_DEVICE_PRIVATE` / `_COHERENT` (the device's zone_device_type). */
export const HMM_DMIRROR_MEMORY_DEVICE_PRIVATE = 1;
/** Device-coherent memory (devices 2 and 3). */
export const HMM_DMIRROR_MEMORY_DEVICE_COHERENT = 2;

/**
 * The input of `struct hmm_dmirror_cmd`: `addr` (the process VA), `ptr` (the user buffer: the
 * bounce data for READ/WRITE/MIGRATE/EXCLUSIVE, one byte per page for SNAPSHOT), `npages`
 * (for FLAGS: the flags).
 */
export interface HmmDmirrorCmd {
  addr: number;
  ptr?: Uint8Array;
  npages: number;
}

/**
 * What the selftest's `hmm_dmirror_cmd()` sees: `ret` is 0 or `-errno`; `cpages`/`faults` are the
 * values copied back on success. On an error the kernel does not copy the command back, so they
 * are the values the caller passed in `prev` (0 by default).
 */
export interface HmmDmirrorResult {
  ret: number;
  cpages: number;
  faults: number;
}
