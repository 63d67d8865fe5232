/**
 * The one generic page walker ({@link walk}) and its result ({@link Translation}), plus the
 * PDE-only descents the update paths use. How versions stay out of the walker: it only ever
 * asks compiled objects of the level it is on: "is this entry a leaf?" (`leafTest` pattern),
 * "where does this PDE point?" (aperture code → address field → shift), "is this PTE valid /
 * unmapped / sparse?" (mask and value compares). Bit positions, aperture encodings and address
 * shifts are data in the format; the loop is the same for NVIDIA v2, v3 and AMD GFX9.
 *
 * @module
 */
import { modPow2, pow2, StateError } from '@hmmkit/sim';
import type { CompiledPte } from './format.ts';
import { APERTURE, type Aperture } from './format.ts';
import type { PtPool } from './pt-pool.ts';

/** Outcome of a walk. */
export const WALK = {
  /** A valid leaf maps the address. */
  MAPPED: 0,
  /** A sparse leaf: reads return zero, writes are dropped, no fault. */
  SPARSE: 1,
  /** A PDE on the way down points nowhere. */
  NO_TABLE: 2,
  /** The leaf is invalid (zero, or an invalid encoding other than sparse). */
  INVALID_PTE: 3,
  /** A big PTE in the "unmapped" state: fault without looking at the 4K table. */
  UNMAPPED: 4,
} as const;
/** One of the {@link WALK} values. */
export type WalkStatus = (typeof WALK)[keyof typeof WALK];
/** Names of {@link WALK} values, by value. */
export const WALK_NAMES = ['MAPPED', 'SPARSE', 'NO_TABLE', 'INVALID_PTE', 'UNMAPPED'] as const;

/** A reusable walk result (filled by {@link PageTable.translateInto}; no allocation per walk). */
export class Translation {
  status: WalkStatus = WALK.NO_TABLE;
  /** Physical byte address of the translated VA (MAPPED only). */
  pa = 0;
  /** Aperture of the target memory (APERTURE value). */
  aperture: Aperture = APERTURE.VID;
  /** log2 of the page size the leaf maps (fragment included). */
  pageShift = 12;
  writable = false;
  atomic = false;
  /** Caching-policy (PAT/MTYPE) index of the leaf; 0 where the format has none. */
  pat = 0;
  volatile = false;
  /** Peer GPU id when `aperture` is PEER (else 0). */
  peerId = 0;
  /** Level index where the walk ended. */
  level = 0;
  /** True when the walk ended in a dual level's big (64K) table. */
  big = false;

  /** 4K page frame number of `pa`. */
  get pfn(): number {
    return Math.floor(this.pa / 4096);
  }
  /** Page size in bytes. */
  get pageSize(): number {
    return pow2(this.pageShift);
  }
}

/**
 * Walks the tree for `va` (the one generic walker): fills `out` and returns its status.
 * Models the GPU MMU's page walk (no cost charged here; the engine charges gpuPageWalkNs).
 */
export function walk(p: PtPool, va: number, out: Translation): WalkStatus {
  const w = p.words;
  const base = p.poolBase;
  const levels = p.levels;
  let table = p.rootAddr;
  for (let i = 0; i < levels.length; i++) {
    const L = levels[i]!;
    const o = (table - base) * 0.25 + (Math.floor(va * L.invSpan) & L.indexMask) * L.words;
    const pte = L.pte;
    if (pte !== null && (L.leafTest === null || L.leafTest.matches(w, o))) {
      out.big = false;
      return leaf(pte, L.shift, w, o, va, out, i);
    }
    const bigHalf = L.dualBig;
    if (bigHalf !== null) {
      const big = bigHalf.target(w, o);
      if (big >= 0) {
        const bo = (big - base) * 0.25 + (Math.floor(va * L.invBigSpan) & (L.bigEntries - 1)) * 2;
        const bp = L.bigPte!;
        out.big = true;
        if (bp.valid.matches(w, bo)) return leaf(bp, L.bigShift, w, bo, va, out, i);
        if (bp.unmapped?.matches(w, bo)) {
          out.level = i;
          out.status = WALK.UNMAPPED;
          return WALK.UNMAPPED;
        }
        if (bp.sparse?.matches(w, bo)) {
          out.level = i;
          out.status = WALK.SPARSE;
          return WALK.SPARSE;
        }
        out.big = false; // invalid big PTE: fall through to the 4K table
      }
      table = L.dualSmall!.target(w, o);
    } else {
      table = L.pde!.target(w, o);
    }
    if (table < 0) {
      out.level = i;
      out.big = false;
      out.status = WALK.NO_TABLE;
      return WALK.NO_TABLE;
    }
  }
  throw new StateError('PageTable.translateInto', 'walk fell off the last level (format bug)');
}

/** The table that holds `va`'s entry at `level` (walks existing PDEs; they must exist). */
export function parentEntryTable(p: PtPool, va: number, level: number): number {
  let table = p.rootAddr;
  for (let i = 0; i < level; i++) {
    const L = p.levels[i]!;
    const o = p.off(table) + L.indexOf(va) * L.words;
    table = (L.dualSmall ?? L.pde!).target(p.words, o);
  }
  return table;
}

/** The existing table holding `va`'s entries at `level`, or -1. */
export function existingTable(p: PtPool, va: number, level: number): number {
  const w = p.words;
  let table = p.rootAddr;
  for (let i = 0; i < level; i++) {
    const L = p.levels[i]!;
    const o = p.off(table) + L.indexOf(va) * L.words;
    if (L.leafTest?.matches(w, o)) return -1;
    table = (L.dualSmall ?? L.pde!).target(w, o);
    if (table < 0) return -1;
  }
  return table;
}

function leaf(
  pte: CompiledPte,
  shift: number,
  w: Uint32Array,
  o: number,
  va: number,
  out: Translation,
  level: number,
): WalkStatus {
  out.level = level;
  if (!pte.valid.matches(w, o)) {
    if (pte.sparse?.matches(w, o)) {
      out.status = WALK.SPARSE;
      return WALK.SPARSE;
    }
    out.status = WALK.INVALID_PTE;
    return WALK.INVALID_PTE;
  }
  const frag = pte.fragment === null ? 0 : pte.fragment.read(w, o);
  out.pageShift = shift + frag;
  const a = pte.addr;
  const code = a.apertureField === null ? 0 : a.apertureField.read(w, o);
  const f = a.addrByCode[code];
  if (f === null || f === undefined) {
    out.status = WALK.INVALID_PTE; // a valid bit with an aperture code the format does not define
    return WALK.INVALID_PTE;
  }
  out.pa = f.read(w, o) * a.scale + modPow2(va, pow2(shift));
  out.aperture = a.kindByCode[code] as Aperture;
  out.peerId = out.aperture === APERTURE.PEER && pte.peerId !== null ? pte.peerId.read(w, o) : 0;
  out.writable = pte.isWritable(w, o);
  out.atomic = pte.isAtomic(w, o);
  out.volatile = pte.volatile?.matches(w, o) === true;
  out.pat = pte.pat === null ? 0 : pte.pat.read(w, o);
  out.status = WALK.MAPPED;
  return WALK.MAPPED;
}
