/**
 * `@hmmkit/sim`: virtual time, the cost model, counters, the trace bus and the deterministic
 * scheduler with its blocking primitives. Every other hmmkit package stands on it.
 *
 * @module
 */

export { modPow2, pow2 } from './arith.ts';
export { costModelMarkdown } from './cost-doc.ts';
export {
  COST_PARAMS,
  type CostModel,
  type CostParamInfo,
  type CostParamName,
  type CostUnit,
  createCostModel,
  DEFAULT_COSTS,
  transferTimeNs,
} from './cost-model.ts';
export { Counter, Counters } from './counters.ts';
export {
  ArgumentError,
  checkUint,
  Errno,
  type ErrnoName,
  errnoName,
  HmmkitError,
  StateError,
  ULONG_MAX,
} from './errors.ts';
export { formatNs, hex } from './format.ts';
export { Rng } from './rng.ts';
export {
  Clock,
  DeadlockError,
  ReplayDivergenceError,
  type RunResult,
  Scheduler,
  type SchedulerOptions,
  Task,
  TaskFailedError,
  type TaskState,
  Waiter,
} from './scheduler.ts';
export {
  createSim,
  type ExploreFailure,
  type ExploreResult,
  explore,
  InvariantError,
  Sim,
  type SimOptions,
} from './sim.ts';
export { Mutex, RwSemaphore, WaitQueue } from './sync.ts';
export { TraceBus, type TraceEvents } from './trace.ts';
