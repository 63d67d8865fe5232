/**
 * `@hmmkit/hmm`: the calls a mirroring driver makes — hmm_range_fault (mm/hmm.c), migrate_vma
 * and migrate_device_range (mm/migrate_device.c), make_device_exclusive (mm/rmap.c) — plus
 * device-memory helpers and the canonical driver retry loop as one call.
 *
 * @module
 */
export {
  clearFrame,
  copyFrame,
  copyFrames,
  DeviceMemory,
  type DeviceMemoryOptions,
  readFrame,
} from './device-memory.ts';
export { type DeviceExclusiveOutcome, makeDeviceExclusive } from './exclusive.ts';
export {
  MIGRATE_PFN_COMPOUND,
  MIGRATE_PFN_MIGRATE,
  MIGRATE_PFN_SHIFT,
  MIGRATE_PFN_VALID,
  MIGRATE_PFN_WRITE,
  MIGRATE_VMA_SELECT_COMPOUND,
  MIGRATE_VMA_SELECT_DEVICE_COHERENT,
  MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
  MIGRATE_VMA_SELECT_SYSTEM,
  MigrateVma,
  type MigrateVmaInit,
  migrateDeviceFinalize,
  migrateDevicePages,
  migrateDeviceRange,
  migratePfn,
  migratePfnFlags,
  migratePfnToPfn,
  migrateVmaFinalize,
  migrateVmaPages,
  migrateVmaSetup,
} from './migrate.ts';
export {
  HMM_PFN_DMA_MAPPED,
  HMM_PFN_ERROR,
  HMM_PFN_INOUT_FLAGS,
  HMM_PFN_ORDER_MASK,
  HMM_PFN_P2PDMA,
  HMM_PFN_P2PDMA_BUS,
  HMM_PFN_REQ_FAULT,
  HMM_PFN_REQ_WRITE,
  HMM_PFN_VALID,
  HMM_PFN_WRITE,
  HMM_RANGE_DEFAULT_TIMEOUT,
  HmmRange,
  type HmmRangeFaultLockedOptions,
  type HmmRangeInit,
  hmmPfnToMapOrder,
  hmmRangeFault,
  hmmRangeFaultLocked,
} from './range-fault.ts';
export { type HmmStats, hmmStats } from './stats.ts';
