/**
 * The dmirror devices (`struct dmirror_device`) and their ZONE_DEVICE memory: 256 MiB chunks
 * (`struct dmirror_chunk`: an `@hmmkit/hmm` {@link DeviceMemory} pool whose pagemap owner is the
 * device) allocated on demand, and for device-private memory the system "backing page" that
 * holds each device page's data (`BACKING_PAGE()`).
 *
 * @module
 */
import { DeviceMemory } from '@hmmkit/hmm';
import { type DevPagemap, type Machine, PAGE_SIZE, type VmFault } from '@hmmkit/mm';
import { ArgumentError } from '@hmmkit/sim';

/** `DMIRROR_NDEVICES`: 0 and 1 are device-private, 2 and 3 device-coherent. */
export const DMIRROR_NDEVICES = 4;
/** `DEVMEM_CHUNK_SIZE`: 256 MiB. */
export const DEVMEM_CHUNK_SIZE = 256 * 1024 * 1024;
/** Pages per chunk (65536). */
export const DEVMEM_CHUNK_PAGES = DEVMEM_CHUNK_SIZE / PAGE_SIZE;
/** `DEVMEM_CHUNKS_RESERVE`: the chunk array grows by this many slots. */
export const DEVMEM_CHUNKS_RESERVE = 16;

const PMD_NR = 512;

/**
 * The per-page back pointer Linux keeps in the backing page's `zone_device_data` (the dmirror
 * that migrated the page): what migrate_to_ram needs from it.
 */
export interface DmirrorPageOwner {
  /** Drops the device page-table entry of page index `index` (xa_erase in the owning dmirror). */
  erasePt(index: number): void;
}

/** The pagemap callback that lives with the per-open code (dmirror_devmem_fault). */
export interface DmirrorDeviceOps {
  /** Models dev_pagemap_ops.migrate_to_ram() for this device's pages. */
  migrateToRam(device: DmirrorDevice, vmf: VmFault): Promise<number>;
}

/** Models `struct dmirror_chunk`: one memremap'ed 256 MiB range of device pages. */
export class DmirrorChunk {
  /** The device the chunk belongs to (`chunk->mdevice`). */
  readonly mdevice: DmirrorDevice;
  /** The pool (pagemap + free frames). */
  readonly mem: DeviceMemory;
  /** Backing system pfn per device page (private memory only), -1 if none. */
  readonly backing: Float64Array;
  /** The dmirror that migrated each page (`rpage->zone_device_data`), or null. */
  readonly owner: (DmirrorPageOwner | null)[];

  constructor(mdevice: DmirrorDevice) {
    this.mdevice = mdevice;
    this.backing = new Float64Array(DEVMEM_CHUNK_PAGES).fill(-1);
    this.owner = new Array<DmirrorPageOwner | null>(DEVMEM_CHUNK_PAGES).fill(null);
    const opts = {
      type: mdevice.type,
      owner: mdevice,
      nrPages: DEVMEM_CHUNK_PAGES,
      pageFree: (pfn: number) => mdevice.devmemFree(this, pfn),
    };
    this.mem = new DeviceMemory(
      mdevice.machine,
      mdevice.type === 'private'
        ? { ...opts, migrateToRam: (vmf: VmFault) => mdevice.ops.migrateToRam(mdevice, vmf) }
        : opts,
    );
  }

  /** The chunk's pagemap. */
  get pgmap(): DevPagemap {
    return this.mem.pgmap;
  }

  /** First pfn. */
  get start(): number {
    return this.mem.start;
  }
}

/** Models `struct dmirror_device`: `/dev/hmm_dmirror<index>`. */
export class DmirrorDevice {
  /** The machine the device is plugged into. */
  readonly machine: Machine;
  /** The minor number 0..3. */
  readonly index: number;
  /** `zone_device_type`. */
  readonly type: 'private' | 'coherent';
  /** The pagemap callbacks implemented by the driver (migrate_to_ram). */
  readonly ops: DmirrorDeviceOps;
  /** `devmem_chunks[0..devmem_count)`. */
  readonly chunks: DmirrorChunk[] = [];
  /** `devmem_capacity`: grows by {@link DEVMEM_CHUNKS_RESERVE}. */
  capacity = 0;
  /** Chunks retired by RELEASE; their frames are reused by the next allocateChunk(). */
  private readonly spare: DmirrorChunk[] = [];
  private readonly byPgmap = new WeakMap<DevPagemap, DmirrorChunk>();
  /** `calloc`: pages handed out. */
  calloc = 0;
  /** `cfree`: pages returned. */
  cfree = 0;

  constructor(machine: Machine, index: number, ops: DmirrorDeviceOps) {
    this.machine = machine;
    this.index = index;
    this.type = index < 2 ? 'private' : 'coherent';
    this.ops = ops;
  }

  /** True for device-private memory (dmirror_is_private_zone()). */
  get isPrivate(): boolean {
    return this.type === 'private';
  }

  /** Number of free device pages over the device's chunks. */
  get freePages(): number {
    let n = 0;
    for (const c of this.chunks) n += c.mem.freePages;
    return n;
  }

  /** The chunk holding device pfn `pfn`, or null if it is not this device's page. */
  chunkOf(pfn: number): DmirrorChunk | null {
    const pg = this.machine.phys.pagemapOf(pfn);
    return pg === null ? null : (this.byPgmap.get(pg) ?? null);
  }

  /** Models BACKING_PAGE(): the system page holding a private page's data; the page itself if coherent. */
  backingPage(pfn: number): number {
    const c = this.chunkOf(pfn);
    if (c === null || !this.isPrivate) return pfn;
    return c.backing[pfn - c.start]!;
  }

  /**
   * Models dmirror_allocate_chunk(): a new 256 MiB range of free device pages. Deviation: a
   * chunk retired by RELEASE is reused instead of memunmap_pages() + a fresh memremap_pages().
   */
  allocateChunk(): DmirrorChunk {
    if (this.chunks.length === this.capacity) this.capacity += DEVMEM_CHUNKS_RESERVE;
    let c = this.spare.pop();
    if (c === undefined) {
      c = new DmirrorChunk(this);
      this.byPgmap.set(c.pgmap, c);
    }
    this.chunks.push(c);
    return c;
  }

  private setup(c: DmirrorChunk, dpage: number, rpage: number, owner: DmirrorPageOwner | null): void {
    c.backing[dpage - c.start] = rpage;
    c.owner[dpage - c.start] = owner;
  }

  /**
   * Models dmirror_devmem_alloc_page(): a device page (locked, refcount 1) with, for private
   * memory, a fresh system backing page; a new chunk when every chunk is full. -1 when system
   * memory for the backing page is exhausted.
   */
  allocPage(owner: DmirrorPageOwner | null): number {
    const phys = this.machine.phys;
    let rpage = -1;
    if (this.isPrivate) {
      rpage = phys.allocPage(0);
      if (rpage < 0) return -1;
    }
    for (let pass = 0; pass < 2; pass++) {
      for (const c of this.chunks) {
        const dpage = c.mem.allocPage();
        if (dpage >= 0) {
          this.calloc++;
          this.setup(c, dpage, rpage, owner);
          return dpage;
        }
      }
      this.allocateChunk();
    }
    if (rpage >= 0) phys.putPage(rpage);
    return -1;
  }

  /**
   * Models the THP branch of dmirror_devmem_alloc_page() (newest tree): a 2 MiB device folio
   * (head locked, every page refcount 1), each private page with its own backing page. -1 if
   * backing memory is exhausted.
   */
  allocFolio(owner: DmirrorPageOwner | null): number {
    const phys = this.machine.phys;
    const rpages = new Float64Array(PMD_NR).fill(-1);
    if (this.isPrivate) {
      for (let k = 0; k < PMD_NR; k++) {
        const r = phys.allocPage(0);
        if (r < 0) {
          for (let q = 0; q < k; q++) phys.putPage(rpages[q]!);
          return -1;
        }
        rpages[k] = r;
      }
    }
    for (let pass = 0; pass < 2; pass++) {
      for (const c of this.chunks) {
        const head = c.mem.allocFolio();
        if (head >= 0) {
          this.calloc += PMD_NR;
          for (let k = 0; k < PMD_NR; k++) this.setup(c, head + k, rpages[k]!, owner);
          return head;
        }
      }
      this.allocateChunk();
    }
    if (this.isPrivate) for (let q = 0; q < PMD_NR; q++) phys.putPage(rpages[q]!);
    return -1;
  }

  /** Models dmirror_devmem_free() (pagemap page_free): frees the backing page. */
  devmemFree(c: DmirrorChunk, pfn: number): void {
    const i = pfn - c.start;
    const r = c.backing[i]!;
    if (r >= 0) {
      this.machine.phys.putPage(r);
      c.backing[i] = -1;
    }
    c.owner[i] = null;
    this.cfree++;
  }

  /** The owning dmirror recorded for device page `pfn`. */
  ownerOf(pfn: number): DmirrorPageOwner | null {
    const c = this.chunkOf(pfn);
    return c === null ? null : c.owner[pfn - c.start]!;
  }

  /** The chunks leave the device after RELEASE evicted them (dmirror_device_remove_chunks()). */
  retireChunks(): void {
    for (const c of this.chunks) this.spare.push(c);
    this.chunks.length = 0;
    this.capacity = 0;
  }
}

/** Checks a device index for {@link dmirrorOpen}-like calls. */
export function checkDeviceIndex(fn: string, index: number): void {
  if (!Number.isInteger(index) || index < 0 || index >= DMIRROR_NDEVICES) {
    throw new ArgumentError(fn, 'deviceIndex', `must be an integer in [0, ${DMIRROR_NDEVICES})`, index);
  }
}
