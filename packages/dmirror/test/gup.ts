/**
 * A model of mm/gup_test.c's ioctls for hmm_gup_test: get_user_pages(_fast) and
 * pin_user_pages(_fast) with FOLL_WRITE on the simulated mm. A FOLL_LONGTERM pin of a
 * device-coherent page first migrates it to system memory, as check_and_migrate_movable_pages()
 * → migrate_device_coherent_folio() does (migrate_device_range/pages/finalize on the pfn).
 */
import {
  MIGRATE_PFN_MIGRATE,
  migrateDeviceFinalize,
  migrateDevicePages,
  migrateDeviceRange,
  migratePfn,
  migratePfnToPfn,
} from '@hmmkit/hmm';
import type { Mm } from '@hmmkit/mm';

/** `GUP_BASIC_TEST`. */
export const GUP_BASIC_TEST = 4;
/** `GUP_FAST_BENCHMARK`. */
export const GUP_FAST_BENCHMARK = 1;
/** `PIN_FAST_BENCHMARK`. */
export const PIN_FAST_BENCHMARK = 2;
/** `PIN_LONGTERM_BENCHMARK`. */
export const PIN_LONGTERM_BENCHMARK = 3;
/** `FOLL_WRITE`. */
export const FOLL_WRITE = 0x01;
/** `FOLL_LONGTERM`. */
export const FOLL_LONGTERM = 0x100;

/** Models migrate_device_coherent_folio(): 0 or -EBUSY. */
async function migrateDeviceCoherentPage(mm: Mm, pfn: number): Promise<number> {
  const phys = mm.phys;
  const src = new Float64Array(1);
  const dst = new Float64Array(1);
  await migrateDeviceRange(src, pfn, 1);
  if (!(src[0]! & MIGRATE_PFN_MIGRATE) || migratePfnToPfn(src[0]!) !== pfn) return -16;
  const dpage = phys.allocPage(0);
  phys.trylockPage(dpage);
  phys.copyPage(dpage, pfn);
  dst[0] = migratePfn(dpage);
  await migrateDevicePages(src, dst, 1);
  await migrateDeviceFinalize(src, dst, 1);
  return src[0]! & MIGRATE_PFN_MIGRATE ? 0 : -16;
}

/** gup_test_exec(): one ioctl on `nrPages` pages at `addr` (gup_flags = FOLL_WRITE | flags). Returns 0 or an errno. */
export async function gupTestExec(
  mm: Mm,
  addr: number,
  cmd: number,
  nrPages: number,
  size: number,
  flags: number,
): Promise<number> {
  const longterm = cmd === PIN_LONGTERM_BENCHMARK || (flags & FOLL_LONGTERM) !== 0;
  for (let a = addr; a < addr + size; a += 4096 * nrPages) {
    await mm.mmapLock.read();
    let pfn: number;
    try {
      pfn = await mm.getUserPage(a, true);
    } finally {
      mm.mmapLock.readUnlock();
    }
    if (pfn < 0) return -pfn;
    if (longterm && mm.phys.isDeviceCoherentPage(pfn)) {
      mm.phys.putPage(pfn);
      const r = await migrateDeviceCoherentPage(mm, pfn);
      if (r !== 0) return -r;
      await mm.mmapLock.read();
      try {
        pfn = await mm.getUserPage(a, true);
      } finally {
        mm.mmapLock.readUnlock();
      }
      if (pfn < 0) return -pfn;
    }
    mm.phys.putPage(pfn); // unpin_user_pages / put_page at the end of the ioctl
  }
  return 0;
}
