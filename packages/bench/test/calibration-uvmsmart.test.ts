import { describe, expect, it } from 'vitest';
import { calibrateUvmSmartService, calibrateUvmSmartStencil } from '../src/calibration.ts';
import { checkCalibration } from './helpers/check-calibration.ts';

describe('UVMSmart’s service model on this driver (issue 11, target i)', () => {
  it("(i) the same driver under UVMSmart's per-fault service and accounting: >10× fewer far faults and kernel time", async () => {
    const i = await calibrateUvmSmartService();
    checkCalibration(i);
    expect(i.detail.kernelTimeRatio).toBeGreaterThan(10);
    expect(i.detail.entriesRatio).toBeGreaterThan(10);
  });

  it('(j) stencil-like (hotspot): >10× under UVMSmart’s service model, <4× with UVM’s 256-entry batches', async () => {
    const j = await calibrateUvmSmartStencil();
    checkCalibration(j);
    expect(j.detail.kernelTimeRatio).toBeGreaterThan(10);
    expect(j.detail.uvmBatchRatio).toBeLessThan(4);
    expect(j.detail.uvmBatchKernelTimeRatio).toBeLessThan(7);
  });
});
