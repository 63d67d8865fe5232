/** `pnpm --filter @hmmkit/example-oversubscription start`: a working set 3× VRAM, eviction, refetch, data checked. */
import { run } from './run.ts';

const r = await run();
console.log('hmmkit example: oversubscribing device memory (12 MiB through a 4 MiB VRAM pool)\n');
for (const line of r.lines) console.log(`  ${line}`);
