/**
 * A 200-seed sample of the GpuSvm soak (bench/soak.ts runs 10^4): consecutive seeds, so every one of
 * the 60 granule × notifier × placement grid points runs three or four times. Each seed races GPU
 * kernels with munmap, mprotect, MADV_DONTNEED, fork, prefetch and CPU loads/stores (CPU faults on
 * VRAM pages); the oracle must find nothing and every read must return a value the writes allow.
 */
import { describe, expect, it } from 'vitest';
import { GRID, soakSeed } from '../bench/soak-run.ts';

const FIRST = 20_001;

describe('soak sample', () => {
  for (let part = 0; part < 4; part++) {
    const from = FIRST + part * 50;
    it(`seeds ${from}..${from + 49}: 0 violations, 0 data mismatches`, async () => {
      const bad: string[] = [];
      const points = new Set<string>();
      let accesses = 0;
      for (let s = from; s < from + 50; s++) {
        const r = await soakSeed(s);
        points.add(`${r.config.granule}/${r.config.notifiers}/${r.config.placement}`);
        accesses += r.gpuAccesses;
        if (r.violations > 0 || r.mismatches > 0)
          bad.push(
            `seed ${s}: ${r.violations} violations, ${r.mismatches} mismatches ${r.examples.join('; ')}`,
          );
      }
      expect(bad).toEqual([]);
      expect(points.size).toBe(Math.min(50, GRID.length));
      expect(accesses).toBeGreaterThan(50 * 40);
    });
  }
});
