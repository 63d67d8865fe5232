/**
 * Access counters (UVM, Volta+): remote accesses through accessed-by mappings are counted per
 * region, and a hot region migrates to the accessing GPU through the notification buffer — no
 * fault involved. Opt-in (`accessCounters`).
 */
import { ACCESS } from '@hmmkit/gpu';
import { PTE_DEVICE_PRIVATE, pteType } from '@hmmkit/mm';
import { createSim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  type Access,
  createSvmWorld,
  LOC,
  MIGRATE_TRIGGER,
  mmapAnonymous,
  runKernel,
  type SvmWorld,
  type SvmWorldOptions,
  worldVerdict,
} from '../src/index.ts';

const P = 4096;
const K64 = 64 << 10;
const R = ACCESS.READ;

async function run(opts: SvmWorldOptions, body: (w: SvmWorld) => Promise<void>): Promise<void> {
  const sim = createSim({ seed: 1 });
  // faults never migrate: only the access counters can move data to VRAM
  const w = await createSvmWorld(sim, { devmem: { migrate: 'never' }, vramBytes: 16 << 20, ...opts });
  await sim.sched.runMain(async () => {
    await body(w);
    expect(worldVerdict(w).violations).toBe(0);
  });
}

/** Pages of `[start, end)` whose CPU entry is a device-private one (the data is in VRAM). */
function inVram(w: SvmWorld, start: number, end: number): number {
  let n = 0;
  for (let va = start; va < end; va += P) {
    const e = w.mm.readEntry(va);
    if (e.flags !== 0 && pteType(e.flags) === PTE_DEVICE_PRIVATE) n++;
  }
  return n;
}

/** A buffer of four 64 KiB regions in system memory, mapped remotely on GPU 0 (accessed-by). */
async function remoteBuffer(w: SvmWorld): Promise<number> {
  const buf = await mmapAnonymous(w.mm, 4 * K64, 0x40000000);
  for (let k = 0; k < 4 * K64; k += P) await w.mm.writeU32(buf + k, k);
  w.svm.attrs.advise(buf, buf + 4 * K64, { setAccessedBy: 1 });
  expect(await w.svm.prefetch(buf, buf + 4 * K64, LOC.SYSMEM)).toBe(0);
  return buf;
}

/** A kernel: `hot` reads of region 1's first page per warp, one read of region 3, on 8 warps. */
function kernel(buf: number, hot: number): Access[][] {
  return Array.from({ length: 8 }, (_, w) => {
    const acc: Access[] = [];
    for (let k = 0; k < hot; k++) acc.push([buf + K64 + ((k * P) % K64), R, 0]);
    if (w === 0) acc.push([buf + 3 * K64, R, 0]);
    return acc;
  });
}

describe('access counters', () => {
  it('a hot remote region migrates to the GPU through a notification; a cold one stays', () =>
    run({ accessCounters: { granularity: K64, threshold: 64 } }, async (w) => {
      const buf = await remoteBuffer(w);
      const mig: number[] = [];
      w.sim.trace.on('svm.migrate.end', (start, _pages, _from, _to, trigger, moved) => {
        if (trigger === MIGRATE_TRIGGER.ACCESS_COUNTER && moved > 0) mig.push(start);
      });
      const r = await runKernel(w, 0, kernel(buf, 32)); // 256 remote reads of region 1
      expect(r.failed).toBe(0);
      // every load saw the CPU's data, before or after the move
      const want = kernel(buf, 32).flatMap((warp) => warp.map(([va]) => va - buf));
      expect(Array.from(r.data)).toEqual(want);
      const ac = w.svm.accessCounters!;
      expect(ac.notifications[0]).toBeGreaterThanOrEqual(1);
      expect(ac.migrations[0]).toBe(1);
      expect(mig).toEqual([buf + K64]);
      expect(inVram(w, buf + K64, buf + 2 * K64)).toBe(K64 / P);
      expect(inVram(w, buf, buf + K64) + inVram(w, buf + 2 * K64, buf + 4 * K64)).toBe(0);
      // the GPU now maps the region from its VRAM: a second kernel reads it with no fault
      const again = await runKernel(w, 0, [[[buf + K64 + 8 * P, R, 0]]]);
      expect([again.failed, again.faults, again.data[0]]).toEqual([0, 0, K64 + 8 * P]);
      expect(await w.mm.readU32(buf + K64 + 12 * P)).toBe(K64 + 12 * P);
    }));

  it('below the threshold nothing moves', () =>
    run({ accessCounters: { granularity: K64, threshold: 1000 } }, async (w) => {
      const buf = await remoteBuffer(w);
      expect((await runKernel(w, 0, kernel(buf, 32))).failed).toBe(0);
      expect(w.svm.accessCounters!.notifications[0]).toBe(0);
      expect(inVram(w, buf, buf + 4 * K64)).toBe(0);
    }));

  it('without the option the same kernel leaves the data in system memory', () =>
    run({}, async (w) => {
      const buf = await remoteBuffer(w);
      expect((await runKernel(w, 0, kernel(buf, 32))).failed).toBe(0);
      expect(w.svm.accessCounters).toBeNull();
      expect(inVram(w, buf, buf + 4 * K64)).toBe(0);
    }));

  it('bad options are ArgumentErrors', async () => {
    const sim = createSim({ seed: 2 });
    await expect(createSvmWorld(sim, { accessCounters: { granularity: 3 << 16 } })).rejects.toThrow(
      /accessCounters.granularity/,
    );
    await expect(createSvmWorld(sim, { accessCounters: { threshold: 0 } })).rejects.toThrow(
      /accessCounters.threshold/,
    );
  });
});
