/**
 * Soak of the coherence oracle's storm (test/helpers/svm-storm.ts): GPU kernels with data racing
 * MADV_DONTNEED, mprotect, munmap + mmap, fork and CPU stores, over every granule policy ×
 * notifier policy, on system memory and/or VRAM. Prints, per configuration, the seeds run, the
 * seeds with a violation (first one described, with its seed), the seeds whose run threw, and
 * seeds/s. Not a CI test: oracle-storm.test.ts runs a sample.
 *
 * Run from packages/svm: `tsx bench/oracle-soak.ts [seeds per config = 100] [sys|vram|both = both] [first seed = 1] [GPUs = 1] [peer]`.
 * Exit code 1 when any seed violated or threw.
 */
import { createSim } from '@hmmkit/sim';
import { describeViolation } from '../src/index.ts';
import { STORM_GRANULES, STORM_NOTIFIERS, type StormConfig, svmStorm } from '../test/helpers/svm-storm.ts';

const seeds = Number(process.argv[2] ?? 100);
const where = process.argv[3] ?? 'both';
const from = Number(process.argv[4] ?? 1);
const devices = Number(process.argv[5] ?? 1);
const peer = process.argv[6] === 'peer';
const placements = where === 'both' ? (['sys', 'vram'] as const) : ([where] as const);
let bad = 0;
let total = 0;
const t0 = performance.now();
for (const placement of placements) {
  if (placement !== 'sys' && placement !== 'vram')
    throw new Error(`placement must be sys, vram or both: ${where}`);
  for (const granule of Object.keys(STORM_GRANULES)) {
    for (const notifiers of Object.keys(STORM_NOTIFIERS)) {
      const cfg: StormConfig = { placement, granule, notifiers, devices, peer };
      const t = performance.now();
      let violating = 0;
      let threw = 0;
      let first = '';
      const badSeeds: number[] = [];
      for (let seed = from; seed < from + seeds; seed++) {
        try {
          const { world } = await svmStorm(createSim({ seed }), cfg);
          world.oracle.checkAll();
          const v = world.oracle.violations;
          if (v.length > 0) {
            violating++;
            badSeeds.push(seed);
            if (first === '') first = `${v.length} violations, first: ${describeViolation(v[0]!)}`;
          }
        } catch (e) {
          threw++;
          badSeeds.push(seed);
          if (first === '') first = `seed ${seed} threw: ${String((e as Error).message).slice(0, 200)}`;
        }
      }
      total += seeds;
      bad += violating + threw;
      const rate = seeds / ((performance.now() - t) / 1000);
      console.log(
        `${placement}${devices > 1 ? ` ${devices} GPUs${peer ? ' peer' : ''}` : ''} ${granule.padEnd(7)} ${notifiers.padEnd(6)} seeds ${from}..${from + seeds - 1}: ` +
          `${violating} violating, ${threw} threw, ${rate.toFixed(1)} seeds/s` +
          (first ? ` — bad seeds ${badSeeds.slice(0, 12).join(' ')}; ${first}` : ''),
      );
    }
  }
}
const rate = total / ((performance.now() - t0) / 1000);
console.log(`\n${total} seeds, ${bad} bad, ${rate.toFixed(1)} seeds/s overall`);
process.exitCode = bad === 0 ? 0 : 1;
