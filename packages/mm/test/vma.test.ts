import { describe, expect, it } from 'vitest';
import { VM_READ, VM_WRITE } from '../src/constants.ts';
import type { Mm } from '../src/mm.ts';
import { Vma, VmaTree, vmasMergeable } from '../src/vma.ts';

const P = 4096;
function v(start: number, end: number, flags = VM_READ): Vma {
  return new Vma(null as unknown as Mm, start * P, end * P, flags, start, null, null);
}

describe('VmaTree', () => {
  it('find / lookup / prev / next over many VMAs (leaf splits included)', () => {
    const t = new VmaTree();
    const all: Vma[] = [];
    // insert in a scrambled order
    for (let k = 0; k < 2000; k++) {
      const i = (k * 7919) % 2000;
      const x = v(i * 3, i * 3 + 2);
      all[i] = x;
      t.insert(x);
    }
    expect(t.size).toBe(2000);
    expect(t.toArray()).toEqual(all);
    expect(t.find(0)).toBe(all[0]);
    expect(t.find(2 * P)).toBe(all[1]); // in the gap after vma 0
    expect(t.lookup(2 * P)).toBeNull();
    expect(t.lookup(3 * P + 5)).toBe(all[1]);
    expect(t.find(6000 * P)).toBeNull();
    expect(t.next(all[700]!)).toBe(all[701]);
    expect(t.prev(all[700]!)).toBe(all[699]);
    expect(t.prev(all[0]!)).toBeNull();
    expect(t.findPrev(3 * 700 * P)).toBe(all[699]);
    expect(t.overlapping(1 * P, 7 * P)).toEqual([all[0], all[1], all[2]]);
    for (let i = 0; i < 2000; i += 2) t.remove(all[i]!);
    expect(t.size).toBe(1000);
    expect(t.lookup(0)).toBeNull();
    expect(t.find(0)).toBe(all[1]);
    expect([...t]).toEqual(all.filter((_, i) => i % 2 === 1));
  });

  it('finds the highest gap top-down', () => {
    const t = new VmaTree();
    t.insert(v(90, 100));
    t.insert(v(70, 85));
    expect(t.findGapTopDown(5 * P, 0, 100 * P, P)).toBe(85 * P);
    expect(t.findGapTopDown(6 * P, 0, 100 * P, P)).toBe(64 * P);
    expect(t.findGapTopDown(200 * P, 0, 100 * P, P)).toBe(-1);
    expect(t.findGapTopDown(2 * P, 0, 100 * P, 16 * P)).toBe(64 * P);
  });

  it('merge rules follow is_mergeable_vma', () => {
    expect(vmasMergeable(v(0, 2), v(2, 4))).toBe(true);
    expect(vmasMergeable(v(0, 2), v(3, 4))).toBe(false);
    expect(vmasMergeable(v(0, 2), v(2, 4, VM_READ | VM_WRITE))).toBe(false);
    const b = v(2, 4);
    b.pgoff = 99;
    expect(vmasMergeable(v(0, 2), b)).toBe(false);
  });
});
