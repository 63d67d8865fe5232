import { ArgumentError, createSim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  APERTURE,
  amdGfx9,
  entryHex,
  FORMATS,
  nvMmuV3,
  PAGE_2M,
  PAGE_4K,
  PageTable,
  patIndexCount,
  patIndexOf,
  patIndexValid,
  WALK,
  XE2_PAT_TABLE,
  xe2,
} from '../src/index.ts';

const GiB = 2 ** 30;
const pt = () => new PageTable(createSim(), xe2);
const bit = (e: Uint32Array, b: number) => (b < 32 ? (e[0]! >>> b) & 1 : (e[1]! >>> (b - 32)) & 1);

describe('Intel Xe2 PPGTT format (xe_gtt_defs.h)', () => {
  it('4K PTE: PRESENT | RW | AE, DM for VRAM, address 51:12, PAT0/1/2/3/4 at 3, 4, 7, 62, 61', () => {
    const p = pt();
    p.map(0x20_0000, PAGE_4K, 0x89_a000, { pat: 0b11111 });
    const e = p.readEntry(0x20_0000, 3)!;
    // present 0, rw 1, pat0 3, pat1 4, pat2 7, ae 10, dm 11, address; pat3 62, pat4 61
    expect(entryHex(e, 0, 2)).toBe('0x60000000_0089ac9b');
    p.map(0x20_1000, PAGE_4K, 0x5000, { aperture: APERTURE.SYS, writable: false, pat: 0b01000 });
    const s = p.readEntry(0x20_1000, 3)!;
    expect([bit(s, 0), bit(s, 1), bit(s, 10), bit(s, 11), bit(s, 62), bit(s, 61)]).toEqual([
      1, 0, 0, 0, 1, 0,
    ]);
    const t = p.translate(0x20_1234);
    expect([t.status, t.pa, t.aperture, t.writable, t.atomic, t.pat]).toEqual([
      WALK.MAPPED,
      0x5234,
      APERTURE.SYS,
      false,
      false,
      8,
    ]);
  });

  it('an atomic-disabled mapping leaves AE clear; translate reports it', () => {
    const p = pt();
    p.map(0, PAGE_4K, 0x1000, { atomic: false });
    expect(bit(p.readEntry(0, 3)!, 10)).toBe(0);
    expect(p.translate(0).atomic).toBe(false);
    p.map(PAGE_4K, PAGE_4K, 0x2000);
    expect(p.translate(PAGE_4K).atomic).toBe(true);
  });

  it('2M and 1G leaves: PS at bit 7, PAT2 moves to bit 12, address kept', () => {
    const p = pt();
    p.map(PAGE_2M, PAGE_2M, 4 * PAGE_2M, { pat: 0b00100 });
    const h = p.readEntry(PAGE_2M, 2)!;
    expect([bit(h, 7), bit(h, 12), bit(h, 3), bit(h, 4)]).toEqual([1, 1, 0, 0]);
    expect(p.translate(PAGE_2M + 0x1234).pa).toBe(4 * PAGE_2M + 0x1234);
    expect(p.translate(PAGE_2M).pageSize).toBe(PAGE_2M);
    expect(p.translate(PAGE_2M).pat).toBe(4);
    p.map(GiB, GiB, 4 * GiB, { pat: 31 });
    expect(p.translate(GiB + 0x1234567).pa).toBe(4 * GiB + 0x1234567);
    expect(p.translate(GiB).pat).toBe(31);
    const seen: number[] = [];
    p.forEachMapping(0, 2 ** 48, (m) => seen.push(m.size, m.pat ?? 0));
    expect(seen).toEqual([PAGE_2M, 4, GiB, 31]);
  });

  it('a PAT index beyond 5 bits is rejected before anything is written', () => {
    const p = pt();
    const before = p.words.slice();
    expect(() => p.map(0, PAGE_4K, 0x1000, { pat: 32 })).toThrow(ArgumentError);
    expect(p.words).toEqual(before);
  });

  it('is a preset; page sizes 4K, 2M, 1G (no 64K: PS64 is not modelled)', () => {
    expect(FORMATS['xe2']).toBe(xe2);
    expect(xe2.pageSizes).toEqual([PAGE_4K, PAGE_2M, GiB]);
  });
});

describe('PAT tables (xe_pat.c)', () => {
  it('Xe2: 32 entries, 16..19 reserved; uc 3, wt 15, wb 2, uc-comp 12 mean what their names say', () => {
    expect(patIndexCount(xe2)).toBe(32);
    const uc = XE2_PAT_TABLE.entries[patIndexOf(xe2, 'uc')]!;
    expect([uc.l3, uc.l4, uc.compressed, uc.coherency]).toEqual(['uc', 'uc', false, 'none']);
    const wt = XE2_PAT_TABLE.entries[patIndexOf(xe2, 'wt')]!;
    expect([wt.l3, wt.l4, wt.compressed]).toEqual(['xd', 'wt', true]);
    const wb = XE2_PAT_TABLE.entries[patIndexOf(xe2, 'wb')]!;
    expect([wb.l3, wb.coherency, wb.compressed]).toEqual(['wb', '2way', false]);
    const ucc = XE2_PAT_TABLE.entries[patIndexOf(xe2, 'uc-comp')]!;
    expect([ucc.l3, ucc.l4, ucc.compressed]).toEqual(['uc', 'uc', true]);
    for (let i = 0; i < 32; i++) expect(patIndexValid(xe2, i)).toBe(i < 16 || i > 19);
    for (const bad of [-1, 32, 1.5, Number.NaN]) expect(patIndexValid(xe2, bad)).toBe(false);
  });

  it('formats without a table: every index the field holds (AMD MTYPE 0..3), or 0 only', () => {
    expect(patIndexCount(amdGfx9)).toBe(4);
    expect(patIndexValid(amdGfx9, 3)).toBe(true);
    expect(patIndexValid(amdGfx9, 4)).toBe(false);
    expect(patIndexCount(nvMmuV3)).toBe(1);
    expect(() => patIndexOf(amdGfx9, 'wb')).toThrow(ArgumentError);
  });
});
