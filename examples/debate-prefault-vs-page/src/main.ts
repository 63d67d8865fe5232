/** `npm run hmmkit -- run debate-prefault-vs-page`: the xe SVM prefault-range debate, measured. */
import { run } from './run.ts';

const quick = process.argv.includes('--quick');
const r = await run(quick ? { bytes: 8 << 20, rounds: 2, opsPerRound: 8 } : {});
console.log('hmmkit debate: prefault ranges with large GPU PTEs vs page-by-page mirroring, on CPU storms\n');
for (const line of r.lines) console.log(line);
