import { Errno } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import { run } from '../src/run.ts';

describe('multi-process-vm example', () => {
  it("shares VRAM between two processes' VMs, evicts across them, binds a BO beside the mirror, stays coherent", async () => {
    const r = await run();
    const m = r.metrics;
    expect(m.aPagesInVramBefore).toBe(3 * 512);
    expect(m.foreignEvictedPages).toBeGreaterThan(0);
    expect(m.aPagesInVramAfter).toBeLessThan(m.aPagesInVramBefore);
    expect(m.boValueOk).toBe(true);
    expect(m.dataOk).toBe(true);
    expect(m.busyUnbind).toBe(-Errno.EBUSY);
    expect(m.separatePageTables).toBe(true);
    expect(m.violations).toBe(0);
    expect(r.lines.at(-1)).toContain('COHERENT');
  });
});
