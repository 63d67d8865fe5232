import { APERTURE } from '@hmmkit/gpu';
import { createSim, explore, type Sim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import { deviceLoc, LOC, nouveauPolicy, uvmTreePolicy } from '../src/index.ts';
import { makeWorld, mmapAnon, R, runKernel, W } from './helpers/setup.ts';

const M2 = 0x200000;
const P = 4096;

function run<T>(sim: Sim, body: () => Promise<T>): Promise<T> {
  let out: T | undefined;
  sim.sched.spawn('main', async () => {
    out = await body();
  });
  return sim.sched.run().then(() => out as T);
}

const aligned = (a: number): number => (a % M2 === 0 ? a : a - (a % M2) + M2);

describe('GpuSvm device memory', () => {
  it('migrates a faulting range to VRAM, maps it VID, and the CPU faults it back with the GPU writes', async () => {
    const sim = createSim({ seed: 1 });
    const w = await makeWorld(sim, { devmem: {} });
    await run(sim, async () => {
      const a = aligned(await mmapAnon(w.mm, 2 * M2));
      for (let i = 0; i < 4; i++) await w.mm.writeU32(a + i * P, 10 + i);
      const r = await runKernel(w, 0, [Array.from({ length: 4 }, (_, i) => [a + i * P, R, 0] as const)]);
      expect(Array.from(r.data)).toEqual([10, 11, 12, 13]);
      const t = w.devs[0]!.pageTable.translate(a);
      expect(t.aperture).toBe(APERTURE.VID);
      expect(t.pageSize).toBe(M2); // the 2M chunk is contiguous in VRAM
      const [cpuPfn] = w.oracle.cpuLookup(a);
      expect(w.svm.devmem[0]!.contains(cpuPfn)).toBe(true); // a device-private entry on the CPU side
      expect(sim.counters.counter('svm.migrate.toVram.pages').value).toBe(512);
      w.oracle.checkAll();
      await runKernel(w, 0, [[[a + P, W, 777]]]);
      // CPU access: migrate_to_ram brings the range back with the GPU's data
      expect(await w.mm.readU32(a + P)).toBe(777);
      expect(await w.mm.readU32(a + 2 * P)).toBe(12);
      expect(sim.counters.counter('svm.migrate.toRam.pages').value).toBe(512);
      expect(w.devs[0]!.pageTable.translate(a).status).not.toBe(0);
      w.oracle.checkAll();
    });
  });

  it('oversubscription: 8 MiB through 2 MiB of VRAM, LRU chunk eviction, data intact byte for byte', async () => {
    const sim = createSim({ seed: 2 });
    const w = await makeWorld(sim, { devmem: { bytes: M2 }, granule: uvmTreePolicy(), faultWrite: 'access' });
    await run(sim, async () => {
      const n = 4 * 512; // 8 MiB of pages
      const a = aligned(await mmapAnon(w.mm, 5 * M2));
      for (let i = 0; i < n; i += 1) await w.mm.writeU32(a + i * P + 4 * (i % 7), i * 3 + 1);
      // GPU reads every page (one word per page), then increments them
      const reads = await runKernel(
        w,
        0,
        Array.from({ length: 8 }, (_, k) =>
          Array.from({ length: n / 8 }, (_, j) => {
            const i = k * (n / 8) + j;
            return [a + i * P + 4 * (i % 7), R, 0] as const;
          }),
        ),
      );
      for (let i = 0; i < n; i++) expect(reads.data[i]).toBe(i * 3 + 1);
      expect(sim.counters.counter('svm.evictions').value).toBeGreaterThan(0);
      await runKernel(
        w,
        0,
        Array.from({ length: 8 }, (_, k) =>
          Array.from({ length: n / 8 }, (_, j) => {
            const i = k * (n / 8) + j;
            return [a + i * P + 4 * (i % 7), W, i * 5 + 2] as const;
          }),
        ),
      );
      w.oracle.checkAll();
      // byte for byte: every page holds exactly the GPU word at its offset and zeros elsewhere
      for (let i = 0; i < n; i++) {
        const page = new Uint8Array(P);
        await w.mm.readInto(a + i * P, page);
        const want = new Uint8Array(P);
        new DataView(want.buffer).setUint32(4 * (i % 7), i * 5 + 2, true);
        expect(Buffer.compare(Buffer.from(page), Buffer.from(want))).toBe(0);
      }
      expect(w.svm.devmem[0]!.mem.freePages).toBeGreaterThanOrEqual(0);
    });
  });

  it('explicit prefetch to a device and back', async () => {
    const sim = createSim({ seed: 3 });
    const w = await makeWorld(sim, { devmem: { migrate: 'never' } });
    await run(sim, async () => {
      const a = aligned(await mmapAnon(w.mm, 2 * M2));
      for (let i = 0; i < 32; i++) await w.mm.writeU32(a + i * P, i);
      expect(await w.svm.prefetch(a, a + 32 * P, deviceLoc(0))).toBe(32);
      const r = await runKernel(w, 0, [Array.from({ length: 32 }, (_, i) => [a + i * P, R, 0] as const)]);
      expect(Array.from(r.data)).toEqual(Array.from({ length: 32 }, (_, i) => i));
      expect(w.devs[0]!.pageTable.translate(a).aperture).toBe(APERTURE.VID);
      expect(w.devs[0]!.pageTable.translate(a + 32 * P).aperture).toBe(APERTURE.SYS); // fault: no migration
      expect(await w.svm.prefetch(a, a + M2, LOC.SYSMEM)).toBe(32);
      expect(w.devs[0]!.pageTable.translate(a).status).not.toBe(0);
      expect(await w.mm.readU32(a + 31 * P)).toBe(31);
      w.oracle.checkAll();
      await expect(w.svm.prefetch(a + 1, a + P, LOC.SYSMEM)).rejects.toThrow(/start/);
      await expect(w.svm.prefetch(a, a + P, deviceLoc(3))).rejects.toThrow(/loc/);
    });
  });

  it('preferred location: migrate only where the attributes prefer the device', async () => {
    const sim = createSim({ seed: 4 });
    const w = await makeWorld(sim, { devmem: { migrate: 'preferred' }, granule: nouveauPolicy() });
    await run(sim, async () => {
      const a = await mmapAnon(w.mm, 16 * P);
      w.svm.attrs.advise(a + 8 * P, a + 16 * P, { preferredLoc: deviceLoc(0) });
      await runKernel(w, 0, [
        [
          [a, R, 0],
          [a + 8 * P, R, 0],
        ],
      ]);
      expect(w.devs[0]!.pageTable.translate(a).aperture).toBe(APERTURE.SYS);
      expect(w.devs[0]!.pageTable.translate(a + 8 * P).aperture).toBe(APERTURE.VID);
      w.oracle.checkAll();
    });
  });
});

describe('GpuSvm device memory with several devices', () => {
  it('a page in one device memory is faulted back to system memory for the other', async () => {
    const sim = createSim({ seed: 5 });
    const w = await makeWorld(sim, { devices: 2, devmem: {}, granule: nouveauPolicy() });
    await run(sim, async () => {
      const a = await mmapAnon(w.mm, 16 * P);
      await runKernel(w, 0, [[[a, W, 41]]]);
      expect(w.devs[0]!.pageTable.translate(a).aperture).toBe(APERTURE.VID);
      const r = await runKernel(w, 1, [[[a, R, 0]]]);
      expect(r.data[0]).toBe(41);
      // device 1's hmm_range_fault does not own device 0's page: migrate_to_ram faults it back,
      // device 1 maps the system page and device 0 lost its mapping
      expect(w.devs[1]!.pageTable.translate(a).aperture).toBe(APERTURE.SYS);
      expect(w.devs[0]!.pageTable.translate(a).status).not.toBe(0);
      expect(sim.counters.counter('svm.migrate.toRam.pages').value).toBe(1);
      w.oracle.checkAll();
      expect(await w.mm.readU32(a)).toBe(41);
    });
  });

  it('peer mode: the other device maps the VRAM page remotely through PEER', async () => {
    const sim = createSim({ seed: 6 });
    const w = await makeWorld(sim, { devices: 2, devmem: { peer: true }, granule: nouveauPolicy() });
    await run(sim, async () => {
      const a = await mmapAnon(w.mm, 16 * P);
      w.svm.attrs.advise(a, a + 16 * P, { preferredLoc: deviceLoc(0) });
      await runKernel(w, 0, [[[a, W, 43]]]);
      const r = await runKernel(w, 1, [[[a, R, 0]]]);
      expect(r.data[0]).toBe(43);
      const t = w.devs[1]!.pageTable.translate(a);
      expect(t.aperture).toBe(APERTURE.PEER);
      expect(t.peerId).toBe(0);
      expect(w.devs[0]!.pageTable.translate(a).aperture).toBe(APERTURE.VID);
      w.oracle.checkAll();
      await runKernel(w, 1, [[[a, W, 44]]]);
      expect(await w.mm.readU32(a)).toBe(44);
      w.oracle.checkAll();
    });
  });

  it('stays coherent across seeds with GPU faults, migrations and CPU writes racing', async () => {
    const scenario = async (sim: Sim) => {
      const w = await makeWorld(sim, { devices: 2, devmem: {}, granule: nouveauPolicy() });
      const a = await mmapAnon(w.mm, 16 * P);
      for (let i = 0; i < 4; i++) await w.mm.writeU32(a + i * P, i + 1);
      for (let d = 0; d < 2; d++) {
        sim.sched.spawn(`gpu${d}`, async () => {
          for (let i = 0; i < 4; i++) await w.svm.handleFault(d, a + ((i + d) % 4) * P, W);
        });
      }
      sim.sched.spawn('cpu', async () => {
        for (let i = 0; i < 4; i++) {
          await sim.sched.yield();
          await w.mm.writeU32(a + i * P, 100 + i);
        }
      });
      await sim.sched.run();
      w.oracle.checkAll();
      for (let i = 0; i < 4; i++) expect(await w.mm.readU32(a + i * P)).toBe(100 + i);
    };
    const r = await explore(scenario, { seeds: 20 });
    if (r.failure) console.log(r.failure.seed, (r.failure.error as Error).cause ?? r.failure.error);
    expect(r.failure).toBeNull();
  });
});

describe('GpuSvm copies only what has contents (issue 9)', () => {
  it('a copy that only needs timing is timed, not performed; never-written pages materialise nothing', async () => {
    const sim = createSim({ seed: 21 });
    const w = await makeWorld(sim, { devmem: {} });
    await run(sim, async () => {
      const ce = w.devs[0]!.copyEngine;
      let d2d = 0;
      const orig = ce.submitD2d.bind(ce);
      ce.submitD2d = (s: number, d: number, b: number) => {
        d2d++;
        return orig(s, d, b);
      };
      const a = aligned(await mmapAnon(w.mm, 2 * M2));
      // every page allocated by a CPU write of zeros (no contents), eight with data
      for (let i = 0; i < 512; i++) await w.mm.writeU32(a + i * P, 0);
      for (let i = 0; i < 8; i++) await w.mm.writeU32(a + i * 64 * P, 500 + i);
      const h2d = ce.bytesH2d.value;
      const r = await runKernel(w, 0, [Array.from({ length: 8 }, (_, i) => [a + i * 64 * P, R, 0] as const)]);
      expect(Array.from(r.data)).toEqual([500, 501, 502, 503, 504, 505, 506, 507]);
      expect(sim.counters.counter('svm.migrate.toVram.pages').value).toBe(512);
      expect(ce.bytesH2d.value - h2d).toBe(M2); // the transfer is charged for the whole range
      expect(w.devs[0]!.vram.stats().materializedPages).toBe(8); // but only 8 pages hold bytes
      const data0 = w.mm.machine.phys.dataPages;
      expect(await w.mm.readU32(a + 64 * P)).toBe(501); // migrate_to_ram of the range
      expect(sim.counters.counter('svm.migrate.toRam.pages').value).toBe(512);
      expect(w.mm.machine.phys.dataPages).toBe(data0 + 8); // only the 8 written pages get bytes in RAM
      expect(d2d).toBe(0);
      w.oracle.checkAll();
    });
  });
});
