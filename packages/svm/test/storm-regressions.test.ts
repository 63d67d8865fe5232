/**
 * Seeds that found GpuSvm bugs under svm-oracle's full oracle (issue 9), kept as regressions:
 * - system memory, drm granules, seed 2: an existing 2M range outlives a VMA split by mprotect;
 *   the policy returns it and it must be reused, not rejected as a range outside the VMA;
 * - VRAM, UVM tree granules, seeds 3 and 7: a masked migration to VRAM must not collect (and
 *   hide behind migration entries) pages it does not move while the GPU still maps them;
 * - several migrations of ours in flight over one range: the MIGRATE invalidation zaps for all
 *   of them (the CPU's migrate_to_ram must not inherit a concurrent fault migration's mask);
 * - two GPUs without a peer link, UVM granules, seeds 5 and 8: a range's pages recorded by one
 *   GPU in its VRAM must not be bound on the other through a PEER aperture it does not have.
 */
import { createSim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import { describeViolation } from '../src/index.ts';
import { type StormConfig, svmStorm } from './helpers/svm-storm.ts';

const CASES: readonly [StormConfig, number][] = [
  [{ placement: 'sys', granule: 'drm', notifiers: 'window' }, 2],
  [{ placement: 'sys', granule: 'amdkfd', notifiers: 'window' }, 2],
  [{ placement: 'sys', granule: 'uvm', notifiers: 'window' }, 3],
  [{ placement: 'vram', granule: 'uvm', notifiers: 'window' }, 3],
  [{ placement: 'vram', granule: 'uvm', notifiers: 'window' }, 7],
  [{ placement: 'vram', granule: 'drm', notifiers: 'window' }, 22],
  [{ placement: 'vram', granule: 'amdkfd', notifiers: 'window' }, 22],
  [{ placement: 'vram', granule: 'uvm', notifiers: 'window', devices: 2 }, 8],
  [{ placement: 'vram', granule: 'uvm', notifiers: 'range', devices: 2 }, 5],
];

describe('storm seeds that found GpuSvm bugs', () => {
  for (const [cfg, seed] of CASES) {
    it(`${cfg.placement} ${cfg.devices ?? 1} GPU(s) ${cfg.granule}/${cfg.notifiers} seed ${seed}: no violation`, async () => {
      const { world } = await svmStorm(createSim({ seed }), cfg);
      world.oracle.checkAll();
      const v = world.oracle.violations;
      expect(v.length === 0 ? 'clean' : describeViolation(v[0]!)).toBe('clean');
      expect(world.oracle.checkedAccesses).toBeGreaterThan(0);
    });
  }
});
