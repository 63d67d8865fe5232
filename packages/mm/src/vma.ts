/**
 * Virtual memory areas (`struct vm_area_struct`) and the ordered structure that holds an mm's
 * VMAs (Linux's maple tree): a two-level sorted array (leaves of ≤ 256 VMAs and a sorted array
 * of leaf start addresses) giving O(log n) find_vma / vma_lookup and cheap insert/remove with
 * 10^5 VMAs.
 *
 * @module
 */
import { PAGE_SIZE, VM_HUGETLB, VM_SPECIAL } from './constants.ts';
import type { MmFile } from './file.ts';
import { splitBoundaries } from './huge-memory.ts';
import type { Mm } from './mm.ts';

/** Models `struct anon_vma`: the rmap family of anonymous pages shared by a fork tree. */
export class AnonVma {
  /** Family id stored in `PhysMem.mapping` of its pages. */
  readonly id: number;
  /** The mms whose VMAs may map pages of this family (a process and its fork descendants). */
  readonly mms = new Set<Mm>();
  constructor(id: number) {
    this.id = id;
  }
}

/** Models `struct vm_area_struct`. */
export class Vma {
  /** vm_start (inclusive, page aligned). */
  start: number;
  /** vm_end (exclusive, page aligned). */
  end: number;
  /** vm_flags (VM_*). */
  flags: number;
  /** vm_pgoff: file offset in pages, or for anonymous VMAs the linear page index of `start`. */
  pgoff: number;
  /** vm_file (null for anonymous private memory). */
  file: MmFile | null;
  /** anon_vma (set at the first anonymous fault or COW). */
  anonVma: AnonVma | null;
  /** Owning mm (vm_mm). */
  readonly mm: Mm;
  /** Driver data (vm_private_data) for special mappings. */
  privateData: unknown = null;

  constructor(
    mm: Mm,
    start: number,
    end: number,
    flags: number,
    pgoff: number,
    file: MmFile | null,
    anonVma: AnonVma | null,
  ) {
    this.mm = mm;
    this.start = start;
    this.end = end;
    this.flags = flags;
    this.pgoff = pgoff;
    this.file = file;
    this.anonVma = anonVma;
  }

  /** Number of base pages the VMA spans (vma_pages()). */
  get pages(): number {
    return (this.end - this.start) / PAGE_SIZE;
  }

  /** vma_is_anonymous(): no file behind it (MAP_PRIVATE|MAP_ANONYMOUS). */
  get isAnonymous(): boolean {
    return this.file === null;
  }

  /** is_vm_hugetlb_page(). */
  get isHugetlb(): boolean {
    return (this.flags & VM_HUGETLB) !== 0;
  }

  /** linear_page_index(vma, addr). */
  linearPageIndex(addr: number): number {
    return (addr - this.start) / PAGE_SIZE + this.pgoff;
  }

  /** A plain snapshot for tests and debugging. */
  describe(): { start: number; end: number; flags: number; pgoff: number; file: number | null } {
    return {
      start: this.start,
      end: this.end,
      flags: this.flags,
      pgoff: this.pgoff,
      file: this.file === null ? null : this.file.id,
    };
  }
}

/** True when `a` (ending where `b` starts) and `b` may be merged (is_mergeable_vma + anon_vma check). */
export function vmasMergeable(a: Vma, b: Vma): boolean {
  if (a.end !== b.start) return false;
  if (a.flags !== b.flags || a.file !== b.file) return false;
  if (a.flags & VM_SPECIAL) return false;
  if (a.privateData !== b.privateData) return false;
  if (a.pgoff + a.pages !== b.pgoff) return false;
  if (a.anonVma !== null && b.anonVma !== null && a.anonVma !== b.anonVma) return false;
  return true;
}

const LEAF_MAX = 256;

/** The ordered set of an mm's VMAs (mm->mm_mt). */
export class VmaTree {
  private leaves: Vma[][] = [];
  private mins: number[] = [];
  /** Number of VMAs (mm->map_count). */
  size = 0;

  private leafFor(addr: number): number {
    const m = this.mins;
    let lo = 0;
    let hi = m.length - 1;
    if (hi < 0) return -1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (m[mid]! <= addr) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Models find_vma(): the first VMA with end > addr, or null. */
  find(addr: number): Vma | null {
    let li = this.leafFor(addr);
    if (li < 0) return null;
    for (; li < this.leaves.length; li++) {
      const leaf = this.leaves[li]!;
      let lo = 0;
      let hi = leaf.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (leaf[mid]!.end > addr) hi = mid;
        else lo = mid + 1;
      }
      if (lo < leaf.length) return leaf[lo]!;
    }
    return null;
  }

  /** Models vma_lookup(): the VMA containing addr, or null. */
  lookup(addr: number): Vma | null {
    const v = this.find(addr);
    return v !== null && v.start <= addr ? v : null;
  }

  private position(vma: Vma): [number, number] {
    const li = this.leafFor(vma.start);
    if (li >= 0) {
      const leaf = this.leaves[li]!;
      let lo = 0;
      let hi = leaf.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (leaf[mid]!.start < vma.start) lo = mid + 1;
        else hi = mid;
      }
      if (leaf[lo] === vma) return [li, lo];
    }
    throw new Error('VmaTree: vma not in tree');
  }

  /** Inserts a VMA (its range must not overlap another's). */
  insert(vma: Vma): void {
    if (this.leaves.length === 0) {
      this.leaves.push([vma]);
      this.mins.push(vma.start);
      this.size = 1;
      return;
    }
    const li = Math.max(0, this.leafFor(vma.start));
    const leaf = this.leaves[li]!;
    let lo = 0;
    let hi = leaf.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (leaf[mid]!.start < vma.start) lo = mid + 1;
      else hi = mid;
    }
    leaf.splice(lo, 0, vma);
    this.mins[li] = leaf[0]!.start;
    this.size++;
    if (leaf.length > LEAF_MAX) {
      const right = leaf.splice(LEAF_MAX / 2);
      this.leaves.splice(li + 1, 0, right);
      this.mins.splice(li + 1, 0, right[0]!.start);
    }
  }

  /** Removes a VMA. */
  remove(vma: Vma): void {
    const [li, i] = this.position(vma);
    const leaf = this.leaves[li]!;
    leaf.splice(i, 1);
    this.size--;
    if (leaf.length === 0) {
      this.leaves.splice(li, 1);
      this.mins.splice(li, 1);
    } else this.mins[li] = leaf[0]!.start;
  }

  /** Call after changing `vma.start` of a VMA in the tree (keeps the leaf index right). */
  startChanged(vma: Vma): void {
    for (let li = 0; li < this.leaves.length; li++) {
      const leaf = this.leaves[li]!;
      if (leaf[0] === vma) {
        this.mins[li] = vma.start;
        return;
      }
    }
  }

  /** The VMA after `vma` (vma_next), or null. */
  next(vma: Vma): Vma | null {
    const [li, i] = this.position(vma);
    const leaf = this.leaves[li]!;
    if (i + 1 < leaf.length) return leaf[i + 1]!;
    return this.leaves[li + 1]?.[0] ?? null;
  }

  /** The VMA before `vma` (vma_prev), or null. */
  prev(vma: Vma): Vma | null {
    const [li, i] = this.position(vma);
    if (i > 0) return this.leaves[li]![i - 1]!;
    const p = this.leaves[li - 1];
    return p === undefined ? null : p[p.length - 1]!;
  }

  /** The last VMA with start < addr (find_vma_prev's prev for addr), or null. */
  findPrev(addr: number): Vma | null {
    let li = this.leafFor(addr);
    if (li < 0) return null;
    for (; li >= 0; li--) {
      const leaf = this.leaves[li]!;
      let lo = 0;
      let hi = leaf.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (leaf[mid]!.start < addr) lo = mid + 1;
        else hi = mid;
      }
      if (lo > 0) return leaf[lo - 1]!;
    }
    return null;
  }

  /** VMAs overlapping [start, end), in order (a fresh array: callers may modify the tree). */
  overlapping(start: number, end: number): Vma[] {
    const out: Vma[] = [];
    let li = this.leafFor(start);
    if (li < 0) return out;
    let v = this.find(start);
    if (v === null) return out;
    let [l, i] = this.position(v);
    li = l;
    for (; li < this.leaves.length; li++, i = 0) {
      const leaf = this.leaves[li]!;
      for (; i < leaf.length; i++) {
        v = leaf[i]!;
        if (v.start >= end) return out;
        out.push(v);
      }
    }
    return out;
  }

  /**
   * The VMAs in order as the tree's sorted leaf arrays (read only: valid until the next insert
   * or remove). For per-page walks, which must not pay a generator per call.
   */
  get leafArrays(): readonly (readonly Vma[])[] {
    return this.leaves;
  }

  /** Every VMA in order. */
  *[Symbol.iterator](): IterableIterator<Vma> {
    for (const leaf of this.leaves) yield* leaf;
  }

  /** Every VMA in order, as an array. */
  toArray(): Vma[] {
    const out: Vma[] = [];
    for (const leaf of this.leaves) for (const v of leaf) out.push(v);
    return out;
  }

  /**
   * Models the top-down gap search of vm_unmapped_area(): the highest address a such that
   * [a, a+len) lies in [low, high), is aligned to `align`, and overlaps no VMA; -1 if none.
   */
  findGapTopDown(len: number, low: number, high: number, align: number): number {
    let hi = high;
    let v = this.findPrev(hi);
    for (;;) {
      const gapLo = v === null ? low : Math.max(low, v.end);
      let a = hi - len;
      a -= a % align;
      if (a >= gapLo && a + len <= hi) return a;
      if (v === null || v.start <= low) return -1;
      hi = v.start;
      v = this.prev(v);
    }
  }
}

/** vma_link(): inserts `vma` into `mm`'s tree and its file's i_mmap, and joins its anon_vma. */
export function linkVma(mm: Mm, vma: Vma): void {
  mm.vmas.insert(vma);
  vma.file?.mappings.add(vma);
  vma.anonVma?.mms.add(mm);
}

/** Removes `vma` from `mm`'s tree and its file's i_mmap. */
export function unlinkVma(mm: Mm, vma: Vma): void {
  mm.vmas.remove(vma);
  vma.file?.mappings.delete(vma);
}

/** Models __split_vma(): `vma` keeps [start, at), a new VMA gets [at, end). Returns the new one. */
export async function splitVma(mm: Mm, vma: Vma, at: number): Promise<Vma> {
  await splitBoundaries(mm, vma, at, at);
  const nv = new Vma(
    mm,
    at,
    vma.end,
    vma.flags,
    vma.pgoff + (at - vma.start) / PAGE_SIZE,
    vma.file,
    vma.anonVma,
  );
  nv.privateData = vma.privateData;
  vma.end = at;
  linkVma(mm, nv);
  return nv;
}

/** Isolates [start, end) of `vma` into its own VMA (splitting as needed) and returns it. */
export async function isolate(mm: Mm, vma: Vma, start: number, end: number): Promise<Vma> {
  let v = vma;
  if (start > v.start) v = await splitVma(mm, v, start);
  if (end < v.end) await splitVma(mm, v, end);
  return v;
}

/** Merges `vma` with its neighbours where vma_merge would. Returns the surviving VMA. */
export function mergeAround(mm: Mm, vma: Vma): Vma {
  let v = vma;
  const prev = mm.vmas.prev(v);
  if (prev !== null && vmasMergeable(prev, v)) {
    unlinkVma(mm, v);
    prev.end = v.end;
    prev.anonVma ??= v.anonVma;
    v = prev;
  }
  const next = mm.vmas.next(v);
  if (next !== null && vmasMergeable(v, next)) {
    unlinkVma(mm, next);
    v.end = next.end;
    v.anonVma ??= next.anonVma;
  }
  return v;
}

/** Number of splits (new VMAs) needed to cut [start, end) out of the VMAs it overlaps. */
export function splitsNeeded(mm: Mm, start: number, end: number): number {
  let n = 0;
  const first = mm.vmas.lookup(start);
  if (first !== null && first.start < start) n++;
  const last = mm.vmas.lookup(end - 1);
  if (last !== null && last.end > end) n++;
  if (n === 2 && first === last) return 1;
  return n;
}
