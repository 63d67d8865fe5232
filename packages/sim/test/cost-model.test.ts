import { describe, expect, it } from 'vitest';
import { ArgumentError, COST_PARAMS, createCostModel, DEFAULT_COSTS, transferTimeNs } from '../src/index.ts';

describe('cost model', () => {
  it('has the nova-core TLB flush and BAR0 PTE write defaults', () => {
    expect(DEFAULT_COSTS.tlbInvalidateNs).toBe(1400);
    expect(DEFAULT_COSTS.pteWriteBar0Ns).toBe(1000);
  });

  it('documents every parameter with a source and a range containing the default', () => {
    for (const [name, info] of Object.entries(COST_PARAMS)) {
      expect(info.source.length, name).toBeGreaterThan(5);
      expect(info.value, name).toBeGreaterThanOrEqual(info.range[0]);
      expect(info.value, name).toBeLessThanOrEqual(info.range[1]);
    }
  });

  it('applies overrides and rejects unknown names and bad values', () => {
    expect(createCostModel({ tlbInvalidateNs: 5000 }).tlbInvalidateNs).toBe(5000);
    expect(() => createCostModel({ nope: 1 } as never)).toThrow(ArgumentError);
    expect(() => createCostModel({ tlbInvalidateNs: -1 })).toThrow(/overrides.tlbInvalidateNs/);
    expect(() => createCostModel({ tlbInvalidateNs: Number.NaN })).toThrow(ArgumentError);
  });

  it('reproduces the UVMSmart transfer curve and Allen & Ge memcpy times (4K ≈ 2 µs, 64K ≈ 6 µs, 1M ≈ 80–90 µs)', () => {
    expect(transferTimeNs(DEFAULT_COSTS, 4096)).toBe(2000); // curve gives 1.8 µs, floored at copyFixedNs
    expect(transferTimeNs(DEFAULT_COSTS, 65536) / 1000).toBeCloseTo(5.9, 0);
    const oneMiB = transferTimeNs(DEFAULT_COSTS, 1 << 20) / 1000;
    expect(oneMiB).toBeGreaterThan(80);
    expect(oneMiB).toBeLessThan(90);
  });
});
