/**
 * Page masks: fixed-size bitmaps over the 4 KiB pages of a 2 MiB VA block (512 bits in 16 `Uint32`
 * words), the analog of UVM's `uvm_page_mask_t`. Every helper works on any word count so the tree
 * prefetcher can use a few ghost leaves past 512.
 *
 * @module
 */

/** Pages in a 2 MiB block (`PAGES_PER_UVM_VA_BLOCK`). */
export const PAGES_PER_BLOCK = 512;
/** Words in a {@link PageMask} of one block. */
export const PAGE_MASK_WORDS = 16;

/** A bitmap over the pages of one 2 MiB block: bit `i` (word `i >> 5`, bit `i & 31`) is page `i`. */
export type PageMask = Uint32Array;

/** A zeroed mask of `bits` bits (default one 2 MiB block). */
export function pageMaskNew(bits: number = PAGES_PER_BLOCK): PageMask {
  return new Uint32Array(Math.ceil(bits / 32));
}

/** popcount of a 32-bit word. */
export function popcount32(x: number): number {
  let v = x - ((x >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

/** Whether bit `i` is set. */
export function pageMaskTest(m: PageMask, i: number): boolean {
  return ((m[i >> 5] ?? 0) & (1 << (i & 31))) !== 0;
}

/** Sets bit `i`. */
export function pageMaskSet(m: PageMask, i: number): void {
  m[i >> 5] = (m[i >> 5] ?? 0) | (1 << (i & 31));
}

/** Clears bit `i`. */
export function pageMaskClear(m: PageMask, i: number): void {
  m[i >> 5] = (m[i >> 5] ?? 0) & ~(1 << (i & 31));
}

/** Mask of the bits `[lo, hi)` of one word (0 <= lo <= hi <= 32). */
function wordBits(lo: number, hi: number): number {
  if (hi <= lo) return 0;
  const upper = hi === 32 ? 0xffffffff : (1 << hi) - 1;
  return (upper & ~((1 << lo) - 1)) >>> 0;
}

/** Sets bits `[first, outer)` (`uvm_page_mask_region_fill`). */
export function pageMaskFill(m: PageMask, first: number, outer: number): void {
  for (let w = first >> 5; w < m.length && w * 32 < outer; w++) {
    const lo = Math.max(first - w * 32, 0);
    const hi = Math.min(outer - w * 32, 32);
    m[w] = (m[w] ?? 0) | wordBits(lo, hi);
  }
}

/** Clears bits `[first, outer)`. */
export function pageMaskClearRange(m: PageMask, first: number, outer: number): void {
  for (let w = first >> 5; w < m.length && w * 32 < outer; w++) {
    const lo = Math.max(first - w * 32, 0);
    const hi = Math.min(outer - w * 32, 32);
    m[w] = (m[w] ?? 0) & ~wordBits(lo, hi);
  }
}

/** Number of set bits in `[first, outer)`. */
export function pageMaskWeight(m: PageMask, first = 0, outer: number = m.length * 32): number {
  let n = 0;
  for (let w = first >> 5; w < m.length && w * 32 < outer; w++) {
    const lo = Math.max(first - w * 32, 0);
    const hi = Math.min(outer - w * 32, 32);
    n += popcount32((m[w] ?? 0) & wordBits(lo, hi));
  }
  return n;
}

/** Whether no bit of `[first, outer)` is set (`uvm_page_mask_region_empty`). */
export function pageMaskEmpty(m: PageMask, first = 0, outer: number = m.length * 32): boolean {
  for (let w = first >> 5; w < m.length && w * 32 < outer; w++) {
    const lo = Math.max(first - w * 32, 0);
    const hi = Math.min(outer - w * 32, 32);
    if (((m[w] ?? 0) & wordBits(lo, hi)) !== 0) return false;
  }
  return true;
}

/** Index of the first set bit at or after `from`, or -1. */
export function pageMaskNext(m: PageMask, from = 0): number {
  const bits = m.length * 32;
  for (let i = from; i < bits; ) {
    const w = m[i >> 5] ?? 0;
    const rest = w >>> (i & 31);
    if (rest === 0) {
      i = (i | 31) + 1;
      continue;
    }
    return i + (31 - Math.clz32(rest & -rest));
  }
  return -1;
}

/** Index of the last set bit, or -1. */
export function pageMaskLast(m: PageMask): number {
  for (let w = m.length - 1; w >= 0; w--) {
    const v = m[w] ?? 0;
    if (v !== 0) return w * 32 + 31 - Math.clz32(v);
  }
  return -1;
}

/** `dst = a | b` (word count of dst). */
export function pageMaskOr(dst: PageMask, a: PageMask, b: PageMask): void {
  for (let w = 0; w < dst.length; w++) dst[w] = ((a[w] ?? 0) | (b[w] ?? 0)) >>> 0;
}

/** `dst = a & ~b`. */
export function pageMaskAndNot(dst: PageMask, a: PageMask, b: PageMask): void {
  for (let w = 0; w < dst.length; w++) dst[w] = ((a[w] ?? 0) & ~(b[w] ?? 0)) >>> 0;
}

/** The 32 bits of `m` from bit `bit` on (any offset ≥ 0; bits past the end read 0). */
export function pageMaskWord(m: PageMask, bit: number): number {
  const w = bit >>> 5;
  const b = bit & 31;
  const lo = (m[w] ?? 0) >>> b;
  return b === 0 ? lo : (lo | ((m[w + 1] ?? 0) << (32 - b))) >>> 0;
}

/** `dst = src << shift` (towards higher page indices; bits past the end are dropped). */
export function pageMaskShiftLeft(dst: PageMask, src: PageMask, shift: number): void {
  const tmp = new Uint32Array(dst.length);
  for (let i = pageMaskNext(src, 0); i >= 0; i = pageMaskNext(src, i + 1)) {
    const j = i + shift;
    if (j < tmp.length * 32) tmp[j >> 5] = (tmp[j >> 5] ?? 0) | (1 << (j & 31));
  }
  dst.set(tmp);
}

/** Set bits as an ascending array of indices (for tests and debugging). */
export function pageMaskToArray(m: PageMask): number[] {
  const out: number[] = [];
  for (let i = pageMaskNext(m, 0); i >= 0; i = pageMaskNext(m, i + 1)) out.push(i);
  return out;
}
