import { ACCESS } from '@hmmkit/gpu';
import { LOC } from '@hmmkit/svm';
import { describe, expect, it } from 'vitest';
import { runXnackOff } from '../src/xnack-off.ts';

describe('amdkfd-style example, XNACK off', () => {
  it('registered memory runs without faults, attributes read back, a stray access kills the queue', async () => {
    const { metrics: m, lines } = await runXnackOff();
    expect(m.registeredKernelFaults).toBe(0);
    expect(m.attrs.preferredLoc).toBe(LOC.SYSMEM + 1); // deviceLoc(0)
    expect(m.attrs.prefetchLoc).toBe(m.attrs.preferredLoc);
    expect(m.attrs.accessedBy).toBe(1);
    expect(m.attrs.gpuRo).toBe(true);
    // the registration's prefetch moved the 16 pages to VRAM (the table is already in system
    // memory); no GPU fault migrated anything; the CPU's final read brought the buffer back
    expect(m.migrationsByTrigger).toEqual({ PREFETCH: 16, CPU_FAULT: 16 });
    expect(m.exception?.[1]).toBe(ACCESS.WRITE);
    expect(m.queueKilled).toBe(true);
    expect(m.dataOk).toBe(true);
    expect(m.violations).toBe(0);
    expect(lines.at(-1)).toContain('0 violations');
  });
});
