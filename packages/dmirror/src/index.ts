/**
 * `@hmmkit/dmirror`: lib/test_hmm.c's dmirror test device on the simulated mm and hmm —
 * devices 0/1 device-private and 2/3 device-coherent, per-open mirrors with their own page
 * table, and the HMM_DMIRROR_* commands with Linux's arguments, results and errors.
 *
 * @module
 */
export {
  checkDeviceIndex,
  DEVMEM_CHUNK_PAGES,
  DEVMEM_CHUNK_SIZE,
  DEVMEM_CHUNKS_RESERVE,
  DMIRROR_NDEVICES,
  DmirrorChunk,
  DmirrorDevice,
  type DmirrorDeviceOps,
  type DmirrorPageOwner,
} from './device.ts';
export {
  DMIRROR_FAULT_CHUNK,
  DMIRROR_MIGRATE_CHUNK,
  Dmirror,
  dmirrorDeviceRemoveChunks,
  dmirrorDevices,
  dmirrorOpen,
} from './dmirror.ts';
export { DmirrorPageTable, DPT_XA_TAG_ATOMIC, DPT_XA_TAG_WRITE, dptPfn, dptTag } from './dpt.ts';
export * from './uapi.ts';
