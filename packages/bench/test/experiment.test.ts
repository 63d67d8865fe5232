import { ArgumentError } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import { type ExperimentSpec, type Metrics, resolveSpec, runExperiment } from '../src/experiment.ts';
import { granulePolicy, notifierPolicy } from '../src/policies.ts';

const small = (extra: Partial<ExperimentSpec> = {}): ExperimentSpec => ({
  workload: { generator: 'streaming', params: { footprintBytes: 1 << 20, numSMs: 8 } },
  ...extra,
});

function withoutWall(m: Metrics): Omit<Metrics, 'wallMs'> {
  const { wallMs: _w, ...rest } = m;
  return rest;
}

describe('runExperiment', () => {
  it('is deterministic: the same spec gives identical metrics', async () => {
    const spec = small({
      granule: 'uvm-tree',
      workload: {
        generator: 'stencil',
        params: { footprintBytes: 1 << 20, iterations: 2, numSMs: 8 },
        cpu: 'pingpong',
      },
    });
    const a = await runExperiment(spec);
    const b = await runExperiment(spec);
    expect(withoutWall(a)).toEqual(withoutWall(b));
    expect(a.oracleViolations).toBe(0);
    expect(a.failedWarps).toBe(0);
  });

  it('measures the streaming workload: every page migrated once, no over-fetch', async () => {
    const m = await runExperiment(small({ granule: '4k' }));
    expect(m.bytesAccessed).toBeGreaterThanOrEqual(1 << 20);
    expect(m.bytesH2d).toBe(m.bytesAccessed);
    expect(m.bytesOverFetched).toBe(0);
    expect(m.farFaults).toBeGreaterThan(m.faultsServiced / 2);
    expect(m.faultBatches).toBeGreaterThan(0);
    expect(m.kernelTimeNs).toBeLessThanOrEqual(m.simTimeNs);
    expect(m.oracleViolations).toBe(0);
  });

  it('counts over-fetch: 2 MiB granules on sparse random updates fetch pages nobody touches', async () => {
    const workload = {
      generator: 'randomAccess' as const,
      params: { footprintBytes: 4 << 20, updates: 64, numSMs: 4 },
    };
    const big = await runExperiment({ workload, granule: 'xe' });
    const demand = await runExperiment({ workload, granule: '4k' });
    expect(big.bytesOverFetched).toBeGreaterThan(0);
    expect(demand.bytesOverFetched).toBe(0);
    expect(big.bytesOverFetched + big.bytesAccessed).toBeLessThanOrEqual(big.bytesH2d);
    expect(big.farFaults).toBeLessThan(demand.farFaults);
  });

  it('larger granules take fewer fault batches than 4K demand paging on a stream', async () => {
    const d = await runExperiment(small({ granule: '4k' }));
    const x = await runExperiment(small({ granule: 'xe' }));
    expect(x.faultBatches).toBeLessThan(d.faultBatches);
    expect(x.simTimeNs).toBeLessThan(d.simTimeNs);
  });

  it('cost overrides change simulated time and nothing else', async () => {
    const a = await runExperiment(small({ granule: '4k' }));
    const b = await runExperiment(small({ granule: '4k', costs: { faultBatchFixedNs: 0 } }));
    expect(b.simTimeNs).toBeLessThan(a.simTimeNs);
    expect(b.bytesH2d).toBe(a.bytesH2d);
  });

  it('oversubscription evicts (VRAM smaller than the footprint)', async () => {
    const m = await runExperiment({
      workload: { generator: 'stencil', params: { footprintBytes: 8 << 20, iterations: 2, numSMs: 8 } },
      granule: 'xe',
      vramBytes: 4 << 20,
    });
    expect(m.evictions).toBeGreaterThan(0);
    expect(m.bytesD2h).toBeGreaterThan(0);
    expect(m.oracleViolations).toBe(0);
  });

  it('a munmap storm racing the kernel invalidates; notifier granularity changes what reaches the driver', async () => {
    const workload = {
      generator: 'stencil' as const,
      params: { footprintBytes: 1 << 20, iterations: 1, numSMs: 8 },
      cpu: 'storm' as const,
    };
    const perRange = await runExperiment({ workload, granule: '4k', notifier: 'per-range' });
    const window = await runExperiment({ workload, granule: '4k', notifier: 'window-512M' });
    for (const m of [perRange, window]) {
      expect(m.invalidations).toBeGreaterThan(0);
      expect(m.oracleViolations).toBe(0);
    }
    // one window notifier sees every unmap, also those that hit none of its ranges
    expect(window.falseInvalidations).toBeGreaterThan(0);
    expect(perRange.falseInvalidations).toBe(0);
  });

  it('pageTouch touches every page once', async () => {
    const m = await runExperiment({
      workload: { generator: 'pageTouch', params: { footprintBytes: 1 << 20, numSMs: 4 } },
      granule: '4k',
    });
    expect(m.accesses).toBe(256);
    expect(m.faultsServiced).toBe(256);
    expect(m.bytesH2d).toBe(1 << 20);
  });

  it('rejects bad specs with ArgumentError before running', async () => {
    await expect(runExperiment(small({ granule: 'nope' }))).rejects.toBeInstanceOf(ArgumentError);
    await expect(runExperiment(small({ notifier: 'nope' }))).rejects.toBeInstanceOf(ArgumentError);
    await expect(runExperiment(small({ vramBytes: 3 << 20 }))).rejects.toBeInstanceOf(ArgumentError);
    await expect(runExperiment(small({ costs: { noSuchCost: 1 } as never }))).rejects.toBeInstanceOf(
      ArgumentError,
    );
    await expect(runExperiment({ workload: { generator: 'nope' as never } })).rejects.toBeInstanceOf(
      ArgumentError,
    );
    expect(() => granulePolicy('x')).toThrow(ArgumentError);
    expect(() => notifierPolicy('x')).toThrow(ArgumentError);
  });

  it('fills defaults', () => {
    const r = resolveSpec(small());
    expect(r).toMatchObject({
      granule: 'xe',
      notifier: 'window-512M',
      seed: 1,
      devices: 1,
      placement: 'vram',
      replay: 'batch-flush',
      costLabel: 'default',
    });
    expect(r.workload.cpu).toBe('init');
  });
});
