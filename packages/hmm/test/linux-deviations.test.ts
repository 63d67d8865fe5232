/**
 * Regression tests for behaviours where hmmkit used to differ from Linux (issue 10), one
 * `describe` per kernel function, each naming the kernel version it follows.
 */
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_HUGETLB,
  MAP_PRIVATE,
  PMD_SIZE,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
  PTE_DEVICE_PRIVATE,
  PTE_TYPE_MASK,
  PTE_W,
} from '@hmmkit/mm';
import { Errno } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  HMM_PFN_REQ_FAULT,
  HMM_PFN_VALID,
  HMM_PFN_WRITE,
  MIGRATE_VMA_SELECT_SYSTEM,
  MigrateVma,
  migrateVmaFinalize,
  migrateVmaSetup,
} from '../src/index.ts';
import { anon, env, fault, makeDriver, OWNER, P } from './helpers.ts';

describe('mprotect: change_pte_range() on device-private entries (all kernels since 4.14)', () => {
  it('mprotect(RW → RWX) makes a writable device-private entry read-only; hmm reports VALID without WRITE', async () => {
    const { mm, sub, machine } = await env();
    const drv = makeDriver(machine);
    const a = await anon(mm, 2);
    await mm.writeU32(a + 4, 7);
    await mm.writeU32(a + P + 4, 8);
    expect((await drv.toDeviceLocked(mm, a, 2)).args.cpages).toBe(2);
    expect(mm.readEntry(a).flags & (PTE_TYPE_MASK | PTE_W)).toBe(PTE_DEVICE_PRIVATE | PTE_W);
    const before = await fault(mm, sub, a, 1, { owner: OWNER });
    expect(before.flags[0]! & (HMM_PFN_VALID | HMM_PFN_WRITE)).toBe(HMM_PFN_VALID | HMM_PFN_WRITE);
    // adding PROT_EXEC is a protection change: "a protection check is difficult so just be
    // safe and disable write"
    expect(await mm.mprotect(a, P, PROT_READ | PROT_WRITE | PROT_EXEC)).toBe(0);
    expect(mm.readEntry(a).flags & (PTE_TYPE_MASK | PTE_W)).toBe(PTE_DEVICE_PRIVATE);
    // the page outside the range keeps its write bit
    expect(mm.readEntry(a + P).flags & (PTE_TYPE_MASK | PTE_W)).toBe(PTE_DEVICE_PRIVATE | PTE_W);
    const after = await fault(mm, sub, a, 1, { owner: OWNER });
    expect(after.ret).toBe(0);
    expect(after.flags[0]! & (HMM_PFN_VALID | HMM_PFN_WRITE)).toBe(HMM_PFN_VALID);
    // a CPU store still works: it faults the page back to RAM, data intact
    await mm.writeU32(a + 8, 9);
    expect(await mm.readU32(a + 4)).toBe(7);
    expect(await mm.readU32(a + 8)).toBe(9);
  });
});

describe('migrate_vma_setup(): nr_pages from the unaligned bounds (every kernel since 5.4, where migrate_vma_setup appeared)', () => {
  it('a sub-page range crossing a page boundary is -EINVAL and touches nothing', async () => {
    const { mm, machine, invs } = await env();
    const a = await anon(mm, 2);
    await mm.writeU32(a, 1);
    await mm.writeU32(a + P, 2);
    invs.length = 0;
    await mm.mmapLock.read();
    try {
      const vma = mm.vmaLookup(a)!;
      // 200 bytes straddling the boundary between the two pages: (end - start) >> PAGE_SHIFT = 0
      const args = new MigrateVma({
        vma,
        start: a + P - 100,
        end: a + P + 100,
        flags: MIGRATE_VMA_SELECT_SYSTEM,
      });
      expect(await migrateVmaSetup(args)).toBe(-Errno.EINVAL);
      expect(args.start).toBe(a + P - 100); // nothing was aligned or collected
      expect(args.cpages).toBe(0);
      // a range of at least one page is aligned down and collected as before
      const ok = new MigrateVma({ vma, start: a + 100, end: a + P + 200, flags: MIGRATE_VMA_SELECT_SYSTEM });
      expect(await migrateVmaSetup(ok)).toBe(0);
      expect(ok.start).toBe(a);
      expect(ok.npages).toBe(1);
      expect(ok.cpages).toBe(1);
      await migrateVmaFinalize(ok);
    } finally {
      mm.mmapLock.readUnlock();
    }
    expect(invs.map((i) => i.event)).toEqual(['MIGRATE']);
    expect(machine.phys.isPageLocked(mm.readEntry(a).val)).toBe(false);
    expect(await mm.readU32(a)).toBe(1);
  });
});

describe('hmm_vma_walk_hugetlb_entry(): only the first page of the range in a huge page is asked (5.7+)', () => {
  it('a not-yet-faulted hugetlb page with REQ_FAULT on page 3 only: 0, nothing faulted, page 3 not VALID', async () => {
    const { mm, sub } = await env();
    // two 2 MiB hugetlb pages at a fixed 1 GiB-aligned address: faulting the first allocates the
    // PMD table, so the second's (none) entry has a slot and hugetlb_walk() finds it
    const base = 0x4000000000;
    const flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_FIXED;
    expect(await mm.mmap(base, 2 * PMD_SIZE, PROT_READ | PROT_WRITE, flags)).toBe(base);
    await mm.writeU8(base, 1);
    const h = base + PMD_SIZE;
    const req = [0, 0, 0, HMM_PFN_REQ_FAULT];
    const r = await fault(mm, sub, h, 4, { pfnFlagsMask: HMM_PFN_REQ_FAULT, req });
    expect(r.ret).toBe(0);
    expect(r.flags[3]! & HMM_PFN_VALID).toBe(0);
    expect(mm.readEntry(h).flags).toBe(0); // not faulted
    // asked on the first page of the range, the whole huge page is faulted in
    const r2 = await fault(mm, sub, h, 4, {
      pfnFlagsMask: HMM_PFN_REQ_FAULT,
      req: [HMM_PFN_REQ_FAULT, 0, 0, 0],
    });
    expect(r2.ret).toBe(0);
    expect(r2.flags.map((f) => f & HMM_PFN_VALID)).toEqual([
      HMM_PFN_VALID,
      HMM_PFN_VALID,
      HMM_PFN_VALID,
      HMM_PFN_VALID,
    ]);
  });

  it('with no PMD table yet the walk takes pte_hole and faults on any page request (walk_hugetlb_range)', async () => {
    const { mm, sub } = await env();
    const base = 0x8000000000;
    const flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_FIXED;
    expect(await mm.mmap(base, PMD_SIZE, PROT_READ | PROT_WRITE, flags)).toBe(base);
    const r = await fault(mm, sub, base, 4, {
      pfnFlagsMask: HMM_PFN_REQ_FAULT,
      req: [0, 0, 0, HMM_PFN_REQ_FAULT],
    });
    expect(r.ret).toBe(0);
    expect(r.flags[3]! & HMM_PFN_VALID).toBe(HMM_PFN_VALID);
  });
});
