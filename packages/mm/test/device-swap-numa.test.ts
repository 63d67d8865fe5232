import {
  MmuNotifyEvent,
  mmuNotifierInvalidateRangeEnd,
  mmuNotifierInvalidateRangeStart,
  mmuNotifierRangeInit,
} from '@hmmkit/notifier';
import { Errno } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  MADV_PAGEOUT,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '../src/constants.ts';
import { removeMigrationPtesPfn } from '../src/migrate.ts';
import {
  PTE_DEVICE_EXCLUSIVE,
  PTE_DEVICE_PRIVATE,
  PTE_MIGRATION,
  PTE_PRESENT,
  PTE_TYPE_MASK,
  PTE_W,
  pteIsSwap,
} from '../src/page-table.ts';
import { DevPagemap, PG, type VmFault } from '../src/physmem.ts';
import { rmapWalkPfn, tryToMigratePfn } from '../src/rmap.ts';
import { makeDevice, OWNER, pattern, record, sameBytes, setup, starts } from './helpers.ts';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const P = PAGE_SIZE;
const hex = (n: number) => n.toString(16);

describe('device-private memory', () => {
  it('migration entries, device-private entries and migrate_to_ram on CPU access', async () => {
    const { mm, machine } = setup();
    const dev = makeDevice(mm);
    const a = await mm.mmap(0, 4 * P, RW, ANON);
    const data = pattern(4 * P, 3);
    await mm.write(a, data);
    const rec = await record(mm);
    const used = machine.phys.nodes[0]!.usedPages;
    const d = await dev.toDevice(a + P);
    expect(starts(rec.events)).toEqual([`MIGRATE ${hex(a + P)}-${hex(a + 2 * P)} owner=${OWNER}`]);
    const e = mm.readEntry(a + P);
    expect(e.flags & PTE_TYPE_MASK).toBe(PTE_DEVICE_PRIVATE);
    expect(e.flags & PTE_W).toBe(PTE_W);
    expect(e.val).toBe(d);
    expect(machine.phys.pagemapOf(e.val)?.owner).toBe(OWNER);
    expect(machine.phys.nodes[0]!.usedPages).toBe(used - 1); // the system page was freed
    expect(machine.phys.refcount[d]).toBe(1);
    expect(mm.rmapWalk(d).map((h) => h.address)).toEqual([a + P]);
    // CPU access: migrate_to_ram with the locked device page
    rec.clear();
    expect(await mm.readU8(a + P + 5)).toBe(data[P + 5]);
    expect(dev.calls.length).toBe(1);
    expect(dev.calls[0]).toMatchObject({ address: a + P, page: d });
    expect(mm.readEntry(a + P).flags & PTE_TYPE_MASK).toBe(PTE_PRESENT);
    expect(dev.free).toContain(d); // page_free() gave the device page back
    expect(sameBytes(await mm.read(a, 4 * P), data)).toBe(true);
  });

  it('fork makes device-private entries read-only in both; a fault migrates back for both', async () => {
    const { mm } = setup();
    const dev = makeDevice(mm);
    const a = await mm.mmap(0, 2 * P, RW, ANON);
    const data = pattern(2 * P, 8);
    await mm.write(a, data);
    const d = await dev.toDevice(a);
    const child = await mm.fork();
    expect(mm.readEntry(a).flags & (PTE_TYPE_MASK | PTE_W)).toBe(PTE_DEVICE_PRIVATE);
    expect(child.readEntry(a).flags & (PTE_TYPE_MASK | PTE_W)).toBe(PTE_DEVICE_PRIVATE);
    expect(mm.phys.mapcount[d]).toBe(2);
    expect(mm.rmapWalk(d).length).toBe(2);
    // the child reads: try_to_migrate moves the parent's mapping too
    expect(await child.readU8(a + 7)).toBe(data[7]);
    expect(mm.readEntry(a).flags & PTE_TYPE_MASK).toBe(PTE_PRESENT);
    expect(child.readEntry(a).val).toBe(mm.readEntry(a).val);
    expect(dev.calls.length).toBe(1);
    // then writes COW as usual
    await child.writeU8(a, 1);
    expect(await mm.readU8(a)).toBe(data[0]);
    expect(await child.readU8(a)).toBe(1);
  });

  it('make_device_exclusive: EXCLUSIVE with the owner, revoked by CPU access with owner null', async () => {
    const { mm } = setup();
    const a = await mm.mmap(0, 2 * P, RW, ANON);
    await mm.writeU32(a + 8, 41);
    const rec = await record(mm);
    await mm.mmapLock.read();
    const r = await mm.makeDeviceExclusive(a, OWNER);
    mm.mmapLock.readUnlock();
    expect(r.ret).toBe(0);
    expect(mm.phys.isPageLocked(r.pfn)).toBe(true);
    mm.phys.unlockPage(r.pfn);
    mm.phys.putPage(r.pfn);
    expect(mm.readEntry(a).flags & (PTE_TYPE_MASK | PTE_W)).toBe(PTE_DEVICE_EXCLUSIVE | PTE_W);
    expect(starts(rec.events)).toEqual([`EXCLUSIVE ${hex(a)}-${hex(a + P)} owner=${OWNER}`]);
    rec.clear();
    expect(await mm.readU32(a + 8)).toBe(41);
    expect(starts(rec.events)).toEqual([`EXCLUSIVE ${hex(a)}-${hex(a + P)}`]);
    expect(mm.readEntry(a).flags & (PTE_TYPE_MASK | PTE_W)).toBe(PTE_PRESENT | PTE_W);
    await mm.writeU32(a + 8, 42);
    expect(await mm.readU32(a + 8)).toBe(42);
    // file-backed memory is not supported
    const b = await mm.mmap(0, P, RW, MAP_SHARED | MAP_ANONYMOUS);
    expect(b).toBeGreaterThan(0);
    expect((await mm.makeDeviceExclusive(b, OWNER)).ret).toBe(-Errno.EOPNOTSUPP);
    expect((await mm.makeDeviceExclusive(0x10000, OWNER)).ret).toBe(-Errno.EFAULT);
  });

  it('fork restores a device-exclusive entry in the parent before copying it', async () => {
    const { mm } = setup();
    const a = await mm.mmap(0, P, RW, ANON);
    await mm.writeU32(a, 5);
    const r = await mm.makeDeviceExclusive(a, OWNER);
    mm.phys.unlockPage(r.pfn);
    mm.phys.putPage(r.pfn);
    const child = await mm.fork();
    expect(mm.readEntry(a).flags & PTE_TYPE_MASK).toBe(PTE_PRESENT);
    await child.writeU32(a, 6);
    await mm.writeU32(a, 7);
    expect(await child.readU32(a)).toBe(6);
    expect(await mm.readU32(a)).toBe(7);
  });

  it('fork fails with -ENOMEM while a device-exclusive folio is locked (copy_pte_range → -EBUSY → -ENOMEM)', async () => {
    const { mm, machine } = setup();
    const a = await mm.mmap(0, 2 * P, RW, ANON);
    await mm.writeU32(a, 5);
    await mm.writeU32(a + P, 6);
    const used = machine.phys.nodes[0]!.usedPages;
    const r = await mm.makeDeviceExclusive(a + P, OWNER); // returned locked: the driver still holds it
    expect(r.ret).toBe(0);
    expect(await mm.tryFork()).toBe(-Errno.ENOMEM);
    await expect(mm.fork()).rejects.toThrow(/errno 12/);
    // the half-built child was torn down; the parent's exclusive entry is untouched
    expect(machine.phys.nodes[0]!.usedPages).toBe(used);
    expect(mm.readEntry(a + P).flags & PTE_TYPE_MASK).toBe(PTE_DEVICE_EXCLUSIVE);
    mm.phys.unlockPage(r.pfn);
    mm.phys.putPage(r.pfn);
    const child = await mm.tryFork();
    if (typeof child === 'number') throw new Error(`fork ${child}`);
    expect(await child.readU32(a + P)).toBe(6);
    expect(await mm.readU32(a + P)).toBe(6);
    await child.exit();
  });

  it('restore_exclusive_pte (6.15+): after mprotect(R) then mprotect(RW) the CPU gets a writable PTE back', async () => {
    const { mm } = setup();
    const a = await mm.mmap(0, P, RW, ANON);
    await mm.writeU32(a, 5);
    const r = await mm.makeDeviceExclusive(a, OWNER);
    mm.phys.unlockPage(r.pfn);
    mm.phys.putPage(r.pfn);
    // change_pte_range leaves the (single-type) device-exclusive entry alone
    expect(await mm.mprotect(a, P, PROT_READ)).toBe(0);
    expect(mm.readEntry(a).flags & (PTE_TYPE_MASK | PTE_W)).toBe(PTE_DEVICE_EXCLUSIVE | PTE_W);
    expect(await mm.mprotect(a, P, RW)).toBe(0);
    // the CPU read restores the PTE: VM_WRITE and an exclusive anonymous page → writable
    expect(await mm.readU32(a)).toBe(5);
    expect(mm.readEntry(a).flags & (PTE_TYPE_MASK | PTE_W)).toBe(PTE_PRESENT | PTE_W);
    expect(mm.readEntry(a).val).toBe(r.pfn);
    // and without VM_WRITE it comes back read-only
    const r2 = await mm.makeDeviceExclusive(a, OWNER);
    mm.phys.unlockPage(r2.pfn);
    mm.phys.putPage(r2.pfn);
    expect(await mm.mprotect(a, P, PROT_READ)).toBe(0);
    expect(await mm.readU32(a)).toBe(5);
    expect(mm.readEntry(a).flags & (PTE_TYPE_MASK | PTE_W)).toBe(PTE_PRESENT);
  });
});

describe('swap', () => {
  it('PAGEOUT writes pages to swap (CLEAR per page); faults read them back intact', async () => {
    const { mm, sim, machine } = setup();
    const a = await mm.mmap(0, 8 * P, RW, ANON);
    const data = pattern(8 * P, 5);
    await mm.write(a, data);
    const rec = await record(mm);
    expect(await mm.madvise(a, 2 * P, MADV_PAGEOUT)).toBe(0);
    expect(starts(rec.events)).toEqual([
      `CLEAR ${hex(a)}-${hex(a + P)}`,
      `CLEAR ${hex(a + P)}-${hex(a + 2 * P)}`,
    ]);
    expect(pteIsSwap(mm.readEntry(a).flags)).toBe(true);
    expect(mm.swapEntries).toBe(2);
    expect(machine.phys.swap.used).toBe(2);
    expect(sim.counters.get('mm.swap.out')).toBe(2);
    const t0 = sim.now;
    expect(sameBytes(await mm.read(a, 8 * P), data)).toBe(true);
    expect(sim.now - t0).toBeGreaterThanOrEqual(2 * sim.costs.swapIoPerPageNs);
    expect(sim.counters.get('mm.swap.in')).toBe(2);
    expect(sim.counters.get('mm.faults.major')).toBe(2);
    expect(machine.phys.swap.used).toBe(0);
    // the read fault mapped an exclusive page read-only; a write reuses it
    const cow = sim.counters.get('mm.cow');
    await mm.writeU8(a, 1);
    expect(sim.counters.get('mm.cow')).toBe(cow);
  });

  it('swap entries survive fork: the swap cache shares the page, data stays private', async () => {
    const { mm, machine } = setup();
    const a = await mm.mmap(0, 2 * P, RW, ANON);
    const data = pattern(2 * P, 6);
    await mm.write(a, data);
    await mm.madvise(a, 2 * P, MADV_PAGEOUT);
    const child = await mm.fork();
    expect(machine.phys.swap.count[mm.readEntry(a).val]).toBe(2);
    expect(await child.readU8(a + 3)).toBe(data[3]);
    expect(await mm.readU8(a + 3)).toBe(data[3]);
    expect(mm.readEntry(a).val).toBe(child.readEntry(a).val); // same page via the swap cache
    await mm.writeU8(a + 3, 0);
    expect(await child.readU8(a + 3)).toBe(data[3]);
    // the second page: the child writes first, the parent still sees the old contents
    await child.writeU8(a + P, 9);
    expect(await mm.readU8(a + P)).toBe(data[P]);
    expect(machine.phys.swap.used).toBe(0);
  });
});

describe('NUMA migration', () => {
  it('move_pages migrates with CLEAR invalidations and keeps contents', async () => {
    const { mm, sim } = setup({ nodes: 2 });
    const a = await mm.mmap(0, 4 * P, RW, ANON);
    const data = pattern(4 * P, 2);
    await mm.write(a, data);
    const status = new Int32Array(3);
    expect(await mm.movePages([a, a + P, a + 3 * P], null, status)).toBe(0);
    expect([...status]).toEqual([0, 0, 0]);
    const rec = await record(mm);
    const old = mm.readEntry(a).val;
    expect(await mm.movePages([a, a + P, 0x10000], [1, 0, 1], status)).toBe(0);
    expect([...status]).toEqual([1, 0, -Errno.EFAULT]);
    expect(starts(rec.events)).toEqual([`CLEAR ${hex(a)}-${hex(a + P)}`]);
    const now = mm.readEntry(a).val;
    expect(now).not.toBe(old);
    expect(mm.phys.node[now]).toBe(1);
    expect(mm.phys.flags[old]! & PG.free).toBe(PG.free);
    expect(sameBytes(await mm.read(a, 4 * P), data)).toBe(true);
    expect(sim.counters.get('mm.numa.migrated')).toBe(1);
    expect(await mm.movePages([a], [7], status)).toBe(-Errno.ENODEV);
  });
});

describe('device THP (PMD-level primitives)', () => {
  it('a THP moves to a device-private PMD entry and faults back at PMD level', async () => {
    const { mm, sim } = setup();
    const phys = mm.phys;
    const seen: VmFault[] = [];
    const devFree: number[] = [];
    const pgmap = new DevPagemap('private', OWNER, {
      migrateToRam: async (vmf) => {
        seen.push(vmf);
        const m = vmf.mm;
        const r = mmuNotifierRangeInit(
          MmuNotifyEvent.MIGRATE,
          0,
          m,
          vmf.address,
          vmf.address + 2 * 1024 * 1024,
          OWNER,
        );
        await mmuNotifierInvalidateRangeStart(r);
        expect(m.installPmdMigrationEntry(vmf.address)).toBe(vmf.page);
        const head = phys.allocFolio(0, 9);
        for (let k = 0; k < 512; k++) {
          phys.copyPage(head + k, vmf.page + k);
          m.migratePageMetadata(head + k, vmf.page + k);
        }
        expect(m.removeMigrationPmd(vmf.address, head)).toBe(true);
        for (let k = 0; k < 512; k++) {
          phys.putPage(vmf.page + k); // the transferred mapping references
          phys.putPage(head + k); // the allocation references
        }
        await mmuNotifierInvalidateRangeEnd(r);
        return 0;
      },
      pageFree: (pfn) => devFree.push(pfn),
    });
    const dstart = phys.memremapPages(pgmap, 512);
    const m = await mm.mmap(0, 3 * 2 * 1024 * 1024, RW, ANON);
    const h = Math.ceil(m / (2 * 1024 * 1024)) * 2 * 1024 * 1024;
    await mm.madvise(h, 2 * 1024 * 1024, 14);
    const data = pattern(2 * 1024 * 1024, 4);
    await mm.write(h, data);
    expect(mm.readEntry(h).order).toBe(9);
    // to device: PMD migration entry, copy, device-private PMD entry
    const head = mm.readEntry(h).val;
    expect(phys.trylockPage(head)).toBe(true);
    expect(mm.installPmdMigrationEntry(h + 5 * P)).toBe(head);
    expect(mm.readEntry(h).flags & PTE_TYPE_MASK).toBe(PTE_MIGRATION);
    for (let k = 0; k < 512; k++) {
      phys.zoneDevicePageInit(dstart + k);
      phys.copyPage(dstart + k, head + k);
      mm.migratePageMetadata(dstart + k, head + k);
    }
    expect(mm.removeMigrationPmd(h, dstart)).toBe(true);
    phys.unlockPage(head);
    for (let k = 0; k < 512; k++) {
      phys.putPage(head + k);
      phys.unlockPage(dstart + k);
      phys.putPage(dstart + k);
    }
    const e = mm.readEntry(h + 7 * P);
    expect(e.flags & (PTE_TYPE_MASK | PTE_W)).toBe(PTE_DEVICE_PRIVATE | PTE_W);
    expect(e.order).toBe(9);
    expect(e.val).toBe(dstart + 7);
    expect(phys.nodes[0]!.usedPages).toBe(0);
    // CPU access: migrate_to_ram with the head page and order 9, no split
    expect(sameBytes(await mm.read(h, 2 * 1024 * 1024), data)).toBe(true);
    expect(seen.length).toBe(1);
    expect(seen[0]).toMatchObject({ page: dstart, order: 9, address: h });
    expect(mm.readEntry(h).order).toBe(9);
    expect(devFree.length).toBe(512);
    expect(sim.counters.get('mm.thp.split')).toBe(0);
  });

  it('migrateVmaInsertPmd fills an empty block or the huge zero page', async () => {
    const { mm } = setup();
    const phys = mm.phys;
    const m = await mm.mmap(0, 3 * 2 * 1024 * 1024, PROT_READ, ANON);
    const h = Math.ceil(m / (2 * 1024 * 1024)) * 2 * 1024 * 1024;
    await mm.madvise(h, 2 * 1024 * 1024, 14);
    expect(await mm.readU8(h)).toBe(0); // huge zero page
    const vma = mm.vmaLookup(h)!;
    const head = phys.allocFolio(0, 9);
    phys.writePage(head + 3, 0, Uint8Array.of(9), 0, 1);
    expect(mm.migrateVmaInsertPmd(vma, h, head)).toBe(true);
    for (let k = 0; k < 512; k++) phys.putPage(head + k);
    expect(mm.readEntry(h).val).toBe(head);
    expect(mm.readEntry(h).flags & PTE_W).toBe(0); // PROT_READ VMA
    expect(await mm.readU8(h + 3 * P)).toBe(9);
    expect(mm.migrateVmaInsertPmd(vma, h, head)).toBe(false);
    expect(mm.rmapWalk(head + 3)).toMatchObject([{ address: h + 3 * P, huge: true }]);
  });
});

describe('try_to_migrate across fork siblings with a shared THP', () => {
  it('splits the sibling PMD, then installs migration entries everywhere', async () => {
    const { mm } = setup({ thp: 'always' });
    const m = await mm.mmap(0, 2 * 2 * 1024 * 1024, RW, ANON);
    const h = Math.ceil(m / (2 * 1024 * 1024)) * 2 * 1024 * 1024;
    await mm.write(h, pattern(2 * 1024 * 1024, 1));
    const child = await mm.fork();
    const crec = await record(child);
    const pfn = mm.readEntry(h + 4 * P).val;
    expect(mm.phys.mapcount[pfn]).toBe(2);
    mm.phys.getPage(pfn);
    expect(await mm.tryToMigrate(pfn)).toBe(0);
    expect(starts(crec.events)).toEqual([
      `CLEAR ${hex(h)}-${hex(h + 2 * 1024 * 1024)}`,
      `CLEAR ${hex(h + 4 * P)}-${hex(h + 5 * P)}`,
    ]);
    expect(child.readEntry(h + 4 * P).flags & PTE_TYPE_MASK).toBe(PTE_MIGRATION);
    expect(mm.readEntry(h + 4 * P).flags & PTE_TYPE_MASK).toBe(PTE_MIGRATION);
    expect(mm.removeMigrationPtes(pfn, pfn)).toBe(2);
    mm.phys.putPage(pfn);
    expect(await child.readU8(h + 4 * P)).toBe(pattern(2 * 1024 * 1024, 1)[4 * P]);
    expect(mm.phys.mapcount[pfn]).toBe(2);
  });
});

describe('eviction without a VA (migrate_device_range)', () => {
  it('tryToMigratePfn / removeMigrationPtesPfn find the device page through rmap alone', async () => {
    const { mm, machine } = setup();
    const dev = makeDevice(mm);
    const a = await mm.mmap(0, 2 * P, RW, ANON);
    await mm.writeU32(a + P, 0xabcd);
    const d = await dev.toDevice(a + P);
    const child = await mm.fork(); // a second mapping of the device page
    const rec = await record(child);
    const phys = machine.phys;
    phys.getPage(d);
    expect(phys.trylockPage(d)).toBe(true);
    expect(rmapWalkPfn(machine, d).length).toBe(2);
    expect(await tryToMigratePfn(machine, d)).toBe(0);
    expect(starts(rec.events)).toEqual([`CLEAR ${hex(a + P)}-${hex(a + 2 * P)}`]);
    const page = phys.allocPage(0);
    phys.copyPage(page, d);
    mm.migratePageMetadata(page, d);
    expect(removeMigrationPtesPfn(machine, d, page)).toBe(2);
    phys.putPage(page);
    phys.unlockPage(d);
    phys.putPage(d);
    expect(dev.free).toContain(d);
    expect(dev.calls.length).toBe(0); // no CPU fault was needed
    expect(await child.readU32(a + P)).toBe(0xabcd);
    expect(await mm.readU32(a + P)).toBe(0xabcd);
    expect(phys.mapcount[page]).toBe(2);
  });
});
