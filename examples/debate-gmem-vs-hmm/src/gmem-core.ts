/**
 * A model of the GMEM core ("[RFC PATCH 0/6] Supporting GMEM (generalized memory management) for
 * external memory devices", Nov 2023): the part GMEM moves out of every driver into mm/gmem.c.
 * It is written here once, for any device that registers a {@link GmMmu}:
 *
 * - a **logical page table** per address space: where each page of a MAP_PEER_SHARED region lives
 *   (host or device, which device frame) and when it was last brought in — GMEM's `struct
 *   gm_mapping` in `mm->vm_obj->logical_page_table`;
 * - **gm_dev_fault()**: a device fault migrates the host page (or a zero page) to device memory and
 *   has the driver install the device PTE (`pmap_enter`);
 * - the **CPU fault path** for a page living on the device (GMEM's modified do_anonymous_page);
 * - **invalidations**: unmapping a page tells the driver to drop the device PTE and TLB entry;
 * - **host DRAM as swap for device memory**: when device frames run out the core evicts the
 *   least recently migrated 2 MiB block to host memory;
 * - **hmadvise(va, size, hint)** with PREFETCH (to the device) and DONTNEED (off the device: the
 *   data moves to host memory, so device memory is freed without losing it).
 *
 * How it is built: on the same simulated mm, from the primitives Linux already has — a device-
 * private pagemap for the device frames, migrate_vma for both directions, one interval notifier
 * over the region, hmm_range_fault to read the result under the notifier sequence. That is the
 * thread's counter-argument made concrete (Christian König / Alistair Popple: HMM gives the same
 * mechanism); what GMEM changes is who writes this code: the core, once, instead of each driver.
 */
import { ACCESS, PAGE_2M, PAGE_4K } from '@hmmkit/gpu';
import * as hmm from '@hmmkit/hmm';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  type Mm,
  PROT_READ,
  PROT_WRITE,
  VM_FAULT_SIGBUS,
  type Vma,
  type VmFault,
} from '@hmmkit/mm';
import * as mn from '@hmmkit/notifier';
import { Errno, Mutex, RwSemaphore } from '@hmmkit/sim';

/**
 * What a device driver implements for GMEM (`struct gm_mmu`): page-table enter/release, TLB
 * invalidation, the device memory it registers (`gm_dev_register_physmem`) and data movement
 * (`prepare_page`). Everything else is the core's.
 */
export interface GmMmu {
  /** gm_dev_register_physmem(): device memory given to the core, as 2 MiB chunk addresses. */
  registerPhysmem(): readonly number[];
  /** pmap_enter(): map `size` bytes at `va` to device address `pa` (batched until {@link tlbInvl} or {@link pmapCommit}). */
  pmapEnter(va: number, size: number, pa: number, writable: boolean): void;
  /** pmap_release(): unmap `[va, va + size)`. */
  pmapRelease(va: number, size: number): void;
  /** Ends a batch of pmap_enter calls. */
  pmapCommit(): void;
  /** tlb_invl(): commit pending page-table writes, then invalidate the device TLB for the range. */
  tlbInvl(va: number, size: number): void;
  /** prepare_page(): copy one 4 KiB page into (`src`; null = zero-fill) or out of device memory. */
  copyIn(pa: number, src: Uint8Array | null): void;
  copyOut(pa: number, dst: Uint8Array): void;
  /** Waits for the copy engine to move `bytes` (one transfer; `h2d` = host to device). */
  copyWait(bytes: number, h2d: boolean): Promise<void>;
}

/** Memory hints of {@link GmemCore.hmadvise}. */
export const GM_HINT = { PREFETCH: 'prefetch', DONTNEED: 'dontneed' } as const;
/** One of {@link GM_HINT}. */
export type GmHint = (typeof GM_HINT)[keyof typeof GM_HINT];

const P = PAGE_4K;
const CHUNK_PAGES = 512;

/** The GMEM core for one address space (mm) and one device. */
export class GmemCore {
  readonly mm: Mm;
  readonly mmu: GmMmu;
  readonly mem: hmm.DeviceMemory;
  /** VRAM address of each registered 2 MiB chunk. */
  readonly chunkPa: Float64Array;
  readonly sub = new mn.MmuIntervalNotifier();
  /** Serialises device faults, prefetch and eviction (the core's per-AS lock). */
  readonly lock: Mutex;
  /** Device page-table updates vs invalidations (hmm.rst's driver->update). */
  readonly update: RwSemaphore;
  /** The MAP_PEER_SHARED region. */
  start = 0;
  end = 0;
  /** Logical page table: device pfn holding each page (-1: on the host or not present). */
  lptDevPfn: Float64Array = new Float64Array(0);
  /** Logical page table: 1 where the device maps the page. */
  lptMapped: Uint8Array = new Uint8Array(0);
  /** Reverse map: VA each device frame backs (-1 free), and when it was brought in. */
  readonly rmapVa: Float64Array;
  readonly stamp: Float64Array;
  private tick = 0;
  private readonly buf = new Uint8Array(P);
  /** Pages moved host → device and device → host, and 2 MiB evictions. */
  toDevice = 0;
  toHost = 0;
  evictions = 0;

  /** gm_dev_create() + gm_as_create() + gm_as_attach(): one device in `mm`'s address space. */
  constructor(mm: Mm, mmu: GmMmu) {
    this.mm = mm;
    this.mmu = mmu;
    this.chunkPa = Float64Array.from(mmu.registerPhysmem());
    const n = this.chunkPa.length * CHUNK_PAGES;
    this.rmapVa = new Float64Array(n).fill(-1);
    this.stamp = new Float64Array(n);
    this.lock = new Mutex(mm.sim.sched, 'gm_as->lock');
    this.update = new RwSemaphore(mm.sim.sched, 'gm_as->update');
    this.mem = new hmm.DeviceMemory(mm.machine, {
      type: 'private',
      owner: this,
      nrPages: n,
      migrateToRam: (vmf) => this.cpuFault(vmf),
      pageFree: (pfn) => {
        const k = pfn - this.mem.start;
        const va = this.rmapVa[k]!;
        if (va >= this.start && va < this.end && this.lptDevPfn[(va - this.start) / P] === pfn)
          this.lptDevPfn[(va - this.start) / P] = -1;
        this.rmapVa[k] = -1;
      },
    });
  }

  /** Device address of device frame `pfn`. */
  pfnToPa(pfn: number): number {
    const k = pfn - this.mem.start;
    return this.chunkPa[Math.floor(k / CHUNK_PAGES)]! + (k % CHUNK_PAGES) * P;
  }

  /** Device frame at device address `pa`, or -1 (for the coherence oracle's resolver). */
  paToPfn(pa: number): number {
    for (let c = 0; c < this.chunkPa.length; c++) {
      const o = pa - this.chunkPa[c]!;
      if (o >= 0 && o < PAGE_2M) return this.mem.start + c * CHUNK_PAGES + Math.floor(o / P);
    }
    return -1;
  }

  /** mmap(MAP_PRIVATE | MAP_PEER_SHARED): anonymous memory shared with the device at `addr`; returns `addr` or -errno. */
  async mmapPeerShared(addr: number, length: number): Promise<number> {
    const flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
    const a = await this.mm.mmap(addr, length, PROT_READ | PROT_WRITE, flags);
    if (a !== addr) return a < 0 ? a : -Errno.ENOMEM;
    this.start = addr;
    this.end = addr + length;
    this.lptDevPfn = new Float64Array(length / P).fill(-1);
    this.lptMapped = new Uint8Array(length / P);
    const ops = { invalidate: (_s: unknown, r: mn.MmuNotifierRange, seq: number) => this.invalidate(r, seq) };
    const r = await mn.mmuIntervalNotifierInsert(this.sub, this.mm, addr, length, ops);
    return r < 0 ? r : addr;
  }

  // ------------------------------------------------------------------ device side

  /** gm_dev_fault(): resolves a device fault at `va` (the 2 MiB block around it). */
  async devFault(va: number, access: number): Promise<number> {
    const i = Math.floor((va - this.start) / P);
    if (i < 0 || va >= this.end) return -Errno.EFAULT;
    if (this.lptMapped[i] === 1 && access !== ACCESS.ATOMIC) return 0; // mapped by an earlier fault of the batch
    await this.lock.lock();
    try {
      const bs = Math.max(this.start, va - (va % PAGE_2M));
      const be = Math.min(this.end, bs + PAGE_2M);
      const r = await this.migrateToDevice(bs, be);
      if (r < 0) return r;
      return await this.mapBlock(bs, be);
    } finally {
      this.lock.unlock();
    }
  }

  /** hmadvise(NUMA id, va, size, hint) for this device's node. */
  async hmadvise(va: number, size: number, hint: GmHint): Promise<number> {
    await this.lock.lock();
    try {
      for (let b = va - (va % PAGE_2M); b < va + size; b += PAGE_2M) {
        const s = Math.max(b, va, this.start);
        const e = Math.min(b + PAGE_2M, va + size, this.end);
        if (s >= e) continue;
        const r = hint === GM_HINT.PREFETCH ? await this.migrateToDevice(s, e) : await this.evictSpan(s, e);
        if (r < 0) return r;
        if (hint === GM_HINT.PREFETCH) await this.mapBlock(s, e);
      }
      return 0;
    } finally {
      this.lock.unlock();
    }
  }

  /** Moves the host pages of [s, e) to device frames (evicting old blocks when short). */
  private async migrateToDevice(s: number, e: number): Promise<number> {
    const n = (e - s) / P;
    let missing = 0;
    for (let i = (s - this.start) / P; i < (e - this.start) / P; i++) if (this.lptDevPfn[i]! < 0) missing++;
    if (missing === 0) return 0;
    while (this.mem.freePages < missing) {
      const victim = this.oldestBlock(s);
      if (victim < 0) break;
      await this.evictSpan(victim, Math.min(this.end, victim + PAGE_2M));
      this.evictions++;
    }
    const mm = this.mm;
    const phys = mm.machine.phys;
    await mm.mmapLock.read();
    try {
      const vma = mm.vmaLookup(s);
      if (vma === null) return -Errno.EFAULT;
      const e2 = Math.min(e, vma.end);
      const args = new hmm.MigrateVma({
        vma,
        start: s,
        end: e2,
        pgmapOwner: this,
        flags: hmm.MIGRATE_VMA_SELECT_SYSTEM,
      });
      const r = await hmm.migrateVmaSetup(args);
      if (r !== 0) return r;
      let moved = 0;
      for (let i = 0; i < args.npages && i < n; i++) {
        const ent = args.src[i]!;
        if ((hmm.migratePfnFlags(ent) & hmm.MIGRATE_PFN_MIGRATE) === 0) continue;
        const d = this.mem.allocPage();
        if (d < 0) break;
        const spfn = hmm.migratePfnToPfn(ent);
        if (spfn >= 0 && !phys.isZeroPfn(spfn)) {
          phys.readPage(spfn, 0, this.buf, 0, P);
          this.mmu.copyIn(this.pfnToPa(d), this.buf);
        } else {
          this.mmu.copyIn(this.pfnToPa(d), null);
        }
        const va = s + i * P;
        const k = d - this.mem.start;
        this.rmapVa[k] = va;
        this.stamp[k] = ++this.tick;
        this.lptDevPfn[(va - this.start) / P] = d;
        args.dst[i] = hmm.migratePfn(d);
        moved++;
      }
      if (moved > 0) await this.mmu.copyWait(moved * P, true);
      await hmm.migrateVmaPages(args);
      await hmm.migrateVmaFinalize(args);
      this.toDevice += moved;
      return moved;
    } finally {
      mm.mmapLock.readUnlock();
    }
  }

  /** Reads [s, e) through hmm (device frames reported, not faulted) and maps it on the device. */
  private async mapBlock(s: number, e: number): Promise<number> {
    const range = new hmm.HmmRange({
      notifier: this.sub,
      start: s,
      end: e,
      defaultFlags: hmm.HMM_PFN_REQ_FAULT | hmm.HMM_PFN_REQ_WRITE,
      devPrivateOwner: this,
    });
    const ret = await hmm.hmmRangeFaultLocked(range, this.update);
    if (ret !== 0) return ret;
    try {
      const base = (s - this.start) / P;
      let remap = false;
      for (let i = 0; i < range.npages && !remap; i++) if (this.lptMapped[base + i] === 1) remap = true;
      if (remap) {
        this.mmu.pmapRelease(s, e - s); // rebuild the block's PTEs from scratch
        this.lptMapped.fill(0, base, base + range.npages);
      }
      for (let i = 0; i < range.npages; ) {
        const f = range.hmmFlags[i]!;
        const pfn = range.hmmPfns[i]!;
        if ((f & hmm.HMM_PFN_VALID) === 0 || !this.mem.contains(pfn)) {
          i++; // a page that stayed on the host: the device faults again
          continue;
        }
        const pa = this.pfnToPa(pfn);
        let n = 1;
        if ((s + i * P) % PAGE_2M === 0 && i + CHUNK_PAGES <= range.npages && pa % PAGE_2M === 0) {
          n = CHUNK_PAGES;
          for (let k = 1; k < CHUNK_PAGES && n === CHUNK_PAGES; k++)
            if (range.hmmPfns[i + k] !== pfn + k || (range.hmmFlags[i + k]! & hmm.HMM_PFN_VALID) === 0) n = 1;
        }
        this.mmu.pmapEnter(s + i * P, n * P, pa, (f & hmm.HMM_PFN_WRITE) !== 0);
        this.lptMapped.fill(1, base + i, base + i + n);
        i += n;
      }
      if (remap) this.mmu.tlbInvl(s, e - s);
      else this.mmu.pmapCommit();
      return 0;
    } finally {
      this.update.readUnlock();
    }
  }

  /** Start of the 2 MiB block holding the oldest device frame (not the one at `keep`), or -1. */
  private oldestBlock(keep: number): number {
    let best = -1;
    for (let k = 0; k < this.rmapVa.length; k++) {
      const va = this.rmapVa[k]!;
      if (va < 0 || va - (va % PAGE_2M) === keep - (keep % PAGE_2M)) continue;
      if (best < 0 || this.stamp[k]! < this.stamp[best]!) best = k;
    }
    if (best < 0) return -1;
    const va = this.rmapVa[best]!;
    return Math.max(this.start, va - (va % PAGE_2M));
  }

  /** Host DRAM as swap: moves the device pages of [s, e) back to host memory. */
  private async evictSpan(s: number, e: number): Promise<number> {
    const mm = this.mm;
    await mm.mmapLock.read();
    try {
      const vma = mm.vmaLookup(s);
      if (vma === null) return 0;
      return await this.toHostLocked(vma, s, Math.min(e, vma.end), -1);
    } finally {
      mm.mmapLock.readUnlock();
    }
  }

  /** Releases device PTEs of [s, e), then migrate_vma (SELECT_DEVICE_PRIVATE) to new host pages. */
  private async toHostLocked(vma: Vma, s: number, e: number, faultPage: number): Promise<number> {
    await this.releaseSpan(s, e);
    const args = new hmm.MigrateVma({
      vma,
      start: s,
      end: e,
      pgmapOwner: this,
      flags: hmm.MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
      faultPage,
    });
    if ((await hmm.migrateVmaSetup(args)) !== 0) return -Errno.EFAULT;
    const phys = this.mm.machine.phys;
    let moved = 0;
    for (let i = 0; i < args.npages; i++) {
      const ent = args.src[i]!;
      if ((hmm.migratePfnFlags(ent) & hmm.MIGRATE_PFN_MIGRATE) === 0) continue;
      const d = hmm.migratePfnToPfn(ent);
      if (!this.mem.contains(d)) continue;
      const np = phys.allocPage(0);
      if (np < 0) break;
      phys.trylockPage(np);
      this.mmu.copyOut(this.pfnToPa(d), this.buf);
      phys.writePage(np, 0, this.buf, 0, P);
      args.dst[i] = hmm.migratePfn(np);
      moved++;
    }
    if (moved > 0) await this.mmu.copyWait(moved * P, false);
    await hmm.migrateVmaPages(args);
    await hmm.migrateVmaFinalize(args);
    this.toHost += moved;
    return moved;
  }

  /** Drops the device mappings of [s, e) (pmap_release + tlb_invl) under the update lock. */
  private async releaseSpan(s: number, e: number): Promise<void> {
    await this.update.write();
    try {
      this.releaseLocked(s, e);
    } finally {
      this.update.writeUnlock();
    }
  }

  private releaseLocked(s: number, e: number): void {
    const a = Math.max(s, this.start);
    const b = Math.min(e, this.end);
    let any = false;
    for (let i = (a - this.start) / P; i < (b - this.start) / P; i++) {
      if (this.lptMapped[i] === 1) {
        any = true;
        this.lptMapped[i] = 0;
      }
    }
    if (!any) return;
    this.mmu.pmapRelease(a, b - a);
    this.mmu.tlbInvl(a, b - a);
  }

  // ------------------------------------------------------------------ CPU side

  /** The CPU fault path for a page on the device: bring its 2 MiB block (∩ VMA) back to the host. */
  private async cpuFault(vmf: VmFault): Promise<number> {
    const s = Math.max(vmf.vma.start, vmf.address - (vmf.address % PAGE_2M), this.start);
    const e = Math.min(vmf.vma.end, vmf.address - (vmf.address % PAGE_2M) + PAGE_2M, this.end);
    const r = await this.toHostLocked(vmf.vma, s, e, vmf.page);
    return r < 0 ? VM_FAULT_SIGBUS : 0;
  }

  /** Invalidation of the region: the device loses its PTEs over the range (our own migrations excepted). */
  private async invalidate(r: mn.MmuNotifierRange, seq: number): Promise<boolean> {
    if (!mn.mmuNotifierRangeBlockable(r)) return false;
    await this.update.write();
    try {
      mn.mmuIntervalSetSeq(this.sub, seq);
      if (r.event === mn.MmuNotifyEvent.MIGRATE && r.owner === this) return true;
      this.releaseLocked(r.start, r.end);
      return true;
    } finally {
      this.update.writeUnlock();
    }
  }
}
