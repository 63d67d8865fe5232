import { MmuIntervalNotifier, mmuIntervalNotifierInsert, mmuIntervalSetSeq } from '@hmmkit/notifier';
import { ArgumentError, Errno, ULONG_MAX } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  FAULT_FLAG_REMOTE,
  FAULT_FLAG_WRITE,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_HUGETLB,
  MAP_PRIVATE,
  MAP_SHARED,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  VM_FAULT_SIGSEGV,
} from '../src/constants.ts';
import { TmpFile } from '../src/file.ts';
import { MmSignalError } from '../src/machine.ts';
import { PTE_SPECIAL, PTE_W, pteIsPresent } from '../src/page-table.ts';
import { HUGE_ZERO_PFN, ZERO_PFN } from '../src/physmem.ts';
import { pattern, record, sameBytes, setup, starts } from './helpers.ts';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const hex = (n: number) => n.toString(16);

describe('faults', () => {
  it('read of anonymous memory maps the zero page; a write then COWs it (CLEAR of that page)', async () => {
    const { mm, sim } = setup();
    const rec = await record(mm);
    const a = await mm.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    expect(await mm.readU32(a + PAGE_SIZE)).toBe(0);
    let e = mm.readEntry(a + PAGE_SIZE);
    expect(e.val).toBe(ZERO_PFN);
    expect(e.flags & (PTE_W | PTE_SPECIAL)).toBe(PTE_SPECIAL);
    expect(mm.rss).toBe(0);
    const t0 = sim.now;
    await mm.writeU32(a + PAGE_SIZE, 5);
    expect(sim.now - t0).toBe(sim.costs.cpuFaultNs + sim.costs.cpuPageZeroNs + sim.costs.cpuTlbShootdownNs);
    e = mm.readEntry(a + PAGE_SIZE);
    expect(e.val).not.toBe(ZERO_PFN);
    expect(e.flags & PTE_W).toBe(PTE_W);
    expect(starts(rec.events)).toEqual([`CLEAR ${hex(a + PAGE_SIZE)}-${hex(a + 2 * PAGE_SIZE)}`]);
    // a first write to pte_none needs no invalidation
    rec.clear();
    await mm.writeU32(a, 1);
    expect(rec.events).toEqual([]);
    expect(sim.counters.get('mm.cow')).toBe(1);
    expect(mm.rss).toBe(2);
  });

  it('SIGSEGV carries the address and code; PROT_NONE and read-only VMAs are enforced', async () => {
    const { mm } = setup();
    const a = await mm.mmap(0, 2 * PAGE_SIZE, PROT_READ, ANON);
    const err = await mm.writeU8(a + 5, 1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MmSignalError);
    expect(err).toMatchObject({ signal: 'SIGSEGV', code: 'SEGV_ACCERR', address: a + 5 });
    const n = await mm.mmap(0, PAGE_SIZE, PROT_NONE, ANON);
    await expect(mm.readU8(n)).rejects.toMatchObject({ code: 'SEGV_ACCERR' });
    await expect(mm.readU8(0x10000)).rejects.toMatchObject({ code: 'SEGV_MAPERR', address: 0x10000 });
    const vma = mm.vmaLookup(a)!;
    expect(await mm.handleMmFault(vma, a, FAULT_FLAG_WRITE | FAULT_FLAG_REMOTE)).toBe(VM_FAULT_SIGSEGV);
    await expect(mm.handleMmFault(vma, a + 10 * PAGE_SIZE, 0)).rejects.toThrow(ArgumentError);
    await expect(mm.read(-1, 4)).rejects.toThrow(ArgumentError);
  });

  it('writes and reads spanning pages preserve every byte', async () => {
    const { mm } = setup();
    const a = await mm.mmap(0, 16 * PAGE_SIZE, RW, ANON);
    const data = pattern(10 * PAGE_SIZE + 123, 4);
    await mm.write(a + 1000, data);
    expect(sameBytes(await mm.read(a + 1000, data.length), data)).toBe(true);
    await mm.writeI32(a + PAGE_SIZE - 2, -7); // straddles a page boundary
    expect(await mm.readI32(a + PAGE_SIZE - 2)).toBe(-7);
    await mm.writeF64(a + 8, 1.5);
    expect(await mm.readF64(a + 8)).toBe(1.5);
    const ints = Int32Array.from({ length: 2048 }, (_, k) => k);
    await mm.writeI32Array(a + 4 * PAGE_SIZE, ints);
    expect(await mm.readI32Array(a + 4 * PAGE_SIZE, 2048)).toEqual(ints);
  });

  it('THP: aligned VM_HUGEPAGE VMAs get a huge zero page on read and a THP on write', async () => {
    const { mm, sim } = setup();
    const rec = await record(mm);
    const m = await mm.mmap(0, 3 * PMD_SIZE, RW, ANON);
    const h = Math.ceil(m / PMD_SIZE) * PMD_SIZE;
    expect(await mm.madvise(h, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    expect(await mm.readU8(h + 5)).toBe(0);
    expect(mm.readEntry(h).val).toBe(HUGE_ZERO_PFN);
    expect(mm.readEntry(h).order).toBe(9);
    rec.clear();
    await mm.writeU8(h + 5, 1);
    // huge zero page → THP replaces the PMD inside a 2M CLEAR
    expect(starts(rec.events)).toEqual([`CLEAR ${hex(h)}-${hex(h + PMD_SIZE)}`]);
    expect(mm.readEntry(h).order).toBe(9);
    expect(mm.readEntry(h).flags & PTE_W).toBe(PTE_W);
    expect(sim.counters.get('mm.thp.alloc')).toBe(1);
    expect(mm.rss).toBe(512);
    // outside the hugepage range: small pages
    await mm.writeU8(h + PMD_SIZE, 1);
    expect(mm.readEntry(h + PMD_SIZE).order).toBe(0);
  });

  it('hugetlb: private COW after fork copies the whole huge page', async () => {
    const { mm } = setup();
    const a = await mm.mmap(0, PMD_SIZE, RW, ANON | MAP_HUGETLB);
    await mm.writeU32(a + 4 * 1000, 1000);
    const prec = await record(mm);
    const child = await mm.fork();
    expect(starts(prec.events)).toEqual([`CLEAR ${hex(a)}-${hex(a + PMD_SIZE)}`]); // copy_hugetlb_page_range
    const crec = await record(child);
    await child.writeU32(a + 4 * 1000, 1);
    expect(starts(crec.events)).toEqual([`CLEAR ${hex(a)}-${hex(a + PMD_SIZE)}`]);
    expect(await mm.readU32(a + 4 * 1000)).toBe(1000);
    expect(await child.readU32(a + 4 * 1000)).toBe(1);
  });
});

describe('fork and COW', () => {
  it('private memory is copied on write, byte for byte, in both directions', async () => {
    const { mm, sim, machine } = setup();
    const n = 32;
    const a = await mm.mmap(0, n * PAGE_SIZE, RW, ANON);
    const orig = pattern(n * PAGE_SIZE, 1);
    await mm.write(a, orig);
    const rec = await record(mm);
    const child = await mm.fork();
    // one PROTECTION_PAGE invalidation over the whole COW VMA, in the parent
    expect(starts(rec.events)).toEqual([`PROTECTION_PAGE ${hex(a)}-${hex(a + n * PAGE_SIZE)}`]);
    expect(mm.readEntry(a).flags & PTE_W).toBe(0);
    expect(machine.phys.mapcount[mm.readEntry(a).val]).toBe(2);
    const used = machine.phys.nodes[0]!.usedPages;
    const cdata = pattern(n * PAGE_SIZE, 2);
    await child.write(a, cdata.subarray(0, 4 * PAGE_SIZE));
    expect(machine.phys.nodes[0]!.usedPages).toBe(used + 4);
    expect(sameBytes(await mm.read(a, n * PAGE_SIZE), orig)).toBe(true);
    const want = orig.slice();
    want.set(cdata.subarray(0, 4 * PAGE_SIZE));
    expect(sameBytes(await child.read(a, n * PAGE_SIZE), want)).toBe(true);
    // the parent writes a page the child still shares: parent COWs (CLEAR of that page)
    rec.clear();
    await mm.writeU8(a + 10 * PAGE_SIZE, 0xee);
    expect(starts(rec.events)).toEqual([`CLEAR ${hex(a + 10 * PAGE_SIZE)}-${hex(a + 11 * PAGE_SIZE)}`]);
    expect(await child.readU8(a + 10 * PAGE_SIZE)).toBe(orig[10 * PAGE_SIZE]);
    // the child's page 10 is exclusive now: its write reuses it (no copy)
    const cow = sim.counters.get('mm.cow');
    await child.writeU8(a + 10 * PAGE_SIZE, 1);
    expect(sim.counters.get('mm.cow')).toBe(cow);
    await child.exit();
    expect(child.mmUsers).toBe(0);
    expect(child.vmas.size).toBe(0);
    expect(machine.phys.mapcount[mm.readEntry(a + 20 * PAGE_SIZE).val]).toBe(1);
  });

  it('shared mappings stay shared across fork (no write-protect, no invalidation)', async () => {
    const { mm } = setup();
    const a = await mm.mmap(0, 4 * PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS);
    await mm.writeU32(a, 1);
    const rec = await record(mm);
    const child = await mm.fork();
    expect(rec.events).toEqual([]);
    await child.writeU32(a, 2);
    await child.writeU32(a + PAGE_SIZE, 3);
    expect(await mm.readU32(a)).toBe(2);
    expect(await mm.readU32(a + PAGE_SIZE)).toBe(3);
  });

  it('file-backed private mappings: COW pages become anonymous, the page cache is untouched', async () => {
    const { mm, machine } = setup();
    const f = new TmpFile(machine.phys, 2 * PAGE_SIZE);
    f.pwrite(Uint8Array.of(1), 0);
    const a = await mm.mmap(0, 2 * PAGE_SIZE, RW, MAP_PRIVATE, f);
    await mm.writeU8(a, 9);
    const child = await mm.fork();
    expect(await child.readU8(a)).toBe(9);
    await child.writeU8(a, 8);
    expect(await mm.readU8(a)).toBe(9);
    const b = new Uint8Array(1);
    f.pread(b, 0);
    expect(b[0]).toBe(1);
  });

  it('fork of a THP shares it read-only; a write splits the PMD and COWs one page', async () => {
    const { mm, sim } = setup({ thp: 'always' });
    const m = await mm.mmap(0, 2 * PMD_SIZE, RW, ANON);
    const h = Math.ceil(m / PMD_SIZE) * PMD_SIZE;
    await mm.write(h, pattern(PMD_SIZE, 5));
    const child = await mm.fork();
    expect(child.readEntry(h).order).toBe(9);
    const crec = await record(child);
    await child.writeU8(h + 3 * PAGE_SIZE, 0);
    expect(starts(crec.events)).toEqual([
      `CLEAR ${hex(h)}-${hex(h + PMD_SIZE)}`,
      `CLEAR ${hex(h + 3 * PAGE_SIZE)}-${hex(h + 4 * PAGE_SIZE)}`,
    ]);
    expect(sim.counters.get('mm.thp.split')).toBe(1);
    expect(mm.readEntry(h).order).toBe(9);
    expect(sameBytes(await mm.read(h, PMD_SIZE), pattern(PMD_SIZE, 5))).toBe(true);
    const want = pattern(PMD_SIZE, 5);
    want[3 * PAGE_SIZE] = 0;
    expect(sameBytes(await child.read(h, PMD_SIZE), want)).toBe(true);
  });

  it('MADV_DONTFORK VMAs are not copied', async () => {
    const { mm } = setup();
    const a = await mm.mmap(0, 2 * PAGE_SIZE, RW, ANON);
    expect(await mm.madvise(a, PAGE_SIZE, 10)).toBe(0);
    const child = await mm.fork();
    expect(child.vmaLookup(a)).toBeNull();
    expect(child.vmaLookup(a + PAGE_SIZE)).not.toBeNull();
  });
});

describe('exit', () => {
  it('teardown: RELEASE to interval notifiers, release() to classic ones, then UNMAP [0, ULONG_MAX)', async () => {
    const { mm, machine } = setup();
    const a = await mm.mmap(0, 4 * PAGE_SIZE, RW, ANON);
    await mm.write(a, pattern(4 * PAGE_SIZE, 1));
    const seen: string[] = [];
    const sub = new MmuIntervalNotifier();
    expect(
      await mmuIntervalNotifierInsert(sub, mm, 0, 2 ** 47, {
        invalidate: (s, r, cur) => {
          mmuIntervalSetSeq(s, cur);
          seen.push(`${r.event} ${r.start}-${r.end}`);
          return true;
        },
      }),
    ).toBe(0);
    const rec = await record(mm);
    await mm.exit();
    expect(seen).toEqual([`5 0-${ULONG_MAX}`, `0 0-${ULONG_MAX}`]);
    expect(rec.events).toEqual([]); // classic notifiers left the list at release
    expect(machine.phys.nodes[0]!.usedPages).toBe(0);
    await expect(mm.exit()).rejects.toThrow();
    expect(mm.mmgetNotZero()).toBe(false);
    expect(await mm.mmap(0, PAGE_SIZE, RW, ANON)).toBe(-Errno.ENOMEM);
  });

  it('an anon_vma family lives until the last mm mapping through it exits (put_anon_vma)', async () => {
    const { mm, machine } = setup();
    const a = await mm.mmap(0, PAGE_SIZE, RW, ANON);
    await mm.writeU8(a, 1);
    const fam = mm.vmas.lookup(a)!.anonVma!;
    expect(machine.anonVmaById(fam.id)).toBe(fam);
    const child = await mm.fork();
    await mm.exit();
    expect(machine.anonVmaById(fam.id)).toBe(fam); // the child still maps through it
    expect(await child.readU8(a)).toBe(1);
    await child.exit();
    expect(machine.anonVmaById(fam.id)).toBeNull();
  });

  it('mmget keeps the address space alive until the last mmput', async () => {
    const { mm } = setup();
    const a = await mm.mmap(0, PAGE_SIZE, RW, ANON);
    await mm.writeU8(a, 1);
    mm.mmget();
    await mm.exit();
    expect(mm.vmas.size).toBe(1);
    expect(pteIsPresent(mm.readEntry(a).flags)).toBe(true);
    await mm.mmput();
    expect(mm.vmas.size).toBe(0);
  });
});
