import {
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_HUGETLB,
  MAP_PRIVATE,
  MAP_SHARED,
  PMD_SIZE,
  PTE_DEVICE_PRIVATE,
  PTE_PRESENT,
  PTE_TYPE_MASK,
  PTE_W,
  SpecialFile,
  TmpFile,
  VM_MIXEDMAP,
} from '@hmmkit/mm';
import { ArgumentError, Errno, StateError } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  copyFrame,
  DeviceMemory,
  HMM_PFN_VALID,
  HMM_PFN_WRITE,
  MIGRATE_PFN_COMPOUND,
  MIGRATE_PFN_MIGRATE,
  MIGRATE_PFN_VALID,
  MIGRATE_PFN_WRITE,
  MIGRATE_VMA_SELECT_COMPOUND,
  MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
  MIGRATE_VMA_SELECT_SYSTEM,
  MigrateVma,
  makeDeviceExclusive,
  migrateDeviceFinalize,
  migrateDevicePages,
  migrateDeviceRange,
  migratePfn,
  migratePfnFlags,
  migratePfnToPfn,
  migrateVmaFinalize,
  migrateVmaPages,
  migrateVmaSetup,
  readFrame,
} from '../src/index.ts';
import { anon, env, fault, makeDriver, OWNER, P, pattern, RW, sameBytes } from './helpers.ts';

const typeAt = (mm: { readEntry(a: number): { flags: number } }, a: number) =>
  mm.readEntry(a).flags & PTE_TYPE_MASK;

describe('migrate_vma: system ↔ device-private round trips', () => {
  it('moves data, holes and the zero page to the device and back on CPU access, byte for byte', async () => {
    const { mm, machine, invs } = await env();
    const drv = makeDriver(machine);
    const a = await anon(mm, 8);
    const data = pattern(4 * P, 3);
    await mm.write(a, data); // pages 0-3 data, 4 zero page, 5-7 holes
    await mm.readU8(a + 4 * P);
    const free0 = drv.mem.freePages;
    invs.length = 0;
    const { r, args } = await drv.toDeviceLocked(mm, a, 8);
    expect(r).toBe(0);
    expect(args.cpages).toBe(8);
    expect(args.npages).toBe(8);
    expect(invs[0]).toEqual({ event: 'MIGRATE', start: a, end: a + 8 * P, owner: OWNER });
    expect(migratePfnFlags(args.src[0]!)).toBe(MIGRATE_PFN_VALID | MIGRATE_PFN_MIGRATE | MIGRATE_PFN_WRITE);
    expect(migratePfnFlags(args.src[4]!)).toBe(MIGRATE_PFN_MIGRATE); // zero page: no pfn
    expect(migratePfnFlags(args.src[6]!)).toBe(MIGRATE_PFN_MIGRATE); // hole: no pfn
    for (let k = 0; k < 8; k++) {
      const e = mm.readEntry(a + k * P);
      expect(e.flags & (PTE_TYPE_MASK | PTE_W)).toBe(PTE_DEVICE_PRIVATE | PTE_W);
    }
    expect(drv.mem.freePages).toBe(free0 - 8);
    // CPU access migrates back (migrate_to_ram), data intact
    expect(sameBytes(await mm.read(a, 4 * P), data)).toBe(true);
    expect(await mm.readU8(a + 6 * P)).toBe(0);
    expect(drv.calls.length).toBe(5);
    expect(
      sameBytes(
        await mm.read(a, 8 * P),
        new Uint8Array(8 * P).fill(0).map((_, i) => (i < 4 * P ? data[i]! : 0)),
      ),
    ).toBe(true);
    expect(drv.calls.length).toBe(8);
    expect(typeAt(mm, a)).toBe(PTE_PRESENT);
    expect(drv.mem.freePages).toBe(free0); // device pages returned to the pool
  });

  it('explicit migrate back with SELECT_DEVICE_PRIVATE; other owners and unselected pages give 0', async () => {
    const { mm, machine } = await env();
    const drv = makeDriver(machine);
    const other = makeDriver(machine, 'private', 'dev1');
    const a = await anon(mm, 4);
    const data = pattern(4 * P, 9);
    await mm.write(a, data);
    await drv.toDeviceLocked(mm, a, 2);
    await other.toDeviceLocked(mm, a + 2 * P, 1);
    await mm.mmapLock.read();
    const args = await drv.migrateBack(mm, a, 4);
    mm.mmapLock.readUnlock();
    expect(args.cpages).toBe(2);
    expect(args.src[2]).toBe(0); // dev1's page
    expect(args.src[3]).toBe(0); // a system page without SELECT_SYSTEM
    expect(typeAt(mm, a + 2 * P)).toBe(PTE_DEVICE_PRIVATE);
    expect(typeAt(mm, a)).toBe(PTE_PRESENT);
    expect(sameBytes(await mm.read(a, 4 * P), data)).toBe(true);
  });

  it('migrate_vma_pages: no dst clears MIGRATE; finalize restores the original', async () => {
    const { mm, machine } = await env();
    const a = await anon(mm, 2);
    await mm.writeU8(a, 11);
    const pfn = mm.pagemapEntry(a).pfn;
    await mm.mmapLock.read();
    const args = new MigrateVma({
      vma: mm.vmaLookup(a)!,
      start: a,
      end: a + 2 * P,
      flags: MIGRATE_VMA_SELECT_SYSTEM,
    });
    expect(await migrateVmaSetup(args)).toBe(0);
    expect(args.cpages).toBe(2);
    await migrateVmaPages(args);
    expect(migratePfnFlags(args.src[0]!) & MIGRATE_PFN_MIGRATE).toBe(0);
    await migrateVmaFinalize(args);
    mm.mmapLock.readUnlock();
    expect(mm.pagemapEntry(a).pfn).toBe(pfn);
    expect(machine.phys.isPageLocked(pfn)).toBe(false);
    expect(machine.phys.refcount[pfn]).toBe(1);
    expect(await mm.readU8(a)).toBe(11);
  });

  it('a pinned page is restored at unmap (src 0, not counted in cpages)', async () => {
    const { mm, machine } = await env();
    const drv = makeDriver(machine);
    const a = await anon(mm, 2);
    await mm.touch(a, 2 * P, true);
    await mm.mmapLock.read();
    const pin = await mm.getUserPage(a, false);
    const { args } = await drv.toDevice(mm, a, 2);
    mm.mmapLock.readUnlock();
    expect(args.src[0]).toBe(0);
    expect(args.cpages).toBe(1);
    expect(typeAt(mm, a)).toBe(PTE_PRESENT);
    expect(typeAt(mm, a + P)).toBe(PTE_DEVICE_PRIVATE);
    machine.phys.putPage(pin);
  });

  it('file-backed pages are collected but cannot go to device memory', async () => {
    const { mm, machine } = await env();
    const drv = makeDriver(machine);
    const f = new TmpFile(machine.phys, 2 * P);
    const a = await mm.mmap(0, 2 * P, RW, MAP_SHARED, f);
    await mm.writeU8(a, 77);
    await mm.mmapLock.read();
    const { args } = await drv.toDevice(mm, a, 2);
    mm.mmapLock.readUnlock();
    expect(args.cpages).toBe(1); // the present page; the file hole is not collected
    expect(args.src[1]).toBe(0);
    expect(migratePfnFlags(args.src[0]!) & MIGRATE_PFN_MIGRATE).toBe(0); // cleared by pages()
    expect(typeAt(mm, a)).toBe(PTE_PRESENT);
    expect(await mm.readU8(a)).toBe(77);
    expect(drv.mem.freePages).toBe(2048);
  });

  it('fork turns device-private entries read-only in both; one CPU fault brings both back', async () => {
    const { mm, machine } = await env();
    const drv = makeDriver(machine);
    const a = await anon(mm, 1);
    await mm.writeU32(a, 1234);
    await drv.toDeviceLocked(mm, a, 1);
    const child = await mm.fork();
    expect(mm.readEntry(a).flags & (PTE_TYPE_MASK | PTE_W)).toBe(PTE_DEVICE_PRIVATE);
    expect(child.readEntry(a).flags & (PTE_TYPE_MASK | PTE_W)).toBe(PTE_DEVICE_PRIVATE);
    expect(await child.readU32(a)).toBe(1234);
    expect(drv.calls.length).toBe(1);
    expect(typeAt(mm, a)).toBe(PTE_PRESENT); // try_to_migrate replaced the parent's entry too
    expect(mm.pagemapEntry(a).pfn).toBe(child.pagemapEntry(a).pfn);
    await child.writeU32(a, 99); // COW
    expect(await mm.readU32(a)).toBe(1234);
    expect(await child.readU32(a)).toBe(99);
    expect(drv.calls.length).toBe(1);
    await child.exit();
  });
});

describe('migrate_vma: device-coherent and THP', () => {
  it('device-coherent pages stay CPU-mapped and come back with SELECT_DEVICE_COHERENT', async () => {
    const { mm, machine } = await env();
    const drv = makeDriver(machine, 'coherent');
    const a = await anon(mm, 2);
    const data = pattern(2 * P, 5);
    await mm.write(a, data);
    await drv.toDeviceLocked(mm, a, 2);
    const pfn = mm.pagemapEntry(a).pfn;
    expect(machine.phys.isDeviceCoherentPage(pfn)).toBe(true);
    expect(sameBytes(await mm.read(a, 2 * P), data)).toBe(true); // no migrate_to_ram
    expect(drv.calls.length).toBe(0);
    // SELECT_SYSTEM alone does not pick device-coherent pages
    await mm.mmapLock.read();
    const none = new MigrateVma({
      vma: mm.vmaLookup(a)!,
      start: a,
      end: a + 2 * P,
      pgmapOwner: OWNER,
      flags: MIGRATE_VMA_SELECT_SYSTEM,
    });
    expect(await migrateVmaSetup(none)).toBe(0);
    expect(none.cpages).toBe(0);
    await migrateVmaFinalize(none);
    const back = await drv.migrateBack(mm, a, 2);
    mm.mmapLock.readUnlock();
    expect(back.cpages).toBe(2);
    expect(machine.phys.isDeviceCoherentPage(mm.pagemapEntry(a).pfn)).toBe(false);
    expect(sameBytes(await mm.read(a, 2 * P), data)).toBe(true);
    expect(drv.mem.freePages).toBe(2048);
  });

  it('a THP without SELECT_COMPOUND is split and migrated as 512 pages', async () => {
    const { mm, machine } = await env();
    const drv = makeDriver(machine);
    const a = await anon(mm, 512, RW, true);
    await mm.madvise(a, PMD_SIZE, MADV_HUGEPAGE);
    const data = pattern(PMD_SIZE, 1);
    await mm.write(a, data);
    expect(mm.readEntry(a).order).toBe(9);
    const { args } = await drv.toDeviceLocked(mm, a, 512);
    expect(args.cpages).toBe(512);
    expect(mm.readEntry(a + 100 * P).flags & PTE_TYPE_MASK).toBe(PTE_DEVICE_PRIVATE);
    expect(sameBytes(await mm.read(a, PMD_SIZE), data)).toBe(true);
  });

  it('the huge zero page is split and its 512 zero pages migrate as no-pfn entries', async () => {
    const { mm, machine, sim } = await env();
    const drv = makeDriver(machine);
    const a = await anon(mm, 512, RW, true);
    await mm.madvise(a, PMD_SIZE, MADV_HUGEPAGE);
    await mm.readU8(a); // huge zero PMD
    expect(mm.readEntry(a).order).toBe(9);
    const splits = sim.counters.get('mm.thp.split');
    const { args } = await drv.toDeviceLocked(mm, a, 512);
    expect(args.cpages).toBe(512);
    expect(migratePfnFlags(args.src[77]!)).toBe(MIGRATE_PFN_MIGRATE);
    expect(typeAt(mm, a + 77 * P)).toBe(PTE_DEVICE_PRIVATE);
    expect(sim.counters.get('mm.thp.split')).toBe(splits + 1);
    expect(await mm.readU8(a + 77 * P)).toBe(0);
  });

  it('SELECT_COMPOUND moves a THP as one device folio (order-9 entries) and back', async () => {
    const { mm, machine, sub } = await env();
    const drv = makeDriver(machine);
    const a = await anon(mm, 512, RW, true);
    await mm.madvise(a, PMD_SIZE, MADV_HUGEPAGE);
    const data = pattern(PMD_SIZE, 2);
    await mm.write(a, data);
    await mm.mmapLock.read();
    const args = new MigrateVma({
      vma: mm.vmaLookup(a)!,
      start: a,
      end: a + PMD_SIZE,
      pgmapOwner: OWNER,
      flags: MIGRATE_VMA_SELECT_SYSTEM | MIGRATE_VMA_SELECT_COMPOUND,
    });
    expect(await migrateVmaSetup(args)).toBe(0);
    expect(args.cpages).toBe(1);
    expect(migratePfnFlags(args.src[0]!)).toBe(
      MIGRATE_PFN_VALID | MIGRATE_PFN_MIGRATE | MIGRATE_PFN_WRITE | MIGRATE_PFN_COMPOUND,
    );
    expect(args.src[1]).toBe(0);
    const head = drv.mem.allocFolio();
    expect(head).toBeGreaterThan(0);
    const shead = migratePfnToPfn(args.src[0]!);
    for (let k = 0; k < 512; k++) machine.phys.copyPage(head + k, shead + k);
    args.dst[0] = migratePfn(head) + MIGRATE_PFN_COMPOUND;
    await migrateVmaPages(args);
    await migrateVmaFinalize(args);
    mm.mmapLock.readUnlock();
    const e = mm.readEntry(a + 3 * P);
    expect(e.order).toBe(9);
    expect(e.flags & PTE_TYPE_MASK).toBe(PTE_DEVICE_PRIVATE);
    const r = await fault(mm, sub, a + 3 * P, 2, { owner: OWNER });
    expect(r.flags).toEqual([HMM_PFN_VALID | HMM_PFN_WRITE | 9, HMM_PFN_VALID | HMM_PFN_WRITE | 9]);
    expect(r.pfns).toEqual([head + 3, head + 4]);
    // CPU access: migrate_to_ram with order 9 and the head page; the driver brings 512 pages back
    expect(sameBytes(await mm.read(a, PMD_SIZE), data)).toBe(true);
    expect(drv.calls[0]!.order).toBe(9);
    expect(drv.calls[0]!.page).toBe(head);
  });

  it('SELECT_COMPOUND takes a device THP whose head is the (locked) fault page whole: 2 MiB back as one THP', async () => {
    const { mm, machine } = await env();
    const p = machine.phys;
    const drv = makeDriver(machine);
    const a = await anon(mm, 512, RW, true);
    await mm.madvise(a, PMD_SIZE, MADV_HUGEPAGE);
    const data = pattern(PMD_SIZE, 3);
    await mm.write(a, data);
    await mm.mmapLock.read();
    const vma = mm.vmaLookup(a)!;
    const to = new MigrateVma({
      vma,
      start: a,
      end: a + PMD_SIZE,
      pgmapOwner: OWNER,
      flags: MIGRATE_VMA_SELECT_SYSTEM | MIGRATE_VMA_SELECT_COMPOUND,
    });
    expect(await migrateVmaSetup(to)).toBe(0);
    const head = drv.mem.allocFolio();
    const shead = migratePfnToPfn(to.src[0]!);
    for (let k = 0; k < 512; k++) p.copyPage(head + k, shead + k);
    to.dst[0] = migratePfn(head) + MIGRATE_PFN_COMPOUND;
    await migrateVmaPages(to);
    await migrateVmaFinalize(to);
    // the migrate_to_ram side, as do_swap_page hands it over: the head locked and referenced
    expect(p.trylockPage(head)).toBe(true);
    p.getPage(head);
    const back = new MigrateVma({
      vma,
      start: a,
      end: a + PMD_SIZE,
      pgmapOwner: OWNER,
      flags: MIGRATE_VMA_SELECT_DEVICE_PRIVATE | MIGRATE_VMA_SELECT_COMPOUND,
      faultPage: head,
    });
    expect(await migrateVmaSetup(back)).toBe(0);
    expect(back.cpages).toBe(1); // one entry, not 512 after a split
    expect(migratePfnFlags(back.src[0]!) & MIGRATE_PFN_COMPOUND).toBe(MIGRATE_PFN_COMPOUND);
    const thp = p.allocFolio(0, 9);
    p.trylockPage(thp);
    for (let k = 0; k < 512; k++) p.copyPage(thp + k, head + k);
    back.dst[0] = migratePfn(thp) + MIGRATE_PFN_COMPOUND;
    await migrateVmaPages(back);
    await migrateVmaFinalize(back);
    p.unlockPage(head);
    p.putPage(head);
    mm.mmapLock.readUnlock();
    const e = mm.readEntry(a + 5 * P);
    expect(e.order).toBe(9);
    expect(e.flags & PTE_TYPE_MASK).toBe(PTE_PRESENT);
    expect(sameBytes(await mm.read(a, PMD_SIZE), data)).toBe(true);
    expect(drv.mem.freePages).toBe(drv.mem.nrPages);
  });
});

describe('migrate_vma_setup: -EINVAL rules and bad input leave state unchanged', () => {
  it('returns -EINVAL exactly where Linux does, with no invalidation issued', async () => {
    const { mm, machine, invs } = await env();
    const drv = makeDriver(machine);
    const a = await anon(mm, 4);
    await mm.touch(a, 4 * P, true);
    const h = await mm.mmap(0, PMD_SIZE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB);
    const sf = new SpecialFile(2, (vma) => {
      vma.flags |= VM_MIXEDMAP;
      return 0;
    });
    const s = await mm.mmap(0, P, RW, MAP_SHARED, sf);
    const vma = mm.vmaLookup(a)!;
    const sel = MIGRATE_VMA_SELECT_SYSTEM;
    const before = [0, 1, 2, 3].map((k) => mm.readEntry(a + k * P));
    invs.length = 0;
    await mm.mmapLock.read();
    const cases: MigrateVma[] = [
      new MigrateVma({ vma: null as never, start: a, end: a + P, flags: sel }),
      new MigrateVma({ vma: mm.vmaLookup(h)!, start: h, end: h + P, flags: sel }),
      new MigrateVma({ vma: mm.vmaLookup(s)!, start: s, end: s + P, flags: sel }),
      new MigrateVma({ vma, start: a, end: a, flags: sel }),
      new MigrateVma({ vma, start: a + 100, end: a + 200, flags: sel }), // empty after PAGE_MASK
      new MigrateVma({ vma, start: a - P, end: a + P, flags: sel }),
      new MigrateVma({ vma, start: a, end: a + 8 * P, flags: sel }),
      new MigrateVma({ vma, start: a, end: a + P, flags: sel, faultPage: mm.pagemapEntry(a).pfn }),
      new MigrateVma({ vma, start: a, end: a + P, flags: sel, faultPage: drv.mem.start }), // not locked (free)
    ];
    const noSrc = new MigrateVma({ vma, start: a, end: a + P, flags: sel });
    noSrc.src = null as never;
    cases.push(noSrc);
    for (const c of cases) expect(await migrateVmaSetup(c)).toBe(-Errno.EINVAL);
    await expect(
      migrateVmaSetup(
        new MigrateVma({ vma, start: a, end: a + 4 * P, flags: sel, src: new Float64Array(2) }),
      ),
    ).rejects.toBeInstanceOf(ArgumentError);
    await expect(
      migrateVmaSetup(new MigrateVma({ vma, start: -P, end: a, flags: sel })),
    ).rejects.toBeInstanceOf(ArgumentError);
    await expect(
      migrateVmaSetup(new MigrateVma({ vma, start: a, end: a + P, flags: -1 })),
    ).rejects.toBeInstanceOf(ArgumentError);
    mm.mmapLock.readUnlock();
    await expect(
      migrateVmaSetup(new MigrateVma({ vma, start: a, end: a + P, flags: sel })),
    ).rejects.toBeInstanceOf(StateError);
    expect(invs).toEqual([]);
    expect([0, 1, 2, 3].map((k) => mm.readEntry(a + k * P))).toEqual(before);
  });

  it('migrate_vma_pages rejects a dst naming a free page before changing anything', async () => {
    const { mm, machine } = await env();
    const drv = makeDriver(machine);
    const a = await anon(mm, 1);
    await mm.writeU8(a, 1);
    await mm.mmapLock.read();
    const args = new MigrateVma({
      vma: mm.vmaLookup(a)!,
      start: a,
      end: a + P,
      flags: MIGRATE_VMA_SELECT_SYSTEM,
    });
    await migrateVmaSetup(args);
    const src0 = args.src[0];
    args.dst[0] = migratePfn(drv.mem.start + 5); // never allocated
    await expect(migrateVmaPages(args)).rejects.toBeInstanceOf(ArgumentError);
    expect(args.src[0]).toBe(src0);
    args.dst[0] = 0;
    await migrateVmaPages(args);
    await migrateVmaFinalize(args);
    mm.mmapLock.readUnlock();
    expect(await mm.readU8(a)).toBe(1);
  });
});

describe('eviction without a VA: migrate_device_range / pages / finalize', () => {
  it('evicts every device page of a pool back to system memory', async () => {
    const { mm, machine } = await env();
    const drv = makeDriver(machine);
    const a = await anon(mm, 4);
    const data = pattern(4 * P, 7);
    await mm.write(a, data);
    await drv.toDeviceLocked(mm, a, 4);
    const child = await mm.fork(); // entries shared by two mms
    const n = 16;
    const src = new Float64Array(n);
    const dst = new Float64Array(n);
    expect(await migrateDeviceRange(src, drv.mem.start, n)).toBe(0);
    let moved = 0;
    for (let i = 0; i < n; i++) {
      if (!(migratePfnFlags(src[i]!) & MIGRATE_PFN_MIGRATE)) continue;
      const d = machine.phys.allocPage(0);
      machine.phys.trylockPage(d);
      copyFrame(machine.phys, d, migratePfnToPfn(src[i]!));
      dst[i] = migratePfn(d);
      moved++;
    }
    expect(moved).toBe(4);
    await migrateDevicePages(src, dst, n);
    await migrateDeviceFinalize(src, dst, n);
    expect(drv.mem.freePages).toBe(2048);
    expect(typeAt(mm, a)).toBe(PTE_PRESENT);
    expect(typeAt(child, a + 3 * P)).toBe(PTE_PRESENT);
    expect(sameBytes(await mm.read(a, 4 * P), data)).toBe(true);
    expect(sameBytes(await child.read(a, 4 * P), data)).toBe(true);
    expect(drv.calls.length).toBe(0);
    await expect(migrateDeviceRange(new Float64Array(1), drv.mem.start, 2)).rejects.toBeInstanceOf(
      ArgumentError,
    );
    await expect(migrateDeviceRange(src, 1, 1)).rejects.toBeInstanceOf(ArgumentError);
    await child.exit();
  });

  it('pfn-only calls resolve against the latest machine; an older machine is passed explicitly', async () => {
    const first = await env();
    const drv1 = makeDriver(first.machine);
    const a = await anon(first.mm, 1);
    await first.mm.writeU32(a, 41);
    await drv1.toDeviceLocked(first.mm, a, 1);
    const second = await env(); // a later machine with device memory at the same pfns
    makeDriver(second.machine);
    const src = new Float64Array(1);
    // Without the machine, hmm looks at the latest one, where that device page is free.
    expect(await migrateDeviceRange(src, drv1.mem.start, 1)).toBe(0);
    expect(migratePfnFlags(src[0]!) & MIGRATE_PFN_MIGRATE).toBe(0);
    // With it, the first machine's page is selected and can be brought back.
    expect(await migrateDeviceRange(src, drv1.mem.start, 1, first.machine)).toBe(0);
    expect(migratePfnFlags(src[0]!) & MIGRATE_PFN_MIGRATE).toBe(MIGRATE_PFN_MIGRATE);
    const dst = new Float64Array(1);
    const d = first.machine.phys.allocPage(0);
    first.machine.phys.trylockPage(d);
    copyFrame(first.machine.phys, d, migratePfnToPfn(src[0]!));
    dst[0] = migratePfn(d);
    await migrateDevicePages(src, dst, 1, first.machine);
    await migrateDeviceFinalize(src, dst, 1, first.machine);
    expect(typeAt(first.mm, a)).toBe(PTE_PRESENT);
    expect(await first.mm.readU32(a)).toBe(41);
  });
});

describe('make_device_exclusive', () => {
  it('installs an exclusive entry; CPU access revokes it with EXCLUSIVE (owner null)', async () => {
    const { mm, machine, invs } = await env();
    const a = await anon(mm, 2);
    await mm.writeU8(a, 3);
    invs.length = 0;
    await mm.mmapLock.read();
    const r = await makeDeviceExclusive(mm, a, OWNER);
    mm.mmapLock.readUnlock();
    if (!('pfn' in r)) throw new Error(`failed ${r.error}`);
    expect(machine.phys.isPageLocked(r.pfn)).toBe(true);
    expect(invs).toEqual([{ event: 'EXCLUSIVE', start: a, end: a + P, owner: OWNER }]);
    machine.phys.unlockPage(r.pfn);
    machine.phys.putPage(r.pfn);
    invs.length = 0;
    expect(await mm.readU8(a)).toBe(3);
    expect(invs).toEqual([{ event: 'EXCLUSIVE', start: a, end: a + P, owner: null }]);
    expect(typeAt(mm, a)).toBe(PTE_PRESENT);
  });

  it('errors: -EFAULT without a VMA, -EOPNOTSUPP for file pages, -EBUSY for a locked page; bad input', async () => {
    const { mm, machine } = await env();
    const a = await anon(mm, 1);
    await mm.writeU8(a, 1);
    const f = new TmpFile(machine.phys, P);
    const b = await mm.mmap(0, P, RW, MAP_SHARED, f);
    await mm.mmapLock.read();
    expect(await makeDeviceExclusive(mm, a + 64 * P, OWNER)).toEqual({ error: -Errno.EFAULT });
    expect(await makeDeviceExclusive(mm, b, OWNER)).toEqual({ error: -Errno.EOPNOTSUPP });
    const pfn = mm.pagemapEntry(a).pfn;
    machine.phys.trylockPage(pfn);
    expect(await makeDeviceExclusive(mm, a, OWNER)).toEqual({ error: -Errno.EBUSY });
    machine.phys.unlockPage(pfn);
    await expect(makeDeviceExclusive(mm, a + 1, OWNER)).rejects.toBeInstanceOf(ArgumentError);
    mm.mmapLock.readUnlock();
    await expect(makeDeviceExclusive(mm, a, OWNER)).rejects.toBeInstanceOf(StateError);
    expect(typeAt(mm, a)).toBe(PTE_PRESENT);
  });
});

describe('DeviceMemory', () => {
  it('allocates locked pages with refcount 1, exhausts, fails on demand, refills on free', async () => {
    const { machine } = await env();
    const mem = new DeviceMemory(machine, { type: 'coherent', owner: 'x', nrPages: 3 });
    const p = [mem.allocPage(), mem.allocPage(), mem.allocPage()];
    expect(new Set(p).size).toBe(3);
    expect(mem.allocPage()).toBe(-1);
    expect(machine.phys.refcount[p[0]!]).toBe(1);
    expect(machine.phys.isPageLocked(p[0]!)).toBe(true);
    mem.freePage(p[1]!);
    expect(mem.freePages).toBe(1);
    mem.failAlloc = true;
    expect(mem.allocPage()).toBe(-1);
    mem.failAlloc = false;
    expect(mem.allocPage()).toBe(p[1]);
    expect(() => mem.freePage(12345678)).toThrow(ArgumentError);
    expect(() => new DeviceMemory(machine, { type: 'private', owner: 'y', nrPages: 1 })).toThrow(
      ArgumentError,
    );
    expect(() => new DeviceMemory(machine, { type: 'coherent', owner: 'y', nrPages: 0 })).toThrow(
      ArgumentError,
    );
    machine.phys.writePage(p[0]!, 0, new Uint8Array([1, 2, 3]), 0, 3);
    copyFrame(machine.phys, p[2]!, p[0]!);
    expect([...readFrame(machine.phys, p[2]!).subarray(0, 4)]).toEqual([1, 2, 3, 0]);
    expect(() => copyFrame(machine.phys, -1, p[0]!)).toThrow(ArgumentError);
    // a pfn the arrays cover but nothing ever handed out is not a frame
    const limit = machine.phys.frameLimit;
    expect(limit).toBeLessThanOrEqual(machine.phys.capacity);
    expect(() => copyFrame(machine.phys, limit, p[0]!)).toThrow(/must be an existing frame/);
    expect(() => copyFrame(machine.phys, p[0]!, limit)).toThrow(/must be an existing frame/);
  });
});

describe('migrate_device_*: bad input', () => {
  it('rejects bad npages / arrays / dst before changing anything', async () => {
    const { machine } = await env();
    const drv = makeDriver(machine);
    const src = new Float64Array(2);
    await expect(migrateDeviceRange(src, drv.mem.start, -1)).rejects.toBeInstanceOf(ArgumentError);
    await expect(migrateDevicePages(src, new Float64Array(1), 2)).rejects.toBeInstanceOf(ArgumentError);
    await expect(migrateDeviceFinalize(src, src, 1.5)).rejects.toBeInstanceOf(ArgumentError);
    expect(await migrateDeviceRange(src, drv.mem.start, 2)).toBe(0); // free pages: nothing selected
    expect([...src]).toEqual([0, 0]);
    expect(drv.mem.freePages).toBe(2048);
  });
});
