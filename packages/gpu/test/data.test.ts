import { ArgumentError, createSim, StateError } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  ACCESS,
  APERTURE,
  createGpuDevice,
  type Memory32,
  makeStreams,
  PAGE_4K,
  Vram,
} from '../src/index.ts';

/** A little system memory for the SYS aperture. */
function sysmem(bytes: number): Memory32 & { buf: Uint8Array } {
  const buf = new Uint8Array(bytes);
  const dv = new DataView(buf.buffer);
  return { buf, read32: (pa) => dv.getUint32(pa, true), write32: (pa, v) => dv.setUint32(pa, v, true) };
}

describe('engine data path (streams with data)', () => {
  it('writes land in VRAM, reads load them back, atomics add and return the old value', async () => {
    const sim = createSim();
    const dev = createGpuDevice(sim, { vramBytes: 2 * 2 ** 20 });
    const pa = dev.vram.alloc(PAGE_4K);
    dev.pageTable.map(0x10000, PAGE_4K, pa);
    const w = await dev.engine.run(
      makeStreams([
        [
          [0x10000, ACCESS.WRITE, 0xdeadbeef],
          [0x10004, ACCESS.WRITE, 7],
        ],
      ]),
    );
    expect(w.completed).toBe(1);
    expect(dev.vram.read(pa, 8)).toEqual(Uint8Array.of(0xef, 0xbe, 0xad, 0xde, 7, 0, 0, 0));
    const r = makeStreams([[[0x10000, ACCESS.READ, 0]], [[0x10004, ACCESS.READ, 0]]]);
    await dev.engine.run(r);
    expect(Array.from(r.data!)).toEqual([0xdeadbeef, 7]);
    // 32 warps atomically add 1 to one word: the final value is 32 and the old values are 0..31
    const at = makeStreams(Array.from({ length: 32 }, () => [[0x10008, ACCESS.ATOMIC, 1] as const]));
    await dev.engine.run(at);
    expect(dev.vram.read32(pa + 8)).toBe(32);
    expect(Array.from(at.data!).sort((a, b) => a - b)).toEqual(Array.from({ length: 32 }, (_, i) => i));
  });

  it('full loop with data: faults migrate pages in, the kernel reads and writes, pages migrate back', async () => {
    const sim = createSim({ seed: 3 });
    const dev = createGpuDevice(sim, { vramBytes: 2 * 2 ** 20 });
    const BASE = 0x7000_0000;
    const pages = 16;
    const system = new Uint8Array(pages * 4096);
    const view = new DataView(system.buffer);
    for (let i = 0; i < system.length / 4; i++) view.setUint32(i * 4, i * 2654435761, true);
    // warp w reads word k of page (w + k) % pages, then writes its complement back
    const warps = Array.from({ length: 8 }, (_, w) =>
      Array.from({ length: 32 }, (_, k) => {
        const va = BASE + ((w + k) % pages) * 4096 + (w * 32 + k) * 4;
        return [va, k % 2 === 0 ? ACCESS.READ : ACCESS.WRITE, k % 2 === 0 ? 0 : (w << 16) | k] as const;
      }),
    );
    const streams = makeStreams(warps);
    const where = new Map<number, number>(); // page va -> vram pa
    let done = false;
    sim.sched.spawn('gpu', async () => {
      const r = await dev.engine.run(streams);
      expect(r.completed).toBe(8);
      done = true;
    });
    sim.sched.spawn('driver', async () => {
      const batch = dev.newFaultBatch();
      while (await dev.faultBuffer.waitForFaults(() => done)) {
        dev.faultBuffer.fetch(batch);
        batch.sort();
        const u = dev.beginUpdate('ce');
        for (let k = 0; k < batch.count; k++) {
          const va = batch.va[batch.order[k]!]!;
          if (where.has(va)) continue;
          const pa = dev.vram.alloc(PAGE_4K);
          await dev.copyEngine.copyH2d(system, va - BASE, pa, PAGE_4K);
          dev.pageTable.map(va, PAGE_4K, pa, {}, u.pt);
          where.set(va, pa);
        }
        u.end();
        dev.faultBuffer.replay();
      }
    });
    await sim.sched.run();
    // reads saw the system data; migrate everything back and check the writes byte for byte
    const expected = system.slice();
    const ev = new DataView(expected.buffer);
    let i = 0;
    warps.forEach((w) => {
      for (const [va, acc, v] of w) {
        const off = va - BASE;
        if (acc === ACCESS.READ) expect(streams.data![i]).toBe(view.getUint32(off, true));
        else ev.setUint32(off, v, true);
        i++;
      }
    });
    for (const [va, pa] of where) await dev.copyEngine.copyD2h(pa, system, va - BASE, PAGE_4K);
    expect(system).toEqual(expected);
  });

  it('SYS and PEER apertures reach attached memories; an unattached aperture is a StateError', async () => {
    const sim = createSim();
    const a = createGpuDevice(sim, { id: 0, counterPrefix: 'gpu0', vramBytes: 2 * 2 ** 20 });
    const b = createGpuDevice(sim, { id: 1, counterPrefix: 'gpu1', vramBytes: 2 * 2 ** 20 });
    const mem = sysmem(64 * 1024);
    a.pageTable.map(0x1000, PAGE_4K, 0x8000, { aperture: APERTURE.SYS });
    const peerPa = b.vram.alloc(PAGE_4K);
    a.pageTable.map(0x2000, PAGE_4K, peerPa, { aperture: APERTURE.PEER, peerId: 1 });
    const s = makeStreams([
      [
        [0x1010, ACCESS.WRITE, 0x11223344],
        [0x2020, ACCESS.WRITE, 99],
      ],
    ]);
    await expect(a.engine.run(s)).rejects.toThrow(StateError);
    a.attachSystemMemory(mem);
    a.attachPeer(1, b.vram);
    const r = await a.engine.run(s);
    expect(r.completed).toBe(1);
    expect(mem.read32(0x8010)).toBe(0x11223344);
    expect(b.vram.read32(peerPa + 0x20)).toBe(99);
    expect(() => a.attachPeer(8, b.vram)).toThrow(ArgumentError);
  });

  it('sparse pages read zero and drop writes', async () => {
    const sim = createSim();
    const dev = createGpuDevice(sim, { vramBytes: 2 * 2 ** 20 });
    dev.pageTable.setLeafState(0x40000, PAGE_4K, 1, 'sparse');
    const s = makeStreams([
      [
        [0x40000, ACCESS.WRITE, 5],
        [0x40000, ACCESS.READ, 123],
      ],
    ]);
    const r = await dev.engine.run(s);
    expect(r.faults).toBe(0);
    expect(Array.from(s.data!)).toEqual([5, 0]);
  });

  it('rejects misaligned data accesses and mismatched data arrays before running', async () => {
    const dev = createGpuDevice(createSim(), { vramBytes: 2 * 2 ** 20 });
    await expect(dev.engine.run(makeStreams([[[0x1002, ACCESS.READ, 0]]]))).rejects.toThrow(ArgumentError);
    const s = makeStreams([[[0x1000, ACCESS.READ]]]);
    await expect(dev.engine.run({ ...s, data: new Uint32Array(2) })).rejects.toThrow(ArgumentError);
    expect(dev.engine.busy).toBe(false);
  });

  it('Vram.read32/write32 are little-endian and bounds-checked', () => {
    const v = new Vram(2 * 2 ** 20);
    v.write32(4, 0x01020304);
    expect(v.read(4, 4)).toEqual(Uint8Array.of(4, 3, 2, 1));
    expect(v.read32(4)).toBe(0x01020304);
    expect(v.read32(8)).toBe(0);
    expect(() => v.read32(2)).toThrow(ArgumentError);
    expect(() => v.write32(2 * 2 ** 20, 1)).toThrow(ArgumentError);
  });
});
