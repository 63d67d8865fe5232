/**
 * A nouveau-style SVM driver (drivers/gpu/drm/nouveau/nouveau_svm.c), reduced to its fault
 * policy: every GPU fault inserts a temporary interval notifier over the faulting page
 * (nouveau_svm_fault → mmu_interval_notifier_insert), faults one page with hmm_range_fault and
 * maps it with the CPU's map order (a THP becomes one 2 MiB device PTE, nouveau_hmm_convert_pfn),
 * then removes the notifier. ATOMIC faults take the page device-exclusive
 * (nouveau_atomic_range_fault → make_device_exclusive) and map it with atomics enabled; the
 * per-mm classic notifier (nouveau_svmm_invalidate_range_start) zaps device PTEs on every CPU
 * change, including the revocation when the CPU touches an exclusive page.
 */
import { startFaultBottomHalf } from '@hmmkit/example-minimal-mirror/fault-bottom-half';
import { ACCESS, APERTURE, type GpuDevice, PAGE_4K } from '@hmmkit/gpu';
import * as hmm from '@hmmkit/hmm';
import type { Mm } from '@hmmkit/mm';
import * as mn from '@hmmkit/notifier';
import { Errno, Mutex, type Task } from '@hmmkit/sim';

/** One SVM address space of one GPU (`struct nouveau_svmm`). */
export class NouveauSvmm {
  readonly mm: Mm;
  readonly dev: GpuDevice;
  /** `svmm->mutex`: serialises device page-table updates against invalidations. */
  readonly mutex: Mutex;
  /** The `drm->dev` cookie passed as owner to make_device_exclusive. */
  readonly owner = { name: 'nouveau drm device' };
  /** Per-mm classic notifier (`svmm->notifier`). */
  readonly notifier: mn.MmuNotifier;
  /** Temporary interval notifiers inserted (one per serviced fault). */
  tempNotifiers = 0;
  /** Temporary notifiers alive right now (0 between faults). */
  liveTempNotifiers = 0;
  /** Device PTEs written, by page size. */
  readonly ptes = { '4K': 0, '2M': 0 };
  /** Exclusive grants, and revocations seen (EXCLUSIVE with owner null: the CPU took it back). */
  exclusiveGrants = 0;
  exclusiveRevocations = 0;
  /** read_retry failures in the fault loops. */
  retries = 0;

  /** An svmm for `dev` on `mm`; call {@link init} before faults. */
  constructor(mm: Mm, dev: GpuDevice) {
    this.mm = mm;
    this.dev = dev;
    this.mutex = new Mutex(mm.sim.sched, 'svmm->mutex');
    this.notifier = new mn.MmuNotifier({
      invalidateRangeStart: (_s, r) => this.invalidateRangeStart(r),
    });
  }

  /** Registers the classic notifier (nouveau_svmm_init → mmu_notifier_register). */
  async init(): Promise<number> {
    return mn.mmuNotifierRegister(this.notifier, this.mm);
  }

  /** Models nouveau_svmm_invalidate_range_start(): zap the span on the device, flush the TLB. */
  private async invalidateRangeStart(r: mn.MmuNotifierRange): Promise<number> {
    if (r.event === mn.MmuNotifyEvent.EXCLUSIVE && r.owner === null) this.exclusiveRevocations++;
    if (mn.mmuNotifierRangeBlockable(r)) await this.mutex.lock();
    else if (!this.mutex.tryLock()) return -Errno.EAGAIN;
    const u = this.dev.beginUpdate();
    this.dev.pageTable.unmap(r.start, r.end - r.start, u.pt);
    u.tlb.invalidate(r.start, r.end - r.start);
    u.end();
    this.mutex.unlock();
    return 0;
  }

  /** Models nouveau_svm_range_invalidate(): only bumps the sequence (the svmm notifier zaps). */
  private async rangeInvalidate(sub: mn.MmuIntervalNotifier, r: mn.MmuNotifierRange, seq: number) {
    // our own make_device_exclusive(): do not fail the read_retry that follows it
    if (r.event === mn.MmuNotifyEvent.EXCLUSIVE && r.owner === this.owner) return true;
    if (mn.mmuNotifierRangeBlockable(r)) await this.mutex.lock();
    else if (!this.mutex.tryLock()) return false;
    mn.mmuIntervalSetSeq(sub, seq);
    this.mutex.unlock();
    return true;
  }

  /** Services one fault: a temporary notifier over the page, then the plain or atomic path. */
  async fault(va: number, access: number): Promise<number> {
    const page = Math.floor(va / PAGE_4K) * PAGE_4K;
    const sub = new mn.MmuIntervalNotifier();
    const ops = {
      invalidate: (s: mn.MmuIntervalNotifier, r: mn.MmuNotifierRange, q: number) =>
        this.rangeInvalidate(s, r, q),
    };
    const ins = await mn.mmuIntervalNotifierInsert(sub, this.mm, page, PAGE_4K, ops);
    if (ins !== 0) return ins;
    this.tempNotifiers++;
    this.liveTempNotifiers++;
    try {
      return access === ACCESS.ATOMIC
        ? await this.atomicFault(sub, page)
        : await this.rangeFault(sub, page, access);
    } finally {
      await mn.mmuIntervalNotifierRemove(sub);
      this.liveTempNotifiers--;
    }
  }

  /** Models nouveau_range_fault(): one page, mapped with the CPU's map order. */
  private async rangeFault(sub: mn.MmuIntervalNotifier, page: number, access: number): Promise<number> {
    const write = access === ACCESS.WRITE;
    const range = new hmm.HmmRange({
      notifier: sub,
      start: page,
      end: page + PAGE_4K,
      defaultFlags: hmm.HMM_PFN_REQ_FAULT | (write ? hmm.HMM_PFN_REQ_WRITE : 0),
    });
    const before = this.mm.sim.counters.counter('hmm.rangeFaultLocked.retries').value;
    const ret = await hmm.hmmRangeFaultLocked(range, this.mutex);
    this.retries += this.mm.sim.counters.counter('hmm.rangeFaultLocked.retries').value - before;
    if (ret !== 0) return ret;
    // nouveau_hmm_convert_pfn(): widen to the map order (a PMD-mapped THP → one 2 MiB PTE)
    const flags = range.hmmFlags[0]!;
    const size = PAGE_4K * 2 ** hmm.hmmPfnToMapOrder(flags);
    const va = page - (page % size);
    const pa = (range.hmmPfns[0]! - (page - va) / PAGE_4K) * PAGE_4K;
    const attrs = { aperture: APERTURE.SYS, writable: (flags & hmm.HMM_PFN_WRITE) !== 0, atomic: false };
    const u = this.dev.beginUpdate();
    this.dev.pageTable.unmap(va, size, u.pt);
    this.dev.pageTable.map(va, size, pa, attrs, u.pt);
    u.tlb.invalidate(va, size);
    u.end();
    this.ptes[size === PAGE_4K ? '4K' : '2M']++;
    this.mutex.unlock();
    return 0;
  }

  /** Models nouveau_atomic_range_fault(): make the page device-exclusive, map it atomic. */
  private async atomicFault(sub: mn.MmuIntervalNotifier, page: number): Promise<number> {
    const phys = this.mm.machine.phys;
    for (;;) {
      const seq = await mn.mmuIntervalReadBegin(sub);
      await this.mm.mmapLock.read();
      const r = await hmm.makeDeviceExclusive(this.mm, page, this.owner);
      this.mm.mmapLock.readUnlock();
      if ('error' in r) return -Errno.EINVAL;
      await this.mutex.lock();
      if (!mn.mmuIntervalReadRetry(sub, seq)) {
        const u = this.dev.beginUpdate();
        const attrs = { aperture: APERTURE.SYS, writable: true, atomic: true };
        this.dev.pageTable.map(page, PAGE_4K, r.pfn * PAGE_4K, attrs, u.pt);
        u.tlb.invalidate(page, PAGE_4K);
        u.end();
        this.ptes['4K']++;
        this.exclusiveGrants++;
        this.mutex.unlock();
        phys.unlockPage(r.pfn);
        phys.putPage(r.pfn);
        return 0;
      }
      this.mutex.unlock();
      phys.unlockPage(r.pfn);
      phys.putPage(r.pfn);
      this.retries++;
    }
  }

  /** The fault bottom half (nouveau_svm_fault): fetch, sort, service, cancel failures, replay. */
  startFaultHandler(stop: () => boolean): Task {
    return startFaultBottomHalf(this.dev, 'nouveau-svm-fault', (va, access) => this.fault(va, access), stop);
  }
}
