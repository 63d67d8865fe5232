/**
 * A correct GpuSvm under the full oracle (PTEs and TLBs at every invalidation end, the
 * translation of every GPU access, the data shadow of every load): seeded storms of GPU kernels
 * racing MADV_DONTNEED, mprotect, munmap + mmap, fork and CPU stores give no violation, for every
 * granule policy × notifier policy on system memory, and for every granule policy in VRAM (one GPU, and
 * two GPUs mapping each other's VRAM). Longer sweeps: `bench/oracle-soak.ts`.
 */
import { createSim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import { describeViolation } from '../src/index.ts';
import { STORM_GRANULES, STORM_NOTIFIERS, type StormConfig, svmStorm } from './helpers/svm-storm.ts';

const SEEDS = 12;
const VRAM_SEEDS = 10;

describe('GpuSvm storms under the full oracle (system memory)', () => {
  for (const granule of Object.keys(STORM_GRANULES)) {
    for (const notifiers of Object.keys(STORM_NOTIFIERS)) {
      it(`${granule} granules, ${notifiers} notifiers: ${SEEDS} seeds, 0 violations`, async () => {
        const cfg: StormConfig = { placement: 'sys', granule, notifiers };
        let accesses = 0;
        let loads = 0;
        let invalidations = 0;
        for (let seed = 1; seed <= SEEDS; seed++) {
          const { world } = await svmStorm(createSim({ seed }), cfg);
          world.oracle.checkAll();
          const v = world.oracle.violations;
          expect(v.length === 0 ? 'clean' : describeViolation(v[0]!)).toBe('clean');
          accesses += world.oracle.checkedAccesses;
          loads += world.oracle.checkedLoads;
          invalidations += world.oracle.checkedInvalidations;
        }
        // the rules had work to do
        expect(accesses).toBeGreaterThan(SEEDS * 50);
        expect(loads).toBeGreaterThan(SEEDS * 20);
        expect(invalidations).toBeGreaterThan(SEEDS);
      });
    }
  }
});

describe('GpuSvm storms under the full oracle (VRAM)', () => {
  const cases: [string, StormConfig][] = Object.keys(STORM_GRANULES).map((granule) => [
    `${granule} granules, one GPU`,
    { placement: 'vram', granule, notifiers: 'window' },
  ]);
  cases.push([
    'drm granules, two GPUs mapping each other (peer)',
    { placement: 'vram', granule: 'drm', notifiers: 'range', devices: 2, peer: true },
  ]);
  for (const [what, cfg] of cases) {
    it(`${what}: ${VRAM_SEEDS} seeds, 0 violations`, async () => {
      let migrated = 0;
      for (let seed = 1; seed <= VRAM_SEEDS; seed++) {
        const { world } = await svmStorm(createSim({ seed }), cfg);
        world.oracle.checkAll();
        const v = world.oracle.violations;
        expect(v.length === 0 ? 'clean' : describeViolation(v[0]!)).toBe('clean');
        migrated += world.sim.counters.get('svm.migrate.toVram.pages');
      }
      expect(migrated).toBeGreaterThan(0); // the pages did live in VRAM
    });
  }
});
