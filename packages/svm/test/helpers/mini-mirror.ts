/**
 * A deliberately small mirroring driver for the oracle tests (no @hmmkit/hmm): one interval
 * notifier, per-page fault through handleMmFault, bind into a GPU page table under the driver lock.
 * `skipReadRetry` makes it the broken driver that binds a stale pfn.
 */
import { APERTURE, type GpuDevice, PAGE_4K } from '@hmmkit/gpu';
import { FAULT_FLAG_WRITE, type Mm } from '@hmmkit/mm';
import {
  MmuIntervalNotifier,
  mmuIntervalNotifierInsert,
  mmuIntervalReadBegin,
  mmuIntervalReadRetry,
  mmuIntervalSetSeq,
  mmuNotifierRangeBlockable,
} from '@hmmkit/notifier';
import { Errno, Mutex } from '@hmmkit/sim';
import type { CoherenceOracle } from '../../src/index.ts';

export class MiniMirror {
  readonly lock: Mutex;
  readonly sub = new MmuIntervalNotifier();
  skipReadRetry = false;
  binds = 0;
  retries = 0;

  readonly mm: Mm;
  readonly dev: GpuDevice;
  readonly oracle: CoherenceOracle;

  constructor(mm: Mm, dev: GpuDevice, oracle: CoherenceOracle) {
    this.mm = mm;
    this.dev = dev;
    this.oracle = oracle;
    this.lock = new Mutex(mm.sim.sched, 'mirror');
  }

  async init(start: number, length: number): Promise<void> {
    await mmuIntervalNotifierInsert(this.sub, this.mm, start, length, {
      invalidate: async (s, range, curSeq) => {
        if (!mmuNotifierRangeBlockable(range)) return false;
        await this.lock.lock();
        mmuIntervalSetSeq(s, curSeq);
        const u = this.dev.beginUpdate('ce');
        this.dev.pageTable.unmap(range.start, range.end - range.start, u.pt);
        u.tlb.invalidate(range.start, range.end - range.start);
        u.end();
        this.lock.unlock();
        return true;
      },
    });
  }

  /** Mirrors one page; returns 0 or -errno. */
  async faultPage(va: number, write: boolean): Promise<number> {
    const sched = this.mm.sim.sched;
    for (;;) {
      const seq = await mmuIntervalReadBegin(this.sub);
      await this.mm.mmapLock.read();
      const vma = this.mm.vmaLookup(va);
      if (vma === null) {
        this.mm.mmapLock.readUnlock();
        return -Errno.EFAULT;
      }
      let [pfn, w] = this.oracle.cpuLookup(va);
      for (let tries = 0; (pfn < 0 || (write && !w)) && tries < 4; tries++) {
        await this.mm.handleMmFault(vma, va, write ? FAULT_FLAG_WRITE : 0);
        [pfn, w] = this.oracle.cpuLookup(va);
      }
      this.mm.mmapLock.readUnlock();
      if (pfn < 0) return -Errno.EFAULT;
      await sched.yield(); // the window between hmm_range_fault and the bind
      await this.lock.lock();
      if (!this.skipReadRetry && mmuIntervalReadRetry(this.sub, seq)) {
        this.lock.unlock();
        this.retries++;
        continue;
      }
      const u = this.dev.beginUpdate('ce');
      this.dev.pageTable.map(va, PAGE_4K, pfn * 4096, { aperture: APERTURE.SYS, writable: w }, u.pt);
      u.end();
      this.binds++;
      this.lock.unlock();
      return 0;
    }
  }
}
