import { ArgumentError, createSim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import { PAGE_SIZE } from '../src/constants.ts';
import { DevPagemap, HUGE_ZERO_PFN, PG, PhysMem, ZERO_PFN } from '../src/physmem.ts';

function phys(options = {}) {
  return new PhysMem(createSim({ seed: 1 }), options);
}

describe('PhysMem', () => {
  it('reserves the zero page and the huge zero page', () => {
    const p = phys();
    expect(p.isZeroPfn(ZERO_PFN)).toBe(true);
    expect(p.isZeroPfn(HUGE_ZERO_PFN + 511)).toBe(true);
    expect(p.isZeroPfn(HUGE_ZERO_PFN + 512)).toBe(false);
    expect(p.compoundHead(HUGE_ZERO_PFN + 7)).toBe(HUGE_ZERO_PFN);
    // put_page on reserved pages is a no-op
    p.putPage(ZERO_PFN);
    expect(p.refcount[ZERO_PFN]).toBe(1);
  });

  it('allocates, refcounts and frees small pages, reusing freed frames', () => {
    const p = phys({ pagesPerNode: 4 });
    const a = p.allocPage(0);
    expect(p.refcount[a]).toBe(1);
    p.getPage(a);
    p.putPage(a);
    expect(p.flags[a]! & PG.free).toBe(0);
    p.putPage(a);
    expect(p.flags[a]! & PG.free).toBe(PG.free);
    expect(p.nodes[0]!.usedPages).toBe(0);
    const b = p.allocPage(0);
    expect(b).toBe(a);
    expect(() => p.putPage(p.allocPage(0) + 100000)).toThrow();
  });

  it('fails allocation when the node is full and rejects unknown nodes', () => {
    const p = phys({ pagesPerNode: 2 });
    expect(p.allocPage(0)).toBeGreaterThan(0);
    expect(p.allocPage(0)).toBeGreaterThan(0);
    expect(p.allocPage(0)).toBe(-1);
    expect(() => p.allocPage(3)).toThrow(ArgumentError);
  });

  it('allocates aligned compound folios and frees the block when every page is freed', () => {
    const p = phys();
    const h = p.allocFolio(0, 9);
    expect(h % 512).toBe(0);
    expect(p.flags[h]! & PG.head).toBe(PG.head);
    expect(p.flags[h + 1]! & PG.tail).toBe(PG.tail);
    expect(p.compoundHead(h + 300)).toBe(h);
    expect(p.folioNrPages(h + 3)).toBe(512);
    for (let k = 0; k < 511; k++) p.putPage(h + k);
    expect(p.nodes[0]!.usedPages).toBe(1);
    p.putPage(h + 511);
    expect(p.nodes[0]!.usedPages).toBe(0);
    expect(p.allocFolio(0, 9)).toBe(h);
  });

  it('materialises contents only when non-zero bytes are written', () => {
    const p = phys();
    const a = p.allocPage(0);
    const buf = new Uint8Array(16);
    p.writePage(a, 0, new Uint8Array(4096), 0, 4096);
    expect(p.hasData(a)).toBe(false);
    p.writePage(a, 100, Uint8Array.of(1, 2, 3), 0, 3);
    expect(p.hasData(a)).toBe(true);
    p.readPage(a, 98, buf, 0, 8);
    expect([...buf.subarray(0, 8)]).toEqual([0, 0, 1, 2, 3, 0, 0, 0]);
    const b = p.allocPage(0);
    p.copyPage(b, a);
    p.writePage(a, 100, Uint8Array.of(9), 0, 1);
    p.readPage(b, 100, buf, 0, 1);
    expect(buf[0]).toBe(1);
    const used = p.dataPages;
    p.putPage(a);
    expect(p.dataPages).toBe(used - 1);
    // a recycled slot reads as zeros again
    const c = p.allocPage(0);
    p.writePage(c, 0, Uint8Array.of(7), 0, 1);
    p.readPage(c, 100, buf, 0, 1);
    expect(buf[0]).toBe(0);
    expect(() => p.writePage(ZERO_PFN, 0, Uint8Array.of(1), 0, 1)).toThrow();
  });

  it('registers device pagemaps on their own node and hands freed pages back', () => {
    const p = phys();
    const freed: number[] = [];
    const pgmap = new DevPagemap('private', 'owner-A', {
      migrateToRam: () => 0,
      pageFree: (pfn) => freed.push(pfn),
    });
    const start = p.memremapPages(pgmap, 100);
    expect(start % 512).toBe(0);
    expect(pgmap.start).toBe(start);
    expect(p.nodes[pgmap.node]!.kind).toBe('device');
    expect(p.pagemapOf(start + 5)).toBe(pgmap);
    expect(p.isDevicePrivatePage(start + 5)).toBe(true);
    expect(p.isDeviceCoherentPage(start + 5)).toBe(false);
    expect(p.pagemapOf(ZERO_PFN)).toBeNull();
    p.zoneDevicePageInit(start + 5);
    expect(p.isPageLocked(start + 5)).toBe(true);
    expect(() => p.zoneDevicePageInit(start + 5)).toThrow();
    p.unlockPage(start + 5);
    p.putPage(start + 5);
    expect(freed).toEqual([start + 5]);
    expect(() => p.memremapPages(pgmap, 1)).toThrow();
  });

  it('swap: slots move contents out and back, and count users', () => {
    const p = phys();
    const a = p.allocPage(0);
    p.writePage(a, 0, Uint8Array.of(42), 0, 1);
    const s = p.swap.writeOut(a, 2);
    expect(s).toBeGreaterThan(0);
    expect(p.hasData(a)).toBe(false);
    const b = p.allocPage(0);
    p.swap.readIn(s, b, false); // copy: another user remains
    const c = p.allocPage(0);
    p.swap.readIn(s, c, true); // move
    const buf = new Uint8Array(1);
    p.readPage(b, 0, buf, 0, 1);
    expect(buf[0]).toBe(42);
    p.readPage(c, 0, buf, 0, 1);
    expect(buf[0]).toBe(42);
    p.swap.free(s);
    expect(p.swap.used).toBe(1);
    p.swap.free(s);
    expect(p.swap.used).toBe(0);
    expect(PAGE_SIZE).toBe(4096);
  });

  it('page lock: lockPage waits for unlock', async () => {
    const sim = createSim({ seed: 3 });
    const p = new PhysMem(sim);
    const a = p.allocPage(0);
    expect(p.trylockPage(a)).toBe(true);
    expect(p.trylockPage(a)).toBe(false);
    const order: string[] = [];
    sim.sched.spawn('waiter', async () => {
      await p.lockPage(a);
      order.push('locked');
      p.unlockPage(a);
    });
    sim.sched.spawn('owner', async () => {
      await sim.sched.sleep(100);
      order.push('unlock');
      p.unlockPage(a);
    });
    await sim.sched.run();
    expect(order).toEqual(['unlock', 'locked']);
    expect(() => p.unlockPage(a)).toThrow();
  });

  it('a device folio keeps its head while pages are freed one by one; the pagemap gets them when all are free', () => {
    const p = phys();
    const freed: number[] = [];
    const pgmap = new DevPagemap('private', 'owner', {
      migrateToRam: async () => 0,
      pageFree: (pfn) => freed.push(pfn),
    });
    const start = p.memremapPages(pgmap, 512);
    p.zoneDeviceFolioInit(start, 9);
    p.unlockPage(start);
    p.putPage(start); // the head goes first (a partial munmap of the first half, say)
    expect(p.compoundHead(start + 300)).toBe(start);
    expect(p.folioNrPages(start + 300)).toBe(512);
    expect(freed).toEqual([]);
    for (let k = 1; k < 512; k++) p.putPage(start + k);
    expect(freed).toHaveLength(512);
    expect(p.compoundHead(start + 300)).toBe(start + 300);
    p.zoneDeviceFolioInit(start, 9); // the pool can reuse the whole block
  });

  it('splitting a device folio hands its already-free pages to the pagemap, never to system memory', () => {
    const p = phys();
    const freed: number[] = [];
    const pgmap = new DevPagemap('private', 'owner', {
      migrateToRam: async () => 0,
      pageFree: (pfn) => freed.push(pfn),
    });
    const start = p.memremapPages(pgmap, 512);
    p.zoneDeviceFolioInit(start, 9);
    p.unlockPage(start);
    for (let k = 1; k <= 256; k++) p.putPage(start + k); // the head stays mapped
    expect(freed).toEqual([]);
    p.splitFolio(p.compoundHead(start + 100));
    expect(freed).toEqual(Array.from({ length: 256 }, (_, k) => start + 1 + k));
    for (let k = 0; k < 1000; k++) {
      const pfn = p.allocPage(0);
      expect(p.pagemapOf(pfn)).toBeNull();
    }
    p.putPage(start + 400); // a still-live page, now order 0, frees on its own
    expect(freed.at(-1)).toBe(start + 400);
  });

  it('grows past its first 2^16 frames once for the whole machine and keeps every frame across growths and a device hole', () => {
    const p = phys({ pagesPerNode: 2 ** 18, devicePfnBase: 2 ** 20 });
    const frames: number[] = [];
    const take = (pfn: number) => {
      frames.push(pfn);
      p.mapping[pfn] = (pfn % 997) + 1;
      p.index[pfn] = pfn * 3;
    };
    while (frames.length < 600) take(p.allocPage(0, PG.anon)); // the free list, then fresh frames
    const folio = p.allocFolio(0, 9, PG.anon);
    expect(folio).toBe(1536); // aligned: the frames it skipped go to the free list, then to the loop below
    take(folio);
    while (frames.length < 70_000) take(p.allocPage(0, PG.anon));
    // the first growth past 2^16 reserved room for every page the node can still hand out
    expect(p.capacity).toBeGreaterThanOrEqual(frames.length + 2 ** 18 - p.nodes[0]!.usedPages);
    const pgmap = new DevPagemap('private', 'owner', { migrateToRam: () => 0, pageFree: () => {} });
    const dev = p.memremapPages(pgmap, 2048);
    expect(dev).toBe(2 ** 20);
    while (frames.length < 2 ** 18 - 600) take(p.allocPage(0, PG.anon)); // past the device range
    expect(frames.at(-1)!).toBeGreaterThan(dev + 2048);
    const cap = p.capacity;
    const pgmap2 = new DevPagemap('private', 'owner2', { migrateToRam: () => 0, pageFree: () => {} });
    p.memremapPages(pgmap2, 2 ** 20); // grows again: copies below the hole and after it
    expect(p.capacity).toBeGreaterThan(cap);
    const lost = frames.filter(
      (pfn) =>
        p.refcount[pfn] !== 1 ||
        (p.flags[pfn]! & ~PG.head) !== PG.anon ||
        p.mapping[pfn] !== (pfn % 997) + 1 ||
        p.index[pfn] !== pfn * 3,
    );
    expect(lost).toEqual([]);
    expect(p.order[folio + 511]).toBe(9);
    expect(p.pagemapOf(dev + 2047)).toBe(pgmap);
    expect(p.flags[dev + 5]).toBe(PG.device | PG.free);
  });
});
