import { describe, expect, it } from 'vitest';
import { run, uvmSizes } from '../src/run.ts';

const M2 = 0x200000;

// The example's scenario at a half (4 MiB pool, 3 and 12 MiB streams) and a quarter of its size:
// the same mechanisms in a fraction of the time (`pnpm start` runs it at full size).
describe('uvm-style example', () => {
  it('batches and coalesces faults, prefetches, evicts under oversubscription, pins a thrashing page', async () => {
    const z = uvmSizes(0.5);
    const r = await run({ scale: 0.5 });
    const { fit, oversubscribed: over } = r.metrics;
    // batching: 32 warp accesses per page arrive as duplicates; each batch holds unique pages
    expect(fit.faultsFetched).toBe(fit.faultsRaised);
    expect(fit.faultsFetched - fit.duplicates).toBe(fit.serviced);
    expect(fit.duplicates).toBeGreaterThan(fit.serviced * 10);
    expect(fit.batches).toBeLessThan(fit.serviced);
    // the tree prefetcher migrates more pages than were faulted
    expect(fit.toVramPages).toBe(z.fit / 4096);
    expect(fit.toVramPages).toBeGreaterThan(fit.serviced);
    expect(fit.evictions).toBe(0);
    // three times the pool: every chunk allocated beyond the pool's evicts one (LRU by allocation),
    // the chunks of phase 1 included
    expect(over.toVramPages).toBe(z.over / 4096);
    expect(over.evictions).toBe(Math.ceil((z.fit + z.over) / M2) - z.pool / M2);
    expect(over.toRamPages).toBeGreaterThan(0);
    expect(r.metrics.thrashingPins).toBeGreaterThan(0);
    expect(r.metrics.thrashingAperture).toBe('sys');
    expect(r.lines[2]).toContain('maps it remotely from sys');
    expect(r.metrics.violations).toBe(0);
    expect(r.lines.at(-1)).toContain('COHERENT');
  });

  it('without the prefetcher the same kernel needs more faults and batches', async () => {
    const on = await run({ scale: 0.25 });
    const off = await run({ scale: 0.25, prefetch: false });
    expect(off.metrics.fit.serviced).toBeGreaterThan(2 * on.metrics.fit.serviced);
    expect(off.metrics.fit.batches).toBeGreaterThan(on.metrics.fit.batches);
    expect(off.metrics.fit.simNs).toBeGreaterThan(on.metrics.fit.simNs);
  });
});
