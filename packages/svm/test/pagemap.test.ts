/**
 * drm_pagemap's multi-device behaviour on GpuSvm: device-to-device migration over a peer link
 * (drm_pagemap_migrate_to_devmem selecting the peer's device-private pages), the bounce through
 * system memory without one, and the migration timeslice (`__drm_pagemap_migrate_to_ram` leaves
 * a page where it is until its timeslice expires).
 */
import type { Sim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import { createSvmWorld, deviceLoc, type SvmWorld } from '../src/index.ts';
import { cpuRead, gpuRead, gpuWrite, mmapRw, P, pagesAt, scenario, where } from './clients/helpers.ts';

const N = 64; // pages
const SIZE = N * P;

const twoGpus =
  (peer: boolean, timesliceNs = 0) =>
  (sim: Sim): Promise<SvmWorld> =>
    createSvmWorld(sim, { devices: 2, vramBytes: 32 << 20, devmem: { migrate: 'fault', peer, timesliceNs } });

const d2h = (w: SvmWorld): number => w.devs.reduce((s, d) => s + d.copyEngine.bytesD2h.value, 0);
const h2d = (w: SvmWorld): number => w.devs.reduce((s, d) => s + d.copyEngine.bytesH2d.value, 0);

/** A buffer on GPU 0 whose every page GPU 0 wrote (page i holds i + 1). */
async function writtenOnGpu0(w: SvmWorld): Promise<number> {
  const buf = await mmapRw(w, SIZE);
  expect(await w.svm.prefetch(buf, buf + SIZE, deviceLoc(0))).toBe(N);
  await gpuWrite(w, 0, buf, N, (k) => k + 1, P);
  expect(pagesAt(w, buf, buf + SIZE, 'gpu0')).toBe(N);
  return buf;
}

describe('device-to-device migration (drm_pagemap)', () => {
  it('over a peer link: a prefetch moves the pages VRAM to VRAM, nothing through system memory', () =>
    scenario(1, twoGpus(true), async (w) => {
      const buf = await writtenOnGpu0(w);
      const [down, up] = [d2h(w), h2d(w)];
      expect(await w.svm.prefetch(buf, buf + SIZE, deviceLoc(1))).toBe(N);
      expect(pagesAt(w, buf, buf + SIZE, 'gpu1')).toBe(N);
      expect(w.sim.counters.get('svm.migrate.d2d.pages')).toBe(N);
      expect([d2h(w) - down, h2d(w) - up]).toEqual([0, 0]);
      // GPU 1 reads what GPU 0 wrote, the CPU too (after which the pages are in system memory)
      expect(await gpuRead(w, 1, buf, N, P)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
      expect(await cpuRead(w, buf, N, P)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    }));

  it('without a peer link: the same prefetch goes through system memory (two copies)', () =>
    scenario(2, twoGpus(false), async (w) => {
      const buf = await writtenOnGpu0(w);
      const [down, up] = [d2h(w), h2d(w)];
      expect(await w.svm.prefetch(buf, buf + SIZE, deviceLoc(1))).toBe(N);
      expect(pagesAt(w, buf, buf + SIZE, 'gpu1')).toBe(N);
      expect(w.sim.counters.get('svm.migrate.d2d.pages')).toBe(0);
      expect(d2h(w) - down).toBe(SIZE);
      expect(h2d(w) - up).toBe(SIZE);
      expect(await gpuRead(w, 1, buf, N, P)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    }));

  it('pages never written move without bytes; pages already on the target stay', () =>
    scenario(3, twoGpus(true), async (w) => {
      const buf = await mmapRw(w, SIZE);
      await w.mm.touch(buf, SIZE, false); // zero pages: nothing to copy
      expect(await w.svm.prefetch(buf, buf + SIZE / 2, deviceLoc(0))).toBe(N / 2);
      expect(await w.svm.prefetch(buf + SIZE / 2, buf + SIZE, deviceLoc(1))).toBe(N / 2);
      const before = w.devs[1]!.vram.stats().materializedPages;
      expect(await w.svm.prefetch(buf, buf + SIZE, deviceLoc(1))).toBe(N / 2);
      expect(w.sim.counters.get('svm.migrate.d2d.pages')).toBe(N / 2);
      expect(w.devs[1]!.vram.stats().materializedPages).toBe(before);
      expect(before).toBe(0);
      expect(pagesAt(w, buf, buf + SIZE, 'gpu1')).toBe(N);
      expect(await cpuRead(w, buf, N, P)).toEqual(new Array(N).fill(0));
    }));
});

describe('migration timeslice (drm_pagemap timeslice_ms)', () => {
  const TS = 5_000_000; // xe's 5 ms for atomic faults

  it('a CPU fault inside the timeslice waits for it to end, then migrates; without a timeslice it does not wait', async () => {
    for (const ts of [TS, 0]) {
      await scenario(4, twoGpus(false, ts), async (w) => {
        const buf = await writtenOnGpu0(w);
        const t0 = w.sim.now;
        expect(await w.mm.readU32(buf)).toBe(1);
        const waited = w.sim.now - t0;
        expect(where(w, buf)).toBe('sys');
        if (ts > 0) {
          expect(w.sim.counters.get('svm.migrate.timesliceRetries')).toBeGreaterThan(0);
          expect(waited).toBeGreaterThan(TS / 2); // the migration began a little before t0
        } else {
          expect(w.sim.counters.get('svm.migrate.timesliceRetries')).toBe(0);
          expect(waited).toBeLessThan(TS / 10);
        }
      });
    }
  });

  it('two GPUs without a peer link cannot ping-pong a page faster than one timeslice per move', async () => {
    const rounds = 6;
    const moves: number[] = [];
    for (const ts of [TS, 0]) {
      await scenario(5, twoGpus(false, ts), async (w) => {
        const buf = await mmapRw(w, P);
        await w.mm.writeU32(buf, 7);
        const t0 = w.sim.now;
        for (let r = 0; r < rounds; r++) {
          // GPU 0's fault migrates the page to its VRAM; GPU 1's hmm fault on it (no peer link)
          // migrates it back to system memory, as xe's get_pages does, and maps it there
          expect(await gpuRead(w, r % 2, buf, 1)).toEqual([7]);
          expect(where(w, buf)).toBe(r % 2 === 0 ? 'gpu0' : 'sys');
        }
        const elapsed = w.sim.now - t0;
        moves.push(elapsed);
        if (ts > 0) {
          // every move off GPU 0 waited out the timeslice of the move onto it
          expect(elapsed).toBeGreaterThanOrEqual((rounds / 2) * TS * 0.9);
          expect(w.sim.counters.get('svm.migrate.timesliceRetries')).toBeGreaterThan(0);
        }
      });
    }
    // without a timeslice the same ping-pong is far faster: nothing holds the page
    expect(moves[1]!).toBeLessThan(moves[0]! / 10);
  });

  it('rejects a negative or non-finite timeslice, naming it', async () => {
    const { createSim } = await import('@hmmkit/sim');
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      await expect(
        createSvmWorld(createSim({ seed: 1 }), { devmem: { migrate: 'fault', timesliceNs: bad } }),
      ).rejects.toThrow(/devmem\.timesliceNs/);
    }
  });
});
