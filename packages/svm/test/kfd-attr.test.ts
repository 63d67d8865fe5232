/**
 * amdkfd's attribute ioctl on GpuSvm: `setAttr` / `getAttr` over a range (every attribute, flags
 * set and cleared), GPU_RO enforced on the device, and a range with no CPU mapping rejected with
 * -EFAULT as svm_range_is_valid rejects it. KFDSVMRangeTest cases that need this are ported by name.
 */
import { ACCESS } from '@hmmkit/gpu';
import { createSim, Errno } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  amdkfdPolicy,
  createSvmWorld,
  DEFAULT_ATTRS,
  deviceLoc,
  LOC,
  mmapAnonymous,
  perRangeNotifiers,
  runKernel,
  SVM_FLAG,
  type SvmAttrReport,
  type SvmWorld,
  type SvmWorldOptions,
  worldVerdict,
} from '../src/index.ts';

const P = 4096;
const R = ACCESS.READ;
const W = ACCESS.WRITE;
const GPU = deviceLoc(0);

async function run(seed: number, opts: SvmWorldOptions, body: (w: SvmWorld) => Promise<void>): Promise<void> {
  const sim = createSim({ seed });
  const w = await createSvmWorld(sim, {
    granule: amdkfdPolicy(),
    notifiers: perRangeNotifiers(),
    devmem: { migrate: 'fault' },
    vramBytes: 32 << 20,
    ...opts,
  });
  await sim.sched.runMain(async () => {
    await body(w);
    expect(worldVerdict(w).violations).toBe(0);
  });
}

async function get(w: SvmWorld, start: number, end: number): Promise<SvmAttrReport> {
  const r = await w.svm.getAttr(start, end);
  if (typeof r === 'number') throw new Error(`getAttr: ${r}`);
  return r;
}

for (const xnack of [true, false]) {
  const mode = xnack ? 'XNACK on' : 'XNACK off';
  describe(`KFDSVMRangeTest (${mode})`, () => {
    it('KFDSVMRangeTest.SetGetAttributesTest', () =>
      run(1, { xnack }, async (w) => {
        const buf = await mmapAnonymous(w.mm, P);
        // defaults: no locations, HOST_ACCESS | COHERENT, granularity 9, no accessed-by device
        expect(await get(w, buf, buf + P)).toEqual({
          preferredLoc: LOC.UNDEFINED,
          prefetchLoc: LOC.UNDEFINED,
          accessedBy: 0,
          granularity: 9,
          flags: SVM_FLAG.HOST_ACCESS | SVM_FLAG.COHERENT,
          flagsAny: SVM_FLAG.HOST_ACCESS | SVM_FLAG.COHERENT,
        });
        const flags = SVM_FLAG.HOST_ACCESS | SVM_FLAG.GPU_EXEC | SVM_FLAG.COHERENT;
        expect(
          await w.svm.setAttr(buf, buf + P, {
            prefetchLoc: GPU,
            preferredLoc: GPU,
            setFlags: flags,
            granularity: 0x3f, // the original passes 0xFF; KFD clamps it to 0x3F
            setAccessedBy: 1,
          }),
        ).toBe(0);
        expect(await get(w, buf, buf + P)).toEqual({
          preferredLoc: GPU,
          prefetchLoc: GPU,
          accessedBy: 1,
          granularity: 0x3f,
          flags,
          flagsAny: flags,
        });
        // the prefetch location moved the page, and the GPU maps it: a kernel needs no fault
        const r = await runKernel(w, 0, [[[buf, W, 5]]]);
        expect([r.failed, r.faults]).toEqual([0, 0]);
      }));

    it('KFDSVMRangeTest.InvalidRangeTest', () =>
      run(2, { xnack }, async (w) => {
        const flags = SVM_FLAG.HOST_ACCESS | SVM_FLAG.COHERENT;
        // RegisterSVMRange(gpu, 0x10000, 0x1000, 0, flags) on an address nothing maps
        expect(
          await w.svm.setAttr(0x10000, 0x11000, {
            preferredLoc: LOC.SYSMEM,
            setAccessedBy: 1,
            setFlags: flags,
          }),
        ).toBe(-Errno.EFAULT);
        expect(w.svm.attrs.lookup(0x10000)).toEqual(DEFAULT_ATTRS);
        expect(await w.svm.getAttr(0x10000, 0x11000)).toBe(-Errno.EFAULT);
        // a range mapped only in part is rejected whole, and nothing changes
        const buf = await mmapAnonymous(w.mm, 2 * P);
        expect(await w.svm.setAttr(buf, buf + 3 * P, { preferredLoc: GPU })).toBe(-Errno.EFAULT);
        expect(w.svm.attrs.lookup(buf)).toEqual(DEFAULT_ATTRS);
        expect(w.svm.attrs.state.intervals).toEqual([]);
      }));
  });
}

describe('setAttr / getAttr', () => {
  it('set and clear flags; get reports flags set everywhere and anywhere, locations UNDEFINED where they differ', () =>
    run(3, {}, async (w) => {
      const buf = await mmapAnonymous(w.mm, 4 * P);
      expect(await w.svm.setAttr(buf, buf + 2 * P, { setFlags: SVM_FLAG.GPU_EXEC, preferredLoc: GPU })).toBe(
        0,
      );
      expect(await w.svm.setAttr(buf + P, buf + 4 * P, { clearFlags: SVM_FLAG.COHERENT })).toBe(0);
      expect(await w.svm.setAttr(buf + 3 * P, buf + 4 * P, { setFlags: SVM_FLAG.GPU_READ_MOSTLY })).toBe(0);
      expect(w.svm.attrs.lookup(buf + 3 * P).readMostly).toBe(true);
      const all = await get(w, buf, buf + 4 * P);
      expect(all.flags).toBe(SVM_FLAG.HOST_ACCESS);
      expect(all.flagsAny).toBe(
        SVM_FLAG.HOST_ACCESS | SVM_FLAG.COHERENT | SVM_FLAG.GPU_EXEC | SVM_FLAG.GPU_READ_MOSTLY,
      );
      expect(all.preferredLoc).toBe(LOC.UNDEFINED);
      expect((await get(w, buf, buf + 2 * P)).preferredLoc).toBe(GPU);
      // clearing every non-default flag brings the default attributes back: no interval left
      expect(
        await w.svm.setAttr(buf, buf + 4 * P, {
          clearFlags: SVM_FLAG.GPU_EXEC | SVM_FLAG.GPU_READ_MOSTLY,
          setFlags: SVM_FLAG.COHERENT,
          preferredLoc: LOC.UNDEFINED,
        }),
      ).toBe(0);
      expect(w.svm.attrs.state.intervals).toEqual([]);
    }));

  it('bad flags are an ArgumentError and change nothing', () =>
    run(4, {}, async (w) => {
      const buf = await mmapAnonymous(w.mm, P);
      await expect(w.svm.setAttr(buf, buf + P, { setFlags: 0x100 })).rejects.toThrow(/setFlags/);
      await expect(w.svm.setAttr(buf, buf + P, { clearFlags: 1, readMostly: true })).rejects.toThrow(
        /readMostly/,
      );
      await expect(w.svm.setAttr(buf, buf + P, { prefetchLoc: 7 })).rejects.toThrow(/prefetchLoc/);
      await expect(w.svm.getAttr(buf + 1, buf + P)).rejects.toThrow(/GpuSvm.getAttr/);
      expect(w.svm.attrs.state.intervals).toEqual([]);
    }));
});

describe('GPU_RO', () => {
  it('XNACK on: a GPU write to a GPU-read-only range is refused (warp cancelled, memory unchanged); reads work', () =>
    run(5, { devmem: { migrate: 'never' } }, async (w) => {
      const buf = await mmapAnonymous(w.mm, 4 * P);
      await w.mm.writeU32(buf, 0x55);
      // mapped writable first, then made read-only for the GPU: the flag change takes effect at once
      expect((await runKernel(w, 0, [[[buf + P, W, 1]]])).failed).toBe(0);
      expect(await w.svm.setAttr(buf, buf + 4 * P, { setFlags: SVM_FLAG.GPU_RO })).toBe(0);
      const rd = await runKernel(w, 0, [[[buf, R, 0]]]);
      expect([rd.failed, rd.data[0]]).toEqual([0, 0x55]);
      const wr = await runKernel(w, 0, [[[buf, W, 0xaa]], [[buf + P, W, 0xbb]]]);
      expect(wr.failed).toBe(2);
      expect([await w.mm.readU32(buf), await w.mm.readU32(buf + P)]).toEqual([0x55, 1]);
      // the CPU may still write (GPU_RO is about the device)
      await w.mm.writeU32(buf, 0x66);
      // cleared: GPU writes work again
      expect(await w.svm.setAttr(buf, buf + 4 * P, { clearFlags: SVM_FLAG.GPU_RO })).toBe(0);
      expect((await runKernel(w, 0, [[[buf, W, 0xcc]]])).failed).toBe(0);
      expect(await w.mm.readU32(buf)).toBe(0xcc);
    }));

  it('XNACK off: the write is a memory exception (-EPERM) at its address and the queue is killed', () =>
    run(6, { xnack: false }, async (w) => {
      const buf = await mmapAnonymous(w.mm, 2 * P);
      expect(await w.svm.setAttr(buf, buf + 2 * P, { setAccessedBy: 1, setFlags: SVM_FLAG.GPU_RO })).toBe(0);
      const rd = await runKernel(w, 0, [[[buf + P, R, 0]]]);
      expect([rd.failed, rd.faults]).toEqual([0, 0]); // mapped by set_attr (XNACK off)
      const next = w.svm.nextMemoryException(0);
      const wr = await runKernel(w, 0, [[[buf + P + 4, W, 9]]]);
      const ex = await next;
      expect(wr.failed).toBe(1);
      expect([ex.va, ex.access, ex.errno]).toEqual([buf + P, W, -Errno.EPERM]);
      expect(await w.mm.readU32(buf + P + 4)).toBe(0);
    }));

  it('XNACK off: GPU_ALWAYS_MAPPED maps the range on set_attr for every device', () =>
    run(7, { xnack: false, devices: 2 }, async (w) => {
      const buf = await mmapAnonymous(w.mm, 4 * P);
      expect(await w.svm.setAttr(buf, buf + 4 * P, { setFlags: SVM_FLAG.GPU_ALWAYS_MAPPED })).toBe(0);
      for (const d of [0, 1]) {
        const r = await runKernel(w, d, [[[buf + d * P, W, d + 1]]]);
        expect([r.failed, r.faults]).toEqual([0, 0]);
      }
      expect([await w.mm.readU32(buf), await w.mm.readU32(buf + P)]).toEqual([1, 2]);
    }));

  it('the oracle flags a GPU write to a GPU_RO page (attrs.advise alone leaves an earlier writable mapping)', async () => {
    const sim = createSim({ seed: 8 });
    const w = await createSvmWorld(sim, { devmem: { migrate: 'never' } });
    await sim.sched.runMain(async () => {
      const buf = await mmapAnonymous(w.mm, 4 * P);
      expect((await runKernel(w, 0, [[[buf, W, 1]]])).failed).toBe(0);
      expect(w.oracle.violations).toEqual([]);
      // the map changes, the device PTEs do not (setAttr is the call that remaps)
      w.svm.attrs.advise(buf, buf + 4 * P, { setFlags: SVM_FLAG.GPU_RO });
      expect((await runKernel(w, 0, [[[buf, W, 2]]])).failed).toBe(0);
      expect(w.oracle.violations.map((v) => [v.reason, v.va, v.when])).toEqual([
        ['write-to-gpu-ro', buf, 'gpu-write'],
      ]);
    });
  });
});
