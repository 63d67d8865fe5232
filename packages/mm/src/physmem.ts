/**
 * Physical memory: page frames indexed by pfn, with their metadata in typed arrays (refcount,
 * mapcount, flags, NUMA node, compound order, rmap index), NUMA system-memory nodes, device
 * memory owned by a {@link DevPagemap} (ZONE_DEVICE, `memremap_pages()`), the shared zero page
 * and huge zero page, compound (2 MiB / 1 GiB) folios, the swap device, and page contents.
 *
 * Page contents are real bytes but are materialised only when something non-zero is written:
 * a frame without a data slot reads as zeros. Slots live in 1 MiB slabs, so faulting millions
 * of pages that are never written costs only the per-frame metadata (~40 bytes a page).
 *
 * Refcounting model: every pfn (including the tail pages of a compound folio) has its own
 * refcount and mapcount. A folio's block of frames returns to the allocator when the last of
 * its pages is freed. Device pages are handed back to their pagemap's `pageFree` callback when
 * their refcount drops to 0, as Linux does for ZONE_DEVICE pages.
 *
 * @module
 */
import { ArgumentError, pow2, type Sim, StateError, WaitQueue } from '@hmmkit/sim';
import { alignDown, HPAGE_PMD_NR, HPAGE_PUD_NR, PAGE_SIZE } from './constants.ts';
import type { Mm } from './mm.ts';
import type { Vma } from './vma.ts';

/** The shared zero page (ZERO_PAGE(0)): maps read faults of anonymous memory. */
export const ZERO_PFN = 1;
/** The head of the huge zero page (a 2 MiB all-zero folio mapped by read faults on THP VMAs). */
export const HUGE_ZERO_PFN = 512;

/** Page flags (a subset of enum pageflags plus a few simulation states), kept in a Uint16Array. */
export const PG = {
  /** PageAnon: the page belongs to an anon_vma (mapping is an anon family id). */
  anon: 0x1,
  /** PG_dirty. */
  dirty: 0x2,
  /** PG_locked (folio_lock). */
  locked: 0x4,
  /** Head page of a compound folio. */
  head: 0x8,
  /** Tail page of a compound folio. */
  tail: 0x10,
  /** Page-cache page of a file (mapping is a file id, index the file page offset). */
  file: 0x20,
  /** PG_swapcache: the page is the swap cache's copy of a swap slot. */
  swapcache: 0x40,
  /** MADV_FREE'd: may be discarded by reclaim while clean. */
  lazyfree: 0x80,
  /** ZONE_DEVICE page (device-private or device-coherent). */
  device: 0x100,
  /** PG_reserved: the zero pages. */
  reserved: 0x200,
  /** Free in the allocator (or, for device pages, owned by the driver's free list). */
  free: 0x400,
  /** A hugetlb folio. */
  hugetlb: 0x800,
  /** PG_anon_exclusive: the anon page is known to be exclusive to one mapping. */
  anonExclusive: 0x1000,
} as const;

/** What kind of memory a NUMA node holds. */
export type MemoryNodeKind = 'system' | 'device';

/** A NUMA node: system memory, or device memory registered through a {@link DevPagemap}. */
export interface MemoryNode {
  readonly id: number;
  readonly kind: MemoryNodeKind;
  /** Frames the node may hand out (capacity); system nodes allocate lazily up to it. */
  readonly totalPages: number;
  /** Frames currently allocated from this node. */
  usedPages: number;
}

/** Fields of `struct vm_fault` that a pagemap's migrateToRam receives (see `Mm.handleMmFault`). */
export interface VmFault {
  /** The faulting VMA. */
  readonly vma: Vma;
  /** The mm the fault is in. */
  readonly mm: Mm;
  /** Page-aligned faulting address. */
  readonly address: number;
  /** The exact faulting address. */
  readonly realAddress: number;
  /** FAULT_FLAG_* bits. */
  readonly flags: number;
  /**
   * The device page (pfn) the device-private entry refers to — for a PMD-level (THP) entry the
   * folio's head page; locked and referenced during the call.
   */
  readonly page: number;
  /** Folio order of the faulting entry: 0 for a PTE, 9 for a device-private PMD (device THP). */
  readonly order: number;
  /** Page offset of the address in the VMA's linear index space. */
  readonly pgoff: number;
}

/** `struct dev_pagemap_ops`. */
export interface DevPagemapOps {
  /** Models dev_pagemap_ops.migrate_to_ram(): return 0 or VM_FAULT_* bits. */
  migrateToRam(vmf: VmFault): Promise<number> | number;
  /** Models dev_pagemap_ops.page_free(): the page's refcount dropped to 0. */
  pageFree(pfn: number): void;
}

/** `enum memory_type` for the two kinds hmm uses. */
export type DevPagemapType = 'private' | 'coherent';

/** Models `struct dev_pagemap` for MEMORY_DEVICE_PRIVATE / MEMORY_DEVICE_COHERENT. */
export class DevPagemap {
  readonly type: DevPagemapType;
  /** The owner cookie compared with hmm's devPrivateOwner and migrate_vma's pgmapOwner. */
  readonly owner: unknown;
  readonly ops: DevPagemapOps;
  /** First pfn of the range (set by {@link PhysMem.memremapPages}). */
  start = -1;
  /** Number of frames in the range. */
  nrPages = 0;
  /** The NUMA node id of the device memory. */
  node = -1;
  /** Index in the PhysMem pagemap table, +1 (0 = unregistered). */
  id = 0;

  constructor(type: DevPagemapType, owner: unknown, ops: DevPagemapOps) {
    this.type = type;
    this.owner = owner;
    this.ops = ops;
  }
}

/** Options of {@link PhysMem}. */
export interface PhysMemOptions {
  /** Number of system-memory NUMA nodes (default 1). */
  nodes?: number;
  /** Capacity of each system node in 4 KiB pages (default 2^24 = 64 GiB). */
  pagesPerNode?: number;
  /** Free pages in the hugetlb pool, in 2 MiB pages (default 64). */
  hugetlbPages?: number;
  /** Free pages in the 1 GiB hugetlb pool (default 0). */
  hugetlbPudPages?: number;
  /** Swap device size in pages (default 2^22). */
  swapPages?: number;
  /**
   * The lowest pfn device memory (memremapPages) may use; the pfns between the last system
   * page and it are a hole with no struct page, as on a machine whose device memory sits high
   * in the physical address space (e.g. 2^25: above 128 GiB). Default: right after the last
   * pfn handed out. The per-pfn arrays grow over the hole without touching its memory.
   */
  devicePfnBase?: number;
}

const SLAB_SHIFT = 8;
const SLAB_PAGES = 1 << SLAB_SHIFT;
const FIRST_DYNAMIC_PFN = 1024;
/**
 * The pfns {@link PhysMem}'s arrays hold at first (4,096: 155 KiB for 11 arrays; a machine that
 * touches few pages, like a test's or a benchmark's, never pays for more). The first growth goes to
 * 2^16, later ones reserve (see `grow`).
 */
const INITIAL_PFNS = 1 << 12;

/** The most pfns {@link PhysMem} reserves ahead of use in one growth (2^28: ≈ 10 GiB of address space, untouched). */
const MAX_RESERVE_PFNS = 2 ** 28;

/** A growable Int32 stack. */
class IntStack {
  data = new Int32Array(256);
  length = 0;
  push(v: number): void {
    if (this.length === this.data.length) {
      const n = new Int32Array(this.data.length * 2);
      n.set(this.data);
      this.data = n;
    }
    this.data[this.length++] = v;
  }
  pop(): number {
    return this.data[--this.length]!;
  }
}

/**
 * All page frames of the simulated machine. Shared by every `Mm` of a machine (fork children,
 * other processes) and by device drivers.
 */
export class PhysMem {
  readonly sim: Sim;
  /** Capacity of the per-pfn arrays. */
  private cap = 0;
  /** page_ref_count() per pfn. */
  refcount = new Int32Array(0);
  /** page_mapcount() per pfn (number of page-table entries mapping it). */
  mapcount = new Int32Array(0);
  /** {@link PG} flags per pfn. */
  flags = new Uint16Array(0);
  /** NUMA node per pfn. */
  node = new Uint8Array(0);
  /** Compound order per pfn (head and tails; 0 for small pages). */
  order = new Uint8Array(0);
  /**
   * Data slot per pfn, plus one (0: contents are all zero). Zero meaning "none" lets the arrays
   * grow over a hole in the pfn space without touching (materialising) its memory.
   */
  private slot1 = new Int32Array(0);
  /** page->mapping: anon family id or file id (0: none). */
  mapping = new Int32Array(0);
  /** page->index: linear page index in the VMA / file offset in pages (for rmap). */
  index = new Float64Array(0);
  /** Swap slot while PG_swapcache is set. */
  swapSlotOf = new Int32Array(0);
  /** Pagemap id per pfn (0: not ZONE_DEVICE). */
  pgmapId = new Uint16Array(0);
  /** Live (not freed) pages per compound head. */
  private live = new Int32Array(0);

  /** The first pfn never handed out: every frame at or above it is untouched (all zero). */
  private nextPfn = FIRST_DYNAMIC_PFN;
  /** [holeFrom, holeTo): the pfns memremapPages skipped to reach devicePfnBase (never written). */
  private holeFrom = 0;
  private holeTo = 0;
  private readonly devicePfnBase: number;
  private readonly free0 = new IntStack();
  private readonly free9 = new IntStack();
  private readonly free18 = new IntStack();
  /** The NUMA nodes: system nodes first, then one per device pagemap. */
  readonly nodes: MemoryNode[] = [];
  /** Registered pagemaps (id - 1 → pagemap). */
  readonly pagemaps: DevPagemap[] = [];
  /** Free 2 MiB hugetlb pages in the pool (nr_hugepages - in use). */
  hugetlbFree: number;
  /** Free 1 GiB hugetlb pages in the pool. */
  hugetlbPudFree: number;

  private slabs: Uint8Array[] = [];
  private readonly freeSlots = new IntStack();
  private nextSlot = 0;
  /** Woken whenever a page is unlocked (folio_wake / wait_on_page_locked). */
  readonly pageLockWq: WaitQueue;
  /** The swap device. */
  readonly swap: SwapSpace;

  constructor(sim: Sim, options: PhysMemOptions = {}) {
    this.sim = sim;
    const nNodes = options.nodes ?? 1;
    if (!Number.isInteger(nNodes) || nNodes < 1 || nNodes > 64) {
      throw new ArgumentError('PhysMem', 'options.nodes', 'must be an integer in [1, 64]', nNodes);
    }
    const per = options.pagesPerNode ?? 2 ** 24;
    for (let i = 0; i < nNodes; i++)
      this.nodes.push({ id: i, kind: 'system', totalPages: per, usedPages: 0 });
    this.hugetlbFree = options.hugetlbPages ?? 64;
    this.hugetlbPudFree = options.hugetlbPudPages ?? 0;
    const base = options.devicePfnBase ?? 0;
    if (!Number.isSafeInteger(base) || base < 0 || base > 2 ** 32) {
      throw new ArgumentError('PhysMem', 'options.devicePfnBase', 'must be an integer in [0, 2^32]', base);
    }
    this.devicePfnBase = base;
    this.pageLockWq = new WaitQueue(sim.sched);
    this.grow(INITIAL_PFNS);
    // pfn 0 is never used; ZERO_PFN and the huge zero page are reserved forever.
    this.flags[0] = PG.reserved;
    this.flags[ZERO_PFN] = PG.reserved;
    this.refcount[ZERO_PFN] = 1;
    for (let i = 0; i < HPAGE_PMD_NR; i++) {
      const pfn = HUGE_ZERO_PFN + i;
      this.flags[pfn] = PG.reserved | (i === 0 ? PG.head : PG.tail);
      this.order[pfn] = 9;
      this.refcount[pfn] = 1;
    }
    for (let pfn = 2; pfn < HUGE_ZERO_PFN; pfn++) {
      this.flags[pfn] = PG.free;
      this.free0.push(pfn);
    }
    this.swap = new SwapSpace(this, options.swapPages ?? 2 ** 22);
  }

  /** Number of pfns the arrays currently cover. */
  get capacity(): number {
    return this.cap;
  }

  /**
   * One past the highest pfn ever handed out (system pages and memremapped device pages). The
   * arrays reserve far more ({@link capacity}); a pfn at or above this limit is not a frame yet.
   */
  get frameLimit(): number {
    return this.nextPfn;
  }

  /**
   * Grows the per-pfn arrays to cover at least `min` pfns. The first growth past the initial 2^16
   * pfns reserves, at once, room for every system page the nodes can still hand out (capped at
   * {@link MAX_RESERVE_PFNS}), so a machine that fills its memory copies the arrays once, not at
   * every doubling. A fresh typed array is zero pages that the OS materialises only when written:
   * the reservation costs address space, not resident memory, and only the frames ever handed out
   * ([0, nextPfn) minus the hole below devicePfnBase, which nothing writes) are copied.
   */
  private grow(min: number): void {
    // the first allocation is small; any growth goes to 2^16 at least, then as below
    let n = Math.max(this.cap, this.cap === 0 ? INITIAL_PFNS : 1 << 16);
    if (min > 4 * n) {
      n = Math.ceil(min / (1 << 16)) * (1 << 16) + (1 << 20); // a jump over a hole: just past it
    } else if (this.cap >= 1 << 16) {
      let free = 0;
      for (const nd of this.nodes) if (nd.kind === 'system') free += nd.totalPages - nd.usedPages;
      const reserve = Math.ceil((this.nextPfn + free) / (1 << 16) + 1) * (1 << 16);
      n = Math.max(2 * n, Math.min(reserve, MAX_RESERVE_PFNS));
    }
    while (n < min) n *= 2;
    if (n === this.cap) return;
    const written = Math.min(this.nextPfn, this.cap);
    const g = <T extends Int32Array | Uint16Array | Uint8Array | Float64Array>(a: T, b: T): T => {
      if (this.holeTo <= this.holeFrom || this.holeFrom >= written) b.set(a.subarray(0, written));
      else {
        b.set(a.subarray(0, this.holeFrom));
        if (this.holeTo < written) b.set(a.subarray(this.holeTo, written), this.holeTo);
      }
      return b;
    };
    this.refcount = g(this.refcount, new Int32Array(n));
    this.mapcount = g(this.mapcount, new Int32Array(n));
    this.flags = g(this.flags, new Uint16Array(n));
    this.node = g(this.node, new Uint8Array(n));
    this.order = g(this.order, new Uint8Array(n));
    this.slot1 = g(this.slot1, new Int32Array(n));
    this.mapping = g(this.mapping, new Int32Array(n));
    this.index = g(this.index, new Float64Array(n));
    this.swapSlotOf = g(this.swapSlotOf, new Int32Array(n));
    this.pgmapId = g(this.pgmapId, new Uint16Array(n));
    this.live = g(this.live, new Int32Array(n));
    this.cap = n;
  }

  /** Reserves `n` fresh pfns aligned to `align` from the never-used range. */
  private bump(n: number, align: number): number {
    let pfn = this.nextPfn;
    const r = pfn % align;
    if (r !== 0) {
      const skip = align - r;
      if (pfn + skip + n > this.cap) this.grow(pfn + skip + n);
      for (let i = 0; i < skip; i++) {
        this.flags[pfn + i] = PG.free;
        this.free0.push(pfn + i);
      }
      pfn += skip;
    }
    if (pfn + n > this.cap) this.grow(pfn + n);
    this.nextPfn = pfn + n;
    return pfn;
  }

  private checkNode(fn: string, node: number): MemoryNode {
    const nd = this.nodes[node];
    if (nd === undefined || nd.kind !== 'system') {
      throw new ArgumentError(fn, 'node', 'must be a system-memory node id', node);
    }
    return nd;
  }

  /**
   * Models alloc_pages_node(node, gfp, 0): one zeroed (contents-free) page with refcount 1, or -1
   * when the node is full (the caller turns that into VM_FAULT_OOM / -ENOMEM).
   */
  allocPage(node: number, flags = 0): number {
    const nd = this.checkNode('PhysMem.allocPage', node);
    if (nd.usedPages >= nd.totalPages) return -1;
    const pfn = this.free0.length !== 0 ? this.free0.pop() : this.bump(1, 1);
    nd.usedPages++;
    this.initPage(pfn, node, flags, 0);
    return pfn;
  }

  /**
   * Models folio_alloc(gfp, order) for order 9 (2 MiB THP / hugetlb) or 18 (1 GiB): the head pfn
   * of an aligned block; every page has refcount 1 and the block is freed when all are. -1 when
   * the node is full.
   */
  allocFolio(node: number, order: 9 | 18, flags = 0): number {
    const nd = this.checkNode('PhysMem.allocFolio', node);
    const nr = order === 9 ? HPAGE_PMD_NR : HPAGE_PUD_NR;
    if (nd.usedPages + nr > nd.totalPages) return -1;
    const stack = order === 9 ? this.free9 : this.free18;
    const head = stack.length !== 0 ? stack.pop() : this.bump(nr, nr);
    nd.usedPages += nr;
    for (let i = 0; i < nr; i++) this.initPage(head + i, node, flags | (i === 0 ? PG.head : PG.tail), order);
    this.live[head] = nr;
    return head;
  }

  private initPage(pfn: number, node: number, flags: number, order: number): void {
    this.refcount[pfn] = 1;
    this.mapcount[pfn] = 0;
    this.flags[pfn] = flags;
    this.node[pfn] = node;
    this.order[pfn] = order;
    this.mapping[pfn] = 0;
    this.index[pfn] = 0;
    this.swapSlotOf[pfn] = -1;
  }

  /** The head pfn of the folio containing `pfn` (compound_head). */
  compoundHead(pfn: number): number {
    const o = this.order[pfn]!;
    if (o === 0) return pfn;
    return alignDown(pfn, pow2(o));
  }

  /** Number of base pages in the folio containing `pfn` (folio_nr_pages). */
  folioNrPages(pfn: number): number {
    return pow2(this.order[pfn]!);
  }

  /** True for the zero page and the huge zero page (is_zero_pfn / is_huge_zero_pfn). */
  isZeroPfn(pfn: number): boolean {
    return pfn === ZERO_PFN || (pfn >= HUGE_ZERO_PFN && pfn < HUGE_ZERO_PFN + HPAGE_PMD_NR);
  }

  /** Models get_page(). */
  getPage(pfn: number): void {
    if (this.flags[pfn]! & PG.reserved) return;
    this.refcount[pfn]!++;
  }

  /** Models put_page(): frees the page (or hands a device page to its pagemap) at refcount 0. */
  putPage(pfn: number): void {
    const f = this.flags[pfn]!;
    if (f & PG.reserved) return;
    const r = --this.refcount[pfn]!;
    if (r > 0) return;
    if (r < 0) throw new StateError('PhysMem.putPage', `pfn ${pfn} refcount underflow`);
    this.freePage(pfn);
  }

  private freePage(pfn: number): void {
    const f = this.flags[pfn]!;
    if (f & PG.swapcache) this.swap.dropCache(pfn);
    this.releaseSlot(pfn);
    this.mapcount[pfn] = 0;
    this.mapping[pfn] = 0;
    if (f & PG.device) {
      const o = this.order[pfn]!;
      if (o === 0) {
        this.flags[pfn] = PG.device | PG.free;
        this.pagemapOf(pfn)!.ops.pageFree(pfn);
        return;
      }
      // A page of a live device folio stays part of it (its head and order keep describing the
      // pages still mapped) until the whole folio is free, as free_zone_device_folio() frees a
      // folio at once; then every page goes back to the pagemap.
      this.flags[pfn] = PG.device | PG.free | (f & (PG.head | PG.tail));
      const head = alignDown(pfn, pow2(o));
      if (--this.live[head]! === 0) {
        const nr = pow2(o);
        for (let i = 0; i < nr; i++) {
          this.order[head + i] = 0;
          this.flags[head + i] = PG.device | PG.free;
        }
        const pgmap = this.pagemapOf(head)!;
        for (let i = 0; i < nr; i++) pgmap.ops.pageFree(head + i);
      }
      return;
    }
    const o = this.order[pfn]!;
    this.flags[pfn] = PG.free;
    const nd = this.nodes[this.node[pfn]!]!;
    nd.usedPages--;
    if (o === 0) {
      this.free0.push(pfn);
      return;
    }
    const head = alignDown(pfn, pow2(o));
    if (--this.live[head]! === 0) {
      const nr = pow2(o);
      for (let i = 0; i < nr; i++) this.order[head + i] = 0;
      if (f & PG.hugetlb || this.flags[head]! & PG.hugetlb) {
        if (o === 9) this.hugetlbFree++;
        else this.hugetlbPudFree++;
      }
      (o === 9 ? this.free9 : this.free18).push(head);
    }
  }

  /**
   * Models split_folio(): turns a compound folio into independent order-0 pages (each keeps its
   * refcount, mapcount and contents). Freed pages then return to the allocator one by one.
   */
  splitFolio(head: number): void {
    const o = this.order[head]!;
    if (o === 0) return;
    const nr = pow2(o);
    const freed: number[] = [];
    for (let i = 0; i < nr; i++) {
      const pfn = head + i;
      this.order[pfn] = 0;
      const f = this.flags[pfn]!;
      this.flags[pfn] = f & ~(PG.head | PG.tail);
      if (f & PG.free) freed.push(pfn);
    }
    this.live[head] = 0;
    // Pages freed while the folio was whole go back where they belong now: device frames to
    // their pagemap, system frames to the order-0 free list.
    for (const pfn of freed) {
      if (this.flags[pfn]! & PG.device) this.pagemapOf(pfn)!.ops.pageFree(pfn);
      else this.free0.push(pfn);
    }
  }

  // ---- page lock -------------------------------------------------------------------------

  /** Models folio_trylock(). */
  trylockPage(pfn: number): boolean {
    const f = this.flags[pfn]!;
    if (f & PG.locked) return false;
    this.flags[pfn] = f | PG.locked;
    return true;
  }

  /** Models folio_lock(): waits until the page is unlocked, then locks it. */
  async lockPage(pfn: number): Promise<void> {
    while (!this.trylockPage(pfn)) {
      await this.pageLockWq.waitEvent(() => (this.flags[pfn]! & PG.locked) === 0);
    }
  }

  /** Models folio_unlock(). */
  unlockPage(pfn: number): void {
    const f = this.flags[pfn]!;
    if (!(f & PG.locked)) throw new StateError('PhysMem.unlockPage', `pfn ${pfn} is not locked`);
    this.flags[pfn] = f & ~PG.locked;
    this.pageLockWq.wakeUpAll();
  }

  /** True when the page is locked. */
  isPageLocked(pfn: number): boolean {
    return (this.flags[pfn]! & PG.locked) !== 0;
  }

  // ---- contents ------------------------------------------------------------------------------

  private slotView(slot: number): { buf: Uint8Array; off: number } {
    return { buf: this.slabs[slot >> SLAB_SHIFT]!, off: (slot & (SLAB_PAGES - 1)) * PAGE_SIZE };
  }

  private allocSlot(): number {
    if (this.freeSlots.length !== 0) {
      const s = this.freeSlots.pop();
      const { buf, off } = this.slotView(s);
      buf.fill(0, off, off + PAGE_SIZE);
      return s;
    }
    const s = this.nextSlot++;
    if (s >> SLAB_SHIFT >= this.slabs.length) this.slabs.push(new Uint8Array(SLAB_PAGES * PAGE_SIZE));
    return s;
  }

  /** @internal frees a data slot. */
  freeSlot(s: number): void {
    this.freeSlots.push(s);
  }

  /** The data slot of `pfn`, or -1 when it reads as zeros. */
  private slotOf(pfn: number): number {
    return this.slot1[pfn]! - 1;
  }

  private releaseSlot(pfn: number): void {
    const s = this.slotOf(pfn);
    if (s >= 0) {
      this.freeSlot(s);
      this.slot1[pfn] = 0;
    }
  }

  /** @internal moves the data slot out of `pfn` (the page then reads as zeros). */
  takeSlot(pfn: number): number {
    const s = this.slotOf(pfn);
    this.slot1[pfn] = 0;
    return s;
  }

  /** @internal gives `pfn` the data slot `s` (or none for -1), releasing its previous one. */
  putSlot(pfn: number, s: number): void {
    this.releaseSlot(pfn);
    this.slot1[pfn] = s + 1;
  }

  /** @internal copies a data slot into a fresh one (-1 stays -1). */
  dupSlot(s: number): number {
    if (s < 0) return -1;
    const d = this.allocSlot();
    const a = this.slotView(s);
    const b = this.slotView(d);
    b.buf.set(a.buf.subarray(a.off, a.off + PAGE_SIZE), b.off);
    return d;
  }

  /** True when the page has materialised contents (otherwise it reads as zeros). */
  hasData(pfn: number): boolean {
    return this.slot1[pfn] !== 0;
  }

  /** Number of materialised 4 KiB data slots in use (pages plus swap slots). */
  get dataPages(): number {
    return this.nextSlot - this.freeSlots.length;
  }

  /** Copies `len` bytes at byte offset `off` of page `pfn` into `dst[dstOff..]`. */
  readPage(pfn: number, off: number, dst: Uint8Array, dstOff: number, len: number): void {
    const s = this.slotOf(pfn);
    if (s < 0) {
      dst.fill(0, dstOff, dstOff + len);
      return;
    }
    const v = this.slotView(s);
    dst.set(v.buf.subarray(v.off + off, v.off + off + len), dstOff);
  }

  /**
   * Copies `src[srcOff..srcOff+len)` into page `pfn` at byte offset `off`. Writing only zeros
   * into a page without contents does not materialise it.
   */
  writePage(pfn: number, off: number, src: Uint8Array, srcOff: number, len: number): void {
    if (this.flags[pfn]! & PG.reserved) throw new StateError('PhysMem.writePage', `pfn ${pfn} is reserved`);
    let s = this.slotOf(pfn);
    if (s < 0) {
      let nz = false;
      for (let i = 0; i < len; i++) {
        if (src[srcOff + i] !== 0) {
          nz = true;
          break;
        }
      }
      if (!nz) return;
      s = this.allocSlot();
      this.slot1[pfn] = s + 1;
    }
    const v = this.slotView(s);
    v.buf.set(src.subarray(srcOff, srcOff + len), v.off + off);
  }

  /** Models copy_highpage(dst, src). */
  copyPage(dst: number, src: number): void {
    this.putSlot(dst, this.dupSlot(this.slotOf(src)));
  }

  /** Models clear_highpage(): the page reads as zeros again. */
  clearPage(pfn: number): void {
    this.releaseSlot(pfn);
  }

  /** A read-only view of a page's bytes, or null when it is all zeros. Do not keep it. */
  pageBytes(pfn: number): Uint8Array | null {
    const s = this.slotOf(pfn);
    if (s < 0) return null;
    const v = this.slotView(s);
    return v.buf.subarray(v.off, v.off + PAGE_SIZE);
  }

  // ---- device memory -------------------------------------------------------------------------

  /**
   * Models memremap_pages(): gives `pgmap` a fresh, 2 MiB-aligned range of `nrPages` ZONE_DEVICE
   * frames on a new NUMA node of kind 'device'. Returns the first pfn. The frames start free
   * (refcount 0); the driver hands them out with {@link zoneDevicePageInit}.
   */
  memremapPages(pgmap: DevPagemap, nrPages: number): number {
    if (pgmap.id !== 0) throw new StateError('PhysMem.memremapPages', 'pagemap already registered');
    if (!Number.isSafeInteger(nrPages) || nrPages <= 0) {
      throw new ArgumentError('PhysMem.memremapPages', 'nrPages', 'must be a positive integer', nrPages);
    }
    if (this.pagemaps.length >= 65535 || this.nodes.length >= 255) {
      throw new StateError('PhysMem.memremapPages', 'too many pagemaps');
    }
    const n = Math.ceil(nrPages / HPAGE_PMD_NR) * HPAGE_PMD_NR;
    if (this.nextPfn < this.devicePfnBase) {
      // the hole stays unused
      this.holeFrom = this.nextPfn;
      this.holeTo = this.devicePfnBase;
      this.nextPfn = this.devicePfnBase;
    }
    const start = this.bump(n, HPAGE_PMD_NR);
    this.pagemaps.push(pgmap);
    pgmap.id = this.pagemaps.length;
    pgmap.start = start;
    pgmap.nrPages = nrPages;
    const node: MemoryNode = { id: this.nodes.length, kind: 'device', totalPages: nrPages, usedPages: 0 };
    this.nodes.push(node);
    pgmap.node = node.id;
    for (let i = 0; i < n; i++) {
      const pfn = start + i;
      this.flags[pfn] = PG.device | PG.free;
      this.pgmapId[pfn] = pgmap.id;
      this.node[pfn] = node.id;
      this.refcount[pfn] = 0;
    }
    return start;
  }

  /** The pagemap owning `pfn`, or null for system memory (page_pgmap()). */
  pagemapOf(pfn: number): DevPagemap | null {
    const id = this.pgmapId[pfn]!;
    return id === 0 ? null : this.pagemaps[id - 1]!;
  }

  /** is_device_private_page(). */
  isDevicePrivatePage(pfn: number): boolean {
    const id = this.pgmapId[pfn]!;
    return id !== 0 && this.pagemaps[id - 1]!.type === 'private';
  }

  /** is_device_coherent_page(). */
  isDeviceCoherentPage(pfn: number): boolean {
    const id = this.pgmapId[pfn]!;
    return id !== 0 && this.pagemaps[id - 1]!.type === 'coherent';
  }

  /**
   * Models zone_device_page_init(): a free device page becomes allocated with refcount 1 and
   * locked (the caller unlocks it after migration, as Linux's drivers do).
   */
  zoneDevicePageInit(pfn: number): void {
    if (this.pgmapId[pfn] === 0)
      throw new ArgumentError('PhysMem.zoneDevicePageInit', 'pfn', 'is not a device page', pfn);
    if (!(this.flags[pfn]! & PG.free))
      throw new StateError('PhysMem.zoneDevicePageInit', `pfn ${pfn} is in use`);
    this.refcount[pfn] = 1;
    this.mapcount[pfn] = 0;
    this.flags[pfn] = PG.device | PG.locked;
    this.order[pfn] = 0;
    this.mapping[pfn] = 0;
    this.swapSlotOf[pfn] = -1;
  }

  /**
   * Models zone_device_folio_init(folio, order) for a device THP: the 2^order free device pages
   * starting at the aligned `head` become one compound folio, each page with refcount 1, the
   * head locked. Pages are put one by one; the pagemap's `pageFree` sees them when the whole
   * folio is free (or when it is split).
   */
  zoneDeviceFolioInit(head: number, order: 9): void {
    const nr = pow2(order);
    if (head % nr !== 0)
      throw new ArgumentError('PhysMem.zoneDeviceFolioInit', 'head', `must be aligned to ${nr} pages`, head);
    for (let k = 0; k < nr; k++) {
      const pfn = head + k;
      if (this.pgmapId[pfn] === 0 || this.pgmapId[pfn] !== this.pgmapId[head]) {
        throw new ArgumentError(
          'PhysMem.zoneDeviceFolioInit',
          'head',
          'must start a range of one pagemap',
          head,
        );
      }
      if (!(this.flags[pfn]! & PG.free))
        throw new StateError('PhysMem.zoneDeviceFolioInit', `pfn ${pfn} is in use`);
    }
    for (let k = 0; k < nr; k++) {
      const pfn = head + k;
      this.refcount[pfn] = 1;
      this.mapcount[pfn] = 0;
      this.flags[pfn] = PG.device | (k === 0 ? PG.head | PG.locked : PG.tail);
      this.order[pfn] = order;
      this.mapping[pfn] = 0;
      this.swapSlotOf[pfn] = -1;
    }
    this.live[head] = nr;
  }
}

/**
 * The swap device: slots holding page contents (moved, not copied, from the evicted page),
 * swap counts (swap_map), and the swap cache that lets fork siblings share the page that a
 * first swap-in brought back.
 */
export class SwapSpace {
  private readonly phys: PhysMem;
  /** Number of slots. */
  readonly size: number;
  /** swap_map: how many swap entries reference each slot (0 = free). */
  count: Int32Array;
  /** Data slot holding each swap slot's contents (-1: zeros). */
  private data: Int32Array;
  /** Swap cache: pfn holding each slot's contents in memory (-1: none). */
  cache: Int32Array;
  private readonly freeList = new IntStack();
  private next = 1;
  /** Slots in use. */
  used = 0;

  constructor(phys: PhysMem, size: number) {
    this.phys = phys;
    this.size = size;
    const n = Math.min(size, 1 << 12);
    this.count = new Int32Array(n);
    this.data = new Int32Array(n).fill(-1);
    this.cache = new Int32Array(n).fill(-1);
  }

  private ensure(n: number): void {
    if (n <= this.count.length) return;
    let c = this.count.length;
    while (c < n) c *= 2;
    const a = new Int32Array(c);
    a.set(this.count);
    this.count = a;
    const d = new Int32Array(c).fill(-1);
    d.set(this.data);
    this.data = d;
    const k = new Int32Array(c).fill(-1);
    k.set(this.cache);
    this.cache = k;
  }

  /**
   * Models folio_alloc_swap() + swap_writepage(): a slot with count `users` holding the page's
   * contents (moved out of the page). Returns the slot (≥ 1), or -1 when swap is full.
   */
  writeOut(pfn: number, users: number): number {
    let s: number;
    if (this.freeList.length !== 0) s = this.freeList.pop();
    else {
      if (this.next >= this.size) return -1;
      s = this.next++;
      this.ensure(s + 1);
    }
    this.count[s] = users;
    this.data[s] = this.phys.takeSlot(pfn);
    this.cache[s] = -1;
    this.used++;
    return s;
  }

  /** Fills page `pfn` with slot `s`'s contents: moves them if this is the last user, else copies. */
  readIn(s: number, pfn: number, lastUser: boolean): void {
    if (lastUser) {
      this.phys.putSlot(pfn, this.data[s]!);
      this.data[s] = -1;
    } else {
      this.phys.putSlot(pfn, this.phys.dupSlot(this.data[s]!));
    }
  }

  /** Models swap_duplicate() (fork copies a swap entry). */
  dup(s: number): void {
    this.count[s]!++;
  }

  /** Models swap_free(): drops one reference; frees the slot (and its swap-cache link) at 0. */
  free(s: number): void {
    const c = --this.count[s]!;
    if (c > 0) return;
    const d = this.data[s]!;
    if (d >= 0) this.phys.freeSlot(d);
    this.data[s] = -1;
    const pfn = this.cache[s]!;
    if (pfn >= 0) {
      this.phys.flags[pfn] = this.phys.flags[pfn]! & ~PG.swapcache;
      this.phys.swapSlotOf[pfn] = -1;
      this.cache[s] = -1;
    }
    this.used--;
    this.freeList.push(s);
  }

  /** Adds `pfn` to the swap cache of slot `s`. */
  addToCache(s: number, pfn: number): void {
    this.cache[s] = pfn;
    this.phys.flags[pfn] = this.phys.flags[pfn]! | PG.swapcache;
    this.phys.swapSlotOf[pfn] = s;
  }

  /** Removes `pfn` from the swap cache (the page is freed or becomes exclusively owned). */
  dropCache(pfn: number): void {
    const s = this.phys.swapSlotOf[pfn]!;
    if (s >= 0 && this.cache[s] === pfn) this.cache[s] = -1;
    this.phys.swapSlotOf[pfn] = -1;
    this.phys.flags[pfn] = this.phys.flags[pfn]! & ~PG.swapcache;
  }
}
