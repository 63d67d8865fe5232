/**
 * pin_user_pages (FOLL_PIN, FOLL_LONGTERM) and mlock/munlock against device memory: a pinned
 * page is what migrate_vma's "pinned → restore" path exists for; mlock populates, which brings
 * device-private pages back to system memory.
 */
import {
  FOLL_LONGTERM,
  FOLL_WRITE,
  MADV_DONTNEED,
  PTE_DEVICE_PRIVATE,
  PTE_PRESENT,
  PTE_TYPE_MASK,
  VM_LOCKED,
} from '@hmmkit/mm';
import { Errno } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  MIGRATE_PFN_MIGRATE,
  MIGRATE_VMA_SELECT_SYSTEM,
  MigrateVma,
  migratePfnFlags,
  migrateVmaFinalize,
  migrateVmaSetup,
} from '../src/index.ts';
import { anon, env, makeDriver, P } from './helpers.ts';

describe('pin_user_pages', () => {
  it('a FOLL_PIN page is restored by migrate_vma_setup (migrate_vma_check_page); unpinned it migrates', async () => {
    const { mm, machine } = await env();
    const drv = makeDriver(machine);
    const a = await anon(mm, 2);
    await mm.writeU32(a, 11);
    await mm.writeU32(a + P, 12);
    const pfns = new Float64Array(1);
    await mm.mmapLock.read();
    expect(await mm.pinUserPages(a, 1, FOLL_WRITE, pfns)).toBe(1);
    mm.mmapLock.readUnlock();
    const pinned = pfns[0]!;
    expect(mm.isPinned(pinned)).toBe(true);
    const { args } = await drv.toDeviceLocked(mm, a, 2);
    expect(args.cpages).toBe(1); // only the unpinned page
    expect(args.src[0]).toBe(0); // restored: src cleared
    expect(mm.readEntry(a).flags & PTE_TYPE_MASK).toBe(PTE_PRESENT);
    expect(mm.readEntry(a).val).toBe(pinned);
    expect(mm.readEntry(a + P).flags & PTE_TYPE_MASK).toBe(PTE_DEVICE_PRIVATE);
    mm.unpinUserPage(pinned);
    expect(mm.isPinned(pinned)).toBe(false);
    expect(() => mm.unpinUserPage(pinned)).toThrow(/pinned page/);
    expect((await drv.toDeviceLocked(mm, a, 1)).args.cpages).toBe(1);
    expect(await mm.readU32(a)).toBe(11);
  });

  it('FOLL_LONGTERM migrates a device-coherent page to system memory before pinning it', async () => {
    const { mm, machine } = await env();
    const drv = makeDriver(machine, 'coherent');
    const a = await anon(mm, 1);
    await mm.writeU32(a + 16, 99);
    expect((await drv.toDeviceLocked(mm, a, 1)).args.cpages).toBe(1);
    expect(machine.phys.isDeviceCoherentPage(mm.readEntry(a).val)).toBe(true);
    const pfns = new Float64Array(1);
    await mm.mmapLock.read();
    try {
      // a short-term pin keeps the device-coherent page
      expect(await mm.pinUserPages(a, 1, 0, pfns)).toBe(1);
      expect(machine.phys.isDeviceCoherentPage(pfns[0]!)).toBe(true);
      mm.unpinUserPage(pfns[0]!);
      expect(await mm.pinUserPages(a, 1, FOLL_LONGTERM, pfns)).toBe(1);
    } finally {
      mm.mmapLock.readUnlock();
    }
    expect(machine.phys.isDeviceCoherentPage(pfns[0]!)).toBe(false);
    expect(mm.readEntry(a).val).toBe(pfns[0]);
    expect(await mm.readU32(a + 16)).toBe(99);
    mm.unpinUserPage(pfns[0]!);
    expect(2048 - drv.mem.freePages).toBe(0); // the device page went back to its pool
  });

  it('move_pages skips a device-coherent page: -ENOENT for stat and move, the page stays (add_page_for_migration)', async () => {
    const { mm, machine } = await env();
    const drv = makeDriver(machine, 'coherent');
    const a = await anon(mm, 2);
    await mm.writeU32(a, 5);
    await mm.writeU32(a + P, 6);
    expect((await drv.toDeviceLocked(mm, a, 1)).args.cpages).toBe(1);
    const devPfn = mm.readEntry(a).val;
    expect(machine.phys.isDeviceCoherentPage(devPfn)).toBe(true);
    const status = new Int32Array(2);
    expect(await mm.movePages([a, a + P], null, status)).toBe(0);
    expect([...status]).toEqual([-Errno.ENOENT, 0]);
    expect(await mm.movePages([a, a + P], [0, 0], status)).toBe(0);
    expect([...status]).toEqual([-Errno.ENOENT, 0]);
    expect(mm.readEntry(a).val).toBe(devPfn);
    expect(await mm.readU32(a)).toBe(5);
  });

  it('bad input throws before anything is pinned; the mmap lock is required', async () => {
    const { mm } = await env();
    const a = await anon(mm, 1);
    const pfns = new Float64Array(1);
    await expect(mm.pinUserPages(a, 1, 0, pfns)).rejects.toThrow(/mmap lock/);
    await expect(mm.pinUserPages(a + 1, 1, 0, pfns)).rejects.toThrow(/page-aligned/);
    await expect(mm.pinUserPages(a, 2, 0, pfns)).rejects.toThrow(/at least 2/);
    await mm.mmapLock.read();
    try {
      expect(await mm.pinUserPages(a + 16 * P, 1, 0, pfns)).toBe(-Errno.EFAULT);
    } finally {
      mm.mmapLock.readUnlock();
    }
  });
});

describe('mlock / munlock', () => {
  it('mlock sets VM_LOCKED and populates, migrating device-private pages back; munlock clears it', async () => {
    const { mm, machine } = await env();
    const drv = makeDriver(machine);
    const a = await anon(mm, 6);
    for (let k = 0; k < 4; k++) await mm.writeU32(a + k * P, 100 + k);
    expect((await drv.toDeviceLocked(mm, a, 4)).args.cpages).toBe(4);
    expect(await mm.mlock(a + P + 5, 2 * P)).toBe(0); // unaligned: pages 1..3
    expect(mm.vmaLookup(a + P)!.flags & VM_LOCKED).toBe(VM_LOCKED);
    expect(mm.vmaLookup(a)!.flags & VM_LOCKED).toBe(0);
    expect(mm.vmaLookup(a + 3 * P)!.flags & VM_LOCKED).toBe(VM_LOCKED);
    expect(mm.vmaLookup(a + 4 * P)!.flags & VM_LOCKED).toBe(0);
    expect(drv.calls.length).toBe(3); // pages 1, 2, 3 came back through migrate_to_ram
    for (let k = 1; k < 4; k++) expect(mm.readEntry(a + k * P).flags & PTE_TYPE_MASK).toBe(PTE_PRESENT);
    expect(mm.readEntry(a).flags & PTE_TYPE_MASK).toBe(PTE_DEVICE_PRIVATE);
    expect(mm.readEntry(a + 5 * P).flags).toBe(0); // outside the range: not populated
    expect(await mm.madvise(a + P, P, MADV_DONTNEED)).toBe(-Errno.EINVAL); // locked
    // migrate_vma still moves mlocked pages (they are not pinned)
    const vma = mm.vmaLookup(a + P)!;
    await mm.mmapLock.read();
    const args = new MigrateVma({ vma, start: a + P, end: a + 2 * P, flags: MIGRATE_VMA_SELECT_SYSTEM });
    expect(await migrateVmaSetup(args)).toBe(0);
    expect(migratePfnFlags(args.src[0]!) & MIGRATE_PFN_MIGRATE).toBe(MIGRATE_PFN_MIGRATE);
    await migrateVmaFinalize(args);
    mm.mmapLock.readUnlock();
    expect(await mm.munlock(a, 6 * P)).toBe(0);
    expect(mm.vmaLookup(a + P)!.flags & VM_LOCKED).toBe(0);
    expect(mm.vmaLookup(a)!.end).toBe(a + 6 * P); // merged back into one VMA
    for (let k = 0; k < 4; k++) expect(await mm.readU32(a + k * P)).toBe(100 + k);
  });

  it('a hole gives -ENOMEM after locking what precedes it; len 0 is 0', async () => {
    const { mm } = await env();
    const a = await anon(mm, 4);
    expect(await mm.munmap(a + 2 * P, P)).toBe(0);
    expect(await mm.mlock(a, 4 * P)).toBe(-Errno.ENOMEM);
    expect(mm.vmaLookup(a)!.flags & VM_LOCKED).toBe(VM_LOCKED);
    expect(await mm.mlock(a, 0)).toBe(0);
    expect(await mm.munlock(a + 2 * P, P)).toBe(-Errno.ENOMEM);
    await expect(mm.mlock(-1, P)).rejects.toThrow(/non-negative/);
  });
});
