/**
 * The coherence oracle: after an invalidation's callbacks return, no device page table may map a
 * page that the CPU no longer maps at that address, nor map it writable after a write-protect.
 * It compares every device mapping with the CPU page table (present, device-private or
 * device-exclusive entries count as "the CPU maps pfn P"), checks each invalidated span at
 * `invalidate_range_end` through a classic MMU notifier, and can check everything on demand.
 *
 * @module
 */
import { APERTURE, type GpuDevice, type MappingInfo } from '@hmmkit/gpu';
import {
  type Mm,
  PageWalk,
  PTE_DEVICE_EXCLUSIVE,
  PTE_DEVICE_PRIVATE,
  PTE_PRESENT,
  PTE_W,
  pteType,
  WALK_HOLE,
  WALK_PTE,
} from '@hmmkit/mm';
import {
  MmuNotifier,
  type MmuNotifierRange,
  mmuNotifierRegister,
  mmuNotifyEventName,
} from '@hmmkit/notifier';
import { InvariantError } from '@hmmkit/sim';

/**
 * Translates one device page (VA `va` inside mapping `m`) to the CPU pfn it stands for, or -1 if
 * unknown. The default takes SYS apertures as identity DMA (pa = pfn * 4096) and leaves VRAM
 * unknown; a framework that backs device-private pages with VRAM supplies its own.
 */
export type DevicePageResolver = (dev: GpuDevice, m: MappingInfo, va: number) => number;

/** The default {@link DevicePageResolver}: SYS/SYS_NC identity, anything else unknown. */
export const identitySysResolver: DevicePageResolver = (_dev, m, va) =>
  m.aperture === APERTURE.SYS || m.aperture === APERTURE.SYS_NC
    ? Math.floor((m.pa + (va - m.va)) / 4096)
    : -1;

/** Why a device mapping is incoherent. */
export type CoherenceReason = 'cpu-unmapped' | 'pfn-mismatch' | 'writable-after-wp' | 'unknown-page';

/** One incoherent device page. */
export interface CoherenceViolation {
  readonly device: number;
  readonly va: number;
  /** CPU pfn the device page stands for (-1 unknown). */
  readonly devicePfn: number;
  /** CPU pfn at `va` (-1: not mapped). */
  readonly cpuPfn: number;
  readonly reason: CoherenceReason;
  /** The invalidation event after which it was found, or 'check'. */
  readonly when: string;
  /** Virtual time of the finding. */
  readonly at: number;
}

/** Options of {@link CoherenceOracle}. */
export interface CoherenceOracleOptions {
  /** Device page → CPU pfn. */
  readonly resolve?: DevicePageResolver;
  /** Throw an InvariantError at the first violation (default true: a test fails at the culprit). */
  readonly throwOnViolation?: boolean;
}

/** Checks device page tables against the CPU page table of one mm. */
export class CoherenceOracle {
  readonly mm: Mm;
  readonly devices: readonly GpuDevice[];
  /** Every violation found so far. */
  readonly violations: CoherenceViolation[] = [];
  /** Invalidations checked at range end. */
  checkedInvalidations = 0;
  private readonly resolve: DevicePageResolver;
  private readonly throwing: boolean;
  private readonly walk = new PageWalk();
  private notifier: MmuNotifier | null = null;

  constructor(mm: Mm, devices: readonly GpuDevice[], opts: CoherenceOracleOptions = {}) {
    this.mm = mm;
    this.devices = devices;
    this.resolve = opts.resolve ?? identitySysResolver;
    this.throwing = opts.throwOnViolation ?? true;
  }

  /**
   * Registers a classic MMU notifier whose `invalidate_range_end` checks the invalidated span
   * (the CPU PTEs have changed by then and every driver's start callback has returned).
   */
  async attach(): Promise<void> {
    if (this.notifier !== null) return;
    this.notifier = new MmuNotifier({
      invalidateRangeEnd: (_s, r: MmuNotifierRange) => {
        this.checkedInvalidations++;
        this.check(r.start, r.end, mmuNotifyEventName(r.event));
      },
    });
    await mmuNotifierRegister(this.notifier, this.mm);
  }

  /** CPU pfn mapped at `va` and whether writable: `[pfn, writable]`, pfn -1 when not mapped. */
  cpuLookup(va: number): [number, boolean] {
    const w = this.walk;
    this.mm.pt.walkUnit(va, va + 4096, w);
    if (w.kind === WALK_HOLE) return [-1, false];
    let val: number;
    let flags: number;
    if (w.kind === WALK_PTE) {
      val = w.pte!.val[w.index]!;
      flags = w.pte!.flags[w.index]!;
    } else {
      flags = w.flags;
      val = w.val + Math.floor((va - w.leafStart) / 4096);
    }
    const t = pteType(flags);
    if (t !== PTE_PRESENT && t !== PTE_DEVICE_PRIVATE && t !== PTE_DEVICE_EXCLUSIVE) return [-1, false];
    return [val, (flags & PTE_W) !== 0];
  }

  /**
   * Checks every device mapping overlapping `[start, end)`; returns the violations found (also
   * appended to {@link violations}; thrown as InvariantError when configured).
   */
  check(start: number, end: number, when = 'check'): CoherenceViolation[] {
    const found: CoherenceViolation[] = [];
    const lo = Math.floor(start / 4096) * 4096;
    for (const dev of this.devices) {
      const top = 2 ** dev.format.vaBits;
      if (lo >= top) continue;
      dev.pageTable.forEachMapping(lo, Math.min(end, top), (m) => {
        const a = Math.max(m.va, lo);
        const b = Math.min(m.va + m.size, end);
        for (let va = a; va < b; va += 4096) {
          const devicePfn = this.resolve(dev, m, va);
          const [cpuPfn, cpuW] = this.cpuLookup(va);
          let reason: CoherenceReason | null = null;
          if (devicePfn < 0) reason = 'unknown-page';
          else if (cpuPfn < 0) reason = 'cpu-unmapped';
          else if (cpuPfn !== devicePfn) reason = 'pfn-mismatch';
          else if (m.writable && !cpuW) reason = 'writable-after-wp';
          if (reason !== null) {
            found.push({ device: dev.id, va, devicePfn, cpuPfn, reason, when, at: this.mm.sim.now });
          }
        }
      });
    }
    if (found.length > 0) {
      this.violations.push(...found);
      if (this.throwing) {
        const v = found[0]!;
        throw new InvariantError(
          `coherence: device ${v.device} maps 0x${v.va.toString(16)} (pfn ${v.devicePfn}) ${v.reason}` +
            ` (cpu pfn ${v.cpuPfn}) after ${v.when}`,
        );
      }
    }
    return found;
  }

  /** Checks the whole address space of every device. */
  checkAll(): CoherenceViolation[] {
    return this.check(0, Number.MAX_SAFE_INTEGER);
  }
}
