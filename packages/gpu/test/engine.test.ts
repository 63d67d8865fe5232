import { createSim, explore, Rng, type Sim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  ACCESS,
  type AccessType,
  APERTURE,
  amdGfx9,
  createGpuDevice,
  type GpuDevice,
  makeStreams,
  nvMmuV3,
  PAGE_4K,
  type PtFormat,
  WALK,
  WARP,
} from '../src/index.ts';

const BASE = 0x7f00_0000_0000 % 2 ** 47; // a user-looking VA inside every format's VA space

/**
 * A tiny driver: waits for faults, fetches and sorts a batch, allocates VRAM for each faulting
 * page, copies the page's "system memory" in, maps it (one CE push), invalidates the TLB for
 * the pages it mapped, and replays. Pages listed in `illegal` are cancelled instead.
 */
async function tinyDriver(
  sim: Sim,
  dev: GpuDevice,
  system: Uint8Array,
  illegal: Set<number>,
  stop: () => boolean,
) {
  const fb = dev.faultBuffer;
  const batch = dev.newFaultBatch();
  const stats = { batches: 0, mapped: 0, cancelled: 0 };
  while (await fb.waitForFaults(stop)) {
    sim.charge(sim.costs.faultBatchFixedNs);
    fb.fetch(batch);
    batch.sort();
    stats.batches++;
    const u = dev.beginUpdate('ce');
    for (let k = 0; k < batch.count; k++) {
      const i = batch.order[k]!;
      const va = batch.va[i]!;
      if (illegal.has(va)) {
        stats.cancelled += fb.cancel(va, batch.instance[i]!);
        continue;
      }
      if (dev.pageTable.translate(va).status === WALK.MAPPED) continue;
      const pa = dev.vram.alloc(PAGE_4K);
      if (pa < 0) throw new Error('out of VRAM');
      sim.charge(sim.costs.faultServicePerPageNs);
      await dev.copyEngine.copyH2d(system, va - BASE, pa, PAGE_4K);
      dev.pageTable.map(va, PAGE_4K, pa, {}, u.pt);
      u.tlb.invalidate(va, PAGE_4K);
      stats.mapped++;
    }
    u.end();
    fb.replay();
  }
  return stats;
}

function workload(warps: number, perWarp: number, pages: number, seed: number) {
  const rng = new Rng(seed);
  const lists: [number, AccessType][][] = [];
  for (let w = 0; w < warps; w++) {
    const l: [number, AccessType][] = [];
    for (let k = 0; k < perWarp; k++) {
      const page = (w * 3 + k) % pages; // neighbouring warps share pages → duplicates
      l.push([BASE + page * 4096 + rng.below(512) * 8, rng.below(4) === 0 ? ACCESS.WRITE : ACCESS.READ]);
    }
    lists.push(l);
  }
  return makeStreams(lists);
}

async function scenario(sim: Sim, format: PtFormat, illegal: Set<number> = new Set()) {
  const dev = createGpuDevice(sim, { format, vramBytes: 8 * 2 ** 20 });
  const pages = 64;
  const system = Uint8Array.from({ length: pages * 4096 }, (_, i) => (i * 131 + (i >> 12)) & 255);
  const streams = workload(32, 40, pages, 5);
  let done = false;
  let result: Awaited<ReturnType<typeof dev.engine.run>> | null = null;
  let drv: Awaited<ReturnType<typeof tinyDriver>> | null = null;
  sim.sched.spawn('gpu', async () => {
    result = await dev.engine.run(streams, { instance: 3 });
    done = true;
  });
  sim.sched.spawn('driver', async () => {
    drv = await tinyDriver(sim, dev, system, illegal, () => done);
  });
  await sim.sched.run();
  return { dev, system, result: result!, drv: drv!, streams };
}

describe('execution engine end to end (fault → batch → map → TLB → replay → warp completes)', () => {
  for (const format of [undefined, nvMmuV3, amdGfx9]) {
    it(`runs every warp to completion on ${format?.name ?? 'nv-mmu-v2'}`, async () => {
      const sim = createSim({ seed: 1 });
      const { dev, system, result, drv } = await scenario(sim, format ?? createGpuDevice(createSim()).format);
      expect(result.completed).toBe(32);
      expect(result.failed).toBe(0);
      expect(result.accesses).toBe(32 * 40);
      expect(drv.mapped).toBe(64);
      expect(result.faults).toBeGreaterThan(64); // warps sharing a page fault on it more than once
      expect(sim.counters.get('gpu.fault.duplicates')).toBeGreaterThan(0);
      expect(result.tlbHits + result.walks).toBeGreaterThanOrEqual(result.accesses);
      // every page's bytes arrived in VRAM, byte for byte, behind the device mapping
      for (let p = 0; p < 64; p++) {
        const t = dev.pageTable.translate(BASE + p * 4096);
        expect(t.status).toBe(WALK.MAPPED);
        expect(dev.vram.read(t.pa, 4096)).toEqual(system.subarray(p * 4096, (p + 1) * 4096));
      }
      // time: at least one far-fault latency and one batch per round of faults
      expect(result.elapsedNs).toBeGreaterThan(sim.costs.gpuFarFaultBaseNs + sim.costs.faultBatchFixedNs);
      expect(sim.counters.get('gpu.fault.replays')).toBe(drv.batches);
    });
  }

  it('a second run over mapped pages hits the TLB and raises no fault', async () => {
    const sim = createSim();
    const { dev, streams } = await scenario(sim, amdGfx9);
    const before = sim.counters.get('gpu.fault.raised');
    const t0 = sim.now;
    // all warps on one client (SM): its accesses are issued one after another
    const r = await dev.engine.run(streams, { warpClient: new Uint16Array(32) });
    expect(r.faults).toBe(0);
    expect(sim.counters.get('gpu.fault.raised')).toBe(before);
    expect(r.tlbHits).toBeGreaterThan(r.walks);
    expect(sim.now - t0).toBe(
      r.tlbHits * sim.costs.gpuTlbHitNs + r.walks * (sim.costs.gpuPageWalkNs + sim.costs.gpuTlbHitNs),
    );
  });

  it('cancel fails exactly the warps that touch an illegal page ("GPU SIGSEGV")', async () => {
    const sim = createSim();
    const bad = BASE + 5 * 4096;
    const { dev, result, drv } = await scenario(sim, createGpuDevice(createSim()).format, new Set([bad]));
    // warps whose streams touch page 5: w*3+k ≡ 5 (mod 64) for some k < 40
    let touching = 0;
    for (let w = 0; w < 32; w++) {
      let t = false;
      for (let k = 0; k < 40; k++) if ((w * 3 + k) % 64 === 5) t = true;
      if (t) {
        touching++;
        expect(dev.engine.warpState(w)).toBe(WARP.FAILED);
      } else expect(dev.engine.warpState(w)).toBe(WARP.DONE);
    }
    expect(result.failed).toBe(touching);
    expect(result.completed).toBe(32 - touching);
    expect(drv.cancelled).toBe(touching);
  });

  it('a write to a read-only mapping faults with access type WRITE', async () => {
    const sim = createSim();
    const dev = createGpuDevice(sim);
    const pa = dev.vram.alloc(4096);
    dev.pageTable.map(BASE, PAGE_4K, pa, { writable: false });
    let done = false;
    const seen: number[] = [];
    sim.sched.spawn('gpu', async () => {
      await dev.engine.run(
        makeStreams([
          [
            [BASE, ACCESS.READ],
            [BASE + 8, ACCESS.WRITE],
          ],
        ]),
      );
      done = true;
    });
    sim.sched.spawn('driver', async () => {
      const b = dev.newFaultBatch();
      while (await dev.faultBuffer.waitForFaults(() => done)) {
        dev.faultBuffer.fetch(b);
        seen.push(b.access[0]!);
        const u = dev.beginUpdate('bar0');
        dev.pageTable.map(BASE, PAGE_4K, pa, { writable: true }, u.pt);
        u.tlb.invalidate(BASE, PAGE_4K);
        u.end();
        dev.faultBuffer.replay();
      }
    });
    await sim.sched.run();
    expect(seen).toEqual([ACCESS.WRITE]);
    expect(dev.pageTable.translate(BASE).writable).toBe(true);
  });

  it('is deterministic per seed and correct under every explored interleaving', async () => {
    const a = await scenario(createSim({ seed: 9 }), amdGfx9);
    const b = await scenario(createSim({ seed: 9 }), amdGfx9);
    expect(a.result).toEqual(b.result);
    const r = await explore(
      async (sim) => {
        const { result } = await scenario(sim, amdGfx9);
        if (result.completed !== 32) throw new Error('lost a warp');
      },
      { seeds: 5 },
    );
    expect(r.failure).toBeNull();
    expect(r.runs).toBe(5);
  });
});

describe('uTLB miss coalescing', () => {
  async function runOnePage(clients: number[], kinds: AccessType[]) {
    const sim = createSim({ seed: 2 });
    const dev = createGpuDevice(sim, { vramBytes: 2 ** 21 });
    const system = new Uint8Array(4096);
    const streams = makeStreams(kinds.map((kind, w) => [[BASE + w * 8, kind]]));
    let done = false;
    let result: Awaited<ReturnType<typeof dev.engine.run>> | null = null;
    sim.sched.spawn('gpu', async () => {
      result = await dev.engine.run(streams, { warpClient: Uint16Array.from(clients) });
      done = true;
    });
    sim.sched.spawn('driver', () => tinyDriver(sim, dev, system, new Set(), () => done).then(() => {}));
    await sim.sched.run();
    return result!;
  }

  it('warps of one uTLB missing the same page write one fault entry', async () => {
    const r = await runOnePage([0, 0, 0, 0, 0, 0, 0, 0], Array(8).fill(ACCESS.READ));
    expect(r.faults).toBe(1);
    expect(r.coalescedInUtlb).toBe(7);
    expect(r.completed).toBe(8);
  });

  it('warps of different uTLBs each write one: the duplicates the driver coalesces', async () => {
    const r = await runOnePage([0, 1, 2, 3, 4, 5, 6, 7], Array(8).fill(ACCESS.READ));
    expect(r.faults).toBe(8);
    expect(r.coalescedInUtlb).toBe(0);
    expect(r.completed).toBe(8);
  });

  it('a more intrusive access is not hidden behind an in-flight read', async () => {
    const r = await runOnePage([0, 0, 0], [ACCESS.READ, ACCESS.WRITE, ACCESS.READ]);
    expect(r.faults).toBe(2); // READ, then WRITE; the second READ rides on them
    expect(r.coalescedInUtlb).toBe(1);
    expect(r.completed).toBe(3);
  });

  it('rejects a warpClient array of the wrong length', async () => {
    const dev = createGpuDevice(createSim());
    await expect(
      dev.engine.run(makeStreams([[[BASE, ACCESS.READ]]]), { warpClient: new Uint16Array(2) }),
    ).rejects.toThrow(/warpClient/);
  });
});

describe('a faulted client stops issuing until replay (stallClientOnFault)', () => {
  // Client 0 has two warps: warp 0 faults on page A; warp 1 hits a mapped page in the same pass
  // (in flight), then would miss page B. The SM must not issue B before the replay.
  async function run(stallClientOnFault: boolean) {
    const sim = createSim({ seed: 3 });
    const dev = createGpuDevice(sim, { vramBytes: 2 ** 21, engine: { stallClientOnFault } });
    const system = new Uint8Array(4 * 4096);
    const u = dev.beginUpdate('ce');
    dev.pageTable.map(BASE + 4096, PAGE_4K, dev.vram.alloc(PAGE_4K), {}, u.pt);
    u.end();
    const streams = makeStreams([
      [[BASE, ACCESS.READ]],
      [
        [BASE + 4096, ACCESS.READ],
        [BASE + 2 * 4096, ACCESS.READ],
      ],
    ]);
    let done = false;
    let result: Awaited<ReturnType<typeof dev.engine.run>> | null = null;
    sim.sched.spawn('gpu', async () => {
      result = await dev.engine.run(streams, { warpClient: Uint16Array.from([0, 0]) });
      done = true;
    });
    let stats = { batches: 0, mapped: 0, cancelled: 0 };
    sim.sched.spawn('driver', async () => {
      stats = await tinyDriver(sim, dev, system, new Set(), () => done);
    });
    await sim.sched.run();
    return { r: result!, stats };
  }

  it('with the stall, the second miss waits for the replay: two batches of one fault', async () => {
    const { r, stats } = await run(true);
    expect(r.completed).toBe(2);
    expect(r.faults).toBe(2);
    expect(stats.batches).toBe(2);
  });

  it('without it, the hitting warp runs ahead and both misses share the first batch', async () => {
    const { r, stats } = await run(false);
    expect(r.completed).toBe(2);
    expect(r.faults).toBe(2);
    expect(stats.batches).toBe(1);
  });
});

describe('access cost by aperture', () => {
  it('an access served from system memory or a peer costs gpuSysAccessNs / gpuPeerAccessNs more than VRAM', async () => {
    const elapsed: Record<string, number> = {};
    for (const [name, aperture] of [
      ['vid', APERTURE.VID],
      ['sys', APERTURE.SYS],
      ['peer', APERTURE.PEER],
    ] as const) {
      const sim = createSim({ costs: { gpuSysAccessNs: 40, gpuPeerAccessNs: 7 } });
      const dev = createGpuDevice(sim);
      const u = dev.beginUpdate('ce');
      for (let p = 0; p < 8; p++) dev.pageTable.map(BASE + p * 4096, PAGE_4K, p * 4096, { aperture }, u.pt);
      u.end();
      const streams = makeStreams(
        Array.from({ length: 4 }, (_, w) =>
          Array.from({ length: 16 }, (_, k) => [BASE + ((w + k) % 8) * 4096, ACCESS.READ] as const),
        ),
      );
      await dev.engine.run(streams); // warm the TLB
      const r = await dev.engine.run(streams);
      expect(r.faults).toBe(0);
      expect(r.walks).toBe(0);
      elapsed[name] = r.elapsedNs;
    }
    // 4 warps on 4 clients (SMs) run in parallel: 16 passes, each as long as one access
    expect(elapsed.sys! - elapsed.vid!).toBe(16 * 40);
    expect(elapsed.peer! - elapsed.vid!).toBe(16 * 7);
  });
});

describe('clients (SMs) run in parallel', () => {
  it('a pass takes as long as its busiest client, not the sum over all warps', async () => {
    const elapsed: number[] = [];
    for (const clients of [
      [0, 0, 0, 0],
      [0, 1, 2, 3],
      [0, 0, 1, 2],
    ]) {
      const sim = createSim();
      const dev = createGpuDevice(sim);
      const u = dev.beginUpdate('ce');
      dev.pageTable.map(BASE, PAGE_4K, 0, {}, u.pt);
      u.end();
      const streams = makeStreams(
        Array.from({ length: 4 }, () => Array(10).fill([BASE, ACCESS.READ] as const)),
      );
      await dev.engine.run(streams); // warm the TLB
      elapsed.push((await dev.engine.run(streams, { warpClient: Uint16Array.from(clients) })).elapsedNs);
    }
    const hit = createSim().costs.gpuTlbHitNs;
    expect(elapsed).toEqual([40 * hit, 10 * hit, 20 * hit]);
  });
});
