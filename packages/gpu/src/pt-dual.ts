/**
 * The dual PDE of formats with a big (64K) page table beside the 4K one under the same entry
 * (NVIDIA's PDE0): writing both halves, releasing a half whose table emptied, and splitting a
 * big PTE into the 4K PTEs beneath it, valid (64K → 4K) or hidden (unmapped/sparse big page
 * partly unmapped). Fall-through rule: an invalid big PTE lets the walk use the 4K table.
 *
 * @module
 */
import type { CompiledLevel } from './format.ts';
import { APERTURE } from './format.ts';
import { decodeAttrs, encodeAddr, encodeLeaf } from './pt-entry.ts';
import type { PtPool } from './pt-pool.ts';
import type { PtUpdateBatch } from './pt-update.ts';

/** Writes the dual PDE at `o` of `table`: big (64K) table `big` and 4K table `small` (-1 = none). */
export function writeDual(
  p: PtPool,
  L: CompiledLevel,
  table: number,
  o: number,
  big: number,
  small: number,
  batch: PtUpdateBatch,
): void {
  const s = p.scratch;
  s.fill(0);
  if (big >= 0) encodeAddr(L.dualBig!.addr, s, big, APERTURE.VID);
  if (small >= 0) encodeAddr(L.dualSmall!.addr, s, small, APERTURE.VID);
  p.put(table, o, L.words, s, true, batch);
}

/** Frees empty big/small tables of a dual entry and rewrites it if it changed. */
export function releaseDualHalves(
  p: PtPool,
  L: CompiledLevel,
  table: number,
  o: number,
  batch: PtUpdateBatch,
): void {
  const w = p.words;
  let big = L.dualBig!.target(w, o);
  let small = L.dualSmall!.target(w, o);
  let changed = false;
  if (big >= 0 && p.count(big) === 0) {
    p.freeBigTable(L, big);
    big = -1;
    changed = true;
  }
  if (small >= 0 && p.count(small) === 0) {
    p.freeLevelTable(L.index + 1, small);
    small = -1;
    changed = true;
  }
  if (!changed) return;
  if (big < 0 && small < 0) p.zeroEntry(table, o, L.words, true, batch);
  else writeDual(p, L, table, o, big, small, batch);
}

/**
 * A partially unmapped big PTE in the unmapped or sparse state: its 4K PTEs were hidden, so
 * they are dropped; outside [s, e) a sparse big page becomes sparse 4K PTEs (an unmapped one
 * stays unmapped, as invalid 4K PTEs); then the big PTE becomes invalid.
 */
export function splitHiddenBig(
  p: PtPool,
  L: CompiledLevel,
  table: number,
  o: number,
  a64: number,
  s: number,
  e: number,
  batch: PtUpdateBatch,
): void {
  const big = L.dualBig!.target(p.words, o);
  const bo = p.off(big) + (Math.floor(a64 / L.bigSpan) & (L.bigEntries - 1)) * 2;
  const C = p.levels[L.index + 1]!;
  const sparse = L.bigPte!.sparse?.matches(p.words, bo) === true && C.pte!.sparse !== null;
  let small = L.dualSmall!.target(p.words, o);
  if (small < 0 && sparse) {
    small = p.allocLevelTable(L.index + 1);
    writeDual(p, L, table, o, big, small, batch);
  }
  if (small >= 0) {
    for (let a = a64; a < a64 + L.bigSpan; a += C.span) {
      const so = p.off(small) + C.indexOf(a) * C.words;
      const keepSparse = sparse && (a < s || a >= e);
      p.scratch.fill(0);
      if (keepSparse) C.pte!.sparse!.apply(p.scratch, 0, C.words);
      let same = true;
      for (let k = 0; k < C.words; k++) if (p.words[so + k] !== p.scratch[k]) same = false;
      if (!same) p.put(small, so, C.words, p.scratch, false, batch);
    }
  }
  p.zeroEntry(big, bo, 2, false, batch);
}

/** 64K → 4K: write 16 4K PTEs, then make the big PTE invalid (fall through). */
export function splitBig(
  p: PtPool,
  L: CompiledLevel,
  table: number,
  o: number,
  a64: number,
  batch: PtUpdateBatch,
): void {
  const w = p.words;
  const big = L.dualBig!.target(w, o);
  const bo = p.off(big) + (Math.floor(a64 / L.bigSpan) & (L.bigEntries - 1)) * 2;
  const bp = L.bigPte!;
  const attrs = decodeAttrs(bp, w, bo);
  const pa0 = bp.addr.address(w, bo);
  let small = L.dualSmall!.target(w, o);
  const C = p.levels[L.index + 1]!;
  if (small < 0) {
    small = p.allocLevelTable(L.index + 1);
    writeDual(p, L, table, o, big, small, batch);
  }
  const i0 = C.indexOf(a64);
  for (let j = 0; j < L.bigSpan / C.span; j++) {
    encodeLeaf('split', C.pte!, pa0 + j * C.span, attrs, 0, p.scratch);
    p.put(small, p.off(small) + (i0 + j) * C.words, C.words, p.scratch, false, batch);
  }
  p.zeroEntry(big, bo, 2, false, batch);
}
