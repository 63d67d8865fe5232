/**
 * The GpuSvm soak (not a CI test): `pnpm --filter @hmmkit/svm soak -- --seeds 10000 --from 1`.
 * Runs one {@link soakSeed} per seed over the granule × notifier × placement grid (seed s takes
 * grid point s mod 60), prints every seed with an oracle violation or a data mismatch, a summary per
 * grid point that had one, and seeds/s. Exits 1 if any seed failed.
 */
import { GRID, type SoakResult, soakSeed } from './soak-run.ts';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return def;
  const v = Number(process.argv[i + 1]);
  if (!Number.isSafeInteger(v) || v < 0)
    throw new Error(`--${name} needs a non-negative integer, got ${process.argv[i + 1]}`);
  return v;
}

const seeds = arg('seeds', 10_000);
const from = arg('from', 1);
const t0 = performance.now();
let violations = 0;
let mismatches = 0;
let badSeeds = 0;
let accesses = 0;
const badByPoint = new Map<string, number[]>();
for (let s = from; s < from + seeds; s++) {
  let r: SoakResult;
  try {
    r = await soakSeed(s);
  } catch (e) {
    badSeeds++;
    const c = GRID[s % GRID.length]!;
    console.log(`seed ${s} [${c.granule} ${c.notifiers} ${c.placement}]: threw ${(e as Error).message}`);
    continue;
  }
  accesses += r.gpuAccesses;
  violations += r.violations;
  mismatches += r.mismatches;
  if (r.violations > 0 || r.mismatches > 0) {
    badSeeds++;
    const key = `${r.config.granule} ${r.config.notifiers} ${r.config.placement}`;
    badByPoint.set(key, [...(badByPoint.get(key) ?? []), s]);
    console.log(
      `seed ${s} [${key}]: ${r.violations} violations, ${r.mismatches} mismatches ${r.examples.join('; ')}`,
    );
  }
  if ((s - from + 1) % 1000 === 0) {
    const dt = (performance.now() - t0) / 1000;
    console.log(`… ${s - from + 1} seeds, ${((s - from + 1) / dt).toFixed(1)} seeds/s`);
  }
}
const dt = (performance.now() - t0) / 1000;
for (const [k, v] of badByPoint)
  console.log(`bad at ${k}: seeds ${v.slice(0, 10).join(' ')}${v.length > 10 ? ' …' : ''}`);
console.log(
  `soak: seeds ${from}..${from + seeds - 1} over ${GRID.length} grid points: ${badSeeds} bad seeds, ` +
    `${violations} oracle violations, ${mismatches} data mismatches, ${accesses} GPU accesses; ` +
    `${dt.toFixed(1)} s, ${(seeds / dt).toFixed(1)} seeds/s`,
);
process.exitCode = badSeeds === 0 ? 0 : 1;
