/**
 * Device memory for drivers: a ZONE_DEVICE range behind a {@link DevPagemap} (device-private
 * or device-coherent) with an allocator on top, and copies between frames — what every
 * device-memory driver (lib/test_hmm.c's dmirror_devmem_*, nouveau_dmem, amdkfd's svm_migrate)
 * writes for itself, in one place. Allocated pages come back as zone_device_page_init() leaves
 * them: refcount 1 and locked. A page returns to the pool when its refcount drops to 0
 * (dev_pagemap_ops.page_free).
 *
 * @module
 */
import {
  DevPagemap,
  type DevPagemapType,
  HPAGE_PMD_NR,
  type Machine,
  PAGE_SIZE,
  type PhysMem,
  type VmFault,
} from '@hmmkit/mm';
import { ArgumentError, checkUint } from '@hmmkit/sim';
import { registerMachine } from './machine-registry.ts';

/** Options of {@link DeviceMemory}. */
export interface DeviceMemoryOptions {
  /** 'private' (MEMORY_DEVICE_PRIVATE, never CPU-mapped) or 'coherent' (MEMORY_DEVICE_COHERENT). */
  type: DevPagemapType;
  /** The pgmap owner cookie (hmm's devPrivateOwner, migrate_vma's pgmapOwner). */
  owner: unknown;
  /** Number of frames. */
  nrPages: number;
  /** dev_pagemap_ops.migrate_to_ram(): required for device-private memory. */
  migrateToRam?: (vmf: VmFault) => Promise<number> | number;
  /** Called after a page returned to the pool (dev_pagemap_ops.page_free). */
  pageFree?: (pfn: number) => void;
}

/** A DevPagemap-backed pool of device frames (memremap_pages + a free-page allocator). */
export class DeviceMemory {
  readonly machine: Machine;
  readonly phys: PhysMem;
  readonly pgmap: DevPagemap;
  /** First pfn of the range. */
  readonly start: number;
  /** Number of frames. */
  readonly nrPages: number;
  /** 1 where the frame is free (index = pfn - start). */
  private readonly freeMap: Uint8Array;
  private cursor = 0;
  /** Free frames. */
  freePages: number;
  /** When true every allocation fails (like dmirror's HMM_DMIRROR_FLAG_FAIL_ALLOC). */
  failAlloc = false;

  constructor(machine: Machine, opts: DeviceMemoryOptions) {
    const fn = 'DeviceMemory';
    if (opts.type !== 'private' && opts.type !== 'coherent') {
      throw new ArgumentError(fn, 'opts.type', "must be 'private' or 'coherent'", opts.type);
    }
    if (!Number.isSafeInteger(opts.nrPages) || opts.nrPages <= 0) {
      throw new ArgumentError(fn, 'opts.nrPages', 'must be a positive integer', opts.nrPages);
    }
    if (opts.type === 'private' && opts.migrateToRam === undefined) {
      throw new ArgumentError(fn, 'opts.migrateToRam', 'is required for device-private memory', undefined);
    }
    this.machine = machine;
    this.phys = machine.phys;
    registerMachine(machine);
    const userFree = opts.pageFree;
    const m2r = opts.migrateToRam ?? (() => 0);
    this.pgmap = new DevPagemap(opts.type, opts.owner, {
      migrateToRam: (vmf) => m2r(vmf),
      pageFree: (pfn) => {
        const k = pfn - this.start;
        if (this.freeMap[k] === 0) {
          this.freeMap[k] = 1;
          this.freePages++;
        }
        userFree?.(pfn);
      },
    });
    this.start = machine.phys.memremapPages(this.pgmap, opts.nrPages);
    this.nrPages = opts.nrPages;
    this.freeMap = new Uint8Array(opts.nrPages).fill(1);
    this.freePages = opts.nrPages;
  }

  /** True when `pfn` belongs to this pool. */
  contains(pfn: number): boolean {
    return pfn >= this.start && pfn < this.start + this.nrPages;
  }

  /** True when `pfn` is a free frame of this pool. */
  isFree(pfn: number): boolean {
    return this.contains(pfn) && this.freeMap[pfn - this.start] === 1;
  }

  /**
   * Allocates one frame: zone_device_page_init() state (refcount 1, locked). Returns the pfn,
   * or -1 when the pool is exhausted or `failAlloc` is set.
   */
  allocPage(): number {
    if (this.failAlloc || this.freePages === 0) return -1;
    const n = this.nrPages;
    for (let s = 0; s < n; s++) {
      const k = (this.cursor + s) % n;
      if (this.freeMap[k] === 1) {
        this.freeMap[k] = 0;
        this.freePages--;
        this.cursor = (k + 1) % n;
        const pfn = this.start + k;
        this.phys.zoneDevicePageInit(pfn);
        return pfn;
      }
    }
    return -1;
  }

  /**
   * Allocates a 2 MiB device folio (zone_device_folio_init order 9): 512 aligned free frames,
   * each with refcount 1, the head locked. Returns the head pfn or -1.
   */
  allocFolio(): number {
    if (this.failAlloc || this.freePages < HPAGE_PMD_NR) return -1;
    for (let k = 0; k + HPAGE_PMD_NR <= this.nrPages; k += HPAGE_PMD_NR) {
      let ok = true;
      for (let q = 0; q < HPAGE_PMD_NR; q++) {
        if (this.freeMap[k + q] === 0) {
          ok = false;
          break;
        }
      }
      if (!ok) continue;
      this.freeMap.fill(0, k, k + HPAGE_PMD_NR);
      this.freePages -= HPAGE_PMD_NR;
      this.phys.zoneDeviceFolioInit(this.start + k, 9);
      return this.start + k;
    }
    return -1;
  }

  /**
   * Drops the allocation reference of a page that was never handed to migrate_vma (unlocks it
   * if locked). The page returns to the pool when no other reference remains.
   */
  freePage(pfn: number): void {
    if (!this.contains(pfn) || this.freeMap[pfn - this.start] === 1) {
      throw new ArgumentError('DeviceMemory.freePage', 'pfn', 'must be an allocated page of this pool', pfn);
    }
    if (this.phys.isPageLocked(pfn)) this.phys.unlockPage(pfn);
    this.phys.putPage(pfn);
  }
}

/** Models copy_highpage() between any two frames (system or device): dst gets src's bytes. */
export function copyFrame(phys: PhysMem, dst: number, src: number): void {
  checkUint('copyFrame', 'dst', dst);
  checkUint('copyFrame', 'src', src);
  if (dst >= phys.frameLimit) throw new ArgumentError('copyFrame', 'dst', 'must be an existing frame', dst);
  if (src >= phys.frameLimit) throw new ArgumentError('copyFrame', 'src', 'must be an existing frame', src);
  phys.copyPage(dst, src);
}

/** Copies `n` consecutive frames (a folio) from `src` to `dst`. */
export function copyFrames(phys: PhysMem, dst: number, src: number, n: number): void {
  checkUint('copyFrames', 'n', n);
  if (dst + n > phys.frameLimit)
    throw new ArgumentError('copyFrames', 'dst', 'must start n existing frames', dst);
  if (src + n > phys.frameLimit)
    throw new ArgumentError('copyFrames', 'src', 'must start n existing frames', src);
  for (let k = 0; k < n; k++) phys.copyPage(dst + k, src + k);
}

/** Zero-fills a frame (clear_highpage): what a driver does for a migrate src with no page. */
export function clearFrame(phys: PhysMem, pfn: number): void {
  checkUint('clearFrame', 'pfn', pfn);
  phys.clearPage(pfn);
}

/** Bytes of one frame (a copy; zeros when never written). */
export function readFrame(phys: PhysMem, pfn: number): Uint8Array {
  const out = new Uint8Array(PAGE_SIZE);
  const b = phys.pageBytes(pfn);
  if (b !== null) out.set(b);
  return out;
}
