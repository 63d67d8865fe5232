import { ArgumentError, createSim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import { APERTURE, TLB_FLAG, Tlb, TlbBatch } from '../src/index.ts';

const RW = TLB_FLAG.WRITABLE | TLB_FLAG.ATOMIC;

describe('Tlb', () => {
  it('hits after a fill, at the right size and physical address, and counts', () => {
    const sim = createSim();
    const tlb = new Tlb(sim);
    expect(tlb.lookup(0x12345)).toBe(-1);
    tlb.fill(0x12345, 12, 0x9_9345, RW, APERTURE.VID);
    const s = tlb.lookup(0x12fff);
    expect(s).toBeGreaterThanOrEqual(0);
    expect(tlb.paOf(s, 0x12abc)).toBe(0x9_9abc);
    expect(tlb.lookup(0x13000)).toBe(-1);
    // a 2M page covers the whole 2M region
    tlb.fill(0x40_1234, 21, 0x80_1234, RW, APERTURE.VID);
    expect(tlb.paOf(tlb.lookup(0x5f_ffff), 0x5f_ffff)).toBe(0x9f_ffff);
    expect(sim.counters.get('gpu.tlb.hit')).toBe(2);
    expect(sim.counters.get('gpu.tlb.miss')).toBe(2);
  });

  it('caches a page larger than every array at the largest cached size', () => {
    const tlb = new Tlb(createSim(), { pageShifts: [12, 16] });
    tlb.fill(0x4000_0000, 29, 0x1_0000_0000, RW, APERTURE.VID);
    expect(tlb.lookup(0x4000_ffff)).toBeGreaterThanOrEqual(0);
    expect(tlb.lookup(0x4001_0000)).toBe(-1); // only the 64K around the access was cached
  });

  it('evicts the least recently used way of a full set', () => {
    const tlb = new Tlb(createSim(), { pageShifts: [12], entries: 4, ways: 2 }); // 2 sets
    // pages 0, 2, 4 all map to set 0
    tlb.fill(0x0000, 12, 0, RW, 0);
    tlb.fill(0x2000, 12, 0, RW, 0);
    tlb.lookup(0x0000); // 0 is now more recent than 2
    tlb.fill(0x4000, 12, 0, RW, 0);
    expect(tlb.peek(0x0000)).toBeGreaterThanOrEqual(0);
    expect(tlb.peek(0x2000)).toBe(-1);
    expect(tlb.peek(0x4000)).toBeGreaterThanOrEqual(0);
  });

  it('separate arrays do not compete across sizes; a unified array does', () => {
    const sep = new Tlb(createSim(), { pageShifts: [12, 21], entries: 2, ways: 2 });
    const uni = new Tlb(createSim(), { pageShifts: [12, 21], entries: 2, ways: 2, unified: true });
    for (const t of [sep, uni]) {
      t.fill(0x20_0000, 21, 0, RW, 0);
      t.fill(0x1000, 12, 0, RW, 0);
      t.fill(0x2000, 12, 0, RW, 0);
    }
    expect(sep.peek(0x20_0000)).toBeGreaterThanOrEqual(0);
    expect(uni.peek(0x20_0000)).toBe(-1);
    expect(sep.capacity).toBe(4);
    expect(uni.capacity).toBe(2);
  });

  it('range invalidation drops exactly the overlapping entries; full flush drops all', () => {
    const tlb = new Tlb(createSim());
    tlb.fill(0x1000, 12, 0, RW, 0);
    tlb.fill(0x2000, 12, 0, RW, 0);
    tlb.fill(0x10000, 16, 0, RW, 0);
    tlb.fill(0x40_0000, 21, 0, RW, 0);
    expect(tlb.invalidateRange(0x2000, 0x1000)).toBe(1);
    expect(tlb.peek(0x1000)).toBeGreaterThanOrEqual(0);
    expect(tlb.peek(0x2000)).toBe(-1);
    // a 4K invalidate inside a 64K entry drops the 64K entry
    expect(tlb.invalidateRange(0x1f000, 0x1000)).toBe(1);
    expect(tlb.peek(0x10000)).toBe(-1);
    expect(tlb.occupancy).toBe(2);
    tlb.invalidateAll();
    expect(tlb.occupancy).toBe(0);
  });

  it('a lookup repeated after a fill or invalidate sees the change (the lookup memo never serves stale slots)', () => {
    const sim = createSim();
    const tlb = new Tlb(sim, { unified: true, entries: 16, ways: 2 });
    const va = 0x40_0000 + 0x3000;
    tlb.fill(va, 21, 0x80_0000 + 0x3000, RW, APERTURE.VID);
    const big = tlb.lookup(va);
    expect(tlb.lookup(va)).toBe(big);
    // a 4K entry for the same page is probed first (smallest size first), memo or not
    const small = tlb.fill(va, 12, 0x1_3000, RW, APERTURE.SYS);
    expect(small).not.toBe(big);
    expect(tlb.lookup(va)).toBe(small);
    expect(tlb.paOf(tlb.lookup(va + 8), va + 8)).toBe(0x1_3008);
    expect(tlb.lookup(va + 4096)).toBe(big);
    tlb.invalidateRange(0x80_0000, 4096); // elsewhere: nothing changes
    expect(tlb.lookup(va)).toBe(small);
    tlb.invalidateRange(va, 4096); // drops the 4K entry and the 2M one covering it
    expect(tlb.lookup(va)).toBe(-1);
    expect(tlb.lookup(va + 4096)).toBe(-1);
    tlb.fill(va, 12, 0x1_3000, RW, APERTURE.SYS);
    expect(tlb.lookup(va)).toBeGreaterThanOrEqual(0);
    tlb.invalidateAll();
    expect(tlb.lookup(va)).toBe(-1);
    expect(tlb.peek(va)).toBe(-1);
    // an LRU victim replaced by another page is no longer found for the old page
    const t2 = new Tlb(sim, { entries: 2, ways: 1, pageShifts: [12], counterPrefix: 't2' });
    t2.fill(0, 12, 0x5000, RW, APERTURE.VID);
    expect(t2.lookup(0)).toBeGreaterThanOrEqual(0);
    t2.fill(0x2000, 12, 0x6000, RW, APERTURE.VID); // same set (2 sets), evicts page 0
    expect(t2.lookup(0)).toBe(-1);
    expect(t2.occupancy).toBe(1);
  });

  it('rejects bad geometry', () => {
    expect(() => new Tlb(createSim(), { entries: 12, ways: 4 })).toThrow(ArgumentError);
    expect(() => new Tlb(createSim(), { pageShifts: [11] })).toThrow(ArgumentError);
  });
  it('overlapping() finds exactly the entries a full scan finds, separate and unified', () => {
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return Math.floor((seed / 2147483648) * n);
    };
    for (const unified of [false, true]) {
      const tlb = new Tlb(createSim(), { unified, entries: 64, ways: 4 });
      const base = 2 ** 40; // page numbers past 32 bits
      for (let round = 0; round < 200; round++) {
        const shift = [12, 16, 21][rnd(3)]!;
        tlb.fill(base + rnd(4096) * 4096, shift, 0x100000, TLB_FLAG.WRITABLE, APERTURE.VID);
        const start = base + rnd(4096) * 4096 + rnd(2) * 100;
        const end = start + [1, 4096, 65536, 2 ** 21, 2 ** 24][rnd(5)]!;
        const expected: number[] = [];
        for (let i = 0; i < tlb.capacity; i++) {
          const t = tlb.tags[i]!;
          const span = 2 ** tlb.shifts[i]!;
          if (t >= 0 && t * span < end && (t + 1) * span > start) expected.push(i);
        }
        const n = tlb.overlapping(start, end);
        expect([...tlb.overlapSlots.subarray(0, n)].sort((a, b) => a - b)).toEqual(expected);
        if (round % 50 === 49) expect(tlb.invalidateRange(start, end - start)).toBe(expected.length);
      }
    }
  });
});

describe('TlbBatch (uvm_tlb_batch)', () => {
  it('issues one invalidate per range up to tlbBatchMaxRanges, each charged tlbInvalidateNs', () => {
    const sim = createSim();
    const tlb = new Tlb(sim);
    const b = new TlbBatch(tlb);
    expect(b.maxRanges).toBe(8);
    for (let i = 0; i < 8; i++) {
      tlb.fill(i * 0x10000, 12, 0, RW, 0);
      b.invalidate(i * 0x10000, 0x1000);
    }
    tlb.fill(0x100_0000, 12, 0, RW, 0);
    expect(b.end()).toBe(8);
    expect(sim.now).toBe(8 * sim.costs.tlbInvalidateNs);
    expect(sim.counters.get('gpu.tlb.invalidate')).toBe(8);
    expect(sim.counters.get('gpu.tlb.flush')).toBe(0);
    expect(tlb.occupancy).toBe(1); // the untouched entry survives
  });

  it('past tlbBatchMaxRanges issues one full flush instead', () => {
    const sim = createSim({ costs: { tlbBatchMaxRanges: 4 } });
    const tlb = new Tlb(sim);
    const b = new TlbBatch(tlb);
    tlb.fill(0x100_0000, 12, 0, RW, 0);
    for (let i = 0; i < 5; i++) b.invalidate(i * 0x1000, 0x1000);
    expect(b.needsFullFlush).toBe(true);
    expect(b.end()).toBe(1);
    expect(sim.now).toBe(sim.costs.tlbInvalidateNs);
    expect(sim.counters.get('gpu.tlb.flush')).toBe(1);
    expect(tlb.occupancy).toBe(0);
    // the batch is reusable and empty
    expect(b.pending).toBe(0);
    expect(b.end()).toBe(0);
    expect(sim.now).toBe(sim.costs.tlbInvalidateNs);
  });

  it('rejects bad ranges without recording them', () => {
    const b = new TlbBatch(new Tlb(createSim()));
    expect(() => b.invalidate(-1, 4096)).toThrow(ArgumentError);
    expect(() => b.invalidate(0, 0)).toThrow(ArgumentError);
    expect(b.pending).toBe(0);
  });
});
