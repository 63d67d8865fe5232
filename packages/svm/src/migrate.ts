/**
 * Device memory: migration to VRAM (migrate_vma SELECT_SYSTEM, one per run of moved pages), migrate_to_ram (dev_pagemap_ops), device-to-device through system memory, eviction through the eviction policy, and explicit prefetch (which also maps).
 *
 * @module
 */

import { ACCESS, type GpuDevice } from '@hmmkit/gpu';
import {
  MIGRATE_PFN_COMPOUND,
  MIGRATE_PFN_MIGRATE,
  MIGRATE_VMA_SELECT_COMPOUND,
  MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
  MIGRATE_VMA_SELECT_SYSTEM,
  MigrateVma,
  migrateDeviceFinalize,
  migrateDevicePages,
  migrateDeviceRange,
  migratePfn,
  migratePfnFlags,
  migratePfnToPfn,
  migrateVmaFinalize,
  migrateVmaPages,
  migrateVmaSetup,
} from '@hmmkit/hmm';
import {
  alignDown,
  FAULT_FLAG_REMOTE,
  VM_FAULT_SIGBUS,
  VM_HUGETLB,
  VM_SPECIAL,
  type VmFault,
} from '@hmmkit/mm';
import { ArgumentError, Errno } from '@hmmkit/sim';
import { deviceLoc, LOC, locDevice } from './attrs.ts';
import { zapRangesLocked } from './bind.ts';
import type { SvmDeviceMemory } from './devmem.ts';
import { copyBackFolio, FOLIO_PAGES, fillDeviceFolio, folioEntry } from './devthp.ts';
import { MIGRATE_TRIGGER, UNMAP_TRIGGER } from './events.ts';
import { lruChunkEviction } from './eviction.ts';
import { faultLocked } from './fault.ts';
import type { GpuSvm } from './gpusvm.ts';
import { PAGE_SIZE, type Span, SZ_2M } from './granule.ts';
import { withMigration } from './invalidate.ts';
import { type PageMask, pageMaskTest } from './page-mask.ts';
import type { SvmRange } from './range.ts';
import { grant } from './xnack.ts';

/** Whether a fault of device `devIndex` should first migrate its span to that device's VRAM. */
export function wantsMigration(
  svm: GpuSvm,
  devIndex: number,
  range: SvmRange,
  va: number,
  fs: number,
  fe: number,
  pages: PageMask | null,
): boolean {
  if (svm.devmem.length === 0 || svm.migrateMode === 'never') return false;
  const a = svm.attrs.lookup(va);
  if (a.readMostly) return false;
  const here = deviceLoc(devIndex);
  if (
    svm.migrateMode === 'preferred'
      ? a.preferredLoc !== here
      : a.preferredLoc !== LOC.UNDEFINED && a.preferredLoc !== here
  ) {
    return false;
  }
  const sd = svm.devmem[devIndex]!;
  if ((fe - fs) / PAGE_SIZE > sd.nrPages) return false;
  // already there?
  const blockStart = alignDown(fs, SZ_2M);
  for (let p = fs; p < fe; p += PAGE_SIZE) {
    if (pages !== null && p - blockStart < SZ_2M && !pageMaskTest(pages, (p - blockStart) / PAGE_SIZE))
      continue;
    const i = (p - range.start) / PAGE_SIZE;
    if (range.pageValid[i] !== 1 || !sd.contains(range.pfns[i]!)) return true;
  }
  return false;
}

/**
 * Migrates `[fs, fe)` (pages in `pages` when given) to device `devIndex`'s VRAM with migrate_vma
 * (SELECT_SYSTEM): evicts chunks if the pool is short, then setup (whose MIGRATE invalidation
 * zaps the device PTEs of the pages it may move) → allocate + copy (one copy-engine transfer) →
 * pages → finalize. An explicit migration (prefetch, `record` false) also moves the span's pages
 * held by other GPUs, through system memory (KFD's svm_migrate_vram_to_vram); a fault-driven one
 * (`record`) leaves them, and get_pages faults them back to system memory as xe does. Returns
 * the number of pages moved or a negative errno.
 */
export async function migrateToDevice(
  svm: GpuSvm,
  devIndex: number,
  fs: number,
  fe: number,
  pages: PageMask | null = null,
  record = false,
  trigger: number = record ? MIGRATE_TRIGGER.GPU_FAULT : MIGRATE_TRIGGER.PREFETCH,
): Promise<number> {
  const sd = svm.devmem[devIndex];
  if (sd === undefined) return -Errno.EOPNOTSUPP;
  const n = (fe - fs) / PAGE_SIZE;
  // xe: "VRAM allocation failed, falling back": what does not fit stays in system memory, and
  // it is counted and traced, never silent
  if (!(await ensureFree(svm, devIndex, n))) migrateFallback(svm, sd, fs, n);
  const to = deviceLoc(devIndex);
  migrateStart(svm, fs, n, LOC.SYSMEM, to, trigger);
  const moved = await withMigration(svm, fs, fe, pages, () =>
    migrateToDeviceIn(svm, sd, devIndex, fs, fe, pages, record),
  );
  migrateEnd(svm, fs, n, LOC.SYSMEM, to, trigger, Math.max(moved, 0));
  return moved;
}

/** Counts a migration to VRAM short of `needed` pages at `start` and emits `svm.migrate.fallback`. */
export function migrateFallback(svm: GpuSvm, sd: SvmDeviceMemory, start: number, needed: number): void {
  svm.c.migrateFallbacks.value++;
  const t = svm.mm.sim.trace;
  if (t.wants('svm.migrate.fallback'))
    t.emit('svm.migrate.fallback', sd.dev.id, start, needed, sd.mem.freePages);
}

/** Emits `svm.migrate.start` (only when someone listens). */
export function migrateStart(
  svm: GpuSvm,
  start: number,
  pages: number,
  from: number,
  to: number,
  trigger: number,
): void {
  const t = svm.mm.sim.trace;
  if (t.wants('svm.migrate.start')) t.emit('svm.migrate.start', start, pages, from, to, trigger);
}

/** Emits `svm.migrate.end` (only when someone listens). */
export function migrateEnd(
  svm: GpuSvm,
  start: number,
  pages: number,
  from: number,
  to: number,
  trigger: number,
  moved: number,
): void {
  const t = svm.mm.sim.trace;
  if (t.wants('svm.migrate.end')) t.emit('svm.migrate.end', start, pages, from, to, trigger, moved);
}

/** Emits `svm.unmap.gpu` for every device of the `devs` bitmask (only when someone listens). */
export function unmapFromGpus(svm: GpuSvm, devs: number, start: number, end: number, trigger: number): void {
  const t = svm.mm.sim.trace;
  if (!t.wants('svm.unmap.gpu')) return;
  for (let d = 0; d < svm.devices.length; d++) {
    if ((devs & (1 << d)) !== 0) t.emit('svm.unmap.gpu', svm.devices[d]!.id, start, end, trigger);
  }
}

/** {@link migrateToDevice} after eviction, with the migration registered for the notifier. */
export async function migrateToDeviceIn(
  svm: GpuSvm,
  sd: SvmDeviceMemory,
  devIndex: number,
  fs: number,
  fe: number,
  pages: PageMask | null,
  record: boolean,
): Promise<number> {
  // With a peer interconnect (one pagemap owner for all devices) an explicit migration selects
  // the other devices' pages too and copies them device to device (drm_pagemap_migrate_to_devmem:
  // SELECT_SYSTEM | SELECT_DEVICE_PRIVATE with the pagemap's owner); without one they go through
  // system memory first (KFD's svm_migrate_vram_to_vram).
  const d2d = !record && svm.peer && svm.devmem.length > 1;
  if (!record && !d2d) await evacuateOtherDevices(svm, devIndex, fs, fe);
  // from the first allocation to finalize our device pages are locked: busy for eviction
  sd.migrationBegin();
  try {
    return await migrateRuns(svm, sd, devIndex, fs, fe, pages, record, d2d);
  } finally {
    sd.migrationEnd();
  }
}

/** The migrate_vma runs of {@link migrateToDeviceIn} (mmap read lock taken and released here). */
async function migrateRuns(
  svm: GpuSvm,
  sd: SvmDeviceMemory,
  devIndex: number,
  fs: number,
  fe: number,
  pages: PageMask | null,
  record: boolean,
  d2d: boolean,
): Promise<number> {
  const mm = svm.mm;
  const now = mm.sim.now;
  const blockStart = alignDown(fs, SZ_2M);
  // The pages to move: in the mask, and (fault-driven) not pinned by the thrashing detector.
  const want = (va: number): boolean =>
    (pages === null || va - blockStart >= SZ_2M || pageMaskTest(pages, (va - blockStart) / PAGE_SIZE)) &&
    !(record && svm.thrashing?.isThrashing(va, now) === true);
  await mm.mmapLock.read();
  try {
    const vma = mm.vmaLookup(fs);
    if (vma === null || fe > vma.end) return -Errno.EFAULT;
    // Setup collects (and hides behind migration entries) every system page of its span, moved or
    // not. A page we do not move may be in a span only if no device maps it as a system page
    // (a hole, a page on a device, a page no GPU maps): the span is cut at any other. Usually
    // that is one migrate_vma for the whole fault span, as UVM's per-region migration.
    const gapOk = (va: number): boolean => {
      const r = svm.rangeFind(va);
      if (r === null) return true;
      const i = (va - r.start) / PAGE_SIZE;
      return r.pageValid[i] !== 1 || r.devMap[i] === 0 || svm.devmemIndexOf(r.pfns[i]!) >= 0;
    };
    const runs: MigrateVma[] = [];
    let moved = 0;
    let full = false;
    const peerPages = { n: 0 };
    for (let a = fs; a < fe && !full; ) {
      while (a < fe && !want(a)) a += PAGE_SIZE;
      if (a >= fe) break;
      let b = a + PAGE_SIZE;
      for (let p = b; p < fe; p += PAGE_SIZE) {
        if (want(p)) b = p + PAGE_SIZE;
        else if (!gapOk(p)) break;
      }
      const args = new MigrateVma({
        vma,
        start: a,
        end: b,
        pgmapOwner: svm.owners[devIndex],
        flags: d2d
          ? MIGRATE_VMA_SELECT_SYSTEM | MIGRATE_VMA_SELECT_DEVICE_PRIVATE
          : MIGRATE_VMA_SELECT_SYSTEM | (svm.deviceThp ? MIGRATE_VMA_SELECT_COMPOUND : 0),
      });
      const r = await migrateVmaSetup(args);
      if (r !== 0) {
        if (runs.length === 0) return r;
        break;
      }
      runs.push(args);
      const n = fillDevicePages(svm, sd, args, record, want, peerPages);
      moved += n;
      if (sd.mem.freePages === 0) full = true; // the pool ran dry
      a = b;
    }
    // one copy-engine transfer for the whole migration (the pages from a peer's VRAM: one
    // device-to-device transfer over the link, on the destination's engines)
    if (moved > peerPages.n) await copyTime(sd.dev, (moved - peerPages.n) * PAGE_SIZE, true);
    if (peerPages.n > 0) await sd.dev.copyEngine.copyTimed(peerPages.n * PAGE_SIZE, 'd2d');
    svm.c.migrateD2dPages.add(peerPages.n);
    for (const args of runs) {
      await migrateVmaPages(args);
      await migrateVmaFinalize(args);
    }
    svm.c.migrateToVramPages.add(moved);
    return moved;
  } finally {
    mm.mmapLock.readUnlock();
  }
}

/**
 * The allocate-and-copy step of {@link migrateToDevice} for one collected span: a device page
 * per collected entry of `args` that `want`s to move (until the pool runs dry), its contents
 * copied from the system page — or, for a page another device holds (a device-to-device
 * migration over a peer link), from that device's VRAM; pages already on `sd` stay. Returns the
 * pages given a destination; `peer.n` counts those that came from a peer's VRAM.
 */
export function fillDevicePages(
  svm: GpuSvm,
  sd: SvmDeviceMemory,
  args: MigrateVma,
  record: boolean,
  want: (va: number) => boolean,
  peer: { n: number } = { n: 0 },
): number {
  const phys = svm.mm.machine.phys;
  const buf = svm.pageBuf;
  let moved = 0;
  for (let i = 0; i < args.npages; i++) {
    const e = args.src[i]!;
    if ((migratePfnFlags(e) & MIGRATE_PFN_MIGRATE) === 0) continue;
    const va = args.start + i * PAGE_SIZE;
    if (svm.deviceThp && folioEntry(svm, args, i, want)) {
      // one device folio for the 2 MiB (devthp.ts); without a free chunk the block stays
      const n = fillDeviceFolio(svm, sd, args, i, record ? (v) => recordMigration(svm, v) : null);
      if (n > 0) {
        moved += n;
        i += FOLIO_PAGES - 1;
        continue;
      }
      migrateFallback(svm, sd, va, FOLIO_PAGES); // a block of holes goes on page by page
    }
    if ((migratePfnFlags(e) & MIGRATE_PFN_COMPOUND) !== 0) continue; // a THP not wholly wanted: stays
    if (!want(va)) continue; // collected with the span, not moved: restored by finalize
    const spfn = migratePfnToPfn(e);
    const from = spfn >= 0 ? svm.devmemIndexOf(spfn) : -1;
    const src = from >= 0 ? svm.devmem[from]! : null;
    if (src === sd) continue; // already here (drm_pagemap's own_pages): finalize restores it
    const d = sd.allocPage(va, svm.poolTag);
    if (d < 0) break;
    const pa = sd.pfnToPa(d);
    if (svm.timesliceNs > 0) sd.expiresNs[d - sd.mem.start] = svm.mm.sim.now + svm.timesliceNs;
    if (src !== null) {
      // device to device: only a written page has bytes to move
      const spa = src.pfnToPa(spfn);
      if (src.dev.vram.isMaterialized(spa)) {
        src.dev.vram.read(spa, PAGE_SIZE, buf);
        sd.dev.vram.write(pa, buf, PAGE_SIZE);
      } else if (sd.dev.vram.isMaterialized(pa)) {
        sd.dev.vram.write(pa, null, PAGE_SIZE);
      }
      peer.n++;
    } else if (spfn >= 0 && phys.hasData(spfn)) {
      // Only pages with contents are copied: a hole, the zero page or a never-written page
      // costs no bytes, and the device page just drops whatever a previous user left there.
      phys.readPage(spfn, 0, buf, 0, PAGE_SIZE);
      sd.dev.vram.write(pa, buf, PAGE_SIZE);
    } else if (sd.dev.vram.isMaterialized(pa)) {
      sd.dev.vram.write(pa, null, PAGE_SIZE);
    }
    args.dst[i] = migratePfn(d);
    moved++;
    if (record) recordMigration(svm, va);
  }
  return moved;
}

/**
 * Device-to-device migration through system memory: pages of `[fs, fe)` held by another GPU's
 * VRAM are migrated to RAM first (one migrate_vma SELECT_DEVICE_PRIVATE per pagemap owner that
 * holds some), so the SELECT_SYSTEM migration that follows moves them to `devIndex`. drm_pagemap
 * can copy over a peer interconnect directly; hmmkit always goes through system memory (two
 * copies). Pages already on `devIndex` stay. Call inside {@link withMigration}.
 */
export async function evacuateOtherDevices(
  svm: GpuSvm,
  devIndex: number,
  fs: number,
  fe: number,
): Promise<void> {
  if (svm.devmem.length < 2) return;
  let others = false;
  for (let e = 0; e < svm.devmem.length; e++) {
    if (e !== devIndex && svm.devmem[e]!.hasPagesIn(fs, fe)) others = true;
  }
  if (!others) return;
  const mm = svm.mm;
  await mm.mmapLock.read();
  try {
    const vma = mm.vmaLookup(fs);
    if (vma === null || fe > vma.end) return;
    for (const owner of new Set(svm.owners)) {
      // a pagemap owner only devIndex holds has nothing to give
      if (!svm.peer && owner === svm.owners[devIndex]) continue;
      const args = new MigrateVma({
        vma,
        start: fs,
        end: fe,
        pgmapOwner: owner,
        flags: MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
      });
      if ((await migrateVmaSetup(args)) !== 0) continue;
      const k = svm.peer ? -1 : svm.owners.indexOf(owner);
      const from = k < 0 ? LOC.UNDEFINED : deviceLoc(k);
      const n = (fe - fs) / PAGE_SIZE;
      migrateStart(svm, fs, n, from, LOC.SYSMEM, MIGRATE_TRIGGER.PREFETCH);
      const m = await copyBack(svm, args.src, args.dst, args.npages, -1, devIndex);
      await migrateVmaPages(args);
      await migrateVmaFinalize(args);
      migrateEnd(svm, fs, n, from, LOC.SYSMEM, MIGRATE_TRIGGER.PREFETCH, m);
    }
  } finally {
    mm.mmapLock.readUnlock();
  }
}

/** Feeds the thrashing detector with one fault-driven migration of the page at `va`. */
export function recordMigration(svm: GpuSvm, va: number): void {
  if (svm.thrashing?.recordMigration(va, svm.mm.sim.now)) {
    svm.c.thrashingPins.value++;
  }
}

/**
 * Charges one copy-engine transfer of `bytes` (host to device or back) and waits for it: a
 * timing-only submission, the data having moved page by page (only pages with contents).
 */
export async function copyTime(dev: GpuDevice, bytes: number, h2d: boolean): Promise<void> {
  await dev.copyEngine.copyTimed(bytes, h2d ? 'h2d' : 'd2h');
}

/**
 * Copies the collected device pages of `src` into fresh system pages (`dst`), except pages of
 * device `keepDev`; returns pages moved.
 */
export async function copyBack(
  svm: GpuSvm,
  src: Float64Array,
  dst: Float64Array,
  n: number,
  recordStart = -1,
  keepDev = -1,
): Promise<number> {
  const phys = svm.mm.machine.phys;
  const buf = svm.pageBuf;
  let moved = 0;
  let dev: GpuDevice | null = null;
  for (let i = 0; i < n; i++) {
    const e = src[i]!;
    if ((migratePfnFlags(e) & MIGRATE_PFN_MIGRATE) === 0) continue;
    const spfn = migratePfnToPfn(e);
    const k = svm.devmemIndexOf(spfn);
    if (k < 0 || k === keepDev) continue; // no dst: the page stays where it is
    if ((migratePfnFlags(e) & MIGRATE_PFN_COMPOUND) !== 0) {
      // a device folio comes back as one THP (devthp.ts)
      const n = copyBackFolio(svm, svm.devmem[k]!, src, dst, i);
      if (n === 0) break;
      dev = svm.devmem[k]!.dev;
      moved += n;
      if (recordStart >= 0)
        for (let q = 0; q < n; q++) recordMigration(svm, recordStart + (i + q) * PAGE_SIZE);
      continue;
    }
    const np = phys.allocPage(0);
    if (np < 0) break;
    phys.trylockPage(np);
    const sd = svm.devmem[k]!;
    const pa = sd.pfnToPa(spfn);
    if (sd.dev.vram.isMaterialized(pa)) {
      // a device page never written stays contents-free: the new system page reads as zeros
      sd.dev.vram.read(pa, PAGE_SIZE, buf);
      phys.writePage(np, 0, buf, 0, PAGE_SIZE);
    }
    dst[i] = migratePfn(np);
    dev = sd.dev;
    moved++;
    if (recordStart >= 0) recordMigration(svm, recordStart + i * PAGE_SIZE);
  }
  if (dev !== null) await copyTime(dev, moved * PAGE_SIZE, false);
  svm.c.migrateToRamPages.add(moved);
  return moved;
}

/**
 * dev_pagemap_ops.migrate_to_ram of every SVM pool (a CPU fault, or another device's hmm
 * fault, on a device page): migrates the span the granule policy names (default the faulting
 * page's range, like drm_pagemap's migrate_to_ram; amdkfd: the granularity block), clipped to the
 * range and the VMA, back to system memory.
 */
export async function migrateToRam(svm: GpuSvm, vmf: VmFault): Promise<number> {
  const k = svm.devmemIndexOf(vmf.page);
  if (k >= 0 && svm.timesliceNs > 0) {
    // __drm_pagemap_migrate_to_ram: inside the page's migration timeslice nothing moves and the
    // fault is retried. The CPU spins re-faulting on hardware; the task here waits in steps of
    // at most 10 µs (so a page freed or evicted meanwhile is seen) and then retries.
    const sd = svm.devmem[k]!;
    const left = sd.expiresNs[vmf.page - sd.mem.start]! - svm.mm.sim.now;
    if (left > 0) {
      svm.c.timesliceRetries.value++;
      await svm.mm.sim.sched.sleep(Math.min(left, 10_000));
      return 0;
    }
  }
  const va = alignDown(vmf.address, PAGE_SIZE);
  const r = svm.rangeFind(va);
  let start = va;
  let end = va + PAGE_SIZE;
  const span = svm.granule.migrateToRamSpan?.(va, r, svm.attrs.lookup(va)) ?? r;
  if (span !== null) {
    if (
      !Number.isSafeInteger(span.start) ||
      !Number.isSafeInteger(span.end) ||
      span.start % PAGE_SIZE !== 0 ||
      span.end % PAGE_SIZE !== 0 ||
      !(span.start <= va && va < span.end)
    ) {
      throw new ArgumentError(
        'GpuSvm.migrateToRam',
        'policy',
        `${svm.granule.name}: migrateToRamSpan must return a page-aligned span containing the fault`,
        span,
      );
    }
    start = Math.max(span.start, r?.start ?? span.start, vmf.vma.start);
    end = Math.min(span.end, r?.end ?? span.end, vmf.vma.end);
  }
  return withMigration(svm, start, end, null, () => migrateToRamIn(svm, vmf, start, end));
}

/** {@link migrateToRam} over `[start, end)`, with the migration registered for the notifier. */
export async function migrateToRamIn(svm: GpuSvm, vmf: VmFault, start: number, end: number): Promise<number> {
  const k = svm.devmemIndexOf(vmf.page);
  const args = new MigrateVma({
    vma: vmf.vma,
    start,
    end,
    pgmapOwner: svm.owners[Math.max(k, 0)],
    flags: MIGRATE_VMA_SELECT_DEVICE_PRIVATE | (svm.deviceThp ? MIGRATE_VMA_SELECT_COMPOUND : 0),
    faultPage: vmf.page,
  });
  if ((await migrateVmaSetup(args)) !== 0) return VM_FAULT_SIGBUS;
  // hmm_range_fault of another device faults with FAULT_FLAG_REMOTE: a GPU-fault migration
  const trigger =
    (vmf.flags & FAULT_FLAG_REMOTE) !== 0 ? MIGRATE_TRIGGER.GPU_FAULT : MIGRATE_TRIGGER.CPU_FAULT;
  const from = k < 0 ? LOC.UNDEFINED : deviceLoc(k);
  const n = (end - start) / PAGE_SIZE;
  migrateStart(svm, start, n, from, LOC.SYSMEM, trigger);
  const moved = await copyBack(svm, args.src, args.dst, args.npages, start);
  await migrateVmaPages(args);
  await migrateVmaFinalize(args);
  migrateEnd(svm, start, n, from, LOC.SYSMEM, trigger, moved);
  return 0;
}

/** Waits for a migration into a busy pool to end before {@link ensureFree} gives up (per call). */
const MAX_BUSY_WAITS = 8;

/**
 * Evicts until `n` pages of device `devIndex` are free: asks the pool's eviction policy for a
 * victim (default {@link lruChunkEviction}) and evicts it, until enough is free, the policy
 * returns null, or a victim frees nothing. A victim that frees nothing while migrations into or
 * out of the pool are in flight (their pages are locked: migrate_device_range skips them) is busy, not
 * unevictable: wait for one of them to end and try again, as TTM waits for a busy buffer
 * (ttm_mem_evict_wait_busy), up to {@link MAX_BUSY_WAITS} times (`svm.evict.busyWaits`).
 * Returns whether `n` pages are free. A victim that names no used chunk, or a malformed page
 * mask, is rejected with an ArgumentError naming the policy.
 */
export async function ensureFree(svm: GpuSvm, devIndex: number, n: number): Promise<boolean> {
  const sd = svm.devmem[devIndex]!;
  const policy = svm.eviction;
  let waits = 0;
  while (sd.mem.freePages < n) {
    const v = policy.pickVictim(sd.view(devIndex, svm.mm.sim.now), n - sd.mem.freePages);
    if (v === null) return false;
    const ok =
      typeof v === 'object' &&
      Number.isInteger(v.chunk) &&
      v.chunk >= 0 &&
      v.chunk < sd.chunkPa.length &&
      sd.chunkUsed[v.chunk]! > 0 &&
      (v.pages === undefined || (v.pages instanceof Uint32Array && v.pages.length >= 16));
    if (!ok) {
      throw new ArgumentError(
        'GpuSvm.ensureFree',
        'policy',
        `${policy.name}: victim must name a chunk in use (and an optional 512-page mask)`,
        v,
      );
    }
    const before = sd.mem.freePages;
    // a pool shared by several VMs evicts each VM's pages through that VM (vm.ts)
    if (sd.evictor !== null) await sd.evictor(svm, devIndex, v.chunk, v.pages ?? null);
    else await evictChunk(svm, devIndex, v.chunk, v.pages ?? null);
    if (sd.mem.freePages > before) continue;
    if (sd.inFlight === 0 || waits === MAX_BUSY_WAITS) return false;
    waits++;
    svm.c.evictBusyWaits.value++;
    const gen = sd.migrationsEnded;
    await sd.migrationDone.waitEvent(() => sd.migrationsEnded !== gen);
  }
  return true;
}

/**
 * Evicts one 2 MiB VRAM chunk (or the pages of `pages`, bit i = page i of the chunk) to system
 * memory (UVM's eviction unit is the chunk): zaps the ranges its pages back, then moves the pages
 * by VA, as UVM evicts a root chunk one VA block at a time: one migrate_vma (SELECT_DEVICE_PRIVATE)
 * per run of consecutive VAs — one MIGRATE invalidation and one copy-engine transfer per run
 * (normally one per chunk), not a notifier callback per page. Pages not found at their recorded
 * VA go by pfn (migrate_device_range → migrate_device_pages → migrate_device_finalize). With
 * `byVa` false every page goes by pfn and the mm's mmap lock is never taken: how a pool shared by
 * several processes evicts (drm_pagemap_evict_to_ram, xe's TTM eviction: the victim's mm is
 * reached through rmap, not through its mmap lock). Returns pages moved.
 */
export async function evictChunk(
  svm: GpuSvm,
  devIndex: number,
  chunk: number,
  pages: PageMask | null = null,
  byVa = true,
): Promise<number> {
  const sd = svm.devmem[devIndex];
  if (sd === undefined || !Number.isInteger(chunk) || chunk < 0 || chunk >= sd.chunkPa.length) {
    throw new ArgumentError('GpuSvm.evictChunk', 'chunk', 'no such device chunk', chunk);
  }
  if (pages !== null && !(pages instanceof Uint32Array && pages.length >= 16)) {
    throw new ArgumentError('GpuSvm.evictChunk', 'pages', 'must be null or a 512-page mask', pages);
  }
  // the victim's pages are locked while they move: busy for another eviction (ensureFree waits)
  sd.migrationBegin();
  try {
    return await evictChunkIn(svm, sd, devIndex, chunk, pages, byVa);
  } finally {
    sd.migrationEnd();
  }
}

/** The body of {@link evictChunk} (arguments checked, the pool's migration counted). */
async function evictChunkIn(
  svm: GpuSvm,
  sd: SvmDeviceMemory,
  devIndex: number,
  chunk: number,
  pages: PageMask | null,
  byVa: boolean,
): Promise<number> {
  const inVictim = (k: number): boolean => pages === null || pageMaskTest(pages, k);
  let victims = 0;
  let first = -1;
  for (let k = 0; k < 512; k++) {
    const va = sd.rmapVa1[chunk * 512 + k]! - 1;
    if (va < 0 || !inVictim(k)) continue;
    victims++;
    if (first < 0 || va < first) first = va;
  }
  const from = deviceLoc(devIndex);
  migrateStart(svm, first, victims, from, LOC.SYSMEM, MIGRATE_TRIGGER.TTM_EVICTION);
  const hit = new Set<SvmRange>();
  for (let k = 0; k < 512; k++) {
    const va = sd.rmapVa1[chunk * 512 + k]! - 1;
    if (va < 0 || !inVictim(k)) continue;
    const r = svm.rangeFind(va);
    if (r !== null) hit.add(r);
  }
  if (hit.size > 0) {
    await svm.notifierLock.write();
    try {
      for (const r of hit) unmapFromGpus(svm, r.devMapped, r.start, r.end, UNMAP_TRIGGER.MMU_NOTIFY_MIGRATE);
      zapRangesLocked(svm, [...hit]);
    } finally {
      svm.notifierLock.writeUnlock();
    }
  }
  let moved = byVa ? await evictChunkByVa(svm, devIndex, chunk, inVictim) : 0;
  // what is left was not at its recorded VA: by pfn, one run of victim pages at a time
  for (let k = 0; k < 512; ) {
    if (sd.rmapVa1[chunk * 512 + k]! === 0 || !inVictim(k)) {
      k++;
      continue;
    }
    let k1 = k + 1;
    while (k1 < 512 && sd.rmapVa1[chunk * 512 + k1]! > 0 && inVictim(k1)) k1++;
    const n = k1 - k;
    const src = new Float64Array(n);
    const dst = new Float64Array(n);
    // The machine is passed, not looked up from the pfn: no global registry lookup per eviction.
    const machine = sd.mem.machine;
    await migrateDeviceRange(src, sd.chunkStartPfn(chunk) + k, n, machine);
    moved += await copyBack(svm, src, dst, n);
    await migrateDevicePages(src, dst, n, machine);
    await migrateDeviceFinalize(src, dst, n, machine);
    k = k1;
  }
  svm.c.evictions.value++;
  migrateEnd(svm, first, victims, from, LOC.SYSMEM, MIGRATE_TRIGGER.TTM_EVICTION, moved);
  return moved;
}

/** The VA part of {@link evictChunk}: one migrate_vma per run of consecutive VAs of the victim pages. */
export async function evictChunkByVa(
  svm: GpuSvm,
  devIndex: number,
  chunk: number,
  inVictim: (k: number) => boolean,
): Promise<number> {
  const sd = svm.devmem[devIndex]!;
  const vas: number[] = [];
  for (let k = 0; k < 512; k++) {
    const va = sd.rmapVa1[chunk * 512 + k]! - 1;
    if (va >= 0 && inVictim(k)) vas.push(va);
  }
  if (vas.length === 0) return 0;
  const sorted = Float64Array.from(vas).sort();
  const mm = svm.mm;
  let moved = 0;
  await mm.mmapLock.read();
  try {
    for (let k = 0; k < sorted.length; ) {
      const start = sorted[k]!;
      const vma = mm.vmaLookup(start);
      let k1 = k + 1;
      if (vma !== null) {
        while (
          k1 < sorted.length &&
          sorted[k1] === start + (k1 - k) * PAGE_SIZE &&
          start + (k1 - k) * PAGE_SIZE < vma.end
        ) {
          k1++;
        }
        const args = new MigrateVma({
          vma,
          start,
          end: start + (k1 - k) * PAGE_SIZE,
          pgmapOwner: svm.owners[devIndex],
          flags: MIGRATE_VMA_SELECT_DEVICE_PRIVATE | (svm.deviceThp ? MIGRATE_VMA_SELECT_COMPOUND : 0),
        });
        if ((await migrateVmaSetup(args)) === 0) {
          moved += await copyBack(svm, args.src, args.dst, args.npages);
          await migrateVmaPages(args);
          await migrateVmaFinalize(args);
        }
      }
      k = k1;
    }
  } finally {
    mm.mmapLock.readUnlock();
  }
  return moved;
}

/**
 * Explicit prefetch (xe/amdkfd PREFETCH_LOC, UVM migrate): migrates `[start, end)` to `loc`
 * (`LOC.SYSMEM` or a device location) — pages on another GPU move too, through system memory —
 * then maps it on that device and on the accessedBy devices, as KFD and xe do. Returns pages
 * moved or a negative errno (-EINVAL for a hugetlb or VM_SPECIAL VMA, before anything moves);
 * invalid arguments throw before anything changes.
 */
export async function prefetch(svm: GpuSvm, start: number, end: number, loc: number): Promise<number> {
  const fn = 'GpuSvm.prefetch';
  if (!Number.isSafeInteger(start) || start < 0 || start % PAGE_SIZE !== 0) {
    throw new ArgumentError(fn, 'start', 'must be a page-aligned uint', start);
  }
  if (!Number.isSafeInteger(end) || end <= start || end % PAGE_SIZE !== 0) {
    throw new ArgumentError(fn, 'end', 'must be page aligned and > start', end);
  }
  const d = typeof loc === 'number' && Number.isInteger(loc) ? locDevice(loc) : -1;
  if (loc !== LOC.SYSMEM && (d < 0 || svm.devmem[d] === undefined)) {
    throw new ArgumentError(fn, 'loc', 'must be LOC.SYSMEM or the location of a device with devmem', loc);
  }
  return prefetchIn(svm, start, end, loc, MIGRATE_TRIGGER.PREFETCH, false);
}

/**
 * The body of {@link prefetch} (arguments checked) with the trigger its migrations report;
 * `skipSpecial` skips hugetlb / special VMAs instead of failing with -EINVAL (the access-counter
 * handler migrates what it can of a region).
 */
export async function prefetchIn(
  svm: GpuSvm,
  start: number,
  end: number,
  loc: number,
  trigger: number,
  skipSpecial: boolean,
): Promise<number> {
  const d = locDevice(loc);
  await svm.lock.lock();
  try {
    // Every VMA is checked before anything moves (KFD validates the whole range first): a
    // prefetch is applied to all of its VMAs or to none.
    const spans: Span[] = [];
    await svm.mm.mmapLock.read();
    try {
      for (let pos = start; pos < end; ) {
        const vma = svm.mm.findVma(pos);
        if (vma === null || vma.start >= end) break;
        if ((vma.flags & (VM_HUGETLB | VM_SPECIAL)) !== 0) {
          if (!skipSpecial) return -Errno.EINVAL;
          pos = vma.end;
          continue;
        }
        spans.push({ start: Math.max(pos, vma.start), end: Math.min(end, vma.end) });
        pos = vma.end;
      }
    } finally {
      svm.mm.mmapLock.readUnlock();
    }
    let moved = 0;
    for (const { start: s, end: e } of spans) {
      // in 2 MiB pieces so eviction can make room piece by piece
      for (let a = s; a < e; ) {
        const b = Math.min(e, alignDown(a, SZ_2M) + SZ_2M);
        const r =
          d >= 0
            ? await migrateToDevice(svm, d, a, b, null, false, trigger)
            : await migrateSpanToRam(svm, a, b);
        if (r < 0) return r;
        moved += r;
        a = b;
      }
    }
    // KFD and xe map on prefetch: the target device (and the accessedBy devices) need no fault
    for (const { start: s, end: e } of spans) {
      for (const seg of svm.attrs.segments(s, e)) {
        const r = await mapPrefetched(svm, d, seg.start, seg.end, seg.attrs.accessedBy);
        if (r < 0) return r;
      }
    }
    return moved;
  } finally {
    svm.lock.unlock();
  }
}

/**
 * Maps `[start, end)` (one attribute interval, after a prefetch) on device `d` (none for a
 * prefetch to system memory) and on the accessedBy devices: the fault path without migration,
 * one range at a time (SVM lock held). Returns 0 or a negative errno.
 */
export async function mapPrefetched(
  svm: GpuSvm,
  d: number,
  start: number,
  end: number,
  accessedBy: number,
): Promise<number> {
  for (let k = 0; k < svm.devices.length; k++) {
    // the target's own fault binds the accessedBy devices that can reach its pages
    if (k !== d && (d >= 0 || (accessedBy & (2 ** k)) === 0)) continue;
    for (let va = start; va < end; ) {
      const r = await faultLocked(svm, k, va, ACCESS.READ, null, 0, false);
      if (r < 0) return r;
      va = Math.max(va + PAGE_SIZE, svm.lastFaultEnd);
    }
    // XNACK off: the device (and the accessedBy devices its bind mapped) may touch the span
    await grant(svm, k, start, end);
    for (let j = 0; j < svm.devices.length; j++) {
      if ((accessedBy & (2 ** j)) !== 0) await grant(svm, j, start, end);
    }
  }
  return 0;
}

/** Migrates every device page of `[start, end)` back to system memory (one VMA). */
export async function migrateSpanToRam(svm: GpuSvm, start: number, end: number): Promise<number> {
  return withMigration(svm, start, end, null, () => migrateSpanToRamIn(svm, start, end));
}

/** {@link migrateSpanToRam} with the migration registered for the notifier. */
export async function migrateSpanToRamIn(svm: GpuSvm, start: number, end: number): Promise<number> {
  const mm = svm.mm;
  let moved = 0;
  await mm.mmapLock.read();
  try {
    const vma = mm.vmaLookup(start);
    if (vma === null) return -Errno.EFAULT;
    for (const owner of new Set(svm.owners)) {
      const args = new MigrateVma({
        vma,
        start,
        end,
        pgmapOwner: owner,
        flags: MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
      });
      if ((await migrateVmaSetup(args)) !== 0) continue;
      // the source device: the owner's (one owner for all devices in peer mode: not known)
      const k = svm.peer ? -1 : svm.owners.indexOf(owner);
      const from = k < 0 ? LOC.UNDEFINED : deviceLoc(k);
      const n = (end - start) / PAGE_SIZE;
      migrateStart(svm, start, n, from, LOC.SYSMEM, MIGRATE_TRIGGER.PREFETCH);
      const m = await copyBack(svm, args.src, args.dst, args.npages);
      moved += m;
      await migrateVmaPages(args);
      await migrateVmaFinalize(args);
      migrateEnd(svm, start, n, from, LOC.SYSMEM, MIGRATE_TRIGGER.PREFETCH, m);
    }
  } finally {
    mm.mmapLock.readUnlock();
  }
  return moved;
}
