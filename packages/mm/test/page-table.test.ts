import { describe, expect, it } from 'vitest';
import { PMD_SIZE, PUD_SIZE } from '../src/constants.ts';
import {
  PageTable,
  PageWalk,
  PTE_DEVICE_EXCLUSIVE,
  PTE_DEVICE_PRIVATE,
  PTE_DIRTY,
  PTE_MIGRATION,
  PTE_PRESENT,
  PTE_R,
  PTE_SPECIAL,
  PTE_SWAP,
  PTE_W,
  pteIsDeviceExclusive,
  pteIsDevicePrivate,
  pteIsMigration,
  pteIsNone,
  pteIsPresent,
  pteIsProtnone,
  pteIsSpecial,
  pteIsSwap,
  pteIsSwapLike,
  pteIsWritable,
  setEntry,
  WALK_HOLE,
  WALK_PMD_LEAF,
  WALK_PTE,
  WALK_PUD_LEAF,
} from '../src/page-table.ts';

describe('entry decoding', () => {
  it('classifies every entry type', () => {
    expect(pteIsNone(0)).toBe(true);
    const p = PTE_PRESENT | PTE_R | PTE_W;
    expect(pteIsPresent(p) && pteIsWritable(p) && !pteIsProtnone(p)).toBe(true);
    expect(pteIsProtnone(PTE_PRESENT)).toBe(true);
    expect(pteIsSpecial(PTE_PRESENT | PTE_R | PTE_SPECIAL)).toBe(true);
    expect(pteIsSwap(PTE_SWAP) && pteIsSwapLike(PTE_SWAP)).toBe(true);
    expect(pteIsMigration(PTE_MIGRATION | PTE_W) && pteIsWritable(PTE_MIGRATION | PTE_W)).toBe(true);
    expect(pteIsDevicePrivate(PTE_DEVICE_PRIVATE)).toBe(true);
    expect(pteIsDeviceExclusive(PTE_DEVICE_EXCLUSIVE | PTE_W)).toBe(true);
    expect(pteIsSwapLike(p)).toBe(false);
    expect(pteIsPresent(PTE_DEVICE_PRIVATE)).toBe(false);
  });
});

describe('PageTable', () => {
  const base = 0x7f0000000000;

  it('reports holes at the level that is empty', () => {
    const pt = new PageTable();
    const w = new PageWalk();
    pt.walkUnit(base + 4096, base + 10 * PUD_SIZE, w);
    expect(w.kind).toBe(WALK_HOLE);
    // no PUD table: the hole runs to the end of the 512 GiB PGD block, clipped to the walk end
    expect(w.end).toBe(base + 10 * PUD_SIZE);
    pt.pteTable(base + 3 * PMD_SIZE, true);
    pt.walkUnit(base, base + 10 * PUD_SIZE, w);
    expect(w.kind).toBe(WALK_HOLE);
    expect(w.end).toBe(base + PMD_SIZE); // empty PMD slot
    pt.walkUnit(base + PUD_SIZE, base + 10 * PUD_SIZE, w);
    expect(w.kind).toBe(WALK_HOLE);
    expect(w.end).toBe(base + 2 * PUD_SIZE); // empty PUD slot
    expect(pt.tables).toBe(3);
  });

  it('walks PTE tables by PMD-sized unit with the right index', () => {
    const pt = new PageTable();
    const a = base + 5 * PMD_SIZE + 7 * 4096;
    const t = pt.pteTable(a, true)!;
    setEntry(t, 7, 1234, PTE_PRESENT | PTE_R | PTE_DIRTY);
    expect(t.used).toBe(1);
    const w = new PageWalk();
    pt.walkUnit(a, a + 100 * PMD_SIZE, w);
    expect(w.kind).toBe(WALK_PTE);
    expect(w.index).toBe(7);
    expect(w.end).toBe(base + 6 * PMD_SIZE);
    expect(w.pte!.val[w.index]).toBe(1234);
    pt.walkUnit(a, a + 4096 * 3, w);
    expect(w.end).toBe(a + 4096 * 3);
    setEntry(t, 7, 0, 0);
    expect(t.used).toBe(0);
  });

  it('reports PMD and PUD leaves with their order and start', () => {
    const pt = new PageTable();
    const pmd = pt.pmdTable(base, true)!;
    setEntry(pmd, 3, 4096 * 2, PTE_PRESENT | PTE_R | PTE_W);
    const w = new PageWalk();
    pt.walkUnit(base + 3 * PMD_SIZE + 4096 * 9, base + PUD_SIZE, w);
    expect(w.kind).toBe(WALK_PMD_LEAF);
    expect(w.order).toBe(9);
    expect(w.leafStart).toBe(base + 3 * PMD_SIZE);
    expect(w.end).toBe(base + 4 * PMD_SIZE);
    expect(pt.pteTable(base + 3 * PMD_SIZE, true)).toBeNull(); // a leaf is not replaced
    const pud = pt.pudTable(base, true)!;
    const ui = Math.floor((base + 2 * PUD_SIZE) / PUD_SIZE) & 511;
    setEntry(pud, ui, 2 ** 18, PTE_PRESENT | PTE_R);
    pt.walkUnit(base + 2 * PUD_SIZE + 5 * PMD_SIZE, base + 4 * PUD_SIZE, w);
    expect(w.kind).toBe(WALK_PUD_LEAF);
    expect(w.order).toBe(18);
    expect(w.end).toBe(base + 3 * PUD_SIZE);
    expect(pt.pmdTable(base + 2 * PUD_SIZE, true)).toBeNull();
  });
});
