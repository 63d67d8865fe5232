import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type ExperimentSpec, runExperiment } from '../src/experiment.ts';
import { runSweep } from '../src/sweep.ts';
import type { ChromeTrace } from '../src/timeline.ts';

const dir = mkdtempSync(join(tmpdir(), 'hmmkit-timeline-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// a stencil racing a munmap storm in 2 MiB of VRAM: faults, migrations both ways, invalidations
const spec: ExperimentSpec = {
  workload: {
    generator: 'stencil',
    params: { footprintBytes: 2 << 20, iterations: 2, numSMs: 8 },
    cpu: 'storm',
  },
  granule: 'xe',
  notifier: 'per-range',
  vramBytes: 2 << 20,
};

describe('--timeline', () => {
  it('records fault batches, copies, TLB invalidations and invalidations without changing the results', async () => {
    const file = join(dir, 't.json');
    const m = await runExperiment({ ...spec, timelineFile: file });
    const plain = await runExperiment(spec);
    expect({ ...m, wallMs: 0 }).toEqual({ ...plain, wallMs: 0 });
    const t = JSON.parse(readFileSync(file, 'utf8')) as ChromeTrace;
    expect(t.displayTimeUnit).toBe('ns');
    expect(t.otherData.droppedEvents).toBe(0);
    const ev = t.traceEvents;
    const named = (n: string) => ev.filter((e) => e.name === n);
    expect(named('fault batch')).toHaveLength(m.faultBatches);
    const h2d = named('copy H2D').reduce((s, e) => s + Number(e.args!.bytes), 0);
    const d2h = named('copy D2H').reduce((s, e) => s + Number(e.args!.bytes), 0);
    expect(h2d).toBe(m.bytesH2d);
    expect(d2h).toBe(m.bytesD2h);
    expect(h2d).toBeGreaterThan(0);
    expect(ev.filter((e) => e.cat === 'tlb')).toHaveLength(m.tlbInvalidations);
    expect(named('invalidate UNMAP').length).toBeGreaterThan(0);
    expect(ev.filter((e) => e.cat === 'invalidation' && e.ph === 'X').length).toBeGreaterThan(0);
    for (const e of ev) {
      expect(e.ts).toBeGreaterThanOrEqual(0);
      if (e.ph === 'X') expect(e.dur).toBeGreaterThanOrEqual(0);
    }
    // tracks are named for Perfetto
    const names = ev.filter((e) => e.ph === 'M').map((e) => String(e.args!.name));
    expect(names).toContain('fault handler (batches)');
    // one CPU track per simulated thread: the munmap storm has its own
    expect(names.some((n) => /^CPU thread cpu-storm-/.test(n))).toBe(true);
    const storm = ev.find((e) => e.ph === 'M' && /^CPU thread cpu-storm-/.test(String(e.args!.name)))!;
    expect(ev.some((e) => e.tid === storm.tid && e.name === 'invalidate UNMAP')).toBe(true);
    expect(Math.max(...ev.map((e) => e.ts))).toBeLessThanOrEqual((m.simTimeNs + 1e9) / 1000);
  });

  it('a sweep writes one timeline per cell', async () => {
    const r = await runSweep(
      {
        workloads: [{ generator: 'streaming', params: { footprintBytes: 512 << 10, numSMs: 4 } }],
        granules: ['4k', 'xe'],
        notifiers: ['per-range'],
      },
      { threads: 0, timeline: join(dir, 's.json') },
    );
    expect(r.cells).toHaveLength(2);
    for (const i of [0, 1]) {
      const t = JSON.parse(readFileSync(join(dir, `s.cell-${i}.json`), 'utf8')) as ChromeTrace;
      expect(t.traceEvents.filter((e) => e.name === 'fault batch')).toHaveLength(
        r.cells[i]!.metrics.faultBatches,
      );
    }
  });
});
