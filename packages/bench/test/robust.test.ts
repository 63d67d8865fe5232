import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main, outputPrefix } from '../src/commands.ts';
import { runExperiment } from '../src/experiment.ts';
import { sweepFromFlags, UsageError } from '../src/flags.ts';
import { sweepSchema } from '../src/schema.ts';
import {
  DEFAULT_SWEEP,
  expandSweep,
  mergeResults,
  runSweep,
  type SweepResult,
  type SweepSpec,
} from '../src/sweep.ts';

const small = { footprintBytes: 512 << 10, numSMs: 4 };
/** One good workload, one whose generator throws (too many accesses), one that needs thousands of steps. */
const mixed: SweepSpec = {
  workloads: [
    { generator: 'streaming', params: small, label: 'ok' },
    { generator: 'randomAccess', params: { updates: 5_000_000 }, label: 'throws' },
  ],
  granules: ['4k', 'xe'],
  notifiers: ['per-range'],
};

const dir = mkdtempSync(join(tmpdir(), 'hmmkit-robust-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The JSON spec inside a replay command (`npm run hmmkit -- cell '<json>'`). */
function specOfReplay(cmd: string): unknown {
  const m = /^npm run hmmkit -- cell '(.*)'$/.exec(cmd);
  expect(m).not.toBeNull();
  return JSON.parse(m![1]!.replaceAll("'\\''", "'"));
}

describe('a failing cell does not lose the sweep', () => {
  for (const threads of [0, 1]) {
    it(`reports the failure with its seed and replay command, keeps the rest (threads ${threads})`, async () => {
      const seen: number[] = [];
      const r = await runSweep({ ...mixed, seeds: [7] }, { threads, onProgress: (d) => seen.push(d) });
      expect(seen).toEqual([1, 2, 3, 4]);
      expect(r.cells.map((c) => c.index)).toEqual([0, 1]);
      expect(r.cells.every((c) => c.metrics.oracleViolations === 0)).toBe(true);
      expect(r.failures!.map((f) => [f.index, f.kind, f.spec.seed])).toEqual([
        [2, 'error', 7],
        [3, 'error', 7],
      ]);
      expect(r.failures![0]!.error).toMatch(/maxAccesses/);
      // the replay command carries the exact cell: running it fails the same way
      const spec = specOfReplay(r.failures![0]!.replay);
      expect(spec).toEqual(r.failures![0]!.spec);
      await expect(runExperiment(spec as never)).rejects.toThrow(r.failures![0]!.error);
      expect(r.totalCells).toBe(4);
    });
  }

  it('a step budget turns a long cell into a "steps" failure naming the seed and the count', async () => {
    const r = await runSweep(
      {
        workloads: [{ generator: 'stencil', params: { footprintBytes: 2 << 20, numSMs: 8 } }],
        granules: ['4k'],
        notifiers: ['per-range'],
        maxSteps: 3000,
      },
      { threads: 0 },
    );
    expect(r.cells).toHaveLength(0);
    expect(r.failures![0]!.kind).toBe('steps');
    expect(r.failures![0]!.error).toMatch(/seed 1, \d+ steps\): more than 3000 steps/);
  });

  it('a time budget turns a long cell into a "timeout" failure (inline and on a worker)', async () => {
    const spec: SweepSpec = {
      workloads: [{ generator: 'stencil', params: { footprintBytes: 2 << 20, numSMs: 8 } }],
      granules: ['4k'],
      notifiers: ['per-range'],
      timeoutMs: 1,
    };
    for (const threads of [0, 1]) {
      const r = await runSweep(spec, { threads });
      expect(r.failures!.map((f) => f.kind)).toEqual(['timeout']);
      expect(r.failures![0]!.error).toMatch(/1 ms time budget/);
    }
  });

  it('a worker still busy past its budget plus the grace is terminated, and the sweep goes on', async () => {
    // generating 4 M accesses takes far longer than 1 + 50 ms and never reaches a scheduler step
    const spec: SweepSpec = {
      workloads: [{ generator: 'streaming', params: { footprintBytes: 512 << 20 } }],
      granules: ['xe', '4k'],
      notifiers: ['per-range'],
      timeoutMs: 1,
    };
    const t0 = performance.now();
    const r = await runSweep(spec, { threads: 1, killGraceMs: 50 });
    expect(r.failures!.map((f) => f.kind)).toEqual(['timeout', 'timeout']);
    expect(r.failures![0]!.error).toBe(
      'worker terminated: the cell was still running 51 ms after it started (time budget 1 ms)',
    );
    expect(performance.now() - t0).toBeLessThan(15_000);
  });

  it('the CLI writes every finished cell, lists the failure and exits 1', async () => {
    const spec = join(dir, 'mixed.json');
    writeFileSync(spec, JSON.stringify(mixed));
    const out: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((s: string) => out.push(String(s)) > 0) as typeof process.stdout.write;
    try {
      await main([
        'node',
        'hmmkit',
        'sweep',
        '--spec',
        spec,
        '--threads',
        '0',
        '--quiet',
        '--out',
        join(dir, 'm'),
      ]);
    } finally {
      process.stdout.write = write;
    }
    expect(process.exitCode).toBe(1);
    process.exitCode = 0;
    const text = out.join('');
    expect(text).toMatch(/2 cells failed/);
    expect(text).toMatch(/cell 2 throws\/4k\/per-range\/default seed 1 \[error\]/);
    expect(text).toMatch(/replay: npm run hmmkit -- cell '/);
    expect(text).toMatch(/throws: no recommendation \(the baseline 4k\/per-range has no finished cell\)/);
    const json = JSON.parse(readFileSync(join(dir, 'm.json'), 'utf8')) as SweepResult;
    expect(json.cells).toHaveLength(2);
    expect(json.failures).toHaveLength(2);
    expect(readFileSync(join(dir, 'm.csv'), 'utf8').trim().split('\n')).toHaveLength(3);
  });
});

describe('CLI errors name the flag and the rule', () => {
  const err = async (...args: string[]) => {
    try {
      await main(['node', 'hmmkit', ...args]);
    } catch (e) {
      expect(e).toBeInstanceOf(UsageError);
      return (e as Error).message;
    }
    throw new Error(`no error for ${args.join(' ')}`);
  };
  it('rejects bad values before running anything', async () => {
    expect(await err('sweep', '--vram', '3')).toBe('--vram must be a positive multiple of 2 (MiB), got 3');
    expect(await err('sweep', '--footprint', 'abc')).toBe(
      '--footprint must be a positive number of MiB (≥ 0.004), got abc',
    );
    const costs = await err('sweep', '--costs', 'nosuchParam=5');
    expect(costs).toMatch(
      /^--costs: 'nosuchParam' is not a cost parameter; valid names: cpuFaultNs, .*faultBatchFixedNs/,
    );
    expect(await err('sweep', '--costs', 'faultBatchFixedNs=x')).toMatch(
      /faultBatchFixedNs must be a finite number ≥ 0, got 'x'/,
    );
    expect(await err('sweep', '--granules', '4k,nope')).toMatch(
      /--granules: unknown value 'nope'; accepted: xe, xe-64k, 4k,/,
    );
    expect(await err('sweep', '--cpu', 'stormy')).toMatch(/accepted: none, init, pingpong, storm/);
    expect(await err('sweep', '--seeds', '1,x')).toMatch(/--seeds: each seed must be an integer/);
    expect(await err('sweep', '--shard', '3/2')).toMatch(/--shard must be i\/N/);
    expect(await err('sweep', '--vram', '4', '--vram', '8')).toMatch(/--vram was given 2 times/);
    expect(await err('sweep', '--bogus', '1')).toBe('Unknown option `--bogus`');
    expect(await err('swep')).toMatch(/^unknown command 'swep'; commands: sweep, merge, report, cell/);
  });

  it('de-duplicates list values', () => {
    const s = sweepFromFlags({
      granules: '4k,xe,4k',
      seeds: '1,2,1',
      notifiers: ['per-range', 'per-range'],
      costs: ['default', 'default'],
    });
    expect(s.granules).toEqual(['4k', 'xe']);
    expect(s.seeds).toEqual([1, 2]);
    expect(s.notifiers).toEqual(['per-range']);
    expect(s.costs).toHaveLength(1);
    expect(expandSweep({ ...DEFAULT_SWEEP, granules: ['xe', 'xe'], seeds: [3, 3] })).toHaveLength(6);
  });

  it('--help lists every accepted value and the defaults', async () => {
    const out: string[] = [];
    const info = console.info;
    console.info = (s: string) => out.push(s);
    try {
      await main(['node', 'hmmkit', 'sweep', '--help']);
    } finally {
      console.info = info;
    }
    const help = out.join('\n');
    expect(help).not.toMatch(/\.\.\.\)/);
    for (const v of [
      'randomAccess',
      'kmeans',
      'pageTouch',
      'whole-vma',
      'uvm-noprefetch',
      'whole-mm',
      'storm',
      'sysmem',
    ]) {
      expect(help).toContain(v);
    }
    expect(help).toMatch(/--vram <MiB>.*\(default: 4\)/);
    expect(help).toMatch(/--granules <list>.*\(default: 4k,xe,amdkfd,uvm-tree\)/);
  });

  it('never silently overwrites another run', () => {
    const p = join(dir, 'taken');
    writeFileSync(`${p}.json`, '{}');
    expect(() => outputPrefix(p, false)).toThrow(
      /taken\.json exists \(another run's results\); pass --force/,
    );
    expect(outputPrefix(p, true)).toBe(p);
    expect(outputPrefix(undefined, false, p)).toBe(`${p}-2`);
    writeFileSync(`${p}-2.csv`, '');
    expect(outputPrefix(undefined, false, p)).toBe(`${p}-3`);
  });

  it('the committed JSON Schema of --spec is the generated one', () => {
    const file = new URL('../sweep.schema.json', import.meta.url);
    expect(existsSync(file)).toBe(true);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(sweepSchema());
    const props = (sweepSchema().properties ?? {}) as Record<string, unknown>;
    for (const k of Object.keys(DEFAULT_SWEEP)) expect(props).toHaveProperty(k);
  });
});

describe('shards', () => {
  const spec: SweepSpec = {
    workloads: [
      { generator: 'streaming', params: small },
      { generator: 'stencil', params: { ...small, iterations: 1 } },
    ],
    granules: ['4k', 'xe', 'uvm-tree'],
    notifiers: ['per-range'],
    seeds: [1, 2],
  };
  const strip = (r: SweepResult) => r.cells.map((c) => ({ ...c, metrics: { ...c.metrics, wallMs: 0 } }));

  it('merged shards equal the one-machine run cell for cell', async () => {
    const whole = await runSweep(spec, { threads: 0 });
    const parts: SweepResult[] = [];
    for (let i = 0; i < 3; i++)
      parts.push(await runSweep(spec, { threads: 0, shard: { index: i, count: 3 } }));
    expect(parts.map((p) => p.cells.length)).toEqual([4, 4, 4]);
    expect(parts[1]!.cells.map((c) => c.index)).toEqual([1, 4, 7, 10]);
    const merged = mergeResults([parts[2]!, parts[0]!, parts[1]!]);
    expect(strip(merged)).toEqual(strip(whole));
    expect(merged.totalCells).toBe(12);
    expect(() => mergeResults([parts[0]!, parts[1]!])).toThrow(/cover 8 of 12 cells \(missing 2, 5, 8, 11\)/);
    expect(mergeResults([parts[0]!], { partial: true }).cells).toHaveLength(4);
    expect(() => mergeResults([parts[0]!, parts[0]!])).toThrow(/repeats cell 0/);
    expect(() => mergeResults([parts[0]!, { ...parts[1]!, sweep: { ...spec, seeds: [1] } }])).toThrow(
      /same sweep spec/,
    );
  });
});

describe('the progress bar', () => {
  it('is stopped when the sweep throws, so no timer keeps the process alive', async () => {
    const { PassThrough } = await import('node:stream');
    const { withProgress } = await import('../src/commands.ts');
    // every timer created during the call must have fired or been cleared by its end
    const pending = new Set<unknown>();
    const realSet = globalThis.setTimeout;
    const realClear = globalThis.clearTimeout;
    globalThis.setTimeout = ((fn: () => void, ms?: number) => {
      const h = realSet(() => {
        pending.delete(h);
        fn();
      }, ms);
      pending.add(h);
      return h;
    }) as typeof setTimeout;
    globalThis.clearTimeout = ((h: Parameters<typeof clearTimeout>[0]) => {
      pending.delete(h);
      realClear(h);
    }) as typeof clearTimeout;
    const out = new PassThrough();
    let drawn = '';
    out.on('data', (b: Buffer) => {
      drawn += b.toString();
    });
    const run = withProgress(
      4,
      async (update) => {
        update(1, 'cell 0');
        await new Promise((r) => setTimeout(r, 120)); // let the bar redraw
        throw new Error('cell 1 failed');
      },
      out,
    );
    try {
      await expect(run).rejects.toThrow('cell 1 failed');
    } finally {
      globalThis.setTimeout = realSet;
      globalThis.clearTimeout = realClear;
    }
    expect(drawn).toMatch(/sweep \[.*\] 1\/4 cells/);
    expect(pending.size).toBe(0);
  });
});
