import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ArgumentError } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import { main, sweepFromFlags } from '../src/commands.ts';
import { listExamples, runExample } from '../src/examples.ts';
import { formatTable, toCsv } from '../src/format.ts';
import { chartsFor } from '../src/report.ts';
import { DEFAULT_SWEEP, expandSweep, parseCostVariant, runSweep, type SweepSpec } from '../src/sweep.ts';

const tiny: SweepSpec = {
  workloads: [
    { generator: 'streaming', params: { footprintBytes: 512 << 10, numSMs: 4 } },
    { generator: 'stencil', params: { footprintBytes: 512 << 10, iterations: 1, numSMs: 4 } },
  ],
  granules: ['4k', 'xe'],
  notifiers: ['window-512M', 'per-range'],
  costs: [{ label: 'default', overrides: {} }, parseCostVariant('faultBatchFixedNs=0')],
};

const strip = (r: Awaited<ReturnType<typeof runSweep>>) =>
  r.cells.map((c) => {
    const { wallMs: _w, ...m } = c.metrics;
    return { spec: c.spec, m };
  });

describe('sweeps', () => {
  it('expands the cross product in a fixed order', () => {
    const cells = expandSweep(tiny);
    expect(cells).toHaveLength(2 * 2 * 2 * 2);
    expect(cells[0]).toMatchObject({ granule: '4k', notifier: 'window-512M', costLabel: 'default' });
    expect(cells[1]).toMatchObject({
      granule: '4k',
      notifier: 'window-512M',
      costLabel: 'faultBatchFixedNs=0',
    });
    expect(cells[15]!.workload.generator).toBe('stencil');
    expect(expandSweep(DEFAULT_SWEEP).length).toBe(24);
    expect(() => expandSweep({ ...tiny, granules: ['bogus'] })).toThrow(ArgumentError);
    expect(() => expandSweep({ ...tiny, workloads: [] })).toThrow(ArgumentError);
    expect(() => parseCostVariant('a=')).toThrow(ArgumentError);
  });

  it('runs on worker threads with the same results as inline, in cell order', async () => {
    const seen: number[] = [];
    const par = await runSweep(tiny, { threads: 2, onProgress: (d, t) => seen.push(d, t) });
    const seq = await runSweep(tiny, { threads: 0 });
    expect(par.threads).toBeGreaterThanOrEqual(1);
    expect(seq.threads).toBe(0);
    expect(strip(par)).toEqual(strip(seq));
    expect(seen.slice(-2)).toEqual([16, 16]);
    for (const c of par.cells) expect(c.metrics.oracleViolations).toBe(0);
    // the cost override only changes time
    expect(par.cells[1]!.metrics.simTimeNs).toBeLessThan(par.cells[0]!.metrics.simTimeNs);
    const table = formatTable(par).split('\n');
    expect(table).toHaveLength(2 + 16);
    expect(table[0]).toMatch(/^workload\s+granule\s+notifier\s+costs\s+seed\s+sim ms/);
    const csv = toCsv(par).trim().split('\n');
    expect(csv).toHaveLength(17);
    expect(csv[0]!.split(',').slice(0, 4)).toEqual(['workload', 'generator', 'granule', 'notifier']);
    expect(csv[2]).toContain('faultBatchFixedNs=0');
  });
});

describe('CLI', () => {
  it('builds a sweep from flags', () => {
    const s = sweepFromFlags({
      workloads: 'streaming,gemm',
      granules: 'xe',
      footprint: 2,
      costs: ['default', 'copyFixedNs=1'],
    });
    expect(s.workloads.map((w) => w.generator)).toEqual(['streaming', 'gemm']);
    expect(s.workloads[0]!.params).toEqual({ footprintBytes: 2 << 20 });
    expect(s.granules).toEqual(['xe']);
    expect(s.notifiers).toEqual(DEFAULT_SWEEP.notifiers);
    expect(s.costs?.map((c) => c.label)).toEqual(['default', 'copyFixedNs=1']);
  });

  it('sweep writes JSON + CSV and prints the table', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hmmkit-cli-'));
    const out: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((s: string) => {
      out.push(String(s));
      return true;
    }) as typeof process.stdout.write;
    try {
      await main([
        'node',
        'hmmkit',
        'sweep',
        '--workloads',
        'streaming',
        '--footprint',
        '0.5',
        '--granules',
        '4k',
        '--notifiers',
        'per-range',
        '--threads',
        '0',
        '--quiet',
        '--out',
        join(dir, 'r'),
      ]);
    } finally {
      process.stdout.write = write;
    }
    expect(out.join('')).toMatch(/streaming\s+4k\s+per-range/);
    const json = JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8'));
    expect(json.format).toBe('hmmkit-sweep/1');
    expect(json.cells).toHaveLength(1);
    expect(readFileSync(join(dir, 'r.csv'), 'utf8').trim().split('\n')).toHaveLength(2);
    await main(['node', 'hmmkit', 'report', join(dir, 'r.json')]);
    const html = readFileSync(join(dir, 'r.html'), 'utf8');
    // trade-off + breakdown + the metric charts that have a non-zero value
    expect(html.match(/<svg/g)?.length).toBe(2 + chartsFor(json).length);
    expect(html).toMatch(/<td>streaming<\/td><td>4k<\/td><td>per-range<\/td><td>default<\/td><td>1<\/td>/);
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists the examples that have a main and runs one by name', async () => {
    expect(listExamples()).toContain('notifier-race');
    const r = await runExample('notifier-race', { stdio: 'pipe' });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('mmu_interval_read_begin');
    await expect(runExample('no-such-example')).rejects.toBeInstanceOf(ArgumentError);
  });
});
