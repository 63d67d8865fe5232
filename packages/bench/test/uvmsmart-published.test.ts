import { describe, expect, it } from 'vitest';
import { type Metrics, runExperiment } from '../src/experiment.ts';
import { runUvmSmartCell } from '../src/uvmsmart-cell.ts';

// Ganguly et al., ISCA'19 (abstract): TBNe + TBNp is on average 18.5 % faster than LRU 2 MB and
// 93 % faster than LRU 4 KB. Asserted where this model reproduces the ordering; the rest is in
// docs/calibration.md ("Against the published claims").
describe("UVMSmart's published orderings on this model", () => {
  it("at 110 % of 8 MiB, tree-based pre-eviction beats LRU 2M under the tree prefetcher (ISCA'19: 18.5 % on average)", async () => {
    // 8.8 MiB of stencil over 8 MiB of VRAM; the same narrow wave (docs/calibration.md, "Against
    // the published claims": 1.89× here, 1.12× at 125 %, a tie at 150 %).
    const at110 = (eviction: string): Promise<Metrics> =>
      runExperiment({
        workload: {
          generator: 'stencil',
          params: { footprintBytes: 2253 * 4096, iterations: 3, numSMs: 20, warpsPerSM: 16 },
        },
        granule: 'uvmsmart-tree',
        eviction,
        vramBytes: 8 << 20,
      });
    const tbne = await at110('uvmsmart-tree');
    const lru2m = await at110('uvmsmart-lru-2m');
    for (const m of [tbne, lru2m]) expect(m.oracleViolations).toBe(0);
    expect(tbne.simTimeNs * 1.05).toBeLessThan(lru2m.simTimeNs);
    expect(tbne.bytesD2h).toBeLessThan(lru2m.bytesD2h);
  });

  it("TBNe + TBNp beats UVMSmart's LRU 4K baseline (tree prefetch until the first eviction, none after; ISCA'19: 1.93× on average)", async () => {
    // the released logs' EvictionPolicies/1_0_0_110 (baseline) against Combo/1_1_1_110 (proposal)
    const stencil = { generator: 'stencil', params: { iterations: 3 }, over: 1.1, vramMiB: 8 } as const;
    const baseline = await runUvmSmartCell({
      ...stencil,
      prefetcher: 'tree-neighbourhood',
      eviction: 'lru-4k',
      onceFull: 'on-demand',
    });
    const proposal = await runUvmSmartCell({
      ...stencil,
      prefetcher: 'tree-neighbourhood',
      eviction: 'tree-neighbourhood',
    });
    for (const r of [baseline, proposal]) {
      expect(r.violations).toBe(0);
      expect(r.failed).toBe(0);
      expect(r.evicted).toBeGreaterThan(0);
    }
    // measured 2.5×; with the prefetcher kept on after the first eviction LRU 4K would win (0.84×)
    expect(baseline.kernelNs).toBeGreaterThan(proposal.kernelNs * 1.5);
    expect(baseline.faults).toBeGreaterThan(proposal.faults);
  });

  it('at 125 % and 150 %, TBNe refetches no more than LRU 2M (its tree is the VA block, as UVMSmart’s)', async () => {
    // With the tree on the physical chunk (pages of several VA blocks after partial evictions)
    // TBNe took 25,008 vs 14,736 far faults at 125 % and 31,952 vs 15,600 at 150 %.
    for (const over of [1.25, 1.5]) {
      const cell = (eviction: 'tree-neighbourhood' | 'lru-2m') =>
        runUvmSmartCell({
          generator: 'stencil',
          params: { iterations: 3 },
          over,
          vramMiB: 8,
          prefetcher: 'tree-neighbourhood',
          eviction,
        });
      const tbne = await cell('tree-neighbourhood');
      const lru2m = await cell('lru-2m');
      for (const r of [tbne, lru2m]) expect(r.violations).toBe(0);
      expect(tbne.faults, `${over}`).toBeLessThanOrEqual(lru2m.faults);
      expect(tbne.kernelNs, `${over}`).toBeLessThanOrEqual(lru2m.kernelNs * 1.02);
      expect(tbne.d2h, `${over}`).toBeLessThanOrEqual(lru2m.d2h);
    }
  }, 30_000);
});
