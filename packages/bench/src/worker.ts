/**
 * The sweep worker: runs one experiment per task on a worker thread (tinypool). Loaded through
 * `worker.mjs` (registers tsx, for running sources) or directly as `dist/worker.js` (built).
 *
 * @module
 */
import { type ExperimentSpec, type Metrics, runExperiment } from './experiment.ts';

/** Runs one sweep cell. */
export default async function runCell(spec: ExperimentSpec): Promise<Metrics> {
  return runExperiment(spec);
}
