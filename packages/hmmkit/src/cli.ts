#!/usr/bin/env node
/**
 * The `hmmkit` bin of the installable package (plain node, built JavaScript).
 *
 * @module
 */
import { runCli } from '@hmmkit/bench';

await runCli();
