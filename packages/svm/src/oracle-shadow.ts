/**
 * The oracle's data shadow: the last value written to each byte of a process's private anonymous
 * memory, by a CPU store or a GPU store/atomic, so that every later load (CPU or GPU) can be
 * compared with it. A load that returns anything else is a lost write (or a read of another
 * page's data).
 *
 * Sparse by construction: a page has a shadow only once a byte of it was written, and then one
 * 4 KiB `Uint8Array` of values plus one of "known" marks. Content that Linux legitimately
 * discards (the PTE of a private anonymous page is empty after munmap or MADV_DONTNEED, so the
 * next touch reads zeros) is forgotten by {@link DataShadow.forgetPage}; the oracle decides when.
 *
 * @module
 */

import { modPow2, pow2 } from '@hmmkit/sim';

const PAGE = 4096;

/** One page's shadow: values and which bytes are known. */
interface ShadowPage {
  readonly bytes: Uint8Array;
  readonly known: Uint8Array;
}

/** A mismatch found by {@link DataShadow.check}: where, and the expected and loaded values. */
export interface ShadowMismatch {
  /** Address of the first differing value (a 4-byte-aligned word when the load covers it, else a byte). */
  readonly va: number;
  /** Width of the compared value in bytes (4 or 1). */
  readonly width: number;
  /** The last value written there. */
  readonly expected: number;
  /** The value the load returned. */
  readonly actual: number;
}

/** Last-written values of written bytes, per page (see the module comment). */
export class DataShadow {
  private readonly pages = new Map<number, ShadowPage>();

  /** Pages with a shadow. */
  get size(): number {
    return this.pages.size;
  }

  /** Whether the page of `va` has a shadow (some byte of it was stored). */
  hasPage(va: number): boolean {
    return this.pages.has(Math.floor(va / PAGE));
  }

  /** Records a store of `n` bytes `src[off..off+n)` at `va` (may cross pages). */
  record(va: number, src: Uint8Array, off: number, n: number): void {
    let done = 0;
    while (done < n) {
      const a = va + done;
      const page = Math.floor(a / PAGE);
      const o = a - page * PAGE;
      const len = Math.min(PAGE - o, n - done);
      let p = this.pages.get(page);
      if (p === undefined) {
        p = { bytes: new Uint8Array(PAGE), known: new Uint8Array(PAGE) };
        this.pages.set(page, p);
      }
      p.bytes.set(src.subarray(off + done, off + done + len), o);
      p.known.fill(1, o, o + len);
      done += len;
    }
  }

  /** Records a 32-bit little-endian store of `value` at `va` (4-byte aligned). */
  recordU32(va: number, value: number): void {
    const page = Math.floor(va / PAGE);
    const o = va - page * PAGE;
    let p = this.pages.get(page);
    if (p === undefined) {
      p = { bytes: new Uint8Array(PAGE), known: new Uint8Array(PAGE) };
      this.pages.set(page, p);
    }
    for (let k = 0; k < 4; k++) {
      p.bytes[o + k] = modPow2(Math.floor(value / pow2(8 * k)), 256);
      p.known[o + k] = 1;
    }
  }

  /**
   * Compares a load of `n` bytes `buf[off..off+n)` from `va` with the shadow; returns the first
   * mismatch or null. Bytes never written are not compared.
   */
  check(va: number, buf: Uint8Array, off: number, n: number): ShadowMismatch | null {
    let done = 0;
    while (done < n) {
      const a = va + done;
      const page = Math.floor(a / PAGE);
      const o = a - page * PAGE;
      const len = Math.min(PAGE - o, n - done);
      const p = this.pages.get(page);
      if (p !== undefined) {
        for (let k = 0; k < len; k++) {
          if (p.known[o + k] === 1 && p.bytes[o + k] !== buf[off + done + k]) {
            return this.mismatch(va, buf, off, n, done + k);
          }
        }
      }
      done += len;
    }
    return null;
  }

  /** Compares a 32-bit little-endian load of `value` at `va` (4-byte aligned) with the shadow. */
  checkU32(va: number, value: number): ShadowMismatch | null {
    const page = Math.floor(va / PAGE);
    const p = this.pages.get(page);
    if (p === undefined) return null;
    const o = va - page * PAGE;
    let expected = 0;
    let differs = false;
    for (let k = 3; k >= 0; k--) {
      const got = modPow2(Math.floor(value / pow2(8 * k)), 256);
      const want = p.known[o + k] === 1 ? p.bytes[o + k]! : got;
      if (want !== got) differs = true;
      expected = expected * 256 + want;
    }
    return differs ? { va, width: 4, expected, actual: value } : null;
  }

  /** Forgets page `pageVa` (its content was legitimately discarded). */
  forgetPage(pageVa: number): void {
    this.pages.delete(Math.floor(pageVa / PAGE));
  }

  /** Calls `fn(pageVa)` for every shadowed page in `[start, end)` (cold: invalidation ends). */
  forEachPage(start: number, end: number, fn: (pageVa: number) => void): void {
    const first = Math.floor(start / PAGE);
    const last = Math.ceil(end / PAGE);
    if (last - first <= this.pages.size) {
      for (let p = first; p < last; p++) if (this.pages.has(p)) fn(p * PAGE);
    } else {
      for (const p of [...this.pages.keys()]) if (p >= first && p < last) fn(p * PAGE);
    }
  }

  /** Forgets everything. */
  clear(): void {
    this.pages.clear();
  }

  /** The word (or byte) around byte `at` of a load, expected value overlaid from the shadow. */
  private mismatch(va: number, buf: Uint8Array, off: number, n: number, at: number): ShadowMismatch {
    const a = va + at;
    const w = a - (a % 4);
    if (w >= va && w + 4 <= va + n) {
      let expected = 0;
      let actual = 0;
      for (let k = 3; k >= 0; k--) {
        const got = buf[off + (w - va) + k]!;
        const p = this.pages.get(Math.floor((w + k) / PAGE))!;
        const o = (w + k) % PAGE;
        expected = expected * 256 + (p.known[o] === 1 ? p.bytes[o]! : got);
        actual = actual * 256 + got;
      }
      return { va: w, width: 4, expected, actual };
    }
    const p = this.pages.get(Math.floor(a / PAGE))!;
    return { va: a, width: 1, expected: p.bytes[a % PAGE]!, actual: buf[off + at]! };
  }
}
