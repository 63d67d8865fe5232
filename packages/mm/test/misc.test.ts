import { Errno } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  MADV_FREE,
  MAP_ANONYMOUS,
  MAP_HUGE_1GB,
  MAP_HUGETLB,
  MAP_PRIVATE,
  MAP_SHARED,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  PUD_SIZE,
  VM_PFNMAP,
} from '../src/constants.ts';
import { SpecialFile, TmpFile } from '../src/file.ts';
import { PTE_DIRTY, PTE_SPECIAL, PTE_W } from '../src/page-table.ts';
import { DevPagemap, PG } from '../src/physmem.ts';
import { record, setup, snapshot, starts } from './helpers.ts';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const P = PAGE_SIZE;
const hex = (n: number) => n.toString(16);

describe('misc', () => {
  it('MADV_FREE: one CLEAR per VMA; pages become clean and lazy-free', async () => {
    const { mm } = setup();
    const a = await mm.mmap(0, 4 * P, RW, ANON);
    await mm.writeU8(a, 1);
    const rec = await record(mm);
    expect(await mm.madvise(a, 4 * P, MADV_FREE)).toBe(0);
    expect(rec.events).toEqual([
      `start CLEAR ${hex(a)}-${hex(a + 4 * P)}`,
      `end CLEAR ${hex(a)}-${hex(a + 4 * P)}`,
    ]);
    const e = mm.readEntry(a);
    expect(e.flags & PTE_DIRTY).toBe(0);
    expect(mm.phys.flags[e.val]! & PG.lazyfree).toBe(PG.lazyfree);
    expect(await mm.readU8(a)).toBe(1); // still there until reclaim
  });

  it('1 GiB hugetlb pages map as PUD leaves', async () => {
    const { mm, machine } = setup({ hugetlbPudPages: 1 });
    const a = await mm.mmap(0, P, RW, ANON | MAP_HUGETLB | MAP_HUGE_1GB);
    expect(a % PUD_SIZE).toBe(0);
    await mm.writeU32(a + PUD_SIZE - 4, 77);
    const e = mm.readEntry(a + PUD_SIZE - 4);
    expect(e.order).toBe(18);
    expect(await mm.readU32(a + PUD_SIZE - 4)).toBe(77);
    expect(machine.phys.hugetlbPudFree).toBe(0);
    expect(await mm.mmap(0, P, RW, ANON | MAP_HUGETLB | MAP_HUGE_1GB)).toBe(-Errno.ENOMEM);
    await mm.exit();
    expect(machine.phys.hugetlbPudFree).toBe(1);
  });

  it('getUserPage faults in and references the page; VM_PFNMAP inserts are special', async () => {
    const { mm } = setup();
    const a = await mm.mmap(0, 2 * P, PROT_READ, ANON);
    await mm.mmapLock.read();
    expect(await mm.getUserPage(a, true)).toBe(-Errno.EFAULT);
    const z = await mm.getUserPage(a, false);
    expect(mm.phys.isZeroPfn(z)).toBe(true);
    expect(await mm.getUserPage(0x10000, false)).toBe(-Errno.EFAULT);
    mm.mmapLock.readUnlock();
    const b = await mm.mmap(0, 2 * P, RW, ANON);
    const pfn = await mm.getUserPage(b, true);
    expect(mm.phys.refcount[pfn]).toBe(2);
    mm.phys.putPage(pfn);
    const raw = mm.phys.allocPage(0);
    const dev = new SpecialFile(2, (vma) => {
      vma.flags |= VM_PFNMAP;
      return mm.vmInsertPfn(vma, vma.start, raw);
    });
    const c = await mm.mmap(0, P, RW, MAP_SHARED, dev);
    expect(c).toBeGreaterThan(0);
    const e = mm.readEntry(c);
    expect(e.flags & (PTE_SPECIAL | PTE_W)).toBe(PTE_SPECIAL | PTE_W);
    await mm.munmap(c, P);
    expect(mm.phys.refcount[raw]).toBe(1); // special PTEs hold no reference
  });

  it('truncating a mapped file makes accesses past the end SIGBUS', async () => {
    const { mm, machine } = setup();
    const f = new TmpFile(machine.phys, 4 * P);
    const a = await mm.mmap(0, 4 * P, RW, MAP_SHARED, f);
    await mm.writeU8(a + 3 * P, 1);
    expect(f.truncate(2 * P)).toBe(0);
    await mm.munmap(a, 4 * P); // drop the stale mapping, then map again
    const b = await mm.mmap(0, 4 * P, RW, MAP_SHARED, f);
    await expect(mm.readU8(b + 3 * P)).rejects.toMatchObject({ signal: 'SIGBUS' });
    expect(await mm.readU8(b + P)).toBe(0);
    expect(f.reopen(0).truncate(0)).toBe(-Errno.EINVAL);
  });

  it('touch and the invalidation log', async () => {
    const { mm, sim } = setup();
    mm.invalidationLog = [];
    const a = await mm.mmap(0, 8 * P, RW, ANON);
    await mm.touch(a + 100, 3 * P, true);
    expect(mm.rss).toBe(4);
    await mm.munmap(a, 8 * P);
    expect(mm.invalidationLog).toEqual([{ event: 0, start: a, end: a + 8 * P, owner: null }]);
    expect(sim.counters.get('mm.tlb.flush')).toBe(1);
    const seen: number[] = [];
    const off = sim.trace.on('mm.fault', (_mm, addr) => seen.push(addr));
    const b = await mm.mmap(0, P, RW, ANON);
    await mm.readU8(b + 5);
    off();
    expect(seen).toEqual([b + 5]);
  });

  it('mm.access: one event per page-sized chunk after the bytes move, and one per scalar load', async () => {
    const { mm, sim } = setup();
    const a = await mm.mmap(0, 2 * P, RW, ANON);
    const seen: string[] = [];
    const off = sim.trace.on('mm.access', (_mm, addr, write, buf, offset, n) =>
      seen.push(`${write ? 'W' : 'R'} ${addr - a} ${n} ${buf[offset]}`),
    );
    await mm.write(a + P - 2, new Uint8Array([7, 8, 9, 10]));
    expect(await mm.readU8(a + P)).toBe(9);
    off();
    expect(seen).toEqual([`W ${P - 2} 2 7`, `W ${P} 2 9`, `R ${P} 1 9`]);
  });

  it('munmap at the map-count limit: splitting one VMA in two fails, removing does not', async () => {
    const { mm } = setup({ maxMapCount: 2 });
    const a = await mm.mmap(0, 4 * P, RW, ANON);
    const b = await mm.mmap(0, 2 * P, PROT_READ, ANON);
    expect(b + 2 * P).toBe(a);
    const before = snapshot(mm, [a, b]);
    expect(await mm.munmap(a + P, P)).toBe(-Errno.ENOMEM);
    expect(snapshot(mm, [a, b])).toEqual(before);
    const rec = await record(mm);
    expect(await mm.munmap(b + P, 2 * P)).toBe(0); // cuts the end of b and the start of a: still 2 VMAs
    expect(starts(rec.events)).toEqual([`UNMAP ${hex(b + P)}-${hex(b + 3 * P)}`]);
    expect(mm.vmas.size).toBe(2);
  });
});

describe('pagemap and device folios', () => {
  it('pagemapEntry reports present, swapped and file pages', async () => {
    const { mm } = setup();
    const a = await mm.mmap(0, 3 * P, RW, ANON);
    await mm.writeU8(a, 1);
    await mm.readU8(a + P);
    await mm.madvise(a, P, 21);
    expect(mm.pagemapEntry(a)).toMatchObject({ present: false, swap: true });
    expect(mm.pagemapEntry(a + P)).toMatchObject({ present: true, exclusive: false, file: false });
    expect(mm.pagemapEntry(a + 2 * P)).toMatchObject({ present: false, swap: false });
    await mm.readU8(a);
    expect(mm.pagemapEntry(a)).toMatchObject({ present: true, exclusive: true });
  });

  it('zoneDeviceFolioInit makes a compound device folio', async () => {
    const { machine } = setup();
    const p = machine.phys;
    const freed: number[] = [];
    const pgmap = new DevPagemap('coherent', 'x', {
      migrateToRam: () => 0,
      pageFree: (pfn) => freed.push(pfn),
    });
    const start = p.memremapPages(pgmap, 1024);
    p.zoneDeviceFolioInit(start + 512, 9);
    expect(p.compoundHead(start + 700)).toBe(start + 512);
    expect(p.isPageLocked(start + 512)).toBe(true);
    expect(() => p.zoneDeviceFolioInit(start + 512, 9)).toThrow();
    expect(() => p.zoneDeviceFolioInit(start + 1, 9)).toThrow();
    p.unlockPage(start + 512);
    for (let k = 0; k < 512; k++) p.putPage(start + 512 + k);
    expect(freed.length).toBe(512);
    expect(p.isDeviceCoherentPage(start)).toBe(true);
  });
});

describe('hugetlb mprotect', () => {
  it('issues one PROTECTION_VMA over the range and write-protects the leaf', async () => {
    const { mm } = setup();
    const a = await mm.mmap(0, 2 * 1024 * 1024, RW, ANON | MAP_HUGETLB);
    await mm.writeU8(a, 1);
    const rec = await record(mm);
    expect(await mm.mprotect(a, 2 * 1024 * 1024, PROT_READ)).toBe(0);
    expect(starts(rec.events)).toEqual([`PROTECTION_VMA ${hex(a)}-${hex(a + 2 * 1024 * 1024)}`]);
    expect(mm.readEntry(a).flags & PTE_W).toBe(0);
    expect(mm.readEntry(a).order).toBe(9);
    expect(await mm.mprotect(a, P, RW)).toBe(-Errno.EINVAL);
  });
});

describe('addresses outside the VA space', () => {
  it('every syscall rejects them with its Linux errno and changes nothing', async () => {
    const { mm } = setup();
    const a = await mm.mmap(0, 2 * P, RW, ANON);
    await mm.writeU8(a, 3);
    const before = snapshot(mm, [a]);
    const far = 2 ** 48;
    expect(await mm.mmap(far, P, RW, ANON | 0x10)).toBe(-Errno.ENOMEM);
    expect(await mm.munmap(far, P)).toBe(-Errno.EINVAL);
    expect(await mm.mprotect(far, P, PROT_READ)).toBe(-Errno.ENOMEM);
    expect(await mm.madvise(far, P, 4)).toBe(-Errno.ENOMEM);
    expect(await mm.mremap(far, P, P, 0)).toBe(-Errno.EFAULT);
    expect(await mm.mremap(a, P, P, 3, far)).toBe(-Errno.EINVAL);
    await expect(mm.readU8(far)).rejects.toMatchObject({ signal: 'SIGSEGV', code: 'SEGV_MAPERR' });
    // a hint outside the VA space is ignored, as get_unmapped_area does
    const h = await mm.mmap(far, P, RW, ANON);
    expect(h).toBeLessThan(2 ** 47);
    expect(await mm.munmap(h, P)).toBe(0);
    expect(snapshot(mm, [a])).toEqual(before);
  });
});
