/**
 * Device memory of one GPU as the SVM framework sees it: a device-private ZONE_DEVICE range
 * (`DeviceMemory` from @hmmkit/hmm, the `struct dev_pagemap` the CPU mm knows) whose frames are
 * backed by VRAM chunks allocated from the device's buddy allocator (2 MiB root chunks). Keeps the
 * pfn ↔ VRAM address map, the VA each device page backs (a reverse map for eviction), and the
 * per-chunk LRU of UVM's `pick_root_chunk_to_evict` (a chunk moves to the tail when one of its
 * pages is allocated; eviction takes the head).
 *
 * @module
 */

import type { GpuDevice } from '@hmmkit/gpu';
import { DeviceMemory } from '@hmmkit/hmm';
import type { Machine, VmFault } from '@hmmkit/mm';
import { alignDown } from '@hmmkit/mm';
import { ArgumentError, modPow2, WaitQueue } from '@hmmkit/sim';
import { type EvictionView, lruChunkEviction } from './eviction.ts';
import type { PageMask } from './page-mask.ts';

/** 4 KiB pages per 2 MiB VRAM chunk. */
const CHUNK_PAGES = 512;
const CHUNK_BYTES = 0x200000;
const LRU_CHUNK = lruChunkEviction();

/** One device's SVM memory pool. */
export class SvmDeviceMemory {
  readonly dev: GpuDevice;
  readonly mem: DeviceMemory;
  /** VRAM address of each 2 MiB chunk of the pool. */
  readonly chunkPa: Float64Array;
  /**
   * VA + 1 backed by each device page (0: free). Zero means free so that a pool's never-used pages
   * are never written: the array stays untouched (not resident) where no page was allocated.
   */
  readonly rmapVa1: Float64Array;
  /** Virtual time of the last bind that mapped each device page (0: never), for 4 KiB LRU eviction. */
  readonly pageLastUseNs: Float64Array;
  /** Per device page, when its migration timeslice ends (drm_pagemap `timeslice_expiration`; 0: none). */
  readonly expiresNs: Float64Array;
  /** Allocation stamp per chunk (LRU order: smaller = older). */
  readonly chunkStamp: Float64Array;
  /** Pages in use per chunk. */
  readonly chunkUsed: Int32Array;
  /** Virtual time of the last bind that mapped a page of each chunk (0: never). */
  readonly chunkLastUseNs: Float64Array;
  /** Binds that mapped a page of each chunk (once per bind and chunk). */
  readonly chunkUses: Float64Array;
  /** The bind that last counted in {@link chunkUses}, per chunk. */
  private readonly chunkLastBind: Float64Array;
  /** Tag of the GpuSvm that allocated each device page (0 unless the pool is shared by several VMs). */
  readonly rmapTag: Uint8Array;
  /**
   * Set when several VMs share the pool (`vm.ts`): evicts a victim chunk whose pages may belong to
   * other VMs (each VM's pages through its own GpuSvm). Null: {@link evictChunk} of the caller.
   */
  evictor:
    | ((svm: unknown, devIndex: number, chunk: number, pages: PageMask | null) => Promise<number>)
    | null = null;
  /** Migrations into or out of the pool (eviction) between setup and finalize: their pages are locked, busy. */
  inFlight = 0;
  /** Migrations of the pool that have ended (a generation for {@link migrationDone} waiters). */
  migrationsEnded = 0;
  /** Woken when a migration into the pool ends (TTM's wait for a busy BO, ttm_mem_evict_wait_busy). */
  readonly migrationDone: WaitQueue;
  private stamp = 0;
  private readonly chunkOfPa = new Map<number, number>();
  /** Pages in use per 2 MiB VA block (block index → count), from the reverse map. */
  private readonly blockPages = new Map<number, number>();

  constructor(
    machine: Machine,
    dev: GpuDevice,
    owner: unknown,
    bytes: number,
    migrateToRam: (vmf: VmFault) => Promise<number>,
  ) {
    if (!Number.isSafeInteger(bytes) || bytes < CHUNK_BYTES || bytes % CHUNK_BYTES !== 0) {
      throw new ArgumentError('SvmDeviceMemory', 'bytes', 'must be a positive multiple of 2 MiB', bytes);
    }
    const chunks = bytes / CHUNK_BYTES;
    const pas: number[] = [];
    for (let c = 0; c < chunks; c++) {
      const pa = dev.vram.alloc(CHUNK_BYTES, 1);
      if (pa < 0) break;
      pas.push(pa);
    }
    if (pas.length === 0)
      throw new ArgumentError('SvmDeviceMemory', 'bytes', 'no free VRAM on the device', bytes);
    this.dev = dev;
    this.migrationDone = new WaitQueue(machine.sim.sched);
    this.chunkPa = Float64Array.from(pas);
    for (let i = 0; i < pas.length; i++) this.chunkOfPa.set(pas[i]!, i);
    const n = pas.length * CHUNK_PAGES;
    this.rmapVa1 = new Float64Array(n);
    this.rmapTag = new Uint8Array(n);
    this.pageLastUseNs = new Float64Array(n);
    this.expiresNs = new Float64Array(n);
    this.chunkStamp = new Float64Array(pas.length);
    this.chunkUsed = new Int32Array(pas.length);
    this.chunkLastUseNs = new Float64Array(pas.length);
    this.chunkUses = new Float64Array(pas.length);
    this.chunkLastBind = new Float64Array(pas.length).fill(-1);
    this.mem = new DeviceMemory(machine, {
      type: 'private',
      owner,
      nrPages: n,
      migrateToRam,
      pageFree: (pfn) => {
        const k = pfn - this.mem.start;
        this.countBlock(this.rmapVa1[k]! - 1, -1);
        this.rmapVa1[k] = 0;
        this.pageLastUseNs[k] = 0;
        this.expiresNs[k] = 0;
        this.chunkUsed[Math.floor(k / CHUNK_PAGES)]!--;
      },
    });
  }

  /** A migration into or out of the pool begins (its pages are busy until {@link migrationEnd}). */
  migrationBegin(): void {
    this.inFlight++;
  }

  /** The migration that {@link migrationBegin} counted ended: wake evictions waiting for busy pages. */
  migrationEnd(): void {
    this.inFlight--;
    this.migrationsEnded++;
    this.migrationDone.wakeUpAll();
  }

  /** Number of device pages. */
  get nrPages(): number {
    return this.mem.nrPages;
  }

  /** Whether `pfn` is a page of this pool. */
  contains(pfn: number): boolean {
    return this.mem.contains(pfn);
  }

  /** VRAM address of device page `pfn`. */
  pfnToPa(pfn: number): number {
    const k = pfn - this.mem.start;
    return this.chunkPa[Math.floor(k / CHUNK_PAGES)]! + modPow2(k, CHUNK_PAGES) * 4096;
  }

  /** Device pfn of VRAM address `pa`, or -1 outside the pool. */
  paToPfn(pa: number): number {
    const c = this.chunkOfPa.get(alignDown(pa, CHUNK_BYTES));
    if (c === undefined) return -1;
    return this.mem.start + c * CHUNK_PAGES + Math.floor(modPow2(pa, CHUNK_BYTES) / 4096);
  }

  /** Allocates one device page for `va` (locked, refcount 1) of the VM tagged `tag`, or returns -1. */
  allocPage(va: number, tag = 0): number {
    const pfn = this.mem.allocPage();
    if (pfn < 0) return -1;
    const k = pfn - this.mem.start;
    const c = Math.floor(k / CHUNK_PAGES);
    this.rmapVa1[k] = va + 1;
    this.rmapTag[k] = tag;
    this.countBlock(va, 1);
    this.chunkUsed[c]!++;
    this.chunkStamp[c] = ++this.stamp; // UVM: the chunk goes to the LRU tail on allocation
    return pfn;
  }

  /**
   * Allocates a 2 MiB device folio (one whole free chunk, zone_device_folio_init order 9: head
   * locked, every page referenced) backing `[va, va + 2 MiB)` for the VM tagged `tag`; returns the
   * head pfn, or -1 when no chunk is wholly free.
   */
  allocFolio(va: number, tag = 0): number {
    const head = this.mem.allocFolio();
    if (head < 0) return -1;
    const k0 = head - this.mem.start;
    const c = Math.floor(k0 / CHUNK_PAGES);
    for (let k = 0; k < CHUNK_PAGES; k++) {
      this.rmapVa1[k0 + k] = va + k * 4096 + 1;
      this.rmapTag[k0 + k] = tag;
    }
    this.countBlock(va, CHUNK_PAGES);
    this.chunkUsed[c]! += CHUNK_PAGES;
    this.chunkStamp[c] = ++this.stamp;
    return head;
  }

  /** Records that bind number `bind` at time `now` mapped device page `pfn` (eviction statistics). */
  touch(pfn: number, now: number, bind: number): void {
    const k = pfn - this.mem.start;
    const c = Math.floor(k / CHUNK_PAGES);
    this.pageLastUseNs[k] = now;
    this.chunkLastUseNs[c] = now;
    if (this.chunkLastBind[c] !== bind) {
      this.chunkLastBind[c] = bind;
      this.chunkUses[c]!++;
    }
  }

  /** The pool as an eviction policy sees it. */
  view(devIndex: number, now: number): EvictionView {
    return {
      devIndex,
      now,
      chunks: this.chunkPa.length,
      chunkUsed: this.chunkUsed,
      chunkAllocStamp: this.chunkStamp,
      chunkLastUseNs: this.chunkLastUseNs,
      chunkUses: this.chunkUses,
      rmapVa1: this.rmapVa1,
      pageLastUseNs: this.pageLastUseNs,
    };
  }

  /**
   * Whether some page of the pool backs a VA in `[start, end)`, by 2 MiB VA block (the reverse map
   * records the VA at allocation: a hint, exact unless mremap moved the page).
   */
  hasPagesIn(start: number, end: number): boolean {
    for (let b = Math.floor(start / CHUNK_BYTES); b * CHUNK_BYTES < end; b++) {
      if ((this.blockPages.get(b) ?? 0) > 0) return true;
    }
    return false;
  }

  private countBlock(va: number, delta: number): void {
    if (va < 0) return;
    const b = Math.floor(va / CHUNK_BYTES);
    const n = (this.blockPages.get(b) ?? 0) + delta;
    if (n > 0) this.blockPages.set(b, n);
    else this.blockPages.delete(b);
  }

  /** The least recently allocated chunk holding pages, or -1 when none is in use ({@link lruChunkEviction}). */
  lruChunk(): number {
    return LRU_CHUNK.pickVictim(this.view(-1, 0), 1)?.chunk ?? -1;
  }

  /** First pfn of chunk `c`. */
  chunkStartPfn(c: number): number {
    return this.mem.start + c * CHUNK_PAGES;
  }
}
