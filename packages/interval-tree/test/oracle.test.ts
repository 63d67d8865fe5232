/**
 * Differential tests: the same random operation stream applied to this tree,
 * @flatten-js/interval-tree and node-interval-tree must give the same overlap sets
 * (as sets: the libraries order ties differently).
 */
import FlattenIntervalTree from '@flatten-js/interval-tree';
import { Rng } from '@hmmkit/sim';
import fc from 'fast-check';
import { IntervalTree as NodeIntervalTree } from 'node-interval-tree';
import { describe, expect, it } from 'vitest';
import { IntervalTree, type IntervalTreeNode } from '../src/index.ts';

interface Rec {
  low: number;
  high: number;
  id: number;
}

function sorted(ids: number[]): number[] {
  return ids.sort((a, b) => a - b);
}

class Trio {
  readonly ours = new IntervalTree<number>();
  readonly flatten = new FlattenIntervalTree<number>();
  readonly nit = new NodeIntervalTree<Rec>();
  readonly live: { node: IntervalTreeNode<number>; rec: Rec }[] = [];
  /** Results seen, so a test can check its queries were not all empty. */
  hits = 0;
  private id = 0;

  insert(start: number, last: number): void {
    const id = this.id++;
    const node = this.ours.insert(start, last, id);
    this.flatten.insert([start, last], id);
    const rec = { low: start, high: last, id };
    expect(this.nit.insert(rec)).toBe(true);
    this.live.push({ node, rec });
  }

  remove(pick: number): void {
    if (this.live.length === 0) return;
    const i = pick % this.live.length;
    const { node, rec } = this.live[i]!;
    this.live[i] = this.live[this.live.length - 1]!;
    this.live.pop();
    this.ours.remove(node);
    expect(this.flatten.remove([rec.low, rec.high], rec.id)).toBeDefined();
    expect(this.nit.remove(rec)).toBe(true);
  }

  query(start: number, last: number): void {
    const ours: number[] = [];
    this.ours.forEachOverlap(start, last, (n) => {
      ours.push(n.value);
    });
    const flat = sorted(this.flatten.search([start, last]));
    this.hits += flat.length;
    expect(sorted(ours)).toEqual(flat);
    expect(sorted(this.nit.search(start, last).map((r) => r.id))).toEqual(flat);
  }
}

describe('differential against @flatten-js/interval-tree and node-interval-tree', () => {
  it('fast-check: random insert/remove/query streams over a small key space', () => {
    const op = fc.oneof(
      fc.tuple(fc.constant(0), fc.nat(200), fc.nat(30)),
      fc.tuple(fc.constant(1), fc.nat(), fc.nat()),
      fc.tuple(fc.constant(2), fc.nat(200), fc.nat(40)),
    );
    fc.assert(
      fc.property(fc.array(op, { minLength: 50, maxLength: 800, size: 'max' }), (ops) => {
        const t = new Trio();
        for (const [kind, a, b] of ops) {
          if (kind === 0) t.insert(a, a + b);
          else if (kind === 1) t.remove(a);
          else t.query(a, a + b);
        }
        t.ours.checkInvariants();
        expect(t.ours.size).toBe(t.live.length);
        expect(t.flatten.size).toBe(t.live.length);
      }),
      { numRuns: 40, seed: 7 },
    );
  });

  it('seeded loop: notifier-like page ranges over a 47-bit space, 10 000 steps', () => {
    const rng = new Rng(2024);
    const t = new Trio();
    const page = 4096;
    const span = 2 ** 47 / page;
    // Cluster addresses in a few 1 GiB regions so ranges overlap and queries hit.
    const bases = [0, 1, 2, 3].map(() => rng.below(span - 2 ** 20));
    for (let step = 0; step < 10_000; step++) {
      const r = rng.below(10);
      const base = bases[rng.below(4)]!;
      if (r < 4 || t.live.length < 50) {
        const start = (base + rng.below(2 ** 18)) * page;
        t.insert(start, start + rng.between(1, 512) * page - 1);
      } else if (r < 7) {
        t.remove(rng.nextU32());
      } else if (r < 8) {
        const a = (base + rng.below(2 ** 18)) * page + rng.below(page);
        t.query(a, a);
      } else if (r < 9) {
        // An address inside a live interval, as a fault on a mirrored page is.
        const { rec } = t.live[rng.below(t.live.length)]!;
        const a = rec.low + rng.below(rec.high - rec.low + 1);
        t.query(a, a);
      } else {
        const w = Math.floor((base + rng.below(2 ** 18)) / 512) * 512 * page;
        t.query(w, w + 512 * page - 1);
      }
    }
    t.ours.checkInvariants();
    expect(t.ours.size).toBe(t.live.length);
    expect(t.hits).toBeGreaterThan(1_000);
  });
});
