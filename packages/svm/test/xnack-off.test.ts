/**
 * Non-retryable faults (XNACK off, `xnack: false`): kernels run only over memory mapped before the
 * launch; a fault elsewhere is fatal (memory exception with address and access, queue killed).
 * The KFDSVMRangeTest cases that behave differently with XNACK off are ported here by name (the
 * XNACK-on port is test/clients/kfd-svm-range.test.ts).
 */
import { ACCESS } from '@hmmkit/gpu';
import { PROT_READ } from '@hmmkit/mm';
import { createSim, Errno, type Sim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  type Access,
  amdkfdPolicy,
  createSvmWorld,
  deviceLoc,
  LOC,
  type MemoryException,
  mmapAnonymous,
  perRangeNotifiers,
  runKernel,
  type SvmWorld,
  type SvmWorldOptions,
  worldVerdict,
} from '../src/index.ts';

const P = 4096;
const R = ACCESS.READ;
const W = ACCESS.WRITE;
const GPU = deviceLoc(0);

/** A KFD-like world (amdkfd ranges, a notifier per range, VRAM) with XNACK off. */
function kfdOff(sim: Sim, opts: SvmWorldOptions = {}): Promise<SvmWorld> {
  return createSvmWorld(sim, {
    granule: amdkfdPolicy(),
    notifiers: perRangeNotifiers(),
    devmem: { migrate: 'fault' },
    vramBytes: 32 << 20,
    xnack: false,
    ...opts,
  });
}

async function run(seed: number, body: (w: SvmWorld) => Promise<void>, opts: SvmWorldOptions = {}) {
  const sim = createSim({ seed });
  const w = await kfdOff(sim, opts);
  await sim.sched.runMain(async () => {
    await body(w);
    expect(worldVerdict(w).violations).toBe(0);
  });
}

/** RegisterSVMRange(gpu, p, n, loc): preferred + prefetch location, the GPU may access (maps it). */
async function register(w: SvmWorld, addr: number, size: number, loc: number): Promise<void> {
  w.svm.attrs.advise(addr, addr + size, { preferredLoc: loc, setAccessedBy: 1 });
  expect(await w.svm.prefetch(addr, addr + size, loc)).toBeGreaterThanOrEqual(0);
}

/** One access per warp. */
const oneEach = (acc: Access[]) => acc.map((a) => [a]);

describe('XNACK off', () => {
  it('a kernel over prefetched memory completes without a single fault', () =>
    run(1, async (w) => {
      const sys = await mmapAnonymous(w.mm, 4 * P);
      const vram = await mmapAnonymous(w.mm, 4 * P);
      await w.mm.writeU32(sys, 11);
      await w.mm.writeU32(vram + P, 22);
      await register(w, sys, 4 * P, LOC.SYSMEM);
      await register(w, vram, 4 * P, GPU);
      const r = await runKernel(
        w,
        0,
        oneEach([
          [sys, R, 0],
          [vram + P, R, 0],
          [sys + 2 * P, W, 33],
          [vram + 3 * P, W, 44],
        ]),
      );
      expect([r.failed, r.faults]).toEqual([0, 0]);
      expect([r.data[0], r.data[1]]).toEqual([11, 22]);
      expect([await w.mm.readU32(sys + 2 * P), await w.mm.readU32(vram + 3 * P)]).toEqual([33, 44]);
      expect(w.svm.memoryExceptions).toEqual([]);
      expect(w.svm.queueKilled(0)).toBe(false);
    }));

  it('a kernel touching an unmapped page gets the exception (address, access) and is killed', () =>
    run(2, async (w) => {
      const buf = await mmapAnonymous(w.mm, 2 * P);
      await register(w, buf, P, LOC.SYSMEM); // only the first page
      const traced: number[][] = [];
      w.sim.trace.on('svm.memory.exception', (dev, va, access, errno) =>
        traced.push([dev, va, access, errno]),
      );
      const next = w.svm.nextMemoryException(0);
      // warp 0 stores 0..4999 to the mapped page, one after another; warp 1 stores to the other page
      const long: Access[] = [];
      for (let k = 0; k < 5000; k++) long.push([buf, W, k]);
      const r = await runKernel(w, 0, [long, [[buf + P + 8, W, 0xbad]]]);
      const ex: MemoryException = await next;
      expect([ex.devIndex, ex.va, ex.access, ex.errno]).toEqual([0, buf + P, W, -Errno.EFAULT]);
      expect(traced).toEqual([[0, buf + P, W, -Errno.EFAULT]]);
      expect(w.svm.memoryExceptions).toEqual([ex]);
      // the queue is killed: both warps fail, the long one before its last store
      expect(r.failed).toBe(2);
      expect(w.svm.queueKilled(0)).toBe(true);
      const last = await w.mm.readU32(buf);
      expect(last).toBeLessThan(4999);
      // nothing was written to the unmapped page, and nothing was migrated or mapped for it
      expect(await w.mm.readU32(buf + P + 8)).toBe(0);
      // a killed queue runs nothing, not even over mapped memory
      const again = await runKernel(w, 0, oneEach([[buf, W, 7]]));
      expect(again.failed).toBe(1);
      expect(await w.mm.readU32(buf)).toBe(last);
      // a new queue: the granted page is revalidated (no exception), the other is still fatal
      w.svm.resetQueue(0);
      const ok = await runKernel(w, 0, oneEach([[buf, W, 7]]));
      expect(ok.failed).toBe(0);
      expect(await w.mm.readU32(buf)).toBe(7);
      expect(w.svm.memoryExceptions.length).toBe(1);
    }));

  it('the same kernel with XNACK on is serviced by the fault handler (the mode is what kills it)', async () => {
    const sim = createSim({ seed: 3 });
    const w = await kfdOff(sim, { xnack: true });
    await sim.sched.runMain(async () => {
      const buf = await mmapAnonymous(w.mm, 2 * P);
      await register(w, buf, P, LOC.SYSMEM);
      const r = await runKernel(w, 0, [[[buf, W, 1]], [[buf + P + 8, W, 0xbad]]]);
      expect([r.failed, w.svm.memoryExceptions.length, w.svm.queueKilled(0)]).toEqual([0, 0, false]);
      expect(await w.mm.readU32(buf + P + 8)).toBe(0xbad);
    });
  });

  it('munmap revokes the mapping: the same address mapped again is fatal until registered again', () =>
    run(4, async (w) => {
      const buf = await mmapAnonymous(w.mm, 2 * P);
      await register(w, buf, 2 * P, LOC.SYSMEM);
      expect(await w.mm.munmap(buf, 2 * P)).toBe(0);
      await mmapAnonymous(w.mm, 2 * P, buf);
      const r = await runKernel(w, 0, oneEach([[buf, R, 0]]));
      expect(r.failed).toBe(1);
      expect(w.svm.memoryExceptions.map((e) => [e.va, e.access])).toEqual([[buf, R]]);
      w.svm.resetQueue(0);
      await register(w, buf, 2 * P, LOC.SYSMEM);
      const ok = await runKernel(w, 0, oneEach([[buf + P, W, 5]]));
      expect([ok.failed, ok.faults]).toEqual([0, 0]);
    }));

  it('munmap revokes the grant even after the collector removed the ranges (and notifiers) over it', () =>
    run(7, async (w) => {
      const buf = await mmapAnonymous(w.mm, 4 * P);
      await register(w, buf, 4 * P, LOC.SYSMEM);
      // an attribute split retires the range; the collector removes it and its notifier
      w.svm.attrs.advise(buf + P, buf + 2 * P, { preferredLoc: GPU });
      await w.svm.garbageCollect();
      expect(w.svm.ranges.filter((r) => r.start < buf + 4 * P && r.end > buf).length).toBe(0);
      expect(await w.mm.munmap(buf, 4 * P)).toBe(0);
      await mmapAnonymous(w.mm, 4 * P, buf);
      const r = await runKernel(w, 0, oneEach([[buf + 3 * P, R, 0]]));
      expect(r.failed).toBe(1);
      expect(w.svm.memoryExceptions.map((e) => e.va)).toEqual([buf + 3 * P]);
    }));

  it('a CPU access that moves a VRAM page back is a queue eviction: the GPU continues on the new page', () =>
    run(5, async (w) => {
      const buf = await mmapAnonymous(w.mm, 4 * P);
      await register(w, buf, 4 * P, GPU);
      await w.mm.writeU32(buf, 99); // migrate_to_ram of the page: the GPU mapping is invalidated
      const r = await runKernel(w, 0, oneEach([[buf, R, 0]]));
      expect([r.failed, r.data[0]]).toEqual([0, 99]);
      expect(w.svm.noRetry!.restores).toBeGreaterThan(0);
      expect(w.svm.memoryExceptions).toEqual([]);
    }));

  it('setXnack switches the mode only when no kernel runs', async () => {
    const sim = createSim({ seed: 6 });
    const w = await kfdOff(sim, { xnack: true });
    await sim.sched.runMain(async () => {
      expect(w.svm.xnack).toBe(true);
      expect(w.svm.setXnack(false)).toBe(0);
      expect(w.svm.xnack).toBe(false);
      expect(() => w.svm.setXnack(1 as unknown as boolean)).toThrow(/GpuSvm.setXnack/);
      expect(w.svm.xnack).toBe(false);
    });
  });
});

describe('KFDSVMRangeTest (XNACK off)', () => {
  it('KFDSVMRangeTest.BasicSystemMemTest', () =>
    run(11, async (w) => {
      const src = await mmapAnonymous(w.mm, P);
      const dst = await mmapAnonymous(w.mm, P);
      await register(w, src, P, LOC.SYSMEM);
      await register(w, dst, P, LOC.SYSMEM);
      for (let k = 0; k < P; k += 4) await w.mm.writeU32(src + k, 0x01010101);
      const rd = await runKernel(w, 0, oneEach([[src, R, 0]]));
      const wr = await runKernel(w, 0, oneEach([[dst, W, rd.data[0]!]]));
      expect([rd.faults, wr.faults, rd.failed, wr.failed]).toEqual([0, 0, 0, 0]);
      expect(await w.mm.readU32(dst)).toBe(0x01010101);
    }));

  it('KFDSVMRangeTest.XNACKModeTest', async () => {
    const sim = createSim({ seed: 12 });
    const w = await kfdOff(sim, { xnack: true });
    await sim.sched.runMain(async () => {
      const buf = await mmapAnonymous(w.mm, P);
      await register(w, buf, P, LOC.SYSMEM);
      for (let i = 0; i < 2; i++) {
        const enable = !w.svm.xnack;
        expect(w.svm.setXnack(enable)).toBe(0);
        expect(w.svm.xnack).toBe(enable);
        // with a queue running, the mode cannot change
        let seen = 1;
        const k = sim.sched.spawn('queue', async () => {
          const long: Access[] = [];
          for (let j = 0; j < 2000; j++) long.push([buf, R, 0]);
          await runKernel(w, 0, [long]);
        });
        await sim.sched.sleep(1);
        seen = w.svm.setXnack(enable);
        await sim.sched.join(k);
        expect(seen).toBe(-Errno.EBUSY);
      }
    });
  });

  it('KFDSVMRangeTest.EvictSystemRangeTest', () =>
    run(13, async (w) => {
      const stack = await mmapAnonymous(w.mm, 4 * P);
      const src = stack + P;
      const dst = stack + 2 * P;
      const sdma = stack + 3 * P;
      await w.mm.writeU32(src, 0xdeadbeef);
      for (const b of [src, dst, sdma]) await register(w, b, P, LOC.SYSMEM);
      const copy = async () => {
        const rd = await runKernel(w, 0, oneEach([[src, R, 0]]));
        const wr = await runKernel(w, 0, oneEach([[dst, W, rd.data[0]!]]));
        expect([rd.failed, wr.failed]).toEqual([0, 0]);
      };
      await copy();
      expect((await runKernel(w, 0, oneEach([[sdma, W, 0x12345678]]))).failed).toBe(0);
      expect(await w.mm.readU32(sdma)).toBe(0x12345678);
      // fork + the parent's writes: COW breaks invalidate the GPU mappings (KFD evicts the
      // queues and its restore worker remaps before they resume)
      const child = await w.mm.fork();
      await w.mm.writeU32(src, 0xd00bed00);
      await w.mm.writeU32(dst, 0xdeadbeef);
      await w.mm.writeU32(sdma, 0xdeadbeef);
      await child.exit();
      const before = w.svm.noRetry!.restores;
      await copy();
      expect((await runKernel(w, 0, oneEach([[sdma, W, 0xd0bed0be]]))).failed).toBe(0);
      expect(w.svm.noRetry!.restores).toBeGreaterThan(before);
      expect(w.svm.memoryExceptions).toEqual([]);
      expect(await w.mm.readU32(src)).toBe(0xd00bed00);
      expect(await w.mm.readU32(dst)).toBe(0xd00bed00);
      expect(await w.mm.readU32(sdma)).toBe(0xd0bed0be);
    }));

  it('KFDSVMRangeTest.ReadOnlyRangeTest', () =>
    run(17, async (w) => {
      const inBuf = await mmapAnonymous(w.mm, 2 * P);
      await register(w, inBuf, 2 * P, LOC.SYSMEM);
      await w.mm.write(inBuf, new Uint8Array(P).fill(0x55));
      expect(await w.mm.mprotect(inBuf, P, PROT_READ)).toBe(0);
      const out = await mmapAnonymous(w.mm, P);
      await register(w, out, P, LOC.SYSMEM);
      const rd = await runKernel(w, 0, oneEach([[inBuf, R, 0]]));
      const wr = await runKernel(w, 0, oneEach([[out, W, rd.data[0]!]]));
      expect([rd.failed, wr.failed]).toEqual([0, 0]);
      expect(await w.mm.readU8(out)).toBe(0x55);
      // the write to the read-only page: HSA_EVENTTYPE_MEMORY with the fault address, queue evicted
      const next = w.svm.nextMemoryException(0);
      const bad = await runKernel(w, 0, oneEach([[inBuf, W, 0xaaaaaaaa]]));
      const ex = await next;
      expect(bad.failed).toBe(1);
      expect([ex.va, ex.access, ex.errno]).toEqual([inBuf, W, -Errno.EPERM]);
      expect(w.svm.queueKilled(0)).toBe(true);
      expect(await w.mm.readU32(inBuf)).toBe(0x55555555);
    }));
});
