import { describe, expect, it } from 'vitest';
import { calibrateGemmPlateau } from '../src/calibration.ts';

describe('batch-size plateau on a gemm-like workload (issue 11, target k)', () => {
  it('(k) sgemm-like: throughput rises from 32 to 256 entries per batch and gains nothing past 256, with or without prefetch', async () => {
    const k = await calibrateGemmPlateau();
    expect(k.target.status).toBe('calibrated');
    expect(k.value).toBeGreaterThanOrEqual(k.target.tolerance[0]);
    expect(k.value).toBeLessThanOrEqual(k.target.tolerance[1]);
    // the curve bends at 256: a clear gain below it (Allen & Ge ≈ +35 % from 32), none above
    expect(k.detail.gain32to256).toBeGreaterThan(10);
    expect(k.detail.gainPrefetch256to512).toBeLessThan(5);
  });
});
