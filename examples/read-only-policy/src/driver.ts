/**
 * A mirroring driver with a device-side permission policy: VA ranges of a "compressed" memory
 * class must never be mapped writable on the device, whatever the CPU PTE says (the
 * compressed-memory case from the kernel lists; amdkfd has the same rule as
 * KFD_IOCTL_SVM_FLAG_GPU_RO, svm_range_get_pte_flags). The driver is the minimal mirror (one
 * interval notifier, the hmm.rst loop, zap + TLB flush) plus the policy, through its two hooks:
 * - mapping (`deviceWritable`): `writable = HMM_PFN_WRITE && !readOnlyClass(va)`;
 * - a GPU write/atomic fault on the class (`writeFault`) is cancelled (`'enforce'`, the GPU sees
 *   a fault) or the page is resolved first — decompressed, one page copy charged — and leaves
 *   the class (`'resolve'`); `'naive'` is the driver without the policy, to show what the check
 *   catches.
 */
import { MinimalMirror } from '@hmmkit/example-minimal-mirror/mirror';
import { type GpuDevice, PAGE_4K } from '@hmmkit/gpu';
import type { Mm } from '@hmmkit/mm';
import { Errno, transferTimeNs } from '@hmmkit/sim';

/** How the driver treats the read-only class. */
export type RoMode = 'enforce' | 'resolve' | 'naive';

/** One interval of the read-only (compressed) class, `[start, end)`. */
export interface RoInterval {
  start: number;
  end: number;
}

/** A mirror of one VA span on one GPU with a read-only memory class. */
export class RoPolicyMirror extends MinimalMirror {
  /** The read-only class: sorted, disjoint intervals. */
  readonly roClass: RoInterval[] = [];
  /** How the class is treated. */
  readonly mode: RoMode;
  /** GPU write/atomic faults on the class: refused (cancelled), and resolved pages. */
  roWritesRefused = 0;
  roPagesResolved = 0;

  /** A mirror of `[start, end)` of `mm` on `dev`. */
  constructor(mm: Mm, dev: GpuDevice, start: number, end: number, mode: RoMode = 'enforce') {
    super(mm, dev, start, end);
    this.mode = mode;
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

  /** The policy on PTEs: the CPU's write permission, minus the read-only class. */
  protected override deviceWritable(va: number, hmmFlags: number): boolean {
    return super.deviceWritable(va, hmmFlags) && (this.mode === 'naive' || !this.readOnlyClass(va));
  }

  /** The policy on write faults: refuse (`'enforce'`) or resolve the page first (`'resolve'`). */
  protected override async writeFault(page: number): Promise<number> {
    if (this.mode === 'naive' || !this.readOnlyClass(page)) return 0;
    if (this.mode === 'enforce') {
      this.roWritesRefused++;
      return -Errno.EPERM; // the bottom half cancels the fault: the GPU context sees it
    }
    await this.update.write(); // the class changes under the lock PTEs are built under
    this.resolvePage(page);
    this.update.writeUnlock();
    return 0;
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
}
