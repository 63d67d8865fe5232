import { ArgumentError } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  AttrMap,
  type AttrState,
  DEFAULT_ATTRS,
  deviceLoc,
  diffAttrStates,
  LOC,
  type RangeAttrs,
} from '../src/index.ts';

const M = 0x100000;
const list = (s: AttrState): [number, number, number][] =>
  s.intervals.map((iv) => [iv.start / M, iv.end / M, iv.attrs.preferredLoc]);

describe('AttrMap', () => {
  it('splits on advise, merges equal neighbours and drops defaults', () => {
    const m = new AttrMap({ numDevices: 2 });
    m.advise(0, 8 * M, { preferredLoc: deviceLoc(0) });
    m.advise(2 * M, 4 * M, { preferredLoc: LOC.SYSMEM });
    expect(list(m.state)).toEqual([
      [0, 2, 1],
      [2, 4, 0],
      [4, 8, 1],
    ]);
    // setting the middle back merges all three
    m.advise(2 * M, 4 * M, { preferredLoc: deviceLoc(0) });
    expect(list(m.state)).toEqual([[0, 8, 1]]);
    // adjacent advise with equal attrs merges
    m.advise(8 * M, 9 * M, { preferredLoc: deviceLoc(0) });
    expect(list(m.state)).toEqual([[0, 9, 1]]);
    // back to the default removes the interval
    m.advise(0, 3 * M, { preferredLoc: LOC.UNDEFINED });
    expect(list(m.state)).toEqual([[3, 9, 1]]);
    m.advise(0, 16 * M, { preferredLoc: LOC.UNDEFINED });
    expect(m.state.intervals).toEqual([]);
  });

  it('updates fields independently, with accessedBy bit edits', () => {
    const m = new AttrMap({ numDevices: 3 });
    m.advise(0, 4 * M, { setAccessedBy: 0b001 });
    m.advise(2 * M, 6 * M, { setAccessedBy: 0b100, readMostly: true });
    m.advise(1 * M, 3 * M, { clearAccessedBy: 0b001, granularity: 4 });
    const at = (va: number): RangeAttrs => m.lookup(va);
    expect(at(0)).toEqual({ ...DEFAULT_ATTRS, accessedBy: 1 });
    expect(at(M)).toEqual({ ...DEFAULT_ATTRS, granularity: 4 });
    expect(at(2 * M)).toEqual({ ...DEFAULT_ATTRS, accessedBy: 4, readMostly: true, granularity: 4 });
    expect(at(3 * M)).toEqual({ ...DEFAULT_ATTRS, accessedBy: 5, readMostly: true });
    expect(at(4 * M)).toEqual({ ...DEFAULT_ATTRS, accessedBy: 4, readMostly: true });
    expect(at(6 * M)).toBe(DEFAULT_ATTRS);
    expect(m.segments(0, 7 * M).map((s) => [s.start / M, s.end / M])).toEqual([
      [0, 1],
      [1, 2],
      [2, 3],
      [3, 4],
      [4, 6],
      [6, 7],
    ]);
  });

  it('snapshots are immutable and diffable; patches undo and redo', () => {
    const m = new AttrMap({ numDevices: 2 });
    m.advise(0, 4 * M, { preferredLoc: deviceLoc(1) });
    const before = m.state;
    const change = m.advise(M, 2 * M, { readMostly: true });
    const after = m.state;
    expect(Object.isFrozen(before.intervals)).toBe(true);
    expect(list(before)).toEqual([[0, 4, 2]]);
    expect(diffAttrStates(before, after)).toEqual([
      {
        start: M,
        end: 2 * M,
        before: { ...DEFAULT_ATTRS, preferredLoc: 2 },
        after: { ...DEFAULT_ATTRS, preferredLoc: 2, readMostly: true },
      },
    ]);
    m.applyPatches(change.inversePatches);
    expect(diffAttrStates(before, m.state)).toEqual([]);
    m.applyPatches(change.patches);
    expect(diffAttrStates(after, m.state)).toEqual([]);
    m.restore(before);
    expect(m.state).toBe(before);
    // a no-op advise yields no patches and keeps the same state object
    const s = m.state;
    expect(m.advise(0, M, { preferredLoc: deviceLoc(1) }).patches).toEqual([]);
    expect(m.state).toBe(s);
  });

  it('rejects bad input and leaves the state unchanged', () => {
    const m = new AttrMap({ numDevices: 2 });
    m.advise(0, 4 * M, { preferredLoc: deviceLoc(0) });
    const s = m.state;
    expect(() => m.advise(0x800, 4 * M, { readMostly: true })).toThrow(ArgumentError);
    expect(() => m.advise(4 * M, 4 * M, { readMostly: true })).toThrow(ArgumentError);
    expect(() => m.advise(0, 4 * M + 1, { readMostly: true })).toThrow(ArgumentError);
    expect(() => m.advise(0, M, { preferredLoc: 3 })).toThrow(ArgumentError);
    expect(() => m.advise(0, M, { preferredLoc: -2 })).toThrow(ArgumentError);
    expect(() => m.advise(0, M, { accessedBy: 4 })).toThrow(ArgumentError);
    expect(() => m.advise(0, M, { setAccessedBy: 0.5 })).toThrow(ArgumentError);
    expect(() => m.advise(0, M, { granularity: 64 })).toThrow(ArgumentError);
    expect(() => new AttrMap({ numDevices: 32 })).toThrow(ArgumentError);
    expect(m.state).toBe(s);
  });

  it('agrees with a per-page reference model on a random advise sequence', () => {
    const m = new AttrMap({ numDevices: 4 });
    const pages = 64;
    const ref: RangeAttrs[] = Array.from({ length: pages }, () => DEFAULT_ATTRS);
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    for (let step = 0; step < 300; step++) {
      const a = rnd(pages);
      const b = a + 1 + rnd(pages - a);
      const which = rnd(4);
      const u =
        which === 0
          ? { preferredLoc: rnd(6) - 1 }
          : which === 1
            ? { setAccessedBy: rnd(16) }
            : which === 2
              ? { clearAccessedBy: rnd(16) }
              : { readMostly: rnd(2) === 1 };
      m.advise(a * 4096, b * 4096, u);
      for (let p = a; p < b; p++) {
        const r = ref[p]!;
        ref[p] = {
          preferredLoc: u.preferredLoc ?? r.preferredLoc,
          accessedBy: ((r.accessedBy | (u.setAccessedBy ?? 0)) & ~(u.clearAccessedBy ?? 0)) >>> 0,
          readMostly: u.readMostly ?? r.readMostly,
          granularity: r.granularity,
        };
      }
      const iv = m.state.intervals;
      for (let k = 1; k < iv.length; k++) {
        expect(iv[k]!.start).toBeGreaterThanOrEqual(iv[k - 1]!.end);
        if (iv[k]!.start === iv[k - 1]!.end) expect(iv[k]!.attrs).not.toEqual(iv[k - 1]!.attrs);
      }
      for (const x of iv) expect(x.attrs).not.toEqual(DEFAULT_ATTRS);
    }
    for (let p = 0; p < pages; p++) expect(m.lookup(p * 4096)).toEqual(ref[p]);
  });
});

describe('AttrMap intervals and change listeners', () => {
  it('intervalAt gives the maximal span of equal attributes around an address', () => {
    const m = new AttrMap({ numDevices: 2 });
    m.advise(4 * M, 8 * M, { preferredLoc: deviceLoc(1) });
    const at = (va: number) => {
      const iv = m.intervalAt(va);
      return [
        iv.start / M,
        iv.end === Number.MAX_SAFE_INTEGER ? Infinity : iv.end / M,
        iv.attrs.preferredLoc,
      ];
    };
    expect(at(M)).toEqual([0, 4, LOC.UNDEFINED]);
    expect(at(5 * M)).toEqual([4, 8, deviceLoc(1)]);
    expect(at(9 * M)).toEqual([8, Infinity, LOC.UNDEFINED]);
  });

  it('onChange hears every changed span (advise, restore, undo), nothing for a no-op or once unregistered', () => {
    const m = new AttrMap({ numDevices: 2 });
    const heard: [number, number][] = [];
    const off = m.onChange((s, e) => heard.push([s / M, e / M]));
    const c = m.advise(2 * M, 6 * M, { readMostly: true });
    expect(heard).toEqual([[2, 6]]);
    m.advise(2 * M, 6 * M, { readMostly: true }); // no change
    expect(heard.length).toBe(1);
    const snap = m.state;
    m.advise(4 * M, 10 * M, { granularity: 0 });
    // maximal spans with one before/after value each
    expect(heard.slice(1)).toEqual([
      [4, 6],
      [6, 10],
    ]);
    m.restore(snap);
    expect(heard.slice(3)).toEqual([
      [4, 6],
      [6, 10],
    ]);
    m.applyPatches(c.inversePatches);
    expect(heard.slice(5)).toEqual([[2, 6]]);
    off();
    m.advise(0, M, { readMostly: true });
    expect(heard.length).toBe(6);
  });
});
