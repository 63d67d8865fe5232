/**
 * CPU loads and stores (the x86 page-fault handler + copy_to_user/copy_from_user): resolve an
 * address to a frame through the page tables, faulting as needed.
 *
 * @module
 */
import { checkUint, modPow2, StateError } from '@hmmkit/sim';
import {
  alignDown,
  FAULT_FLAG_USER,
  FAULT_FLAG_WRITE,
  PAGE_SIZE,
  PMD_SIZE,
  PUD_SIZE,
  VM_ACCESS_FLAGS,
  VM_FAULT_OOM,
  VM_FAULT_SIGBUS,
  VM_FAULT_SIGSEGV,
  VM_HUGETLB,
  VM_WRITE,
} from './constants.ts';
import { MmSignalError } from './machine.ts';
import { faultAnonPteRun, handleMmFault, handleMmFaultSync } from './memory.ts';
import type { Mm } from './mm.ts';
import {
  PTE_DIRTY,
  PTE_PRESENT,
  PTE_R,
  PTE_TYPE_MASK,
  PTE_W,
  PTE_YOUNG,
  setEntryFlags,
} from './page-table.ts';

/**
 * Resolves the frame behind `addr` for a CPU access, faulting as needed (the x86 page-fault
 * handler: takes the mmap lock for read, checks the VMA, calls handleMmFault, retries).
 * Returns the pfn. Throws {@link MmSignalError} for SIGSEGV / SIGBUS.
 */
async function resolveUserPfn(mm: Mm, exact: number, write: boolean): Promise<number> {
  const addr = alignDown(exact, PAGE_SIZE);
  for (let tries = 0; ; tries++) {
    const pfn = fastLookup(mm, addr, write);
    if (pfn >= 0) return pfn;
    if (tries > 1000)
      throw new StateError('Mm.access', `fault at 0x${addr.toString(16)} does not make progress`);
    await mm.mmapLock.read();
    let ret: number;
    try {
      const vma = mm.vmas.lookup(addr);
      if (vma === null) throw new MmSignalError('SIGSEGV', exact, 'SEGV_MAPERR');
      const ok = write ? vma.flags & VM_WRITE : vma.flags & VM_ACCESS_FLAGS;
      if (!ok) throw new MmSignalError('SIGSEGV', exact, 'SEGV_ACCERR');
      ret = await handleMmFault(mm, vma, exact, FAULT_FLAG_USER | (write ? FAULT_FLAG_WRITE : 0));
    } finally {
      mm.mmapLock.readUnlock();
    }
    if (ret & VM_FAULT_SIGSEGV) throw new MmSignalError('SIGSEGV', exact, 'SEGV_ACCERR');
    if (ret & (VM_FAULT_SIGBUS | VM_FAULT_OOM)) throw new MmSignalError('SIGBUS', exact, 'BUS_ADRERR');
  }
}

/** The pfn a present, sufficiently permissive entry maps at `addr`, else -1 (marks young/dirty). */
export function fastLookup(mm: Mm, addr: number, write: boolean): number {
  const pmd = mm.pt.pmdTable(addr, false);
  if (pmd === null) {
    const pud = mm.pt.pudTable(addr, false);
    if (pud === null) return -1;
    const ui = Math.floor(addr / PUD_SIZE) & 511;
    const f = pud.flags[ui]!;
    if ((f & (PTE_TYPE_MASK | PTE_R)) !== (PTE_PRESENT | PTE_R) || (write && !(f & PTE_W))) return -1;
    setEntryFlags(pud, ui, f | PTE_YOUNG | (write ? PTE_DIRTY : 0));
    return pud.val[ui]! + modPow2(Math.floor(addr / PAGE_SIZE), PUD_SIZE / PAGE_SIZE);
  }
  const mi = Math.floor(addr / PMD_SIZE) & 511;
  const t = pmd.tables[mi]!;
  if (t === null) {
    const f = pmd.flags[mi]!;
    if ((f & (PTE_TYPE_MASK | PTE_R)) !== (PTE_PRESENT | PTE_R) || (write && !(f & PTE_W))) return -1;
    setEntryFlags(pmd, mi, f | PTE_YOUNG | (write ? PTE_DIRTY : 0));
    const v = pmd.val[mi]!;
    return v + (Math.floor(addr / PAGE_SIZE) & 511);
  }
  const i = Math.floor(addr / PAGE_SIZE) & 511;
  const f = t.flags[i]!;
  if ((f & (PTE_TYPE_MASK | PTE_R)) !== (PTE_PRESENT | PTE_R) || (write && !(f & PTE_W))) return -1;
  setEntryFlags(t, i, f | PTE_YOUNG | (write ? PTE_DIRTY : 0));
  return t.val[i]!;
}

/** Throws ArgumentError unless `addr` and `len` are non-negative safe integers. */
function checkAccessArgs(addr: number, len: number): void {
  checkUint('Mm.access', 'addr', addr);
  checkUint('Mm.access', 'length', len);
}

/**
 * A CPU load of `dst.length` bytes at `addr` into `dst` (faulting pages in as a user access
 * does). Throws {@link MmSignalError} (SIGSEGV / SIGBUS) at the first page that cannot be read.
 */
export async function cpuReadInto(mm: Mm, addr: number, dst: Uint8Array): Promise<void> {
  checkAccessArgs(addr, dst.length);
  await copyUser(mm, addr, dst, false);
}

/** Page by page through the page tables: `buf` → memory when `write`, memory → `buf` otherwise. */
async function copyUser(mm: Mm, addr: number, buf: Uint8Array, write: boolean): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const a = addr + done;
    const off = modPow2(a, PAGE_SIZE);
    const n = Math.min(PAGE_SIZE - off, buf.length - done);
    const pfn = await resolveUserPfn(mm, a, write);
    if (write) mm.phys.writePage(pfn, off, buf, done, n);
    else mm.phys.readPage(pfn, off, buf, done, n);
    if (mm.sim.trace.wants('mm.access')) mm.sim.trace.emit('mm.access', mm.id, a, write, buf, done, n);
    done += n;
  }
}

/** A CPU load of `length` bytes at `addr`. */
export async function cpuRead(mm: Mm, addr: number, length: number): Promise<Uint8Array> {
  checkAccessArgs(addr, length);
  const out = new Uint8Array(length);
  await cpuReadInto(mm, addr, out);
  return out;
}

/**
 * A CPU store of `src` at `addr` (write faults, COW breaks as needed). Pages before a failing
 * page keep what was stored, as on real hardware.
 */
export async function cpuWrite(mm: Mm, addr: number, src: Uint8Array): Promise<void> {
  checkAccessArgs(addr, src.length);
  await copyUser(mm, addr, src, true);
}

/**
 * Touches every page of [addr, addr+length) with a load or a store of nothing (faults only).
 *
 * Each page behaves as {@link resolveUserPfn} makes it: a present entry is only marked young
 * (dirty); a missing one is faulted under the mmap lock, then looked up again. Outside a
 * scheduler run nothing can interleave with the loop, so consecutive faults inside one VMA and
 * one 2 MiB block share one mmap-lock hold (one `down_read` per run of faults, as a fault-around
 * would); inside a run every fault keeps its own lock acquisition, which is a scheduling point,
 * so the interleavings (and results) are those of the per-page loop.
 */
export async function cpuTouch(mm: Mm, addr: number, length: number, write: boolean): Promise<void> {
  checkAccessArgs(addr, length);
  const end = addr + length;
  const flags = FAULT_FLAG_USER | (write ? FAULT_FLAG_WRITE : 0);
  let a = addr; // the exact address of the next page to touch (only the first may be unaligned)
  let tries = 0;
  while (a < end) {
    if (fastLookup(mm, alignDown(a, PAGE_SIZE), write) >= 0) {
      a = alignDown(a, PAGE_SIZE) + PAGE_SIZE;
      continue;
    }
    if (tries++ > 1000) {
      throw new StateError(
        'Mm.access',
        `fault at 0x${alignDown(a, PAGE_SIZE).toString(16)} does not make progress`,
      );
    }
    const from = a;
    await mm.mmapLock.read();
    try {
      const next = faultRunLocked(mm, a, end, write, flags);
      a = typeof next === 'number' ? next : await next;
    } finally {
      mm.mmapLock.readUnlock();
    }
    if (a !== from) tries = 0;
  }
}

/**
 * The faults of one mmap-lock hold of {@link cpuTouch}: faults the page at `exact` (as
 * resolveUserPfn does once it holds the lock) and, outside a scheduler run, the following pages
 * of the same VMA and 2 MiB block up to `end`, each as the per-page loop would (skip it when the
 * lookup finds it present, else fault it and look it up again). Stops before a page that still
 * misses after its fault (the caller retries it) and after a fault that had to sleep. Returns the
 * exact address of the first page not done. Throws MmSignalError as resolveUserPfn does.
 */
function faultRunLocked(
  mm: Mm,
  exact: number,
  end: number,
  write: boolean,
  flags: number,
): number | Promise<number> {
  const vma = mm.vmas.lookup(exact);
  if (vma === null) throw new MmSignalError('SIGSEGV', exact, 'SEGV_MAPERR');
  if (!(write ? vma.flags & VM_WRITE : vma.flags & VM_ACCESS_FLAGS)) {
    throw new MmSignalError('SIGSEGV', exact, 'SEGV_ACCERR');
  }
  const stop =
    mm.sim.sched.currentTask === null
      ? Math.min(end, vma.end, alignDown(exact, PMD_SIZE) + PMD_SIZE)
      : Math.min(end, alignDown(exact, PAGE_SIZE) + PAGE_SIZE);
  // After the first page, an anonymous VMA's pages share one descent to their PTE table (the
  // run stays inside one 2 MiB block): faultAnonPteRun does what the lookups and faults below
  // would, and leaves any other case to them.
  const anon = vma.file === null && !(vma.flags & VM_HUGETLB);
  let a = exact;
  for (let first = true; a < stop; first = false) {
    let page = alignDown(a, PAGE_SIZE);
    if (!first) {
      const t = anon ? mm.pt.pteTable(page, false) : null;
      if (t !== null) {
        // a page the run leaves alone misses in fastLookup (which then has no effect)
        a = faultAnonPteRun(mm, vma, t, page, stop, flags);
        if (a >= stop) break;
        page = a;
      } else if (fastLookup(mm, page, write) >= 0) {
        a = page + PAGE_SIZE;
        continue;
      }
    }
    const ret = handleMmFaultSync(mm, vma, a, flags);
    if (typeof ret !== 'number') return slowFaultDone(mm, ret, a, write);
    if (faultDone(mm, ret, a, write) === a) return a;
    a = page + PAGE_SIZE;
  }
  return a;
}

/** After a fault at `exact` returned `ret`: throws for an error, else the next page's address when the page is now accessible, `exact` when it must be retried. */
function faultDone(mm: Mm, ret: number, exact: number, write: boolean): number {
  if (ret & VM_FAULT_SIGSEGV) throw new MmSignalError('SIGSEGV', exact, 'SEGV_ACCERR');
  if (ret & (VM_FAULT_SIGBUS | VM_FAULT_OOM)) throw new MmSignalError('SIGBUS', exact, 'BUS_ADRERR');
  const page = alignDown(exact, PAGE_SIZE);
  return fastLookup(mm, page, write) < 0 ? exact : page + PAGE_SIZE;
}

/** {@link faultDone} for a fault that had to sleep: the run ends after it. */
async function slowFaultDone(mm: Mm, ret: Promise<number>, exact: number, write: boolean): Promise<number> {
  return faultDone(mm, await ret, exact, write);
}

/** Loads `n` bytes at `addr` into a fresh buffer (per call: concurrent tasks must not share one). */
export async function loadScalar(mm: Mm, addr: number, n: number): Promise<DataView> {
  const bytes = new Uint8Array(8);
  if (modPow2(addr, PAGE_SIZE) <= PAGE_SIZE - n) {
    checkAccessArgs(addr, n);
    const pfn = await resolveUserPfn(mm, addr, false);
    mm.phys.readPage(pfn, modPow2(addr, PAGE_SIZE), bytes, 0, n);
    if (mm.sim.trace.wants('mm.access')) mm.sim.trace.emit('mm.access', mm.id, addr, false, bytes, 0, n);
  } else await cpuReadInto(mm, addr, bytes.subarray(0, n));
  return new DataView(bytes.buffer);
}

/** The `n` little-endian bytes `set` writes into a fresh DataView (a scalar store's source). */
export function scalar(n: number, set: (d: DataView) => void): Uint8Array {
  const d = new DataView(new ArrayBuffer(8));
  set(d);
  return new Uint8Array(d.buffer, 0, n);
}
