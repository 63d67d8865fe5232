/**
 * How page-table writes are paid for. Every PTE/PDE write goes through a {@link PtUpdateBatch}:
 * in `'bar0'` mode each 8-byte write is charged at once (`pteWriteBar0Ns`, the CPU writing
 * through the PRAMIN/BAR0 window as nova-core does); in `'ce'` mode writes are collected and
 * {@link PtUpdateBatch.commit} charges one copy-engine push (`pteWriteBatchFixedNs` plus
 * `pteWriteBatchPerEntryNs` per 8-byte entry), as UVM's page-tree pushes do.
 *
 * @module
 */
import { ArgumentError, type Counter, type Sim } from '@hmmkit/sim';

/** Write modes of a {@link PtUpdateBatch}. */
export type PtUpdateMode = 'bar0' | 'ce';

/** The counters a {@link PtUpdateBatch} bumps: `<prefix>.pt.pteWrites`, `.pdeWrites`, `.ceBatches`. */
export interface PtUpdateCounters {
  readonly pte: Counter;
  readonly pde: Counter;
  readonly ce: Counter;
}

/** Looks up (creating at 0) the {@link PtUpdateCounters} of `counterPrefix` in `sim`. */
export function ptUpdateCounters(sim: Sim, counterPrefix = 'gpu'): PtUpdateCounters {
  return {
    pte: sim.counters.counter(`${counterPrefix}.pt.pteWrites`),
    pde: sim.counters.counter(`${counterPrefix}.pt.pdeWrites`),
    ce: sim.counters.counter(`${counterPrefix}.pt.ceBatches`),
  };
}

/** A page-table update: counts and charges the 8-byte entry writes made through it. */
export class PtUpdateBatch {
  readonly sim: Sim;
  readonly mode: PtUpdateMode;
  /** 8-byte PTE writes made through this batch (all time). */
  pteWrites = 0;
  /** 8-byte PDE writes made through this batch (all time). */
  pdeWrites = 0;
  /** Writes not yet committed (CE mode). */
  pending = 0;
  /** Total ns charged by this batch. */
  chargedNs = 0;
  private readonly cPte: Counter;
  private readonly cPde: Counter;
  private readonly cCe: Counter;

  /**
   * `counters`: the handles of `counterPrefix`'s three counters, when the caller keeps them (a
   * device makes one batch per update: looking the names up each time shows in profiles).
   */
  constructor(sim: Sim, mode: PtUpdateMode, counterPrefix = 'gpu', counters?: PtUpdateCounters) {
    if (mode !== 'bar0' && mode !== 'ce') {
      throw new ArgumentError('PtUpdateBatch', 'mode', "must be 'bar0' or 'ce'", mode);
    }
    this.sim = sim;
    this.mode = mode;
    const c = counters ?? ptUpdateCounters(sim, counterPrefix);
    this.cPte = c.pte;
    this.cPde = c.pde;
    this.cCe = c.ce;
  }

  /** Records `n` 8-byte entry writes (PDE writes when `pde`). BAR0 mode charges them now. */
  record(n: number, pde: boolean): void {
    if (pde) {
      this.pdeWrites += n;
      this.cPde.value += n;
    } else {
      this.pteWrites += n;
      this.cPte.value += n;
    }
    if (this.mode === 'bar0') {
      const ns = n * this.sim.costs.pteWriteBar0Ns;
      this.chargedNs += ns;
      this.sim.charge(ns);
    } else {
      this.pending += n;
    }
  }

  /**
   * Ends the update: in CE mode charges one push for the pending writes (nothing if none);
   * in BAR0 mode there is nothing left to pay. Returns the ns charged now. The batch stays usable.
   */
  commit(): number {
    if (this.mode === 'bar0' || this.pending === 0) return 0;
    const c = this.sim.costs;
    const ns = c.pteWriteBatchFixedNs + this.pending * c.pteWriteBatchPerEntryNs;
    this.pending = 0;
    this.cCe.value++;
    this.chargedNs += ns;
    this.sim.charge(ns);
    return ns;
  }
}
