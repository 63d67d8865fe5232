import { ArgumentError, StateError } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import { IntervalTree, type IntervalTreeNode } from '../src/index.ts';

type Snap = [number, number, string][];

function snapshot(tree: IntervalTree<string>): Snap {
  return [...tree].map((n) => [n.start, n.last, n.value]);
}

function overlaps(tree: IntervalTree<string>, start: number, last: number): string[] {
  const out: string[] = [];
  for (let n = tree.iterFirst(start, last); n !== null; n = tree.iterNext(n, start, last)) out.push(n.value);
  return out;
}

function sample(): IntervalTree<string> {
  const tree = new IntervalTree<string>();
  tree.insert(10, 19, 'a');
  tree.insert(30, 39, 'b');
  tree.insert(0, 100, 'c');
  tree.insert(20, 20, 'd');
  tree.insert(40, 49, 'e');
  tree.checkInvariants();
  return tree;
}

describe('insert', () => {
  it('returns a node with the interval and value, and counts it', () => {
    const tree = new IntervalTree<string>();
    expect(tree.size).toBe(0);
    const n = tree.insert(0x1000, 0x1fff, 'x');
    expect(n.start).toBe(0x1000);
    expect(n.last).toBe(0x1fff);
    expect(n.value).toBe('x');
    expect(tree.size).toBe(1);
    expect(tree.has(n)).toBe(true);
    tree.checkInvariants();
  });

  it('keeps nodes in start order, equal starts in insertion order', () => {
    const tree = new IntervalTree<string>();
    tree.insert(5, 9, 'p');
    tree.insert(1, 100, 'q');
    tree.insert(5, 6, 'r');
    tree.insert(5, 9, 's');
    tree.insert(3, 3, 't');
    tree.checkInvariants();
    expect(snapshot(tree)).toEqual([
      [1, 100, 'q'],
      [3, 3, 't'],
      [5, 9, 'p'],
      [5, 6, 'r'],
      [5, 9, 's'],
    ]);
  });

  it('accepts single-point intervals and the ends of the safe-integer range', () => {
    const tree = new IntervalTree<string>();
    const max = Number.MAX_SAFE_INTEGER;
    tree.insert(0, 0, 'zero');
    tree.insert(max, max, 'top');
    tree.insert(0, max, 'all');
    tree.insert(2 ** 52, 2 ** 52 + 4095, 'high page');
    tree.checkInvariants();
    expect(overlaps(tree, max, max)).toEqual(['all', 'top']);
    expect(overlaps(tree, 2 ** 52 + 4095, 2 ** 52 + 4095)).toEqual(['all', 'high page']);
    expect(overlaps(tree, 2 ** 52 + 4096, max - 1)).toEqual(['all']);
    expect(overlaps(tree, 0, 0)).toEqual(['zero', 'all']);
  });

  it('distinguishes addresses above 2^32 that share their low 32 bits', () => {
    const tree = new IntervalTree<string>();
    tree.insert(0x1_0000_0000, 0x1_0000_0fff, 'hi');
    tree.insert(0, 0xfff, 'lo');
    expect(overlaps(tree, 0, 0)).toEqual(['lo']);
    expect(overlaps(tree, 0x1_0000_0000, 0x1_0000_0000)).toEqual(['hi']);
  });

  const bad: [string, number, number, string][] = [
    ['negative start', -1, 10, 'start'],
    ['fractional start', 1.5, 10, 'start'],
    ['NaN start', Number.NaN, 10, 'start'],
    ['fractional last', 1, 10.5, 'last'],
    ['NaN last', 1, Number.NaN, 'last'],
    ['infinite last', 1, Number.POSITIVE_INFINITY, 'last'],
    ['last above 2^53 - 1', 0, 2 ** 53, 'last'],
    ['start above 2^53 - 1', 2 ** 53, 2 ** 53, 'start'],
    ['last < start', 10, 9, 'last'],
  ];
  for (const [what, start, last, arg] of bad) {
    it(`rejects ${what} with an ArgumentError and leaves the tree unchanged`, () => {
      const tree = sample();
      const before = snapshot(tree);
      let error: unknown;
      try {
        tree.insert(start, last, 'bad');
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(ArgumentError);
      expect((error as ArgumentError).fn).toBe('intervalTreeInsert');
      expect((error as ArgumentError).argument).toBe(arg);
      expect(snapshot(tree)).toEqual(before);
      expect(tree.size).toBe(5);
      tree.checkInvariants();
    });
  }
});

describe('remove', () => {
  it('unlinks the node and keeps the rest', () => {
    const tree = sample();
    const nodes = [...tree];
    const c = nodes.find((n) => n.value === 'c')!;
    tree.remove(c);
    expect(tree.has(c)).toBe(false);
    expect(tree.size).toBe(4);
    tree.checkInvariants();
    expect(snapshot(tree).map((s) => s[2])).toEqual(['a', 'd', 'b', 'e']);
    expect(overlaps(tree, 50, 60)).toEqual([]);
  });

  it('removes one of several equal intervals, the very one given', () => {
    const tree = new IntervalTree<string>();
    const n1 = tree.insert(7, 8, 'one');
    tree.insert(7, 8, 'two');
    tree.insert(7, 8, 'three');
    tree.remove(n1);
    tree.checkInvariants();
    expect(overlaps(tree, 8, 8)).toEqual(['two', 'three']);
  });

  it('throws a StateError when removing twice, and leaves the tree unchanged', () => {
    const tree = sample();
    const a = tree.iterFirst(10, 10)!;
    expect(a.value).toBe('c');
    tree.remove(a);
    const before = snapshot(tree);
    expect(() => tree.remove(a)).toThrow(StateError);
    expect(snapshot(tree)).toEqual(before);
    expect(tree.size).toBe(4);
    tree.checkInvariants();
  });

  it("throws a StateError for another tree's node, and leaves both trees unchanged", () => {
    const tree = sample();
    const other = new IntervalTree<string>();
    const foreign = other.insert(10, 19, 'a');
    const before = snapshot(tree);
    expect(() => tree.remove(foreign)).toThrow(/another tree/);
    expect(snapshot(tree)).toEqual(before);
    expect(other.has(foreign)).toBe(true);
    expect(tree.has(foreign)).toBe(false);
    tree.checkInvariants();
    other.checkInvariants();
  });

  it('empties the tree when every node is removed, in any order', () => {
    const tree = new IntervalTree<string>();
    const nodes: IntervalTreeNode<string>[] = [];
    for (let i = 0; i < 200; i++)
      nodes.push(tree.insert((i * 37) % 101, ((i * 37) % 101) + (i % 7), String(i)));
    tree.checkInvariants();
    for (let i = 0; i < 200; i++) {
      tree.remove(nodes[(i * 73) % 200]!);
      if (i % 10 === 0) tree.checkInvariants();
    }
    expect(tree.size).toBe(0);
    expect(tree.first()).toBeNull();
    expect(tree.iterFirst(0, Number.MAX_SAFE_INTEGER)).toBeNull();
    tree.checkInvariants();
  });
});

describe('iterFirst / iterNext', () => {
  it('finds overlaps with inclusive ends, in start order', () => {
    const tree = sample();
    expect(overlaps(tree, 19, 19)).toEqual(['c', 'a']);
    expect(overlaps(tree, 20, 20)).toEqual(['c', 'd']);
    expect(overlaps(tree, 21, 29)).toEqual(['c']);
    expect(overlaps(tree, 19, 30)).toEqual(['c', 'a', 'd', 'b']);
    expect(overlaps(tree, 0, Number.MAX_SAFE_INTEGER)).toEqual(['c', 'a', 'd', 'b', 'e']);
    expect(overlaps(tree, 101, 200)).toEqual([]);
  });

  it('returns null on an empty tree and for queries outside every interval', () => {
    const tree = new IntervalTree<string>();
    expect(tree.iterFirst(0, 10)).toBeNull();
    tree.insert(100, 200, 'x');
    expect(tree.iterFirst(0, 99)).toBeNull();
    expect(tree.iterFirst(201, 300)).toBeNull();
    expect(tree.iterFirst(200, 300)!.value).toBe('x');
    expect(tree.iterFirst(0, 100)!.value).toBe('x');
  });

  it('skips nodes that start inside the range of an earlier long interval but end before the query', () => {
    const tree = new IntervalTree<string>();
    tree.insert(0, 1000, 'long');
    for (let i = 1; i < 50; i++) tree.insert(i * 10, i * 10 + 2, `short${i}`);
    tree.insert(600, 700, 'mid');
    tree.checkInvariants();
    expect(overlaps(tree, 505, 507)).toEqual(['long']);
    expect(overlaps(tree, 483, 489)).toEqual(['long']);
    expect(overlaps(tree, 481, 605)).toEqual(['long', 'short48', 'short49', 'mid']);
  });

  it('iterNext stops at an ancestor that starts right after the query', () => {
    const tree = new IntervalTree<string>();
    tree.insert(6, 10, 'parent');
    tree.insert(0, 5, 'child');
    expect(overlaps(tree, 0, 5)).toEqual(['child']);
    expect(overlaps(tree, 5, 6)).toEqual(['child', 'parent']);
  });

  it('rejects bad queries with an ArgumentError', () => {
    const tree = sample();
    expect(() => tree.iterFirst(5, 4)).toThrow(ArgumentError);
    expect(() => tree.iterFirst(-1, 4)).toThrow(ArgumentError);
    expect(() => tree.iterFirst(0, 2 ** 53)).toThrow(ArgumentError);
    const n = tree.iterFirst(0, 10)!;
    expect(() => tree.iterNext(n, 0.5, 10)).toThrow(ArgumentError);
    expect(() => tree.forEachOverlap(3, 2, () => {})).toThrow(ArgumentError);
    tree.checkInvariants();
  });

  it('iterNext throws a StateError for a node that is not in the tree', () => {
    const tree = sample();
    const n = tree.iterFirst(0, 10)!;
    tree.remove(n);
    expect(() => tree.iterNext(n, 0, 10)).toThrow(StateError);
  });
});

describe('record walk (iterFirstRecord / iterNextRecord)', () => {
  function byRecord(tree: IntervalTree<string>, start: number, last: number): string[] {
    const out: string[] = [];
    for (let r = tree.iterFirstRecord(start, last); r !== 0; r = tree.iterNextRecord(r, start, last)) {
      out.push(tree.recordValue(r));
      expect(tree.recordNode(r).value).toBe(tree.recordValue(r));
    }
    return out;
  }

  it('visits the same values in the same order as iterFirst/iterNext, through removes and reuse', () => {
    const tree = new IntervalTree<string>();
    const live: IntervalTreeNode<string>[] = [];
    let x = 12345;
    const rand = (m: number) => {
      x = (x * 1103515245 + 12345) % 2147483648;
      return x % m;
    };
    for (let i = 0; i < 3000; i++) {
      if (live.length > 0 && rand(3) === 0) tree.remove(live.splice(rand(live.length), 1)[0]!);
      const s = rand(5000) * 4096;
      live.push(tree.insert(s, s + (1 + rand(64)) * 4096 - 1, `v${i}`));
      if (i % 100 === 0) {
        const q = rand(5000) * 4096;
        expect(byRecord(tree, q, q + 2 ** 21 - 1)).toEqual(overlaps(tree, q, q + 2 ** 21 - 1));
      }
    }
    tree.checkInvariants();
    expect(byRecord(tree, 0, Number.MAX_SAFE_INTEGER)).toEqual(overlaps(tree, 0, Number.MAX_SAFE_INTEGER));
  });

  it('returns 0 for no overlap and rejects records that hold no node', () => {
    const tree = sample();
    expect(tree.iterFirstRecord(200, 300)).toBe(0);
    const r = tree.iterFirstRecord(10, 10);
    expect(tree.recordValue(r)).toBe('c');
    tree.remove(tree.recordNode(r));
    expect(() => tree.recordValue(r)).toThrow(StateError);
    expect(() => tree.iterNextRecord(r, 10, 10)).toThrow(StateError);
    expect(() => tree.recordValue(0)).toThrow(StateError);
    expect(() => tree.recordNode(1.5)).toThrow(StateError);
    expect(() => tree.iterFirstRecord(5, 4)).toThrow(ArgumentError);
  });
});

describe('forEachOverlap', () => {
  it('visits the same nodes as iterFirst/iterNext', () => {
    const tree = sample();
    const seen: string[] = [];
    tree.forEachOverlap(15, 35, (n) => {
      seen.push(n.value);
    });
    expect(seen).toEqual(overlaps(tree, 15, 35));
    expect(seen).toEqual(['c', 'a', 'd', 'b']);
  });

  it('stops when the visitor returns false', () => {
    const tree = sample();
    const seen: string[] = [];
    tree.forEachOverlap(0, 100, (n) => {
      seen.push(n.value);
      return seen.length < 2;
    });
    expect(seen).toEqual(['c', 'a']);
  });

  it('throws a StateError when the visitor modifies the tree', () => {
    const tree = sample();
    expect(() =>
      tree.forEachOverlap(0, 100, (n) => {
        tree.remove(n);
      }),
    ).toThrow(StateError);
    expect(() =>
      tree.forEachOverlap(0, 100, () => {
        tree.insert(1, 2, 'new');
      }),
    ).toThrow(StateError);
    tree.checkInvariants();
  });
});

describe('iteration, first/next, clear', () => {
  it('iterates all nodes in order and first/next agree with it', () => {
    const tree = sample();
    const viaNext: string[] = [];
    for (let n = tree.first(); n !== null; n = tree.next(n)) viaNext.push(n.value);
    expect(viaNext).toEqual(snapshot(tree).map((s) => s[2]));
    expect(viaNext).toEqual(['c', 'a', 'd', 'b', 'e']);
  });

  it('the iterator throws a StateError when the tree changes under it', () => {
    const tree = sample();
    expect(() => {
      for (const n of tree) tree.remove(n);
    }).toThrow(StateError);
  });

  it('clear empties the tree and detaches every node', () => {
    const tree = sample();
    const nodes = [...tree];
    tree.clear();
    expect(tree.size).toBe(0);
    expect([...tree]).toEqual([]);
    tree.checkInvariants();
    for (const n of nodes) {
      expect(tree.has(n)).toBe(false);
      expect(() => tree.remove(n)).toThrow(StateError);
    }
    const again = tree.insert(1, 1, 'again');
    expect(overlaps(tree, 0, 5)).toEqual(['again']);
    expect(tree.has(again)).toBe(true);
    tree.checkInvariants();
  });
});

describe('checkInvariants', () => {
  it('detects a corrupted subtreeLast, colour and order', () => {
    const tree = sample();
    const root = tree.iterFirst(0, 100)!; // any node
    const saved = root.subtreeLast;
    root.subtreeLast = saved + 1;
    expect(() => tree.checkInvariants()).toThrow(/subtreeLast/);
    root.subtreeLast = saved;
    tree.checkInvariants();
    let top = root;
    while (top.parent !== null) top = top.parent;
    top.color = 0;
    expect(() => tree.checkInvariants()).toThrow(/root is red/);
    top.color = 1;
    (top as { start: number }).start = Number.MAX_SAFE_INTEGER - 1;
    expect(() => tree.checkInvariants()).toThrow(/order|start > last/);
  });

  it('holds for a sequential build of 10 000 nodes (the red-black worst case for naive BSTs)', () => {
    const tree = new IntervalTree<number>();
    for (let i = 0; i < 10_000; i++) tree.insert(i * 4096, i * 4096 + 4095, i);
    tree.checkInvariants();
    // Height bound of a red-black tree: 2 log2(n + 1).
    let maxDepth = 0;
    for (const n of tree) {
      let d = 0;
      for (let p: IntervalTreeNode<number> | null = n; p !== null; p = p.parent) d++;
      if (d > maxDepth) maxDepth = d;
    }
    expect(maxDepth).toBeLessThanOrEqual(2 * Math.log2(10_001));
  });
});

describe('README example', () => {
  it('finds both notifiers of the example, in start order, and rejects the double remove', () => {
    const tree = new IntervalTree<string>();
    const a = tree.insert(0x7f00_0000_0000, 0x7f00_001f_ffff, 'gpu buffer');
    tree.insert(0x7f00_0010_0000, 0x7f00_0010_0fff, 'one page');
    const seen: string[] = [];
    const [s, l] = [0x7f00_0010_0000, 0x7f00_0010_1fff];
    for (let n = tree.iterFirst(s, l); n; n = tree.iterNext(n, s, l)) seen.push(n.value);
    expect(seen).toEqual(['gpu buffer', 'one page']);
    tree.remove(a);
    expect(() => tree.remove(a)).toThrow(StateError);
  });
});
