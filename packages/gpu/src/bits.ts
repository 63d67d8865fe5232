/**
 * 64- and 128-bit entry words held as 32-bit halves in a `Uint32Array`, without BigInt.
 *
 * A page-table entry of 8 bytes is two consecutive `Uint32Array` elements (low half first, as a
 * little-endian GPU sees it); a 16-byte dual PDE is four. A field is named by its inclusive bit
 * range `[hi, lo]` over the whole entry, as `dev_mmu.h` writes `NV_MMU_VER2_PTE_ADDRESS_VID 32:8`.
 * Fields may straddle a 32-bit boundary and be up to 53 bits wide (values stay exact in a double).
 *
 * @module
 */
import { ArgumentError, modPow2, pow2 } from '@hmmkit/sim';

/** An inclusive bit range `[hi, lo]` within an entry (bit 64 is bit 0 of the second 64-bit word). */
export type BitField = readonly [hi: number, lo: number];

const TWO32 = 4294967296;

/**
 * A field compiled for fast access: where it starts, how many bits come from each 32-bit word.
 * Reading never allocates; writing validates the value first.
 */
export class CompiledField implements IndexField {
  /** Field name (for error messages). */
  readonly name: string;
  readonly hi: number;
  readonly lo: number;
  /** Width in bits (1..53). */
  readonly width: number;
  /** Largest value the field holds: 2^width − 1. */
  readonly max: number;
  /** Index of the 32-bit word holding bit `lo`, relative to the entry. */
  readonly word: number;
  /** Bit offset of `lo` in that word. */
  readonly shift: number;
  /** Bits taken from the first word. */
  readonly loBits: number;
  /** Mask of the first word's part (after shifting down); only valid when loBits < 32. */
  private readonly loMask: number;
  /** Bits taken from the following word (0 when the field fits in one word). */
  readonly hiBits: number;
  private readonly hiMask: number;
  private readonly loScale: number;

  constructor(name: string, field: BitField, entryBits: number) {
    const [hi, lo] = field;
    if (!Number.isInteger(hi) || !Number.isInteger(lo) || lo < 0 || hi < lo || hi >= entryBits) {
      throw new ArgumentError('CompiledField', name, `must be [hi, lo] with 0 <= lo <= hi < ${entryBits}`, [
        hi,
        lo,
      ]);
    }
    const width = hi - lo + 1;
    if (width > 53) throw new ArgumentError('CompiledField', name, 'must be at most 53 bits wide', field);
    this.name = name;
    this.hi = hi;
    this.lo = lo;
    this.width = width;
    this.max = 2 ** width - 1;
    this.word = Math.floor(lo / 32);
    this.shift = lo % 32;
    this.loBits = Math.min(width, 32 - this.shift);
    this.loMask = this.loBits >= 32 ? 0 : 2 ** this.loBits - 1;
    this.hiBits = width - this.loBits;
    this.hiMask = this.hiBits >= 32 || this.hiBits === 0 ? 0 : 2 ** this.hiBits - 1;
    this.loScale = 2 ** this.loBits;
  }

  /** Reads the field of the entry whose first word is `w[base]`. */
  read(w: Uint32Array, base: number): number {
    const i = base + this.word;
    const hiBits = this.hiBits;
    if (hiBits === 0) return this.loBits === 32 ? w[i]! : (w[i]! >>> this.shift) & this.loMask;
    if (hiBits > 31) return readBits(w, base, this.hi, this.lo);
    // loBits < 32 here unless shift = 0 and width > 32: then (x >>> 0) & mask would lose bits
    const first = this.loBits === 32 ? w[i]! : (w[i]! >>> this.shift) & this.loMask;
    return first + (w[i + 1]! & this.hiMask) * this.loScale;
  }

  /** True when `value` is an integer that fits the field. */
  fits(value: number): boolean {
    return Number.isInteger(value) && value >= 0 && value <= this.max;
  }

  /**
   * Writes `value` into the entry at `w[base]`; other bits are kept. A value that does not fit
   * the field throws {@link ArgumentError} before anything is written.
   */
  write(w: Uint32Array, base: number, value: number): void {
    if (!(value >= 0 && value <= this.max && Number.isInteger(value))) {
      throw new ArgumentError(
        'CompiledField.write',
        this.name,
        `must hold a value in [0, ${this.max}]`,
        value,
      );
    }
    writeBits(w, base, this.hi, this.lo, value);
  }
}

/** A field that holds a small index: a {@link CompiledField} or a {@link ScatteredField}. */
export interface IndexField {
  readonly name: string;
  /** Width in bits. */
  readonly width: number;
  /** Largest value: 2^width − 1. */
  readonly max: number;
  /** True when `value` is an integer that fits. */
  fits(value: number): boolean;
  /** Reads the value of the entry whose first word is `w[base]`. */
  read(w: Uint32Array, base: number): number;
  /** Writes `value` (ArgumentError before any write when it does not fit); other bits are kept. */
  write(w: Uint32Array, base: number, value: number): void;
}

/**
 * A value whose bits are spread over several fields of an entry, least significant part first:
 * Intel's PAT index is PAT0 (bit 3), PAT1 (4), PAT2 (7, or 12 in a huge leaf), PAT3 (62), PAT4 (61)
 * (xe_vm.c pte_encode_pat_index). Part `k` holds the next `parts[k].width` bits of the value.
 */
export class ScatteredField implements IndexField {
  readonly name: string;
  readonly width: number;
  readonly max: number;
  private readonly parts: readonly CompiledField[];

  constructor(name: string, parts: readonly CompiledField[]) {
    if (parts.length === 0) throw new ArgumentError('ScatteredField', name, 'needs at least one part', parts);
    this.name = name;
    this.parts = parts;
    this.width = parts.reduce((n, f) => n + f.width, 0);
    if (this.width > 31)
      throw new ArgumentError('ScatteredField', name, 'must be at most 31 bits wide', this.width);
    this.max = 2 ** this.width - 1;
  }

  fits(value: number): boolean {
    return Number.isInteger(value) && value >= 0 && value <= this.max;
  }

  read(w: Uint32Array, base: number): number {
    let v = 0;
    let scale = 1;
    for (const f of this.parts) {
      v += f.read(w, base) * scale;
      scale *= 2 ** f.width;
    }
    return v;
  }

  write(w: Uint32Array, base: number, value: number): void {
    if (!this.fits(value)) {
      throw new ArgumentError(
        'ScatteredField.write',
        this.name,
        `must hold a value in [0, ${this.max}]`,
        value,
      );
    }
    let rest = value;
    for (const f of this.parts) {
      const span = pow2(f.width);
      f.write(w, base, modPow2(rest, span));
      rest = Math.floor(rest / span);
    }
  }
}

/** Reads bits `[hi, lo]` of the entry at `w[base]` (generic, any span up to 53 bits). */
export function readBits(w: Uint32Array, base: number, hi: number, lo: number): number {
  let result = 0;
  let scale = 1;
  let bit = lo;
  while (bit <= hi) {
    const off = bit % 32;
    const n = Math.min(32 - off, hi - bit + 1);
    const word = w[base + Math.floor(bit / 32)]!;
    const chunk = n === 32 ? word : (word >>> off) & (pow2(n) - 1);
    result += chunk * scale;
    scale *= pow2(n);
    bit += n;
  }
  return result;
}

/**
 * Writes `value` into bits `[hi, lo]` of the entry at `w[base]`. The caller has checked that
 * `0 <= value < 2^(hi-lo+1)`; other bits are preserved.
 */
export function writeBits(w: Uint32Array, base: number, hi: number, lo: number, value: number): void {
  let bit = lo;
  let rest = value;
  while (bit <= hi) {
    const off = bit % 32;
    const n = Math.min(32 - off, hi - bit + 1);
    const i = base + Math.floor(bit / 32);
    if (n === 32) {
      w[i] = modPow2(rest, TWO32);
      rest = Math.floor(rest / TWO32);
    } else {
      const span = pow2(n);
      const part = modPow2(rest, span);
      rest = Math.floor(rest / span);
      const mask = ((span - 1) << off) >>> 0;
      w[i] = ((w[i]! & ~mask) | (part << off)) >>> 0;
    }
    bit += n;
  }
}

/**
 * A set of field values that an entry either matches or gets written with, compiled to
 * per-word (mask, value) pairs: `VALID = 1`, `PCF = NO_VALID_4KB_PAGE`, `PDE_PTE = 1`.
 * Matching is four masked compares; no field decoding.
 */
export class Pattern {
  /** Masks of words 0..3 (signed int32 form, as `&` yields). */
  readonly m0: number;
  readonly m1: number;
  readonly m2: number;
  readonly m3: number;
  /** Values of words 0..3 under their masks (signed int32 form). */
  readonly v0: number;
  readonly v1: number;
  readonly v2: number;
  readonly v3: number;
  /** True when the pattern constrains no bit (matches everything). */
  readonly empty: boolean;

  constructor(fields: readonly (readonly [CompiledField, number])[]) {
    const m = new Uint32Array(4);
    const v = new Uint32Array(4);
    for (const [f, value] of fields) {
      if (!f.fits(value)) {
        throw new ArgumentError('Pattern', f.name, `must hold a value in [0, ${f.max}]`, value);
      }
      writeBits(m, 0, f.hi, f.lo, f.max);
      writeBits(v, 0, f.hi, f.lo, value);
    }
    this.m0 = m[0]! | 0;
    this.m1 = m[1]! | 0;
    this.m2 = m[2]! | 0;
    this.m3 = m[3]! | 0;
    this.v0 = v[0]! | 0;
    this.v1 = v[1]! | 0;
    this.v2 = v[2]! | 0;
    this.v3 = v[3]! | 0;
    this.empty = fields.length === 0;
  }

  /** True when the entry at `w[base]` has every field of the pattern at its value. */
  matches(w: Uint32Array, base: number): boolean {
    if ((w[base]! & this.m0) !== this.v0) return false;
    if ((w[base + 1]! & this.m1) !== this.v1) return false;
    if (this.m2 === 0 && this.m3 === 0) return true;
    return (w[base + 2]! & this.m2) === this.v2 && (w[base + 3]! & this.m3) === this.v3;
  }

  /** ORs the pattern's values into the entry at `w[base]` (the fields are assumed zero). */
  apply(w: Uint32Array, base: number, words: number): void {
    w[base] = (w[base]! | this.v0) >>> 0;
    w[base + 1] = (w[base + 1]! | this.v1) >>> 0;
    if (words > 2) {
      w[base + 2] = (w[base + 2]! | this.v2) >>> 0;
      w[base + 3] = (w[base + 3]! | this.v3) >>> 0;
    }
  }
}

/** Formats an entry as hex (high word first), e.g. `0x00000000_01234501`, for messages and tests. */
export function entryHex(w: Uint32Array, base: number, words: number): string {
  const parts: string[] = [];
  for (let i = words - 1; i >= 0; i--) parts.push(w[base + i]!.toString(16).padStart(8, '0'));
  return `0x${parts.join('_')}`;
}
