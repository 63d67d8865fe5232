/** `pnpm --filter @hmmkit/example-uvm-style start`: fault batching, tree prefetcher, thrashing, eviction. */
import { runAccessCounters } from './access-counters.ts';
import { run } from './run.ts';

const r = await run();
console.log('hmmkit example: a UVM-style SVM driver (fault batches, tree prefetcher, thrashing, eviction)\n');
for (const line of r.lines) console.log(`  ${line}`);
const off = await run({ prefetch: false });
const a = r.metrics.fit;
const b = off.metrics.fit;
console.log(
  `\n  tree prefetcher off, same 6 MiB kernel: ${b.serviced} faults serviced in ${b.batches} batches, ` +
    `${(b.simNs / 1000).toFixed(1)} µs (on: ${a.serviced} in ${a.batches}, ${(a.simNs / 1000).toFixed(1)} µs)`,
);

const c = await runAccessCounters();
console.log('\n  access counters (delayed migration: data mapped remotely, moved when hot):');
for (const line of c.lines) console.log(`  ${line}`);
