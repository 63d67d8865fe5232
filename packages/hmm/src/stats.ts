/**
 * Counter handles of `@hmmkit/hmm` (names `hmm.*` in `sim.counters`), one set per simulation.
 *
 * @module
 */
import type { Counter, Sim } from '@hmmkit/sim';

/** The hmm counters. */
export interface HmmStats {
  /** hmmRangeFault calls. */
  readonly rangeFault: Counter;
  /** hmmRangeFault calls that returned -EBUSY (check_retry saw an invalidation). */
  readonly rangeFaultBusy: Counter;
  /** Internal re-walks after a fault or a migration wait (the walk's own -EBUSY). */
  readonly rangeFaultRewalk: Counter;
  /** Pages walked (entries filled or inspected). */
  readonly pagesWalked: Counter;
  /** handle_mm_fault calls made by hmmRangeFault. */
  readonly pagesFaulted: Counter;
  /** Retries done by hmmRangeFaultLocked (-EBUSY or read_retry). */
  readonly lockedRetries: Counter;
  /** migrate_vma_setup / migrate_device_range calls. */
  readonly migrateSetup: Counter;
  /** Pages collected with MIGRATE set after the unmap phase (sum of cpages). */
  readonly migrateCollected: Counter;
  /** Pages committed by migrate_*_pages (MIGRATE still set after it). */
  readonly migrateCommitted: Counter;
  /** Pages restored (MIGRATE cleared) by finalize. */
  readonly migrateRestored: Counter;
  /** make_device_exclusive successes. */
  readonly exclusive: Counter;
}

const bySim = new WeakMap<Sim, HmmStats>();

/** The counter handles of `sim` (created on first use). */
export function hmmStats(sim: Sim): HmmStats {
  let s = bySim.get(sim);
  if (s === undefined) {
    const c = (n: string) => sim.counters.counter(n);
    s = {
      rangeFault: c('hmm.rangeFault'),
      rangeFaultBusy: c('hmm.rangeFault.busy'),
      rangeFaultRewalk: c('hmm.rangeFault.rewalk'),
      pagesWalked: c('hmm.rangeFault.pagesWalked'),
      pagesFaulted: c('hmm.rangeFault.pagesFaulted'),
      lockedRetries: c('hmm.rangeFaultLocked.retries'),
      migrateSetup: c('hmm.migrate.setup'),
      migrateCollected: c('hmm.migrate.collected'),
      migrateCommitted: c('hmm.migrate.committed'),
      migrateRestored: c('hmm.migrate.restored'),
      exclusive: c('hmm.exclusive'),
    };
    bySim.set(sim, s);
  }
  return s;
}
