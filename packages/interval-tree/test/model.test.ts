/**
 * Random operation sequences against a brute-force array model: every query must return
 * exactly the overlapping intervals, in start order with ties in insertion order.
 */
import { Rng } from '@hmmkit/sim';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IntervalTree, type IntervalTreeNode } from '../src/index.ts';

interface Entry {
  node: IntervalTreeNode<number>;
  seq: number;
}

/** The brute-force model: an array of live entries, kept sorted by (start, seq). */
class Model {
  readonly entries: Entry[] = [];
  private seq = 0;

  add(node: IntervalTreeNode<number>): void {
    const e = { node, seq: this.seq++ };
    let i = this.entries.length;
    while (i > 0 && this.entries[i - 1]!.node.start > node.start) i--;
    this.entries.splice(i, 0, e);
  }

  delete(index: number): IntervalTreeNode<number> {
    return this.entries.splice(index, 1)[0]!.node;
  }

  query(start: number, last: number): number[] {
    return this.entries.filter((e) => e.node.start <= last && e.node.last >= start).map((e) => e.node.value);
  }
}

function walk(tree: IntervalTree<number>, start: number, last: number): number[] {
  const out: number[] = [];
  for (let n = tree.iterFirst(start, last); n !== null; n = tree.iterNext(n, start, last)) out.push(n.value);
  return out;
}

function visit(tree: IntervalTree<number>, start: number, last: number): number[] {
  const out: number[] = [];
  tree.forEachOverlap(start, last, (n) => {
    out.push(n.value);
  });
  return out;
}

type Op =
  | { kind: 'insert'; start: number; len: number }
  | { kind: 'remove'; pick: number }
  | { kind: 'query'; start: number; len: number }
  | { kind: 'badInsert'; start: number; last: number }
  | { kind: 'removeStale'; pick: number };

function run(ops: Op[], scale: number): void {
  const tree = new IntervalTree<number>();
  const model = new Model();
  const removed: IntervalTreeNode<number>[] = [];
  let id = 0;
  let step = 0;
  for (const op of ops) {
    step++;
    switch (op.kind) {
      case 'insert': {
        // Whole "pages" of `scale` units: [start, start + (len + 1) * scale - 1].
        const start = op.start * scale;
        model.add(tree.insert(start, start + (op.len + 1) * scale - 1, id++));
        break;
      }
      case 'remove': {
        if (model.entries.length === 0) break;
        const node = model.delete(op.pick % model.entries.length);
        tree.remove(node);
        removed.push(node);
        break;
      }
      case 'removeStale': {
        if (removed.length === 0) break;
        const node = removed[op.pick % removed.length]!;
        expect(() => tree.remove(node)).toThrow();
        break;
      }
      case 'badInsert': {
        expect(() => tree.insert(op.start, op.last, -1)).toThrow();
        break;
      }
      case 'query': {
        const start = op.start * scale;
        const last = start + (op.len + 1) * scale - 1;
        const expected = model.query(start, last);
        expect(walk(tree, start, last)).toEqual(expected);
        expect(visit(tree, start, last)).toEqual(expected);
        break;
      }
    }
    expect(tree.size).toBe(model.entries.length);
    if (step % 64 === 0 || model.entries.length < 16) tree.checkInvariants();
  }
  tree.checkInvariants();
  expect([...tree].map((n) => n.value)).toEqual(model.entries.map((e) => e.node.value));
}

function opArb(keySpace: number, maxLen: number, maxQueryLen: number): fc.Arbitrary<Op> {
  const insert = fc.record({
    kind: fc.constant('insert' as const),
    start: fc.nat(keySpace),
    len: fc.nat(maxLen),
  });
  const query = fc.record({
    kind: fc.constant('query' as const),
    start: fc.nat(keySpace),
    len: fc.nat(maxQueryLen),
  });
  return fc.oneof(
    { weight: 5, arbitrary: insert },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('remove' as const), pick: fc.nat() }) },
    { weight: 4, arbitrary: query },
    {
      weight: 1,
      arbitrary: fc
        .constantFrom<[number, number]>(
          [-1, 5],
          [0.5, 5],
          [5, 4],
          [0, 2 ** 53],
          [Number.NaN, 1],
          [1, Number.NaN],
        )
        .map(([start, last]) => ({ kind: 'badInsert' as const, start, last })),
    },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('removeStale' as const), pick: fc.nat() }) },
  );
}

describe('against a brute-force model', () => {
  it('fast-check: small key space (many equal starts and nested intervals)', () => {
    fc.assert(
      fc.property(fc.array(opArb(64, 8, 16), { minLength: 50, maxLength: 1000, size: 'max' }), (ops) =>
        run(ops, 1),
      ),
      { numRuns: 60, seed: 0x5eed },
    );
  });

  it('fast-check: sparse short intervals (matches separated by gaps)', () => {
    fc.assert(
      fc.property(fc.array(opArb(2048, 4, 16), { minLength: 50, maxLength: 1000, size: 'max' }), (ops) =>
        run(ops, 1),
      ),
      { numRuns: 60, seed: 0xcafe },
    );
  });

  it('fast-check: page-aligned addresses above 2^32 up to 2^52', () => {
    fc.assert(
      fc.property(
        fc.array(opArb(1 << 20, 1 << 12, 1 << 16), { minLength: 50, maxLength: 1000, size: 'max' }),
        (ops) => run(ops, 2 ** 32),
      ),
      { numRuns: 30, seed: 0xbeef },
    );
  });

  it('seeded loop: 20 000 steps of churn around a thousand live intervals', () => {
    const rng = new Rng(42);
    const ops: Op[] = [];
    for (let i = 0; i < 20_000; i++) {
      const r = rng.below(10);
      // Grow to about 1 000 live nodes, then churn: remove as often as insert.
      if (r < (i < 2_000 ? 6 : 4))
        ops.push({ kind: 'insert', start: rng.below(100_000), len: rng.below(2_000) });
      else if (r < 8) ops.push({ kind: 'remove', pick: rng.nextU32() });
      else ops.push({ kind: 'query', start: rng.below(100_000), len: rng.below(r === 9 ? 20_000 : 50) });
    }
    run(ops, 4096);
  });
});
