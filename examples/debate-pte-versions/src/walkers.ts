/**
 * Three ways to walk the same NVIDIA MMU v2 / v3 page tables (the arena of an `@hmmkit/gpu`
 * {@link PageTable}): every walker returns the physical address `va` translates to, or -1.
 *
 * - {@link walkBranchy}: one walker for both versions with an `if (version === 2)` at each place a
 *   field is decoded — the shape of nova-core's `PtWalk::read_pte_at_level` in the v10 series
 *   ("at least 6 `if version == 2 { } else { }` branches … a dozen just to resolve a virtual address").
 * - {@link walkV2} / {@link walkV3}: the same walk written once per version with every bit position
 *   a constant — what monomorphising `PtWalk<M: Mmu>` over a trait produces.
 * - hmmkit's own walker, `PageTable.translateInto` (not here): one loop over compiled field
 *   descriptors, versions as data.
 *
 * Bit positions follow `@hmmkit/gpu`'s presets (dev_mmu.h NV_MMU_VER2_* / VER3_*). The example
 * checks all three agree on every address before it times them.
 */

/** A walker over a page-table arena: returns the PA of `va`, or -1 when it is not mapped. */
export type Walker = (w: Uint32Array, base: number, root: number, va: number) => number;

const P24 = 2 ** 24;
const P20 = 2 ** 20;
const P28 = 2 ** 28;

// ------------------------------------------------------------------ v2, specialised

/** v2 PDE target (aperture 2:1: 0 invalid, 1 VID [32:8], 2/3 SYS [53:8]), or -1. */
function v2Pde(w: Uint32Array, o: number): number {
  const lo = w[o]!;
  const ap = (lo >>> 1) & 3;
  if (ap === 0) return -1;
  const hi = w[o + 1]!;
  return ((lo >>> 8) + (ap === 1 ? hi & 1 : hi & 0x3fffff) * P24) * 4096;
}

/** v2 PTE (valid bit 0 tested by the caller): VID/PEER address [32:8], SYS [53:8], 4K units. */
function v2Pte(w: Uint32Array, o: number, va: number, size: number): number {
  const lo = w[o]!;
  const ap = (lo >>> 1) & 3;
  const hi = w[o + 1]!;
  return ((lo >>> 8) + (ap < 2 ? hi & 1 : hi & 0x3fffff) * P24) * 4096 + (va % size);
}

/** NVIDIA MMU v2 walk, every field position a constant. */
export const walkV2: Walker = (w, base, root, va) => {
  let o = (root - base) / 4 + (Math.floor(va / 2 ** 47) & 3) * 2; // PDE3 48:47
  let t = v2Pde(w, o);
  if (t < 0) return -1;
  o = (t - base) / 4 + (Math.floor(va / 2 ** 38) & 511) * 2; // PDE2 46:38
  t = v2Pde(w, o);
  if (t < 0) return -1;
  o = (t - base) / 4 + (Math.floor(va / 2 ** 29) & 511) * 2; // PDE1 37:29 (may be a 512M PTE)
  if ((w[o]! & 1) === 1) return v2Pte(w, o, va, 2 ** 29);
  t = v2Pde(w, o);
  if (t < 0) return -1;
  o = (t - base) / 4 + (Math.floor(va / 2 ** 21) & 255) * 4; // PDE0 28:21, dual (16 B)
  const w0 = w[o]!;
  if ((w0 & 1) === 1) return v2Pte(w, o, va, 2 ** 21);
  const apBig = (w0 >>> 1) & 3;
  if (apBig !== 0) {
    const w1 = w[o + 1]!;
    const big = ((w0 >>> 4) + (apBig === 1 ? w1 & 1 : w1 & 0x3fffff) * P28) * 256;
    const bo = (big - base) / 4 + (Math.floor(va / 65536) & 31) * 2;
    const b = w[bo]!;
    if ((b & 1) === 1) return v2Pte(w, bo, va, 65536);
    if ((b & 0x20) !== 0 || (b & 0x8) !== 0) return -1; // unmapped (PRIVILEGE) / sparse (VOL): no fall-through
  }
  const w2 = w[o + 2]!;
  const apSmall = (w2 >>> 1) & 3;
  if (apSmall === 0) return -1;
  const w3 = w[o + 3]!;
  t = ((w2 >>> 8) + (apSmall === 1 ? w3 & 1 : w3 & 0x3fffff) * P24) * 4096;
  o = (t - base) / 4 + (Math.floor(va / 4096) & 511) * 2; // PT 20:12
  if ((w[o]! & 1) === 0) return -1;
  return v2Pte(w, o, va, 4096);
};

// ------------------------------------------------------------------ v3, specialised

/** v3 PDE target (aperture 2:1, address 51:12), or -1. */
function v3Pde(w: Uint32Array, o: number): number {
  const lo = w[o]!;
  if (((lo >>> 1) & 3) === 0) return -1;
  return ((lo >>> 12) + (w[o + 1]! & 0xfffff) * P20) * 4096;
}

/** v3 PTE (valid tested by the caller): address 51:12 for every aperture. */
function v3Pte(w: Uint32Array, o: number, va: number, size: number): number {
  return ((w[o]! >>> 12) + (w[o + 1]! & 0xfffff) * P20) * 4096 + (va % size);
}

/** NVIDIA MMU v3 walk, every field position a constant. */
export const walkV3: Walker = (w, base, root, va) => {
  let o = (root - base) / 4 + (Math.floor(va / 2 ** 56) & 1) * 2; // PDE4 56:56
  let t = v3Pde(w, o);
  if (t < 0) return -1;
  o = (t - base) / 4 + (Math.floor(va / 2 ** 47) & 511) * 2; // PDE3 55:47
  t = v3Pde(w, o);
  if (t < 0) return -1;
  o = (t - base) / 4 + (Math.floor(va / 2 ** 38) & 511) * 2; // PDE2 46:38
  t = v3Pde(w, o);
  if (t < 0) return -1;
  o = (t - base) / 4 + (Math.floor(va / 2 ** 29) & 511) * 2; // PDE1 37:29
  if ((w[o]! & 1) === 1) return v3Pte(w, o, va, 2 ** 29);
  t = v3Pde(w, o);
  if (t < 0) return -1;
  o = (t - base) / 4 + (Math.floor(va / 2 ** 21) & 255) * 4; // PDE0 dual
  const w0 = w[o]!;
  if ((w0 & 1) === 1) return v3Pte(w, o, va, 2 ** 21);
  if (((w0 >>> 1) & 3) !== 0) {
    const big = ((w0 >>> 8) + (w[o + 1]! & 0xfffff) * P24) * 256;
    const bo = (big - base) / 4 + (Math.floor(va / 65536) & 31) * 2;
    const b = w[bo]!;
    if ((b & 1) === 1) return v3Pte(w, bo, va, 65536);
    const pcf = (b >>> 3) & 31;
    if (pcf === 3 || pcf === 1) return -1; // NO_VALID_4KB_PAGE / SPARSE: no fall-through
  }
  const w2 = w[o + 2]!;
  if (((w2 >>> 1) & 3) === 0) return -1;
  t = ((w2 >>> 12) + (w[o + 3]! & 0xfffff) * P20) * 4096;
  o = (t - base) / 4 + (Math.floor(va / 4096) & 511) * 2;
  if ((w[o]! & 1) === 0) return -1;
  return v3Pte(w, o, va, 4096);
};

// ------------------------------------------------------------------ one walker, version branches

/** PDE target decoded with a version test (aperture code 0 = no table), or -1. */
function pdeAt(version: number, w: Uint32Array, o: number): number {
  const lo = w[o]!;
  const ap = (lo >>> 1) & 3;
  if (ap === 0) return -1;
  const hi = w[o + 1]!;
  if (version === 2) return ((lo >>> 8) + (ap === 1 ? hi & 1 : hi & 0x3fffff) * P24) * 4096;
  return ((lo >>> 12) + (hi & 0xfffff) * P20) * 4096;
}

/** PTE address decoded with a version test (valid tested by the caller). */
function pteAt(version: number, w: Uint32Array, o: number, va: number, size: number): number {
  const lo = w[o]!;
  const hi = w[o + 1]!;
  const pfn =
    version === 2
      ? (lo >>> 8) + (((lo >>> 1) & 3) < 2 ? hi & 1 : hi & 0x3fffff) * P24
      : (lo >>> 12) + (hi & 0xfffff) * P20;
  return pfn * 4096 + (va % size);
}

/**
 * The shared walker: the same steps as {@link walkV2}/{@link walkV3}, one function for both
 * versions, with a version test wherever a field is decoded (`version` is 2 or 3).
 */
export function walkBranchy(version: number, w: Uint32Array, base: number, root: number, va: number): number {
  let t = root;
  let o: number;
  if (version === 3) {
    o = (t - base) / 4 + (Math.floor(va / 2 ** 56) & 1) * 2; // v3 PDE4
    t = pdeAt(version, w, o);
    if (t < 0) return -1;
  }
  o = (t - base) / 4 + (Math.floor(va / 2 ** 47) & (version === 2 ? 3 : 511)) * 2; // PDE3
  t = pdeAt(version, w, o);
  if (t < 0) return -1;
  o = (t - base) / 4 + (Math.floor(va / 2 ** 38) & 511) * 2; // PDE2
  t = pdeAt(version, w, o);
  if (t < 0) return -1;
  o = (t - base) / 4 + (Math.floor(va / 2 ** 29) & 511) * 2; // PDE1
  if ((w[o]! & 1) === 1) return pteAt(version, w, o, va, 2 ** 29);
  t = pdeAt(version, w, o);
  if (t < 0) return -1;
  o = (t - base) / 4 + (Math.floor(va / 2 ** 21) & 255) * 4; // PDE0, dual
  const w0 = w[o]!;
  if ((w0 & 1) === 1) return pteAt(version, w, o, va, 2 ** 21);
  const apBig = (w0 >>> 1) & 3;
  if (apBig !== 0) {
    const w1 = w[o + 1]!;
    const big =
      version === 2
        ? ((w0 >>> 4) + (apBig === 1 ? w1 & 1 : w1 & 0x3fffff) * P28) * 256
        : ((w0 >>> 8) + (w1 & 0xfffff) * P24) * 256;
    const bo = (big - base) / 4 + (Math.floor(va / 65536) & 31) * 2;
    const b = w[bo]!;
    if ((b & 1) === 1) return pteAt(version, w, bo, va, 65536);
    const stop = version === 2 ? (b & 0x28) !== 0 : ((b >>> 3) & 31) === 3 || ((b >>> 3) & 31) === 1;
    if (stop) return -1;
  }
  const w2 = w[o + 2]!;
  const apSmall = (w2 >>> 1) & 3;
  if (apSmall === 0) return -1;
  const w3 = w[o + 3]!;
  t =
    version === 2
      ? ((w2 >>> 8) + (apSmall === 1 ? w3 & 1 : w3 & 0x3fffff) * P24) * 4096
      : ((w2 >>> 12) + (w3 & 0xfffff) * P20) * 4096;
  o = (t - base) / 4 + (Math.floor(va / 4096) & 511) * 2; // PT
  if ((w[o]! & 1) === 0) return -1;
  return pteAt(version, w, o, va, 4096);
}
