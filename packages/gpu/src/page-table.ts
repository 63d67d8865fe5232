/**
 * A device page table in any {@link PtFormat}: tables allocated per level from a simulated
 * table pool (one `Uint32Array` arena at a physical VID base), real 64/128-bit entries,
 * 4K/64K/2M (and larger) leaves, the dual-PDE big/small fall-through states, splits, and one
 * format-generic walker ({@link PageTable.translateInto}).
 *
 * How versions stay out of the walker: the walker only ever asks compiled objects of the
 * level it is on: "is this entry a leaf?" (`leafTest` pattern), "where does this PDE point?"
 * (aperture code → address field → shift), "is this PTE valid / unmapped / sparse?" (mask and
 * value compares). Bit positions, aperture encodings and address shifts are data in the format;
 * the loop is the same for NVIDIA v2, v3 and AMD GFX9.
 *
 * @module
 */
import { ArgumentError, type Sim, StateError } from '@hmmkit/sim';
import type { CompiledField } from './bits.ts';
import type { CompiledAddress, CompiledLevel, CompiledPte, PtFormat } from './format.ts';
import { APERTURE, type Aperture } from './format.ts';
import { PtUpdateBatch } from './pt-update.ts';

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
    return 2 ** this.pageShift;
  }
}

/** Attributes of a mapping. */
export interface MapAttrs {
  /** Default VID (device memory). */
  readonly aperture?: Aperture;
  /** Default true. */
  readonly writable?: boolean;
  /** Default true (ignored when not writable: atomics need write permission). */
  readonly atomic?: boolean;
  readonly volatile?: boolean;
  readonly privileged?: boolean;
  /** Kind/compression field value, where the format has one. Default 0. */
  readonly kind?: number;
  /** Peer GPU id for the PEER aperture (NVIDIA 3-bit peer field). Default 0. */
  readonly peerId?: number;
}

/** Invalid states a leaf slot can be put in explicitly. */
export type LeafState = 'invalid' | 'unmapped' | 'sparse';

/** One mapping found by {@link PageTable.forEachMapping}. */
export interface MappingInfo {
  readonly va: number;
  readonly size: number;
  readonly pa: number;
  readonly aperture: Aperture;
  readonly writable: boolean;
  readonly atomic: boolean;
  /** Peer id (PEER aperture only; else 0). */
  readonly peerId: number;
}

/** Options of a {@link PageTable}. */
export interface PageTableOptions {
  /** Physical base of the table pool (default: the format's `tablePoolBase`). */
  readonly poolBase?: number;
  /** Counter name prefix of the default BAR0 batch (default 'gpu'). */
  readonly counterPrefix?: string;
}

const GRANULE = 256;
const WORDS_PER_GRANULE = GRANULE / 4;

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
  /** The pool's contents: every table's entries, 32-bit halves, low half first. */
  words: Uint32Array;
  /** Non-zero entries per table, indexed by the table's first 256-byte granule. */
  private used: Int32Array;
  private bumpPages = 0;
  private readonly freeBySize = new Map<number, number[]>();
  /** Tables currently allocated, per level (the big tables of a dual level counted apart). */
  readonly tablesPerLevel: Int32Array;
  /** Big (64K) tables currently allocated. */
  bigTables = 0;
  /** 8-byte PTE and PDE writes made on this table (all batches). */
  pteWrites = 0;
  pdeWrites = 0;
  /** The default batch used when a call passes none: BAR0 writes, charged at once. */
  readonly bar0: PtUpdateBatch;
  private readonly scratch = new Uint32Array(4);
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
    this.poolBase = options.poolBase ?? format.tablePoolBase;
    if (!Number.isSafeInteger(this.poolBase) || this.poolBase < 0 || this.poolBase % 4096 !== 0) {
      throw new ArgumentError(
        'PageTable',
        'options.poolBase',
        'must be a 4 KiB-aligned address',
        this.poolBase,
      );
    }
    // Every PDE address field must be able to name every table of the pool.
    let limit = Number.POSITIVE_INFINITY;
    for (const l of format.levels) {
      for (const half of [l.pde, l.dualBig, l.dualSmall]) {
        if (half === null) continue;
        const code = half.addr.codeByKind[APERTURE.VID]!;
        const f = code < 0 ? null : half.addr.addrByCode[code];
        if (f === null || f === undefined) {
          throw new ArgumentError(
            'PageTable',
            'format',
            'PDEs must be able to point at VID tables',
            format.name,
          );
        }
        limit = Math.min(limit, (f.max + 1) * half.addr.scale);
      }
    }
    this.poolLimit = limit;
    if (this.poolBase + 4096 > limit) {
      throw new ArgumentError(
        'PageTable',
        'options.poolBase',
        `must leave room below ${limit} for ${format.name} PDEs`,
        this.poolBase,
      );
    }
    this.words = new Uint32Array(16 * 1024);
    this.used = new Int32Array(this.words.length / WORDS_PER_GRANULE);
    this.tablesPerLevel = new Int32Array(format.levels.length);
    this.pathTable = new Float64Array(format.levels.length);
    this.bar0 = new PtUpdateBatch(sim, 'bar0', options.counterPrefix ?? 'gpu');
    this.rootAddr = this.allocTable(this.levels[0]!.tableBytes);
    this.tablesPerLevel[0]!++;
  }

  // ------------------------------------------------------------------ pool

  /** Bytes of table memory in use (allocated tables, rounded to their alignment). */
  get tableBytes(): number {
    let b = 0;
    for (let i = 0; i < this.levels.length; i++) b += this.tablesPerLevel[i]! * this.levels[i]!.tableBytes;
    for (const l of this.levels) if (l.bigTableBytes > 0) b += this.bigTables * l.bigTableBytes;
    return b;
  }

  private allocTable(bytes: number): number {
    let list = this.freeBySize.get(bytes);
    if (list === undefined) {
      list = [];
      this.freeBySize.set(bytes, list);
    }
    if (list.length === 0) {
      const page = this.bumpPage();
      if (bytes >= 4096) list.push(page);
      else for (let a = page + 4096 - bytes; a >= page; a -= bytes) list.push(a);
    }
    return list.pop()!;
  }

  private bumpPage(): number {
    if (this.poolBase + (this.bumpPages + 1) * 4096 > this.poolLimit) {
      throw new StateError(
        'PageTable',
        `table pool exhausted: PDEs of ${this.format.name} cannot address more tables`,
      );
    }
    const offWords = this.bumpPages * 1024;
    if (offWords + 1024 > this.words.length) {
      const nw = new Uint32Array(this.words.length * 2);
      nw.set(this.words);
      this.words = nw;
      const nu = new Int32Array(nw.length / WORDS_PER_GRANULE);
      nu.set(this.used);
      this.used = nu;
    }
    return this.poolBase + this.bumpPages++ * 4096;
  }

  private freeTable(addr: number, bytes: number): void {
    const o = (addr - this.poolBase) / 4;
    this.words.fill(0, o, o + bytes / 4);
    this.used[o / WORDS_PER_GRANULE] = 0;
    this.freeBySize.get(bytes)!.push(addr);
  }

  private off(tableAddr: number): number {
    return (tableAddr - this.poolBase) / 4;
  }

  private count(tableAddr: number): number {
    return this.used[(tableAddr - this.poolBase) / GRANULE]!;
  }

  private isZero(o: number, words: number): boolean {
    const w = this.words;
    for (let k = 0; k < words; k++) if (w[o + k] !== 0) return false;
    return true;
  }

  /** Writes `words` words from `src` into the entry at word offset `o` of table `tableAddr`. */
  private put(
    tableAddr: number,
    o: number,
    words: number,
    src: Uint32Array,
    pde: boolean,
    batch: PtUpdateBatch,
  ): void {
    const w = this.words;
    const wasZero = this.isZero(o, words);
    let nowZero = true;
    for (let k = 0; k < words; k++) {
      const v = src[k]!;
      w[o + k] = v;
      if (v !== 0) nowZero = false;
    }
    if (wasZero !== nowZero) this.used[(tableAddr - this.poolBase) / GRANULE]! += nowZero ? -1 : 1;
    const n = words / 2;
    if (pde) this.pdeWrites += n;
    else this.pteWrites += n;
    batch.record(n, pde);
  }

  private zeroEntry(tableAddr: number, o: number, words: number, pde: boolean, batch: PtUpdateBatch): void {
    this.scratch.fill(0);
    this.put(tableAddr, o, words, this.scratch, pde, batch);
  }

  // ------------------------------------------------------------------ walker

  /**
   * Walks the tree for `va` (the one generic walker): fills `out` and returns its status.
   * Models the GPU MMU's page walk (no cost charged here; the engine charges gpuPageWalkNs).
   */
  translateInto(va: number, out: Translation): WalkStatus {
    const w = this.words;
    const base = this.poolBase;
    const levels = this.levels;
    let table = this.rootAddr;
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
      if ((k === 0 || k === n - 1 || pas !== null) && !addrField.fits((pa + pageSize - 4096) / scale)) {
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
    const sub = 2 ** (t.pageShift - t.fragment);
    const per = 2 ** t.fragment;
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
    const w = this.words;
    let table = this.rootAddr;
    for (let i = 0; i <= level; i++) {
      const L = this.levels[i]!;
      const o = this.off(table) + L.indexOf(va) * L.words;
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
          const bo = this.off(bigT) + (Math.floor(va / L.bigSpan) & (L.bigEntries - 1)) * 2;
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
      const o = this.off(table) + L.indexOf(va) * L.words;
      if (L.dualBig !== null) {
        let small = this.pdeTargetOrLeafFree(L, o, table, i, batch);
        if (small < 0) {
          small = this.allocTable(this.levels[i + 1]!.tableBytes);
          this.tablesPerLevel[i + 1]!++;
          const bigT = L.dualBig.target(this.words, o);
          this.writeDual(L, table, o, bigT, small, batch);
        }
        table = small;
      } else {
        let next = this.pdeTargetOrLeafFree(L, o, table, i, batch);
        if (next < 0) {
          next = this.allocTable(this.levels[i + 1]!.tableBytes);
          this.tablesPerLevel[i + 1]!++;
          this.writePde(L, table, o, next, batch);
        }
        table = next;
      }
    }
    this.pathTable[level] = table;
    if (big) {
      const L = this.levels[level]!;
      const o = this.off(table) + L.indexOf(va) * L.words;
      this.pdeTargetOrLeafFree(L, o, table, level, batch);
      let bigT = L.dualBig!.target(this.words, o);
      if (bigT < 0) {
        bigT = this.allocTable(L.bigTableBytes);
        this.bigTables++;
        this.writeDual(L, table, o, bigT, L.dualSmall!.target(this.words, o), batch);
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
    const w = this.words;
    if (L.leafTest?.matches(w, o)) {
      // An invalid leaf (e.g. AMD PDE_PTE with VALID = 0): becomes a PDE.
      this.zeroEntry(table, o, L.words, false, batch);
      return -1;
    }
    const half = L.dualSmall ?? L.pde!;
    return half.target(w, o);
  }

  private writePde(L: CompiledLevel, table: number, o: number, next: number, batch: PtUpdateBatch): void {
    const s = this.scratch;
    s.fill(0);
    const pde = L.pde!;
    if (pde.present !== null) pde.present.apply(s, 0, L.words);
    encodeAddr(pde.addr, s, next, APERTURE.VID);
    this.put(table, o, L.words, s, true, batch);
  }

  private writeDual(
    L: CompiledLevel,
    table: number,
    o: number,
    big: number,
    small: number,
    batch: PtUpdateBatch,
  ): void {
    const s = this.scratch;
    s.fill(0);
    if (big >= 0) encodeAddr(L.dualBig!.addr, s, big, APERTURE.VID);
    if (small >= 0) encodeAddr(L.dualSmall!.addr, s, small, APERTURE.VID);
    this.put(table, o, L.words, s, true, batch);
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
    const w = this.words;
    if (big) {
      const o = this.off(table) + (Math.floor(va / L.bigSpan) & (L.bigEntries - 1)) * 2;
      this.fromTemplate(pa);
      this.put(table, o, 2, this.scratch, false, batch);
      // Clear 4K PTEs shadowed by the new big PTE so a later fall-through exposes nothing stale.
      const po = this.off(this.pathTable[level]!) + L.indexOf(va) * L.words;
      const small = L.dualSmall!.target(w, po);
      if (small >= 0) {
        const PT = this.levels[level + 1]!;
        const i0 = PT.indexOf(va);
        for (let j = 0; j < L.bigSpan / PT.span; j++) {
          const so = this.off(small) + (i0 + j) * PT.words;
          if (!this.isZero(so, PT.words)) this.zeroEntry(small, so, PT.words, false, batch);
        }
        this.releaseDualHalves(L, this.pathTable[level]!, po, batch);
      }
      return;
    }
    const o = this.off(table) + L.indexOf(va) * L.words;
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
    this.put(table, o, L.words, this.scratch, false, batch);
    if (oldChild >= 0) this.freeSubtree(level + 1, oldChild);
    if (oldBig >= 0) this.freeBigTable(L, oldBig);
    // 4K under a dual level whose big PTE is unmapped/sparse: switch it to invalid (fall through).
    // The other 4K PTEs under it were hidden (unmapped): they are cleared first, so the switch
    // exposes only the page just written, never stale siblings.
    if (level > 0) {
      const P = this.levels[level - 1]!;
      if (P.dualBig !== null) {
        const pt = this.pathTable[level - 1]!;
        const po = this.off(pt) + P.indexOf(va) * P.words;
        const bigT = P.dualBig.target(w, po);
        if (bigT >= 0) {
          const bo = this.off(bigT) + (Math.floor(va / P.bigSpan) & (P.bigEntries - 1)) * 2;
          if (!this.isZero(bo, 2)) {
            const a0 = Math.floor(va / P.bigSpan) * P.bigSpan;
            for (let a = a0; a < a0 + P.bigSpan; a += L.span) {
              if (a === va) continue;
              const so = this.off(table) + L.indexOf(a) * L.words;
              if (!this.isZero(so, L.words)) this.zeroEntry(table, so, L.words, false, batch);
            }
            this.zeroEntry(bigT, bo, 2, false, batch);
            this.releaseDualHalves(P, pt, po, batch);
          }
        }
      }
    }
  }

  /** scratch = template leaf with its address field set to `pa`. */
  private fromTemplate(pa: number): void {
    const s = this.scratch;
    s.set(this.template);
    this.tmplAddr!.write(s, 0, pa / this.tmplScale);
  }

  /** The table that holds `va`'s entry at `level` (walks existing PDEs; they must exist). */
  private parentEntryTable(va: number, level: number): number {
    let table = this.rootAddr;
    for (let i = 0; i < level; i++) {
      const L = this.levels[i]!;
      const o = this.off(table) + L.indexOf(va) * L.words;
      table = (L.dualSmall ?? L.pde!).target(this.words, o);
    }
    return table;
  }

  /** Frees empty big/small tables of a dual entry and rewrites it if it changed. */
  private releaseDualHalves(L: CompiledLevel, table: number, o: number, batch: PtUpdateBatch): void {
    const w = this.words;
    let big = L.dualBig!.target(w, o);
    let small = L.dualSmall!.target(w, o);
    let changed = false;
    if (big >= 0 && this.count(big) === 0) {
      this.freeBigTable(L, big);
      big = -1;
      changed = true;
    }
    if (small >= 0 && this.count(small) === 0) {
      this.freeTable(small, this.levels[L.index + 1]!.tableBytes);
      this.tablesPerLevel[L.index + 1]!--;
      small = -1;
      changed = true;
    }
    if (!changed) return;
    if (big < 0 && small < 0) this.zeroEntry(table, o, L.words, true, batch);
    else this.writeDual(L, table, o, big, small, batch);
  }

  private freeBigTable(L: CompiledLevel, addr: number): void {
    this.freeTable(addr, L.bigTableBytes);
    this.bigTables--;
  }

  /** Frees table `addr` of level `level` and every table below it (no writes: the parent is being replaced). */
  private freeSubtree(level: number, addr: number): void {
    const L = this.levels[level]!;
    const w = this.words;
    if (L.pte === null || L.leafTest !== null) {
      const base = this.off(addr);
      for (let i = 0; i < L.entries; i++) {
        const o = base + i * L.words;
        if (this.isZero(o, L.words) || L.leafTest?.matches(w, o)) continue;
        if (L.dualBig !== null) {
          const b = L.dualBig.target(w, o);
          const s = L.dualSmall!.target(w, o);
          if (b >= 0) this.freeBigTable(L, b);
          if (s >= 0) this.freeSubtree(level + 1, s);
        } else {
          const c = L.pde!.target(w, o);
          if (c >= 0) this.freeSubtree(level + 1, c);
        }
      }
    }
    this.freeTable(addr, L.tableBytes);
    this.tablesPerLevel[level]!--;
  }

  /** AMD fragments: clear FRAGMENT on groups that straddle either edge of [va, va+size). */
  private defragmentEdges(va: number, size: number, batch: PtUpdateBatch): void {
    const last = this.levels.length - 1;
    const L = this.levels[last]!;
    const frag = L.pte!.fragment;
    if (frag === null) return;
    for (const edge of [va, va + size - 4096]) {
      const table = this.existingTable(edge, last);
      if (table < 0) continue;
      const o = this.off(table) + L.indexOf(edge) * L.words;
      if (!L.pte!.valid.matches(this.words, o)) continue;
      const f = frag.read(this.words, o);
      if (f === 0) continue;
      const gBytes = 2 ** (L.shift + f);
      const g0 = Math.floor(edge / gBytes) * gBytes;
      if (g0 >= va && g0 + gBytes <= va + size) continue;
      for (let a = g0; a < g0 + gBytes; a += 4096) {
        const eo = this.off(table) + L.indexOf(a) * L.words;
        if (!L.pte!.valid.matches(this.words, eo)) continue;
        for (let k = 0; k < L.words; k++) this.scratch[k] = this.words[eo + k]!;
        frag.write(this.scratch, 0, 0);
        this.put(table, eo, L.words, this.scratch, false, batch);
      }
    }
  }

  /** The existing table holding `va`'s entries at `level`, or -1. */
  private existingTable(va: number, level: number): number {
    const w = this.words;
    let table = this.rootAddr;
    for (let i = 0; i < level; i++) {
      const L = this.levels[i]!;
      const o = this.off(table) + L.indexOf(va) * L.words;
      if (L.leafTest?.matches(w, o)) return -1;
      table = (L.dualSmall ?? L.pde!).target(w, o);
      if (table < 0) return -1;
    }
    return table;
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
      const o = this.off(table) + L.indexOf(eStart) * L.words;
      if (this.isZero(o, L.words)) continue;
      if (L.pte !== null && (L.leafTest === null || L.leafTest.matches(this.words, o))) {
        if (s === eStart && e === eEnd) {
          this.zeroEntry(table, o, L.words, false, batch);
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
        this.zeroEntry(table, o, L.words, false, batch); // non-valid leaf state (sparse) in range
        continue;
      }
      const child = L.pde.target(this.words, o);
      if (child < 0) continue;
      this.unmapIn(li + 1, child, s, e, batch);
      if (this.count(child) === 0) {
        this.freeTable(child, this.levels[li + 1]!.tableBytes);
        this.tablesPerLevel[li + 1]!--;
        this.zeroEntry(table, o, L.words, true, batch);
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
    const big = L.dualBig!.target(this.words, o);
    if (big >= 0) {
      for (let a = Math.floor(s / L.bigSpan) * L.bigSpan; a < e; a += L.bigSpan) {
        const bo = this.off(big) + (Math.floor(a / L.bigSpan) & (L.bigEntries - 1)) * 2;
        if (this.isZero(bo, 2)) continue;
        const full = a >= s && a + L.bigSpan <= e;
        if (full) this.zeroEntry(big, bo, 2, false, batch);
        else if (L.bigPte!.valid.matches(this.words, bo)) this.splitBig(L, table, o, a, batch);
        else this.splitHiddenBig(L, table, o, a, s, e, batch);
      }
    }
    const small = L.dualSmall!.target(this.words, o);
    if (small >= 0) this.unmapIn(L.index + 1, small, s, e, batch);
    this.releaseDualHalves(L, table, o, batch);
  }

  /**
   * A partially unmapped big PTE in the unmapped or sparse state: its 4K PTEs were hidden, so
   * they are dropped; outside [s, e) a sparse big page becomes sparse 4K PTEs (an unmapped one
   * stays unmapped, as invalid 4K PTEs); then the big PTE becomes invalid.
   */
  private splitHiddenBig(
    L: CompiledLevel,
    table: number,
    o: number,
    a64: number,
    s: number,
    e: number,
    batch: PtUpdateBatch,
  ): void {
    const big = L.dualBig!.target(this.words, o);
    const bo = this.off(big) + (Math.floor(a64 / L.bigSpan) & (L.bigEntries - 1)) * 2;
    const C = this.levels[L.index + 1]!;
    const sparse = L.bigPte!.sparse?.matches(this.words, bo) === true && C.pte!.sparse !== null;
    let small = L.dualSmall!.target(this.words, o);
    if (small < 0 && sparse) {
      small = this.allocTable(C.tableBytes);
      this.tablesPerLevel[L.index + 1]!++;
      this.writeDual(L, table, o, big, small, batch);
    }
    if (small >= 0) {
      for (let a = a64; a < a64 + L.bigSpan; a += C.span) {
        const so = this.off(small) + C.indexOf(a) * C.words;
        const keepSparse = sparse && (a < s || a >= e);
        this.scratch.fill(0);
        if (keepSparse) C.pte!.sparse!.apply(this.scratch, 0, C.words);
        let same = true;
        for (let k = 0; k < C.words; k++) if (this.words[so + k] !== this.scratch[k]) same = false;
        if (!same) this.put(small, so, C.words, this.scratch, false, batch);
      }
    }
    this.zeroEntry(big, bo, 2, false, batch);
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
      const table = this.parentEntryTable(va, tr.level);
      const o = this.off(table) + L.indexOf(va) * L.words;
      if (tr.big) {
        this.splitBig(L, table, o, leafBase, batch);
        continue;
      }
      if (tr.level === this.levels.length - 1) {
        // A fragment group: rewrite its PTEs with the smaller fragment.
        const frag = L.pte!.fragment!;
        const nf = to.pageShift - L.shift;
        for (let a = leafBase; a < leafBase + tr.pageSize; a += 4096) {
          const eo = this.off(table) + L.indexOf(a) * L.words;
          for (let k = 0; k < L.words; k++) this.scratch[k] = this.words[eo + k]!;
          frag.write(this.scratch, 0, nf);
          this.put(table, eo, L.words, this.scratch, false, batch);
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
    const w = this.words;
    const pte = L.pte!;
    const attrs = decodeAttrs(pte, w, o);
    const pa0 = pte.addr.address(w, o);
    if (!pte.valid.matches(w, o)) {
      this.zeroEntry(table, o, L.words, false, batch); // invalid leaf state: just clear it
      return;
    }
    if (L.dualBig !== null && toShift === L.bigShift) {
      const big = this.allocTable(L.bigTableBytes);
      this.bigTables++;
      for (let j = 0; j < L.bigEntries; j++) {
        encodeLeaf('split', L.bigPte!, pa0 + j * L.bigSpan, attrs, 0, this.scratch);
        this.put(big, this.off(big) + j * 2, 2, this.scratch, false, batch);
      }
      this.writeDual(L, table, o, big, -1, batch);
      return;
    }
    const C = this.levels[li + 1]!;
    const child = this.allocTable(C.tableBytes);
    this.tablesPerLevel[li + 1]!++;
    const frag = toShift - C.shift;
    const cpte = C.pte!;
    for (let j = 0; j < C.entries; j++) {
      encodeLeaf('split', cpte, pa0 + j * C.span, attrs, frag, this.scratch);
      if (C.leafTest !== null) {
        // child entries are huge leaves of a 16-byte level: PTE in the low 8 bytes
        for (let k = cpte.words; k < C.words; k++) this.scratch[k] = 0;
      }
      this.put(child, this.off(child) + j * C.words, C.words, this.scratch, false, batch);
    }
    if (L.dualBig !== null) this.writeDual(L, table, o, -1, child, batch);
    else this.writePde(L, table, o, child, batch);
    void leafBase;
  }

  /** 64K → 4K: write 16 4K PTEs, then make the big PTE invalid (fall through). */
  private splitBig(L: CompiledLevel, table: number, o: number, a64: number, batch: PtUpdateBatch): void {
    const w = this.words;
    const big = L.dualBig!.target(w, o);
    const bo = this.off(big) + (Math.floor(a64 / L.bigSpan) & (L.bigEntries - 1)) * 2;
    const bp = L.bigPte!;
    const attrs = decodeAttrs(bp, w, bo);
    const pa0 = bp.addr.address(w, bo);
    let small = L.dualSmall!.target(w, o);
    const C = this.levels[L.index + 1]!;
    if (small < 0) {
      small = this.allocTable(C.tableBytes);
      this.tablesPerLevel[L.index + 1]!++;
      this.writeDual(L, table, o, big, small, batch);
    }
    const i0 = C.indexOf(a64);
    for (let j = 0; j < L.bigSpan / C.span; j++) {
      encodeLeaf('split', C.pte!, pa0 + j * C.span, attrs, 0, this.scratch);
      this.put(small, this.off(small) + (i0 + j) * C.words, C.words, this.scratch, false, batch);
    }
    this.zeroEntry(big, bo, 2, false, batch);
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
      if (state === 'invalid' && this.existingTable(a, t.level) < 0) continue;
      const table = this.ensurePath(a, t.level, t.big, batch);
      const words = t.big ? 2 : L.words;
      const o = t.big
        ? this.off(table) + (Math.floor(a / L.bigSpan) & (L.bigEntries - 1)) * 2
        : this.off(table) + L.indexOf(a) * words;
      this.scratch.fill(0);
      if (pat !== null) pat.apply(this.scratch, 0, words);
      this.put(table, o, words, this.scratch, false, batch);
    }
  }

  // ------------------------------------------------------------------ inspection

  /**
   * Calls `fn` for every valid mapping overlapping [start, end), in VA order (cold path: for
   * oracles, tests and reports). Fragment groups are reported as one mapping.
   */
  forEachMapping(start: number, end: number, fn: (m: MappingInfo) => void): void {
    checkVa('forEachMapping', 'start', start, this.format.vaBits);
    const tr = new Translation();
    let va = Math.floor(start / 4096) * 4096;
    const stop = Math.min(end, 2 ** this.format.vaBits);
    while (va < stop) {
      const st = this.translateInto(va, tr);
      if (st === WALK.MAPPED) {
        const size = tr.pageSize;
        const base = Math.floor(va / size) * size;
        fn({
          va: base,
          size,
          pa: tr.pa - (va - base),
          aperture: tr.aperture,
          writable: tr.writable,
          atomic: tr.atomic,
          peerId: tr.peerId,
        });
        va = base + size;
      } else if (st === WALK.NO_TABLE) {
        const span = this.levels[tr.level]!.span;
        va = Math.floor(va / span) * span + span;
      } else if (tr.big) {
        const span = this.levels[tr.level]!.bigSpan;
        va = Math.floor(va / span) * span + span;
      } else {
        va += 4096;
      }
    }
  }

  /** A copy of the raw entry words holding `va` at `level` (`big`: the 64K table), or null. For tests. */
  readEntry(va: number, level: number, big = false): Uint32Array | null {
    const table = big ? this.bigTableOf(va, level) : this.existingTable(va, level);
    if (table < 0) return null;
    const L = this.levels[level]!;
    const words = big ? 2 : L.words;
    const o = big
      ? this.off(table) + (Math.floor(va / L.bigSpan) & (L.bigEntries - 1)) * 2
      : this.off(table) + L.indexOf(va) * words;
    return this.words.slice(o, o + words);
  }

  private bigTableOf(va: number, level: number): number {
    const table = this.existingTable(va, level);
    if (table < 0) return -1;
    const L = this.levels[level]!;
    if (L.dualBig === null) return -1;
    return L.dualBig.target(this.words, this.off(table) + L.indexOf(va) * L.words);
  }

  /** Counts of allocated tables: per level name, plus `big`. */
  stats(): Record<string, number> {
    const out: Record<string, number> = {};
    this.levels.forEach((l, i) => {
      out[l.name] = this.tablesPerLevel[i]!;
    });
    out['big'] = this.bigTables;
    out['pteWrites'] = this.pteWrites;
    out['pdeWrites'] = this.pdeWrites;
    return out;
  }
}

// -------------------------------------------------------------------- helpers

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
  out.pa = f.read(w, o) * a.scale + (va % 2 ** shift);
  out.aperture = a.kindByCode[code] as Aperture;
  out.peerId = out.aperture === APERTURE.PEER && pte.peerId !== null ? pte.peerId.read(w, o) : 0;
  out.writable = pte.isWritable(w, o);
  out.atomic = out.writable && (pte.atomicDisable === null || !pte.atomicDisable.matches(w, o));
  out.volatile = pte.volatile?.matches(w, o) === true;
  out.status = WALK.MAPPED;
  return WALK.MAPPED;
}

function checkVa(fn: string, arg: string, va: number, vaBits: number): void {
  if (!Number.isSafeInteger(va) || va < 0 || va >= 2 ** vaBits) {
    throw new ArgumentError(fn, arg, `must be an integer in [0, 2^${vaBits})`, va);
  }
}

function encodeAddr(addr: CompiledAddress, s: Uint32Array, pa: number, aperture: Aperture): void {
  const code = addr.codeByKind[aperture]!;
  if (addr.apertureField !== null) addr.apertureField.write(s, 0, code);
  const f = addr.addrByCode[code]!;
  f.write(s, 0, pa / addr.scale);
}

/** Encodes a valid leaf into `out[0..3]`, throwing ArgumentError (before any write) if a value does not fit. */
function encodeLeaf(
  fn: string,
  pte: CompiledPte,
  pa: number,
  attrs: MapAttrs,
  fragment: number,
  out: Uint32Array,
): void {
  const aperture = attrs.aperture ?? APERTURE.VID;
  const code = aperture >= 0 && aperture <= 3 ? pte.addr.codeByKind[aperture] : -1;
  if (code === undefined || code < 0) {
    throw new ArgumentError(fn, 'attrs.aperture', 'is not encodable in this format', aperture);
  }
  const f = pte.addr.addrByCode[code]!;
  const pfn = pa / pte.addr.scale;
  if (!f.fits(pfn)) {
    throw new ArgumentError(fn, 'pa', `must fit ${f.name} (${f.width} bits of pa >> ${pte.addr.shift})`, pa);
  }
  const kind = attrs.kind ?? 0;
  if (kind !== 0 && (pte.kind === null || !pte.kind.fits(kind))) {
    throw new ArgumentError(
      fn,
      'attrs.kind',
      pte.kind === null ? 'is not supported by this format' : `must fit ${pte.kind.width} bits`,
      kind,
    );
  }
  const peerId = attrs.peerId ?? 0;
  if (peerId !== 0 && (aperture !== APERTURE.PEER || pte.peerId === null || !pte.peerId.fits(peerId))) {
    throw new ArgumentError(
      fn,
      'attrs.peerId',
      pte.peerId === null
        ? 'is not supported by this format'
        : `needs the PEER aperture and ${pte.peerId.width} bits`,
      peerId,
    );
  }
  if (fragment !== 0 && (pte.fragment === null || !pte.fragment.fits(fragment))) {
    throw new ArgumentError(fn, 'pageSize', 'needs a fragment the format cannot hold', fragment);
  }
  const writable = attrs.writable ?? true;
  if (!writable && pte.readOnly === null && pte.writable === null) {
    throw new ArgumentError(
      fn,
      'attrs.writable',
      'read-only mappings are not encodable in this format',
      false,
    );
  }
  out.fill(0);
  pte.valid.apply(out, 0, 2);
  if (pte.addr.apertureField !== null) pte.addr.apertureField.write(out, 0, code);
  f.write(out, 0, pfn);
  if (!writable && pte.readOnly !== null) pte.readOnly.apply(out, 0, 2);
  if (writable && pte.writable !== null) pte.writable.apply(out, 0, 2);
  if ((attrs.atomic ?? true) === false && pte.atomicDisable !== null) pte.atomicDisable.apply(out, 0, 2);
  if (attrs.volatile === true && pte.volatile !== null) pte.volatile.apply(out, 0, 2);
  if (attrs.privileged === true && pte.privileged !== null) pte.privileged.apply(out, 0, 2);
  if (kind !== 0) pte.kind!.write(out, 0, kind);
  if (peerId !== 0) pte.peerId!.write(out, 0, peerId);
  if (fragment !== 0) pte.fragment!.write(out, 0, fragment);
}

function decodeAttrs(pte: CompiledPte, w: Uint32Array, o: number): MapAttrs {
  return {
    aperture: pte.addr.aperture(w, o) as Aperture,
    writable: pte.isWritable(w, o),
    atomic: pte.atomicDisable === null || !pte.atomicDisable.matches(w, o),
    volatile: pte.volatile?.matches(w, o) === true,
    privileged: pte.privileged?.matches(w, o) === true,
    kind: pte.kind === null ? 0 : pte.kind.read(w, o),
    peerId: pte.peerId === null ? 0 : pte.peerId.read(w, o),
  };
}
