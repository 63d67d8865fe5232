/**
 * Device memory: a buddy allocator over orders 4K..2M on 2 MiB root chunks (split lazily,
 * merged eagerly, as `uvm_pmm_gpu.c` does), allocation-order LRU of root chunks for eviction
 * policies above, and lazily materialised contents (a 4K page gets bytes only when written;
 * unwritten memory reads as zero) so tests can check data byte for byte without paying for
 * gigabytes.
 *
 * All state is typed arrays indexed by 4K frame or root-chunk number.
 *
 * @module
 */
import { ArgumentError, Errno, modPow2 } from '@hmmkit/sim';

/** Largest order: 2 MiB = 4K << 9. */
export const VRAM_MAX_ORDER = 9;
/** Bytes of a root chunk. */
export const ROOT_CHUNK_BYTES = 2 * 1024 * 1024;
const FRAMES_PER_ROOT = 512;
const ROOT_FREE = 0;
const ROOT_WHOLE = 1;
const ROOT_SPLIT = 2;
const SLAB_PAGES = 256;

/** Allocation statistics. */
export interface VramStats {
  readonly totalBytes: number;
  readonly freeBytes: number;
  readonly usedBytes: number;
  /** Free blocks per order 0..9. */
  readonly freeBlocks: readonly number[];
  /** Root chunks with at least one allocated block. */
  readonly usedRootChunks: number;
  /** 4K pages whose contents are materialised. */
  readonly materializedPages: number;
}

/** Device memory with a buddy allocator. Addresses are VID-aperture byte addresses from 0. */
export class Vram {
  readonly sizeBytes: number;
  readonly frames: number;
  readonly rootChunks: number;
  // Per-frame state is used only inside split root chunks, and encoded so that zero means
  // "nothing": a root chunk free or allocated whole (what a driver allocating 2 MiB chunks does)
  // never touches its frames' entries, so the arrays cost no resident memory there.
  /** Order + 1 of the free block headed at a frame of a split root (0 = none). */
  private readonly freeOrder: Int8Array;
  /** Order + 1 of the allocated block headed at a frame of a split root (0 = none). */
  private readonly allocOrder: Int8Array;
  /** Owner tag of the allocated block headed at a frame of a split root. */
  private readonly owner: Int32Array;
  /** Per root chunk: ROOT_FREE (one free 2 MiB block), ROOT_WHOLE (allocated whole) or ROOT_SPLIT. */
  private readonly rootState: Int8Array;
  /** Owner tag of a root chunk allocated whole. */
  private readonly rootOwner: Int32Array;
  /** Free-list links of free root chunks (first-frame numbers, -1 = none), indexed by root. */
  private readonly rootNext: Int32Array;
  private readonly rootPrev: Int32Array;
  private readonly next: Int32Array;
  private readonly prev: Int32Array;
  private readonly heads: Int32Array;
  private readonly freeCount: Int32Array;
  private freeFrames: number;
  /** Allocated 4K frames per root chunk. */
  private readonly rootUsed: Int32Array;
  private readonly lruNext: Int32Array;
  private readonly lruPrev: Int32Array;
  private lruHead = -1;
  private lruTail = -1;
  /** Content slot + 1 per frame (0 = never written: reads as zeros). */
  private readonly slotOf: Int32Array;
  private readonly slabs: Uint8Array[] = [];
  private freeSlots: number[] = [];
  private nextSlot = 0;
  private materialized = 0;

  constructor(sizeBytes: number) {
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % ROOT_CHUNK_BYTES !== 0) {
      throw new ArgumentError('Vram', 'sizeBytes', 'must be a positive multiple of 2 MiB', sizeBytes);
    }
    if (sizeBytes / 4096 >= 2 ** 31)
      throw new ArgumentError('Vram', 'sizeBytes', 'must be below 8 TiB', sizeBytes);
    this.sizeBytes = sizeBytes;
    this.frames = sizeBytes / 4096;
    this.rootChunks = sizeBytes / ROOT_CHUNK_BYTES;
    this.freeOrder = new Int8Array(this.frames);
    this.allocOrder = new Int8Array(this.frames);
    this.owner = new Int32Array(this.frames);
    // next/prev of a frame are written by push before anything reads them
    this.next = new Int32Array(this.frames);
    this.prev = new Int32Array(this.frames);
    this.rootState = new Int8Array(this.rootChunks);
    this.rootOwner = new Int32Array(this.rootChunks);
    this.rootNext = new Int32Array(this.rootChunks).fill(-1);
    this.rootPrev = new Int32Array(this.rootChunks).fill(-1);
    this.heads = new Int32Array(VRAM_MAX_ORDER + 1).fill(-1);
    this.freeCount = new Int32Array(VRAM_MAX_ORDER + 1);
    this.rootUsed = new Int32Array(this.rootChunks);
    this.lruNext = new Int32Array(this.rootChunks).fill(-1);
    this.lruPrev = new Int32Array(this.rootChunks).fill(-1);
    this.slotOf = new Int32Array(this.frames);
    // Push roots high to low so the lowest address is handed out first.
    for (let r = this.rootChunks - 1; r >= 0; r--) this.push(r * FRAMES_PER_ROOT, VRAM_MAX_ORDER);
    this.freeFrames = this.frames;
  }

  private push(frame: number, order: number): void {
    const h = this.heads[order]!;
    if (order === VRAM_MAX_ORDER) {
      const r = frame / FRAMES_PER_ROOT;
      this.rootNext[r] = h;
      this.rootPrev[r] = -1;
      if (h >= 0) this.rootPrev[h / FRAMES_PER_ROOT] = frame;
      this.rootState[r] = ROOT_FREE;
    } else {
      this.next[frame] = h;
      this.prev[frame] = -1;
      if (h >= 0) this.prev[h] = frame;
      this.freeOrder[frame] = order + 1;
    }
    this.heads[order] = frame;
    this.freeCount[order]!++;
  }

  /** Takes a free block off its list (a root chunk's new state is set by the caller). */
  private unlink(frame: number, order: number): void {
    if (order === VRAM_MAX_ORDER) {
      const r = frame / FRAMES_PER_ROOT;
      const n = this.rootNext[r]!;
      const p = this.rootPrev[r]!;
      if (p >= 0) this.rootNext[p / FRAMES_PER_ROOT] = n;
      else this.heads[order] = n;
      if (n >= 0) this.rootPrev[n / FRAMES_PER_ROOT] = p;
    } else {
      const n = this.next[frame]!;
      const p = this.prev[frame]!;
      if (p >= 0) this.next[p] = n;
      else this.heads[order] = n;
      if (n >= 0) this.prev[n] = p;
      this.freeOrder[frame] = 0;
    }
    this.freeCount[order]!--;
  }

  /** Order of the free block headed at `frame`, or -1. */
  private freeOrderOf(frame: number): number {
    const r = Math.floor(frame / FRAMES_PER_ROOT);
    const st = this.rootState[r]!;
    if (st === ROOT_SPLIT) return this.freeOrder[frame]! - 1;
    return st === ROOT_FREE && frame % FRAMES_PER_ROOT === 0 ? VRAM_MAX_ORDER : -1;
  }

  /** Order of the allocated block headed at `frame`, or -1. */
  private allocOrderOf(frame: number): number {
    const r = Math.floor(frame / FRAMES_PER_ROOT);
    const st = this.rootState[r]!;
    if (st === ROOT_SPLIT) return this.allocOrder[frame]! - 1;
    return st === ROOT_WHOLE && frame % FRAMES_PER_ROOT === 0 ? VRAM_MAX_ORDER : -1;
  }

  /** Owner tag of the block headed at `frame`. */
  private ownerAt(frame: number): number {
    const r = Math.floor(frame / FRAMES_PER_ROOT);
    return this.rootState[r] === ROOT_WHOLE && frame % FRAMES_PER_ROOT === 0
      ? this.rootOwner[r]!
      : this.owner[frame]!;
  }

  /** Order for `size` bytes (a power of two from 4K to 2M). */
  static orderOf(size: number): number {
    const o = Math.log2(size / 4096);
    return Number.isInteger(o) && o >= 0 && o <= VRAM_MAX_ORDER ? o : -1;
  }

  /**
   * Allocates a naturally aligned block of `size` bytes (4K << order, up to 2M). Returns its
   * address, or `-Errno.ENOMEM` when no block is free. `owner` is a tag kept for eviction
   * policies ({@link forEachAllocation}). Models uvm_pmm_gpu_alloc() of one chunk.
   */
  alloc(size: number, owner = 0): number {
    const order = Vram.orderOf(size);
    if (order < 0)
      throw new ArgumentError('Vram.alloc', 'size', 'must be a power of two from 4096 to 2 MiB', size);
    if (!Number.isInteger(owner) || owner < -(2 ** 31) || owner >= 2 ** 31) {
      throw new ArgumentError('Vram.alloc', 'owner', 'must be an int32', owner);
    }
    let o = order;
    while (o <= VRAM_MAX_ORDER && this.heads[o]! < 0) o++;
    if (o > VRAM_MAX_ORDER) return -Errno.ENOMEM;
    const frame = this.heads[o]!;
    const root = Math.floor(frame / FRAMES_PER_ROOT);
    this.unlink(frame, o);
    if (o === VRAM_MAX_ORDER) this.rootState[root] = order === VRAM_MAX_ORDER ? ROOT_WHOLE : ROOT_SPLIT;
    while (o > order) {
      o--;
      this.push(frame + (1 << o), o); // split lazily: the upper half goes back free
    }
    if (order === VRAM_MAX_ORDER) this.rootOwner[root] = owner;
    else {
      this.allocOrder[frame] = order + 1;
      this.owner[frame] = owner;
    }
    const n = 1 << order;
    this.freeFrames -= n;
    this.rootUsed[root]! += n;
    this.lruTouch(root);
    return frame * 4096;
  }

  /** Frees the block allocated at `pa`, merging buddies eagerly; its contents are dropped. */
  free(pa: number): void {
    const frame = this.frameOf('Vram.free', pa);
    const order = this.allocOrderOf(frame);
    if (order < 0) throw new ArgumentError('Vram.free', 'pa', 'is not the start of an allocated block', pa);
    const n = 1 << order;
    if (this.materialized > 0) for (let f = frame; f < frame + n; f++) this.dropContents(f);
    if (order < VRAM_MAX_ORDER) this.allocOrder[frame] = 0;
    this.freeFrames += n;
    const root = Math.floor(frame / FRAMES_PER_ROOT);
    this.rootUsed[root]! -= n;
    if (this.rootUsed[root] === 0) this.lruRemove(root);
    let f = frame;
    let o = order;
    while (o < VRAM_MAX_ORDER) {
      const buddy = f ^ (1 << o);
      if (this.freeOrderOf(buddy) !== o) break;
      this.unlink(buddy, o);
      f = Math.min(f, buddy);
      o++;
    }
    this.push(f, o);
  }

  private frameOf(fn: string, pa: number): number {
    if (!Number.isSafeInteger(pa) || pa < 0 || pa >= this.sizeBytes || pa % 4096 !== 0) {
      throw new ArgumentError(fn, 'pa', 'must be a 4K-aligned VRAM address', pa);
    }
    return pa / 4096;
  }

  /** Size in bytes of the block allocated at `pa`, or 0 if none starts there. */
  allocationSize(pa: number): number {
    const frame = this.frameOf('Vram.allocationSize', pa);
    const o = this.allocOrderOf(frame);
    return o < 0 ? 0 : 4096 << o;
  }

  /** Owner tag of the block allocated at `pa`. */
  ownerOf(pa: number): number {
    return this.ownerAt(this.frameOf('Vram.ownerOf', pa));
  }

  /** Bytes free. */
  get freeBytes(): number {
    return this.freeFrames * 4096;
  }

  /** Statistics. */
  stats(): VramStats {
    let usedRoots = 0;
    for (let r = 0; r < this.rootChunks; r++) if (this.rootUsed[r]! > 0) usedRoots++;
    return {
      totalBytes: this.sizeBytes,
      freeBytes: this.freeBytes,
      usedBytes: this.sizeBytes - this.freeBytes,
      freeBlocks: Array.from(this.freeCount),
      usedRootChunks: usedRoots,
      materializedPages: this.materialized,
    };
  }

  // ---------------------------------------------------------------- LRU of root chunks

  private lruRemove(r: number): void {
    const p = this.lruPrev[r]!;
    const n = this.lruNext[r]!;
    if (p >= 0) this.lruNext[p] = n;
    else if (this.lruHead === r) this.lruHead = n;
    if (n >= 0) this.lruPrev[n] = p;
    else if (this.lruTail === r) this.lruTail = p;
    this.lruPrev[r] = -1;
    this.lruNext[r] = -1;
  }

  private lruTouch(r: number): void {
    if (this.lruTail === r) return;
    this.lruRemove(r);
    this.lruPrev[r] = this.lruTail;
    this.lruNext[r] = -1;
    if (this.lruTail >= 0) this.lruNext[this.lruTail] = r;
    this.lruTail = r;
    if (this.lruHead < 0) this.lruHead = r;
  }

  /**
   * Moves root chunk `root` to the most-recently-used end (UVM moves a chunk on allocation
   * only; a policy may call this on access). Chunks with nothing allocated are not listed.
   */
  touchRootChunk(root: number): void {
    if (!Number.isInteger(root) || root < 0 || root >= this.rootChunks) {
      throw new ArgumentError('Vram.touchRootChunk', 'root', `must be in [0, ${this.rootChunks})`, root);
    }
    if (this.rootUsed[root]! > 0) this.lruTouch(root);
  }

  /** The least recently allocated-from root chunk with allocations (eviction candidate), or -1. */
  lruOldest(): number {
    return this.lruHead;
  }

  /** Root chunks with allocations, least recently allocated-from first. */
  lruOrder(): number[] {
    const out: number[] = [];
    for (let r = this.lruHead; r >= 0; r = this.lruNext[r]!) out.push(r);
    return out;
  }

  /** Allocated bytes in root chunk `root`. */
  rootChunkUsedBytes(root: number): number {
    return (this.rootUsed[root] ?? 0) * 4096;
  }

  /** Calls `fn(pa, size, owner)` for every allocated block in root chunk `root`, by address. */
  forEachAllocation(root: number, fn: (pa: number, size: number, owner: number) => void): void {
    const f0 = root * FRAMES_PER_ROOT;
    const st = this.rootState[root];
    if (st === ROOT_WHOLE) fn(f0 * 4096, ROOT_CHUNK_BYTES, this.rootOwner[root]!);
    if (st !== ROOT_SPLIT) return;
    for (let f = f0; f < f0 + FRAMES_PER_ROOT; ) {
      const o = this.allocOrder[f]! - 1;
      if (o >= 0) {
        fn(f * 4096, 4096 << o, this.owner[f]!);
        f += 1 << o;
      } else {
        const fo = this.freeOrder[f]! - 1;
        f += fo >= 0 ? 1 << fo : 1;
      }
    }
  }

  /** Checks the allocator's invariants (for tests); throws on the first violation. */
  checkInvariants(): void {
    const covered = new Uint8Array(this.frames);
    let free = 0;
    for (let o = 0; o <= VRAM_MAX_ORDER; o++) {
      let n = 0;
      const top = o === VRAM_MAX_ORDER;
      for (let f = this.heads[o]!; f >= 0; f = top ? this.rootNext[f / FRAMES_PER_ROOT]! : this.next[f]!) {
        if (this.freeOrderOf(f) !== o || f % (1 << o) !== 0)
          throw new Error(`free block ${f} order ${o} corrupt`);
        for (let k = f; k < f + (1 << o); k++) {
          if (covered[k]) throw new Error(`frame ${k} covered twice`);
          covered[k] = 1;
        }
        if (o < VRAM_MAX_ORDER && this.freeOrderOf(f ^ (1 << o)) === o)
          throw new Error(`unmerged buddies at ${f}`);
        n++;
        free += 1 << o;
      }
      if (n !== this.freeCount[o]) throw new Error(`free count of order ${o} wrong`);
    }
    for (let f = 0; f < this.frames; f++) {
      const o = this.allocOrderOf(f);
      if (o < 0) continue;
      for (let k = f; k < f + (1 << o); k++) {
        if (covered[k]) throw new Error(`allocated frame ${k} also free or allocated twice`);
        covered[k] = 1;
      }
    }
    if (free !== this.freeFrames) throw new Error('free frame count wrong');
    for (let f = 0; f < this.frames; f++) if (!covered[f]) throw new Error(`frame ${f} lost`);
  }

  // ---------------------------------------------------------------- contents
  //
  // A frame "has contents" when slotOf[frame] > 0 (slot + 1; 0 = never written, reads as zero).
  // Zero means untouched, so the array costs no resident memory until frames are written.
  // Slabs come from the allocator zeroed, so a slot used for the first time needs no fill; a
  // recycled slot is zeroed only where the write does not cover it.

  private dropContents(frame: number): void {
    const s = this.slotOf[frame]!;
    if (s === 0) return;
    this.slotOf[frame] = 0;
    this.freeSlots.push(s - 1);
    this.materialized--;
  }

  /** Slab of slot `s`. */
  private slab(s: number): Uint8Array {
    return this.slabs[Math.floor(s / SLAB_PAGES)]!;
  }

  /**
   * The slot holding `frame`'s bytes, creating it if needed. `keepFrom`..`keepTo` is the byte
   * range of the page the caller is about to overwrite: a recycled slot is zeroed outside it only.
   */
  private materialize(frame: number, keepFrom: number, keepTo: number): number {
    const cur = this.slotOf[frame]!;
    if (cur > 0) return cur - 1;
    let s: number;
    if (this.freeSlots.length > 0) {
      s = this.freeSlots.pop()!;
      const buf = this.slab(s);
      const off = (s % SLAB_PAGES) * 4096;
      if (keepFrom > 0) buf.fill(0, off, off + keepFrom);
      if (keepTo < 4096) buf.fill(0, off + keepTo, off + 4096);
    } else {
      s = this.nextSlot++;
      if (Math.floor(s / SLAB_PAGES) >= this.slabs.length) this.slabs.push(new Uint8Array(SLAB_PAGES * 4096));
    }
    this.slotOf[frame] = s + 1;
    this.materialized++;
    return s;
  }

  private checkRange(fn: string, pa: number, len: number): void {
    if (
      !Number.isSafeInteger(pa) ||
      pa < 0 ||
      !Number.isSafeInteger(len) ||
      len < 0 ||
      pa + len > this.sizeBytes
    ) {
      throw new ArgumentError(fn, 'pa', `range [pa, pa + ${len}) must lie inside VRAM`, pa);
    }
  }

  /** Zeroes `n` bytes at `inPage` of `frame`: a whole page drops its contents, a part is filled. */
  private zeroPart(frame: number, inPage: number, n: number): void {
    const s = this.slotOf[frame]!;
    if (s === 0) return;
    if (n === 4096) this.dropContents(frame);
    else {
      const off = ((s - 1) % SLAB_PAGES) * 4096 + inPage;
      this.slab(s - 1).fill(0, off, off + n);
    }
  }

  /**
   * Writes `src` (or `len` zero bytes when `src` is null) at `pa`. Zero writes (`src` null)
   * never materialise a page, and a whole page of them drops its contents.
   */
  write(pa: number, src: Uint8Array | null, len: number = src?.length ?? 0): void {
    this.checkRange('Vram.write', pa, len);
    if (src !== null && src.length < len)
      throw new ArgumentError('Vram.write', 'src', 'is shorter than len', src.length);
    let done = 0;
    while (done < len) {
      const a = pa + done;
      const frame = Math.floor(a / 4096);
      const inPage = modPow2(a, 4096);
      const n = Math.min(4096 - inPage, len - done);
      if (src === null) this.zeroPart(frame, inPage, n);
      else {
        const s = this.materialize(frame, inPage, inPage + n);
        this.slab(s).set(src.subarray(done, done + n), (s % SLAB_PAGES) * 4096 + inPage);
      }
      done += n;
    }
  }

  /** Reads `len` bytes at `pa` into `dst` (a new buffer if omitted). Never materialises. */
  read(pa: number, len: number, dst: Uint8Array = new Uint8Array(len)): Uint8Array {
    this.checkRange('Vram.read', pa, len);
    if (dst.length < len) throw new ArgumentError('Vram.read', 'dst', 'is shorter than len', dst.length);
    let done = 0;
    while (done < len) {
      const a = pa + done;
      const frame = Math.floor(a / 4096);
      const inPage = modPow2(a, 4096);
      const n = Math.min(4096 - inPage, len - done);
      const s = this.slotOf[frame]!;
      if (s === 0) dst.fill(0, done, done + n);
      else {
        const off = ((s - 1) % SLAB_PAGES) * 4096 + inPage;
        dst.set(this.slab(s - 1).subarray(off, off + n), done);
      }
      done += n;
    }
    return dst;
  }

  /** Reads the little-endian 32-bit word at `pa` (4-byte aligned). */
  read32(pa: number): number {
    if (!Number.isSafeInteger(pa) || pa < 0 || pa + 4 > this.sizeBytes || pa % 4 !== 0) {
      throw new ArgumentError('Vram.read32', 'pa', 'must be a 4-byte aligned VRAM address', pa);
    }
    const slot = this.slotOf[Math.floor(pa / 4096)]!;
    if (slot === 0) return 0;
    const o = ((slot - 1) % SLAB_PAGES) * 4096 + modPow2(pa, 4096);
    const b = this.slab(slot - 1);
    return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
  }

  /** Writes the little-endian 32-bit word `value` at `pa` (4-byte aligned). */
  write32(pa: number, value: number): void {
    if (!Number.isSafeInteger(pa) || pa < 0 || pa + 4 > this.sizeBytes || pa % 4 !== 0) {
      throw new ArgumentError('Vram.write32', 'pa', 'must be a 4-byte aligned VRAM address', pa);
    }
    const inPage = modPow2(pa, 4096);
    const slot = this.materialize(Math.floor(pa / 4096), inPage, inPage + 4);
    const o = (slot % SLAB_PAGES) * 4096 + inPage;
    const b = this.slab(slot);
    b[o] = value & 255;
    b[o + 1] = (value >>> 8) & 255;
    b[o + 2] = (value >>> 16) & 255;
    b[o + 3] = (value >>> 24) & 255;
  }

  /**
   * Copies `len` bytes inside VRAM (ranges may not partly overlap; a copy onto itself moves
   * nothing). Page by page: a source page that was never written zeroes the destination (a
   * whole destination page then has no contents), so copying unwritten memory allocates nothing.
   */
  copyWithin(dstPa: number, srcPa: number, len: number): void {
    this.checkRange('Vram.copyWithin', srcPa, len);
    this.checkRange('Vram.copyWithin', dstPa, len);
    if (dstPa === srcPa) return;
    let done = 0;
    while (done < len) {
      const d = dstPa + done;
      const sa = srcPa + done;
      // the piece ends at whichever page boundary (source or destination) comes first
      const n = Math.min(4096 - modPow2(d, 4096), 4096 - modPow2(sa, 4096), len - done);
      const dFrame = Math.floor(d / 4096);
      const dIn = modPow2(d, 4096);
      const ss = this.slotOf[Math.floor(sa / 4096)]!;
      if (ss === 0) this.zeroPart(dFrame, dIn, n);
      else {
        const so = ((ss - 1) % SLAB_PAGES) * 4096 + modPow2(sa, 4096);
        const src = this.slab(ss - 1).subarray(so, so + n);
        const ds = this.materialize(dFrame, dIn, dIn + n);
        this.slab(ds).set(src, (ds % SLAB_PAGES) * 4096 + dIn);
      }
      done += n;
    }
  }

  /** True when the 4K page at `pa` holds materialised bytes. */
  isMaterialized(pa: number): boolean {
    return this.slotOf[this.frameOf('Vram.isMaterialized', Math.floor(pa / 4096) * 4096)]! > 0;
  }
}
