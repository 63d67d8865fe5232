/**
 * A device page table in any {@link PtFormat}: tables allocated per level from a simulated
 * table pool (one `Uint32Array` arena at a physical VID base, `pt-pool.ts`), real 64/128-bit
 * entries (`pt-entry.ts`), 4K/64K/2M (and larger) leaves, the dual-PDE big/small fall-through
 * states (`pt-dual.ts`), splits, and one format-generic walker (`pt-walk.ts`). This file holds
 * the update operations: map, unmap, split and explicit leaf states; `pt-inspect.ts` the cold
 * inspection paths.
 *
 * @module
 */
import { ArgumentError, pow2, type Sim, StateError } from '@hmmkit/sim';
import type { CompiledField } from './bits.ts';
import type { CompiledLevel, CompiledPte, PtFormat } from './format.ts';
import { APERTURE } from './format.ts';
import { releaseDualHalves, splitBig, splitHiddenBig, writeDual } from './pt-dual.ts';
import { checkVa, decodeAttrs, encodeLeaf, type LeafState, type MapAttrs } from './pt-entry.ts';
import { forEachMapping, type MappingInfo, readEntry, stats } from './pt-inspect.ts';
import { PtPool } from './pt-pool.ts';
import { PtUpdateBatch } from './pt-update.ts';
import { existingTable, parentEntryTable, Translation, WALK, type WalkStatus, walk } from './pt-walk.ts';

export type { LeafState, MapAttrs } from './pt-entry.ts';
export type { MappingInfo } from './pt-inspect.ts';
export { Translation, WALK, WALK_NAMES, type WalkStatus } from './pt-walk.ts';

/** Options of a {@link PageTable}. */
export interface PageTableOptions {
  /** Physical base of the table pool (default: the format's `tablePoolBase`). */
  readonly poolBase?: number;
  /** Counter name prefix of the default BAR0 batch (default 'gpu'). */
  readonly counterPrefix?: string;
}

/** A device page table. See the module comment. */
export class PageTable {
  readonly sim: Sim;
  readonly format: PtFormat;
  readonly levels: readonly CompiledLevel[];
  /** Physical base address of the table pool. */
  readonly poolBase: number;
  /** Physical address of the root table. */
  readonly rootAddr: number;
  /** First address the format's PDEs cannot name: the pool must stay below it. */
  readonly poolLimit: number;
  /** Tables currently allocated, per level (the big tables of a dual level counted apart). */
  readonly tablesPerLevel: Int32Array;
  /** The default batch used when a call passes none: BAR0 writes, charged at once. */
  readonly bar0: PtUpdateBatch;
  /** The table arena and its bookkeeping. */
  private readonly pool: PtPool;
  /** The leaf being mapped, with address 0 (see mapPages). */
  private readonly template = new Uint32Array(4);
  private tmplAddr: CompiledField | null = null;
  private tmplScale = 4096;
  /** Tables visited by the last ensurePath, per level. */
  private readonly pathTable: Float64Array;
  private readonly tr = new Translation();

  constructor(sim: Sim, format: PtFormat, options: PageTableOptions = {}) {
    this.sim = sim;
    this.format = format;
    this.levels = format.levels;
    this.pool = new PtPool(format, options.poolBase ?? format.tablePoolBase);
    this.poolBase = this.pool.poolBase;
    this.poolLimit = this.pool.poolLimit;
    this.rootAddr = this.pool.rootAddr;
    this.tablesPerLevel = this.pool.tablesPerLevel;
    this.pathTable = new Float64Array(format.levels.length);
    this.bar0 = new PtUpdateBatch(sim, 'bar0', options.counterPrefix ?? 'gpu');
  }

  /** The pool's contents: every table's entries, 32-bit halves, low half first. */
  get words(): Uint32Array {
    return this.pool.words;
  }

  /** Big (64K) tables currently allocated. */
  get bigTables(): number {
    return this.pool.bigTables;
  }

  /** 8-byte PTE writes made on this table (all batches). */
  get pteWrites(): number {
    return this.pool.pteWrites;
  }

  /** 8-byte PDE writes made on this table (all batches). */
  get pdeWrites(): number {
    return this.pool.pdeWrites;
  }

  /** Bytes of table memory in use (allocated tables, rounded to their alignment). */
  get tableBytes(): number {
    return this.pool.tableBytes;
  }

  // ------------------------------------------------------------------ walker

  /**
   * Walks the tree for `va` (the one generic walker): fills `out` and returns its status.
   * Models the GPU MMU's page walk (no cost charged here; the engine charges gpuPageWalkNs).
   */
  translateInto(va: number, out: Translation): WalkStatus {
    return walk(this.pool, va, out);
  }

  /** Walks the tree for `va` and returns a fresh {@link Translation}. */
  translate(va: number): Translation {
    checkVa('translate', 'va', va, this.format.vaBits);
    const t = new Translation();
    this.translateInto(va, t);
    return t;
  }

  // ------------------------------------------------------------------ map

  /** Maps one page of `pageSize` at `va` to `pa`. See {@link mapRange}. */
  map(
    va: number,
    pageSize: number,
    pa: number,
    attrs: MapAttrs = {},
    batch: PtUpdateBatch = this.bar0,
  ): void {
    this.mapPages('map', va, pageSize, 1, pa, null, attrs, batch);
  }

  /** Maps `size / pageSize` pages of `pageSize` at `va` to the physically contiguous range at `pa`. */
  mapContiguous(
    va: number,
    size: number,
    pageSize: number,
    pa: number,
    attrs: MapAttrs = {},
    batch: PtUpdateBatch = this.bar0,
  ): void {
    if (!Number.isSafeInteger(size) || size <= 0 || size % pageSize !== 0) {
      throw new ArgumentError('mapContiguous', 'size', 'must be a positive multiple of pageSize', size);
    }
    this.mapPages('mapContiguous', va, pageSize, size / pageSize, pa, null, attrs, batch);
  }

  /**
   * Maps `pas.length` pages of `pageSize` starting at `va`, page k to `pas[k]`. Every argument
   * (alignment, page size supported by the format, every PFN fitting its field, aperture and
   * kind encodable) is checked before anything is written. Mapping over a mapping of the same
   * size replaces it; a larger page replaces smaller ones beneath it (their tables are freed);
   * a page under a larger valid leaf is a {@link StateError} (split first).
   */
  mapRange(
    va: number,
    pageSize: number,
    pas: ArrayLike<number>,
    attrs: MapAttrs = {},
    batch: PtUpdateBatch = this.bar0,
  ): void {
    this.mapPages('mapRange', va, pageSize, pas.length, 0, pas, attrs, batch);
  }

  private target(fn: string, pageSize: number) {
    const shift = Math.log2(pageSize);
    const t = Number.isInteger(shift) ? this.format.targets.get(shift) : undefined;
    if (t === undefined) {
      throw new ArgumentError(
        fn,
        'pageSize',
        `must be one of ${this.format.pageSizes.join(', ')} for ${this.format.name}`,
        pageSize,
      );
    }
    return t;
  }

  private leafPte(t: { level: number; big: boolean }): CompiledPte {
    const L = this.levels[t.level]!;
    return t.big ? L.bigPte! : L.pte!;
  }

  private mapPages(
    fn: string,
    va: number,
    pageSize: number,
    n: number,
    pa0: number,
    pas: ArrayLike<number> | null,
    attrs: MapAttrs,
    batch: PtUpdateBatch,
  ): void {
    const t = this.target(fn, pageSize);
    checkVa(fn, 'va', va, this.format.vaBits);
    if (va % pageSize !== 0) throw new ArgumentError(fn, 'va', `must be aligned to pageSize ${pageSize}`, va);
    if (n <= 0 || va + n * pageSize > 2 ** this.format.vaBits) {
      throw new ArgumentError(fn, 'count', 'must be positive and stay inside the VA space', n);
    }
    const pte = this.leafPte(t);
    // Validate the attributes once (by encoding a template leaf), then every address against the
    // address field of the chosen aperture. Throws before any write.
    encodeLeaf(fn, pte, 0, attrs, t.fragment, this.template);
    const code = pte.addr.codeByKind[attrs.aperture ?? APERTURE.VID]!;
    const addrField = pte.addr.addrByCode[code]!;
    const scale = pte.addr.scale;
    for (let k = 0; k < n; k++) {
      const pa = pas === null ? pa0 + k * pageSize : pas[k]!;
      if (!Number.isSafeInteger(pa) || pa < 0 || pa % pageSize !== 0) {
        throw new ArgumentError(
          fn,
          pas === null ? 'pa' : `pas[${k}]`,
          `must be a ${pageSize}-aligned address`,
          pa,
        );
      }
      if (
        (k === 0 || k === n - 1 || pas !== null) &&
        !addrField.fits(Math.floor((pa + pageSize - 4096) / scale))
      ) {
        throw new ArgumentError(
          fn,
          pas === null ? 'pa' : `pas[${k}]`,
          `must fit ${addrField.name} (${addrField.width} bits of pa >> ${pte.addr.shift})`,
          pa,
        );
      }
    }
    // Protocol check: no page may sit under a larger valid leaf. Pages of one leaf table share
    // their upper entries, so one check per table suffices (per big page for 4K under a dual PDE).
    const L = this.levels[t.level]!;
    const groupSpan = t.big ? L.span : L.span * L.entries;
    const P = t.level > 0 ? this.levels[t.level - 1]! : null;
    const checkSpan = !t.big && P !== null && P.dualBig !== null ? P.bigSpan : groupSpan;
    for (let k = 0; k < n; k++) {
      const a = va + k * pageSize;
      if (k === 0 || a % checkSpan === 0) this.checkNotCovered(fn, a, t.level, t.big);
    }
    if (t.level === this.levels.length - 1 && pte.fragment !== null)
      this.defragmentEdges(va, n * pageSize, batch);
    const sub = pow2(t.pageShift - t.fragment);
    const per = pow2(t.fragment);
    // One template leaf per call; each page only gets its address field written.
    this.tmplAddr = addrField;
    this.tmplScale = scale;
    let group = -1;
    let table = -1;
    for (let k = 0; k < n; k++) {
      const pa = pas === null ? pa0 + k * pageSize : pas[k]!;
      for (let j = 0; j < per; j++) {
        const a = va + k * pageSize + j * sub;
        const g = Math.floor(a / groupSpan);
        if (g !== group) {
          // The path to a leaf table is built once per table; later pages of the same table reuse it
          // (nothing below frees the table being filled: it holds at least the leaf just written).
          table = this.ensurePath(a, t.level, t.big, batch);
          group = g;
        }
        this.mapLeaf(table, a, t.level, t.big, pa + j * sub, batch);
      }
    }
  }

  /** Throws StateError when a larger valid leaf covers `va` above the target. */
  private checkNotCovered(fn: string, va: number, level: number, big: boolean): void {
    const w = this.pool.words;
    let table = this.rootAddr;
    for (let i = 0; i <= level; i++) {
      const L = this.levels[i]!;
      const o = this.pool.off(table) + L.indexOf(va) * L.words;
      if (i === level && !big) return;
      if (L.leafTest?.matches(w, o) && L.pte!.valid.matches(w, o)) {
        throw new StateError(
          fn,
          `0x${va.toString(16)} lies under a ${2 ** L.shift}-byte leaf at ${L.name}; split or unmap it first`,
        );
      }
      if (L.dualBig !== null) {
        if (i === level) return; // big target: a 2M leaf was checked above
        const bigT = L.dualBig.target(w, o);
        if (bigT >= 0) {
          const bo = this.pool.off(bigT) + (Math.floor(va / L.bigSpan) & (L.bigEntries - 1)) * 2;
          if (L.bigPte!.valid.matches(w, bo)) {
            throw new StateError(fn, `0x${va.toString(16)} lies under a 64K page; split or unmap it first`);
          }
        }
        table = L.dualSmall!.target(w, o);
      } else if (L.pde !== null) {
        table = L.pde.target(w, o);
      }
      if (table < 0) return;
    }
  }

  /** Ensures the tables down to `level` exist for `va`; returns the table holding the leaf slot. */
  private ensurePath(va: number, level: number, big: boolean, batch: PtUpdateBatch): number {
    let table = this.rootAddr;
    for (let i = 0; i < level; i++) {
      this.pathTable[i] = table;
      const L = this.levels[i]!;
      const o = this.pool.off(table) + L.indexOf(va) * L.words;
      if (L.dualBig !== null) {
        let small = this.pdeTargetOrLeafFree(L, o, table, i, batch);
        if (small < 0) {
          small = this.pool.allocLevelTable(i + 1);
          const bigT = L.dualBig.target(this.pool.words, o);
          writeDual(this.pool, L, table, o, bigT, small, batch);
        }
        table = small;
      } else {
        let next = this.pdeTargetOrLeafFree(L, o, table, i, batch);
        if (next < 0) {
          next = this.pool.allocLevelTable(i + 1);
          this.pool.writePde(L, table, o, next, batch);
        }
        table = next;
      }
    }
    this.pathTable[level] = table;
    if (big) {
      const L = this.levels[level]!;
      const o = this.pool.off(table) + L.indexOf(va) * L.words;
      this.pdeTargetOrLeafFree(L, o, table, level, batch);
      let bigT = L.dualBig!.target(this.pool.words, o);
      if (bigT < 0) {
        bigT = this.pool.allocBigTable(L);
        writeDual(this.pool, L, table, o, bigT, L.dualSmall!.target(this.pool.words, o), batch);
      }
      return bigT;
    }
    return table;
  }

  /**
   * The next table of a PDE entry, or -1. An invalid huge-leaf encoding (sparse, zero-valued
   * leaf bits) in the entry is cleared first so a PDE can be written.
   */
  private pdeTargetOrLeafFree(
    L: CompiledLevel,
    o: number,
    table: number,
    _i: number,
    batch: PtUpdateBatch,
  ): number {
    const w = this.pool.words;
    if (L.leafTest?.matches(w, o)) {
      // An invalid leaf (e.g. AMD PDE_PTE with VALID = 0): becomes a PDE.
      this.pool.zeroEntry(table, o, L.words, false, batch);
      return -1;
    }
    const half = L.dualSmall ?? L.pde!;
    return half.target(w, o);
  }

  /** Writes one leaf (already validated) at `va` into `table` (from ensurePath; `pathTable` is its path). */
  private mapLeaf(
    table: number,
    va: number,
    level: number,
    big: boolean,
    pa: number,
    batch: PtUpdateBatch,
  ): void {
    const L = this.levels[level]!;
    const w = this.pool.words;
    if (big) {
      const o = this.pool.off(table) + (Math.floor(va / L.bigSpan) & (L.bigEntries - 1)) * 2;
      this.fromTemplate(pa);
      this.pool.put(table, o, 2, this.pool.scratch, false, batch);
      // Clear 4K PTEs shadowed by the new big PTE so a later fall-through exposes nothing stale.
      const po = this.pool.off(this.pathTable[level]!) + L.indexOf(va) * L.words;
      const small = L.dualSmall!.target(w, po);
      if (small >= 0) {
        const PT = this.levels[level + 1]!;
        const i0 = PT.indexOf(va);
        for (let j = 0; j < L.bigSpan / PT.span; j++) {
          const so = this.pool.off(small) + (i0 + j) * PT.words;
          if (!this.pool.isZero(so, PT.words)) this.pool.zeroEntry(small, so, PT.words, false, batch);
        }
        releaseDualHalves(this.pool, L, this.pathTable[level]!, po, batch);
      }
      return;
    }
    const o = this.pool.off(table) + L.indexOf(va) * L.words;
    // A PDE replaced by a huge leaf: free the subtree after the leaf is written.
    let oldChild = -1;
    let oldBig = -1;
    if (L.leafTest !== null && !L.leafTest.matches(w, o)) {
      if (L.dualBig !== null) {
        oldChild = L.dualSmall!.target(w, o);
        oldBig = L.dualBig.target(w, o);
      } else if (L.pde !== null) oldChild = L.pde.target(w, o);
    }
    this.fromTemplate(pa);
    this.pool.put(table, o, L.words, this.pool.scratch, false, batch);
    if (oldChild >= 0) this.freeSubtree(level + 1, oldChild);
    if (oldBig >= 0) this.pool.freeBigTable(L, oldBig);
    // 4K under a dual level whose big PTE is unmapped/sparse: switch it to invalid (fall through).
    // The other 4K PTEs under it were hidden (unmapped): they are cleared first, so the switch
    // exposes only the page just written, never stale siblings.
    if (level > 0) {
      const P = this.levels[level - 1]!;
      if (P.dualBig !== null) {
        const pt = this.pathTable[level - 1]!;
        const po = this.pool.off(pt) + P.indexOf(va) * P.words;
        const bigT = P.dualBig.target(w, po);
        if (bigT >= 0) {
          const bo = this.pool.off(bigT) + (Math.floor(va / P.bigSpan) & (P.bigEntries - 1)) * 2;
          if (!this.pool.isZero(bo, 2)) {
            const a0 = Math.floor(va / P.bigSpan) * P.bigSpan;
            for (let a = a0; a < a0 + P.bigSpan; a += L.span) {
              if (a === va) continue;
              const so = this.pool.off(table) + L.indexOf(a) * L.words;
              if (!this.pool.isZero(so, L.words)) this.pool.zeroEntry(table, so, L.words, false, batch);
            }
            this.pool.zeroEntry(bigT, bo, 2, false, batch);
            releaseDualHalves(this.pool, P, pt, po, batch);
          }
        }
      }
    }
  }

  /** scratch = template leaf with its address field set to `pa`. */
  private fromTemplate(pa: number): void {
    const s = this.pool.scratch;
    s.set(this.template);
    this.tmplAddr!.write(s, 0, pa / this.tmplScale);
  }

  /** Frees table `addr` of level `level` and every table below it (no writes: the parent is being replaced). */
  private freeSubtree(level: number, addr: number): void {
    const L = this.levels[level]!;
    const w = this.pool.words;
    if (L.pte === null || L.leafTest !== null) {
      const base = this.pool.off(addr);
      for (let i = 0; i < L.entries; i++) {
        const o = base + i * L.words;
        if (this.pool.isZero(o, L.words) || L.leafTest?.matches(w, o)) continue;
        if (L.dualBig !== null) {
          const b = L.dualBig.target(w, o);
          const s = L.dualSmall!.target(w, o);
          if (b >= 0) this.pool.freeBigTable(L, b);
          if (s >= 0) this.freeSubtree(level + 1, s);
        } else {
          const c = L.pde!.target(w, o);
          if (c >= 0) this.freeSubtree(level + 1, c);
        }
      }
    }
    this.pool.freeLevelTable(level, addr);
  }

  /** AMD fragments: clear FRAGMENT on groups that straddle either edge of [va, va+size). */
  private defragmentEdges(va: number, size: number, batch: PtUpdateBatch): void {
    const last = this.levels.length - 1;
    const L = this.levels[last]!;
    const frag = L.pte!.fragment;
    if (frag === null) return;
    for (const edge of [va, va + size - 4096]) {
      const table = existingTable(this.pool, edge, last);
      if (table < 0) continue;
      const o = this.pool.off(table) + L.indexOf(edge) * L.words;
      if (!L.pte!.valid.matches(this.pool.words, o)) continue;
      const f = frag.read(this.pool.words, o);
      if (f === 0) continue;
      const gBytes = pow2(L.shift + f);
      const g0 = Math.floor(edge / gBytes) * gBytes;
      if (g0 >= va && g0 + gBytes <= va + size) continue;
      for (let a = g0; a < g0 + gBytes; a += 4096) {
        const eo = this.pool.off(table) + L.indexOf(a) * L.words;
        if (!L.pte!.valid.matches(this.pool.words, eo)) continue;
        for (let k = 0; k < L.words; k++) this.pool.scratch[k] = this.pool.words[eo + k]!;
        frag.write(this.pool.scratch, 0, 0);
        this.pool.put(table, eo, L.words, this.pool.scratch, false, batch);
      }
    }
  }

  // ------------------------------------------------------------------ unmap

  /**
   * Unmaps [va, va + size): every leaf in the range becomes invalid (zero); leaves that
   * straddle an edge are split first; tables left empty are freed and their PDEs cleared.
   * A 64K big PTE becomes "invalid" (fall through to the 4K PTEs, which are zero).
   */
  unmap(va: number, size: number, batch: PtUpdateBatch = this.bar0): void {
    checkVa('unmap', 'va', va, this.format.vaBits);
    if (va % 4096 !== 0) throw new ArgumentError('unmap', 'va', 'must be 4 KiB aligned', va);
    if (
      !Number.isSafeInteger(size) ||
      size <= 0 ||
      size % 4096 !== 0 ||
      va + size > 2 ** this.format.vaBits
    ) {
      throw new ArgumentError(
        'unmap',
        'size',
        'must be a positive multiple of 4096 inside the VA space',
        size,
      );
    }
    this.defragmentEdges(va, size, batch);
    this.unmapIn(0, this.rootAddr, va, va + size, batch);
  }

  private unmapIn(li: number, table: number, start: number, end: number, batch: PtUpdateBatch): void {
    const L = this.levels[li]!;
    let cur = start;
    while (cur < end) {
      const eStart = Math.floor(cur / L.span) * L.span;
      const eEnd = eStart + L.span;
      const s = Math.max(start, eStart);
      const e = Math.min(end, eEnd);
      cur = eEnd;
      const o = this.pool.off(table) + L.indexOf(eStart) * L.words;
      if (this.pool.isZero(o, L.words)) continue;
      if (L.pte !== null && (L.leafTest === null || L.leafTest.matches(this.pool.words, o))) {
        if (s === eStart && e === eEnd) {
          this.pool.zeroEntry(table, o, L.words, false, batch);
          continue;
        }
        // Partially covered huge leaf: split to the next size down, then unmap in the children.
        this.splitLeaf(li, table, o, eStart, this.nextSmallerShift(li), batch);
      }
      if (L.dualBig !== null) {
        this.unmapDual(L, table, o, s, e, batch);
        continue;
      }
      if (L.pde === null) {
        this.pool.zeroEntry(table, o, L.words, false, batch); // non-valid leaf state (sparse) in range
        continue;
      }
      const child = L.pde.target(this.pool.words, o);
      if (child < 0) continue;
      this.unmapIn(li + 1, child, s, e, batch);
      if (this.pool.count(child) === 0) {
        this.pool.freeLevelTable(li + 1, child);
        this.pool.zeroEntry(table, o, L.words, true, batch);
      }
    }
  }

  private unmapDual(
    L: CompiledLevel,
    table: number,
    o: number,
    s: number,
    e: number,
    batch: PtUpdateBatch,
  ): void {
    const big = L.dualBig!.target(this.pool.words, o);
    if (big >= 0) {
      for (let a = Math.floor(s / L.bigSpan) * L.bigSpan; a < e; a += L.bigSpan) {
        const bo = this.pool.off(big) + (Math.floor(a / L.bigSpan) & (L.bigEntries - 1)) * 2;
        if (this.pool.isZero(bo, 2)) continue;
        const full = a >= s && a + L.bigSpan <= e;
        if (full) this.pool.zeroEntry(big, bo, 2, false, batch);
        else if (L.bigPte!.valid.matches(this.pool.words, bo)) splitBig(this.pool, L, table, o, a, batch);
        else splitHiddenBig(this.pool, L, table, o, a, s, e, batch);
      }
    }
    const small = L.dualSmall!.target(this.pool.words, o);
    if (small >= 0) this.unmapIn(L.index + 1, small, s, e, batch);
    releaseDualHalves(this.pool, L, table, o, batch);
  }

  private nextSmallerShift(li: number): number {
    const L = this.levels[li]!;
    if (L.dualBig !== null) return L.bigShift;
    return this.levels[li + 1]!.shift;
  }

  // ------------------------------------------------------------------ split

  /**
   * Splits the leaf covering `va` into leaves of `toPageSize` with the same attributes and
   * physical range (2M → 64K/4K, 64K → 4K, 512M → 2M ...). A split across more than one level
   * (512M → 4K) goes step by step and only the pieces containing `va` go all the way down; the
   * rest stay at the intermediate size (same translations). The MMU never sees a hole: child
   * tables are filled first, then the parent entry is switched (for 64K → 4K: the 4K PTEs are
   * written, then the big PTE becomes "invalid" so the walk falls through).
   */
  split(va: number, toPageSize: number, batch: PtUpdateBatch = this.bar0): void {
    checkVa('split', 'va', va, this.format.vaBits);
    const to = this.target('split', toPageSize);
    const tr = this.tr;
    if (this.translateInto(va, tr) !== WALK.MAPPED) {
      throw new StateError('split', `0x${va.toString(16)} is not mapped`);
    }
    if (tr.pageShift <= to.pageShift) {
      throw new ArgumentError(
        'split',
        'toPageSize',
        `must be smaller than the current ${tr.pageSize}-byte page`,
        toPageSize,
      );
    }
    for (;;) {
      this.translateInto(va, tr);
      if (tr.pageShift <= to.pageShift) return;
      const leafBase = Math.floor(va / tr.pageSize) * tr.pageSize;
      const L = this.levels[tr.level]!;
      const table = parentEntryTable(this.pool, va, tr.level);
      const o = this.pool.off(table) + L.indexOf(va) * L.words;
      if (tr.big) {
        splitBig(this.pool, L, table, o, leafBase, batch);
        continue;
      }
      if (tr.level === this.levels.length - 1) {
        // A fragment group: rewrite its PTEs with the smaller fragment.
        const frag = L.pte!.fragment!;
        const nf = to.pageShift - L.shift;
        for (let a = leafBase; a < leafBase + tr.pageSize; a += 4096) {
          const eo = this.pool.off(table) + L.indexOf(a) * L.words;
          for (let k = 0; k < L.words; k++) this.pool.scratch[k] = this.pool.words[eo + k]!;
          frag.write(this.pool.scratch, 0, nf);
          this.pool.put(table, eo, L.words, this.pool.scratch, false, batch);
        }
        return;
      }
      // Split one step: to the big table, or to the child level (fragmented if the target says so).
      let step = this.nextSmallerShift(tr.level);
      if (L.dualBig !== null && to.pageShift < L.bigShift) step = this.levels[tr.level + 1]!.shift;
      const ct = this.format.targets.get(to.pageShift)!;
      if (!L.dualBig && ct.level === tr.level + 1 && ct.fragment > 0) step = to.pageShift;
      this.splitLeaf(tr.level, table, o, leafBase, step, batch);
    }
  }

  /** Replaces the huge leaf at word offset `o` with a table of leaves of 2^toShift. */
  private splitLeaf(
    li: number,
    table: number,
    o: number,
    leafBase: number,
    toShift: number,
    batch: PtUpdateBatch,
  ): void {
    const L = this.levels[li]!;
    const w = this.pool.words;
    const pte = L.pte!;
    const attrs = decodeAttrs(pte, w, o);
    const pa0 = pte.addr.address(w, o);
    if (!pte.valid.matches(w, o)) {
      this.pool.zeroEntry(table, o, L.words, false, batch); // invalid leaf state: just clear it
      return;
    }
    if (L.dualBig !== null && toShift === L.bigShift) {
      const big = this.pool.allocBigTable(L);
      for (let j = 0; j < L.bigEntries; j++) {
        encodeLeaf('split', L.bigPte!, pa0 + j * L.bigSpan, attrs, 0, this.pool.scratch);
        this.pool.put(big, this.pool.off(big) + j * 2, 2, this.pool.scratch, false, batch);
      }
      writeDual(this.pool, L, table, o, big, -1, batch);
      return;
    }
    const C = this.levels[li + 1]!;
    const child = this.pool.allocLevelTable(li + 1);
    const frag = toShift - C.shift;
    const cpte = C.pte!;
    for (let j = 0; j < C.entries; j++) {
      encodeLeaf('split', cpte, pa0 + j * C.span, attrs, frag, this.pool.scratch);
      if (C.leafTest !== null) {
        // child entries are huge leaves of a 16-byte level: PTE in the low 8 bytes
        for (let k = cpte.words; k < C.words; k++) this.pool.scratch[k] = 0;
      }
      this.pool.put(child, this.pool.off(child) + j * C.words, C.words, this.pool.scratch, false, batch);
    }
    if (L.dualBig !== null) writeDual(this.pool, L, table, o, -1, child, batch);
    else this.pool.writePde(L, table, o, child, batch);
    void leafBase;
  }

  // ------------------------------------------------------------------ explicit leaf states

  /**
   * Puts `count` leaf slots of `pageSize` starting at `va` in an invalid state: `'invalid'`
   * (zero: a big PTE falls through to 4K), `'unmapped'` (a big PTE faults without looking at
   * the 4K table) or `'sparse'` (accesses succeed, reads zero). Tables are allocated as needed.
   */
  setLeafState(
    va: number,
    pageSize: number,
    count: number,
    state: LeafState,
    batch: PtUpdateBatch = this.bar0,
  ): void {
    const t = this.target('setLeafState', pageSize);
    checkVa('setLeafState', 'va', va, this.format.vaBits);
    if (va % pageSize !== 0) throw new ArgumentError('setLeafState', 'va', 'must be aligned to pageSize', va);
    if (!Number.isSafeInteger(count) || count <= 0 || va + count * pageSize > 2 ** this.format.vaBits) {
      throw new ArgumentError(
        'setLeafState',
        'count',
        'must be positive and stay inside the VA space',
        count,
      );
    }
    if (t.fragment > 0 || (!t.big && t.level !== this.levels.length - 1)) {
      throw new ArgumentError(
        'setLeafState',
        'pageSize',
        'must be the smallest page size or the big (64K) size',
        pageSize,
      );
    }
    const pte = this.leafPte(t);
    const pat = state === 'invalid' ? null : state === 'unmapped' ? pte.unmapped : pte.sparse;
    if (state !== 'invalid' && pat === null) {
      throw new ArgumentError('setLeafState', 'state', `is not encodable in ${this.format.name}`, state);
    }
    if (state !== 'invalid' && state !== 'unmapped' && state !== 'sparse') {
      throw new ArgumentError('setLeafState', 'state', "must be 'invalid', 'unmapped' or 'sparse'", state);
    }
    for (let k = 0; k < count; k++) this.checkNotCovered('setLeafState', va + k * pageSize, t.level, t.big);
    const L = this.levels[t.level]!;
    for (let k = 0; k < count; k++) {
      const a = va + k * pageSize;
      if (state === 'invalid' && existingTable(this.pool, a, t.level) < 0) continue;
      const table = this.ensurePath(a, t.level, t.big, batch);
      const words = t.big ? 2 : L.words;
      const o = t.big
        ? this.pool.off(table) + (Math.floor(a / L.bigSpan) & (L.bigEntries - 1)) * 2
        : this.pool.off(table) + L.indexOf(a) * words;
      this.pool.scratch.fill(0);
      if (pat !== null) pat.apply(this.pool.scratch, 0, words);
      this.pool.put(table, o, words, this.pool.scratch, false, batch);
    }
  }

  // ------------------------------------------------------------------ inspection

  /**
   * Calls `fn` for every valid mapping overlapping [start, end), in VA order (cold path: for
   * oracles, tests and reports). Fragment groups are reported as one mapping.
   */
  forEachMapping(start: number, end: number, fn: (m: MappingInfo) => void): void {
    forEachMapping(this.pool, start, end, fn);
  }

  /** A copy of the raw entry words holding `va` at `level` (`big`: the 64K table), or null. For tests. */
  readEntry(va: number, level: number, big = false): Uint32Array | null {
    return readEntry(this.pool, va, level, big);
  }

  /** Counts of allocated tables: per level name, plus `big`. */
  stats(): Record<string, number> {
    return stats(this.pool);
  }
}
