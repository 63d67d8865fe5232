/** `npm run hmmkit -- run debate-spm-nodes`: the Specific Purpose Memory NUMA node debate, measured. */
import { run } from './run.ts';

const quick = process.argv.includes('--quick');
const r = await run(quick ? { nodePages: 2048 } : {});
console.log('hmmkit debate: DEVICE_PRIVATE vs DEVICE_COHERENT vs an SPM node vs ordinary memory\n');
for (const line of r.lines) console.log(line);
