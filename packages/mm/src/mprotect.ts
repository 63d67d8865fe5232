/**
 * mprotect(2) (mm/mprotect.c): mprotect_fixup, change_protection, change_pte_range.
 *
 * @module
 */
import { MmuNotifyEvent } from '@hmmkit/notifier';
import { checkUint, Errno } from '@hmmkit/sim';
import {
  HPAGE_PMD_NR,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_EXEC,
  PROT_GROWSDOWN,
  PROT_GROWSUP,
  PROT_READ,
  PROT_SEM,
  PROT_WRITE,
  PUD_SIZE,
  pageAlign,
  VM_ACCESS_FLAGS,
  VM_EXEC,
  VM_HUGETLB,
  VM_READ,
  VM_SHARED,
  VM_WRITE,
} from './constants.ts';
import { splitHugePmd } from './huge-memory.ts';
import { hugetlbMisaligned } from './hugetlb.ts';
import { flushTlb, invEnd, invStart } from './invalidate.ts';
import type { Mm } from './mm.ts';
import {
  PageWalk,
  PTE_DEVICE_PRIVATE,
  PTE_MIGRATION,
  PTE_PRESENT,
  PTE_R,
  PTE_SPECIAL,
  PTE_TYPE_MASK,
  PTE_W,
  setEntryFlags,
  WALK_HOLE,
  WALK_PMD_LEAF,
  WALK_PUD_LEAF,
} from './page-table.ts';
import { PG } from './physmem.ts';
import { isolate, mergeAround, type Vma } from './vma.ts';

/**
 * Models mprotect(2): 0, or -EINVAL (unaligned start, unknown prot bits, PROT_GROWSDOWN/UP),
 * -ENOMEM (overflow, unmapped pages in the range: VMAs before the hole keep the new
 * protection, as in Linux), -EACCES (asking for a permission the VMA may not get, e.g.
 * PROT_WRITE on a shared mapping of a read-only file). len 0 succeeds.
 */
export async function mprotect(mm: Mm, start: number, length: number, prot: number): Promise<number> {
  const fn = 'Mm.mprotect';
  checkUint(fn, 'start', start);
  checkUint(fn, 'length', length);
  checkUint(fn, 'prot', prot);
  if (start % PAGE_SIZE !== 0) return -Errno.EINVAL;
  if (prot & (PROT_GROWSDOWN | PROT_GROWSUP)) return -Errno.EINVAL;
  if (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM)) return -Errno.EINVAL;
  if (length === 0) return 0;
  const len = pageAlign(length);
  const end = start + len;
  if (end <= start || end > 2 ** 64) return -Errno.ENOMEM;
  await mm.mmapLock.write();
  try {
    const first = mm.vmas.find(start);
    if (first === null || first.start > start) return -Errno.ENOMEM;
    for (const v of mm.vmas.overlapping(start, end)) {
      if (v.flags & VM_HUGETLB && hugetlbMisaligned(v, start, end)) return -Errno.EINVAL;
    }
    let tmp = start;
    const newProt = calcVmProtBits(prot);
    for (const vma of mm.vmas.overlapping(start, end)) {
      if (vma.start > tmp) return -Errno.ENOMEM;
      const newflags = (vma.flags & ~VM_ACCESS_FLAGS) | newProt;
      // VM_MAY* are the VM_* bits shifted left by 4
      if (newflags & ~(newflags >> 4) & VM_ACCESS_FLAGS) return -Errno.EACCES;
      const s = Math.max(vma.start, start);
      const e = Math.min(vma.end, end);
      await mprotectFixup(mm, vma, s, e, newflags);
      tmp = e;
    }
    if (tmp < end) return -Errno.ENOMEM;
    return 0;
  } finally {
    mm.mmapLock.writeUnlock();
  }
}

/** mprotect_fixup(): split/merge, set flags, change_protection(). */
async function mprotectFixup(mm: Mm, vma: Vma, start: number, end: number, newflags: number): Promise<void> {
  if (newflags === vma.flags) return;
  let v = await isolate(mm, vma, start, end);
  v.flags = newflags;
  await changeProtection(mm, v, start, end);
  v = mergeAround(mm, v);
}

/**
 * change_protection(): applies `vma.flags` to the entries of [start, end), inside one
 * PROTECTION_VMA invalidation per 512 GiB block, starting at the first populated PUD (the
 * mmu notifier sits in change_pud_range in Linux 6.x).
 */
async function changeProtection(mm: Mm, vma: Vma, start: number, end: number): Promise<void> {
  if (vma.flags & VM_HUGETLB) {
    // hugetlb_change_protection(): one PROTECTION_VMA over the whole range
    const r = await invStart(mm, MmuNotifyEvent.PROTECTION_VMA, start, end);
    await applyProtection(mm, vma, start, end);
    flushTlb(mm);
    await invEnd(mm, r);
    return;
  }
  const PGD = 2 ** 39;
  for (let blk = start; blk < end; ) {
    const bend = Math.min(end, (Math.floor(blk / PGD) + 1) * PGD);
    const pud = mm.pt.pudTable(blk, false);
    let first = -1;
    if (pud !== null) {
      for (let a = blk; a < bend; a = (Math.floor(a / PUD_SIZE) + 1) * PUD_SIZE) {
        const ui = Math.floor(a / PUD_SIZE) & 511;
        if (pud.tables[ui] !== null || pud.flags[ui] !== 0) {
          first = a;
          break;
        }
      }
    }
    if (first >= 0) {
      const r = await invStart(mm, MmuNotifyEvent.PROTECTION_VMA, first, bend);
      await applyProtection(mm, vma, first, bend);
      flushTlb(mm);
      await invEnd(mm, r);
    }
    blk = bend;
  }
}

/** change_pte_range() / change_huge_pmd() over [start, end): every entry takes the VMA's new protection. */
async function applyProtection(mm: Mm, vma: Vma, start: number, end: number): Promise<void> {
  const p = mm.phys;
  const access = (vma.flags & VM_ACCESS_FLAGS) !== 0;
  const writable = (vma.flags & VM_WRITE) !== 0;
  const shared = (vma.flags & VM_SHARED) !== 0;
  const fix = (f: number, v: number): number => {
    const t = f & PTE_TYPE_MASK;
    if (t === PTE_PRESENT) {
      let nf = access ? f | PTE_R : f & ~PTE_R;
      if (!writable) nf &= ~PTE_W;
      else if (!(nf & PTE_W) && access) {
        const zero = p.isZeroPfn(v);
        if (shared && !zero) nf |= PTE_W;
        else if (
          !zero &&
          !(f & PTE_SPECIAL) &&
          p.flags[v]! & PG.anon &&
          p.mapcount[v] === 1 &&
          p.refcount[v] === 1
        ) {
          nf |= PTE_W;
        }
      }
      return nf;
    }
    // change_pte_range(): "A protection check is difficult so just be safe and disable write"
    // — a writable migration or device-private entry becomes read-only on ANY protection
    // change, even RW → RWX. Device-exclusive entries are left alone (one entry type since
    // Linux 6.15; restore_exclusive_pte decides writability when the CPU takes the page back).
    if (t === PTE_MIGRATION || t === PTE_DEVICE_PRIVATE) return f & ~PTE_W;
    return f;
  };
  const w = new PageWalk();
  for (let a = start; a < end; ) {
    mm.pt.walkUnit(a, end, w);
    if (w.kind === WALK_HOLE) {
      a = w.end;
      continue;
    }
    if (w.kind === WALK_PMD_LEAF || w.kind === WALK_PUD_LEAF) {
      const size = w.kind === WALK_PUD_LEAF ? PUD_SIZE : PMD_SIZE;
      if (!(w.leafStart >= start && w.leafStart + size <= end) && !(vma.flags & VM_HUGETLB)) {
        await splitHugePmd(mm, vma, a);
        continue;
      }
      const tbl = w.kind === WALK_PUD_LEAF ? mm.pt.pudTable(a, false)! : w.pmd!;
      let nf = fix(w.flags, w.val);
      if (nf & PTE_W && w.kind === WALK_PMD_LEAF && !(vma.flags & VM_HUGETLB) && !shared) {
        // a THP is writable only when every subpage is exclusive
        for (let k = 0; k < HPAGE_PMD_NR; k++) {
          if (p.mapcount[w.val + k] !== 1 || p.refcount[w.val + k] !== 1) {
            nf &= ~PTE_W;
            break;
          }
        }
      }
      if (nf & PTE_W && p.isZeroPfn(w.val)) nf &= ~PTE_W;
      setEntryFlags(tbl, w.slot, nf);
      a = Math.max(w.end, w.leafStart + size);
      continue;
    }
    const t = w.pte!;
    const n = (w.end - a) / PAGE_SIZE;
    for (let k = 0, i = w.index; k < n; k++, i++) {
      const f = t.flags[i]!;
      if (f !== 0) setEntryFlags(t, i, fix(f, t.val[i]!));
    }
    a = w.end;
  }
}

/** calc_vm_prot_bits(): PROT_* → VM_READ/WRITE/EXEC. */
export function calcVmProtBits(prot: number): number {
  return (
    (prot & PROT_READ ? VM_READ : 0) | (prot & PROT_WRITE ? VM_WRITE : 0) | (prot & PROT_EXEC ? VM_EXEC : 0)
  );
}
