/** `pnpm --filter @hmmkit/example-amdkfd-style start`: range attributes, granularity, prefetch, notifier per range. */
import { run } from './run.ts';
import { runXnackOff } from './xnack-off.ts';

const r = await run();
console.log(
  'hmmkit example: an amdkfd-style SVM driver (attributes, granularity, prefetch, notifier per range)\n',
);
for (const line of r.lines) console.log(`  ${line}`);
const w = await run({ notifiers: 'window' });
console.log(
  `\n  the same run with drm_gpusvm's 512 MiB notifier windows instead: ${w.metrics.notifiers} notifier(s), ` +
    `${w.metrics.falseInvalidations} false invalidations (vs ${r.metrics.falseInvalidations} with ` +
    `${r.metrics.notifiers} per-range notifiers)`,
);

const x = await runXnackOff();
console.log('\n  with XNACK off (no retryable faults: everything registered before the launch):');
for (const line of x.lines) console.log(`  ${line}`);
