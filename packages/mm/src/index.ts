/**
 * `@hmmkit/mm`: a simulated Linux CPU mm — physical memory, page tables, VMAs, faults,
 * mmap/munmap/mprotect/mremap/madvise, fork and COW, file mappings, swap, NUMA migration, THP —
 * that calls the MMU notifiers exactly where Linux does, so a mirroring driver sees what it
 * would see on a real kernel.
 *
 * @module
 */
export * from './constants.ts';
export type { DeviceExclusiveResult } from './device.ts';
export { inodeById, MmFile, ShmemInode, SpecialFile, TmpFile } from './file.ts';
export {
  createMachine,
  Machine,
  type MachineOptions,
  type MmSignal,
  MmSignalError,
  type MmStats,
  type ThpMode,
} from './machine.ts';
export { removeMigrationPtesPfn } from './migrate.ts';
export { type InvalidationRecord, Mm } from './mm.ts';
export { calcVmProtBits } from './mprotect.ts';
export * from './page-table.ts';
export {
  DevPagemap,
  type DevPagemapOps,
  type DevPagemapType,
  HUGE_ZERO_PFN,
  type MemoryNode,
  type MemoryNodeKind,
  PG,
  PhysMem,
  type PhysMemOptions,
  SwapSpace,
  type VmFault,
  ZERO_PFN,
} from './physmem.ts';
export { type RmapHit, rmapWalkPfn, tryToMigratePfn } from './rmap.ts';
export { AnonVma, Vma, VmaTree, vmasMergeable } from './vma.ts';
