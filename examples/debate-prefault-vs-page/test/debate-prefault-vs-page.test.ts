import { describe, expect, it } from 'vitest';
import { DRIVERS, run } from '../src/run.ts';

describe('debate-prefault-vs-page', () => {
  it('range-wide invalidation loses pages the CPU never touched; page-by-page loses only what it must', async () => {
    const r = await run({ bytes: 4 << 20, rounds: 2, opsPerRound: 6, storms: ['madvise'] });
    expect(r.rows.map((x) => `${x.cpuPages}/${x.storm}/${x.driver}`)).toEqual([
      ...DRIVERS.map((d) => `thp/madvise/${d}`),
      ...DRIVERS.map((d) => `4k/madvise/${d}`),
    ]);
    for (const x of r.rows) {
      expect(x.violations).toBe(0);
      expect(x.dataOk).toBe(true);
      expect(x.neededZaps).toBeGreaterThan(0);
    }
    const row = (cpu: string, d: string) => r.rows.find((x) => x.cpuPages === cpu && x.driver === d)!;
    // 4K CPU pages: only the range driver's invalidations reach past what the CPU changed
    expect(row('4k', 'page-4K').falseZaps).toBe(0);
    expect(row('4k', 'range-2M').falseZaps).toBeGreaterThan(0);
    expect(row('4k', 'range-2M').refaults).toBeGreaterThan(row('4k', 'page-4K').refaults);
    // THP: large device PTEs need 2M CPU folios; with them the steady pass misses the TLB less
    expect(row('thp', 'range-2M').bytesPerPte).toBe(2 << 20);
    expect(row('thp', 'page-4K').bytesPerPte).toBe(4096);
    expect(row('thp', 'range-2M').tlbMissesSteady).toBeLessThan(row('thp', 'page-4K').tlbMissesSteady);
    expect(row('thp', 'range-2M').steadyNs).toBeLessThan(row('thp', 'page-4K').steadyNs);
    // the table
    expect(r.lines.filter((l) => /^\| (thp|4k) \|/.test(l)).length).toBe(6);
  });
});
