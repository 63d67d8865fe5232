import { describe, expect, it } from 'vitest';
import { runAtomic } from '../src/atomic.ts';

describe('xe-style atomic and PAT madvise example', () => {
  it('migrates DEVICE atomics to VRAM, refuses CPU-only atomics on the GPU, carries the PAT index into the PTEs', async () => {
    const r = await runAtomic();
    expect(r.deviceInVram).toBe(true);
    expect(r.deviceValue).toBe(42);
    expect(r.cpuModeCancelled).toBe(1);
    expect(r.pats.length).toBeGreaterThan(0);
    expect(r.pats.every((p) => p === 15)).toBe(true); // Xe2's wt index
    expect(r.violations).toBe(0);
  });
});
