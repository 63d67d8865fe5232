import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { run } from '../src/run.ts';

describe('minimal-mirror example', () => {
  it('mirrors, zaps on munmap/mprotect, cancels illegal GPU accesses, and stays coherent', async () => {
    const r = await run();
    const m = r.metrics;
    expect(m.dataOk).toBe(true);
    expect(r.lines[1]).toContain("GPU saw the CPU's data and the CPU sees the GPU's writes: yes");
    expect(r.lines[2]).toContain('device PTE of an unmapped page: gone');
    expect(r.lines[3]).toBe('oracle after those invalidations: 0 violations');
    // kernel 2: the write to the PROT_READ page (-EPERM) and the read of the munmapped page (-EFAULT)
    expect(r.lines[4]).toContain('read of a PROT_READ page → 1');
    expect(m.cancels).toBe(2);
    expect(m.failedWarps).toBe(2);
    expect(m.zaps).toBe(10); // munmap, mprotect, and the racing thread's 8 mprotects
    expect(m.tlbInvalidates).toBeGreaterThanOrEqual(m.zaps);
    expect(m.hmmRetries).toBeGreaterThan(0); // the race hit the read_retry window under this seed
    expect(m.checkedInvalidations).toBe(10);
    expect(m.violations).toBe(0);
    expect(m.staleTlb).toBe(0);
    expect(r.lines.at(-2)).toContain('COHERENT');
    expect(m.simNs).toBeGreaterThan(100_000);
  });

  it('is coherent under every interleaving of the racing CPU thread tried, and deterministic per seed', async () => {
    for (let seed = 1; seed <= 6; seed++) {
      const r = await run(seed);
      expect(r.metrics.violations).toBe(0);
      expect(r.metrics.staleTlb).toBe(0);
      expect(r.metrics.failedWarps).toBe(2);
    }
    expect((await run(2)).lines).toEqual((await run(2)).lines);
  });
});

describe('minimal-mirror size', () => {
  it('the driver stays well under 150 lines, and the README says how many', () => {
    const lines = readFileSync(new URL('../src/mirror.ts', import.meta.url), 'utf8').split('\n').length - 1;
    expect(lines).toBeLessThan(150);
    expect(readFileSync(new URL('../README.md', import.meta.url), 'utf8')).toContain(`**${lines} lines**`);
  });
});
