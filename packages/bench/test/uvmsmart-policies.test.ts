import { ArgumentError } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import { policyOf } from '../src/analysis.ts';
import { type ExperimentSpec, type Metrics, resolveSpec, runExperiment } from '../src/experiment.ts';
import { sweepFromFlags, UsageError } from '../src/flags.ts';
import { formatTable, toCsv } from '../src/format.ts';
import { EVICTION_POLICIES, evictionPolicy, granuleLabel } from '../src/policies.ts';
import { expandSweep, type SweepSpec } from '../src/sweep.ts';

/** An oversubscribed stencil: 8 MiB of data over 4 MiB of VRAM, so every policy evicts. */
const oversub = (extra: Partial<ExperimentSpec> = {}): ExperimentSpec => ({
  workload: { generator: 'stencil', params: { footprintBytes: 8 << 20, iterations: 2, numSMs: 8 } },
  granule: 'uvmsmart-tree',
  vramBytes: 4 << 20,
  ...extra,
});

function withoutWall(m: Metrics): Omit<Metrics, 'wallMs'> {
  const { wallMs: _w, ...rest } = m;
  return rest;
}

describe('eviction policies in experiments', () => {
  it('every named policy evicts under oversubscription without an oracle finding', async () => {
    for (const eviction of Object.keys(EVICTION_POLICIES)) {
      const m = await runExperiment(oversub({ eviction }));
      expect(m.evictions, eviction).toBeGreaterThan(0);
      expect(m.bytesD2h, eviction).toBeGreaterThan(0);
      expect(m.oracleViolations, eviction).toBe(0);
      expect(m.failedWarps, eviction).toBe(0);
    }
  }, 30_000);

  it("the default is UVM's lru-chunk: naming it changes nothing", async () => {
    const a = await runExperiment(oversub());
    const b = await runExperiment(oversub({ eviction: 'lru-chunk' }));
    expect(withoutWall(b)).toEqual(withoutWall(a));
  });

  it('the policy reaches the pool: a 4 KiB eviction unit moves fewer bytes per eviction than 2 MiB chunks', async () => {
    const chunk = await runExperiment(oversub({ eviction: 'uvmsmart-lru-2m' }));
    const page = await runExperiment(oversub({ eviction: 'uvmsmart-random-4k' }));
    expect(page.bytesD2h / page.evictions).toBeLessThan(chunk.bytesD2h / chunk.evictions);
  });

  it('rejects an unknown name and an eviction without device memory, naming the field', () => {
    expect(() => resolveSpec(oversub({ eviction: 'nope' }))).toThrow(
      /resolveSpec: argument 'eviction' must be one of lru-chunk, uvmsmart-lru-4k/,
    );
    expect(() => resolveSpec(oversub({ eviction: 'uvmsmart-lru-4k', placement: 'sysmem' }))).toThrow(
      /eviction.*placement 'vram'/,
    );
    expect(() => resolveSpec(oversub({ eviction: 'lru-chunk', placement: 'sysmem' }))).not.toThrow();
    expect(() => evictionPolicy('x')).toThrow(ArgumentError);
  });
});

describe('eviction policies in sweeps', () => {
  const sweep: SweepSpec = {
    workloads: [oversub().workload],
    granules: ['uvmsmart-tree', 'uvmsmart-seq-64k'],
    notifiers: ['window-512M'],
    evictions: ['lru-chunk', 'uvmsmart-lru-4k', 'lru-chunk'],
    vramBytes: 4 << 20,
  };

  it('are a dimension of the cross product (granule, then eviction), repeats once', () => {
    const cells = expandSweep(sweep).map((s) => `${s.granule}|${s.eviction}`);
    expect(cells).toEqual([
      'uvmsmart-tree|lru-chunk',
      'uvmsmart-tree|uvmsmart-lru-4k',
      'uvmsmart-seq-64k|lru-chunk',
      'uvmsmart-seq-64k|uvmsmart-lru-4k',
    ]);
    expect(() => expandSweep({ ...sweep, evictions: [] })).toThrow(/'evictions' must not be empty/);
    // no evictions list: cells carry no eviction field (results of older sweeps are unchanged)
    expect(
      expandSweep({ workloads: sweep.workloads, granules: sweep.granules, notifiers: sweep.notifiers }).every(
        (s) => s.eviction === undefined,
      ),
    ).toBe(true);
  });

  it('label a non-default eviction as granule+eviction in keys, tables and CSV', () => {
    const spec = resolveSpec(oversub({ eviction: 'uvmsmart-lru-4k' }));
    expect(granuleLabel(spec)).toBe('uvmsmart-tree+uvmsmart-lru-4k');
    expect(policyOf(spec)).toBe('uvmsmart-tree+uvmsmart-lru-4k/window-512M');
    const plain = resolveSpec(oversub());
    expect(policyOf(plain)).toBe('uvmsmart-tree/window-512M');
    const metrics = {} as Metrics;
    const table = formatTable({
      cells: [{ index: 0, spec, metrics: { ...metrics, simTimeNs: 0 } as Metrics }],
    });
    expect(table).toContain('uvmsmart-tree+uvmsmart-lru-4k');
    const csv = toCsv({ cells: [{ index: 0, spec, metrics }] });
    expect(csv.split('\n')[0]).toContain('notifier,eviction,costs');
    expect(csv.split('\n')[1]).toContain('window-512M,uvmsmart-lru-4k,default');
  });

  it('--evictions is checked by name, and needs device memory', () => {
    expect(sweepFromFlags({ evictions: 'uvmsmart-lru-4k,uvmsmart-tree' }).evictions).toEqual([
      'uvmsmart-lru-4k',
      'uvmsmart-tree',
    ]);
    expect(() => sweepFromFlags({ evictions: 'lru-9' })).toThrow(UsageError);
    expect(() => sweepFromFlags({ evictions: 'lru-9' })).toThrow(/--evictions: unknown value 'lru-9'/);
    expect(() => sweepFromFlags({ evictions: 'uvmsmart-lru-4k', placement: 'sysmem' })).toThrow(
      /--evictions applies to device memory only/,
    );
  });
});

describe("placement 'counters': delayed migration by access counters", () => {
  const stream = (extra: Partial<ExperimentSpec>): ExperimentSpec => ({
    workload: { generator: 'streaming', params: { footprintBytes: 4 << 20, iterations: 4, numSMs: 8 } },
    granule: 'uvmsmart-tree',
    placement: 'counters',
    ...extra,
  });

  it('maps remotely first and migrates a region once it is hot; a threshold never reached migrates nothing', async () => {
    const hot = await runExperiment(stream({ accessCounterThreshold: 64 }));
    const cold = await runExperiment(stream({ accessCounterThreshold: 65535 }));
    const sys = await runExperiment(stream({ placement: 'sysmem' }));
    for (const m of [hot, cold, sys]) {
      expect(m.oracleViolations).toBe(0);
      expect(m.failedWarps).toBe(0);
    }
    expect(hot.bytesH2d).toBeGreaterThan(0);
    expect(cold.bytesH2d).toBe(0);
    expect(sys.bytesH2d).toBe(0);
    // a cold threshold behaves as system-memory placement
    expect(cold.farFaults).toBe(sys.farFaults);
  });

  it('rejects a threshold without counters placement, or out of range, naming the field and flag', () => {
    expect(() => resolveSpec(stream({ placement: 'vram', accessCounterThreshold: 8 }))).toThrow(
      /accessCounterThreshold' needs placement 'counters'/,
    );
    expect(() => resolveSpec(stream({ accessCounterThreshold: 0 }))).toThrow(/\[1, 65535\]/);
    expect(resolveSpec(stream({})).accessCounterThreshold).toBe(256);
    expect(resolveSpec(stream({ placement: 'vram' })).accessCounterThreshold).toBeUndefined();
    expect(() => sweepFromFlags({ accessCounterThreshold: 8 })).toThrow(
      /--access-counter-threshold needs --placement counters/,
    );
    expect(sweepFromFlags({ placement: 'counters', accessCounterThreshold: 8 }).accessCounterThreshold).toBe(
      8,
    );
  });
});

describe('UVMSmart oversubscription: the qualitative result on this model', () => {
  // stencil at 150 % of 4 MiB of VRAM, UVMSmart's narrow wave (20 SMs × 16 warps)
  const cell = (granule: string, eviction: string): Promise<Metrics> =>
    runExperiment({
      workload: {
        generator: 'stencil',
        params: { footprintBytes: 6 << 20, iterations: 3, numSMs: 20, warpsPerSM: 16 },
      },
      granule,
      eviction,
      vramBytes: 4 << 20,
    });

  it('the prefetcher decides most (tree < sequential-local 64K < on-demand), and random 4K eviction breaks the blocks the tree builds', async () => {
    const tree = await cell('uvmsmart-tree', 'uvmsmart-lru-2m');
    const seq = await cell('uvmsmart-seq-64k', 'uvmsmart-lru-2m');
    const demand = await cell('uvmsmart-on-demand', 'uvmsmart-lru-2m');
    const treeRandom = await cell('uvmsmart-tree', 'uvmsmart-random-4k');
    for (const m of [tree, seq, demand, treeRandom]) expect(m.oracleViolations).toBe(0);
    expect(tree.simTimeNs * 2).toBeLessThan(seq.simTimeNs);
    expect(seq.simTimeNs).toBeLessThan(demand.simTimeNs);
    expect(treeRandom.simTimeNs).toBeGreaterThan(tree.simTimeNs * 1.4);
    expect(treeRandom.farFaults).toBeGreaterThan(tree.farFaults);
  });
});
