/** `pnpm --filter @hmmkit/example-nouveau-style start`: nouveau's fault policy and device-exclusive atomics. */
import { run } from './run.ts';

const r = await run();
console.log('hmmkit example: a nouveau-style SVM driver (src/svmm.ts)\n');
for (const line of r.lines) console.log(`  ${line}`);
