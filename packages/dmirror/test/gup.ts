/**
 * A model of mm/gup_test.c's ioctls for hmm_gup_test: get_user_pages(_fast) and
 * pin_user_pages(_fast) with FOLL_WRITE on the simulated mm. The pins are mm's
 * `pinUserPages` (FOLL_PIN): with FOLL_LONGTERM a device-coherent page is first migrated to
 * system memory, as check_and_migrate_movable_pages() does.
 */
import { FOLL_LONGTERM, FOLL_WRITE, type Mm } from '@hmmkit/mm';

export { FOLL_LONGTERM, FOLL_WRITE };

/** `GUP_BASIC_TEST`. */
export const GUP_BASIC_TEST = 4;
/** `GUP_FAST_BENCHMARK`. */
export const GUP_FAST_BENCHMARK = 1;
/** `PIN_FAST_BENCHMARK`. */
export const PIN_FAST_BENCHMARK = 2;
/** `PIN_LONGTERM_BENCHMARK`. */
export const PIN_LONGTERM_BENCHMARK = 3;

/** gup_test_exec(): one ioctl on `nrPages` pages at `addr` (gup_flags = FOLL_WRITE | flags). Returns 0 or an errno. */
export async function gupTestExec(
  mm: Mm,
  addr: number,
  cmd: number,
  nrPages: number,
  size: number,
  flags: number,
): Promise<number> {
  const pin = cmd === PIN_FAST_BENCHMARK || cmd === PIN_LONGTERM_BENCHMARK;
  const longterm = cmd === PIN_LONGTERM_BENCHMARK || (flags & FOLL_LONGTERM) !== 0;
  const pfns = new Float64Array(nrPages);
  for (let a = addr; a < addr + size; a += 4096 * nrPages) {
    await mm.mmapLock.read();
    try {
      if (pin) {
        const n = await mm.pinUserPages(a, nrPages, FOLL_WRITE | (longterm ? FOLL_LONGTERM : 0), pfns);
        if (n < 0) return -n;
        for (let k = 0; k < n; k++) mm.unpinUserPage(pfns[k]!); // unpin_user_pages at the end of the ioctl
      } else {
        for (let k = 0; k < nrPages; k++) {
          const pfn = await mm.getUserPage(a + k * 4096, true);
          if (pfn < 0) return -pfn;
          mm.phys.putPage(pfn); // put_page at the end of the ioctl
        }
      }
    } finally {
      mm.mmapLock.readUnlock();
    }
  }
  return 0;
}
