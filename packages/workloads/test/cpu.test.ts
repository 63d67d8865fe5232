import { ArgumentError } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  cpuTouch,
  kernelsOf,
  MADV,
  madviseStorm,
  mprotectStorm,
  munmapStorm,
  PROT,
  pingPong,
  streaming,
  withCpuPhases,
} from '../src/index.ts';

const region = { va: 0x4000_0000, bytes: 64 * 4096 };

describe('CPU op descriptors', () => {
  it('storms stay inside the region, page aligned, and are deterministic', () => {
    for (const ops of [
      munmapStorm(region, { count: 50, seed: 3 }),
      mprotectStorm(region, { count: 50, seed: 3 }),
      madviseStorm(region, { count: 50, seed: 3, advice: MADV.PAGEOUT }),
    ]) {
      for (const op of ops) {
        if (op.op === 'fork') throw new Error('no fork expected');
        expect(op.addr % 4096).toBe(0);
        expect(op.len % 4096).toBe(0);
        expect(op.addr).toBeGreaterThanOrEqual(region.va);
        expect(op.addr + op.len).toBeLessThanOrEqual(region.va + region.bytes);
        expect(op.len).toBeLessThanOrEqual(16 * 4096);
      }
    }
    expect(munmapStorm(region, { count: 20, seed: 9 })).toEqual(munmapStorm(region, { count: 20, seed: 9 }));
    expect(munmapStorm(region, { count: 20, seed: 9 })).not.toEqual(
      munmapStorm(region, { count: 20, seed: 8 }),
    );
  });

  it('munmap storms remap what they unmap; mprotect alternates read-only and read-write', () => {
    const u = munmapStorm(region, { count: 4 });
    expect(u.map((o) => o.op)).toEqual([
      'munmap',
      'mmap',
      'munmap',
      'mmap',
      'munmap',
      'mmap',
      'munmap',
      'mmap',
    ]);
    const m = mprotectStorm(region, { count: 4 });
    expect(m.map((o) => o.prot)).toEqual([
      PROT.READ,
      PROT.READ | PROT.WRITE,
      PROT.READ,
      PROT.READ | PROT.WRITE,
    ]);
    expect(madviseStorm(region, { count: 2 }).every((o) => o.advice === MADV.DONTNEED)).toBe(true);
  });

  it('rejects bad arguments', () => {
    expect(() => cpuTouch(4095, 10, false)).toThrow(ArgumentError);
    expect(() => cpuTouch(4096, 0, false)).toThrow(ArgumentError);
    expect(() => munmapStorm({ va: 100, bytes: 4096 }, { count: 1 })).toThrow(ArgumentError);
    expect(() => munmapStorm(region, { count: -1 })).toThrow(ArgumentError);
    expect(() => mprotectStorm(region, { count: 1, maxPages: 0 })).toThrow(ArgumentError);
  });
});

describe('workload interleaving', () => {
  const w = streaming({ footprintBytes: 1 << 20, numSMs: 2, warpsPerSM: 4, iterations: 3 });

  it('pingPong alternates kernel and CPU read+write of every array', () => {
    const pp = pingPong(w);
    const phases = [...pp.phases()];
    expect(phases.length).toBe(pp.phaseCount);
    expect(phases.map((p) => p.type)).toEqual(['kernel', 'cpu', 'kernel', 'cpu', 'kernel', 'cpu']);
    expect(phases.map((p) => p.index)).toEqual([0, 1, 2, 3, 4, 5]);
    const cpu = phases[1]!;
    if (cpu.type !== 'cpu') throw new Error('expected cpu');
    expect(cpu.ops.length).toBe(2 * w.arrays.length);
    const [r, wr] = cpu.ops;
    expect(r).toMatchObject({ op: 'touch', addr: w.arrays[0]!.va, write: false });
    expect(wr).toMatchObject({ op: 'touch', addr: w.arrays[0]!.va, write: true });
    expect(kernelsOf(pp).length).toBe(3);
  });

  it('withCpuPhases inserts only non-empty phases, optionally before the first kernel', () => {
    const x = withCpuPhases(w, (k) => (k === 1 || k === -1 ? [{ op: 'fork' }] : []), { before: true });
    const types = [...x.phases()].map((p) => p.type);
    expect(types).toEqual(['cpu', 'kernel', 'kernel', 'cpu', 'kernel']);
    expect(x.phaseCount).toBe(5);
    expect(x.kernelCount).toBe(3);
  });
});
