/** `pnpm --filter @hmmkit/example-multi-gpu start`: two GPUs, one address space, a preferred-location hint. */
import { run } from './run.ts';

console.log('hmmkit example: two GPUs sharing one address space\n');
for (const peer of [false, true]) {
  const r = await run({ peer });
  for (const line of r.lines) console.log(`  ${line}`);
  console.log('');
}
