import { describe, expect, it } from 'vitest';
import { OFFERS, run } from '../src/run.ts';

describe('debate-spm-nodes', () => {
  it('only ordinary onlining lets unrelated pages into device memory; only node memory keeps reclaim and migration', async () => {
    const r = await run({ nodePages: 1024 });
    expect(r.rows.map((x) => x.offer)).toEqual([...OFFERS]);
    const row = (o: string) => r.rows.find((x) => x.offer === o)!;
    for (const x of r.rows) expect(x.dataOk).toBe(true);
    // placement: isolation keeps the buffer whole and the unrelated load out
    for (const o of ['device-private', 'device-coherent', 'spm-node']) {
      expect(row(o).leaked).toBe(0);
      expect(row(o).bufferOnDevice).toBe(row(o).bufferPages);
      expect(row(o).bufferReclaimed).toBe(0);
    }
    expect(row('ordinary').leaked).toBeGreaterThan(0);
    expect(row('ordinary').bufferReclaimed).toBeGreaterThan(0);
    expect(row('ordinary').bufferOnDevice).toBeLessThan(row('ordinary').bufferPages);
    // services: ZONE_DEVICE memory cannot be reclaimed or moved with move_pages; node memory can
    for (const o of ['device-private', 'device-coherent']) {
      expect(row(o).pageoutOk).toBe(0);
      expect(row(o).movePagesOk).toBe(0);
    }
    for (const o of ['spm-node', 'ordinary']) {
      expect(row(o).pageoutOk).toBe(64);
      expect(row(o).movePagesOk).toBe(64);
    }
    // fault costs: a CPU touch of DEVICE_PRIVATE memory faults every page back; coherent memory none
    expect(row('device-private').cpuFaults).toBe(row('device-private').bufferPages);
    expect(row('device-coherent').cpuFaults).toBe(0);
    expect(r.lines.filter((l) => /^\| (device|spm|ordinary)/.test(l)).length).toBe(4);
  });
});
