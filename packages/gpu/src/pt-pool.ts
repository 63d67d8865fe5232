/**
 * The table pool of a device page table: one `Uint32Array` arena at a physical VID base, tables
 * handed out per size from free lists (sub-page tables carved from 4 KiB pool pages), a count
 * of non-zero entries per table, and the one place entries are written ({@link PtPool.put}), so
 * PTE/PDE write counts and the update batch see every write.
 *
 * @module
 */
import { ArgumentError, StateError } from '@hmmkit/sim';
import type { CompiledLevel, PtFormat } from './format.ts';
import { APERTURE } from './format.ts';
import { encodeAddr } from './pt-entry.ts';
import type { PtUpdateBatch } from './pt-update.ts';

const GRANULE = 256;
const WORDS_PER_GRANULE = GRANULE / 4;

/** The arena and bookkeeping shared by the page-table modules (not exported from the package). */
export class PtPool {
  readonly format: PtFormat;
  readonly levels: readonly CompiledLevel[];
  /** Physical base address of the table pool. */
  readonly poolBase: number;
  /** First address the format's PDEs cannot name: the pool must stay below it. */
  readonly poolLimit: number;
  /** Physical address of the root table. */
  readonly rootAddr: number;
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
  /** 8-byte PTE and PDE writes made (all batches). */
  pteWrites = 0;
  pdeWrites = 0;
  /** Scratch entry words (one entry of up to 16 bytes). */
  readonly scratch = new Uint32Array(4);

  constructor(format: PtFormat, poolBase: number) {
    this.format = format;
    this.levels = format.levels;
    this.poolBase = poolBase;
    if (!Number.isSafeInteger(poolBase) || poolBase < 0 || poolBase % 4096 !== 0) {
      throw new ArgumentError('PageTable', 'options.poolBase', 'must be a 4 KiB-aligned address', poolBase);
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
    if (poolBase + 4096 > limit) {
      throw new ArgumentError(
        'PageTable',
        'options.poolBase',
        `must leave room below ${limit} for ${format.name} PDEs`,
        poolBase,
      );
    }
    this.words = new Uint32Array(16 * 1024);
    this.used = new Int32Array(this.words.length / WORDS_PER_GRANULE);
    this.tablesPerLevel = new Int32Array(format.levels.length);
    this.rootAddr = this.allocLevelTable(0);
  }

  /** Bytes of table memory in use (allocated tables, rounded to their alignment). */
  get tableBytes(): number {
    let b = 0;
    for (let i = 0; i < this.levels.length; i++) b += this.tablesPerLevel[i]! * this.levels[i]!.tableBytes;
    for (const l of this.levels) if (l.bigTableBytes > 0) b += this.bigTables * l.bigTableBytes;
    return b;
  }

  /** Allocates a zeroed table of `bytes`; returns its physical address. */
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

  /** Zeroes and frees table `addr` of `bytes`. */
  private freeTable(addr: number, bytes: number): void {
    const o = (addr - this.poolBase) / 4;
    this.words.fill(0, o, o + bytes / 4);
    this.used[o / WORDS_PER_GRANULE] = 0;
    this.freeBySize.get(bytes)!.push(addr);
  }

  /** Allocates a table of level `level` and counts it. */
  allocLevelTable(level: number): number {
    const t = this.allocTable(this.levels[level]!.tableBytes);
    this.tablesPerLevel[level]!++;
    return t;
  }

  /** Frees a table of level `level` and uncounts it. */
  freeLevelTable(level: number, addr: number): void {
    this.freeTable(addr, this.levels[level]!.tableBytes);
    this.tablesPerLevel[level]!--;
  }

  /** Allocates a big (64K) table of dual level `L` and counts it. */
  allocBigTable(L: CompiledLevel): number {
    const t = this.allocTable(L.bigTableBytes);
    this.bigTables++;
    return t;
  }

  /** Frees a big (64K) table of dual level `L` and uncounts it. */
  freeBigTable(L: CompiledLevel, addr: number): void {
    this.freeTable(addr, L.bigTableBytes);
    this.bigTables--;
  }

  /** Word offset of table `tableAddr` in {@link words}. */
  off(tableAddr: number): number {
    return (tableAddr - this.poolBase) / 4;
  }

  /** Non-zero entries of table `tableAddr`. */
  count(tableAddr: number): number {
    return this.used[(tableAddr - this.poolBase) / GRANULE]!;
  }

  /** True when `words` words at offset `o` are all zero. */
  isZero(o: number, words: number): boolean {
    const w = this.words;
    for (let k = 0; k < words; k++) if (w[o + k] !== 0) return false;
    return true;
  }

  /** Writes `words` words from `src` into the entry at word offset `o` of table `tableAddr`. */
  put(
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

  /** Writes zeros into the entry at word offset `o` of table `tableAddr`. */
  zeroEntry(tableAddr: number, o: number, words: number, pde: boolean, batch: PtUpdateBatch): void {
    this.scratch.fill(0);
    this.put(tableAddr, o, words, this.scratch, pde, batch);
  }

  /** Writes a PDE of (non-dual) level `L` at `o` pointing at table `next`. */
  writePde(L: CompiledLevel, table: number, o: number, next: number, batch: PtUpdateBatch): void {
    const s = this.scratch;
    s.fill(0);
    const pde = L.pde!;
    if (pde.present !== null) pde.present.apply(s, 0, L.words);
    encodeAddr(pde.addr, s, next, APERTURE.VID);
    this.put(table, o, L.words, s, true, batch);
  }
}
