/**
 * The GPU fault path (xe_svm_handle_pagefault): collect garbage → find or insert the range (drm_gpusvm_range_find_or_insert, the granule policy) → migrate when the policy says so → get pages → bind; retried while an invalidation races it.
 *
 * @module
 */

import { ACCESS } from '@hmmkit/gpu';
import { HMM_PFN_WRITE } from '@hmmkit/hmm';
import { alignDown, PTE_PRESENT, pteType, VM_WRITE, WALK_HOLE, WALK_PTE } from '@hmmkit/mm';
import { Errno } from '@hmmkit/sim';
import { atomicNeed, pageInOwnVram } from './atomic.ts';
import { attrFlags, deviceLoc, SVM_FLAG } from './attrs.ts';
import { bindRange } from './bind.ts';
import { exclusiveAtomic, exclusiveAtomicFault, pageExclusiveMapped } from './exclusive.ts';
import { rangeGetPages } from './get-pages.ts';
import type { GpuSvm } from './gpusvm.ts';
import {
  checkGranuleChoice,
  type FaultContext,
  isGranuleError,
  PAGE_SIZE,
  type Span,
  SZ_2M,
} from './granule.ts';
import { migrateToDevice, wantsMigration } from './migrate.ts';
import { notifierSpan } from './notifier-policy.ts';
import { type PageMask, pageMaskNew } from './page-mask.ts';
import {
  garbageCollectLocked,
  nextRange,
  notifierFindOrInsert,
  rangeAtOrAfter,
  SvmRange,
  sortedInsert,
} from './range.ts';

/** What {@link rangeFindOrInsert} found: the range and the span (and page mask) to fault now. */
export interface FoundRange {
  readonly range: SvmRange;
  readonly faultStart: number;
  readonly faultEnd: number;
  readonly pages: PageMask | null;
  /** Fault for write (drm_gpusvm: the VMA is writable; nouveau: a write access). */
  readonly write: boolean;
  /** Anonymous, non-hugetlb VMA: the pages may migrate to device memory. */
  readonly anon: boolean;
}

const MAX_FAULT_TRIES = 16;

/**
 * {@link handleFault} with the batch's view of the 2 MiB VA block around `va`: `faulted` = the
 * block's pages faulted in this batch (null: just `va`), `faultMigrations` = faults migrated in
 * this block before the batch (UVM's min_faults counter). Both go to the granule policy.
 */
export async function handleFaultIn(
  svm: GpuSvm,
  devIndex: number,
  va: number,
  access: number,
  faulted: PageMask | null,
  faultMigrations: number,
): Promise<number> {
  const t = svm.mm.sim.trace;
  const devId = svm.devices[devIndex]!.id;
  if (t.wants('svm.pagefault.start')) t.emit('svm.pagefault.start', devId, va, access);
  await svm.lock.lock();
  try {
    // fault-driven migrations to VRAM hold the SVM lock: the counter's delta is this fault's
    const before = svm.c.migrateToVramPages.value;
    const ret = await faultLocked(svm, devIndex, va, access, faulted, faultMigrations, true);
    if (t.wants('svm.pagefault.end')) {
      t.emit('svm.pagefault.end', devId, va, svm.c.migrateToVramPages.value - before, ret);
    }
    return ret;
  } finally {
    svm.lock.unlock();
  }
}

/**
 * The body of xe_svm_handle_pagefault() (SVM lock held): collect garbage → find or insert the
 * range → migrate to VRAM when the policy says so and `mayMigrate` → get pages → bind on
 * `devIndex` and on the range's accessedBy devices. Retries while an invalidation races it.
 * Leaves the end of the span it mapped in {@link lastFaultEnd}.
 */
export async function faultLocked(
  svm: GpuSvm,
  devIndex: number,
  va: number,
  access: number,
  faulted: PageMask | null,
  faultMigrations: number,
  mayMigrate: boolean,
): Promise<number> {
  for (let tries = 0; tries < MAX_FAULT_TRIES; tries++) {
    if (tries > 0) svm.c.faultRetries.value++;
    await garbageCollectLocked(svm);
    const found = await rangeFindOrInsert(svm, devIndex, va, access, faulted, faultMigrations);
    if (found === -Errno.EAGAIN) continue;
    if (typeof found === 'number') return found;
    const { range, faultStart, faultEnd, pages, write } = found;
    svm.lastFaultEnd = faultEnd;
    const i = Math.floor((va - range.start) / PAGE_SIZE);
    const wantW = access === ACCESS.WRITE || access === ACCESS.ATOMIC;
    // xe: an atomic that needs VRAM (atomic.ts) migrates even against the preferred location
    const needVram = atomicNeed(svm, devIndex, va, access) === 1;
    // nouveau: a GPU atomic on a system page needs it device-exclusive (exclusive.ts)
    const excl = exclusiveAtomic(svm, va, access);
    if (
      (!needVram || pageInOwnVram(svm, devIndex, range, i)) &&
      (!excl || pageInOwnVram(svm, devIndex, range, i) || pageExclusiveMapped(range, devIndex, i)) &&
      range.pageValid[i] === 1 &&
      (range.devMap[i]! & (1 << devIndex)) !== 0 &&
      (!wantW || (range.flags[i]! & HMM_PFN_WRITE) !== 0)
    ) {
      return 0; // a fault of the same batch already handled this page
    }
    if (needVram && !pageInOwnVram(svm, devIndex, range, i)) {
      // xe_svm_handle_pagefault with devmem_only: no fallback to system memory
      const m = found.anon
        ? await migrateToDevice(svm, devIndex, faultStart, faultEnd, pages, true)
        : -Errno.EACCES;
      if (m < 0) {
        svm.c.migrateFailures.value++;
        return m;
      }
    } else if (
      mayMigrate &&
      found.anon &&
      wantsMigration(svm, devIndex, range, va, faultStart, faultEnd, pages)
    ) {
      // xe: migrate to VRAM first; a failure falls back to system memory
      const m = await migrateToDevice(svm, devIndex, faultStart, faultEnd, pages, true);
      if (m < 0) svm.c.migrateFailures.value++;
    }
    if (excl && !pageInOwnVram(svm, devIndex, range, i)) {
      // where is the page? (a page of our VRAM takes atomics there, with the usual bind)
      if (range.pageValid[i] !== 1) {
        const g = await rangeGetPages(svm, devIndex, range, faultStart, faultEnd, pages, write);
        if (g === -Errno.EBUSY || g === -Errno.EAGAIN) continue;
        if (g !== 0) return g;
      }
      if (!pageInOwnVram(svm, devIndex, range, i)) {
        // nouveau_atomic_range_fault: make_device_exclusive (a device page comes back to RAM)
        const x = await exclusiveAtomicFault(svm, devIndex, range, va);
        if (x === -Errno.EAGAIN) continue;
        return x;
      }
    }
    const ret = await rangeGetPages(svm, devIndex, range, faultStart, faultEnd, pages, write);
    if (ret === -Errno.EBUSY || ret === -Errno.EAGAIN) continue;
    if (ret !== 0) return ret;
    const b = await bindRange(svm, range, devIndex, i, wantW);
    if (b === -Errno.EAGAIN) continue;
    return b;
  }
  return -Errno.EAGAIN;
}

/**
 * Models drm_gpusvm_range_find_or_insert(): finds or creates the notifier (per policy) and the
 * range (granule policy). Returns the range and the span to fault, or a negative errno.
 */
export async function rangeFindOrInsert(
  svm: GpuSvm,
  devIndex: number,
  va: number,
  access: number,
  faulted: PageMask | null = null,
  faultMigrations = 0,
): Promise<FoundRange | number> {
  if (va < svm.mmStart || va >= svm.mmEnd) return -Errno.EINVAL;
  if (!svm.mm.mmgetNotZero()) return -Errno.EFAULT;
  try {
    const win = svm.notifierPolicy.window(va, svm.mmStart, svm.mmEnd);
    await svm.mm.mmapLock.read();
    let ctx: FaultContext;
    let write: boolean;
    let anon: boolean;
    try {
      const vma = svm.mm.vmaLookup(va);
      if (vma === null) return -Errno.ENOENT;
      // a GPU VM with buffer objects: no mirror here (xe_vm_find_vma_by_addr found no mirror VMA)
      if (svm.mirrorSpan !== null && svm.mirrorSpan(va) === null) return -Errno.EFAULT;
      const wantW = access === ACCESS.WRITE || access === ACCESS.ATOMIC;
      const vmaW = (vma.flags & VM_WRITE) !== 0;
      if (wantW && !vmaW) return -Errno.EPERM;
      // amdkfd GPU_RO: a GPU write is refused, not serviced as a write (the range is mapped read-only)
      if (wantW && (attrFlags(svm.attrs.lookup(va)) & SVM_FLAG.GPU_RO) !== 0) return -Errno.EPERM;
      // xe DRM_XE_ATOMIC_CPU: a GPU atomic is refused (xe_vma_need_vram_for_atomic → -EACCES)
      if (atomicNeed(svm, devIndex, va, access) < 0) return -Errno.EACCES;
      write = svm.faultWrite === 'vma' ? vmaW : wantW;
      anon = vma.isAnonymous && !vma.isHugetlb;
      ctx = faultContext(
        svm,
        devIndex,
        va,
        access,
        vma.start,
        vma.end,
        vma.flags,
        win,
        faulted,
        faultMigrations,
      );
    } finally {
      svm.mm.mmapLock.readUnlock();
    }
    // A range unmapped (or retired) but not yet collected still holds va: collect it and retry
    // rather than have the policy place a new range over it.
    const stale = rangeAtOrAfter(svm, va);
    if (stale !== null && stale.start <= va && stale.unmapped) return -Errno.EAGAIN;
    const r = checkGranuleChoice('GpuSvm.handleFault', svm.granule, ctx, svm.granule.choose(ctx));
    if (isGranuleError(r)) return r.error;
    let range = svm.rangeFind(va);
    if (range === null) {
      if (svm.existing.overlaps(r.start, r.end)) return -Errno.EINVAL;
      const nspan = notifierSpan(svm.notifierPolicy, va, r, svm.mmStart, svm.mmEnd);
      const n = await notifierFindOrInsert(svm, nspan);
      if (typeof n === 'number') return n;
      range = new SvmRange(r.start, r.end, n);
      range.node = n.ranges.insert(r.start, r.end - 1, range);
      sortedInsert(svm, range);
      svm.c.rangesCreated.value++;
    }
    const faultStart = Math.max(r.faultStart, range.start);
    const faultEnd = Math.min(r.faultEnd, range.end);
    return { range, faultStart, faultEnd, pages: r.pages, write, anon };
  } finally {
    await svm.mm.mmput();
  }
}

/**
 * The policy input for one fault. The residency fields (the block's pages this device maps, and
 * whether any page of the block is resident) cost a pass over every range of the 2 MiB block, so
 * they are computed on first read, once; a policy reads them inside `choose`, which runs with no
 * scheduling point between the context's construction and its return (the same state either way).
 */
class LazyFaultContext implements FaultContext {
  readonly va: number;
  readonly access: FaultContext['access'];
  readonly vmaStart: number;
  readonly vmaEnd: number;
  readonly vmaFlags: number;
  readonly windowStart: number;
  readonly windowEnd: number;
  readonly gpuvaStart: number;
  readonly gpuvaEnd: number;
  readonly ranges: FaultContext['ranges'];
  readonly cpuMapOrder: number;
  readonly destination: number;
  readonly faulted: PageMask | null;
  readonly thrashing: PageMask | null;
  readonly faultMigrations: number;
  readonly attrs: FaultContext['attrs'];
  readonly attrStart: number;
  readonly attrEnd: number;
  readonly checkPages: (start: number, end: number) => boolean;
  private readonly svm: GpuSvm;
  private readonly devIndex: number;
  private scanned = false;
  private mask: PageMask | null = null;
  private anywhere = false;

  constructor(
    svm: GpuSvm,
    devIndex: number,
    va: number,
    access: number,
    vmaStart: number,
    vmaEnd: number,
    vmaFlags: number,
    win: Span,
    faulted: PageMask | null,
    faultMigrations: number,
  ) {
    const blockStart = alignDown(va, SZ_2M);
    const iv = svm.attrs.intervalAt(va);
    const span = svm.mirrorSpan?.(va);
    this.svm = svm;
    this.devIndex = devIndex;
    this.va = va;
    this.access = access as FaultContext['access'];
    this.vmaStart = vmaStart;
    this.vmaEnd = vmaEnd;
    this.vmaFlags = vmaFlags;
    this.windowStart = win.start;
    this.windowEnd = win.end;
    this.gpuvaStart = Math.max(svm.mmStart, span?.start ?? 0);
    this.gpuvaEnd = Math.min(
      svm.mmEnd,
      2 ** svm.devices[devIndex]!.format.vaBits,
      span?.end ?? Number.MAX_SAFE_INTEGER,
    );
    this.ranges = svm.existing;
    this.cpuMapOrder = cpuMapOrder(svm, va);
    this.destination = deviceLoc(devIndex);
    this.faulted = faulted;
    this.thrashing = thrashingMask(svm, blockStart);
    this.faultMigrations = faultMigrations;
    this.attrs = iv.attrs;
    this.attrStart = iv.start;
    this.attrEnd = iv.end;
    this.checkPages = (s, e) => cpuPagesPresent(svm, s, e);
  }

  get residency(): PageMask | null {
    if (!this.scanned) this.scan();
    return this.mask;
  }

  get residentAnywhere(): boolean {
    if (!this.scanned) this.scan();
    return this.anywhere;
  }

  /** One pass over the ranges of the block: residency at the destination = pages this device maps. */
  private scan(): void {
    const svm = this.svm;
    const blockStart = alignDown(this.va, SZ_2M);
    const bit = 1 << this.devIndex;
    const lo = Math.max(blockStart, svm.mmStart);
    let mask: PageMask | null = null;
    let anywhere = false;
    for (let r = rangeAtOrAfter(svm, lo); r !== null && r.start < blockStart + SZ_2M; r = nextRange(svm, r)) {
      const a = Math.max(r.start, blockStart);
      const b = Math.min(r.end, blockStart + SZ_2M);
      for (let p = a; p < b; p += PAGE_SIZE) {
        const i = (p - r.start) / PAGE_SIZE;
        if (r.pageValid[i] === 1) anywhere = true;
        if (r.pageValid[i] === 1 && (r.devMap[i]! & bit) !== 0) {
          mask ??= pageMaskNew();
          const j = (p - blockStart) / PAGE_SIZE;
          mask[j >> 5] = mask[j >> 5]! | (1 << (j & 31));
        }
      }
    }
    this.mask = mask;
    this.anywhere = anywhere;
    this.scanned = true;
  }
}

/**
 * Builds the policy input for a fault (mmap lock held); `faulted` and `faultMigrations` are the
 * batch's view of the block (null and 0 for a single fault).
 */
export function faultContext(
  svm: GpuSvm,
  devIndex: number,
  va: number,
  access: number,
  vmaStart: number,
  vmaEnd: number,
  vmaFlags: number,
  win: Span,
  faulted: PageMask | null = null,
  faultMigrations = 0,
): FaultContext {
  return new LazyFaultContext(
    svm,
    devIndex,
    va,
    access,
    vmaStart,
    vmaEnd,
    vmaFlags,
    win,
    faulted,
    faultMigrations,
  );
}

/** Thrashing pages of the block, or null. */
export function thrashingMask(svm: GpuSvm, blockStart: number): PageMask | null {
  if (svm.thrashing === null) return null;
  const m = pageMaskNew();
  return svm.thrashing.blockMask(blockStart, svm.mm.sim.now, m) ? m : null;
}

/** CPU map order at `va` (0 when not mapped by a huge leaf). */
export function cpuMapOrder(svm: GpuSvm, va: number): number {
  svm.mm.pt.walkUnit(va, va + PAGE_SIZE, svm.walk);
  return svm.walk.kind === WALK_HOLE || svm.walk.kind === WALK_PTE ? 0 : svm.walk.order;
}

/** drm_gpusvm_check_pages analog: every page of [s, e) has a present CPU entry. */
export function cpuPagesPresent(svm: GpuSvm, s: number, e: number): boolean {
  const w = svm.walk;
  for (let a = s; a < e; ) {
    svm.mm.pt.walkUnit(a, e, w);
    if (w.kind === WALK_HOLE) return false;
    if (w.kind === WALK_PTE) {
      const n = (w.end - a) / PAGE_SIZE;
      for (let k = 0; k < n; k++) if (pteType(w.pte!.flags[w.index + k]!) !== PTE_PRESENT) return false;
    } else if (pteType(w.flags) !== PTE_PRESENT) return false;
    a = w.end;
  }
  return true;
}
