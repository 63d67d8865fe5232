import { describe, expect, it } from 'vitest';
import { run } from '../src/run.ts';

describe('amdkfd-style example', () => {
  it('sizes ranges by granularity, places them by preferred location and prefetch, one notifier per range', async () => {
    const r = await run();
    const m = r.metrics;
    expect(r.lines[0]).toContain(
      '[+0x0, +0x200000) pref gpu0 gran 4; [+0x200000, +0x400000) pref sysmem gran 9',
    );
    expect(m.prefetchedPages).toBe(1024);
    expect(m.rangeSizes).toEqual({ '64K': 8, '2M': 3 });
    expect(m.notifiers).toBe(m.ranges);
    expect(m.toVramOnFault).toBe(8 * 16); // only R1's granules migrate on fault; R2 stays, R3 is there
    expect(r.lines[2]).toContain(
      'R1 (pref gpu0, 64K granules): 64K PTE → vid; R2 (pref sysmem): 4K PTE → sys',
    );
    expect(r.lines[2]).toContain('R3 (prefetched): 2M PTE → vid');
    expect(m.toRamOnCpuTouch).toBe(16);
    expect(r.lines[4]).toContain('0 notifier callbacks, 0 false invalidations');
    expect(m.dataOk).toBe(true);
    expect(m.violations).toBe(0);
    expect(r.lines.at(-1)).toContain('COHERENT');
  });

  it('coarse notifier windows pay false invalidations for CPU-only memory', async () => {
    const r = await run({ notifiers: 'window' });
    expect(r.metrics.notifiers).toBe(1);
    expect(r.metrics.falseInvalidations).toBe(32);
    expect(r.metrics.violations).toBe(0);
  });
});
