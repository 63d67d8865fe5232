import {
  HUGE_ZERO_PFN,
  MADV_HUGEPAGE,
  MADV_PAGEOUT,
  MAP_ANONYMOUS,
  MAP_HUGE_1GB,
  MAP_HUGETLB,
  MAP_PRIVATE,
  MAP_SHARED,
  PMD_SIZE,
  PROT_NONE,
  PROT_READ,
  PTE_DEVICE_EXCLUSIVE,
  PTE_MIGRATION,
  PTE_TYPE_MASK,
  PUD_SIZE,
  SpecialFile,
  VM_MIXEDMAP,
  VM_PFNMAP,
  ZERO_PFN,
} from '@hmmkit/mm';
import { MmuNotifyEvent, mmuIntervalReadBegin } from '@hmmkit/notifier';
import { ArgumentError, Errno, Mutex, RwSemaphore, StateError } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  HMM_PFN_DMA_MAPPED,
  HMM_PFN_ERROR,
  HMM_PFN_REQ_FAULT,
  HMM_PFN_REQ_WRITE,
  HMM_PFN_VALID,
  HMM_PFN_WRITE,
  HmmRange,
  hmmPfnToMapOrder,
  hmmRangeFault,
  hmmRangeFaultLocked,
  MIGRATE_VMA_SELECT_COMPOUND,
  MIGRATE_VMA_SELECT_SYSTEM,
  MigrateVma,
  makeDeviceExclusive,
  migrateVmaFinalize,
  migrateVmaPages,
  migrateVmaSetup,
} from '../src/index.ts';
import { anon, env, fault, makeDriver, OWNER, P, RW } from './helpers.ts';

const V = HMM_PFN_VALID;
const W = HMM_PFN_WRITE;
const E = HMM_PFN_ERROR;
const FAULT = HMM_PFN_REQ_FAULT;
const WRITE = HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE;

describe('snapshot mode (no REQ_FAULT anywhere): outputs per PTE state, only 0 / -EBUSY', () => {
  it('reports none, RW, RO, zero page, swap, device-private (own / other), exclusive, gap, PROT_NONE, special', async () => {
    const { mm, sub, machine } = await env();
    const a = await anon(mm, 16);
    await mm.writeU8(a + 1 * P, 1); // RW page
    await mm.readU8(a + 2 * P); // zero page
    await mm.writeU8(a + 3 * P, 3);
    expect(await mm.madvise(a + 3 * P, P, MADV_PAGEOUT)).toBe(0); // swap entry
    const drv = makeDriver(machine);
    const other = makeDriver(machine, 'private', 'dev1');
    await mm.writeU8(a + 4 * P, 4);
    await mm.writeU8(a + 5 * P, 5);
    expect((await drv.toDeviceLocked(mm, a + 4 * P, 1)).args.cpages).toBe(1);
    expect((await other.toDeviceLocked(mm, a + 5 * P, 1)).args.cpages).toBe(1);
    await mm.writeU8(a + 6 * P, 6);
    await mm.mmapLock.read();
    const ex = await makeDeviceExclusive(mm, a + 6 * P, OWNER);
    mm.mmapLock.readUnlock();
    if (!('pfn' in ex)) throw new Error('exclusive failed');
    machine.phys.unlockPage(ex.pfn);
    machine.phys.putPage(ex.pfn);
    expect(mm.readEntry(a + 6 * P).flags & PTE_TYPE_MASK).toBe(PTE_DEVICE_EXCLUSIVE);
    expect(await mm.mprotect(a + 7 * P, P, PROT_READ)).toBe(0);
    await mm.readU8(a + 7 * P); // read-only VMA: zero page
    expect(await mm.mprotect(a + 8 * P, P, PROT_NONE)).toBe(0);
    expect(await mm.munmap(a + 9 * P, P)).toBe(0); // gap
    // page 10.. untouched (pte_none in an existing table)

    const r = await fault(mm, sub, a, 11, { owner: OWNER });
    expect(r.ret).toBe(0);
    const pfn1 = mm.pagemapEntry(a + P).pfn;
    const dev4 = mm.readEntry(a + 4 * P).val;
    expect(r.flags).toEqual([0, V | W, V, 0, V | W, 0, 0, V, E, E, 0]);
    expect(r.pfns).toEqual([0, pfn1, ZERO_PFN, 0, dev4, 0, 0, ZERO_PFN, 0, 0, 0]);
    // without the owner the device-private page is just a non-present entry
    const r2 = await fault(mm, sub, a + 4 * P, 1);
    expect(r2.flags).toEqual([0]);
  });

  it('a special PTE in a VM_MIXEDMAP VMA is ERROR; a VM_PFNMAP VMA is ERROR', async () => {
    const { mm, sub, machine } = await env();
    const raw = machine.phys.allocPage(0);
    const mixed = new SpecialFile(2, (vma) => {
      vma.flags |= VM_MIXEDMAP;
      return mm.vmInsertPfn(vma, vma.start, raw);
    });
    const pfnmap = new SpecialFile(2, (vma) => {
      vma.flags |= VM_PFNMAP;
      return mm.vmInsertPfn(vma, vma.start, raw);
    });
    const c = await mm.mmap(0, P, RW, MAP_SHARED, mixed);
    const d = await mm.mmap(0, P, RW, MAP_SHARED, pfnmap);
    expect((await fault(mm, sub, c, 1)).flags).toEqual([E]);
    expect((await fault(mm, sub, d, 1)).flags).toEqual([E]);
    // asked to fault: -EFAULT for both
    expect((await fault(mm, sub, c, 1, { defaultFlags: FAULT })).ret).toBe(-Errno.EFAULT);
    expect((await fault(mm, sub, d, 1, { defaultFlags: FAULT })).ret).toBe(-Errno.EFAULT);
  });

  it('keeps the sticky in/out bits and a migration entry reads as 0', async () => {
    const { mm, sub, machine } = await env();
    const a = await anon(mm, 2);
    await mm.writeU8(a, 1);
    // hand-built migration entry: lock the page and install it
    const pfn = mm.pagemapEntry(a).pfn;
    machine.phys.trylockPage(pfn);
    mm.installMigrationEntry(a);
    expect(mm.readEntry(a).flags & PTE_TYPE_MASK).toBe(PTE_MIGRATION);
    const r = await fault(mm, sub, a, 2, { pfnFlagsMask: HMM_PFN_DMA_MAPPED, req: [HMM_PFN_DMA_MAPPED, 0] });
    expect(r.ret).toBe(0);
    expect(r.flags).toEqual([HMM_PFN_DMA_MAPPED, 0]);
    mm.removeMigrationPtes(pfn, pfn);
    machine.phys.unlockPage(pfn);
    machine.phys.putPage(pfn);
    const r2 = await fault(mm, sub, a, 1, { req: [HMM_PFN_DMA_MAPPED] });
    expect(r2.flags).toEqual([HMM_PFN_DMA_MAPPED | V | W]);
  });
});

describe('faulting: need_fault, granule, return codes', () => {
  it('REQ_FAULT maps the zero page (read-only), REQ_WRITE gives fresh writable pages', async () => {
    const { mm, sub } = await env();
    const a = await anon(mm, 4);
    const r = await fault(mm, sub, a, 4, { defaultFlags: FAULT });
    expect(r.ret).toBe(0);
    expect(r.flags).toEqual([V, V, V, V]);
    expect(r.pfns).toEqual([ZERO_PFN, ZERO_PFN, ZERO_PFN, ZERO_PFN]);
    const b = await anon(mm, 4);
    const w = await fault(mm, sub, b, 4, { defaultFlags: WRITE });
    expect(w.ret).toBe(0);
    expect(w.flags).toEqual([V | W, V | W, V | W, V | W]);
    expect(new Set(w.pfns).size).toBe(4);
  });

  it('zero-page COW done by hmm itself returns -EBUSY; the retry finds the pages writable', async () => {
    const { mm, sub, invs } = await env();
    const a = await anon(mm, 2);
    await mm.readU8(a);
    await mm.readU8(a + P);
    invs.length = 0;
    const r = await fault(mm, sub, a, 2, { defaultFlags: WRITE });
    expect(r.ret).toBe(-Errno.EBUSY);
    expect(invs.map((i) => i.event)).toEqual(['CLEAR', 'CLEAR']); // one COW per page (fault granule)
    const r2 = await fault(mm, sub, a, 2, { defaultFlags: WRITE });
    expect(r2.ret).toBe(0);
    expect(r2.flags).toEqual([V | W, V | W]);
  });

  it('a THP split / huge-zero COW done by hmm returns -EBUSY; then order-9 output', async () => {
    const { mm, sub, invs } = await env();
    const a = await anon(mm, 512, RW, true);
    expect(await mm.madvise(a, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    await mm.readU8(a); // huge zero page
    const snap = await fault(mm, sub, a + 5 * P, 2);
    expect(snap.flags).toEqual([V | 9, V | 9]);
    expect(snap.pfns).toEqual([HUGE_ZERO_PFN + 5, HUGE_ZERO_PFN + 6]);
    invs.length = 0;
    const r = await fault(mm, sub, a, 512, { defaultFlags: WRITE });
    expect(r.ret).toBe(-Errno.EBUSY);
    expect(invs.length).toBeGreaterThan(0);
    const r2 = await fault(mm, sub, a, 512, { defaultFlags: WRITE });
    expect(r2.ret).toBe(0);
    const head = r2.pfns[0]!;
    for (let k = 0; k < 512; k++) {
      expect(r2.flags[k]).toBe(V | W | 9);
      expect(r2.pfns[k]).toBe(head + k);
    }
    expect(hmmPfnToMapOrder(r2.flags[0]!)).toBe(9);
  });

  it('faults from the first page needing it to the end of its PMD unit', async () => {
    const { mm, sub, sim } = await env();
    const a = await anon(mm, 512, RW, true);
    await mm.writeU8(a, 1); // THP off (madvise mode): a PTE table exists
    const req = new Array<number>(512).fill(0);
    req[10] = FAULT;
    const before = sim.counters.get('hmm.rangeFault.pagesFaulted');
    const r = await fault(mm, sub, a, 512, { pfnFlagsMask: FAULT, req });
    expect(r.ret).toBe(0);
    expect(sim.counters.get('hmm.rangeFault.pagesFaulted') - before).toBe(502);
    expect(r.flags.slice(0, 12)).toEqual([V | W, 0, 0, 0, 0, 0, 0, 0, 0, 0, V, V]);
    expect(r.flags[511]).toBe(V); // faulted although not requested
  });

  it('a hole (no PTE table) is faulted from its start, not from the requested page', async () => {
    const { mm, sub, sim } = await env();
    const a = await anon(mm, 512, RW, true);
    const req = new Array<number>(512).fill(0);
    req[10] = FAULT;
    const before = sim.counters.get('hmm.rangeFault.pagesFaulted');
    const r = await fault(mm, sub, a, 512, { pfnFlagsMask: FAULT, req });
    expect(r.ret).toBe(0);
    expect(sim.counters.get('hmm.rangeFault.pagesFaulted') - before).toBe(512);
    expect(r.flags[0]).toBe(V);
  });

  it('pfnFlagsMask + defaultFlags: one page writable, the rest readable', async () => {
    const { mm, sub } = await env();
    const a = await anon(mm, 4);
    const r = await fault(mm, sub, a, 4, {
      defaultFlags: FAULT,
      pfnFlagsMask: HMM_PFN_REQ_WRITE,
      req: [0, HMM_PFN_REQ_WRITE, 0, 0],
    });
    expect(r.ret).toBe(0);
    // a hole unit is faulted as a whole with the union of its needs: every page write-faulted
    expect(r.flags).toEqual([V | W, V | W, V | W, V | W]);
    const b = await anon(mm, 4);
    await mm.readU8(b); // a PTE table exists now: the walk is per page
    const r2 = await fault(mm, sub, b, 4, {
      defaultFlags: FAULT,
      pfnFlagsMask: HMM_PFN_REQ_WRITE,
      req: [0, HMM_PFN_REQ_WRITE, 0, 0],
    });
    expect(r2.ret).toBe(0);
    // from the first page needing a fault (1) to the end of the unit, with that page's write need
    expect(r2.flags).toEqual([V, V | W, V | W, V | W]);
    expect(r2.pfns[0]).toBe(ZERO_PFN);
  });

  it('-EPERM for a write request in a !VM_WRITE VMA, before anything is faulted', async () => {
    const { mm, sub, sim } = await env();
    const a = await anon(mm, 4, PROT_READ);
    const before = sim.counters.get('mm.faults');
    const r = await fault(mm, sub, a, 4, { defaultFlags: WRITE });
    expect(r.ret).toBe(-Errno.EPERM);
    expect(sim.counters.get('mm.faults')).toBe(before);
    expect((await fault(mm, sub, a, 4, { defaultFlags: FAULT })).ret).toBe(0);
  });

  it('-EFAULT: no VMA, VMA without VM_READ; ERROR when not asked', async () => {
    const { mm, sub } = await env();
    const a = await anon(mm, 4);
    expect(await mm.munmap(a + P, P)).toBe(0);
    expect((await fault(mm, sub, a, 4, { defaultFlags: FAULT })).ret).toBe(-Errno.EFAULT);
    const req = [FAULT, 0, FAULT, FAULT];
    const r = await fault(mm, sub, a, 4, { pfnFlagsMask: FAULT, req });
    expect(r.ret).toBe(0);
    expect(r.flags).toEqual([V, E, V, V]);
    const b = await anon(mm, 2, PROT_NONE);
    expect((await fault(mm, sub, b, 2, { defaultFlags: FAULT })).ret).toBe(-Errno.EFAULT);
    expect((await fault(mm, sub, b, 2)).flags).toEqual([E, E]);
  });

  it('-EINVAL for an empty range; ArgumentError / StateError on bad input, range unchanged', async () => {
    const { mm, sub } = await env();
    const a = await anon(mm, 4);
    expect((await fault(mm, sub, a, 0)).ret).toBe(-Errno.EINVAL);
    const range = new HmmRange({ notifier: sub, start: a, end: a + 4 * P, defaultFlags: FAULT });
    range.notifierSeq = await mmuIntervalReadBegin(sub);
    await expect(hmmRangeFault(range)).rejects.toBeInstanceOf(StateError);
    await mm.mmapLock.read();
    try {
      range.start = a + 1;
      await expect(hmmRangeFault(range)).rejects.toBeInstanceOf(ArgumentError);
      range.start = a;
      range.hmmFlags = new Uint16Array(2);
      await expect(hmmRangeFault(range)).rejects.toBeInstanceOf(ArgumentError);
      range.hmmFlags = new Uint16Array(4);
      range.defaultFlags = 0x10000;
      await expect(hmmRangeFault(range)).rejects.toBeInstanceOf(ArgumentError);
    } finally {
      mm.mmapLock.readUnlock();
    }
    expect([...range.hmmFlags]).toEqual([0, 0, 0, 0]);
    expect(mm.rss).toBe(0);
  });

  it('an HmmRange with a BigInt or string bound is an ArgumentError naming the bound, not a TypeError', async () => {
    const { sub } = await env();
    const bigStart = { notifier: sub, start: 0x1000n as unknown as number, end: 0x3000 };
    expect(() => new HmmRange(bigStart)).toThrow(ArgumentError);
    expect(() => new HmmRange(bigStart)).toThrow(/'start'/);
    const strEnd = { notifier: sub, start: 0x1000, end: '0x3000' as unknown as number };
    expect(() => new HmmRange(strEnd)).toThrow(/'end'/);
  });

  it('swap entries are faulted back in when asked', async () => {
    const { mm, sub } = await env();
    const a = await anon(mm, 2);
    await mm.writeU8(a, 42);
    expect(await mm.madvise(a, P, MADV_PAGEOUT)).toBe(0);
    const r = await fault(mm, sub, a, 1, { defaultFlags: FAULT });
    expect(r.ret).toBe(0);
    expect(r.flags[0]! & V).toBe(V);
    expect(await mm.readU8(a)).toBe(42);
  });
});

describe('device memory and exclusive entries', () => {
  it('owned device-private pages are reported, even for a write request on a read-only entry', async () => {
    const { mm, sub, machine } = await env();
    const drv = makeDriver(machine);
    const a = await anon(mm, 2);
    await mm.writeU8(a, 7);
    await drv.toDeviceLocked(mm, a, 1);
    const child = await mm.fork(); // device-private entries become read-only in both
    const r = await fault(mm, sub, a, 1, { defaultFlags: WRITE, owner: OWNER });
    expect(r.ret).toBe(0);
    expect(r.flags).toEqual([V]);
    expect(drv.calls.length).toBe(0);
    await child.exit();
  });

  it("another owner's device-private page is faulted back through migrate_to_ram", async () => {
    const { mm, sub, machine } = await env();
    const drv = makeDriver(machine);
    const a = await anon(mm, 2);
    await mm.writeU8(a, 9);
    await drv.toDeviceLocked(mm, a, 1);
    const r = await fault(mm, sub, a, 1, { defaultFlags: FAULT, owner: 'someone-else' });
    // migrate_to_ram's MIGRATE invalidation moved the notifier sequence
    expect(r.ret).toBe(-Errno.EBUSY);
    expect(drv.calls.length).toBe(1);
    const r2 = await fault(mm, sub, a, 1, { defaultFlags: FAULT, owner: 'someone-else' });
    expect(r2.ret).toBe(0);
    expect(r2.flags[0]! & V).toBe(V);
    expect(machine.phys.isDevicePrivatePage(r2.pfns[0]!)).toBe(false);
    expect(await mm.readU8(a)).toBe(9);
  });

  it('a device-exclusive entry is restored by a requested fault (EXCLUSIVE, owner null → -EBUSY)', async () => {
    const { mm, sub, machine, invs } = await env();
    const a = await anon(mm, 1);
    await mm.writeU8(a, 5);
    await mm.mmapLock.read();
    const ex = await makeDeviceExclusive(mm, a, OWNER);
    mm.mmapLock.readUnlock();
    if (!('pfn' in ex)) throw new Error('exclusive failed');
    machine.phys.unlockPage(ex.pfn);
    machine.phys.putPage(ex.pfn);
    invs.length = 0;
    const r = await fault(mm, sub, a, 1, { defaultFlags: FAULT });
    expect(r.ret).toBe(-Errno.EBUSY);
    expect(invs).toEqual([{ event: 'EXCLUSIVE', start: a, end: a + P, owner: null }]);
    const r2 = await fault(mm, sub, a, 1, { defaultFlags: FAULT });
    expect(r2.flags).toEqual([V | W]);
    expect(r2.pfns[0]).toBe(ex.pfn);
  });
});

describe('huge mappings: map order', () => {
  it('hugetlb 2 MiB and 1 GiB pages report order 9 and 18', async () => {
    const { mm, sub } = await env({ hugetlbPudPages: 1 });
    const h = await mm.mmap(0, PMD_SIZE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB);
    expect(h).toBeGreaterThan(0);
    await mm.writeU8(h, 1);
    const r = await fault(mm, sub, h + 3 * P, 2);
    expect(r.flags).toEqual([V | W | 9, V | W | 9]);
    expect(r.pfns[1]! - r.pfns[0]!).toBe(1);
    const g = await mm.mmap(0, PUD_SIZE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_1GB);
    expect(g).toBeGreaterThan(0);
    const f = await fault(mm, sub, g + 7 * P, 1, { defaultFlags: WRITE });
    expect(f.ret).toBe(0);
    expect(f.flags).toEqual([V | W | 18]);
  });

  it('hugetlb: only the first page of a huge page unit is looked at for the request (as Linux)', async () => {
    const { mm, sub } = await env();
    const h = await mm.mmap(0, PMD_SIZE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB);
    await mm.writeU8(h, 1);
    await mm.mmapLock.write();
    mm.mmapLock.writeUnlock();
    const req = [0, 0, FAULT | HMM_PFN_REQ_WRITE];
    // page 2 asks for write on a writable mapping: satisfied anyway
    const r = await fault(mm, sub, h, 3, { pfnFlagsMask: WRITE, req });
    expect(r.ret).toBe(0);
    expect(r.flags).toEqual([V | W | 9, V | W | 9, V | W | 9]);
  });
});

describe('concurrency (scheduler)', () => {
  it('waits on a migration entry, then check_retry sees a racing invalidation → -EBUSY', async () => {
    const { mm, sub, sim } = await env();
    const a = await anon(mm, 4);
    await mm.touch(a, 4 * P, true);
    let result = 1;
    let waitedUntil = 0;
    const migrator = sim.sched.spawn('migrator', async () => {
      await mm.mmapLock.read();
      const args = new MigrateVma({
        vma: mm.vmaLookup(a)!,
        start: a,
        end: a + 4 * P,
        pgmapOwner: OWNER,
        flags: MIGRATE_VMA_SELECT_SYSTEM,
      });
      expect(await migrateVmaSetup(args)).toBe(0);
      expect(args.cpages).toBe(4);
      await sim.sched.sleep(5000); // pages are locked with migration entries
      await migrateVmaPages(args); // no dst: nothing committed
      await migrateVmaFinalize(args);
      mm.mmapLock.readUnlock();
    });
    const reader = sim.sched.spawn('reader', async () => {
      await sim.sched.sleep(1000);
      const r = await fault(mm, sub, a, 4, { defaultFlags: FAULT });
      result = r.ret;
      waitedUntil = sim.now;
    });
    const reclaim = sim.sched.spawn('reclaim', async () => {
      await sim.sched.sleep(2000);
      const rr = await mm.invStart(MmuNotifyEvent.CLEAR, a, a + P); // rmap-side CLEAR without the mmap lock
      await mm.invEnd(rr);
    });
    await sim.sched.run();
    await Promise.all([sim.sched.join(migrator), sim.sched.join(reader), sim.sched.join(reclaim)]);
    expect(result).toBe(-Errno.EBUSY);
    expect(waitedUntil).toBeGreaterThanOrEqual(5000);
  });

  it('hmmRangeFaultLocked retries until valid and returns with the driver lock held', async () => {
    const { mm, sub, machine } = await env();
    const a = await anon(mm, 2);
    await mm.readU8(a);
    await mm.readU8(a + P);
    const lock = new Mutex(machine.sim.sched);
    const range = new HmmRange({ notifier: sub, start: a, end: a + 2 * P, defaultFlags: WRITE });
    expect(await hmmRangeFaultLocked(range, lock)).toBe(0);
    expect(lock.isLocked).toBe(true);
    expect([...range.hmmFlags]).toEqual([V | W, V | W]);
    expect(machine.sim.counters.get('hmm.rangeFaultLocked.retries')).toBeGreaterThan(0);
    lock.unlock();
    const rw = new RwSemaphore(machine.sim.sched);
    const bad = new HmmRange({ notifier: sub, start: a + 8 * P, end: a + 9 * P, defaultFlags: FAULT });
    expect(await hmmRangeFaultLocked(bad, rw)).toBe(-Errno.EFAULT);
    expect(rw.isLocked).toBe(false);
    await expect(hmmRangeFaultLocked(range, {} as Mutex)).rejects.toBeInstanceOf(ArgumentError);
    expect(mm.mmUsers).toBe(1);
  });
});

describe('hmmRangeFaultLocked re-arms per-page requests on every retry', () => {
  it('a read request stays a read after a colliding mprotect(PROT_READ): 0, not -EPERM', async () => {
    const { sim, mm, sub } = await env();
    const a = await anon(mm, 2);
    await mm.writeU8(a, 1); // present and writable: the first pass outputs VALID|WRITE
    await mm.writeU8(a + P, 2);
    const lock = new Mutex(sim.sched, 'driver');
    // Page 0 asks for read, page 1 for write (pfnFlagsMask lets per-page requests through).
    const range = new HmmRange({
      notifier: sub,
      start: a,
      end: a + 2 * P,
      defaultFlags: FAULT,
      pfnFlagsMask: HMM_PFN_REQ_WRITE,
    });
    range.hmmFlags[1] = HMM_PFN_REQ_WRITE;
    let ret = 1;
    let mprotected = -1;
    sim.sched.spawn('holder', async () => {
      await lock.lock(); // keeps the faulting thread waiting between hmm_range_fault and read_retry
      await sim.sched.sleep(10_000);
      lock.unlock();
    });
    sim.sched.spawn('gpu-fault', async () => {
      await sim.sched.sleep(10);
      ret = await hmmRangeFaultLocked(range, lock);
      if (ret === 0) lock.unlock();
    });
    sim.sched.spawn('cpu', async () => {
      await sim.sched.sleep(1000);
      mprotected = await mm.mprotect(a, P, PROT_READ); // collides: page 0's VMA loses VM_WRITE
    });
    await sim.sched.run();
    expect(mprotected).toBe(0);
    expect(ret).toBe(0); // without re-arming, page 0's VALID|WRITE output would read as a write request → -EPERM
    expect(sim.counters.get('hmm.rangeFaultLocked.retries')).toBe(1);
    expect([...range.hmmFlags]).toEqual([V, V | W]);
  });
});

describe('more return codes and edge cases', () => {
  it('-ENOMEM when a fault runs out of memory (vm_fault_to_errno)', async () => {
    const { mm, sub } = await env({ pagesPerNode: 64 });
    const a = await anon(mm, 128);
    const r = await fault(mm, sub, a, 128, { defaultFlags: WRITE });
    expect(r.ret).toBe(-Errno.ENOMEM);
  });

  it('sticky in/out bits survive a fault pass; ERROR bits of an earlier call are replaced', async () => {
    const { mm, sub } = await env();
    const a = await anon(mm, 2);
    const r = await fault(mm, sub, a, 2, {
      defaultFlags: FAULT,
      pfnFlagsMask: HMM_PFN_DMA_MAPPED,
      req: [HMM_PFN_DMA_MAPPED | E, E],
    });
    expect(r.ret).toBe(0);
    expect(r.flags).toEqual([HMM_PFN_DMA_MAPPED | V, V]);
  });

  it('a PMD migration entry (compound migration in flight) reads 0, and a needed fault waits for it', async () => {
    const { mm, sub, sim } = await env();
    const a = await anon(mm, 512, RW, true);
    await mm.madvise(a, PMD_SIZE, MADV_HUGEPAGE);
    await mm.writeU8(a, 1);
    let snapRet: number[] = [];
    let faultAt = 0;
    const migrator = sim.sched.spawn('migrator', async () => {
      await mm.mmapLock.read();
      const args = new MigrateVma({
        vma: mm.vmaLookup(a)!,
        start: a,
        end: a + PMD_SIZE,
        flags: MIGRATE_VMA_SELECT_SYSTEM | MIGRATE_VMA_SELECT_COMPOUND,
      });
      expect(await migrateVmaSetup(args)).toBe(0);
      expect(args.cpages).toBe(1);
      mm.mmapLock.readUnlock();
      await sim.sched.sleep(3000);
      await mm.mmapLock.read();
      await migrateVmaPages(args);
      await migrateVmaFinalize(args);
      mm.mmapLock.readUnlock();
    });
    const reader = sim.sched.spawn('reader', async () => {
      await sim.sched.sleep(1000);
      snapRet = (await fault(mm, sub, a, 2)).flags;
      const r = await fault(mm, sub, a, 2, { defaultFlags: FAULT });
      expect(r.ret).toBe(0);
      expect(r.flags).toEqual([V | W | 9, V | W | 9]);
      faultAt = sim.now;
    });
    await sim.sched.run();
    await Promise.all([sim.sched.join(migrator), sim.sched.join(reader)]);
    expect(snapRet).toEqual([0, 0]);
    expect(faultAt).toBeGreaterThanOrEqual(3000);
  });

  it('StateError for a migration entry whose page nobody locked (would spin forever)', async () => {
    const { mm, sub, machine } = await env();
    const a = await anon(mm, 1);
    await mm.writeU8(a, 1);
    const pfn = mm.pagemapEntry(a).pfn;
    mm.installMigrationEntry(a); // protocol misuse: the page is not locked
    await mm.mmapLock.read();
    const range = new HmmRange({ notifier: sub, start: a, end: a + P, defaultFlags: FAULT });
    range.notifierSeq = await mmuIntervalReadBegin(sub);
    await expect(hmmRangeFault(range)).rejects.toBeInstanceOf(StateError);
    mm.mmapLock.readUnlock();
    mm.removeMigrationPtes(pfn, pfn);
    machine.phys.putPage(pfn);
    expect(await mm.readU8(a)).toBe(1);
  });

  it('hmmRangeFaultLocked gives up with -EBUSY after the timeout, lock released', async () => {
    const { mm, sub, machine } = await env();
    const a = await anon(mm, 2);
    await mm.readU8(a); // zero page: hmm's COW makes the first pass -EBUSY
    const lock = new Mutex(machine.sim.sched);
    const range = new HmmRange({ notifier: sub, start: a, end: a + 2 * P, defaultFlags: WRITE });
    expect(await hmmRangeFaultLocked(range, lock, { timeoutNs: 1 })).toBe(-Errno.EBUSY);
    expect(lock.isLocked).toBe(false);
    await expect(hmmRangeFaultLocked(range, lock, { timeoutNs: -1 })).rejects.toBeInstanceOf(ArgumentError);
  });
});
