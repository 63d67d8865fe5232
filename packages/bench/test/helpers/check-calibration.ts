import { expect } from 'vitest';
import type { CalibrationResult } from '../../src/calibration.ts';

/**
 * The check of every calibration target: a `calibrated` target must land inside its stated
 * tolerance (so it fails when the simulation drifts out); a `known-gap` target must land in its
 * pinned gap band, outside the tolerance, so the check fails both when the gap closes (flip the
 * status, update docs/calibration.md) and when it widens.
 */
export function checkCalibration(r: CalibrationResult): void {
  const t = r.target;
  expect(Number.isFinite(r.value)).toBe(true);
  if (t.status === 'calibrated') {
    expect(r.value).toBeGreaterThanOrEqual(t.tolerance[0]);
    expect(r.value).toBeLessThanOrEqual(t.tolerance[1]);
    expect(r.withinTolerance).toBe(true);
  } else {
    expect(r.withinTolerance).toBe(false);
    expect(r.value).toBeGreaterThanOrEqual(t.gapBand![0]);
    expect(r.value).toBeLessThanOrEqual(t.gapBand![1]);
  }
}
