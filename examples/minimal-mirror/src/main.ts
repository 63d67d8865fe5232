/** `pnpm --filter @hmmkit/example-minimal-mirror start`: the smallest correct mirroring driver at work. */
import { run } from './run.ts';

const r = await run();
console.log('hmmkit example: a minimal HMM mirroring driver (src/mirror.ts)\n');
for (const line of r.lines) console.log(`  ${line}`);
