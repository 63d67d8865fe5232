/** `npm run hmmkit -- run debate-pte-versions`: nova-core's walker-versions debate, measured. */
import { run } from './run.ts';

const quick = process.argv.includes('--quick');
const r = run(quick ? { walksPerRound: 50_000, rounds: 3 } : {});
console.log('hmmkit debate: version branches vs a specialised walker, against the MMIO of map/unmap\n');
for (const line of r.lines) console.log(line);
