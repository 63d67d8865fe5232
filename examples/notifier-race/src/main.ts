/** `npm run demo`: the notifier retry protocol, told in a driver developer's words. */
import { collidedAfterSnapshot, findSeed } from './race.ts';

const good = await findSeed(collidedAfterSnapshot, true);
console.log('hmmkit demo: an MMU interval notifier, a GPU fault, and a racing munmap\n');
console.log(`A correct driver (read_retry under its update lock), scheduler seed ${good.seed}:`);
for (const line of good.lines) console.log(line);
console.log(
  `  → ${good.retries} retry; device page table coherent with the CPU: ${good.stale === 0 ? 'yes' : 'NO'}\n`,
);

const bad = await findSeed((r) => r.stale > 0, false);
console.log(`The same driver without read_retry, scheduler seed ${bad.seed}:`);
for (const line of bad.lines) console.log(line);
console.log(
  `  → the device still maps ${bad.stale} page the CPU unmapped: a use-after-free on real hardware.`,
);
console.log(`    Replay it exactly with createSim({ seed: ${bad.seed} }).`);
