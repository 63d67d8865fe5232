/**
 * mmap(2), munmap(2), get_unmapped_area, free_pgtables (mm/mmap.c, mm/vma.c).
 *
 * @module
 */
import { MmuNotifyEvent } from '@hmmkit/notifier';
import { checkUint, Errno } from '@hmmkit/sim';
import {
  alignDown,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_FIXED_NOREPLACE,
  MAP_HUGE_MASK,
  MAP_HUGE_SHIFT,
  MAP_HUGETLB,
  MAP_LOCKED,
  MAP_NORESERVE,
  MAP_POPULATE,
  MAP_PRIVATE,
  MAP_SHARED,
  MAP_SHARED_VALIDATE,
  MAP_SYNC,
  MAP_TYPE,
  MMAP_MIN_ADDR,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_WRITE,
  PUD_SIZE,
  pageAlign,
  TASK_SIZE,
  VM_HUGETLB,
  VM_LOCKED,
  VM_MAYEXEC,
  VM_MAYREAD,
  VM_MAYSHARE,
  VM_MAYWRITE,
  VM_NORESERVE,
  VM_SHARED,
} from './constants.ts';
import { type MmFile, SpecialFile, TmpFile } from './file.ts';
import { populate } from './gup.ts';
import { hugetlbMisaligned } from './hugetlb.ts';
import { invEnd, invStart } from './invalidate.ts';
import { zapRange } from './memory.ts';
import type { Mm } from './mm.ts';
import { calcVmProtBits } from './mprotect.ts';
import { linkVma, mergeAround, splitsNeeded, splitVma, unlinkVma, Vma } from './vma.ts';

/** mmap flags Linux knows (LEGACY_MAP_MASK plus the validated ones). */
const LEGACY_MAP_MASK =
  0x01 |
  0x02 |
  0x10 |
  0x20 |
  0x0100 |
  0x0800 |
  0x1000 |
  0x2000 |
  0x4000 |
  0x8000 |
  0x10000 |
  0x20000 |
  0x40000 |
  0x100000;

/**
 * Models mmap(2). Returns the address, or a negative errno: -EINVAL (len 0, bad flags,
 * unaligned MAP_FIXED address or offset), -ENOMEM (overflow, no room, VMA limit, hugetlb
 * pool empty), -EACCES (file open mode), -EPERM (below mmap_min_addr), -EEXIST
 * (MAP_FIXED_NOREPLACE), -EOPNOTSUPP (MAP_SHARED_VALIDATE with unknown flags), -EBADF (no file
 * for a file mapping), -EOVERFLOW (offset + length). Unknown flags are ignored except with
 * MAP_SHARED_VALIDATE, as in Linux.
 */
export async function mmap(
  mm: Mm,
  addr: number,
  length: number,
  prot: number,
  flags: number,
  file: MmFile | null = null,
  offset = 0,
): Promise<number> {
  const fn = 'Mm.mmap';
  for (const [name, v] of [
    ['addr', addr],
    ['length', length],
    ['prot', prot],
    ['flags', flags],
    ['offset', offset],
  ] as const) {
    checkUint(fn, name, v);
  }
  if (offset % PAGE_SIZE !== 0) return -Errno.EINVAL;
  const anon = (flags & MAP_ANONYMOUS) !== 0;
  if (!anon && file === null) return -Errno.EBADF;
  if (anon) file = null;
  let hugeSize = 0;
  if (flags & MAP_HUGETLB) {
    if (file !== null) return -Errno.EINVAL;
    const log = Math.floor(flags / 2 ** MAP_HUGE_SHIFT) & MAP_HUGE_MASK;
    if (log === 0 || log === 21) hugeSize = PMD_SIZE;
    else if (log === 30) hugeSize = PUD_SIZE;
    else return -Errno.EINVAL;
    length = Math.ceil(length / hugeSize) * hugeSize;
  }
  if (length === 0) return -Errno.EINVAL;
  const len = pageAlign(length);
  if (len > TASK_SIZE) return -Errno.ENOMEM;
  const pgoff = offset / PAGE_SIZE;
  if (!Number.isSafeInteger(pgoff + len / PAGE_SIZE)) return -Errno.EOVERFLOW;
  let vmFlags = calcVmProtBits(prot) | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC;
  if (flags & MAP_LOCKED) vmFlags |= VM_LOCKED;
  if (flags & MAP_NORESERVE) vmFlags |= VM_NORESERVE;
  if (hugeSize !== 0) vmFlags |= VM_HUGETLB;
  const type = flags & MAP_TYPE;
  if (type === MAP_SHARED_VALIDATE) {
    if (flags & ~LEGACY_MAP_MASK & ~(MAP_HUGE_MASK * 2 ** MAP_HUGE_SHIFT)) return -Errno.EOPNOTSUPP;
    if (flags & MAP_SYNC) return -Errno.EOPNOTSUPP;
  }
  if (type !== MAP_SHARED && type !== MAP_SHARED_VALIDATE && type !== MAP_PRIVATE) return -Errno.EINVAL;
  const shared = type !== MAP_PRIVATE;
  if (file !== null) {
    if (shared) {
      if (prot & PROT_WRITE && !file.writable) return -Errno.EACCES;
      vmFlags |= VM_SHARED | VM_MAYSHARE;
      if (!file.writable) vmFlags &= ~(VM_MAYWRITE | VM_SHARED);
    }
    if (!file.readable) return -Errno.EACCES;
  } else if (shared) vmFlags |= VM_SHARED | VM_MAYSHARE;

  const fixed = (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) !== 0;
  const align = hugeSize !== 0 ? hugeSize : PAGE_SIZE;
  let start: number;
  if (fixed) {
    if (addr % align !== 0) return -Errno.EINVAL;
    if (addr > TASK_SIZE - len) return -Errno.ENOMEM;
    if (addr < MMAP_MIN_ADDR) return -Errno.EPERM;
    start = addr;
  } else start = -1;

  await mm.mmapLock.write();
  try {
    if (mm.mmUsers === 0) return -Errno.ENOMEM;
    if (start < 0) {
      start = getUnmappedArea(mm, addr, len, align);
      if (start < 0) return -Errno.ENOMEM;
    } else if (flags & MAP_FIXED_NOREPLACE && mm.vmas.overlapping(start, start + len).length !== 0) {
      return -Errno.EEXIST;
    }
    const end = start + len;
    const overl = mm.vmas.overlapping(start, end);
    for (const v of overl) if (v.flags & VM_HUGETLB && hugetlbMisaligned(v, start, end)) return -Errno.EINVAL;
    if (mm.vmas.size - overl.length + splitsNeeded(mm, start, end) + 1 > mm.machine.maxMapCount) {
      return -Errno.ENOMEM;
    }
    if (hugeSize !== 0) {
      const need = len / hugeSize;
      const free = hugeSize === PMD_SIZE ? mm.phys.hugetlbFree : mm.phys.hugetlbPudFree;
      if (!(vmFlags & VM_NORESERVE) && free < need) return -Errno.ENOMEM;
    }
    if (overl.length !== 0) {
      const r = await doMunmapLocked(mm, start, end);
      if (r !== 0) return r;
    }
    let vfile = file;
    if (file === null && shared) {
      vfile = new TmpFile(mm.phys, len);
    }
    const vpgoff = vfile === null ? start / PAGE_SIZE : pgoff;
    let vma = new Vma(mm, start, end, vmFlags, vpgoff, vfile, null);
    if (hugeSize !== 0) vma.privateData = hugeSize;
    linkVma(mm, vma);
    if (file instanceof SpecialFile) {
      const r = file.mmapHook(vma);
      if (r !== 0) {
        await zapRange(mm, vma, vma.start, vma.end, true);
        unlinkVma(mm, vma);
        return r < 0 ? r : -Errno.EINVAL;
      }
    } else if (hugeSize === 0) vma = mergeAround(mm, vma);
    if (flags & MAP_POPULATE) await populate(mm, vma, start, end);
    return start;
  } finally {
    mm.mmapLock.writeUnlock();
  }
}

/** Models get_unmapped_area() (top-down, with the old free_area_cache hint). */
export function getUnmappedArea(mm: Mm, hint: number, len: number, align: number): number {
  if (hint !== 0) {
    let h = pageAlign(hint);
    h = Math.ceil(h / align) * align;
    if (h >= MMAP_MIN_ADDR && h <= TASK_SIZE - len && mm.vmas.overlapping(h, h + len).length === 0) return h;
  }
  const high = Math.min(mm.freeAreaCache, mm.mmapBase);
  let a = mm.vmas.findGapTopDown(len, MMAP_MIN_ADDR, high, align);
  if (a < 0 && high < mm.mmapBase) a = mm.vmas.findGapTopDown(len, MMAP_MIN_ADDR, mm.mmapBase, align);
  if (a >= 0) mm.freeAreaCache = a;
  return a;
}

/**
 * Models munmap(2): 0, or -EINVAL (unaligned addr, len 0, range outside the VA space, a
 * hugetlb VMA split at a non-huge boundary), -ENOMEM (VMA limit on a split).
 */
export async function munmap(mm: Mm, addr: number, length: number): Promise<number> {
  const fn = 'Mm.munmap';
  checkUint(fn, 'addr', addr);
  checkUint(fn, 'length', length);
  if (addr % PAGE_SIZE !== 0) return -Errno.EINVAL;
  const len = pageAlign(length);
  if (len === 0 || addr > TASK_SIZE || len > TASK_SIZE - addr) return -Errno.EINVAL;
  await mm.mmapLock.write();
  try {
    return await doMunmapLocked(mm, addr, addr + len);
  } finally {
    mm.mmapLock.writeUnlock();
  }
}

/** do_vmi_munmap(): the caller holds the mmap lock for write. */
export async function doMunmapLocked(mm: Mm, start: number, end: number): Promise<number> {
  const overl = mm.vmas.overlapping(start, end);
  if (overl.length === 0) return 0;
  for (const v of overl) if (v.flags & VM_HUGETLB && hugetlbMisaligned(v, start, end)) return -Errno.EINVAL;
  const first = overl[0]!;
  const last = overl[overl.length - 1]!;
  if (first === last && first.start < start && last.end > end && mm.vmas.size >= mm.machine.maxMapCount)
    return -Errno.ENOMEM;
  if (first.start < start) {
    const nv = await splitVma(mm, first, start);
    overl[0] = nv;
    if (last === first) overl[overl.length - 1] = nv;
  }
  const l = overl[overl.length - 1]!;
  if (l.end > end) await splitVma(mm, l, end);
  for (const v of overl) unlinkVma(mm, v);
  const r = await invStart(mm, MmuNotifyEvent.UNMAP, start, end);
  for (const v of overl) await zapRange(mm, v, v.start, v.end, false);
  await invEnd(mm, r);
  freePgtables(mm, start, end);
  if (end > mm.freeAreaCache) mm.freeAreaCache = Math.min(end, mm.mmapBase);
  return 0;
}

/** Models free_pgtables(): frees empty PTE tables whose 2 MiB block no VMA overlaps any more. */
function freePgtables(mm: Mm, start: number, end: number): void {
  for (let b = alignDown(start, PMD_SIZE); b < end; b += PMD_SIZE) {
    const pmd = mm.pt.pmdTable(b, false);
    if (pmd === null) {
      b = alignDown(b, PUD_SIZE) + PUD_SIZE - PMD_SIZE;
      continue;
    }
    const mi = Math.floor(b / PMD_SIZE) & 511;
    const t = pmd.tables[mi];
    if (t === null || t === undefined || t.used !== 0) continue;
    if (mm.vmas.overlapping(b, b + PMD_SIZE).length !== 0) continue;
    mm.pt.freePteTable(pmd, mi);
  }
}
