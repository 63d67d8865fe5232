/**
 * The simulation context: one clock, one cost model, one set of counters, one trace bus and
 * one scheduler, handed to every simulated component (mm, devices, drivers).
 *
 * @module
 */
import { type CostModel, type CostParamName, createCostModel } from './cost-model.ts';
import { Counters } from './counters.ts';
import { HmmkitError } from './errors.ts';
import { Scheduler, type SchedulerOptions } from './scheduler.ts';
import { TraceBus } from './trace.ts';

/** Options of {@link createSim}. */
export interface SimOptions extends Omit<SchedulerOptions, 'clock'> {
  /** Cost-model overrides (see `COST_PARAMS`). */
  costs?: Partial<Record<CostParamName, number>>;
}

/** One simulation: clock, costs, counters, trace and scheduler. */
export class Sim {
  readonly sched: Scheduler;
  readonly costs: CostModel;
  readonly counters = new Counters();
  readonly trace = new TraceBus();

  constructor(options: SimOptions = {}) {
    this.costs = createCostModel(options.costs);
    this.sched = new Scheduler(options);
  }

  /** The virtual clock (owned by the scheduler). */
  get clock() {
    return this.sched.clock;
  }

  /** Virtual time now (ns). */
  get now(): number {
    return this.sched.clock.now;
  }

  /** Charges `ns` of work that occupies the simulated machine: advances the clock. */
  charge(ns: number): void {
    this.sched.clock.advance(ns);
  }
}

/** Creates a simulation context. */
export function createSim(options: SimOptions = {}): Sim {
  return new Sim(options);
}

/** The first failing interleaving found by {@link explore}. */
export interface ExploreFailure {
  readonly seed: number;
  /** Replays the failure: `createSim({ replay: schedule })`. */
  readonly schedule: readonly number[];
  readonly error: unknown;
}

/** Result of {@link explore}. */
export interface ExploreResult {
  readonly runs: number;
  readonly failure: ExploreFailure | null;
}

/**
 * Runs `scenario` once per seed, each time on a fresh {@link Sim}, and stops at the first seed
 * whose scenario throws (a task failed, an invariant check failed after the run). The scenario
 * spawns tasks, calls `sim.sched.run()` and checks what it wants.
 */
export async function explore(
  scenario: (sim: Sim) => Promise<unknown>,
  options: { seeds: number | Iterable<number>; sim?: Omit<SimOptions, 'seed' | 'replay'> },
): Promise<ExploreResult> {
  const seeds =
    typeof options.seeds === 'number'
      ? Array.from({ length: options.seeds }, (_, i) => i + 1)
      : options.seeds;
  let runs = 0;
  for (const seed of seeds) {
    const sim = new Sim({ ...options.sim, seed });
    runs++;
    try {
      await scenario(sim);
    } catch (error) {
      return { runs, failure: { seed, schedule: [...sim.sched.schedule], error } };
    }
  }
  return { runs, failure: null };
}

/** Thrown by helpers that check a simulation invariant (e.g. the coherence oracle). */
export class InvariantError extends HmmkitError {
  override name = 'InvariantError';
}
