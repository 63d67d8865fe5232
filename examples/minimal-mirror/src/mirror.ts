/**
 * The smallest correct mirroring driver (Documentation/mm/hmm.rst, nouveau_svm.c without the
 * extras): one interval notifier over the mirrored span, the hmm_range_fault retry loop, a
 * device page table programmed under the driver lock, and an invalidate callback that zaps the
 * device PTEs and flushes the GPU TLB before it returns. Two protected hooks let a subclass add a
 * device-side permission policy: {@link MinimalMirror.deviceWritable} and
 * {@link MinimalMirror.writeFault}. Imported as `@hmmkit/example-minimal-mirror/mirror`.
 */
import { ACCESS, APERTURE, type GpuDevice, PAGE_4K } from '@hmmkit/gpu';
import * as hmm from '@hmmkit/hmm';
import type { Mm } from '@hmmkit/mm';
import * as mn from '@hmmkit/notifier';
import { Errno, RwSemaphore, type Task } from '@hmmkit/sim';
import { startFaultBottomHalf } from './fault-bottom-half.ts';

/** A minimal SVM driver for one GPU on one mm. */
export class MinimalMirror {
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

  /** A mirror of `[start, end)` of `mm` on `dev`. */
  constructor(mm: Mm, dev: GpuDevice, start: number, end: number) {
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

  /** Unmaps `[s, e)` on the device: PTE writes, then the TLB invalidate, in one update. */
  protected zap(s: number, e: number): void {
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

  /**
   * Policy hook, called with `update` held for read while PTEs are built (so it must not block):
   * whether the device PTE of `va` is writable. The base follows the CPU's HMM_PFN_WRITE.
   */
  protected deviceWritable(_va: number, hmmFlags: number): boolean {
    return (hmmFlags & hmm.HMM_PFN_WRITE) !== 0;
  }

  /**
   * Policy hook, run before a GPU write/atomic fault on `page` is serviced: return 0 to proceed
   * (after resolving the page, if the policy can: take `update` for write to change what PTEs are
   * built from) or a negative errno to refuse, which cancels the fault. The base allows every write.
   */
  protected async writeFault(_page: number): Promise<number> {
    return 0;
  }

  /** Services one GPU fault: fault the window in through hmm, then program the device PTEs. */
  async fault(va: number, access: number): Promise<number> {
    const page = Math.floor(va / PAGE_4K) * PAGE_4K;
    const win = 16 * PAGE_4K; // fault-around: the aligned 64 KiB window, clipped to the mirror
    const s = Math.max(this.start, page - (page % win));
    const e = Math.min(this.end, s + win);
    const write = access === ACCESS.WRITE || access === ACCESS.ATOMIC;
    const allowed = write ? await this.writeFault(page) : 0;
    if (allowed !== 0) return allowed;
    const range = new hmm.HmmRange({ notifier: this.sub, start: s, end: e });
    range.pfnFlagsMask = hmm.HMM_PFN_REQ_FAULT | hmm.HMM_PFN_REQ_WRITE; // per-page requests
    const ret = await this.getPages(range, (page - s) / PAGE_4K, write);
    if (ret !== 0) return ret;
    const u = this.dev.beginUpdate();
    for (let i = 0; i < range.npages; i++) {
      const f = range.hmmFlags[i]!;
      if ((f & hmm.HMM_PFN_VALID) === 0) continue;
      const va = s + i * PAGE_4K;
      const attrs = { aperture: APERTURE.SYS, writable: this.deviceWritable(va, f) };
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

  /** The bottom half ({@link startFaultBottomHalf}) servicing faults with {@link fault}. */
  startFaultHandler(stop: () => boolean): Task {
    return startFaultBottomHalf(this.dev, 'mirror-faults', (va, access) => this.fault(va, access), stop);
  }

  /** Tears the mirror down (mmu_interval_notifier_remove, then unmap everything). */
  async fini(): Promise<void> {
    await mn.mmuIntervalNotifierRemove(this.sub);
    this.zap(this.start, this.end);
  }
}
