import { ACCESS } from '@hmmkit/gpu';
import { ArgumentError, createSim, type Sim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  type Access,
  type FaultContext,
  type GranulePolicy,
  pageMaskWeight,
  uvmTreePolicy,
} from '../src/index.ts';
import { makeWorld, mmapAnon, runKernel, W } from './helpers/setup.ts';

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

/** UVM without prefetch, recording what each call saw. */
function spyPolicy(calls: { faulted: number; prior: number }[]): GranulePolicy {
  const inner = uvmTreePolicy({ enable: false });
  return {
    name: 'spy',
    choose(ctx: FaultContext) {
      calls.push({
        faulted: ctx.faulted === null ? 0 : pageMaskWeight(ctx.faulted),
        prior: ctx.faultMigrations,
      });
      return inner.choose(ctx);
    },
  };
}

/** 16 warps, each writing one page of a block at a stride of 4 pages, plus `dups` warps repeating page 0. */
function warps(a: number, dups: number): Access[][] {
  const out: Access[][] = [];
  for (let i = 0; i < 16; i++) out.push([[a + i * 4 * P, W, i + 1]]);
  for (let i = 0; i < dups; i++) out.push([[a, W, 1]]);
  return out;
}

describe('GpuSvm services a fault batch per 2 MiB VA block (UVM service_fault_batch)', () => {
  it('consults the policy once per block with the batch’s faulted mask, one copy and one bind', async () => {
    const sim = createSim({ seed: 1 });
    const calls: { faulted: number; prior: number }[] = [];
    const w = await makeWorld(sim, { devmem: {}, granule: spyPolicy(calls) });
    await run(sim, async () => {
      const a = aligned(await mmapAnon(w.mm, 2 * M2));
      await w.mm.touch(a, M2, true);
      const transfers = sim.counters.counter('gpu0.ce.transfers');
      const t0 = transfers.value;
      const binds0 = sim.counters.counter('svm.binds').value;
      const r = await runKernel(w, 0, warps(a, 0));
      expect(r.failed).toBe(0);
      expect(calls).toEqual([{ faulted: 16, prior: 0 }]);
      expect(transfers.value - t0).toBe(1); // one copy-engine transfer for the 16 pages
      expect(sim.counters.counter('svm.binds').value - binds0).toBe(1);
      expect(sim.counters.counter('svm.migrate.toVram.pages').value).toBe(16);
      expect(sim.counters.counter('svm.faults').value).toBe(16); // every fetched entry counts
      // the pages in between were neither migrated nor mapped (no prefetch)
      expect(w.devs[0]!.pageTable.translate(a + P).status).not.toBe(0);
      // a later batch in the same block sees the block's earlier faults
      await runKernel(w, 0, [[[a + P, W, 9]]]);
      expect(calls.at(-1)).toEqual({ faulted: 1, prior: 16 });
      // the pages of the first batch stayed mapped (a partial migration zaps only what it moves)
      expect(w.devs[0]!.pageTable.translate(a).status).toBe(0);
      w.oracle.checkAll();
    });
  });

  it('charges faultServicePerPageNs once per unique page, not per duplicate entry', async () => {
    const time = async (perPage: number, dups: number): Promise<number> => {
      const sim = createSim({ seed: 1, costs: { faultServicePerPageNs: perPage } });
      const w = await makeWorld(sim, { devmem: {}, granule: uvmTreePolicy({ enable: false }) });
      return run(sim, async () => {
        const a = aligned(await mmapAnon(w.mm, 2 * M2));
        await w.mm.touch(a, M2, true);
        const t0 = sim.now;
        await runKernel(w, 0, warps(a, dups));
        return sim.now - t0;
      });
    };
    // the duplicates come from other warps (other uTLBs), so fetch does not coalesce them
    for (const dups of [0, 8]) {
      expect((await time(1_000_000, dups)) - (await time(0, dups))).toBeCloseTo(16 * 1_000_000, 3);
    }
  });

  it('rejects a bad replay policy before spawning anything', async () => {
    const sim = createSim({ seed: 1 });
    const w = await makeWorld(sim);
    expect(() => w.svm.startFaultHandler(0, () => true, { replay: 'once' as 'batch' })).toThrow(
      ArgumentError,
    );
    expect(() => w.svm.startFaultHandler(3, () => true)).toThrow(ArgumentError);
    expect(() => w.svm.startFaultHandler(0, () => true, { flushMode: 'all' as 'ratio' })).toThrow(
      /opts\.flushMode/,
    );
    expect(() => w.svm.startFaultHandler(0, () => true, { updatePutRatio: 101 })).toThrow(
      /opts\.updatePutRatio/,
    );
    await sim.sched.run();
    expect(sim.counters.counter('svm.faults').value).toBe(0);
  });
});

describe('GpuSvm.evictChunk', () => {
  it('moves a full chunk with one MIGRATE invalidation, not one callback per page', async () => {
    const sim = createSim({ seed: 1 });
    const w = await makeWorld(sim, { devmem: {} });
    await run(sim, async () => {
      const a = aligned(await mmapAnon(w.mm, 2 * M2));
      await w.mm.touch(a, M2, true);
      await runKernel(w, 0, [[[a, ACCESS.WRITE, 5]]]); // xe: the whole 2 MiB chunk
      const sd = w.svm.devmem[0]!;
      const c = sd.lruChunk();
      expect(sd.chunkUsed[c]).toBe(512);
      const inv0 = sim.counters.counter('svm.invalidations').value;
      const moved = await w.svm.evictChunk(0, c);
      expect(moved).toBe(512);
      expect(sd.chunkUsed[c]).toBe(0);
      expect(sim.counters.counter('svm.invalidations').value - inv0).toBe(1);
      expect(await w.mm.readU32(a)).toBe(5);
      w.oracle.checkAll();
    });
  });
});
