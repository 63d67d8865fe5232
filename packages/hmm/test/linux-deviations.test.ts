/**
 * Regression tests for behaviours where hmmkit used to differ from Linux (issue 10), one
 * `describe` per kernel function, each naming the kernel version it follows.
 */
import { PROT_EXEC, PROT_READ, PROT_WRITE, PTE_DEVICE_PRIVATE, PTE_TYPE_MASK, PTE_W } from '@hmmkit/mm';
import { describe, expect, it } from 'vitest';
import { HMM_PFN_VALID, HMM_PFN_WRITE } from '../src/index.ts';
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
