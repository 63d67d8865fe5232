/** `npm run hmmkit -- run debate-svm-across-devices`: the drm_gpuvm-across-devices debate, measured. */
import { run } from './run.ts';

const quick = process.argv.includes('--quick');
const r = await run(quick ? { rounds: 2, heavy: 2 } : {});
console.log(
  'hmmkit debate: SVM across devices — shared vs per-device hints; proxy process vs a page table per process\n',
);
for (const line of r.lines) console.log(line);
