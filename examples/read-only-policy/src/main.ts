/** `pnpm --filter @hmmkit/example-read-only-policy start`: a memory class the device must map read-only. */
import { run } from './run.ts';

console.log('hmmkit example: a read-only device mapping policy for compressed memory (src/driver.ts)\n');
for (const mode of ['enforce', 'resolve', 'naive'] as const) {
  const r = await run({ mode });
  for (const line of r.lines) console.log(`  ${line}`);
  console.log('');
}
