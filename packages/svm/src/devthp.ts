/**
 * Device-private 2 MiB folios (`devmem.thp`): the compound-entry halves of the migrations in
 * migrate.ts, modelled on MIGRATE_VMA_SELECT_COMPOUND in mm/migrate_device.c (Balbir Singh's
 * device-private THP series, merged for Linux 6.19): a collected PMD (a THP, or in hmmkit a device THP)
 * is one src entry with MIGRATE_PFN_COMPOUND, and the driver gives it one compound destination —
 * a whole VRAM chunk going in, a system THP coming back — so the 2 MiB move as one unit, with one
 * PMD-level entry afterwards. An empty 2 MiB block gets a compound destination on its first entry
 * (migrate_vma_insert_huge_pmd_page); hmm collects holes page by page, see docs/hmm.md.
 *
 * @module
 */

import {
  MIGRATE_PFN_COMPOUND,
  MIGRATE_PFN_MIGRATE,
  MIGRATE_PFN_VALID,
  type MigrateVma,
  migratePfn,
  migratePfnFlags,
  migratePfnToPfn,
} from '@hmmkit/hmm';
import { PageWalk, pteType, WALK_HOLE, WALK_PTE } from '@hmmkit/mm';
import type { SvmDeviceMemory } from './devmem.ts';
import type { GpuSvm } from './gpusvm.ts';
import { PAGE_SIZE, SZ_2M } from './granule.ts';

/** 4 KiB pages in a 2 MiB folio. */
export const FOLIO_PAGES = SZ_2M / PAGE_SIZE;

const walk = new PageWalk();

/** Whether the CPU maps nothing in `[s, e)` (no PTE and no PMD leaf; an empty PTE table is fine). */
export function cpuRangeEmpty(svm: GpuSvm, s: number, e: number): boolean {
  for (let a = s; a < e; ) {
    svm.mm.pt.walkUnit(a, e, walk);
    if (walk.kind === WALK_PTE) {
      const n = (walk.end - a) / PAGE_SIZE;
      for (let k = 0; k < n; k++) if (pteType(walk.pte!.flags[walk.index + k]!) !== 0) return false;
    } else if (walk.kind !== WALK_HOLE) return false;
    a = walk.end;
  }
  return true;
}

/**
 * Whether entry `i` of `args` starts a block to move as one device folio: a COMPOUND src (a THP
 * the collect took whole), or 512 collected holes of a 2 MiB-aligned block the CPU maps nothing
 * in; every page of it wanted.
 */
export function folioEntry(svm: GpuSvm, args: MigrateVma, i: number, want: (va: number) => boolean): boolean {
  const va = args.start + i * PAGE_SIZE;
  if (va % SZ_2M !== 0 || i + FOLIO_PAGES > args.npages) return false;
  for (let k = 0; k < FOLIO_PAGES; k++) if (!want(va + k * PAGE_SIZE)) return false;
  const fl = migratePfnFlags(args.src[i]!);
  if ((fl & MIGRATE_PFN_COMPOUND) !== 0) return true;
  for (let k = 0; k < FOLIO_PAGES; k++) {
    const f = migratePfnFlags(args.src[i + k]!);
    if ((f & MIGRATE_PFN_MIGRATE) === 0 || (f & MIGRATE_PFN_VALID) !== 0) return false;
  }
  return cpuRangeEmpty(svm, va, va + SZ_2M);
}

/**
 * The destination of a {@link folioEntry}: one wholly free VRAM chunk as a device folio, the
 * source THP's written pages copied (a hole's block is zero), `dst[i]` = the compound folio.
 * Returns 512, or 0 when no chunk is wholly free (the entry stays in system memory).
 */
export function fillDeviceFolio(
  svm: GpuSvm,
  sd: SvmDeviceMemory,
  args: MigrateVma,
  i: number,
  recordPage: ((va: number) => void) | null,
): number {
  const va = args.start + i * PAGE_SIZE;
  const head = sd.allocFolio(va, svm.poolTag);
  if (head < 0) return 0;
  const phys = svm.mm.machine.phys;
  const buf = svm.pageBuf;
  const spfn = migratePfnToPfn(args.src[i]!); // -1 for a block of holes
  const vram = sd.dev.vram;
  for (let k = 0; k < FOLIO_PAGES; k++) {
    const pa = sd.pfnToPa(head + k);
    if (spfn >= 0 && phys.hasData(spfn + k)) {
      phys.readPage(spfn + k, 0, buf, 0, PAGE_SIZE);
      vram.write(pa, buf, PAGE_SIZE);
    } else if (vram.isMaterialized(pa)) vram.write(pa, null, PAGE_SIZE);
    if (svm.timesliceNs > 0) sd.expiresNs[head + k - sd.mem.start] = svm.mm.sim.now + svm.timesliceNs;
    recordPage?.(va + k * PAGE_SIZE);
  }
  args.dst[i] = migratePfn(head) + MIGRATE_PFN_COMPOUND;
  return FOLIO_PAGES;
}

/**
 * The system destination of a COMPOUND device src `src[i]` (migrate back as one unit): a THP,
 * the device folio's written pages copied. Returns 512, or 0 when no THP can be allocated (the
 * entry is then restored: hmm does not split a folio on the fly).
 */
export function copyBackFolio(
  svm: GpuSvm,
  sd: SvmDeviceMemory,
  src: Float64Array,
  dst: Float64Array,
  i: number,
): number {
  const phys = svm.mm.machine.phys;
  const spfn = migratePfnToPfn(src[i]!);
  const np = phys.allocFolio(0, 9);
  if (np < 0) return 0;
  phys.trylockPage(np);
  const buf = svm.pageBuf;
  for (let k = 0; k < FOLIO_PAGES; k++) {
    const pa = sd.pfnToPa(spfn + k);
    if (sd.dev.vram.isMaterialized(pa)) {
      sd.dev.vram.read(pa, PAGE_SIZE, buf);
      phys.writePage(np + k, 0, buf, 0, PAGE_SIZE);
    }
  }
  dst[i] = migratePfn(np) + MIGRATE_PFN_COMPOUND;
  return FOLIO_PAGES;
}
