/** `npm run hmmkit -- run debate-gmem-vs-hmm`: the GMEM RFC debate, measured. */
import { run } from './run.ts';

const quick = process.argv.includes('--quick');
const r = await run(
  quick ? { bytes: 4 << 20, overVram: 4 << 20, overBytes: 12 << 20, stormRounds: 2, stormOps: 8 } : {},
);
console.log('hmmkit debate: a GMEM-style core + gm_mmu driver vs an HMM-style driver (GpuSvm), same GPU\n');
for (const line of r.lines) console.log(line);
