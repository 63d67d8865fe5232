import { ArgumentError, Errno } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  MADV_COLLAPSE,
  MADV_DONTNEED,
  MADV_FREE,
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  MADV_PAGEOUT,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  MREMAP_DONTUNMAP,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  VM_HUGEPAGE,
  VM_NOHUGEPAGE,
  VM_WRITE,
} from '../src/constants.ts';
import { TmpFile } from '../src/file.ts';
import { PTE_R, PTE_W, pteIsSwap } from '../src/page-table.ts';
import { pattern, record, sameBytes, setup, snapshot, starts } from './helpers.ts';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const hex = (n: number) => n.toString(16);
const P = PAGE_SIZE;

describe('mprotect', () => {
  it('splits, changes protections inside PROTECTION_VMA, and merges back', async () => {
    const { mm } = setup();
    const a = await mm.mmap(0, 8 * P, RW, ANON);
    await mm.write(a, pattern(8 * P, 1));
    const rec = await record(mm);
    expect(await mm.mprotect(a + 2 * P, 2 * P, PROT_READ)).toBe(0);
    expect(starts(rec.events)).toEqual([`PROTECTION_VMA ${hex(a + 2 * P)}-${hex(a + 4 * P)}`]);
    expect(mm.vmas.size).toBe(3);
    expect(mm.readEntry(a + 2 * P).flags & PTE_W).toBe(0);
    expect(mm.readEntry(a + 4 * P).flags & PTE_W).toBe(PTE_W);
    await expect(mm.writeU8(a + 2 * P, 1)).rejects.toMatchObject({ signal: 'SIGSEGV', code: 'SEGV_ACCERR' });
    expect(await mm.readU8(a + 2 * P)).toBe(pattern(8 * P, 1)[2 * P]);
    expect(await mm.mprotect(a + 2 * P, 2 * P, PROT_NONE)).toBe(0);
    expect(mm.readEntry(a + 2 * P).flags & PTE_R).toBe(0);
    await expect(mm.readU8(a + 2 * P)).rejects.toMatchObject({ signal: 'SIGSEGV' });
    // back to RW: exclusive anon pages become writable again, the VMAs merge
    expect(await mm.mprotect(a + 2 * P, 2 * P, RW)).toBe(0);
    expect(mm.vmas.size).toBe(1);
    expect(mm.readEntry(a + 2 * P).flags & PTE_W).toBe(PTE_W);
    // nothing populated in the 1 GiB blocks of the range: no invalidation (the notifier sits at PUD level)
    const b = await mm.mmap(0x100000000, 4 * P, RW, ANON);
    rec.clear();
    expect(await mm.mprotect(b, 4 * P, PROT_READ)).toBe(0);
    expect(mm.vmaLookup(b)!.flags & VM_WRITE).toBe(0);
    expect(rec.events).toEqual([]);
  });

  it('returns Linux errors; bad arguments leave everything unchanged', async () => {
    const { mm, machine } = setup();
    const a = await mm.mmap(0, 4 * P, RW, ANON);
    await mm.writeU8(a, 1);
    const before = snapshot(mm, [a, a + P]);
    expect(await mm.mprotect(a + 1, P, PROT_READ)).toBe(-Errno.EINVAL);
    expect(await mm.mprotect(a, P, 0x100)).toBe(-Errno.EINVAL);
    expect(await mm.mprotect(a, P, PROT_READ | 0x01000000)).toBe(-Errno.EINVAL);
    expect(await mm.mprotect(a - 16 * P, P, PROT_READ)).toBe(-Errno.ENOMEM);
    expect(await mm.mprotect(a, 0, PROT_READ)).toBe(0);
    await expect(mm.mprotect(a, -1, PROT_READ)).rejects.toThrow(ArgumentError);
    expect(snapshot(mm, [a, a + P])).toEqual(before);
    // a hole after the first VMA: -ENOMEM, but (as in Linux) the VMAs before the hole were changed
    expect(await mm.mprotect(a, 2 ** 52, PROT_READ)).toBe(-Errno.ENOMEM);
    expect(mm.vmaLookup(a)!.flags & VM_WRITE).toBe(0);
    // a shared mapping of a read-only file cannot become writable
    const f = new TmpFile(machine.phys, P).reopen(0);
    const s = await mm.mmap(0, P, PROT_READ, MAP_SHARED, f);
    expect(await mm.mprotect(s, P, RW)).toBe(-Errno.EACCES);
  });

  it('partial mprotect of a THP splits it (CLEAR) and then protects (PROTECTION_VMA)', async () => {
    const { mm } = setup({ thp: 'always' });
    const m = await mm.mmap(0, 3 * PMD_SIZE, RW, ANON);
    const h = Math.ceil(m / PMD_SIZE) * PMD_SIZE;
    await mm.write(h, pattern(PMD_SIZE, 2));
    const rec = await record(mm);
    expect(await mm.mprotect(h + 8 * P, 8 * P, PROT_READ)).toBe(0);
    expect(starts(rec.events)).toEqual([
      `CLEAR ${hex(h)}-${hex(h + PMD_SIZE)}`,
      `PROTECTION_VMA ${hex(h + 8 * P)}-${hex(h + 16 * P)}`,
    ]);
    expect(mm.readEntry(h + 8 * P).flags & PTE_W).toBe(0);
    expect(mm.readEntry(h).flags & PTE_W).toBe(PTE_W);
    expect(sameBytes(await mm.read(h, PMD_SIZE), pattern(PMD_SIZE, 2))).toBe(true);
  });
});

describe('mremap', () => {
  it('moves pages (UNMAP of the old range during the move and again at unmap)', async () => {
    const { mm } = setup();
    const a = await mm.mmap(0, 4 * P, RW, ANON);
    const data = pattern(4 * P, 7);
    await mm.write(a, data);
    const rec = await record(mm);
    const dst = 0x200000000;
    const r = await mm.mremap(a, 4 * P, 4 * P, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
    expect(r).toBe(dst);
    expect(starts(rec.events)).toEqual([
      `UNMAP ${hex(a)}-${hex(a + 4 * P)}`,
      `UNMAP ${hex(a)}-${hex(a + 4 * P)}`,
    ]);
    expect(sameBytes(await mm.read(dst, 4 * P), data)).toBe(true);
    expect(mm.vmaLookup(a)).toBeNull();
    // growing in place when there is room
    expect(await mm.mremap(dst, 4 * P, 8 * P, 0)).toBe(dst);
    expect(mm.vmaLookup(dst + 7 * P)).not.toBeNull();
    // shrinking
    expect(await mm.mremap(dst, 8 * P, 2 * P, 0)).toBe(dst);
    expect(mm.vmaLookup(dst + 3 * P)).toBeNull();
  });

  it('move_page_tables → try_realign_addr (6.7+): a mutually PMD-aligned move unmaps from the PMD boundary below', async () => {
    const { mm } = setup();
    // 4 pages ending at a PMD boundary, moved to the same offset in another PMD: old and new
    // addresses are mutually aligned, the copy reaches the boundary and nothing is mapped
    // below either start inside its PMD, so Linux realigns both down to the PMD boundary
    const base = 0x100000000;
    const src = base + PMD_SIZE - 4 * P;
    expect(await mm.mmap(src, 4 * P, RW, ANON | MAP_FIXED)).toBe(src);
    const data = pattern(4 * P, 9);
    await mm.write(src, data);
    const rec = await record(mm);
    const dst = 0x200000000 + PMD_SIZE - 4 * P;
    expect(await mm.mremap(src, 4 * P, 4 * P, MREMAP_MAYMOVE | MREMAP_FIXED, dst)).toBe(dst);
    expect(starts(rec.events)).toEqual([
      `UNMAP ${hex(base)}-${hex(src + 4 * P)}`, // move_page_tables' range, realigned
      `UNMAP ${hex(src)}-${hex(src + 4 * P)}`, // the munmap of the old VMA
    ]);
    expect(sameBytes(await mm.read(dst, 4 * P), data)).toBe(true);
    // a VMA below the source inside its PMD forbids the realignment (can_align_down)
    expect(await mm.mmap(base, P, RW, ANON | MAP_FIXED)).toBe(base);
    expect(await mm.mmap(src, 4 * P, RW, ANON | MAP_FIXED)).toBe(src);
    rec.clear();
    const dst2 = 0x300000000 + PMD_SIZE - 4 * P;
    expect(await mm.mremap(src, 4 * P, 4 * P, MREMAP_MAYMOVE | MREMAP_FIXED, dst2)).toBe(dst2);
    expect(starts(rec.events)).toEqual([
      `UNMAP ${hex(src)}-${hex(src + 4 * P)}`,
      `UNMAP ${hex(src)}-${hex(src + 4 * P)}`,
    ]);
  });

  it('DONTUNMAP keeps the old VMA empty; fork siblings keep their pages', async () => {
    const { mm } = setup();
    const a = await mm.mmap(0, 2 * P, RW, ANON);
    await mm.write(a, pattern(2 * P, 1));
    const r = await mm.mremap(a, 2 * P, 2 * P, MREMAP_MAYMOVE | MREMAP_DONTUNMAP);
    expect(r).toBeGreaterThan(0);
    expect(r).not.toBe(a);
    expect(mm.vmaLookup(a)).not.toBeNull();
    expect(await mm.readU8(a)).toBe(0);
    expect(sameBytes(await mm.read(r, 2 * P), pattern(2 * P, 1))).toBe(true);
  });

  it('moves THPs whole when aligned and splits them otherwise', async () => {
    const { mm, sim } = setup({ thp: 'always' });
    const m = await mm.mmap(0, 3 * PMD_SIZE, RW, ANON);
    const h = Math.ceil(m / PMD_SIZE) * PMD_SIZE;
    await mm.write(h, pattern(PMD_SIZE, 3));
    const d1 = 0x400000000;
    expect(await mm.mremap(h, PMD_SIZE, PMD_SIZE, MREMAP_MAYMOVE | MREMAP_FIXED, d1)).toBe(d1);
    expect(mm.readEntry(d1).order).toBe(9);
    expect(sim.counters.get('mm.thp.split')).toBe(0);
    const d2 = 0x500000000 + 16 * P;
    expect(await mm.mremap(d1, PMD_SIZE, PMD_SIZE, MREMAP_MAYMOVE | MREMAP_FIXED, d2)).toBe(d2);
    expect(sim.counters.get('mm.thp.split')).toBe(1);
    expect(sameBytes(await mm.read(d2, PMD_SIZE), pattern(PMD_SIZE, 3))).toBe(true);
  });

  it('returns Linux errors without changing anything', async () => {
    const { mm } = setup();
    const a = await mm.mmap(0, 4 * P, RW, ANON);
    const b = await mm.mmap(0, P, PROT_READ, ANON); // right below a, blocks nothing above
    await mm.writeU8(a, 1);
    const before = snapshot(mm, [a, b]);
    expect(await mm.mremap(a, P, P, 8)).toBe(-Errno.EINVAL);
    expect(await mm.mremap(a, P, P, MREMAP_FIXED, 0x300000000)).toBe(-Errno.EINVAL);
    expect(await mm.mremap(a, P, 2 * P, MREMAP_MAYMOVE | MREMAP_DONTUNMAP)).toBe(-Errno.EINVAL);
    expect(await mm.mremap(a + 1, P, P, 0)).toBe(-Errno.EINVAL);
    expect(await mm.mremap(a, P, 0, 0)).toBe(-Errno.EINVAL);
    expect(await mm.mremap(a, 2 * P, 2 * P, MREMAP_MAYMOVE | MREMAP_FIXED, a + P)).toBe(-Errno.EINVAL);
    expect(await mm.mremap(a, 8 * P, 8 * P, MREMAP_MAYMOVE)).toBe(-Errno.EFAULT);
    expect(await mm.mremap(0x10000, P, P, MREMAP_MAYMOVE)).toBe(-Errno.EFAULT);
    expect(await mm.mremap(b, P, 2 * P, 0)).toBe(-Errno.ENOMEM); // a sits right above b
    await expect(mm.mremap(a, P, P, 0, -5)).rejects.toThrow(ArgumentError);
    expect(snapshot(mm, [a, b])).toEqual(before);
  });
});

describe('madvise', () => {
  it('DONTNEED zaps inside CLEAR; anonymous memory reads back as zero', async () => {
    const { mm } = setup();
    const a = await mm.mmap(0, 4 * P, RW, ANON);
    await mm.write(a, pattern(4 * P, 1));
    const rec = await record(mm);
    expect(await mm.madvise(a + P, 2 * P, MADV_DONTNEED)).toBe(0);
    expect(rec.events).toEqual([
      `start CLEAR ${hex(a + P)}-${hex(a + 3 * P)}`,
      `end CLEAR ${hex(a + P)}-${hex(a + 3 * P)}`,
    ]);
    expect(await mm.readU8(a + P)).toBe(0);
    expect(await mm.readU8(a)).toBe(pattern(1, 1)[0]);
    expect(mm.rss).toBe(2);
  });

  it('DONTNEED inside a THP nests the 2M split CLEAR inside the zap CLEAR', async () => {
    const { mm } = setup({ thp: 'always' });
    const m = await mm.mmap(0, 3 * PMD_SIZE, RW, ANON);
    const h = Math.ceil(m / PMD_SIZE) * PMD_SIZE;
    await mm.write(h, pattern(PMD_SIZE, 4));
    const rec = await record(mm);
    expect(await mm.madvise(h + P, P, MADV_DONTNEED)).toBe(0);
    expect(rec.events).toEqual([
      `start CLEAR ${hex(h + P)}-${hex(h + 2 * P)}`,
      `start CLEAR ${hex(h)}-${hex(h + PMD_SIZE)}`,
      `end CLEAR ${hex(h)}-${hex(h + PMD_SIZE)}`,
      `end CLEAR ${hex(h + P)}-${hex(h + 2 * P)}`,
    ]);
    expect(await mm.readU8(h + P)).toBe(0);
    expect(await mm.readU8(h + 2 * P)).toBe(pattern(PMD_SIZE, 4)[2 * P]);
  });

  it('HUGEPAGE/NOHUGEPAGE change flags with split and merge; errors follow Linux', async () => {
    const { mm } = setup();
    const a = await mm.mmap(0, 8 * P, RW, ANON);
    const before = snapshot(mm, [a]);
    expect(await mm.madvise(a + 1, P, MADV_HUGEPAGE)).toBe(-Errno.EINVAL);
    expect(await mm.madvise(a, P, 999)).toBe(-Errno.EINVAL);
    expect(await mm.madvise(a, 0, MADV_HUGEPAGE)).toBe(0);
    expect(snapshot(mm, [a])).toEqual(before);
    expect(await mm.madvise(a + 2 * P, 2 * P, MADV_HUGEPAGE)).toBe(0);
    expect(mm.vmas.size).toBe(3);
    expect(mm.vmaLookup(a + 2 * P)!.flags & VM_HUGEPAGE).toBe(VM_HUGEPAGE);
    expect(await mm.madvise(a + 2 * P, 2 * P, MADV_NOHUGEPAGE)).toBe(0);
    expect(mm.vmaLookup(a + 2 * P)!.flags & (VM_HUGEPAGE | VM_NOHUGEPAGE)).toBe(VM_NOHUGEPAGE);
    // unmapped hole: the mapped part is advised, -ENOMEM is returned
    expect(await mm.madvise(a, 9 * P, MADV_DONTNEED)).toBe(-Errno.ENOMEM);
    expect(await mm.madvise(a, P, MADV_FREE)).toBe(0);
    const s = await mm.mmap(0, P, RW, MAP_SHARED | MAP_ANONYMOUS);
    expect(await mm.madvise(s, P, MADV_FREE)).toBe(-Errno.EINVAL);
  });

  it('COLLAPSE turns 512 small pages into a THP with the same contents', async () => {
    const { mm, sim } = setup();
    const m = await mm.mmap(0, 3 * PMD_SIZE, RW, ANON);
    const h = Math.ceil(m / PMD_SIZE) * PMD_SIZE;
    const data = pattern(PMD_SIZE, 6);
    await mm.write(h, data);
    await mm.madvise(h + 5 * P, P, MADV_DONTNEED);
    data.fill(0, 5 * P, 6 * P);
    expect(mm.readEntry(h).order).toBe(0);
    const rec = await record(mm);
    expect(await mm.madvise(h, PMD_SIZE, MADV_COLLAPSE)).toBe(0);
    expect(starts(rec.events)).toEqual([`CLEAR ${hex(h)}-${hex(h + PMD_SIZE)}`]);
    expect(mm.readEntry(h).order).toBe(9);
    expect(sim.counters.get('mm.thp.collapse')).toBe(1);
    expect(sameBytes(await mm.read(h, PMD_SIZE), data)).toBe(true);
    expect(mm.rss).toBe(512);
  });

  it('FREE then PAGEOUT drops clean pages; a write after FREE keeps them', async () => {
    const { mm, sim } = setup();
    const a = await mm.mmap(0, 2 * P, RW, ANON);
    await mm.write(a, pattern(2 * P, 1));
    expect(await mm.madvise(a, 2 * P, MADV_FREE)).toBe(0);
    await mm.writeU8(a + P, 0x77);
    expect(await mm.madvise(a, 2 * P, MADV_PAGEOUT)).toBe(0);
    expect(mm.readEntry(a).flags).toBe(0); // discarded
    expect(pteIsSwap(mm.readEntry(a + P).flags)).toBe(true);
    expect(sim.counters.get('mm.swap.out')).toBe(1);
    expect(await mm.readU8(a)).toBe(0);
    expect(await mm.readU8(a + P)).toBe(0x77);
  });
});
