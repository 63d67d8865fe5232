import { describe, expect, it } from 'vitest';
import { run } from '../src/run.ts';

describe('nouveau-style example', () => {
  it('widens to the THP, uses one temporary notifier per fault, and does atomics through device-exclusive', async () => {
    const r = await run();
    const m = r.metrics;
    expect(r.lines[0]).toContain('CPU map order 9');
    expect(m.dataOk).toBe(true);
    // one fault for the whole THP, one per 4K page of B
    expect(m.pte2m).toBe(1);
    expect(r.lines[1]).toContain('2048 KiB at A+77 pages');
    expect(m.tempNotifiers).toBe(17 + 2); // kernel 1, then one ATOMIC fault in kernels 2 and 3
    expect(m.liveTempNotifiers).toBe(0);
    expect(m.exclusiveGrants).toBe(2);
    expect(r.lines[2]).toContain('device PTE atomic: true; CPU PTE: a device-exclusive entry');
    // the CPU read revokes exclusivity: the device PTE goes, the CPU sees every GPU atomic
    expect(m.counterAfterKernel1).toBe(32);
    expect(r.lines[3]).toContain('device PTE zapped');
    expect(m.counterFinal).toBe(64);
    expect(m.exclusiveRevocations).toBe(2);
    expect(m.violations).toBe(0);
    expect(r.lines.at(-2)).toContain('COHERENT');
    // the same through GpuSvm's EXCLUSIVE atomic mode
    expect(m.gpuSvm).toEqual({ grants: 2, counterAfterCpu: 32, counterFinal: 64, violations: 0 });
    expect(r.lines.at(-1)).toContain('COHERENT');
  });
});
