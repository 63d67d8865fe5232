/**
 * Binding and zapping device PTEs: the commit under the notifier lock (drm_gpusvm_range_pages_valid + the driver's bind), the largest page sizes CPU map order and contiguity allow, accessedBy devices, and the batched zap the invalidation and removal paths use.
 *
 * @module
 */

import { APERTURE, PAGE_2M, PAGE_64K } from '@hmmkit/gpu';
import { HMM_PFN_WRITE, hmmPfnToMapOrder } from '@hmmkit/hmm';
import { mmuIntervalReadRetry } from '@hmmkit/notifier';
import { Errno } from '@hmmkit/sim';
import { rangeAtomicMask } from './atomic.ts';
import type { AttrUpdate } from './attr-map.ts';
import { attrFlags, type RangeAttrs, SVM_FLAG } from './attrs.ts';
import type { GpuSvm } from './gpusvm.ts';
import { PAGE_SIZE } from './granule.ts';
import { rangePatIndex } from './pat.ts';
import type { SvmRange } from './range.ts';

/** Aperture mark of a page this device cannot map (another GPU's VRAM, no peer link). */
const UNREACHABLE = -1;

/**
 * The driver's commit (drm_gpusvm's "driver_bind_range"): under the notifier lock, bind the range
 * on `devIndex` and its accessedBy devices only if its pages are still valid — not unmapped, no
 * invalidation since get_pages (read_retry on `range.notifierSeq`), page `i` valid (and writable
 * for a write). Returns 0, -EAGAIN (retry the fault), or -EPERM / -EFAULT.
 */
export async function bindRange(
  svm: GpuSvm,
  range: SvmRange,
  devIndex: number,
  i: number,
  wantW: boolean,
): Promise<number> {
  await svm.notifierLock.read();
  try {
    if (range.unmapped) return -Errno.EAGAIN;
    // the deliberately broken driver has no read_retry here either
    if (!svm.broken && mmuIntervalReadRetry(range.notifier.sub, range.notifierSeq)) return -Errno.EAGAIN;
    if (range.pageValid[i] !== 1 || (wantW && (range.flags[i]! & HMM_PFN_WRITE) === 0)) {
      return wantW ? -Errno.EPERM : -Errno.EFAULT;
    }
    bindLocked(svm, range, devIndex);
    bindAccessedByLocked(svm, range, devIndex);
    range.lastUse = svm.mm.sim.now;
    return 0;
  } finally {
    svm.notifierLock.readUnlock();
  }
}

/**
 * Honours accessedBy (amdkfd maps a range on every GPU of its access bitmap when it validates
 * it; UVM keeps accessed-by mappings wherever the data lives): binds the range's valid pages on
 * each accessedBy device other than `devIndex` that can reach them — system pages always,
 * another GPU's VRAM only in peer mode (notifier lock held).
 */
export function bindAccessedByLocked(svm: GpuSvm, range: SvmRange, devIndex: number): void {
  const acc = svm.attrs.lookup(range.start).accessedBy;
  if (acc === 0) return;
  for (let k = 0; k < svm.devices.length; k++) {
    if (k === devIndex || (acc & (2 ** k)) === 0 || !canReach(svm, range, k)) continue;
    bindLocked(svm, range, k);
  }
}

/** Whether device `k` can map every valid page of the range (no other GPU's VRAM unless peer). */
export function canReach(svm: GpuSvm, range: SvmRange, k: number): boolean {
  if (svm.peer) return true;
  for (let i = 0; i < range.npages; i++) {
    if (range.pageValid[i] !== 1) continue;
    const e = svm.devmemIndexOf(range.pfns[i]!);
    if (e >= 0 && e !== k) return false;
  }
  return true;
}

/**
 * Programs device `devIndex`'s PTEs for every valid page of the range (notifier lock held):
 * unmaps what the device had there, then maps with the largest page size the CPU map order,
 * physical contiguity and alignment allow; one batched update.
 */
export function bindLocked(svm: GpuSvm, range: SvmRange, devIndex: number): void {
  const dev = svm.devices[devIndex]!;
  const bit = 1 << devIndex;
  const u = dev.beginUpdate(svm.ptUpdate);
  const pt = dev.pageTable;
  const sizes = dev.format.pageSizes;
  const can2M = svm.largePages && sizes.includes(PAGE_2M);
  const can64K = svm.largePages && sizes.includes(PAGE_64K);
  const off = svm.gpuVaOffset; // device PTEs live at GPU VA = CPU VA + offset
  if ((range.devMapped & bit) !== 0) {
    pt.unmap(range.start + off, range.end - range.start, u.pt);
    u.tlb.invalidate(range.start + off, range.end - range.start);
  }
  const n = range.npages;
  // amdkfd GPU_RO: the device maps the range read-only (a range never straddles an attribute change)
  const gpuRo = (attrFlags(svm.attrs.lookup(range.start)) & SVM_FLAG.GPU_RO) !== 0;
  // Per page: device address and aperture (SYS = CPU page, VID = own VRAM, PEER = another GPU).
  const pa = new Float64Array(n);
  const ap = new Int8Array(n);
  const peer = new Int8Array(n);
  const now = svm.mm.sim.now;
  const bind = svm.c.binds.value;
  for (let i = 0; i < n; i++) {
    if (range.pageValid[i] !== 1) continue;
    const pfn = range.pfns[i]!;
    const e = svm.devmemIndexOf(pfn);
    if (e < 0) {
      pa[i] = pfn * PAGE_SIZE;
      ap[i] = APERTURE.SYS;
    } else if (e !== devIndex && !svm.peer) {
      // Another GPU's VRAM without a peer link (recorded by that GPU's get_pages): not mapped
      // here; this device's own fault on it faults it back to system memory first.
      ap[i] = UNREACHABLE;
    } else {
      const sd = svm.devmem[e]!;
      pa[i] = sd.pfnToPa(pfn);
      ap[i] = e === devIndex ? APERTURE.VID : APERTURE.PEER;
      peer[i] = svm.devices[e]!.id;
      sd.touch(pfn, now, bind); // last use and frequency, for the eviction policy
    }
  }
  // xe atomic attribute: per page, whether the PTE may enable atomics (null: all may)
  const atom = rangeAtomicMask(svm, devIndex, range);
  const patIdx = rangePatIndex(svm, range); // xe pat_index per page (null: all 0)
  for (let i = 0; i < n; ) {
    if (range.pageValid[i] !== 1 || ap[i] === UNREACHABLE) {
      range.devMap[i] = range.devMap[i]! & ~bit;
      i++;
      continue;
    }
    const va = range.start + i * PAGE_SIZE;
    const w = (range.flags[i]! & HMM_PFN_WRITE) !== 0 && !gpuRo;
    let pages = 1;
    // System memory needs the CPU to map a 2M folio (map order); device memory only contiguity.
    const orderOk = ap[i] !== APERTURE.SYS || hmmPfnToMapOrder(range.flags[i]!) >= 9;
    if (
      can2M &&
      orderOk &&
      va % PAGE_2M === 0 &&
      i + 512 <= n &&
      contiguous(range, pa, ap, i, 512, w, atom, patIdx)
    ) {
      pages = 512;
    }
    if (
      pages === 1 &&
      can64K &&
      va % PAGE_64K === 0 &&
      i + 16 <= n &&
      contiguous(range, pa, ap, i, 16, w, atom, patIdx)
    ) {
      pages = 16;
    }
    const size = pages * PAGE_SIZE;
    const aperture = ap[i] as (typeof APERTURE)[keyof typeof APERTURE];
    const atomic = atom === null || atom[i] === 1;
    const pat = patIdx === null ? 0 : patIdx[i]!;
    const attrs =
      aperture === APERTURE.PEER
        ? { aperture, writable: w, atomic, pat, peerId: peer[i]! }
        : { aperture, writable: w, atomic, pat };
    pt.map(va + off, size, pa[i]!, attrs, u.pt);
    for (let k = 0; k < pages; k++) range.devMap[i + k] = range.devMap[i + k]! | bit;
    if (pages === 512) svm.c.pte2m.value++;
    else if (pages === 16) svm.c.pte64k.value++;
    else svm.c.pte4k.value++;
    i += pages;
  }
  u.end();
  range.devMapped |= bit;
  svm.c.binds.value++;
}

/** Pages [i, i+n) are valid, one aperture, contiguous and n-aligned in device address, one permission. */
export function contiguous(
  range: SvmRange,
  pa: Float64Array,
  ap: Int8Array,
  i: number,
  n: number,
  w: boolean,
  atom: Uint8Array | null = null,
  patIdx: Uint8Array | null = null,
): boolean {
  const p0 = pa[i]!;
  if (p0 % (n * PAGE_SIZE) !== 0) return false;
  for (let k = 1; k < n; k++) {
    if (range.pageValid[i + k] !== 1 || ap[i + k] !== ap[i] || pa[i + k] !== p0 + k * PAGE_SIZE) return false;
    if (((range.flags[i + k]! & HMM_PFN_WRITE) !== 0) !== w) return false;
    if (atom !== null && atom[i + k] !== atom[i]) return false;
    if (patIdx !== null && patIdx[i + k] !== patIdx[i]) return false;
  }
  return true;
}

/**
 * Applies `update` to the attributes of `[start, end)` and, when `key` of the attributes changed
 * anywhere in the span, zaps the device PTEs of every mapped range over it (SVM lock, then the
 * notifier lock for write), so the next access faults and binds under the new attributes — what
 * xe's madvise and amdkfd's svm_range_set_attr do. Returns the number of ranges zapped (0 when
 * nothing changed). Bad updates throw from the attribute map before anything changes.
 */
export async function adviseAndZap(
  svm: GpuSvm,
  start: number,
  end: number,
  update: AttrUpdate,
  key: (a: RangeAttrs) => number,
): Promise<number> {
  const before = svm.attrs.segments(start, end);
  svm.attrs.advise(start, end, update);
  const after = svm.attrs.segments(start, end);
  // compare page by page through both interval lists
  let changed = false;
  for (let i = 0, j = 0, va = start; va < end && !changed; ) {
    while (before[i]!.end <= va) i++;
    while (after[j]!.end <= va) j++;
    if (key(before[i]!.attrs) !== key(after[j]!.attrs)) changed = true;
    va = Math.min(before[i]!.end, after[j]!.end);
  }
  if (!changed) return 0;
  await svm.lock.lock();
  try {
    const hit: SvmRange[] = [];
    for (const r of svm.sorted) if (r.start < end && r.end > start && r.devMapped !== 0) hit.push(r);
    await svm.notifierLock.write();
    try {
      zapRangesLocked(svm, hit);
    } finally {
      svm.notifierLock.writeUnlock();
    }
    return hit.length;
  } finally {
    svm.lock.unlock();
  }
}

/** Zaps every device PTE of the ranges (one batched update per device) and drops their pages. */
export function zapRangesLocked(svm: GpuSvm, ranges: readonly SvmRange[]): void {
  let devs = 0;
  for (const r of ranges) devs |= r.devMapped;
  for (let d = 0; d < svm.devices.length; d++) {
    if ((devs & (1 << d)) === 0) continue;
    const dev = svm.devices[d]!;
    const u = dev.beginUpdate(svm.ptUpdate);
    for (const r of ranges) {
      if ((r.devMapped & (1 << d)) === 0) continue;
      dev.pageTable.unmap(r.start + svm.gpuVaOffset, r.end - r.start, u.pt);
      u.tlb.invalidate(r.start + svm.gpuVaOffset, r.end - r.start);
    }
    u.end();
  }
  for (const r of ranges) {
    r.devMapped = 0;
    r.pageValid.fill(0);
    r.devMap.fill(0);
    r.exclusive?.fill(0);
    // What get_pages recorded is void: a bind racing this zap (eviction and madvise zap outside
    // the notifier, with no sequence bump) must retry, not find its page gone (-EPERM).
    r.notifierSeq = -1;
  }
}
