import { ArgumentError, Errno } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_FIXED_NOREPLACE,
  MAP_HUGETLB,
  MAP_POPULATE,
  MAP_PRIVATE,
  MAP_SHARED,
  MAP_SHARED_VALIDATE,
  MAP_SYNC,
  MMAP_BASE,
  O_RDONLY,
  O_WRONLY,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
  TASK_SIZE,
  VM_HUGETLB,
  VM_MAYWRITE,
  VM_MIXEDMAP,
  VM_READ,
  VM_SHARED,
  VM_WRITE,
} from '../src/constants.ts';
import { SpecialFile, TmpFile } from '../src/file.ts';
import { MmSignalError } from '../src/machine.ts';
import { PTE_W, pteIsPresent } from '../src/page-table.ts';
import { pattern, record, sameBytes, setup, snapshot, starts } from './helpers.ts';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const hex = (n: number) => n.toString(16);

describe('mmap', () => {
  it('places anonymous mappings top-down below mmap_base and merges neighbours', async () => {
    const { mm } = setup();
    const a = await mm.mmap(0, 3 * PAGE_SIZE, RW, ANON);
    expect(a).toBe(MMAP_BASE - 3 * PAGE_SIZE);
    const b = await mm.mmap(0, PAGE_SIZE, RW, ANON);
    expect(b).toBe(a - PAGE_SIZE);
    // same flags, contiguous pgoff: one VMA, as vma_merge makes it
    expect(mm.vmas.size).toBe(1);
    const c = await mm.mmap(0, PAGE_SIZE, PROT_READ, ANON);
    expect(c).toBe(b - PAGE_SIZE);
    expect(mm.vmas.size).toBe(2);
    const v = mm.vmaLookup(c)!;
    expect(v.flags & (VM_READ | VM_WRITE)).toBe(VM_READ);
    expect(v.isAnonymous).toBe(true);
    // a hint is honoured when free
    const h = await mm.mmap(0x100000000, PAGE_SIZE, RW, ANON);
    expect(h).toBe(0x100000000);
  });

  it('returns Linux errors and leaves the mm unchanged', async () => {
    const { mm, machine } = setup();
    const a = await mm.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    await mm.writeU32(a, 7);
    const before = snapshot(mm, [a, a + PAGE_SIZE]);
    const ro = new TmpFile(machine.phys, 4 * PAGE_SIZE, O_RDONLY);
    const wo = new TmpFile(machine.phys, 4 * PAGE_SIZE, O_WRONLY);
    const cases: [Promise<number>, number][] = [
      [mm.mmap(0, 0, RW, ANON), -Errno.EINVAL],
      [mm.mmap(0, PAGE_SIZE, RW, MAP_ANONYMOUS), -Errno.EINVAL], // neither SHARED nor PRIVATE
      [mm.mmap(a + 1, PAGE_SIZE, RW, ANON | MAP_FIXED), -Errno.EINVAL],
      [mm.mmap(0, 2 ** 52, RW, ANON), -Errno.ENOMEM],
      [mm.mmap(TASK_SIZE - PAGE_SIZE, 2 * PAGE_SIZE, RW, ANON | MAP_FIXED), -Errno.ENOMEM],
      [mm.mmap(4096, PAGE_SIZE, RW, ANON | MAP_FIXED), -Errno.EPERM],
      [mm.mmap(a, PAGE_SIZE, RW, ANON | MAP_FIXED_NOREPLACE), -Errno.EEXIST],
      [mm.mmap(0, PAGE_SIZE, RW, MAP_PRIVATE), -Errno.EBADF],
      [mm.mmap(0, PAGE_SIZE, RW, MAP_SHARED, ro), -Errno.EACCES],
      [mm.mmap(0, PAGE_SIZE, PROT_READ, MAP_PRIVATE, wo), -Errno.EACCES],
      [mm.mmap(0, PAGE_SIZE, RW, MAP_PRIVATE, ro, 100), -Errno.EINVAL],
      [mm.mmap(0, PAGE_SIZE, RW, MAP_SHARED_VALIDATE | MAP_ANONYMOUS | MAP_SYNC), -Errno.EOPNOTSUPP],
      [mm.mmap(0, PAGE_SIZE, RW, MAP_SHARED_VALIDATE | MAP_ANONYMOUS | 0x800000), -Errno.EOPNOTSUPP],
      [mm.mmap(0, PMD_SIZE * 1000, RW, ANON | MAP_HUGETLB), -Errno.ENOMEM], // pool has 64 pages
    ];
    for (const [p, want] of cases) expect(await p).toBe(want);
    expect(snapshot(mm, [a, a + PAGE_SIZE])).toEqual(before);
    await expect(mm.mmap(-1, PAGE_SIZE, RW, ANON)).rejects.toThrow(ArgumentError);
    await expect(mm.mmap(0, 1.5, RW, ANON)).rejects.toThrow(/length/);
    expect(snapshot(mm, [a, a + PAGE_SIZE])).toEqual(before);
  });

  it('ignores unknown flag bits with MAP_PRIVATE/MAP_SHARED, as Linux does', async () => {
    const { mm } = setup();
    expect(await mm.mmap(0, PAGE_SIZE, RW, ANON | 0x800000)).toBeGreaterThan(0);
  });

  it('read-only files: a shared mapping has no VM_MAYWRITE, a private one may be written (COW)', async () => {
    const { mm, machine } = setup();
    const f = new TmpFile(machine.phys, 2 * PAGE_SIZE);
    expect(f.pwrite(pattern(PAGE_SIZE, 1), 0)).toBe(PAGE_SIZE);
    const ro = f.reopen(O_RDONLY);
    const s = await mm.mmap(0, 2 * PAGE_SIZE, PROT_READ, MAP_SHARED, ro);
    const vs = mm.vmaLookup(s)!;
    expect(vs.flags & (VM_SHARED | VM_MAYWRITE)).toBe(0);
    expect(await mm.mprotect(s, PAGE_SIZE, RW)).toBe(-Errno.EACCES);
    const p = await mm.mmap(0, 2 * PAGE_SIZE, RW, MAP_PRIVATE, ro);
    expect(await mm.read(p, 16)).toEqual(pattern(PAGE_SIZE, 1).subarray(0, 16));
    await mm.writeU8(p, 0xaa);
    expect(await mm.readU8(p)).toBe(0xaa);
    expect(await mm.readU8(s)).toBe(pattern(1, 1)[0]); // the file is untouched
  });

  it('MAP_FIXED replaces existing mappings inside one UNMAP invalidation', async () => {
    const { mm } = setup();
    const rec = await record(mm);
    const a = await mm.mmap(0, 8 * PAGE_SIZE, RW, ANON);
    await mm.write(a, pattern(8 * PAGE_SIZE, 3));
    rec.clear();
    const b = await mm.mmap(a + 2 * PAGE_SIZE, 2 * PAGE_SIZE, PROT_READ, ANON | MAP_FIXED);
    expect(b).toBe(a + 2 * PAGE_SIZE);
    expect(starts(rec.events)).toEqual([`UNMAP ${hex(a + 2 * PAGE_SIZE)}-${hex(a + 4 * PAGE_SIZE)}`]);
    expect(await mm.readU8(b)).toBe(0);
    expect(await mm.read(a + 4 * PAGE_SIZE, 8)).toEqual(
      pattern(8 * PAGE_SIZE, 3).subarray(4 * PAGE_SIZE, 4 * PAGE_SIZE + 8),
    );
    expect(mm.vmas.size).toBe(3);
  });

  it('MAP_POPULATE prefaults (writable for private writable mappings)', async () => {
    const { mm, sim } = setup();
    const a = await mm.mmap(0, 4 * PAGE_SIZE, RW, ANON | MAP_POPULATE);
    expect(mm.rss).toBe(4);
    expect(mm.readEntry(a + PAGE_SIZE).flags & PTE_W).toBe(PTE_W);
    expect(sim.counters.get('mm.faults')).toBe(4);
  });

  it('shared anonymous memory is backed by a shmem file', async () => {
    const { mm } = setup();
    const a = await mm.mmap(0, 2 * PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS);
    const v = mm.vmaLookup(a)!;
    expect(v.file).toBeInstanceOf(TmpFile);
    expect(v.flags & VM_SHARED).toBe(VM_SHARED);
    await mm.writeU32(a + 8, 99);
    expect(await mm.readU32(a + 8)).toBe(99);
  });

  it('file mappings share the page cache with pread/pwrite; SIGBUS past EOF', async () => {
    const { mm, machine } = setup();
    const f = new TmpFile(machine.phys, 2 * PAGE_SIZE);
    f.pwrite(Uint8Array.of(1, 2, 3), 10);
    const a = await mm.mmap(0, 3 * PAGE_SIZE, RW, MAP_SHARED, f);
    expect([...(await mm.read(a + 10, 3))]).toEqual([1, 2, 3]);
    await mm.writeU8(a + PAGE_SIZE, 77);
    const buf = new Uint8Array(1);
    expect(f.pread(buf, PAGE_SIZE)).toBe(1);
    expect(buf[0]).toBe(77);
    f.pwrite(Uint8Array.of(5), 11);
    expect(await mm.readU8(a + 11)).toBe(5);
    await expect(mm.readU8(a + 2 * PAGE_SIZE)).rejects.toMatchObject({
      signal: 'SIGBUS',
      address: a + 2 * PAGE_SIZE,
    });
    const wo = f.reopen(O_WRONLY);
    expect(wo.pread(buf, 0)).toBe(-Errno.EBADF);
    expect(f.reopen(O_RDONLY).pwrite(buf, 0)).toBe(-Errno.EBADF);
  });

  it('special files: the mmap hook inserts pages into a VM_MIXEDMAP VMA', async () => {
    const { mm, machine } = setup();
    const p = machine.phys;
    const page = p.allocPage(0);
    p.writePage(page, 0, Uint8Array.of(0x5a), 0, 1);
    const dev = new SpecialFile(2, (vma) =>
      mm.vmInsertPage(vma, vma.start, page) === 0 ? 0 : -Errno.EINVAL,
    );
    const a = await mm.mmap(0, 2 * PAGE_SIZE, RW, MAP_PRIVATE, dev);
    const v = mm.vmaLookup(a)!;
    expect(v.flags & VM_MIXEDMAP).toBe(VM_MIXEDMAP);
    const e = mm.readEntry(a);
    expect(pteIsPresent(e.flags) && !(e.flags & PTE_W)).toBe(true);
    expect(await mm.readU8(a)).toBe(0x5a);
    await expect(mm.readU8(a + PAGE_SIZE)).rejects.toBeInstanceOf(MmSignalError);
    const bad = new SpecialFile(2, () => -Errno.ENODEV);
    expect(await mm.mmap(0, PAGE_SIZE, RW, MAP_PRIVATE, bad)).toBe(-Errno.ENODEV);
    expect(mm.vmas.size).toBe(1);
  });

  it('MAP_HUGETLB rounds up to the huge page size and maps PMD leaves', async () => {
    const { mm, machine } = setup();
    const a = await mm.mmap(0, PAGE_SIZE, RW, ANON | MAP_HUGETLB);
    expect(a % PMD_SIZE).toBe(0);
    const v = mm.vmaLookup(a)!;
    expect(v.end - v.start).toBe(PMD_SIZE);
    expect(v.flags & VM_HUGETLB).toBe(VM_HUGETLB);
    await mm.writeU32(a + 12345 * 4, 12345);
    expect(mm.readEntry(a).order).toBe(9);
    expect(machine.phys.hugetlbFree).toBe(63);
    expect(await mm.munmap(a, PAGE_SIZE)).toBe(-Errno.EINVAL);
    expect(await mm.munmap(a, PMD_SIZE)).toBe(0);
    expect(machine.phys.hugetlbFree).toBe(64);
    expect(await mm.mmap(0, PAGE_SIZE, PROT_EXEC, ANON | MAP_HUGETLB | (25 << 26))).toBe(-Errno.EINVAL);
  });

  it('respects vm.max_map_count', async () => {
    const { mm } = setup({ maxMapCount: 3 });
    for (let k = 0; k < 3; k++)
      expect(await mm.mmap(0, PAGE_SIZE, k % 2 ? PROT_READ : RW, ANON)).toBeGreaterThan(0);
    expect(await mm.mmap(0, PAGE_SIZE, PROT_EXEC, ANON)).toBe(-Errno.ENOMEM);
  });
});

describe('munmap', () => {
  it('unmaps inside one UNMAP invalidation of the requested range, splitting VMAs', async () => {
    const { mm } = setup();
    const rec = await record(mm);
    const a = await mm.mmap(0, 8 * PAGE_SIZE, RW, ANON);
    await mm.write(a, pattern(8 * PAGE_SIZE, 1));
    rec.clear();
    expect(await mm.munmap(a + 2 * PAGE_SIZE, 3 * PAGE_SIZE)).toBe(0);
    expect(rec.events).toEqual([
      `start UNMAP ${hex(a + 2 * PAGE_SIZE)}-${hex(a + 5 * PAGE_SIZE)}`,
      `end UNMAP ${hex(a + 2 * PAGE_SIZE)}-${hex(a + 5 * PAGE_SIZE)}`,
    ]);
    expect(mm.vmaSnapshot().map((v) => [v.start - a, v.end - a])).toEqual([
      [0, 2 * PAGE_SIZE],
      [5 * PAGE_SIZE, 8 * PAGE_SIZE],
    ]);
    expect(mm.rss).toBe(5);
    await expect(mm.readU8(a + 3 * PAGE_SIZE)).rejects.toMatchObject({
      signal: 'SIGSEGV',
      code: 'SEGV_MAPERR',
    });
    expect(await mm.read(a + 5 * PAGE_SIZE, 4)).toEqual(
      pattern(8 * PAGE_SIZE, 1).subarray(5 * PAGE_SIZE, 5 * PAGE_SIZE + 4),
    );
    // unmapping nothing: 0 and no invalidation
    rec.clear();
    expect(await mm.munmap(a + 3 * PAGE_SIZE, PAGE_SIZE)).toBe(0);
    expect(rec.events).toEqual([]);
  });

  it('rejects bad arguments without touching anything', async () => {
    const { mm } = setup();
    const a = await mm.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    await mm.writeU8(a, 1);
    const before = snapshot(mm, [a]);
    expect(await mm.munmap(a + 1, PAGE_SIZE)).toBe(-Errno.EINVAL);
    expect(await mm.munmap(a, 0)).toBe(-Errno.EINVAL);
    expect(await mm.munmap(TASK_SIZE, PAGE_SIZE)).toBe(-Errno.EINVAL);
    expect(await mm.munmap(a, 2 ** 50)).toBe(-Errno.EINVAL);
    await expect(mm.munmap(a, Number.NaN)).rejects.toThrow(ArgumentError);
    expect(snapshot(mm, [a])).toEqual(before);
  });

  it('partial munmap of a THP splits the PMD (CLEAR 2M) before the UNMAP', async () => {
    const { mm, sim } = setup({ thp: 'always' });
    const rec = await record(mm);
    const m = await mm.mmap(0, 4 * PMD_SIZE, RW, ANON);
    const h = Math.ceil(m / PMD_SIZE) * PMD_SIZE;
    await mm.write(h, pattern(PMD_SIZE, 9));
    expect(mm.readEntry(h).order).toBe(9);
    expect(sim.counters.get('mm.thp.alloc')).toBe(1);
    rec.clear();
    expect(await mm.munmap(h + 16 * PAGE_SIZE, 4 * PAGE_SIZE)).toBe(0);
    expect(starts(rec.events)).toEqual([
      `CLEAR ${hex(h)}-${hex(h + PMD_SIZE)}`,
      `UNMAP ${hex(h + 16 * PAGE_SIZE)}-${hex(h + 20 * PAGE_SIZE)}`,
    ]);
    expect(sim.counters.get('mm.thp.split')).toBe(1);
    expect(mm.readEntry(h).order).toBe(0);
    const want = pattern(PMD_SIZE, 9);
    expect(sameBytes(await mm.read(h, 16 * PAGE_SIZE), want.subarray(0, 16 * PAGE_SIZE))).toBe(true);
    expect(
      sameBytes(await mm.read(h + 20 * PAGE_SIZE, PMD_SIZE - 20 * PAGE_SIZE), want.subarray(20 * PAGE_SIZE)),
    ).toBe(true);
    await expect(mm.readU8(h + 17 * PAGE_SIZE)).rejects.toBeInstanceOf(MmSignalError);
  });

  it('frees every frame when the whole mapping goes away', async () => {
    const { mm, machine } = setup();
    const a = await mm.mmap(0, 64 * PAGE_SIZE, RW, ANON);
    await mm.write(a, pattern(64 * PAGE_SIZE, 2));
    expect(machine.phys.nodes[0]!.usedPages).toBe(64);
    expect(await mm.munmap(a, 64 * PAGE_SIZE)).toBe(0);
    expect(machine.phys.nodes[0]!.usedPages).toBe(0);
    expect(machine.phys.dataPages).toBe(0);
    expect(mm.pt.tables).toBe(2); // PUD + PMD tables stay, the PTE table is freed
  });
});
