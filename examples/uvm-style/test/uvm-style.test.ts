import { describe, expect, it } from 'vitest';
import { run } from '../src/run.ts';

describe('uvm-style example', () => {
  it('batches and coalesces faults, prefetches, evicts under oversubscription, pins a thrashing page', async () => {
    const r = await run();
    const { fit, oversubscribed: over } = r.metrics;
    // batching: 32 warp accesses per page arrive as duplicates; each batch holds unique pages
    expect(fit.faultsFetched).toBe(fit.faultsRaised);
    expect(fit.faultsFetched - fit.duplicates).toBe(fit.serviced);
    expect(fit.duplicates).toBeGreaterThan(fit.serviced * 10);
    expect(fit.batches).toBeLessThan(fit.serviced);
    // the tree prefetcher migrates more pages than were faulted
    expect(fit.toVramPages).toBe((6 * 1024 * 1024) / 4096);
    expect(fit.toVramPages).toBeGreaterThan(fit.serviced);
    expect(fit.evictions).toBe(0);
    // 24 MiB through an 8 MiB pool: 12 chunks allocated, 4 fit, the 3 of phase 1 go too
    expect(over.toVramPages).toBe((24 * 1024 * 1024) / 4096);
    expect(over.evictions).toBe(11);
    expect(over.toRamPages).toBeGreaterThan(0);
    expect(r.metrics.thrashingPins).toBeGreaterThan(0);
    expect(r.metrics.thrashingAperture).toBe('sys');
    expect(r.lines[2]).toContain('maps it remotely from sys');
    expect(r.metrics.violations).toBe(0);
    expect(r.lines.at(-1)).toContain('COHERENT');
  });

  it('without the prefetcher the same kernel needs more faults and batches', async () => {
    const on = await run();
    const off = await run({ prefetch: false });
    expect(off.metrics.fit.serviced).toBeGreaterThan(2 * on.metrics.fit.serviced);
    expect(off.metrics.fit.batches).toBeGreaterThan(on.metrics.fit.batches);
    expect(off.metrics.fit.simNs).toBeGreaterThan(on.metrics.fit.simNs);
  });
});
