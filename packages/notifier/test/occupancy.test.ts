import { Rng } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import { NotifierOccupancy } from '../src/occupancy.ts';

const MiB2 = 2 ** 21;

/** Brute force: does some live interval overlap [s, l]? */
function overlaps(live: [number, number][], s: number, l: number): boolean {
  return live.some(([a, b]) => a <= l && s <= b);
}

describe('NotifierOccupancy (the fast miss in front of the notifier interval tree)', () => {
  it('never answers "no overlap" when a live notifier overlaps, and answers it for clear misses', () => {
    const rng = new Rng(7);
    const occ = new NotifierOccupancy();
    const live: [number, number][] = [];
    const sizes = [4096, MiB2, 3 * MiB2 + 4096, 2 ** 30, 2 ** 31 + 5 * MiB2, 2 ** 39 + MiB2];
    let misses = 0;
    for (let step = 0; step < 4000; step++) {
      if (live.length < 50 && rng.below(3) !== 0) {
        const start = rng.below(2 ** 20) * 4096 * 64; // up to 2^38: blocks of every level collide often
        const big = rng.below(40) === 0; // now and then one counted at the 512 GiB level
        const last = start + sizes[big ? 5 : rng.below(5)]! - 1;
        occ.add(start, last);
        live.push([start, last]);
      } else if (live.length !== 0) {
        const [s, l] = live.splice(rng.below(live.length), 1)[0]!;
        occ.remove(s, l);
      }
      for (let q = 0; q < 8; q++) {
        const s = rng.below(2 ** 20) * 4096 * 64 + rng.below(1024) * 4096;
        const l = s + sizes[rng.below(3)]! - 1;
        const truth = overlaps(live, s, l);
        const may = occ.mayOverlap(s, l);
        if (truth) expect(may).toBe(true);
        if (!may) misses++;
      }
    }
    expect(misses).toBeGreaterThan(5000); // the filter does answer most misses
  });

  it('a notifier wider than 64 blocks of 512 GiB turns the filter off until it is removed', () => {
    const occ = new NotifierOccupancy();
    occ.add(0, 2 ** 47 - 1);
    expect(occ.mayOverlap(2 ** 46, 2 ** 46 + 4095)).toBe(true);
    occ.remove(0, 2 ** 47 - 1);
    expect(occ.mayOverlap(2 ** 46, 2 ** 46 + 4095)).toBe(false);
  });

  it('counts: a block stays occupied until its last notifier goes, and the hash survives rehashing', () => {
    const occ = new NotifierOccupancy();
    const n = 5000; // several rehashes of the 1024-slot table
    for (let i = 0; i < n; i++) occ.add(i * 4 * MiB2, i * 4 * MiB2 + 4095);
    occ.add(0, 4095);
    for (let i = 0; i < n; i++) {
      expect(occ.mayOverlap(i * 4 * MiB2 + 8192, i * 4 * MiB2 + 12287)).toBe(true); // same block
      expect(occ.mayOverlap(i * 4 * MiB2 + MiB2, i * 4 * MiB2 + 2 * MiB2 - 1)).toBe(false); // next block
    }
    for (let i = 0; i < n; i++) occ.remove(i * 4 * MiB2, i * 4 * MiB2 + 4095);
    expect(occ.mayOverlap(0, 4095)).toBe(true); // the second notifier of block 0
    expect(occ.mayOverlap(4 * MiB2, 4 * MiB2 + 4095)).toBe(false);
    occ.remove(0, 4095);
    expect(occ.mayOverlap(0, 4095)).toBe(false);
  });
});
