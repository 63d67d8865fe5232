import { describe, expect, it } from 'vitest';
import { run } from '../src/run.ts';

describe('read-only-policy example', () => {
  it("'enforce': compressed pages are mapped read-only though the CPU PTE is writable; GPU writes are cancelled", async () => {
    const r = await run();
    const m = r.metrics;
    expect(m.roWhileCpuWritable).toBe(16);
    expect(r.lines[1]).toContain('normal page writable: true');
    expect([m.roWritesRefused, m.cancels, m.failedWarps]).toEqual([2, 2, 2]);
    expect(m.compressedWord).toBe(20); // the GPU's write never reached compressed memory
    expect(r.lines[2]).toContain('page 21 = 21, normal page = 0x600d');
    expect(r.lines[3]).toContain('read-only mapping: 4242');
    expect(m.policyViolations).toBe(0);
    expect(m.coherenceViolations).toBe(0);
    expect(m.staleTlb).toBe(0);
    expect(m.classPages).toBe(16);
    expect(r.lines.at(-1)).toContain(
      '0 writable device PTEs in compressed memory; coherence oracle: COHERENT',
    );
  });

  it("'resolve': the first GPU write decompresses the page, which leaves the class and is mapped writable", async () => {
    const r = await run({ mode: 'resolve' });
    const m = r.metrics;
    expect([m.roPagesResolved, m.cancels, m.failedWarps]).toEqual([2, 0, 0]);
    expect(m.compressedWord).toBe(0xbad);
    expect(m.classPages).toBe(14);
    expect(m.policyViolations).toBe(0);
    expect(m.coherenceViolations).toBe(0);
  });

  it("'naive': without the policy the check finds writable device PTEs in compressed memory", async () => {
    const r = await run({ mode: 'naive' });
    const m = r.metrics;
    expect(m.roWhileCpuWritable).toBe(0);
    expect(m.policyViolations).toBe(16);
    expect(m.compressedWord).toBe(0xbad);
    expect(r.lines.at(-1)).toContain('16 writable device PTEs in compressed memory (first at page 16)');
    // the CPU-side coherence oracle cannot see this: the CPU PTEs are writable too
    expect(m.coherenceViolations).toBe(0);
  });
});
