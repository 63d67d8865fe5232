import { describe, expect, it } from 'vitest';
import { run } from '../src/run.ts';

describe('debate-gmem-vs-hmm', () => {
  it('both designs stay coherent and survive oversubscription; the GMEM driver is a fraction of the HMM one', async () => {
    const r = await run({
      bytes: 4 << 20,
      overVram: 2 << 20,
      overBytes: 6 << 20,
      stormRounds: 1,
      stormOps: 6,
    });
    expect(r.rows.map((x) => x.design)).toEqual(['gmem', 'hmm']);
    for (const x of r.rows) {
      // the first pass faults the host data in; the second finds it mapped
      expect(x.faults).toBeGreaterThan(0);
      expect(x.steadyNs).toBeLessThan(x.firstPassNs);
      expect(x.cpuFaultPerBlockNs).toBeGreaterThan(0);
      // hmadvise(DONTNEED) / prefetch to system memory moved the device-resident rest back
      expect(x.offloadPages).toBe((4 << 20) / 4096 - 512);
      expect(x.costsOk).toBe(true);
      expect(x.stormViolations).toBe(0);
      expect(x.stormDataOk).toBe(true);
    }
    expect(r.over.map((x) => `${x.pattern}/${x.design}`)).toEqual([
      'blocked/gmem',
      'blocked/hmm',
      'interleaved/gmem',
      'interleaved/hmm',
    ]);
    for (const x of r.over) {
      // 6 MiB over 2 MiB of device memory: everything was brought in, most of it evicted again
      expect(x.failedWarps).toBe(0);
      expect(x.dataOk).toBe(true);
      expect(x.violations).toBe(0);
      expect(x.toDevice).toBeGreaterThanOrEqual((6 << 20) / 4096);
      expect(x.toHost).toBeGreaterThan(0);
    }
    const [driver, core, hmm] = r.loc;
    expect(driver!.lines).toBeGreaterThan(0);
    expect(driver!.lines).toBeLessThan(core!.lines);
    expect(driver!.lines * 10).toBeLessThan(hmm!.lines);
    expect(r.lines.filter((l) => /^\| (gmem|hmm) \|/.test(l)).length).toBe(4);
    expect(r.lines.filter((l) => /^\| (blocked|interleaved) \|/.test(l)).length).toBe(4);
  });
});
