/**
 * xe's PAT-index attribute (DRM_XE_MEM_RANGE_ATTR_PAT, Linux 6.18 xe_vm_madvise.c madvise_pat_index):
 * the caching-policy index every device PTE of an interval carries (xe_pt.c writes
 * `pat_index` into each leaf; AMD's counterpart is the MTYPE field). The index lives in the device
 * page-table format's `patField`; see `PageTable.forEachMapping(...).pat`.
 *
 * @module
 */
import { patIndexCount, patIndexValid } from '@hmmkit/gpu';
import { ArgumentError } from '@hmmkit/sim';
import { adviseAndZap } from './bind.ts';
import type { GpuSvm } from './gpusvm.ts';
import { PAGE_SIZE } from './granule.ts';
import type { SvmRange } from './range.ts';

/**
 * Number of PAT indices every device of `svm` can encode (xe->pat.n_entries): the smallest
 * `patIndexCount` of the devices' formats (a PAT table's length, else 2^width of the PAT field;
 * 1, index 0 only, where a format has none).
 */
export function patEntries(svm: GpuSvm): number {
  let n = Number.POSITIVE_INFINITY;
  for (const dev of svm.devices) n = Math.min(n, patIndexCount(dev.format));
  return Number.isFinite(n) ? n : 1;
}

/** Whether every device of `svm` can carry PAT index `pat` (its format's table defines it). */
export function patValid(svm: GpuSvm, pat: number): boolean {
  return svm.devices.every((d) => patIndexValid(d.format, pat));
}

/**
 * Per page of `range`, the PAT index its device PTEs carry, or null when no page of the range was
 * advised one (every PTE index 0).
 */
export function rangePatIndex(svm: GpuSvm, range: SvmRange): Uint8Array | null {
  const segs = svm.attrs.segments(range.start, range.end);
  if (!segs.some((s) => (s.attrs.pat ?? 0) !== 0)) return null;
  const out = new Uint8Array(range.npages);
  for (const s of segs) {
    const a = Math.max(s.start, range.start);
    const b = Math.min(s.end, range.end);
    out.fill(s.attrs.pat ?? 0, (a - range.start) / PAGE_SIZE, (b - range.start) / PAGE_SIZE);
  }
  return out;
}

/**
 * Models xe's madvise of DRM_XE_MEM_RANGE_ATTR_PAT: sets the PAT index of `[start, end)` and,
 * where it changed, zaps the devices' PTEs so the next bind writes the new index. An index the
 * devices cannot encode throws ArgumentError (xe: -EINVAL for `pat_index >= n_entries`) with
 * nothing changed (and so does an index the format's PAT table reserves: xe's coh_mode 0). Returns
 * the number of ranges whose PTEs were zapped.
 */
export async function madvisePat(svm: GpuSvm, start: number, end: number, pat: number): Promise<number> {
  if (!patValid(svm, pat)) {
    throw new ArgumentError(
      'madvisePat',
      'pat',
      `must be an index in [0, ${patEntries(svm)}) that these devices' PAT table defines`,
      pat,
    );
  }
  return adviseAndZap(svm, start, end, { pat }, (a) => a.pat ?? 0);
}
