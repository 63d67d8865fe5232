/**
 * The simulated machine shared by every process: the simulation context, physical memory, the
 * THP policy, the anon_vma families used by rmap, and the mm counters.
 *
 * @module
 */
import { ArgumentError, type Counter, HmmkitError, type Sim } from '@hmmkit/sim';
import { PhysMem, type PhysMemOptions } from './physmem.ts';
import { AnonVma } from './vma.ts';

/** /sys/kernel/mm/transparent_hugepage/enabled. */
export type ThpMode = 'always' | 'madvise' | 'never';

/** Options of {@link Machine}. */
export interface MachineOptions extends PhysMemOptions {
  /** THP policy (default 'madvise': only VM_HUGEPAGE VMAs get THPs on fault). */
  thp?: ThpMode;
  /** vm.max_map_count (default 65530, Linux's default). */
  maxMapCount?: number;
  /** transparent_hugepage/use_zero_page (default true): read faults map the huge zero page. */
  useHugeZeroPage?: boolean;
}

/** Counter handles of the mm layer (names `mm.*` in `sim.counters`). */
export interface MmStats {
  /** handle_mm_fault calls. */
  readonly faults: Counter;
  /** Major faults (swap-in). */
  readonly majorFaults: Counter;
  /** COW breaks (wp_page_copy, including zero-page → page). */
  readonly cow: Counter;
  /** THPs allocated (faults, collapse, huge zero → THP). */
  readonly thpAlloc: Counter;
  /** PMD mappings split (__split_huge_pmd). */
  readonly thpSplit: Counter;
  /** MADV_COLLAPSE successes. */
  readonly thpCollapse: Counter;
  /** Pages written to swap. */
  readonly swapOut: Counter;
  /** Pages read back from swap. */
  readonly swapIn: Counter;
  /** NUMA page migrations. */
  readonly numaMigrated: Counter;
  /** TLB shootdowns charged. */
  readonly tlbFlush: Counter;
  /** Device-private pages faulted through migrate_to_ram. */
  readonly devicePrivateFaults: Counter;
}

/** A machine: physical memory plus the policies and families shared by its processes. */
export class Machine {
  readonly sim: Sim;
  readonly phys: PhysMem;
  /** THP policy. */
  thp: ThpMode;
  /** vm.max_map_count. */
  maxMapCount: number;
  /** Map the huge zero page on read faults of THP-eligible VMAs. */
  useHugeZeroPage: boolean;
  /** Counters. */
  readonly stats: MmStats;
  // Strong references, released when the family's last mm exits (the last put_anon_vma()). Not
  // WeakRefs: `new WeakRef()` and `deref()` keep their target (and through its mms, this machine)
  // alive until the microtask queue drains, which a long chain of simulations never lets happen.
  private readonly anonVmas = new Map<number, AnonVma>();
  private nextAnonId = 1;

  constructor(sim: Sim, options: MachineOptions = {}) {
    this.sim = sim;
    this.phys = new PhysMem(sim, options);
    const thp = options.thp ?? 'madvise';
    if (thp !== 'always' && thp !== 'madvise' && thp !== 'never') {
      throw new ArgumentError('Machine', 'options.thp', "must be 'always', 'madvise' or 'never'", thp);
    }
    this.thp = thp;
    this.maxMapCount = options.maxMapCount ?? 65530;
    this.useHugeZeroPage = options.useHugeZeroPage ?? true;
    const c = sim.counters;
    this.stats = {
      faults: c.counter('mm.faults'),
      majorFaults: c.counter('mm.faults.major'),
      cow: c.counter('mm.cow'),
      thpAlloc: c.counter('mm.thp.alloc'),
      thpSplit: c.counter('mm.thp.split'),
      thpCollapse: c.counter('mm.thp.collapse'),
      swapOut: c.counter('mm.swap.out'),
      swapIn: c.counter('mm.swap.in'),
      numaMigrated: c.counter('mm.numa.migrated'),
      tlbFlush: c.counter('mm.tlb.flush'),
      devicePrivateFaults: c.counter('mm.faults.devicePrivate'),
    };
  }

  /** Models anon_vma_alloc(): a new rmap family. */
  newAnonVma(): AnonVma {
    const a = new AnonVma(this.nextAnonId++);
    this.anonVmas.set(a.id, a);
    return a;
  }

  /** Models the last put_anon_vma(): the family is gone once no mm maps through it. */
  releaseAnonVma(a: AnonVma): void {
    if (a.mms.size === 0) this.anonVmas.delete(a.id);
  }

  /** The family with id `id` (page->mapping of an anonymous page), or null. */
  anonVmaById(id: number): AnonVma | null {
    return this.anonVmas.get(id) ?? null;
  }
}

/** Creates a machine for `sim`. */
export function createMachine(sim: Sim, options: MachineOptions = {}): Machine {
  return new Machine(sim, options);
}

/** Signal delivered to a CPU access that cannot be satisfied. */
export type MmSignal = 'SIGSEGV' | 'SIGBUS';

/**
 * A CPU load or store raised a signal: SIGSEGV (no VMA: SEGV_MAPERR; VMA forbids it:
 * SEGV_ACCERR) or SIGBUS (BUS_ADRERR: e.g. beyond the end of a file, a failed migrate_to_ram,
 * out of memory in a fault).
 */
export class MmSignalError extends HmmkitError {
  override name = 'MmSignalError';
  readonly signal: MmSignal;
  /** The faulting address (si_addr). */
  readonly address: number;
  /** si_code: 'SEGV_MAPERR', 'SEGV_ACCERR' or 'BUS_ADRERR'. */
  readonly code: 'SEGV_MAPERR' | 'SEGV_ACCERR' | 'BUS_ADRERR';

  constructor(signal: MmSignal, address: number, code: 'SEGV_MAPERR' | 'SEGV_ACCERR' | 'BUS_ADRERR') {
    super(`${signal} (${code}) at 0x${address.toString(16)}`);
    this.signal = signal;
    this.address = address;
    this.code = code;
  }
}
