import { describe, expect, it } from 'vitest';
import {
  type CalibrationResult,
  calibrateUvmSmartService,
  calibrateUvmSmartStencil,
} from '../src/calibration.ts';

/** Same rule as calibration.test.ts: calibrated → inside tolerance; known gap → inside its pinned band. */
function check(r: CalibrationResult): void {
  const t = r.target;
  expect(Number.isFinite(r.value)).toBe(true);
  if (t.status === 'calibrated') {
    expect(r.value).toBeGreaterThanOrEqual(t.tolerance[0]);
    expect(r.value).toBeLessThanOrEqual(t.tolerance[1]);
  } else {
    expect(r.withinTolerance).toBe(false);
    expect(r.value).toBeGreaterThanOrEqual(t.gapBand![0]);
    expect(r.value).toBeLessThanOrEqual(t.gapBand![1]);
  }
}

describe('UVMSmart’s service model on this driver (issue 11, target i)', () => {
  it("(i) the same driver under UVMSmart's per-fault service and accounting: >10× fewer far faults and kernel time", async () => {
    const i = await calibrateUvmSmartService();
    check(i);
    expect(i.detail.kernelTimeRatio).toBeGreaterThan(10);
    expect(i.detail.entriesRatio).toBeGreaterThan(10);
  });

  it('(j) stencil-like (hotspot): >10× under UVMSmart’s service model, <4× with UVM’s 256-entry batches', async () => {
    const j = await calibrateUvmSmartStencil();
    check(j);
    expect(j.detail.kernelTimeRatio).toBeGreaterThan(10);
    expect(j.detail.uvmBatchRatio).toBeLessThan(4);
    expect(j.detail.uvmBatchKernelTimeRatio).toBeLessThan(7);
  });
});
