#!/usr/bin/env node
/**
 * The `hmmkit` command line (bin): `hmmkit sweep`, `merge`, `report`, `cell`, `schema`, `run`,
 * `calibrate`. See the package README. Exit codes: 0 ok, 1 a cell failed or the oracle found a
 * violation, 2 a usage error (the message names the flag and the rule).
 *
 * @module
 */
import { main, UsageError } from './commands.ts';

main().catch((e: unknown) => {
  const debug = process.env.HMMKIT_DEBUG !== undefined;
  process.stderr.write(
    `hmmkit: ${e instanceof Error ? (debug ? (e.stack ?? e.message) : e.message) : String(e)}\n`,
  );
  process.exitCode = e instanceof UsageError ? 2 : 1;
});
