import { describe, expect, it } from 'vitest';
import { calibrateBatchPlateau, calibrateBatchShape, calibratePrefetchRatio } from '../src/calibration.ts';
import { checkCalibration } from './helpers/check-calibration.ts';

describe('fault arrival against Allen & Ge (issue 11)', () => {
  it('(e) full batches carry ≈64 unique pages, (f) 75 % duplicates, (g) ≈0.9 µs/KiB without prefetch', async () => {
    const [e, f, g] = await calibrateBatchShape();
    for (const r of [e!, f!, g!]) checkCalibration(r);
    // streaming batches are full: every batch but the last of each sweep fetches 256 entries
    expect(e!.detail.fullBatches).toBeGreaterThan(e!.detail.batches! / 2);
    expect(g!.detail.interceptUs).toBeGreaterThan(20);
    expect(g!.detail.interceptUs).toBeLessThan(80); // Allen & Ge intercepts 30–50 µs
  });

  it('(c) batch-size curve: rises to 256, ≈11 % more at 512 without prefetch (known gap), none with prefetch', async () => {
    const c = await calibrateBatchPlateau();
    checkCalibration(c);
    expect(c.detail.gainNoPrefetch128to256).toBeGreaterThan(c.value); // the curve bends at 256
    expect(c.detail.gainPrefetch256to512).toBeLessThan(5);
  });

  it('(h) tree vs 4K on streaming: ≈2.5× fewer far faults, ≈5× less kernel time (known gap to >10×)', async () => {
    const h = await calibratePrefetchRatio();
    checkCalibration(h);
    expect(h.detail.kernelTimeRatio).toBeGreaterThan(4);
    expect(h.detail.kernelTimeRatio).toBeLessThan(7);
    // counted as UVMSmart counts (serviced faults), UVM's 256-entry batches still give < 4×: the
    // counting alone is not what makes target (i)'s order of magnitude, the per-fault service is
    expect(h.detail.servicedRatio).toBeLessThan(4);
  });
});
