import { DEFAULT_COSTS } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import { run } from '../src/run.ts';

const M2 = 0x200000;

describe('multi-gpu example', () => {
  it('without peer access: the hint keeps gpu0 in its VRAM; without it gpu0 works on system memory', async () => {
    const r = await run();
    const { hinted, unhinted } = r.metrics;
    expect(hinted.gpu0Accesses).toEqual({ vid: 192 });
    expect(unhinted.gpu0Accesses).toEqual({ sys: 192 });
    // the hint stops gpu1's first touch from migrating; gpu1 finally reads through system memory
    expect([hinted.toVramPages, hinted.toRamPages, hinted.gpu1]).toEqual([512, 512, 'sys']);
    // no hint: gpu1's first touch and final read both migrate to gpu1
    expect([unhinted.toVramPages, unhinted.toRamPages, unhinted.gpu1]).toEqual([1024, 512, 'vid']);
    expect(hinted.readMismatches + unhinted.readMismatches).toBe(0);
    expect(r.lines[1]).toContain('went to vid ×192');
    // once mapped, gpu0's two steady rounds (128 accesses) pay the SYS premium on Y only
    expect(unhinted.gpu0SteadyNs - hinted.gpu0SteadyNs).toBe(128 * DEFAULT_COSTS.gpuSysAccessNs);
    expect(r.metrics.violations).toBe(0);
    expect(r.lines.at(-1)).toContain('COHERENT');
    // the handoff bounces through system memory: 2 MiB down, 2 MiB up
    expect(r.metrics.handoff).toMatchObject({ d2dPages: 0, d2hBytes: M2, h2dBytes: M2, readMismatches: 0 });
  });

  it('with peer access: gpu1 maps gpu0 VRAM through PEER and nothing goes back to system memory', async () => {
    const r = await run({ peer: true });
    const { hinted, unhinted } = r.metrics;
    expect([hinted.gpu0, hinted.gpu1, hinted.toRamPages]).toEqual(['vid', 'peer', 0]);
    expect(unhinted.gpu0Accesses).toEqual({ peer: 192 });
    expect(unhinted.gpu0SteadyNs - hinted.gpu0SteadyNs).toBe(128 * DEFAULT_COSTS.gpuPeerAccessNs);
    expect(hinted.readMismatches + unhinted.readMismatches).toBe(0);
    expect(r.metrics.violations).toBe(0);
    // the handoff goes VRAM to VRAM: nothing through system memory, one copy instead of two
    expect(r.metrics.handoff).toMatchObject({ d2dPages: 512, d2hBytes: 0, h2dBytes: 0, readMismatches: 0 });
    const bounce = (await run()).metrics.handoff.simNs;
    expect(r.metrics.handoff.simNs).toBeLessThan(bounce);
  });
});
