/**
 * hmm_range_fault() (mm/hmm.c, include/linux/hmm.h): snapshot the CPU page table of a range
 * into a device-friendly pfn array, faulting pages in where the caller asks.
 *
 * Linux's `unsigned long hmm_pfns[]` is held as two parallel typed arrays: `hmmPfns`
 * (Float64Array, the pfn) and `hmmFlags` (Uint16Array, the request flags on input and the
 * result flags plus map order on output). The walk goes one PMD-sized unit at a time through
 * `mm.pt.walkUnit` with one reused {@link PageWalk} per call, deciding per page in plain integer
 * code; faults are done between walks (as in the in-flight linux-mm rework, semantics unchanged).
 *
 * @module
 */
import {
  FAULT_FLAG_REMOTE,
  FAULT_FLAG_WRITE,
  Mm,
  PAGE_SIZE,
  PageWalk,
  PMD_SIZE,
  type PmdTable,
  PTE_DEVICE_EXCLUSIVE,
  PTE_DEVICE_PRIVATE,
  PTE_MIGRATION,
  PTE_NONE,
  PTE_PRESENT,
  PTE_R,
  PTE_SPECIAL,
  PTE_SWAP,
  PTE_TYPE_MASK,
  PTE_W,
  type PteTable,
  PUD_SIZE,
  type PudTable,
  VM_FAULT_ERROR,
  VM_FAULT_OOM,
  VM_HUGETLB,
  VM_IO,
  VM_PFNMAP,
  VM_READ,
  VM_WRITE,
  type Vma,
  WALK_HOLE,
  WALK_PMD_LEAF,
  WALK_PTE,
} from '@hmmkit/mm';
import {
  type MmuIntervalNotifier,
  mmuIntervalCheckRetry,
  mmuIntervalReadBegin,
  mmuIntervalReadRetry,
} from '@hmmkit/notifier';
import { ArgumentError, Errno, Mutex, RwSemaphore, StateError } from '@hmmkit/sim';
import { hmmStats } from './stats.ts';

/** HMM_PFN_VALID (bit 63 in Linux): the pfn is valid and at least readable. */
export const HMM_PFN_VALID = 0x8000;
/** HMM_PFN_WRITE (bit 62): the CPU mapping is writable. */
export const HMM_PFN_WRITE = 0x4000;
/** HMM_PFN_ERROR (bit 61): the device must not access this page. */
export const HMM_PFN_ERROR = 0x2000;
/** HMM_PFN_DMA_MAPPED (bit 60): sticky in/out, owned by the driver. */
export const HMM_PFN_DMA_MAPPED = 0x1000;
/** HMM_PFN_P2PDMA (bit 59): sticky in/out. */
export const HMM_PFN_P2PDMA = 0x0800;
/** HMM_PFN_P2PDMA_BUS (bit 58): sticky in/out. */
export const HMM_PFN_P2PDMA_BUS = 0x0400;
/** HMM_PFN_INOUT_FLAGS: the sticky bits carried from input to output. */
export const HMM_PFN_INOUT_FLAGS = 0x1c00;
/** The map order field (HMM_PFN_ORDER_SHIFT analog): the low 5 bits of the flags. */
export const HMM_PFN_ORDER_MASK = 0x001f;
/** HMM_PFN_REQ_FAULT (input): make this page valid. Same bit as HMM_PFN_VALID. */
export const HMM_PFN_REQ_FAULT = HMM_PFN_VALID;
/** HMM_PFN_REQ_WRITE (input): make this page writable (only with REQ_FAULT). Same bit as WRITE. */
export const HMM_PFN_REQ_WRITE = HMM_PFN_WRITE;
/** HMM_RANGE_DEFAULT_TIMEOUT: the conventional retry budget, in ms (of virtual time). */
export const HMM_RANGE_DEFAULT_TIMEOUT = 1000;

/** Models hmm_pfn_to_map_order(): the CPU mapping of this page is 2^order pages (order-aligned VA). */
export function hmmPfnToMapOrder(flags: number): number {
  return flags & HMM_PFN_ORDER_MASK;
}

/** Initialiser of {@link HmmRange} (the designated-initialiser style of the C struct). */
export interface HmmRangeInit {
  notifier: MmuIntervalNotifier;
  start: number;
  end: number;
  notifierSeq?: number;
  /** Defaults to a fresh Float64Array of (end - start) / 4096 entries. */
  hmmPfns?: Float64Array;
  /** Defaults to a fresh Uint16Array of (end - start) / 4096 entries. */
  hmmFlags?: Uint16Array;
  defaultFlags?: number;
  pfnFlagsMask?: number;
  devPrivateOwner?: unknown;
}

/** Models struct hmm_range. `end` is exclusive; both ends page aligned. */
export class HmmRange {
  /** The interval notifier covering the range; the target mm is `notifier.mm`. */
  notifier: MmuIntervalNotifier;
  /** mmu_interval_read_begin()'s value; hmm re-checks it at every loop. */
  notifierSeq: number;
  start: number;
  end: number;
  /** Output pfn per page (input ignored). */
  hmmPfns: Float64Array;
  /** Input request flags per page; output HMM_PFN_* flags plus map order. */
  hmmFlags: Uint16Array;
  /** OR-ed into every page's request. */
  defaultFlags: number;
  /** AND-ed with every page's input before the OR (0: per-page input ignored). */
  pfnFlagsMask: number;
  /** Device-private pages whose pagemap owner equals this are reported, not faulted. */
  devPrivateOwner: unknown;

  constructor(init: HmmRangeInit) {
    // Other bad bounds are reported by hmmRangeFault; a BigInt or string cannot even be measured.
    for (const key of ['start', 'end'] as const) {
      if (typeof init[key] !== 'number') {
        throw new ArgumentError(
          'HmmRange',
          key,
          'must be a number (addresses are plain numbers, not BigInt)',
          init[key],
        );
      }
    }
    this.notifier = init.notifier;
    this.start = init.start;
    this.end = init.end;
    this.notifierSeq = init.notifierSeq ?? 0;
    const n = Number.isSafeInteger(init.end - init.start)
      ? Math.max(0, (init.end - init.start) / PAGE_SIZE)
      : 0;
    const len = Number.isSafeInteger(n) && n <= 2 ** 26 ? n : 0; // bad bounds are reported by hmmRangeFault
    this.hmmPfns = init.hmmPfns ?? new Float64Array(len);
    this.hmmFlags = init.hmmFlags ?? new Uint16Array(len);
    this.defaultFlags = init.defaultFlags ?? 0;
    this.pfnFlagsMask = init.pfnFlagsMask ?? 0;
    this.devPrivateOwner = init.devPrivateOwner ?? null;
  }

  /** Number of pages in the range. */
  get npages(): number {
    return (this.end - this.start) / PAGE_SIZE;
  }
}

// hmm_pte_need_fault() result bits.
const NEED_FAULT = 1;
const NEED_WRITE_FAULT = 2;
const NEED_ALL = 3;
// Internal walk results (besides 0 and -errno).
const PENDING_FAULT = 1;
const PENDING_WAIT = 2;

const EBUSY = -Errno.EBUSY;
const EFAULT = -Errno.EFAULT;

/** Per-call walk state (struct hmm_vma_walk plus the pending fault / migration wait). */
class WalkCtx {
  readonly range: HmmRange;
  readonly mm: Mm;
  readonly w = new PageWalk();
  last: number;
  pagesWalked = 0;
  // pending fault
  fVma: Vma | null = null;
  fStart = 0;
  fEnd = 0;
  fRequired = 0;
  // pending migration-entry wait
  wTable: PteTable | PmdTable | PudTable | null = null;
  wIndex = 0;
  wPfn = 0;
  wFlags = 0;
  /** Consecutive waits on migration entries whose page was not locked (protocol misuse guard). */
  unlockedWaits = 0;

  constructor(range: HmmRange, mm: Mm) {
    this.range = range;
    this.mm = mm;
    this.last = range.start;
  }
}

/** hmm_pte_need_fault(). */
function pteNeedFault(range: HmmRange, req: number, cpu: number): number {
  const r = (req & range.pfnFlagsMask) | range.defaultFlags;
  if (!(r & HMM_PFN_REQ_FAULT)) return 0;
  if (r & HMM_PFN_REQ_WRITE && !(cpu & HMM_PFN_WRITE)) return NEED_FAULT | NEED_WRITE_FAULT;
  if (!(cpu & HMM_PFN_VALID)) return NEED_FAULT;
  return 0;
}

/** hmm_range_need_fault(): the union over `n` pages from index `j`, stopping once both bits are set. */
function rangeNeedFault(range: HmmRange, j: number, n: number, cpu: number): number {
  if (!((range.defaultFlags | range.pfnFlagsMask) & HMM_PFN_REQ_FAULT)) return 0;
  // per-page input masked away: every page asks the same
  if (!(range.pfnFlagsMask & (HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE))) return pteNeedFault(range, 0, cpu);
  const reqs = range.hmmFlags;
  let required = 0;
  for (let k = 0; k < n; k++) {
    required |= pteNeedFault(range, reqs[j + k]!, cpu);
    if (required === NEED_ALL) return required;
  }
  return required;
}

/** hmm_pfns_fill(): `n` entries from `j` become (input & INOUT) | flags, pfn 0. */
function fill(range: HmmRange, j: number, n: number, flags: number): void {
  const reqs = range.hmmFlags;
  const pfns = range.hmmPfns;
  for (let k = 0; k < n; k++) {
    reqs[j + k] = (reqs[j + k]! & HMM_PFN_INOUT_FLAGS) | flags;
    pfns[j + k] = 0;
  }
}

/** Fills `n` entries from `j` with consecutive pfns from `pfn` and `flags` (a huge mapping). */
function fillPfns(range: HmmRange, j: number, n: number, pfn: number, flags: number): void {
  const reqs = range.hmmFlags;
  const pfns = range.hmmPfns;
  for (let k = 0; k < n; k++) {
    reqs[j + k] = (reqs[j + k]! & HMM_PFN_INOUT_FLAGS) | flags;
    pfns[j + k] = pfn + k;
  }
}

/** hmm_vma_fault(): records the fault of [addr, end) to run after the walk; -EPERM first. */
function vmaFault(ctx: WalkCtx, vma: Vma, addr: number, end: number, required: number): number {
  ctx.last = addr;
  if (required & NEED_WRITE_FAULT && !(vma.flags & VM_WRITE)) return -Errno.EPERM;
  ctx.fVma = vma;
  ctx.fStart = addr;
  ctx.fEnd = end;
  ctx.fRequired = required;
  return PENDING_FAULT;
}

/** hmm_vma_walk_hole(): a hole inside a VMA (vma non-null) or an address gap (vma null). */
function walkHole(ctx: WalkCtx, vma: Vma | null, addr: number, end: number): number {
  const range = ctx.range;
  const j = (addr - range.start) / PAGE_SIZE;
  const n = (end - addr) / PAGE_SIZE;
  ctx.pagesWalked += n;
  const required = rangeNeedFault(range, j, n, 0);
  if (vma === null) {
    if (required) return EFAULT;
    fill(range, j, n, HMM_PFN_ERROR);
    return 0;
  }
  if (required) return vmaFault(ctx, vma, addr, end, required);
  fill(range, j, n, 0);
  return 0;
}

/** True when a device-private page's pagemap belongs to the range's owner. */
function ownedDevicePrivate(mm: Mm, owner: unknown, dpfn: number): boolean {
  if (owner === null || owner === undefined) return false;
  const pg = mm.phys.pagemapOf(dpfn);
  return pg !== null && pg.type === 'private' && pg.owner === owner;
}

/**
 * The table-wide fast path of walkPtes: reports up to `n` entries from PTE slot `i` into range
 * index `j` while `(flags & okMask) === okVal`; returns how many it reported.
 */
function reportPresent(
  fl: Uint8Array,
  vals: Float64Array,
  reqs: Uint16Array,
  pfns: Float64Array,
  i: number,
  j: number,
  n: number,
  okMask: number,
  okVal: number,
): number {
  // module bindings read once: inside the loop each would be a load (and, for an import, a check)
  const inout = HMM_PFN_INOUT_FLAGS;
  const w = PTE_W;
  const rw = HMM_PFN_VALID | HMM_PFN_WRITE;
  const ro = HMM_PFN_VALID;
  let k = 0;
  for (; k < n; k++) {
    const f = fl[i + k]!;
    if ((f & okMask) !== okVal) break;
    const y = j + k;
    reqs[y] = (reqs[y]! & inout) | (f & w ? rw : ro);
    pfns[y] = vals[i + k]!;
  }
  return k;
}

/** hmm_vma_walk_pmd() over a PTE table + hmm_vma_handle_pte() per page. */
function walkPtes(ctx: WalkCtx, vma: Vma, addr: number, end: number): number {
  const range = ctx.range;
  const w = ctx.w;
  const t = w.pte!;
  const vals = t.val;
  const fl = t.flags;
  const reqs = range.hmmFlags;
  const pfns = range.hmmPfns;
  const phys = ctx.mm.phys;
  const mask = range.pfnFlagsMask;
  const def = range.defaultFlags;
  const anyFault = ((def | mask) & HMM_PFN_REQ_FAULT) !== 0;
  const n = (end - addr) / PAGE_SIZE;
  let i = w.index;
  let j = (addr - range.start) / PAGE_SIZE;
  let k = 0;
  if (!(mask & (HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE))) {
    // hmm_range_need_fault()'s shortcut: no per-page request bit survives the mask, so every page
    // of the table asks `def`. One decision for the table: a present, readable, non-special PTE
    // (writable too when `def` asks for write) needs no fault and is reported as is; the first
    // other entry drops to the per-page loop below, which decides exactly as before.
    const needW = (def & (HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE)) === (HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE);
    const okMask = PTE_TYPE_MASK | PTE_R | PTE_SPECIAL | (needW ? PTE_W : 0);
    const okVal = PTE_PRESENT | PTE_R | (needW ? PTE_W : 0);
    k = reportPresent(fl, vals, reqs, pfns, i, j, n, okMask, okVal);
    i += k;
    j += k;
  }
  for (; k < n; k++, i++, j++) {
    const f = fl[i]!;
    const ty = f & PTE_TYPE_MASK;
    const req = reqs[j]!;
    if (ty === PTE_PRESENT) {
      const pfn = vals[i]!;
      const cpu = f & PTE_R ? (f & PTE_W ? HMM_PFN_VALID | HMM_PFN_WRITE : HMM_PFN_VALID) : 0;
      const rq = (req & mask) | def;
      if (
        rq & HMM_PFN_REQ_FAULT &&
        (!(cpu & HMM_PFN_VALID) || (rq & HMM_PFN_REQ_WRITE && !(cpu & HMM_PFN_WRITE)))
      ) {
        ctx.pagesWalked += k + 1;
        return vmaFault(ctx, vma, addr + k * PAGE_SIZE, end, pteNeedFault(range, req, cpu));
      }
      // vm_normal_page() is NULL for special PTEs; the zero page (special on x86) is a normal page here
      if (f & PTE_SPECIAL && !phys.isZeroPfn(pfn)) {
        if (anyFault && pteNeedFault(range, req, 0) !== 0) {
          ctx.pagesWalked += k + 1;
          return EFAULT;
        }
        reqs[j] = (req & HMM_PFN_INOUT_FLAGS) | HMM_PFN_ERROR;
        pfns[j] = 0;
      } else {
        reqs[j] = (req & HMM_PFN_INOUT_FLAGS) | cpu;
        pfns[j] = pfn;
      }
    } else if (ty === PTE_NONE) {
      if (anyFault) {
        const r = pteNeedFault(range, req, 0);
        if (r !== 0) {
          ctx.pagesWalked += k + 1;
          return vmaFault(ctx, vma, addr + k * PAGE_SIZE, end, r);
        }
      }
      reqs[j] = req & HMM_PFN_INOUT_FLAGS;
      pfns[j] = 0;
    } else {
      const v = vals[i]!;
      if (ty === PTE_DEVICE_PRIVATE && ownedDevicePrivate(ctx.mm, range.devPrivateOwner, v)) {
        // reported without any fault-need check, even for a write request on a read-only entry
        reqs[j] = (req & HMM_PFN_INOUT_FLAGS) | HMM_PFN_VALID | (f & PTE_W ? HMM_PFN_WRITE : 0);
        pfns[j] = v;
        continue;
      }
      const r = anyFault ? pteNeedFault(range, req, 0) : 0;
      if (r === 0) {
        reqs[j] = req & HMM_PFN_INOUT_FLAGS;
        pfns[j] = 0;
        continue;
      }
      ctx.pagesWalked += k + 1;
      const a = addr + k * PAGE_SIZE;
      if (ty === PTE_SWAP || ty === PTE_DEVICE_PRIVATE || ty === PTE_DEVICE_EXCLUSIVE) {
        return vmaFault(ctx, vma, a, end, r);
      }
      if (ty === PTE_MIGRATION) {
        ctx.last = a;
        ctx.wTable = t;
        ctx.wIndex = i;
        ctx.wPfn = v;
        ctx.wFlags = f;
        return PENDING_WAIT;
      }
      return EFAULT; // any other entry (hwpoison...)
    }
  }
  ctx.pagesWalked += n;
  return 0;
}

/** A huge leaf (PMD or PUD) of a non-hugetlb VMA: hmm_vma_handle_pmd / absent pmd / pud. */
function walkHugeLeaf(ctx: WalkCtx, vma: Vma, addr: number, end: number): number {
  const range = ctx.range;
  const w = ctx.w;
  const f = w.flags;
  const ty = f & PTE_TYPE_MASK;
  const j = (addr - range.start) / PAGE_SIZE;
  const n = (end - addr) / PAGE_SIZE;
  const off = (addr - w.leafStart) / PAGE_SIZE;
  ctx.pagesWalked += n;
  if (ty === PTE_PRESENT) {
    const cpu = f & PTE_R ? HMM_PFN_VALID | (f & PTE_W ? HMM_PFN_WRITE : 0) | w.order : 0;
    const required = rangeNeedFault(range, j, n, cpu);
    if (required) return vmaFault(ctx, vma, addr, end, required);
    fillPfns(range, j, n, w.val + off, cpu);
    return 0;
  }
  if (ty === PTE_MIGRATION) {
    if (rangeNeedFault(range, j, n, 0)) {
      ctx.last = addr;
      ctx.wTable = w.kind === WALK_PMD_LEAF ? w.pmd : null;
      ctx.wIndex = w.slot;
      ctx.wPfn = w.val;
      ctx.wFlags = f;
      return PENDING_WAIT;
    }
    fill(range, j, n, 0);
    return 0;
  }
  if (ty === PTE_DEVICE_PRIVATE && ownedDevicePrivate(ctx.mm, range.devPrivateOwner, w.val)) {
    fillPfns(range, j, n, w.val + off, HMM_PFN_VALID | (f & PTE_W ? HMM_PFN_WRITE : 0) | w.order);
    return 0;
  }
  const required = rangeNeedFault(range, j, n, 0);
  if (required) {
    if (ty === PTE_DEVICE_PRIVATE) return vmaFault(ctx, vma, addr, end, required);
    return EFAULT;
  }
  fill(range, j, n, HMM_PFN_ERROR);
  return 0;
}

/**
 * hmm_vma_walk_hugetlb_entry(): one huge page, present or none (`f` 0); only the request of its
 * first page in the range counts (`range->hmm_pfns[i]` with i the index of `start`), as in
 * every kernel since 5.7: REQ_FAULT on a later page alone faults nothing.
 */
function walkHugetlb(ctx: WalkCtx, vma: Vma, addr: number, end: number, order: number, f: number): number {
  const range = ctx.range;
  const w = ctx.w;
  const j = (addr - range.start) / PAGE_SIZE;
  const n = (end - addr) / PAGE_SIZE;
  ctx.pagesWalked += n;
  const present = (f & (PTE_TYPE_MASK | PTE_R)) === (PTE_PRESENT | PTE_R);
  const cpu = present ? HMM_PFN_VALID | (f & PTE_W ? HMM_PFN_WRITE : 0) | order : 0;
  const required = pteNeedFault(range, range.hmmFlags[j]!, cpu);
  if (required) return vmaFault(ctx, vma, addr, end, required);
  if (cpu === 0) {
    fill(range, j, n, 0);
    return 0;
  }
  fillPfns(range, j, n, w.val + (addr - w.leafStart) / PAGE_SIZE, cpu);
  return 0;
}

/** The size of a hugetlb VMA's pages (mm keeps it in privateData; 2 MiB by default). */
function hugetlbSize(vma: Vma): number {
  return typeof vma.privateData === 'number' ? vma.privateData : PMD_SIZE;
}

/** True when the table level holding a hugetlb entry of size `hsize` at `addr` exists (huge_pte_offset). */
function hugetlbSlotExists(mm: Mm, addr: number, hsize: number): boolean {
  return hsize === PUD_SIZE ? mm.pt.pudTable(addr, false) !== null : mm.pt.pmdTable(addr, false) !== null;
}

/** __walk_page_range() over one VMA (already past test_walk). */
function walkVma(ctx: WalkCtx, vma: Vma, start: number, end: number): number {
  const pt = ctx.mm.pt;
  const w = ctx.w;
  const hugetlb = (vma.flags & VM_HUGETLB) !== 0;
  const hsize = hugetlb ? hugetlbSize(vma) : 0;
  for (let addr = start; addr < end; ) {
    let uEnd = end;
    if (hugetlb) uEnd = Math.min(end, (Math.floor(addr / hsize) + 1) * hsize);
    pt.walkUnit(addr, uEnd, w);
    uEnd = w.end;
    let ret: number;
    if (w.kind === WALK_HOLE) {
      // walk_hugetlb_range(): hugetlb_walk() finds the entry's slot whenever the table holding
      // it exists (the PMD table for 2 MiB pages, the PUD table for 1 GiB ones) and calls
      // hugetlb_entry with a none entry; only a missing table is a pte_hole
      if (hugetlb && hugetlbSlotExists(ctx.mm, addr, hsize)) {
        ret = walkHugetlb(ctx, vma, addr, uEnd, hsize === PUD_SIZE ? 18 : 9, 0);
      } else ret = walkHole(ctx, vma, addr, uEnd);
    } else if (hugetlb && w.kind !== WALK_PTE) ret = walkHugetlb(ctx, vma, addr, uEnd, w.order, w.flags);
    else if (w.kind === WALK_PTE) ret = walkPtes(ctx, vma, addr, uEnd);
    else ret = walkHugeLeaf(ctx, vma, addr, uEnd);
    if (ret !== 0) return ret;
    addr = uEnd;
  }
  return 0;
}

/** walk_page_range() with hmm's ops: VMAs, gaps (pte_hole with no VMA) and test_walk. */
function walkRange(ctx: WalkCtx, start: number, end: number): number {
  const mm = ctx.mm;
  const range = ctx.range;
  let vma = mm.findVma(start);
  let addr = start;
  while (addr < end) {
    let next: number;
    let ret: number;
    if (vma === null || addr < vma.start) {
      next = vma === null ? end : Math.min(end, vma.start);
      ret = walkHole(ctx, null, addr, next);
    } else {
      next = Math.min(end, vma.end);
      const cur = vma;
      vma = mm.findVma(cur.end);
      if (!(cur.flags & (VM_IO | VM_PFNMAP)) && cur.flags & VM_READ) {
        ret = walkVma(ctx, cur, addr, next);
      } else {
        // hmm_vma_walk_test(): no struct pages / no read access: -EFAULT if asked, else ERROR
        const j = (addr - range.start) / PAGE_SIZE;
        const n = (next - addr) / PAGE_SIZE;
        ctx.pagesWalked += n;
        if (rangeNeedFault(range, j, n, 0)) ret = EFAULT;
        else {
          fill(range, j, n, HMM_PFN_ERROR);
          ret = 0;
        }
      }
    }
    if (ret !== 0) return ret;
    addr = next;
  }
  return 0;
}

/** Waits for a migration entry to go away (migration_entry_wait / pmd_migration_entry_wait). */
async function migrationEntryWait(ctx: WalkCtx): Promise<void> {
  const p = ctx.mm.phys;
  const t = ctx.wTable;
  const i = ctx.wIndex;
  const pfn = ctx.wPfn;
  const f = ctx.wFlags;
  ctx.wTable = null;
  const head = p.compoundHead(pfn);
  if (!p.isPageLocked(head)) {
    // Linux would sleep on a migration entry whose page is unlocked only for an instant
    if (++ctx.unlockedWaits > 1000) {
      throw new StateError('hmmRangeFault', `migration entry for pfn ${pfn} whose page is not locked`);
    }
    return;
  }
  ctx.unlockedWaits = 0;
  await p.pageLockWq.waitEvent(
    () => !p.isPageLocked(head) || (t !== null && (t.flags[i] !== f || t.val[i] !== pfn)),
  );
}

/** The mm of a range's notifier, validated. */
function rangeMm(fn: string, range: HmmRange): Mm {
  const mm = range.notifier?.mm;
  if (!(mm instanceof Mm)) {
    throw new ArgumentError(fn, 'range.notifier', 'must be an interval notifier inserted on an Mm', mm);
  }
  return mm;
}

/** Argument checks shared by hmmRangeFault and hmmRangeFaultLocked (nothing is changed before). */
function checkRange(fn: string, range: HmmRange): Mm {
  if (!(range instanceof HmmRange)) throw new ArgumentError(fn, 'range', 'must be an HmmRange', range);
  const mm = rangeMm(fn, range);
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || start < 0 || start % PAGE_SIZE !== 0) {
    throw new ArgumentError(fn, 'range.start', 'must be a page-aligned non-negative integer', start);
  }
  if (!Number.isSafeInteger(end) || end % PAGE_SIZE !== 0) {
    throw new ArgumentError(fn, 'range.end', 'must be a page-aligned integer', end);
  }
  const n = Math.max(0, (end - start) / PAGE_SIZE);
  if (!(range.hmmPfns instanceof Float64Array) || range.hmmPfns.length < n) {
    throw new ArgumentError(
      fn,
      'range.hmmPfns',
      `must be a Float64Array of at least ${n} entries`,
      range.hmmPfns,
    );
  }
  if (!(range.hmmFlags instanceof Uint16Array) || range.hmmFlags.length < n) {
    throw new ArgumentError(
      fn,
      'range.hmmFlags',
      `must be a Uint16Array of at least ${n} entries`,
      range.hmmFlags,
    );
  }
  for (const [name, v] of [
    ['range.defaultFlags', range.defaultFlags],
    ['range.pfnFlagsMask', range.pfnFlagsMask],
  ] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 0xffff)
      throw new ArgumentError(fn, name, 'must be a 16-bit flag set', v);
  }
  if (!Number.isSafeInteger(range.notifierSeq)) {
    throw new ArgumentError(
      fn,
      'range.notifierSeq',
      'must be a value from mmuIntervalReadBegin',
      range.notifierSeq,
    );
  }
  return mm;
}

/**
 * Models hmm_range_fault(): fills `range.hmmPfns`/`hmmFlags` for [start, end) of the notifier's
 * mm, faulting pages as the request flags (per page, `pfnFlagsMask`, `defaultFlags`) ask. The
 * caller holds the mmap lock (read or write; StateError otherwise) and keeps it. Returns 0,
 * -EBUSY (the notifier sequence moved: read_begin again and retry), -EFAULT, -EPERM, -ENOMEM
 * (a fault ran out of memory) or -EINVAL (empty range).
 */
export async function hmmRangeFault(range: HmmRange): Promise<number> {
  const fn = 'hmmRangeFault';
  const mm = checkRange(fn, range);
  if (!mm.mmapLock.isLocked) throw new StateError(fn, 'the mmap lock must be held (mmap_assert_locked)');
  const stats = hmmStats(mm.sim);
  stats.rangeFault.value++;
  if (range.start >= range.end) return -Errno.EINVAL; // walk_page_range()
  const ctx = new WalkCtx(range, mm);
  const costPerPage = mm.sim.costs.hmmWalkPerPageNs;
  for (;;) {
    if (mmuIntervalCheckRetry(range.notifier, range.notifierSeq)) {
      stats.rangeFaultBusy.value++;
      return EBUSY;
    }
    ctx.pagesWalked = 0;
    let ret = walkRange(ctx, ctx.last, range.end);
    stats.pagesWalked.add(ctx.pagesWalked);
    mm.sim.charge(ctx.pagesWalked * costPerPage);
    if (ret === PENDING_FAULT) {
      const vma = ctx.fVma!;
      ctx.fVma = null;
      const ff = FAULT_FLAG_REMOTE | (ctx.fRequired & NEED_WRITE_FAULT ? FAULT_FLAG_WRITE : 0);
      ret = EBUSY;
      for (let a = ctx.fStart; a < ctx.fEnd; a += PAGE_SIZE) {
        stats.pagesFaulted.value++;
        const r = await mm.handleMmFault(vma, a, ff);
        if (r & VM_FAULT_ERROR) {
          ret = r & VM_FAULT_OOM ? -Errno.ENOMEM : EFAULT; // vm_fault_to_errno()
          break;
        }
      }
    } else if (ret === PENDING_WAIT) {
      await migrationEntryWait(ctx);
      ret = EBUSY;
    }
    if (ret !== EBUSY) return ret;
    stats.rangeFaultRewalk.value++;
  }
}

/** Options of {@link hmmRangeFaultLocked}. */
export interface HmmRangeFaultLockedOptions {
  /** Retry budget in ns of virtual time (default HMM_RANGE_DEFAULT_TIMEOUT ms; 0 = forever). */
  timeoutNs?: number;
}

async function driverLockTake(l: Mutex | RwSemaphore): Promise<void> {
  if (l instanceof Mutex) await l.lock();
  else await l.read();
}

function driverLockRelease(l: Mutex | RwSemaphore): void {
  if (l instanceof Mutex) l.unlock();
  else l.readUnlock();
}

/**
 * Beyond Linux: the canonical driver loop of Documentation/mm/hmm.rst in one call, the pattern
 * reviewers keep asking drivers to get right. mmget_not_zero (else -EFAULT) → loop {
 * notifierSeq = mmuIntervalReadBegin → mmap read lock → hmmRangeFault → unlock → -EBUSY: retry
 * while within the timeout (then -EBUSY), other errors returned → take `driverLock` (a Mutex, or
 * an RwSemaphore for read: the invalidate callback takes it for write) →
 * mmuIntervalReadRetry: unlock and retry } → mmput. Returns 0 with `driverLock` HELD and the
 * pfns valid until the caller releases it, or an error with the lock released. The caller must
 * not hold the mmap lock.
 */
export async function hmmRangeFaultLocked(
  range: HmmRange,
  driverLock: Mutex | RwSemaphore,
  opts: HmmRangeFaultLockedOptions = {},
): Promise<number> {
  const fn = 'hmmRangeFaultLocked';
  const mm = checkRange(fn, range);
  if (!(driverLock instanceof Mutex) && !(driverLock instanceof RwSemaphore)) {
    throw new ArgumentError(fn, 'driverLock', 'must be a Mutex or an RwSemaphore', driverLock);
  }
  const timeoutNs = opts.timeoutNs ?? HMM_RANGE_DEFAULT_TIMEOUT * 1e6;
  if (!Number.isFinite(timeoutNs) || timeoutNs < 0) {
    throw new ArgumentError(fn, 'opts.timeoutNs', 'must be a finite non-negative number', timeoutNs);
  }
  if (!mm.mmgetNotZero()) return EFAULT;
  const sim = mm.sim;
  const stats = hmmStats(sim);
  const deadline = sim.now + timeoutNs;
  // hmmFlags is both the request (input) and the result (output): a pass that returned -EBUSY,
  // or whose result a collision voided, has overwritten requests with results (VALID reads as
  // REQ_FAULT, WRITE as REQ_WRITE). Every retry starts again from the caller's requests.
  const requests = range.pfnFlagsMask === 0 ? null : range.hmmFlags.slice();
  try {
    for (let first = true; ; first = false) {
      if (!first) {
        stats.lockedRetries.value++;
        if (timeoutNs !== 0 && sim.now > deadline) return EBUSY;
        if (requests !== null) range.hmmFlags.set(requests);
      }
      range.notifierSeq = await mmuIntervalReadBegin(range.notifier);
      await mm.mmapLock.read();
      let ret: number;
      try {
        ret = await hmmRangeFault(range);
      } finally {
        mm.mmapLock.readUnlock();
      }
      if (ret === EBUSY) continue;
      if (ret !== 0) return ret;
      await driverLockTake(driverLock);
      if (mmuIntervalReadRetry(range.notifier, range.notifierSeq)) {
        driverLockRelease(driverLock);
        continue;
      }
      return 0;
    }
  } finally {
    await mm.mmput();
  }
}
