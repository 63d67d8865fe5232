import { describe, expect, it } from 'vitest';
import { type Metrics, runExperiment } from '../src/experiment.ts';
import { runUvmSmartCell } from '../src/uvmsmart-cell.ts';

// Ganguly et al., ISCA'19 (abstract): TBNe + TBNp is on average 18.5 % faster than LRU 2 MB and
// 93 % faster than LRU 4 KB. Asserted where this model reproduces the ordering; the rest is in
// docs/calibration.md ("Against the published claims").
describe("UVMSmart's published orderings on this model", () => {
  it("at 110 % of 8 MiB, tree-based pre-eviction beats LRU 2M under the tree prefetcher (ISCA'19: 18.5 % on average)", async () => {
    // 8.8 MiB of stencil over 8 MiB of VRAM; the same narrow wave. At 125 % and 150 %, and at
    // 110 % of 4 MiB, this model does not reproduce the ordering (docs/calibration.md).
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
});
