import { ArgumentError } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import { policyOf } from '../src/analysis.ts';
import { type ExperimentSpec, type Metrics, resolveSpec, runExperiment } from '../src/experiment.ts';
import { sweepFromFlags, UsageError } from '../src/flags.ts';
import { formatTable, toCsv } from '../src/format.ts';
import { granuleLabel } from '../src/policies.ts';
import { sweepSchema } from '../src/schema.ts';
import { expandSweep, type SweepSpec } from '../src/sweep.ts';

// UVMSmart's -hwprefetch_oversub (gpu-sim.cc update_hardware_prefetcher_oversubscribed): the
// prefetcher is replaced once memory is full. In hmmkit: ExperimentSpec.granuleOnceFull,
// SweepSpec.granulesOnceFull, --granules-once-full.

/** A stencil of `mib` MiB over 4 MiB of VRAM, UVMSmart's narrow wave. */
const stencil = (mib: number, extra: Partial<ExperimentSpec> = {}): ExperimentSpec => ({
  workload: {
    generator: 'stencil',
    params: { footprintBytes: mib << 20, iterations: 2, numSMs: 20, warpsPerSM: 16 },
  },
  granule: 'uvmsmart-tree',
  eviction: 'uvmsmart-lru-4k',
  vramBytes: 4 << 20,
  ...extra,
});

function withoutWall(m: Metrics): Omit<Metrics, 'wallMs'> {
  const { wallMs: _w, ...rest } = m;
  return rest;
}

describe('granuleOnceFull in experiments', () => {
  it('switches the prefetcher at the first eviction: no eviction, no change; oversubscribed, the baseline of UVMSmart loses its prefetcher', async () => {
    // fits (2 MiB of data in 4 MiB): never full, so the switch never happens
    const fits = await runExperiment(stencil(2));
    const fitsSwitch = await runExperiment(stencil(2, { granuleOnceFull: 'uvmsmart-on-demand' }));
    expect(fits.evictions).toBe(0);
    expect(withoutWall(fitsSwitch)).toEqual(withoutWall(fits));
    // 6 MiB over 4 MiB: after the first eviction only faulted pages migrate
    const kept = await runExperiment(stencil(6));
    const switched = await runExperiment(stencil(6, { granuleOnceFull: 'uvmsmart-on-demand' }));
    for (const m of [kept, switched]) {
      expect(m.oracleViolations).toBe(0);
      expect(m.failedWarps).toBe(0);
      expect(m.evictions).toBeGreaterThan(0);
    }
    expect(switched.farFaults).toBeGreaterThan(kept.farFaults * 2);
    expect(switched.simTimeNs).toBeGreaterThan(kept.simTimeNs);
  }, 30_000);

  it('rejects an unknown name and a switch without device memory, naming the field', () => {
    expect(() => resolveSpec(stencil(6, { granuleOnceFull: 'nope' }))).toThrow(ArgumentError);
    expect(() => resolveSpec(stencil(6, { granuleOnceFull: 'nope' }))).toThrow(
      /resolveSpec: argument 'granuleOnceFull' must be one of xe, /,
    );
    expect(() =>
      resolveSpec(
        stencil(6, { granuleOnceFull: 'uvmsmart-on-demand', eviction: 'lru-chunk', placement: 'sysmem' }),
      ),
    ).toThrow(/'granuleOnceFull' switches at the device pool's first eviction: it needs placement 'vram'/);
    // naming the granule itself is no switch
    expect(resolveSpec(stencil(6, { granuleOnceFull: 'uvmsmart-tree' })).granuleOnceFull).toBeUndefined();
    expect(resolveSpec(stencil(6)).granuleOnceFull).toBeUndefined();
  });
});

describe('granulesOnceFull in sweeps', () => {
  const sweep: SweepSpec = {
    workloads: [stencil(6).workload],
    granules: ['uvmsmart-tree', 'uvmsmart-on-demand'],
    notifiers: ['window-512M'],
    evictions: ['uvmsmart-lru-4k', 'uvmsmart-tree'],
    granulesOnceFull: ['same', 'uvmsmart-on-demand', 'same'],
    vramBytes: 4 << 20,
  };

  it('is a dimension of the cross product (granule, once full, eviction); repeats and no-op switches once', () => {
    const cells = expandSweep(sweep).map((s) => `${s.granule}|${s.granuleOnceFull}|${s.eviction}`);
    expect(cells).toEqual([
      'uvmsmart-tree|undefined|uvmsmart-lru-4k',
      'uvmsmart-tree|undefined|uvmsmart-tree',
      'uvmsmart-tree|uvmsmart-on-demand|uvmsmart-lru-4k',
      'uvmsmart-tree|uvmsmart-on-demand|uvmsmart-tree',
      // on-demand → on-demand is no switch: one cell per eviction
      'uvmsmart-on-demand|undefined|uvmsmart-lru-4k',
      'uvmsmart-on-demand|undefined|uvmsmart-tree',
    ]);
    expect(() => expandSweep({ ...sweep, granulesOnceFull: [] })).toThrow(
      /'granulesOnceFull' must not be empty/,
    );
    expect(() => expandSweep({ ...sweep, granulesOnceFull: ['tree'] })).toThrow(
      /'granuleOnceFull' must be one of/,
    );
    const { granulesOnceFull: _g, ...plain } = sweep;
    expect(expandSweep(plain).every((s) => s.granuleOnceFull === undefined)).toBe(true);
  });

  it('labels a switch as granule>granuleOnceFull(+eviction) in keys, tables and CSV', () => {
    const spec = resolveSpec(stencil(6, { granuleOnceFull: 'uvmsmart-on-demand' }));
    expect(granuleLabel(spec)).toBe('uvmsmart-tree>uvmsmart-on-demand+uvmsmart-lru-4k');
    expect(policyOf(spec)).toBe('uvmsmart-tree>uvmsmart-on-demand+uvmsmart-lru-4k/window-512M');
    expect(
      granuleLabel(resolveSpec(stencil(6, { granuleOnceFull: 'uvmsmart-on-demand', eviction: 'lru-chunk' }))),
    ).toBe('uvmsmart-tree>uvmsmart-on-demand');
    expect(policyOf(resolveSpec(stencil(6)))).toBe('uvmsmart-tree+uvmsmart-lru-4k/window-512M');
    const metrics = { simTimeNs: 0 } as Metrics;
    expect(formatTable({ cells: [{ index: 0, spec, metrics }] })).toContain(
      'uvmsmart-tree>uvmsmart-on-demand+uvmsmart-lru-4k',
    );
    const csv = toCsv({ cells: [{ index: 0, spec, metrics }] }).split('\n');
    expect(csv[0]!.split(',')).toContain('granuleOnceFull');
    const col = csv[0]!.split(',').indexOf('granuleOnceFull');
    expect(csv[1]!.split(',')[col]).toBe('uvmsmart-on-demand');
  });

  it('--granules-once-full is checked by name, needs device memory, and is in the schema', () => {
    expect(sweepFromFlags({ granulesOnceFull: 'same,uvmsmart-on-demand' }).granulesOnceFull).toEqual([
      'same',
      'uvmsmart-on-demand',
    ]);
    expect(() => sweepFromFlags({ granulesOnceFull: 'tree' })).toThrow(UsageError);
    expect(() => sweepFromFlags({ granulesOnceFull: 'tree' })).toThrow(
      /--granules-once-full: unknown value 'tree'/,
    );
    expect(() => sweepFromFlags({ granulesOnceFull: 'uvmsmart-on-demand', placement: 'sysmem' })).toThrow(
      /--granules-once-full switches at the device pool's first eviction: it needs --placement vram or counters/,
    );
    expect(() => sweepFromFlags({ granulesOnceFull: 'same', placement: 'sysmem' })).not.toThrow();
    const props = sweepSchema().properties as Record<string, { items?: { enum?: string[] } }>;
    expect(props.granulesOnceFull?.items?.enum).toContain('same');
    expect(props.granulesOnceFull?.items?.enum).toContain('uvmsmart-on-demand');
  });
});
