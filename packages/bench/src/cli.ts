#!/usr/bin/env node
/**
 * The `hmmkit` command line (bin): `hmmkit sweep`, `merge`, `report`, `cell`, `schema`, `run`,
 * `calibrate`. See the package README. Exit codes: 0 ok, 1 a cell failed or the oracle found a
 * violation, 2 a usage error (the message names the flag and the rule).
 *
 * @module
 */
import { runCli } from './commands.ts';

await runCli();
