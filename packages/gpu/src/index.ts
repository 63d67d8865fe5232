/**
 * `@hmmkit/gpu`: the device hardware model. Versioned page-table formats as data, device page
 * tables with one generic walker, TLB with batched invalidation, VRAM with a buddy allocator,
 * a copy engine, a replayable fault buffer and an execution engine that runs warps' access
 * streams. It knows nothing of the CPU mm; a driver framework (`@hmmkit/svm`) sits on top.
 *
 * @module
 */
export {
  type BitField,
  CompiledField,
  entryHex,
  type IndexField,
  Pattern,
  readBits,
  ScatteredField,
  writeBits,
} from './bits.ts';
export { type CopyDirection, CopyEngine, type CopyTicket } from './copy-engine.ts';
export {
  createGpuDevice,
  DeviceUpdate,
  GpuDevice,
  type GpuDeviceOptions,
  type Memory32,
  type StaleTlbEntry,
} from './device.ts';
export {
  type AccessStreams,
  type EngineOptions,
  GpuEngine,
  type KernelResult,
  type MemoryPort,
  makeStreams,
  type RunOptions,
  WARP,
} from './engine.ts';
export {
  ACCESS,
  ACCESS_NAMES,
  type AccessType,
  FaultBatch,
  FaultBuffer,
  type FaultBufferOptions,
  type FaultTarget,
  type FlushMode,
} from './fault-buffer.ts';
export {
  type AddressDesc,
  APERTURE,
  APERTURE_NAMES,
  type Aperture,
  type ApertureName,
  CompiledAddress,
  CompiledLevel,
  CompiledPde,
  CompiledPte,
  compileFormat,
  type DualDesc,
  type FieldValues,
  type FormatDesc,
  type LayoutDesc,
  type LevelDesc,
  PAGE_2M,
  PAGE_4K,
  PAGE_64K,
  type PageTarget,
  type PdeDesc,
  type PteDesc,
  type PtFormat,
} from './format.ts';
export {
  type LeafState,
  type MapAttrs,
  type MappingInfo,
  PageTable,
  type PageTableOptions,
  Translation,
  WALK,
  WALK_NAMES,
  type WalkStatus,
} from './page-table.ts';
export {
  type PatEntry,
  type PatName,
  type PatTable,
  patIndexCount,
  patIndexOf,
  patIndexValid,
  XE2_PAT_TABLE,
  xe2Pat,
} from './pat-table.ts';
export {
  amdGfx9,
  amdGfx9Desc,
  FORMATS,
  nvMmuV2,
  nvMmuV2Desc,
  nvMmuV3,
  nvMmuV3Desc,
  toyFormat,
  toyFormatDesc,
  xe2,
  xe2Desc,
} from './presets.ts';
export { PtUpdateBatch, type PtUpdateCounters, type PtUpdateMode, ptUpdateCounters } from './pt-update.ts';
export { TLB_FLAG, Tlb, TlbBatch, type TlbOptions } from './tlb.ts';
export { ROOT_CHUNK_BYTES, VRAM_MAX_ORDER, Vram, type VramStats } from './vram.ts';
