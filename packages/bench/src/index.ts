/**
 * `@hmmkit/bench`: the user's lab bench. The experiment runner (one workload × policy × cost
 * cell → metrics), sweeps on worker threads, table/CSV/JSON/HTML outputs, the `hmmkit` CLI
 *
 * @module
 */

export * from './analysis.ts';
export * from './calibration.ts';
export * from './commands.ts';
export * from './examples.ts';
export * from './experiment.ts';
export * from './flags.ts';
export * from './format.ts';
export * from './policies.ts';
export * from './report.ts';
export * from './schema.ts';
export * from './sweep.ts';
