/**
 * Device access to process memory: make_device_exclusive (mm/rmap.c), vm_insert_page and
 * vmf_insert_pfn (mm/memory.c).
 *
 * @module
 */
import { MmuNotifyEvent } from '@hmmkit/notifier';
import { ArgumentError, Errno } from '@hmmkit/sim';
import { PAGE_SIZE, PMD_SIZE, VM_HUGETLB, VM_MIXEDMAP, VM_PFNMAP, VM_SHARED, VM_WRITE } from './constants.ts';
import { getUserPage } from './gup.ts';
import { splitHugePmd } from './huge-memory.ts';
import { flushTlb, invEnd, invStart } from './invalidate.ts';
import { baseBits } from './memory.ts';
import type { Mm } from './mm.ts';
import {
  PTE_DEVICE_EXCLUSIVE,
  PTE_DIRTY,
  PTE_PRESENT,
  PTE_SPECIAL,
  PTE_TYPE_MASK,
  PTE_W,
  setEntry,
  setEntryFlags,
} from './page-table.ts';
import { PG } from './physmem.ts';
import { mapRef } from './rmap.ts';
import type { Vma } from './vma.ts';

/** Result of {@link Mm.makeDeviceExclusive}. */
export interface DeviceExclusiveResult {
  /** 0 or a negative errno (-EOPNOTSUPP, -EBUSY, -EFAULT, -ENOMEM, -EPERM). */
  readonly ret: number;
  /** The page now exclusive to the device (locked and referenced; the caller unlocks and puts it). */
  readonly pfn: number;
}

/**
 * Models make_device_exclusive(mm, addr, owner) (single-page API of Linux 6.14+; caller
 * holds the mmap lock for read): faults the page in writable (FOLL_WRITE, splitting a THP
 * mapping), checks it is an anonymous non-hugetlb page mapped writable, locks it, issues an
 * EXCLUSIVE invalidation of the page with `owner`, and installs a writable device-exclusive
 * entry. Returns `{ret: 0, pfn}` with the page locked and referenced (the driver unlocks and
 * puts it), or `{ret: -errno, pfn: -1}`.
 */
export async function makeDeviceExclusive(
  mm: Mm,
  addr: number,
  owner: unknown,
): Promise<DeviceExclusiveResult> {
  if (!Number.isSafeInteger(addr) || addr < 0 || addr % PAGE_SIZE !== 0) {
    throw new ArgumentError('Mm.makeDeviceExclusive', 'addr', 'must be a page-aligned address', addr);
  }
  const vma = mm.vmas.lookup(addr);
  if (vma === null) return { ret: -Errno.EFAULT, pfn: -1 };
  if (vma.flags & VM_HUGETLB || vma.file !== null) return { ret: -Errno.EOPNOTSUPP, pfn: -1 };
  const pmd = mm.pt.pmdTable(addr, false);
  const mi = Math.floor(addr / PMD_SIZE) & 511;
  if (pmd !== null && pmd.tables[mi] === null && pmd.flags[mi] !== 0) await splitHugePmd(mm, vma, addr);
  const pfn = await getUserPage(mm, addr, true);
  if (pfn < 0) return { ret: pfn, pfn: -1 };
  const p = mm.phys;
  if (!(p.flags[pfn]! & PG.anon) || p.flags[pfn]! & PG.device) {
    p.putPage(pfn);
    return { ret: -Errno.EOPNOTSUPP, pfn: -1 };
  }
  if (!p.trylockPage(pfn)) {
    p.putPage(pfn);
    return { ret: -Errno.EBUSY, pfn: -1 };
  }
  const r = await invStart(mm, MmuNotifyEvent.EXCLUSIVE, addr, addr + PAGE_SIZE, owner);
  const t = mm.pt.pteTable(addr, false);
  const i = Math.floor(addr / PAGE_SIZE) & 511;
  const f = t === null ? 0 : t.flags[i]!;
  if (t === null || t.val[i] !== pfn || (f & (PTE_TYPE_MASK | PTE_W)) !== (PTE_PRESENT | PTE_W)) {
    await invEnd(mm, r);
    p.unlockPage(pfn);
    p.putPage(pfn);
    return { ret: -Errno.EBUSY, pfn: -1 };
  }
  if (f & PTE_DIRTY) p.flags[pfn] = p.flags[pfn]! | PG.dirty;
  setEntryFlags(t, i, PTE_DEVICE_EXCLUSIVE | PTE_W);
  flushTlb(mm);
  await invEnd(mm, r);
  return { ret: 0, pfn };
}

/**
 * Models vm_insert_page(): maps a driver-allocated page at `addr` of a VMA being set up by a
 * {@link SpecialFile} mmap hook (sets VM_MIXEDMAP). Read-only in private mappings (COW),
 * writable in shared writable ones. Returns 0 or -EINVAL / -EBUSY.
 */
export function vmInsertPage(mm: Mm, vma: Vma, addr: number, pfn: number): number {
  if (addr < vma.start || addr >= vma.end || addr % PAGE_SIZE !== 0) return -Errno.EFAULT;
  if (vma.flags & VM_PFNMAP) return -Errno.EINVAL;
  vma.flags |= VM_MIXEDMAP;
  const t = mm.pt.pteTable(addr, true)!;
  const i = Math.floor(addr / PAGE_SIZE) & 511;
  if (t.flags[i] !== 0) return -Errno.EBUSY;
  mapRef(mm, pfn);
  const w = vma.flags & VM_SHARED && vma.flags & VM_WRITE ? PTE_W : 0;
  setEntry(t, i, pfn, baseBits(vma) | w);
  return 0;
}

/**
 * Models vmf_insert_pfn(): a special (no struct page) PTE in a VM_PFNMAP or VM_MIXEDMAP VMA.
 */
export function vmInsertPfn(mm: Mm, vma: Vma, addr: number, pfn: number): number {
  if (!(vma.flags & (VM_PFNMAP | VM_MIXEDMAP))) return -Errno.EINVAL;
  if (addr < vma.start || addr >= vma.end || addr % PAGE_SIZE !== 0) return -Errno.EFAULT;
  const t = mm.pt.pteTable(addr, true)!;
  const i = Math.floor(addr / PAGE_SIZE) & 511;
  if (t.flags[i] !== 0) return -Errno.EBUSY;
  const w = vma.flags & VM_SHARED && vma.flags & VM_WRITE ? PTE_W : 0;
  setEntry(t, i, pfn, baseBits(vma) | PTE_SPECIAL | w);
  return 0;
}
