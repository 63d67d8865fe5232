import { describe, expect, it } from 'vitest';
import { run } from '../src/run.ts';

describe('oversubscription example', () => {
  it('streams 12 MiB through 4 MiB of VRAM, evicts and refetches, and every byte survives', async () => {
    const r = await run();
    const m = r.metrics;
    expect(m.footprintPages).toBe(3072);
    expect(m.poolPages).toBe(1024);
    // 6 chunks per pass through a 2-chunk pool: 4 evictions in pass 1, 6 in pass 2
    expect(m.evictions).toBe(10);
    expect(m.refetchedPages).toBe(3072);
    expect(m.toVramPages).toBe(2 * 3072);
    // evicted chunks plus the 2 chunks the CPU check faults back
    expect(m.toRamPages).toBe(10 * 512 + 2 * 512);
    expect(m.gpuReadMismatches).toBe(0);
    expect(m.byteMismatches).toBe(0);
    expect(r.lines[3]).toContain('12582912 bytes compared, 0 differ');
    expect(m.violations).toBe(0);
    expect(r.lines.at(-1)).toContain('COHERENT');
  });

  it('with a pool as large as the working set nothing is evicted', async () => {
    const r = await run({ footprintMiB: 4, poolMiB: 4 });
    expect(r.metrics.evictions).toBe(0);
    expect(r.metrics.refetchedPages).toBe(0);
    expect(r.metrics.byteMismatches).toBe(0);
  });
});
