/**
 * The default sweep's results, pinned. Issue 12 asks that speed work leaves "the default sweep's
 * table unchanged": every metric of every cell (wall-clock time aside) must equal the recorded
 * run. A change that moves a number on purpose (a model fix) re-records the fixture with
 * `HMMKIT_RECORD_GOLDEN=1` and says why in its commit message.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DEFAULT_SWEEP, runSweep } from '../src/sweep.ts';

const FIXTURE = fileURLToPath(new URL('./fixtures/default-sweep-seed1.json', import.meta.url));

describe('the default sweep (seed 1)', () => {
  it('gives exactly the recorded metrics in every cell', async () => {
    const run = await runSweep(DEFAULT_SWEEP, { threads: 0 });
    expect(run.failures).toEqual([]);
    const got = run.cells.map((c) => {
      const { wallMs: _wall, ...metrics } = c.metrics;
      return {
        label: `${c.spec.workload.label ?? c.spec.workload.generator} ${c.spec.granule} ${c.spec.notifier}`,
        metrics,
      };
    });
    if (process.env.HMMKIT_RECORD_GOLDEN === '1') writeFileSync(FIXTURE, `${JSON.stringify(got, null, 1)}\n`);
    const want = JSON.parse(readFileSync(FIXTURE, 'utf8')) as typeof got;
    expect(got).toHaveLength(24);
    expect(got).toEqual(want);
  }, 60_000);
});
