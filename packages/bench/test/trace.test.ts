import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generate, memorySink, writeWorkloadTrace } from '@hmmkit/workloads';
import { afterAll, describe, expect, it } from 'vitest';
import { runExperiment } from '../src/experiment.ts';
import { sweepFromFlags, UsageError } from '../src/flags.ts';
import { runSweep } from '../src/sweep.ts';
import { detectTraceFormat, loadTraceWorkload, mapTouchedRanges } from '../src/trace-workload.ts';

const dir = mkdtempSync(join(tmpdir(), 'hmmkit-trace-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const noWall = <T extends { wallMs: number }>(m: T) => ({ ...m, wallMs: 0 });

// two regions 1 GiB apart: warp 0 and 1 stream over 16 pages at 0x10000000, warp 40 writes 3
// pages at 0x50000000 (a second SM)
const csvLines: string[] = [];
for (let p = 0; p < 16; p++) {
  csvLines.push(
    `${0x10000000 + p * 4096},128,R,0`,
    `0x${(0x10000000 + p * 4096 + 128).toString(16)},128,read,1`,
  );
}
for (let p = 0; p < 3; p++) csvLines.push(`${0x50000000 + p * 4096},4,W,40`);
const csv = join(dir, 'two-regions.csv');
writeFileSync(csv, `# a comment\nva,size,kind,warp\n${csvLines.join('\n')}\n`);

describe('trace workloads', () => {
  it('a binary hmmkit trace replays exactly like the generator it recorded', async () => {
    const params = { footprintBytes: 1 << 20, numSMs: 4 };
    const sink = memorySink();
    await writeWorkloadTrace(generate('streaming', params), sink);
    const file = join(dir, 'streaming.hmmkt');
    writeFileSync(file, sink.bytes());
    expect(await detectTraceFormat(file)).toBe('hmmkit');
    const fromTrace = await runExperiment({
      workload: { generator: 'trace', params: { file } },
      granule: 'xe',
    });
    const fromGen = await runExperiment({ workload: { generator: 'streaming', params }, granule: 'xe' });
    expect(noWall(fromTrace)).toEqual(noWall(fromGen));
    expect(fromTrace.accesses).toBeGreaterThan(0);
  });

  it('a CSV trace: header checked, ranges mapped automatically, every access served', async () => {
    expect(await detectTraceFormat(csv)).toBe('csv');
    const w = await loadTraceWorkload(csv);
    expect(w.arrays.map((a) => [a.va, a.bytes])).toEqual([
      [0x10000000, 16 * 4096],
      [0x50000000, 3 * 4096],
    ]);
    const m = await runExperiment({
      workload: { generator: 'trace', params: { file: csv }, cpu: 'none' },
      granule: '4k',
    });
    expect(m.accesses).toBe(csvLines.length);
    expect(m.failedWarps).toBe(0);
    expect(m.oracleViolations).toBe(0);
    expect(m.bytesAccessed).toBe(19 * 4096);
    const bad = join(dir, 'bad.csv');
    writeFileSync(bad, 'va,size,kind,warp\n4096,128,X,0\n');
    await expect(loadTraceWorkload(bad, 'csv')).rejects.toThrow(/bad\.csv:2.*kind must be R, W or A/);
    writeFileSync(bad, 'addr,size\n4096,128\n');
    await expect(loadTraceWorkload(bad, 'csv')).rejects.toThrow(
      /must start with the header va,size,kind,warp/,
    );
  });

  it('a UVMSmart dump: SM and warp ids kept, ranges mapped', async () => {
    const lines = ['# page_no mem_addr size cycle is_read sm_id warp_id'];
    for (let i = 0; i < 8; i++) {
      const addr = 0xc0000000 + i * 4096;
      lines.push(`${addr / 4096} 0x${addr.toString(16)} 128 ${100 + i} ${i % 2} ${i % 2} ${i % 4}`);
    }
    const file = join(dir, 'dump.txt');
    writeFileSync(file, `${lines.join('\n')}\n`);
    expect(await detectTraceFormat(file)).toBe('uvmsmart');
    const w = await loadTraceWorkload(file);
    expect(w.arrays).toEqual([{ name: 'trace-range-0', va: 0xc0000000, bytes: 8 * 4096, elemSize: 4 }]);
    const m = await runExperiment({ workload: { generator: 'trace', params: { file } }, granule: 'xe' });
    expect(m.accesses).toBe(8);
    expect(m.failedWarps).toBe(0);
    expect(m.oracleViolations).toBe(0);
  });

  it('mapTouchedRanges closes gaps under 64 KiB only', async () => {
    const w = await loadTraceWorkload(csv);
    const k = [...w.phases()].flatMap((p) => (p.type === 'kernel' ? [p.kernel] : []));
    expect(mapTouchedRanges(k)).toHaveLength(2);
  });

  it('sweep --trace runs every policy on the trace', async () => {
    expect(() => sweepFromFlags({ trace: join(dir, 'nope.csv') })).toThrow(UsageError);
    expect(() => sweepFromFlags({ trace: csv, workloads: 'streaming' })).toThrow(/exclude each other/);
    const spec = sweepFromFlags({ trace: csv, granules: '4k,xe', notifiers: 'per-range' });
    expect(spec.workloads).toEqual([{ generator: 'trace', params: { file: csv }, label: 'two-regions.csv' }]);
    const r = await runSweep(spec, { threads: 0 });
    expect(r.failures).toEqual([]);
    expect(r.cells.map((c) => c.metrics.accesses)).toEqual([csvLines.length, csvLines.length]);
  });
});
