import { ArgumentError, createSim, Errno, transferTimeNs } from '@hmmkit/sim';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CopyEngine, ROOT_CHUNK_BYTES, Vram } from '../src/index.ts';

const MiB = 2 ** 20;

describe('Vram buddy allocator', () => {
  it('splits lazily, merges eagerly, and returns to full root chunks', () => {
    const v = new Vram(4 * MiB);
    const a = v.alloc(4096);
    expect(a).toBe(0);
    // one root chunk split down to order 0: one free block at each order 0..8
    expect(v.stats().freeBlocks).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    const b = v.alloc(64 * 1024);
    expect(b % (64 * 1024)).toBe(0);
    v.free(a);
    v.free(b);
    expect(v.stats().freeBlocks).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    v.checkInvariants();
  });

  it('returns -ENOMEM when full and rejects bad arguments without changing state', () => {
    const v = new Vram(2 * MiB);
    expect(v.alloc(2 * MiB)).toBe(0);
    expect(v.alloc(4096)).toBe(-Errno.ENOMEM);
    const before = v.stats();
    expect(() => v.alloc(3 * 4096)).toThrow(ArgumentError);
    expect(() => v.alloc(4 * MiB)).toThrow(ArgumentError);
    expect(() => v.free(4096)).toThrow(ArgumentError); // inside a block, not its start
    expect(() => v.free(123)).toThrow(ArgumentError);
    expect(v.stats()).toEqual(before);
    expect(() => new Vram(3 * MiB)).toThrow(ArgumentError);
  });

  it('property: random alloc/free against a model: no overlap, alignment, full merge back', () => {
    const sizes = [4096, 8192, 16384, 65536, 262144, 2 * MiB];
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: sizes.length - 1 }), fc.nat()), {
          maxLength: 200,
        }),
        (ops) => {
          const v = new Vram(8 * MiB);
          const live: { pa: number; size: number }[] = [];
          let used = 0;
          for (const [isAlloc, si, pick] of ops) {
            if (isAlloc || live.length === 0) {
              const size = sizes[si]!;
              const pa = v.alloc(size);
              if (pa < 0) {
                expect(pa).toBe(-Errno.ENOMEM);
                // the model agrees that no aligned free block of that size exists
                continue;
              }
              expect(pa % size).toBe(0);
              for (const l of live) expect(pa + size <= l.pa || l.pa + l.size <= pa).toBe(true);
              live.push({ pa, size });
              used += size;
            } else {
              const [l] = live.splice(pick % live.length, 1);
              v.free(l!.pa);
              used -= l!.size;
            }
            expect(v.stats().usedBytes).toBe(used);
          }
          v.checkInvariants();
          for (const l of live) v.free(l.pa);
          v.checkInvariants();
          expect(v.stats().freeBlocks[9]).toBe(4);
        },
      ),
      { numRuns: 60, seed: 42 },
    );
  });

  it('ENOMEM only when no block of the order is free', () => {
    const v = new Vram(2 * MiB);
    const pages: number[] = [];
    for (let i = 0; i < 512; i++) pages.push(v.alloc(4096));
    expect(v.alloc(4096)).toBe(-Errno.ENOMEM);
    v.free(pages[3]!);
    expect(v.alloc(8192)).toBe(-Errno.ENOMEM);
    expect(v.alloc(4096)).toBe(pages[3]);
  });

  it('keeps allocation-order LRU of root chunks', () => {
    const v = new Vram(8 * MiB);
    const a = v.alloc(4096, 1); // root 0
    const b = v.alloc(2 * MiB, 2); // root 1
    const c = v.alloc(2 * MiB, 3); // root 2
    expect(v.lruOrder()).toEqual([0, 1, 2]);
    v.alloc(4096, 4); // from root 0 again → moves to the tail
    expect(v.lruOrder()).toEqual([1, 2, 0]);
    expect(v.lruOldest()).toBe(1);
    v.free(b);
    expect(v.lruOrder()).toEqual([2, 0]);
    const seen: number[] = [];
    v.forEachAllocation(0, (pa, size, owner) => seen.push(pa, size, owner));
    expect(seen).toEqual([a, 4096, 1, 4096, 4096, 4]);
    expect(v.rootChunkUsedBytes(0)).toBe(8192);
    v.touchRootChunk(2);
    expect(v.lruOrder()).toEqual([0, 2]);
    expect(v.ownerOf(c)).toBe(3);
  });

  it('stores contents lazily and byte for byte', () => {
    const v = new Vram(2 * MiB);
    const pa = v.alloc(64 * 1024);
    expect(v.read(pa + 100, 4)).toEqual(new Uint8Array(4));
    expect(v.stats().materializedPages).toBe(0);
    const data = Uint8Array.from({ length: 5000 }, (_, i) => (i * 7 + 1) & 255);
    v.write(pa + 4000, data);
    expect(v.stats().materializedPages).toBe(3); // bytes 4000..8999 touch pages 0, 1, 2
    expect(v.read(pa + 4000, 5000)).toEqual(data);
    expect(v.read(pa + 3999, 1)[0]).toBe(0);
    v.free(pa);
    expect(v.stats().materializedPages).toBe(0);
    const again = v.alloc(64 * 1024);
    expect(v.read(again + 4000, 16)).toEqual(new Uint8Array(16));
    expect(() => v.write(2 * MiB - 2, new Uint8Array(4))).toThrow(ArgumentError);
  });
});

describe('Vram contents grow with the bytes written', () => {
  it('reads, zero writes and copies of never-written pages materialise nothing', () => {
    const v = new Vram(4 * MiB);
    const a = v.alloc(2 * MiB);
    const b = v.alloc(2 * MiB);
    expect(v.read(a, 2 * MiB).every((x) => x === 0)).toBe(true);
    v.write(a, null, 2 * MiB);
    v.copyWithin(b, a, 2 * MiB);
    expect(v.read32(b + 8)).toBe(0);
    expect(v.stats().materializedPages).toBe(0);
    // one written page copies as one page; the rest of the copy stays empty
    v.write32(a + 4096 + 12, 0xdeadbeef);
    v.copyWithin(b, a, 2 * MiB);
    expect(v.stats().materializedPages).toBe(2);
    expect(v.read32(b + 4096 + 12)).toBe(0xdeadbeef);
    expect(v.read32(b + 4096 + 16)).toBe(0);
    // copying an unwritten page over a written one empties it again
    v.copyWithin(b + 4096, a + 8192, 4096);
    expect(v.isMaterialized(b + 4096)).toBe(false);
    expect(v.read32(b + 4096 + 12)).toBe(0);
    // a whole page of zero writes drops the contents; a part zeroes in place
    v.write(a + 4096 + 8, null, 8);
    expect(v.read32(a + 4096 + 12)).toBe(0);
    expect(v.isMaterialized(a + 4096)).toBe(true);
    v.write(a + 4096, null, 4096);
    expect(v.isMaterialized(a + 4096)).toBe(false);
    expect(v.stats().materializedPages).toBe(0);
  });

  it('a recycled content slot reads as zero outside the bytes written', () => {
    const v = new Vram(2 * MiB);
    const a = v.alloc(4096);
    v.write(a, new Uint8Array(4096).fill(0xff));
    v.free(a);
    const b = v.alloc(8192);
    v.write(b + 100, Uint8Array.of(1, 2, 3)); // reuses a's slot
    const page = v.read(b, 4096);
    const want = new Uint8Array(4096);
    want.set([1, 2, 3], 100);
    expect(page).toEqual(want);
    v.write32(b + 4096 + 4092, 7);
    expect(v.read(b + 4096, 4092).every((x) => x === 0)).toBe(true);
    // a copy between misaligned ranges crosses page boundaries piece by piece
    v.copyWithin(b + 4096 + 50, b + 98, 10);
    expect(Array.from(v.read(b + 4096 + 50, 10))).toEqual([0, 0, 1, 2, 3, 0, 0, 0, 0, 0]);
  });
});

describe('CopyEngine', () => {
  it('a timing-only transfer charges like a copy and moves no bytes', async () => {
    const sim = createSim();
    const v = new Vram(ROOT_CHUNK_BYTES);
    const ce = new CopyEngine(sim, v, 1);
    v.write32(0, 42);
    const t1 = ce.submitTimed(65536, 'h2d');
    const t2 = ce.submitTimed(4096, 'd2h');
    const t3 = ce.submitTimed(8192, 'd2d');
    expect(t1.done).toBe(transferTimeNs(sim.costs, 65536));
    expect(t2.start).toBe(t1.done);
    expect(t3.done).toBe(t2.done + transferTimeNs(sim.costs, 8192));
    expect(sim.counters.get('gpu.ce.bytesH2d')).toBe(65536);
    expect(sim.counters.get('gpu.ce.bytesD2h')).toBe(4096);
    expect(sim.counters.get('gpu.ce.transfers')).toBe(3);
    expect(v.stats().materializedPages).toBe(1);
    expect(v.read32(0)).toBe(42);
    await ce.copyTimed(4096, 'h2d');
    expect(sim.now).toBe(t3.done + transferTimeNs(sim.costs, 4096));
    expect(() => ce.submitTimed(0, 'h2d')).toThrow(ArgumentError);
    expect(() => ce.submitTimed(4096, 'up' as 'h2d')).toThrow(ArgumentError);
    expect(sim.counters.get('gpu.ce.transfers')).toBe(4);
  });

  it('charges transferTimeNs and queues on busy engines', async () => {
    const sim = createSim();
    const v = new Vram(ROOT_CHUNK_BYTES);
    const ce = new CopyEngine(sim, v, 1);
    const src = Uint8Array.from({ length: 65536 }, (_, i) => i & 255);
    const t1 = ce.submitH2d(src, 0, 0, 65536);
    const t2 = ce.submitH2d(src, 0, 65536, 4096);
    expect(t1.done).toBe(transferTimeNs(sim.costs, 65536));
    expect(t2.start).toBe(t1.done); // one transfer at a time
    expect(t2.done).toBe(t1.done + transferTimeNs(sim.costs, 4096));
    await ce.wait(t2);
    expect(sim.now).toBe(t2.done);
    const back = new Uint8Array(65536);
    await ce.copyD2h(0, back, 0, 65536);
    expect(back).toEqual(src);
    expect(sim.counters.get('gpu.ce.bytesH2d')).toBe(65536 + 4096);
  });

  it('N engines run N transfers side by side', () => {
    const sim = createSim();
    const ce = new CopyEngine(sim, new Vram(ROOT_CHUNK_BYTES), 2);
    const a = ce.submitH2d(null, 0, 0, 4096);
    const b = ce.submitH2d(null, 0, 4096, 4096);
    const c = ce.submitH2d(null, 0, 8192, 4096);
    expect([a.engine, b.engine, c.engine]).toEqual([0, 1, 0]);
    expect(b.start).toBe(0);
    expect(c.start).toBe(a.done);
    expect(ce.idleAt).toBe(c.done);
  });

  it('copies within VRAM and rejects bad ranges before moving data', () => {
    const sim = createSim();
    const v = new Vram(ROOT_CHUNK_BYTES);
    const ce = new CopyEngine(sim, v, 1);
    v.write(0, Uint8Array.of(1, 2, 3));
    ce.submitD2d(0, 8192, 3);
    expect(v.read(8192, 3)).toEqual(Uint8Array.of(1, 2, 3));
    expect(() => ce.submitH2d(new Uint8Array(10), 8, 0, 4)).toThrow(ArgumentError);
    expect(() => ce.submitH2d(null, 0, ROOT_CHUNK_BYTES - 2, 4)).toThrow(ArgumentError);
    expect(sim.counters.get('gpu.ce.transfers')).toBe(1);
  });
});
