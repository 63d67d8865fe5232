#!/usr/bin/env tsx
/**
 * The `hmmkit` command line (bin): `hmmkit sweep`, `hmmkit report <results.json>`,
 * `hmmkit run [example]`. See the package README.
 *
 * @module
 */
import { main } from './commands.ts';

main().catch((e: unknown) => {
  const debug = process.env.HMMKIT_DEBUG !== undefined;
  process.stderr.write(
    `hmmkit: ${e instanceof Error ? (debug ? (e.stack ?? e.message) : e.message) : String(e)}\n`,
  );
  process.exitCode = 1;
});
