/**
 * Jason Gunthorpe's model of hmm_range_fault() mirroring: "page table mirroring, it fundamentally
 * must be page-by-page … page by page validate/invalidate". One interval notifier over the whole
 * mirrored buffer (his "SVA granules should be large"), a prefetch window per GPU fault (2 MiB,
 * "if it is tidy for HW to fault around a 2M granual then just do that"), and an invalidate
 * callback that unmaps exactly the pages the CPU invalidated — nothing else.
 *
 * `largePtes: false` maps every page with a 4K device PTE (the strict reading: dma_map_page page by
 * page). `largePtes: true` keeps page-granular validity but writes one 2M PTE where the whole
 * 2 MiB block is valid, CPU-mapped as one 2M folio and physically contiguous; an invalidation of
 * part of the block splits that PTE (`PageTable.unmap` splits straddling leaves) and unmaps only
 * the invalidated pages.
 */

import { startFaultBottomHalf } from '@hmmkit/example-minimal-mirror/fault-bottom-half';
import { ACCESS, APERTURE, type GpuDevice, PAGE_2M, PAGE_4K } from '@hmmkit/gpu';
import * as hmm from '@hmmkit/hmm';
import type { Mm } from '@hmmkit/mm';
import * as mn from '@hmmkit/notifier';
import { RwSemaphore, type Task } from '@hmmkit/sim';

/** Options of a {@link PageMirror}. */
export interface PageMirrorOptions {
  /** Prefetch window per GPU fault, a multiple of 4 KiB (default 2 MiB). */
  readonly window?: number;
  /** Map fully valid 2 MiB blocks with one 2M PTE (default false: 4K PTEs only). */
  readonly largePtes?: boolean;
}

/** A page-by-page mirror of `[start, end)` of `mm` on `dev`. */
export class PageMirror {
  readonly mm: Mm;
  readonly dev: GpuDevice;
  readonly start: number;
  readonly end: number;
  readonly window: number;
  readonly largePtes: boolean;
  /** hmm.rst's driver->update: read while PTEs are built, write in the invalidate callback. */
  readonly update: RwSemaphore;
  readonly sub = new mn.MmuIntervalNotifier();
  /** 1 where the device maps the page (4K index from `start`). */
  readonly valid: Uint8Array;
  /** PTEs written by faults, by size. */
  pte4k = 0;
  pte2m = 0;
  /** Invalidate callbacks that found something mapped. */
  zaps = 0;

  constructor(mm: Mm, dev: GpuDevice, start: number, end: number, opts: PageMirrorOptions = {}) {
    this.mm = mm;
    this.dev = dev;
    this.start = start;
    this.end = end;
    this.window = opts.window ?? PAGE_2M;
    this.largePtes = opts.largePtes ?? false;
    this.update = new RwSemaphore(mm.sim.sched, 'page-mirror->update');
    this.valid = new Uint8Array((end - start) / PAGE_4K);
  }

  /** mmu_interval_notifier_insert() over the whole buffer. */
  init(): Promise<number> {
    const ops = { invalidate: (_s: unknown, r: mn.MmuNotifierRange, seq: number) => this.invalidate(r, seq) };
    return mn.mmuIntervalNotifierInsert(this.sub, this.mm, this.start, this.end - this.start, ops);
  }

  /** The invalidate callback: unmap exactly [r.start, r.end) ∩ mirror, flush that TLB range. */
  private async invalidate(r: mn.MmuNotifierRange, seq: number): Promise<boolean> {
    if (!mn.mmuNotifierRangeBlockable(r)) return false;
    await this.update.write();
    try {
      mn.mmuIntervalSetSeq(this.sub, seq);
      const s = Math.max(r.start, this.start);
      const e = Math.min(r.end, this.end);
      let any = false;
      for (let p = (s - this.start) / PAGE_4K; p < (e - this.start) / PAGE_4K; p++) {
        if (this.valid[p] === 1) {
          any = true;
          this.valid[p] = 0;
        }
      }
      if (!any) return true;
      this.zaps++;
      const u = this.dev.beginUpdate('ce');
      this.dev.pageTable.unmap(s, e - s, u.pt); // a straddling 2M leaf is split, its other pages stay
      u.tlb.invalidate(s, e - s);
      u.end();
      return true;
    } finally {
      this.update.writeUnlock();
    }
  }

  /** Services one GPU fault: prefetch the window through hmm, then program its pages. */
  async fault(va: number, access: number): Promise<number> {
    const page = Math.floor(va / PAGE_4K) * PAGE_4K;
    const idx = (page - this.start) / PAGE_4K;
    const write = access === ACCESS.WRITE || access === ACCESS.ATOMIC;
    if (this.valid[idx] === 1 && !write) return 0; // an earlier fault of this batch mapped it
    const ws = Math.max(this.start, page - (page % this.window));
    const we = Math.min(this.end, ws + this.window);
    const range = new hmm.HmmRange({
      notifier: this.sub,
      start: ws,
      end: we,
      defaultFlags: hmm.HMM_PFN_REQ_FAULT | hmm.HMM_PFN_REQ_WRITE,
    });
    const ret = await hmm.hmmRangeFaultLocked(range, this.update);
    if (ret !== 0) return ret;
    try {
      const u = this.dev.beginUpdate('ce');
      const pt = this.dev.pageTable;
      let remap = false;
      for (let b = ws; b < we; b = Math.min(we, Math.floor(b / PAGE_2M) * PAGE_2M + PAGE_2M)) {
        const bEnd = Math.min(we, Math.floor(b / PAGE_2M) * PAGE_2M + PAGE_2M);
        const i0 = (b - ws) / PAGE_4K;
        const n = (bEnd - b) / PAGE_4K;
        if (this.largePtes && n === 512 && this.blockMappable(range, i0)) {
          for (let k = 0; k < 512; k++) if (this.valid[(b - this.start) / PAGE_4K + k] === 1) remap = true;
          pt.map(b, PAGE_2M, range.hmmPfns[i0]! * PAGE_4K, { aperture: APERTURE.SYS }, u.pt);
          this.valid.fill(1, (b - this.start) / PAGE_4K, (b - this.start) / PAGE_4K + 512);
          this.pte2m++;
          continue;
        }
        for (let k = 0; k < n; k++) {
          const f = range.hmmFlags[i0 + k]!;
          if ((f & hmm.HMM_PFN_VALID) === 0) continue;
          const p = b + k * PAGE_4K;
          const vi = (p - this.start) / PAGE_4K;
          if (this.valid[vi] === 1) remap = true;
          const writable = (f & hmm.HMM_PFN_WRITE) !== 0;
          pt.map(p, PAGE_4K, range.hmmPfns[i0 + k]! * PAGE_4K, { aperture: APERTURE.SYS, writable }, u.pt);
          this.valid[vi] = 1;
          this.pte4k++;
        }
      }
      if (remap) u.tlb.invalidate(ws, we - ws); // replaced PTEs must not survive in the TLB
      u.end();
      return 0;
    } finally {
      this.update.readUnlock();
    }
  }

  /** The 512 pages from `i0` are valid, writable, CPU-mapped at order ≥ 9, contiguous and 2M aligned. */
  private blockMappable(range: hmm.HmmRange, i0: number): boolean {
    const f0 = range.hmmFlags[i0]!;
    const p0 = range.hmmPfns[i0]!;
    if (hmm.hmmPfnToMapOrder(f0) < 9 || p0 % 512 !== 0) return false;
    for (let k = 0; k < 512; k++) {
      const f = range.hmmFlags[i0 + k]!;
      if ((f & hmm.HMM_PFN_VALID) === 0 || (f & hmm.HMM_PFN_WRITE) === 0) return false;
      if (range.hmmPfns[i0 + k] !== p0 + k) return false;
    }
    return true;
  }

  /** The fault bottom half servicing faults with {@link fault}. */
  startFaultHandler(stop: () => boolean): Task {
    return startFaultBottomHalf(this.dev, 'page-mirror-faults', (va, access) => this.fault(va, access), stop);
  }
}
