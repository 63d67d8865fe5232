/**
 * The dmirror device page table: what lib/test_hmm.c keeps in an xarray indexed by
 * `va >> PAGE_SHIFT`, here a sparse three-level radix of typed arrays (no Map, no per-page
 * objects). An entry is a pfn plus a 2-bit xarray tag (WRITE = 3, ATOMIC = 1, 0 = read-only).
 *
 * @module
 */

/** `DPT_XA_TAG_ATOMIC`: the entry maps the page for device atomics (device-exclusive). */
export const DPT_XA_TAG_ATOMIC = 1;
/** `DPT_XA_TAG_WRITE`: the device may write the page. */
export const DPT_XA_TAG_WRITE = 3;

const LEAF_BITS = 12;
const LEAF = 2 ** LEAF_BITS; // 4096 entries per leaf
const MID = 4096; // 4096 leaves per mid node: one mid node covers 2^24 pages (64 GiB)
const MID_SPAN = LEAF * MID;

/**
 * A sparse map from page number to `(pfn, tag)`. Values are stored as `(pfn + 1) * 4 + tag` in
 * Float64Array leaves so that 0 means "no entry". Holds no page references (as in Linux).
 */
export class DmirrorPageTable {
  private readonly top: (Array<Float64Array | undefined> | undefined)[] = [];
  /** Number of entries present. */
  size = 0;

  private leaf(index: number, create: boolean): Float64Array | null {
    const t = Math.floor(index / MID_SPAN);
    let mid = this.top[t];
    if (mid === undefined) {
      if (!create) return null;
      mid = new Array<Float64Array | undefined>(MID);
      this.top[t] = mid;
    }
    const m = Math.floor(index / LEAF) % MID;
    let leaf = mid[m];
    if (leaf === undefined) {
      if (!create) return null;
      leaf = new Float64Array(LEAF);
      mid[m] = leaf;
    }
    return leaf;
  }

  /** Models xa_load(): the raw slot value (0 = empty); decode with {@link dptPfn}/{@link dptTag}. */
  load(index: number): number {
    const leaf = this.leaf(index, false);
    return leaf === null ? 0 : leaf[index % LEAF]!;
  }

  /** Models xa_store(xa_tag_pointer(page, tag)). */
  store(index: number, pfn: number, tag: number): void {
    const leaf = this.leaf(index, true)!;
    const i = index % LEAF;
    if (leaf[i] === 0) this.size++;
    leaf[i] = (pfn + 1) * 4 + tag;
  }

  /** Models xa_erase(). */
  erase(index: number): void {
    const leaf = this.leaf(index, false);
    if (leaf === null) return;
    const i = index % LEAF;
    if (leaf[i] !== 0) {
      leaf[i] = 0;
      this.size--;
    }
  }

  /** Models xa_for_each_range(first, last) + xa_erase: both bounds inclusive. Skips empty leaves. */
  eraseRange(first: number, last: number): void {
    if (this.size === 0) return;
    let index = first;
    while (index <= last) {
      const t = Math.floor(index / MID_SPAN);
      if (t >= this.top.length) return;
      const mid = this.top[t];
      if (mid === undefined) {
        index = (t + 1) * MID_SPAN;
        continue;
      }
      const leafStart = Math.floor(index / LEAF) * LEAF;
      const leaf = mid[Math.floor(index / LEAF) % MID];
      const stop = Math.min(last, leafStart + LEAF - 1);
      if (leaf !== undefined) {
        for (let k = index - leafStart; k <= stop - leafStart; k++) {
          if (leaf[k] !== 0) {
            leaf[k] = 0;
            this.size--;
          }
        }
      }
      index = stop + 1;
    }
  }

  /** Models xa_destroy(). */
  clear(): void {
    this.top.length = 0;
    this.size = 0;
  }
}

/** The pfn of a non-empty slot value (xa_untag_pointer). */
export function dptPfn(v: number): number {
  return Math.floor(v / 4) - 1;
}

/** The tag of a slot value (xa_pointer_tag). */
export function dptTag(v: number): number {
  return v % 4;
}
