/**
 * A mirroring driver with a device-side permission policy: VA ranges of a "compressed" memory
 * class must never be mapped writable on the device, whatever the CPU PTE says (the
 * compressed-memory case from the kernel lists; amdkfd has the same rule as
 * KFD_IOCTL_SVM_FLAG_GPU_RO, svm_range_get_pte_flags). The base is the minimal mirror (one
 * interval notifier, the hmm.rst loop, zap + TLB flush); the policy sits where PTEs are built
 * and where write faults arrive:
 * - mapping: `writable = HMM_PFN_WRITE && !readOnlyClass(va)`;
 * - a GPU write/atomic fault on the class is cancelled (`'enforce'`, the GPU sees a fault) or the
 *   page is resolved first — decompressed, one page copy charged — and leaves the class
 *   (`'resolve'`); `'naive'` is the driver without the policy, to show what the check catches.
 */
import { ACCESS, APERTURE, type GpuDevice, PAGE_4K } from '@hmmkit/gpu';
import * as hmm from '@hmmkit/hmm';
import type { Mm } from '@hmmkit/mm';
import * as mn from '@hmmkit/notifier';
import { Errno, RwSemaphore, type Task, transferTimeNs } from '@hmmkit/sim';

/** How the driver treats the read-only class. */
export type RoMode = 'enforce' | 'resolve' | 'naive';

/** One interval of the read-only (compressed) class, `[start, end)`. */
export interface RoInterval {
  start: number;
  end: number;
}

/** A mirror of one VA span on one GPU with a read-only memory class. */
export class RoPolicyMirror {
  readonly mm: Mm;
  readonly dev: GpuDevice;
  /** hmm.rst's "driver->update": read to program PTEs, write in the invalidate callback. */
  readonly update: RwSemaphore;
  readonly sub = new mn.MmuIntervalNotifier();
  readonly start: number;
  readonly end: number;
  /** Invalidation callbacks that zapped something. */
  zaps = 0;
  /** Passes of the fault loop that mmu_interval_read_retry sent back. */
  retries = 0;
  /** The read-only class: sorted, disjoint intervals. */
  readonly roClass: RoInterval[] = [];
  /** How the class is treated. */
  readonly mode: RoMode;
  /** GPU write/atomic faults on the class: refused (cancelled), and resolved pages. */
  roWritesRefused = 0;
  roPagesResolved = 0;

  /** A mirror of `[start, end)` of `mm` on `dev`. */
  constructor(mm: Mm, dev: GpuDevice, start: number, end: number, mode: RoMode = 'enforce') {
    this.mode = mode;
    this.mm = mm;
    this.dev = dev;
    this.start = start;
    this.end = end;
    this.update = new RwSemaphore(mm.sim.sched, 'driver->update');
  }

  /** Starts mirroring: mmu_interval_notifier_insert() over the span. */
  init(): Promise<number> {
    const ops = { invalidate: (_s: unknown, r: mn.MmuNotifierRange, seq: number) => this.invalidate(r, seq) };
    return mn.mmuIntervalNotifierInsert(this.sub, this.mm, this.start, this.end - this.start, ops);
  }

  /**
   * Puts `[start, end)` (page aligned) in the read-only class and write-protects whatever the
   * device already maps there (a zap: the next access refaults with the policy applied).
   */
  async markReadOnly(start: number, end: number): Promise<void> {
    await this.update.write();
    this.roClass.push({ start, end });
    this.roClass.sort((x, y) => x.start - y.start);
    this.zap(start, end);
    this.update.writeUnlock();
  }

  /** Whether `va` is in the read-only class. */
  readOnlyClass(va: number): boolean {
    for (const r of this.roClass) if (va >= r.start && va < r.end) return true;
    return false;
  }

  /** 'resolve' mode: decompress one page (one page copy) and take it out of the class. */
  private resolvePage(page: number): void {
    const i = this.roClass.findIndex((r) => page >= r.start && page < r.end);
    const r = this.roClass[i]!;
    const parts = [
      { start: r.start, end: page },
      { start: page + PAGE_4K, end: r.end },
    ].filter((x) => x.end > x.start);
    this.roClass.splice(i, 1, ...parts);
    this.mm.sim.charge(transferTimeNs(this.mm.sim.costs, PAGE_4K));
    this.roPagesResolved++;
  }

  /** Unmaps `[s, e)` on the device: PTE writes, then the TLB invalidate, in one update. */
  private zap(s: number, e: number): void {
    const u = this.dev.beginUpdate();
    this.dev.pageTable.unmap(s, e - s, u.pt);
    u.tlb.invalidate(s, e - s);
    u.end();
  }

  /** The invalidate callback: set_seq under the lock, zap the PTEs, flush the TLB, return. */
  private async invalidate(r: mn.MmuNotifierRange, seq: number): Promise<boolean> {
    if (!mn.mmuNotifierRangeBlockable(r)) return false;
    await this.update.write();
    mn.mmuIntervalSetSeq(this.sub, seq);
    this.zap(Math.max(r.start, this.start), Math.min(r.end, this.end)); // no stale TLB entry survives
    this.zaps++;
    this.update.writeUnlock();
    return true;
  }

  /** Services one GPU fault: fault the window in through hmm, then program the device PTEs. */
  async fault(va: number, access: number): Promise<number> {
    const page = Math.floor(va / PAGE_4K) * PAGE_4K;
    const win = 16 * PAGE_4K; // fault-around: the aligned 64 KiB window, clipped to the mirror
    const s = Math.max(this.start, page - (page % win));
    const e = Math.min(this.end, s + win);
    const write = access === ACCESS.WRITE || access === ACCESS.ATOMIC;
    if (write && this.mode !== 'naive' && this.readOnlyClass(page)) {
      if (this.mode === 'enforce') {
        this.roWritesRefused++;
        return -Errno.EPERM; // the bottom half cancels the fault: the GPU context sees it
      }
      await this.update.write(); // the class changes under the lock PTEs are built under
      this.resolvePage(page);
      this.update.writeUnlock();
    }
    const range = new hmm.HmmRange({ notifier: this.sub, start: s, end: e });
    range.pfnFlagsMask = hmm.HMM_PFN_REQ_FAULT | hmm.HMM_PFN_REQ_WRITE; // per-page requests
    const ret = await this.getPages(range, (page - s) / PAGE_4K, write);
    if (ret !== 0) return ret;
    const u = this.dev.beginUpdate();
    for (let i = 0; i < range.npages; i++) {
      const f = range.hmmFlags[i]!;
      if ((f & hmm.HMM_PFN_VALID) === 0) continue;
      const va = s + i * PAGE_4K;
      // the policy: the CPU's write permission, minus the read-only class
      const ro = this.mode !== 'naive' && this.readOnlyClass(va);
      const attrs = { aperture: APERTURE.SYS, writable: (f & hmm.HMM_PFN_WRITE) !== 0 && !ro };
      this.dev.pageTable.map(va, PAGE_4K, range.hmmPfns[i]! * PAGE_4K, attrs, u.pt);
    }
    u.tlb.invalidate(s, e - s); // a read-only → writable upgrade must not hit a stale entry
    u.end();
    this.update.readUnlock();
    return 0;
  }

  /**
   * The canonical hmm.rst loop (read_begin → hmm_range_fault → driver lock → read_retry); returns
   * 0 with `update` held for read. Only page `fault` must be present; the rest is a snapshot.
   */
  private async getPages(range: hmm.HmmRange, fault: number, write: boolean): Promise<number> {
    if (!this.mm.mmgetNotZero()) return -Errno.EFAULT;
    try {
      for (;;) {
        // hmm_pfns is in/out (REQ_FAULT == VALID): re-arm the requests on every pass
        range.hmmFlags.fill(0);
        range.hmmFlags[fault] = hmm.HMM_PFN_REQ_FAULT | (write ? hmm.HMM_PFN_REQ_WRITE : 0);
        range.notifierSeq = await mn.mmuIntervalReadBegin(this.sub);
        await this.mm.mmapLock.read();
        const ret = await hmm.hmmRangeFault(range);
        this.mm.mmapLock.readUnlock();
        if (ret === -Errno.EBUSY) continue;
        if (ret !== 0) return ret;
        await this.update.read();
        if (!mn.mmuIntervalReadRetry(this.sub, range.notifierSeq)) return 0;
        this.update.readUnlock(); // an invalidation ran since read_begin: the pfns may be stale
        this.retries++;
      }
    } finally {
      await this.mm.mmput();
    }
  }

  /** The bottom half: fetch a batch, service each fault (cancel what fails), replay. */
  startFaultHandler(stop: () => boolean): Task {
    const sim = this.mm.sim;
    return sim.sched.spawn('mirror-faults', async () => {
      const fb = this.dev.faultBuffer;
      const batch = this.dev.newFaultBatch();
      while (await fb.waitForFaults(stop)) {
        fb.fetch(batch);
        sim.charge(sim.costs.faultBatchFixedNs);
        batch.sort();
        for (let k = 0; k < batch.count; k++) {
          const i = batch.order[k]!;
          if ((await this.fault(batch.va[i]!, batch.access[i]!)) !== 0)
            fb.cancel(batch.va[i]!, batch.instance[i]!);
        }
        fb.replay();
      }
    });
  }

  /** Tears the mirror down (mmu_interval_notifier_remove, then unmap everything). */
  async fini(): Promise<void> {
    await mn.mmuIntervalNotifierRemove(this.sub);
    this.zap(this.start, this.end);
  }
}
