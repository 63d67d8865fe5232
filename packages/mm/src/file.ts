/**
 * Files that can be mapped: a tmpfile-like shmem file ({@link TmpFile}) with pread/pwrite and a
 * page cache shared by all of its mappings (also the backing of MAP_SHARED|MAP_ANONYMOUS), and
 * {@link SpecialFile}, a device file whose `mmap` hook is the driver's `f_op->mmap` (e.g. a
 * VM_MIXEDMAP mapping filled with `Mm.vmInsertPage`).
 *
 * @module
 */
import { ArgumentError, checkUint, Errno } from '@hmmkit/sim';
import { O_RDONLY, O_RDWR, O_WRONLY, PAGE_SIZE } from './constants.ts';
import type { PhysMem } from './physmem.ts';
import { PG } from './physmem.ts';
import type { Vma } from './vma.ts';

let nextFileId = 1;
const inodesById = new Map<number, WeakRef<ShmemInode>>();
const inodeGc = new FinalizationRegistry<number>((id) => inodesById.delete(id));

/** The shmem inode whose pages carry `mapping` id (negative), or null (rmap of file pages). */
export function inodeById(id: number): ShmemInode | null {
  return inodesById.get(id)?.deref() ?? null;
}

/** Common part of every mappable file (`struct file` + `struct address_space`). */
export abstract class MmFile {
  /** Unique id (stored as page->mapping of page-cache pages). */
  readonly id: number;
  /** Open mode: O_RDONLY, O_WRONLY or O_RDWR. */
  readonly mode: number;
  /** i_mmap: the VMAs mapping this file's inode (for rmap). */
  abstract get mappings(): Set<Vma>;

  constructor(mode: number) {
    if (mode !== O_RDONLY && mode !== O_WRONLY && mode !== O_RDWR) {
      throw new ArgumentError('MmFile', 'mode', 'must be O_RDONLY, O_WRONLY or O_RDWR', mode);
    }
    this.id = nextFileId++;
    this.mode = mode;
  }

  /** FMODE_READ. */
  get readable(): boolean {
    return this.mode === O_RDONLY || this.mode === O_RDWR;
  }
  /** FMODE_WRITE. */
  get writable(): boolean {
    return this.mode === O_WRONLY || this.mode === O_RDWR;
  }
}

/**
 * A shmem/tmpfs file (O_TMPFILE): contents live in the page cache, holes read as zeros. Several
 * TmpFile objects may share one inode via {@link TmpFile.reopen} (a second open with another mode).
 */
export class TmpFile extends MmFile {
  /** The shared inode (page cache and size). */
  readonly inode: ShmemInode;

  /** Creates an empty file of `size` bytes on `phys`, opened with `mode` (default O_RDWR). */
  constructor(phys: PhysMem, size = 0, mode: number = O_RDWR, inode?: ShmemInode) {
    super(mode);
    checkUint('TmpFile', 'size', size);
    this.inode = inode ?? new ShmemInode(phys, size);
  }

  /** i_mmap of the shared inode. */
  get mappings(): Set<Vma> {
    return this.inode.mappings;
  }

  /** A second open file description of the same inode with another mode. */
  reopen(mode: number): TmpFile {
    return new TmpFile(this.inode.phys, 0, mode, this.inode);
  }

  /** File size in bytes (i_size). */
  get size(): number {
    return this.inode.size;
  }

  /** Models ftruncate(): 0, or -EBADF / -EINVAL. Shrinking drops page-cache pages past the end. */
  truncate(size: number): number {
    if (!this.writable) return -Errno.EINVAL;
    if (!Number.isSafeInteger(size) || size < 0) return -Errno.EINVAL;
    this.inode.truncate(size);
    return 0;
  }

  /** Models pread(2): bytes read into `buf` (short at EOF), or -EBADF. */
  pread(buf: Uint8Array, offset: number): number {
    if (!this.readable) return -Errno.EBADF;
    if (!Number.isSafeInteger(offset) || offset < 0) return -Errno.EINVAL;
    const ino = this.inode;
    const n = Math.max(0, Math.min(buf.length, ino.size - offset));
    let done = 0;
    while (done < n) {
      const pos = offset + done;
      const idx = Math.floor(pos / PAGE_SIZE);
      const off = pos % PAGE_SIZE;
      const len = Math.min(PAGE_SIZE - off, n - done);
      const pfn = ino.find(idx);
      if (pfn === 0) buf.fill(0, done, done + len);
      else ino.phys.readPage(pfn, off, buf, done, len);
      done += len;
    }
    return n;
  }

  /** Models pwrite(2): bytes written (extending the file), or -EBADF / -ENOMEM. */
  pwrite(buf: Uint8Array, offset: number): number {
    if (!this.writable) return -Errno.EBADF;
    if (!Number.isSafeInteger(offset) || offset < 0) return -Errno.EINVAL;
    const ino = this.inode;
    let done = 0;
    while (done < buf.length) {
      const pos = offset + done;
      const idx = Math.floor(pos / PAGE_SIZE);
      const off = pos % PAGE_SIZE;
      const len = Math.min(PAGE_SIZE - off, buf.length - done);
      const pfn = ino.findOrCreate(idx);
      if (pfn < 0) return done === 0 ? -Errno.ENOMEM : done;
      ino.phys.writePage(pfn, off, buf, done, len);
      ino.phys.flags[pfn] = ino.phys.flags[pfn]! | PG.dirty;
      done += len;
    }
    if (offset + done > ino.size) ino.size = offset + done;
    return done;
  }
}

/** The inode of a shmem file: size and page cache (index → pfn in an Int32Array; 0 = absent). */
export class ShmemInode {
  readonly phys: PhysMem;
  /** i_size in bytes. */
  size: number;
  /** The page cache: pfn per page index (0 = not cached). */
  cache: Int32Array;
  /** Pages in the page cache. */
  nrPages = 0;
  /** Id used as page->mapping for this inode's pages (negative: anon families are positive). */
  readonly id: number;
  /** i_mmap: VMAs mapping this inode. */
  readonly mappings = new Set<Vma>();

  constructor(phys: PhysMem, size: number) {
    this.phys = phys;
    this.size = size;
    this.cache = new Int32Array(Math.max(16, Math.ceil(size / PAGE_SIZE)));
    this.id = -nextFileId++;
    inodesById.set(this.id, new WeakRef(this));
    inodeGc.register(this, this.id);
  }

  /** filemap_get_folio(): the cached pfn of page `idx`, or 0. */
  find(idx: number): number {
    return idx < this.cache.length ? this.cache[idx]! : 0;
  }

  /** shmem_get_folio(SGP_CACHE): the cached page, allocating a zero page-cache page; -1 on OOM. */
  findOrCreate(idx: number): number {
    const cur = this.find(idx);
    if (cur !== 0) return cur;
    if (idx >= this.cache.length) {
      let n = this.cache.length;
      while (n <= idx) n *= 2;
      const c = new Int32Array(n);
      c.set(this.cache);
      this.cache = c;
    }
    const pfn = this.phys.allocPage(0, PG.file);
    if (pfn < 0) return -1;
    this.phys.mapping[pfn] = this.id;
    this.phys.index[pfn] = idx;
    this.cache[idx] = pfn; // the page cache's reference is the allocation's refcount 1
    this.nrPages++;
    return pfn;
  }

  /** Shrinks or grows i_size; drops cached pages wholly beyond the new size. */
  truncate(size: number): void {
    const keep = Math.ceil(size / PAGE_SIZE);
    for (let i = keep; i < this.cache.length; i++) {
      const pfn = this.cache[i]!;
      if (pfn !== 0) {
        this.cache[i] = 0;
        this.nrPages--;
        this.phys.putPage(pfn);
      }
    }
    this.size = size;
  }
}

/**
 * A device file whose mmap is implemented by a driver (f_op->mmap): the hook may set
 * VM_MIXEDMAP/VM_PFNMAP/VM_IO on the VMA and insert pages with `Mm.vmInsertPage`. Faults on
 * addresses it did not fill get SIGBUS.
 */
export class SpecialFile extends MmFile {
  /** The driver's mmap handler: returns 0 or a negative errno. */
  readonly mmapHook: (vma: Vma) => number;
  private readonly iMmap = new Set<Vma>();

  /** VMAs mapping this file. */
  get mappings(): Set<Vma> {
    return this.iMmap;
  }

  constructor(mode: number, mmapHook: (vma: Vma) => number) {
    super(mode);
    this.mmapHook = mmapHook;
  }
}
