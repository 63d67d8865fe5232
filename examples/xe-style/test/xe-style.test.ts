import { describe, expect, it } from 'vitest';
import { run } from '../src/run.ts';

describe('xe-style example', () => {
  it('picks 2M, 64K and 4K chunks as drm_gpusvm does, migrates them to VRAM, and stays coherent', async () => {
    const r = await run();
    const m = r.metrics;
    expect(m.rangeSizes).toEqual({ '2M': 2, '64K': 3, '4K': 3 });
    expect(r.lines[2]).toContain('2M PTE → vid (2M PTE → vid for the second 2 MiB)');
    expect(r.lines[3]).toContain('check-pages) → 64K PTE → vid');
    expect(r.lines[4]).toContain('4K chunks: 4K PTE → vid');
    expect([m.pte2m, m.pte64k]).toEqual([2, 3]);
    expect(m.pte4k).toBeGreaterThanOrEqual(3);
    expect(m.toVramPages).toBe(1024 + 48 + 3); // A, B, C; the refault after the munmap finds its page in VRAM
    expect(m.toRamPages).toBe(512); // the CPU read faulted A's first 2M range back
    expect(r.lines[6]).toContain('0xabcd');
    expect(r.lines[6]).toContain("A's device mapping now: not mapped");
    expect(m.rangesRemoved).toBe(1);
    expect(m.dataOk).toBe(true);
    expect(m.violations).toBe(0);
    expect(r.lines.at(-1)).toContain('COHERENT');
    expect(m.tlbInvalidates).toBeGreaterThan(0);
  });
});
