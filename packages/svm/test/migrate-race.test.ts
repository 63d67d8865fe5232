/**
 * Regression tests of issue 9, defects 1 and 2: races between migration and GPU faults, and GPU
 * writes to device-private pages whose CPU entry became read-only.
 */
import { PROT_READ, PROT_WRITE } from '@hmmkit/mm';
import { createSim, type Sim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import { makeWorld, mmapAnon, R, runKernel, W, type World } from './helpers/setup.ts';

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

/**
 * The 1-page poll race: a GPU task writes `a+8 = 100+k` then `a+16 = 1` four times (each kernel
 * migrates the page to VRAM) while the main task reads `a+16` every 2 µs (each read migrates it
 * back). Returns what `a+8` holds at the end and the number of cancelled warps.
 */
async function pollRace(seed: number): Promise<{ last: number; failed: number; violations: number }> {
  const sim = createSim({ seed });
  const w = await makeWorld(sim, { devmem: {}, throwOnViolation: false });
  return run(sim, async () => {
    const a = await mmapAnon(w.mm, P);
    let done = false;
    let failed = 0;
    const gpu = sim.sched.spawn('gpu', async () => {
      for (let k = 0; k < 4; k++) {
        const r = await runKernel(w, 0, [
          [
            [a + 8, W, 100 + k],
            [a + 16, W, 1],
          ],
        ]);
        failed += r.failed;
      }
      done = true;
    });
    while (!done) {
      await w.mm.readU32(a + 16);
      await sim.sched.sleep(2000);
    }
    await sim.sched.join(gpu);
    w.oracle.checkAll();
    return { last: await w.mm.readU32(a + 8), failed, violations: w.oracle.violations.length };
  });
}

/**
 * The xe storm: a 2 MiB range in VRAM (page i holds i + 1), mprotect(R) then mprotect(RW); a CPU
 * task sleeps 72 µs and writes 99 to page 100 while a GPU kernel reads every page; then the GPU
 * reads page 100 again. Returns that read, the violations, and cancelled warps.
 */
async function mprotectStorm(seed: number): Promise<{ read: number; failed: number; violations: number }> {
  const sim = createSim({ seed });
  const w = await makeWorld(sim, { devmem: {}, throwOnViolation: false });
  return run(sim, async () => {
    const a = aligned(await mmapAnon(w.mm, 2 * M2));
    for (let i = 0; i < 512; i++) await w.mm.writeU32(a + i * P, i + 1);
    let failed = (await runKernel(w, 0, [[[a, R, 0]]])).failed; // the 2 MiB range goes to VRAM
    expect(await w.mm.mprotect(a, M2, PROT_READ)).toBe(0);
    expect(await w.mm.mprotect(a, M2, PROT_READ | PROT_WRITE)).toBe(0);
    const cpu = sim.sched.spawn('cpu', async () => {
      await sim.sched.sleep(72_000);
      await w.mm.writeU32(a + 100 * P, 99);
    });
    failed += (
      await runKernel(
        w,
        0,
        Array.from({ length: 8 }, (_, k) =>
          Array.from({ length: 64 }, (_, j) => [a + (k * 64 + j) * P, R, 0] as const),
        ),
      )
    ).failed;
    await sim.sched.join(cpu);
    const r = await runKernel(w, 0, [[[a + 100 * P, R, 0]]]);
    w.oracle.checkAll();
    return { read: r.data[0]!, failed: failed + r.failed, violations: w.oracle.violations.length };
  });
}

describe('migration races (issue 9, defect 1)', () => {
  it('the 1-page poll race keeps every GPU write (seed 1)', async () => {
    const r = await pollRace(1);
    expect(r).toEqual({ last: 103, failed: 0, violations: 0 });
  });

  it.each([20, 47, 65])(
    'mprotect(R)/mprotect(RW) xe storm in VRAM: the CPU write is seen (seed %i)',
    async (seed) => {
      const r = await mprotectStorm(seed);
      expect(r).toEqual({ read: 99, failed: 0, violations: 0 });
    },
  );
});

/**
 * A 2 MiB range migrated to VRAM whose device-private CPU entries `makeReadOnly` turns read-only;
 * then a GPU write and a CPU read of it. Returns the cancelled warps and what the CPU reads.
 */
async function writeAfterReadOnly(
  seed: number,
  makeReadOnly: (w: World, a: number) => Promise<void>,
): Promise<{ failed: number; cpu: number; gpu: number; toRam: number }> {
  const sim = createSim({ seed });
  const w = await makeWorld(sim, { devmem: {} });
  return run(sim, async () => {
    const a = aligned(await mmapAnon(w.mm, 2 * M2));
    for (let i = 0; i < 512; i++) await w.mm.writeU32(a + i * P, i + 1);
    await runKernel(w, 0, [[[a, R, 0]]]);
    expect(w.svm.devmem[0]!.contains(w.oracle.cpuLookup(a + 7 * P)[0])).toBe(true);
    await makeReadOnly(w, a);
    const toRam = sim.counters.counter('svm.migrate.toRam.pages').value;
    const r = await runKernel(w, 0, [
      [
        [a + 7 * P, W, 4242],
        [a + 7 * P, R, 0],
      ],
    ]);
    w.oracle.checkAll();
    return {
      failed: r.failed,
      gpu: r.data[1]!,
      cpu: await w.mm.readU32(a + 7 * P),
      toRam: sim.counters.counter('svm.migrate.toRam.pages').value - toRam,
    };
  });
}

describe('GPU writes to device pages made read-only (issue 9, defect 2)', () => {
  it('after mprotect(R) then mprotect(RW) the GPU write gets write access back', async () => {
    const r = await writeAfterReadOnly(1, async (w, a) => {
      expect(await w.mm.mprotect(a, M2, PROT_READ)).toBe(0);
      expect(await w.mm.mprotect(a, M2, PROT_READ | PROT_WRITE)).toBe(0);
    });
    expect(r.failed).toBe(0);
    expect(r.gpu).toBe(4242);
    expect(r.cpu).toBe(4242);
    expect(r.toRam).toBeGreaterThan(0); // write access came back through system memory (xe: migrate + re-fault)
  });

  it('after fork() and the child exit the GPU write gets write access back', async () => {
    const r = await writeAfterReadOnly(2, async (w) => {
      const child = await w.mm.fork();
      await child.exit();
    });
    expect(r.failed).toBe(0);
    expect(r.gpu).toBe(4242);
    expect(r.cpu).toBe(4242);
  });

  it('after fork() with the child alive, the GPU write breaks COW: the child keeps the old value', async () => {
    const sim = createSim({ seed: 3 });
    const w = await makeWorld(sim, { devmem: {} });
    await run(sim, async () => {
      const a = aligned(await mmapAnon(w.mm, 2 * M2));
      for (let i = 0; i < 512; i++) await w.mm.writeU32(a + i * P, i + 1);
      await runKernel(w, 0, [[[a, R, 0]]]);
      const child = await w.mm.fork();
      const r = await runKernel(w, 0, [[[a + 7 * P, W, 4242]]]);
      expect(r.failed).toBe(0);
      expect(await w.mm.readU32(a + 7 * P)).toBe(4242);
      expect(await child.readU32(a + 7 * P)).toBe(8);
      await child.exit();
      w.oracle.checkAll();
    });
  });
});

export { mprotectStorm, pollRace };
