import { describe, expect, it } from 'vitest';
import { run } from '../src/run.ts';

describe('debate-svm-across-devices', () => {
  it('a hint shared across devices moves less data; the proxy scheme runs out of VA and reads across processes', async () => {
    const r = await run({ rounds: 2, heavy: 2, processes: 4 });
    expect(r.hints.map((h) => h.mode)).toEqual(['shared+peer', 'shared', 'per-device']);
    for (const h of r.hints) {
      expect(h.violations).toBe(0);
      expect(h.dataOk).toBe(true);
    }
    const [peer, shared, perDev] = r.hints;
    expect(peer!.gpu0Maps).toBe('peer');
    expect(peer!.gpu1Maps).toBe('vid');
    // the shared hint keeps gpu0 from pulling the buffer to itself: less traffic than per-device hints
    expect(shared!.toVramPages + shared!.toRamPages).toBeLessThan(perDev!.toVramPages + perDev!.toRamPages);
    expect(peer!.toVramPages + peer!.toRamPages).toBeLessThan(shared!.toVramPages + shared!.toRamPages);

    const [proxy, perProc] = r.proxy;
    expect(proxy!.scheme).toBe('proxy (VA + offset)');
    for (const p of r.proxy) expect(p.correctReads).toBe(p.reads);
    // every fault and invalidation crossed the offset once; the per-process scheme never translates
    expect(proxy!.translations).toBe(proxy!.faults + proxy!.invalidations);
    expect(perProc!.translations).toBe(0);
    expect(perProc!.violations).toBe(0);
    // NVIDIA MMU v2 (49-bit VA) holds four 47-bit processes: a fifth does not fit
    expect(proxy!.roomForMore).toBe(false);
    expect(perProc!.roomForMore).toBe(true);
    // a CPU pointer handed over without the offset lands in process 0's partition
    expect(proxy!.foreignReads).toBe(64);
    expect(perProc!.foreignReads).toBe(0);
    const v2 = r.exhaustion.find((e) => e.format === 'nv-mmu-v2' && e.cpuVaBits === 47)!;
    expect(v2.processes).toBe(4);
    expect(v2.byFormat).toBe(4);
  });
});
