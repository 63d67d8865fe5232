/**
 * The dmirror driver beyond the selftest: bad input to every command (Linux's error, nothing
 * changed), the invalidate quirks, the device page table and device memory bookkeeping.
 */

import { HMM_PFN_VALID, HMM_PFN_WRITE } from '@hmmkit/hmm';
import { hmmFaultOnce, recordInvalidations } from '@hmmkit/hmm/testing';
import {
  MADV_PAGEOUT,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  O_RDWR,
  PG,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
  TmpFile,
} from '@hmmkit/mm';
import { ArgumentError, Errno, ULONG_MAX } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  DEVMEM_CHUNK_PAGES,
  DmirrorPageTable,
  DPT_XA_TAG_ATOMIC,
  DPT_XA_TAG_WRITE,
  dmirrorDevices,
  dmirrorOpen,
  dptPfn,
  dptTag,
  HMM_DMIRROR_CHECK_EXCLUSIVE,
  HMM_DMIRROR_EXCLUSIVE,
  HMM_DMIRROR_FLAGS,
  HMM_DMIRROR_MIGRATE_TO_DEV,
  HMM_DMIRROR_MIGRATE_TO_SYS,
  HMM_DMIRROR_PROT_ERROR,
  HMM_DMIRROR_READ,
  HMM_DMIRROR_RELEASE,
  HMM_DMIRROR_SNAPSHOT,
  HMM_DMIRROR_WRITE,
} from '../src/index.ts';
import { boot, cpuInit, hmmSetup, PS } from './harness.ts';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const ALL = [
  HMM_DMIRROR_READ,
  HMM_DMIRROR_WRITE,
  HMM_DMIRROR_MIGRATE_TO_DEV,
  HMM_DMIRROR_MIGRATE_TO_SYS,
  HMM_DMIRROR_SNAPSHOT,
  HMM_DMIRROR_EXCLUSIVE,
  HMM_DMIRROR_CHECK_EXCLUSIVE,
  HMM_DMIRROR_RELEASE,
  HMM_DMIRROR_FLAGS,
] as const;

/** A process with 4 initialised pages read into the mirror, for "unchanged" checks. */
async function populated(device = 0) {
  const f = await hmmSetup(device);
  const a = await f.mm.mmap(0, 4 * PS, RW, ANON);
  await cpuInit(f.mm, a, 4 * PS, (i) => i);
  const r = await f.fd.ioctl(HMM_DMIRROR_READ, { addr: a, ptr: new Uint8Array(4 * PS), npages: 4 });
  expect(r.ret).toBe(0);
  const state = () => ({
    pt: [0, 1, 2, 3].map((k) => f.fd.pt.load(a / PS + k)),
    size: f.fd.pt.size,
    vmas: f.mm.vmaSnapshot(),
    entries: [0, 1, 2, 3].map((k) => f.mm.readEntry(a + k * PS)),
    flags: f.fd.flags,
  });
  return { ...f, a, state };
}

describe('bad input', () => {
  it.each(ALL)(
    'request %i: unaligned addr, npages 0 and a wrapping range give -EINVAL, cpages/faults untouched',
    async (req) => {
      const { fd, a, state } = await populated();
      const before = state();
      const ptr = new Uint8Array(8 * PS);
      for (const cmd of [
        { addr: a + 1, ptr, npages: 1 },
        { addr: a, ptr, npages: 0 },
        { addr: a, ptr, npages: Math.floor(ULONG_MAX / PS) },
      ]) {
        const c = { ...cmd, cpages: 77, faults: 88 };
        expect(await fd.ioctl(req, c)).toEqual({ ret: -Errno.EINVAL, cpages: 77, faults: 88 });
        expect(c.cpages).toBe(77);
        expect(c.faults).toBe(88);
      }
      expect(state()).toEqual(before);
    },
  );

  it('an unknown request gives -EINVAL; non-integer arguments throw ArgumentError; all change nothing', async () => {
    const { fd, a, state } = await populated();
    const before = state();
    const ptr = new Uint8Array(PS);
    expect((await fd.ioctl(0x09, { addr: a, ptr, npages: 1 })).ret).toBe(-Errno.EINVAL);
    expect((await fd.ioctl(0x100, { addr: a, ptr, npages: 1 })).ret).toBe(-Errno.EINVAL);
    await expect(fd.ioctl(1.5, { addr: a, ptr, npages: 1 })).rejects.toThrow(ArgumentError);
    await expect(fd.ioctl(HMM_DMIRROR_READ, { addr: -PS, ptr, npages: 1 })).rejects.toThrow(ArgumentError);
    await expect(fd.ioctl(HMM_DMIRROR_READ, { addr: a, ptr, npages: 0.5 })).rejects.toThrow(/cmd.npages/);
    await expect(fd.ioctl(HMM_DMIRROR_READ, { addr: a, ptr, npages: -1 })).rejects.toThrow(ArgumentError);
    expect(state()).toEqual(before);
  });

  it.each([
    HMM_DMIRROR_READ,
    HMM_DMIRROR_WRITE,
    HMM_DMIRROR_MIGRATE_TO_DEV,
    HMM_DMIRROR_SNAPSHOT,
    HMM_DMIRROR_EXCLUSIVE,
  ])('request %i: a missing or short user buffer gives -EFAULT before anything changes', async (req) => {
    const { fd, a, state } = await populated();
    const before = state();
    expect((await fd.ioctl(req, { addr: a, npages: 4 })).ret).toBe(-Errno.EFAULT);
    const short = req === HMM_DMIRROR_SNAPSHOT ? 3 : 4 * PS - 1;
    expect((await fd.ioctl(req, { addr: a, ptr: new Uint8Array(short), npages: 4 })).ret).toBe(-Errno.EFAULT);
    expect(state()).toEqual(before);
  });

  it('no VMA: READ/WRITE -EFAULT, MIGRATE -EINVAL, EXCLUSIVE -EFAULT, SNAPSHOT 0 with ERROR bytes', async () => {
    const { mm, fd, a, state } = await populated();
    const hole = a + 64 * PS;
    expect(mm.vmaLookup(hole)).toBe(null);
    const ptr = new Uint8Array(2 * PS);
    const before = state();
    expect((await fd.ioctl(HMM_DMIRROR_READ, { addr: hole, ptr, npages: 2 })).ret).toBe(-Errno.EFAULT);
    expect((await fd.ioctl(HMM_DMIRROR_WRITE, { addr: hole, ptr, npages: 2 })).ret).toBe(-Errno.EFAULT);
    expect((await fd.ioctl(HMM_DMIRROR_MIGRATE_TO_DEV, { addr: hole, ptr, npages: 2 })).ret).toBe(
      -Errno.EINVAL,
    );
    expect((await fd.ioctl(HMM_DMIRROR_MIGRATE_TO_SYS, { addr: hole, ptr, npages: 2 })).ret).toBe(
      -Errno.EINVAL,
    );
    expect((await fd.ioctl(HMM_DMIRROR_EXCLUSIVE, { addr: hole, ptr, npages: 2 })).ret).toBe(-Errno.EFAULT);
    expect(state()).toEqual(before);
    const m = new Uint8Array(2);
    expect(await fd.ioctl(HMM_DMIRROR_SNAPSHOT, { addr: hole, ptr: m, npages: 2 })).toEqual({
      ret: 0,
      cpages: 2,
      faults: 0,
    });
    expect([...m]).toEqual([HMM_DMIRROR_PROT_ERROR, HMM_DMIRROR_PROT_ERROR]);
  });

  it('EXCLUSIVE on a file mapping gives -EOPNOTSUPP (make_device_exclusive: anonymous only)', async () => {
    const { mm, fd, machine } = await hmmSetup(0);
    const file = new TmpFile(machine.phys, PS, O_RDWR);
    const a = await mm.mmap(0, PS, RW, MAP_SHARED, file, 0);
    expect((await fd.ioctl(HMM_DMIRROR_EXCLUSIVE, { addr: a, ptr: new Uint8Array(PS), npages: 1 })).ret).toBe(
      -Errno.EOPNOTSUPP,
    );
    expect(fd.pt.size).toBe(0);
  });

  it('a closed file gives -EBADF; dmirrorOpen rejects a bad device index or a foreign mm', async () => {
    const { machine, mm, fd } = await hmmSetup(1);
    expect(await fd.close()).toBe(0);
    expect(await fd.close()).toBe(-Errno.EBADF);
    expect(
      (await fd.ioctl(HMM_DMIRROR_READ, { addr: PS * 16, ptr: new Uint8Array(PS), npages: 1 })).ret,
    ).toBe(-Errno.EBADF);
    await expect(dmirrorOpen(machine, mm, 4)).rejects.toThrow(ArgumentError);
    await expect(dmirrorOpen(machine, mm, -1)).rejects.toThrow(/deviceIndex/);
    await expect(dmirrorOpen(machine, boot().mm, 0)).rejects.toThrow(ArgumentError);
  });
});

describe('invalidate callback', () => {
  it('erases one page too many: [start >> 12, end >> 12] with an inclusive upper bound', async () => {
    const { mm, fd, a } = await populated();
    expect(fd.pt.size).toBe(4);
    expect(await mm.mprotect(a + PS, PS, PROT_READ)).toBe(0); // invalidates [a+P, a+2P)
    const idx = a / PS;
    expect([0, 1, 2, 3].map((k) => fd.pt.load(idx + k) !== 0)).toEqual([true, false, false, true]);
  });

  it('ignores MIGRATE invalidations of its own device but not those of another device', async () => {
    const { machine, mm, fd, a } = await populated(0);
    const other = await dmirrorOpen(machine, mm, 1);
    const same = await dmirrorOpen(machine, mm, 0);
    const ptr = new Uint8Array(4 * PS);
    expect((await same.ioctl(HMM_DMIRROR_READ, { addr: a, ptr, npages: 4 })).ret).toBe(0);
    expect((await other.ioctl(HMM_DMIRROR_READ, { addr: a, ptr, npages: 4 })).ret).toBe(0);
    // Migrating page 0 to device 0 keeps the entries of every device-0 mirror (its own MIGRATE)...
    const r = await fd.ioctl(HMM_DMIRROR_MIGRATE_TO_DEV, { addr: a, ptr: new Uint8Array(PS), npages: 1 });
    expect(r).toEqual({ ret: 0, cpages: 1, faults: 0 });
    expect(same.pt.load(a / PS)).not.toBe(0); // stale: the device-0 file skipped the event
    expect(other.pt.load(a / PS)).toBe(0); // device 1 saw MIGRATE with a foreign owner
    expect(other.pt.load(a / PS + 1)).toBe(0); // ...and erased one page too many
    expect(other.pt.load(a / PS + 2)).not.toBe(0);
    await other.close();
    await same.close();
  });

  it('faults counts fault passes: one pass per READ however many pages it faults', async () => {
    const { mm, fd } = await hmmSetup(0);
    const a = await mm.mmap(0, 100 * PS, RW, ANON);
    const r = await fd.ioctl(HMM_DMIRROR_READ, { addr: a, ptr: new Uint8Array(100 * PS), npages: 100 });
    expect(r).toEqual({ ret: 0, cpages: 100, faults: 1 });
    const again = await fd.ioctl(HMM_DMIRROR_READ, { addr: a, ptr: new Uint8Array(100 * PS), npages: 100 });
    expect(again).toEqual({ ret: 0, cpages: 100, faults: 0 });
  });
});

describe('commands', () => {
  it('EXCLUSIVE stores ATOMIC-tagged entries; CHECK_EXCLUSIVE is -EPERM until the CPU touches them', async () => {
    const { mm, fd } = await hmmSetup(0);
    const a = await mm.mmap(0, 2 * PS, RW, ANON);
    await cpuInit(mm, a, 2 * PS, (i) => i);
    expect(
      (await fd.ioctl(HMM_DMIRROR_EXCLUSIVE, { addr: a, ptr: new Uint8Array(2 * PS), npages: 2 })).ret,
    ).toBe(0);
    expect(dptTag(fd.pt.load(a / PS))).toBe(DPT_XA_TAG_ATOMIC);
    expect((await fd.ioctl(HMM_DMIRROR_CHECK_EXCLUSIVE, { addr: a, npages: 2 })).ret).toBe(-Errno.EPERM);
    await mm.readI32(a + PS); // revokes page 1 (and the quirk erases page 2, not page 0)
    expect((await fd.ioctl(HMM_DMIRROR_CHECK_EXCLUSIVE, { addr: a, npages: 2 })).ret).toBe(-Errno.EPERM);
    await mm.readI32(a);
    expect((await fd.ioctl(HMM_DMIRROR_CHECK_EXCLUSIVE, { addr: a, npages: 2 })).ret).toBe(0);
  });

  it('FLAGS sets the per-open flags from npages', async () => {
    const { fd } = await hmmSetup(0);
    expect(await fd.ioctl(HMM_DMIRROR_FLAGS, { addr: 0, npages: 5 })).toEqual({
      ret: 0,
      cpages: 0,
      faults: 0,
    });
    expect(fd.flags).toBe(5);
  });

  it('MIGRATE_TO_DEV stores backing pages WRITE-tagged; MIGRATE_TO_SYS counts pages and clears pt', async () => {
    const { mm, fd, machine } = await hmmSetup(0);
    const a = await mm.mmap(0, 8 * PS, RW, ANON);
    await cpuInit(mm, a, 8 * PS, (i) => i * 3);
    const dev = dmirrorDevices(machine)[0]!;
    const r = await fd.ioctl(HMM_DMIRROR_MIGRATE_TO_DEV, { addr: a, ptr: new Uint8Array(8 * PS), npages: 8 });
    expect(r.cpages).toBe(8);
    const e = fd.pt.load(a / PS);
    expect(dptTag(e)).toBe(DPT_XA_TAG_WRITE);
    expect(machine.phys.pagemapOf(dptPfn(e))).toBe(null); // a system backing page
    const devPfn = mm.readEntry(a).val;
    expect(machine.phys.isDevicePrivatePage(devPfn)).toBe(true);
    expect(dev.backingPage(devPfn)).toBe(dptPfn(e));
    const s = await fd.ioctl(HMM_DMIRROR_MIGRATE_TO_SYS, { addr: a, npages: 8 });
    expect(s).toEqual({ ret: 0, cpages: 8, faults: 0 });
    expect(fd.pt.size).toBe(0);
    expect(await mm.readI32(a + 5 * 4)).toBe(15);
    expect(dev.chunks.length).toBe(1);
    expect(dev.freePages).toBe(DEVMEM_CHUNK_PAGES);
  });
});

describe('DmirrorPageTable', () => {
  it('stores, loads, erases inclusive ranges sparsely across leaves', () => {
    const pt = new DmirrorPageTable();
    const base = 2 ** 34 + 4090;
    for (let k = 0; k < 10; k++) pt.store(base + k, 100 + k, k % 2 ? DPT_XA_TAG_WRITE : 0);
    pt.store(7, 0, DPT_XA_TAG_ATOMIC);
    expect(pt.size).toBe(11);
    expect(dptPfn(pt.load(base + 3))).toBe(103);
    expect(dptTag(pt.load(base + 3))).toBe(DPT_XA_TAG_WRITE);
    expect(dptPfn(pt.load(7))).toBe(0);
    expect(dptTag(pt.load(7))).toBe(DPT_XA_TAG_ATOMIC);
    expect(pt.load(base + 10)).toBe(0);
    pt.eraseRange(base + 2, base + 7);
    expect(pt.size).toBe(5);
    expect([1, 2, 7, 8].map((k) => pt.load(base + k) !== 0)).toEqual([true, false, false, true]);
    pt.eraseRange(0, 2 ** 35);
    expect(pt.size).toBe(0);
  });
});

describe('README example', () => {
  it('READ, MIGRATE_TO_DEV, SNAPSHOT and a CPU fault back', async () => {
    const { machine, mm } = boot();
    const ptr = await mm.mmap(0, 16 * PS, RW, ANON);
    await mm.writeI32(ptr, 42);
    const fd = await dmirrorOpen(machine, mm, 0);
    const cmd = { addr: ptr, ptr: new Uint8Array(16 * PS), npages: 16, cpages: 0, faults: 0 };
    expect(await fd.ioctl(HMM_DMIRROR_READ, cmd)).toEqual({ ret: 0, cpages: 16, faults: 1 });
    expect(cmd.faults).toBe(1);
    expect(await fd.ioctl(HMM_DMIRROR_MIGRATE_TO_DEV, cmd)).toEqual({ ret: 0, cpages: 16, faults: 0 });
    const perm = new Uint8Array(16);
    expect((await fd.ioctl(HMM_DMIRROR_SNAPSHOT, { addr: ptr, ptr: perm, npages: 16 })).ret).toBe(0);
    expect(perm[0]).toBe(0x22);
    expect(await mm.readI32(ptr)).toBe(42);
    expect(await fd.close()).toBe(0);
  });
});

describe('__migrate_device_pages: a swap-cache page must leave the swap cache (mainline folio_free_swap; older kernels refused every swap-cache page)', () => {
  it('MIGRATE_TO_DEV of a page a fork child still references through swap is -ENOENT; after the child exits it migrates', async () => {
    const { mm, fd, machine } = await hmmSetup(0);
    const a = await mm.mmap(0, PS, RW, ANON);
    await mm.writeI32(a, 1234);
    expect(await mm.madvise(a, PS, MADV_PAGEOUT)).toBe(0);
    const child = await mm.fork(); // the child's PTE is a second swap entry of the slot
    expect(await mm.readI32(a)).toBe(1234); // swap-in: the page stays in the swap cache for the child
    const pfn = mm.readEntry(a).val;
    expect(machine.phys.flags[pfn]! & PG.swapcache).toBe(PG.swapcache);
    // folio_free_swap() fails (folio_swapped): the page is not migrated, so the mirror has no
    // entry and dmirror's read-back finds none
    const r = await fd.ioctl(HMM_DMIRROR_MIGRATE_TO_DEV, { addr: a, ptr: new Uint8Array(PS), npages: 1 });
    expect(r.ret).toBe(-Errno.ENOENT);
    expect(mm.readEntry(a).val).toBe(pfn);
    expect(machine.phys.isDevicePrivatePage(mm.readEntry(a).val)).toBe(false);
    expect(await child.readI32(a)).toBe(1234);
    await child.exit();
    const ok = await fd.ioctl(HMM_DMIRROR_MIGRATE_TO_DEV, { addr: a, ptr: new Uint8Array(PS), npages: 1 });
    expect(ok.ret).toBe(0);
    expect(ok.cpages).toBe(1);
    expect(machine.phys.isDevicePrivatePage(mm.readEntry(a).val)).toBe(true);
    expect(await mm.readI32(a)).toBe(1234);
  });
});

describe('MIGRATE_PFN encodings above 2^25 pfns (device memory above 128 GiB)', () => {
  it('MIGRATE_TO_DEV / TO_SYS, a CPU fault back and a device THP keep their data with device pfns ≥ 2^25', async () => {
    const HIGH = 2 ** 25 + 2 ** 20; // 132 GiB
    const { mm, fd, machine } = await hmmSetup(0, { devicePfnBase: HIGH, thp: 'always' });
    const n = 8;
    const a = await mm.mmap(0, n * PS, RW, ANON);
    await cpuInit(mm, a, n * PS, (i) => i * 7 + 1);
    const r = await fd.ioctl(HMM_DMIRROR_MIGRATE_TO_DEV, { addr: a, ptr: new Uint8Array(n * PS), npages: n });
    expect(r).toEqual({ ret: 0, cpages: n, faults: 0 });
    for (let k = 0; k < n; k++) {
      const e = mm.readEntry(a + k * PS);
      expect(machine.phys.isDevicePrivatePage(e.val)).toBe(true);
      expect(e.val).toBeGreaterThanOrEqual(HIGH);
    }
    // hmm_range_fault reports the device pfns above 2^25 exactly (HMM pfns are a Float64Array)
    const { sub } = await recordInvalidations(mm);
    const snap = await hmmFaultOnce(mm, sub, a, n, { owner: dmirrorDevices(machine)[0] });
    expect(snap.ret).toBe(0);
    for (let k = 0; k < n; k++) {
      expect(snap.flags[k]! & (HMM_PFN_VALID | HMM_PFN_WRITE)).toBe(HMM_PFN_VALID | HMM_PFN_WRITE);
      expect(snap.pfns[k]).toBe(mm.readEntry(a + k * PS).val);
    }
    // the device's view and a CPU fault on page 3 see the data
    const b = new Uint8Array(n * PS);
    expect((await fd.ioctl(HMM_DMIRROR_READ, { addr: a, ptr: b, npages: n })).ret).toBe(0);
    expect(new Int32Array(b.buffer)[5 * 1024 + 3]).toBe((5 * 1024 + 3) * 7 + 1);
    expect(await mm.readI32(a + 3 * PS + 8)).toBe((3 * 1024 + 2) * 7 + 1);
    expect((await fd.ioctl(HMM_DMIRROR_MIGRATE_TO_SYS, { addr: a, npages: n })).ret).toBe(0);
    const back = await mm.readI32Array(a, n * 1024);
    for (let i = 0; i < n * 1024; i++) if (back[i] !== i * 7 + 1) throw new Error(`int ${i}: ${back[i]}`);
    // a 2 MiB THP goes to a device folio above 2^25 and comes back whole
    const m = await mm.mmap(0, 2 * PMD_SIZE, RW, ANON);
    const h = Math.ceil(m / PMD_SIZE) * PMD_SIZE;
    await cpuInit(mm, h, PMD_SIZE, (i) => i ^ 0x5a5a);
    expect(mm.readEntry(h).order).toBe(9);
    const t = await fd.ioctl(HMM_DMIRROR_MIGRATE_TO_DEV, {
      addr: h,
      ptr: new Uint8Array(PMD_SIZE),
      npages: 512,
    });
    expect(t.ret).toBe(0);
    expect(mm.readEntry(h).val).toBeGreaterThanOrEqual(HIGH);
    expect(machine.phys.isDevicePrivatePage(mm.readEntry(h).val)).toBe(true);
    const hb = await mm.readI32Array(h, PMD_SIZE / 4);
    for (let i = 0; i < PMD_SIZE / 4; i++)
      if (hb[i] !== (i ^ 0x5a5a)) throw new Error(`THP int ${i}: ${hb[i]}`);
  });
});
