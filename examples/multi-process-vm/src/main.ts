/** `pnpm --filter @hmmkit/example-multi-process-vm start`: two processes, two GPU VMs, one GPU. */
import { run } from './run.ts';

const r = await run();
console.log('hmmkit example: two processes with their own GPU VMs on one GPU, and a VM_BIND buffer object\n');
for (const line of r.lines) console.log(`  ${line}`);
