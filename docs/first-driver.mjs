// Your first driver (docs/tutorial-first-driver.md): a GPU kernel increments one word in each of
// 256 pages a CPU process wrote; the driver is xe's (drm_gpusvm fault-around, one notifier per
// 512 MiB), the data migrates to VRAM on GPU faults and back when the CPU reads it.
import {
  ACCESS,
  createSim,
  createSvmWorld,
  drmGpusvmPolicy,
  mmapAnonymous,
  runKernel,
  windowNotifiers,
  worldVerdict,
} from 'hmmkit';

const PAGE = 4096;
const sim = createSim({ seed: 1 });
const world = await createSvmWorld(sim, {
  granule: drmGpusvmPolicy(), // fault-around: the largest of 2M/64K/4K chunks that fits
  notifiers: windowNotifiers(), // one MMU interval notifier per 512 MiB window
  devmem: { migrate: 'fault' }, // a GPU fault migrates its chunk to VRAM
});

const verdict = await sim.sched.runMain(async () => {
  // the process: 1 MiB of anonymous memory, word 0 of page i holds i
  const a = await mmapAnonymous(world.mm, 256 * PAGE);
  for (let i = 0; i < 256; i++) await world.mm.writeU32(a + i * PAGE, i);

  // the kernel: 4 warps, each adds 1 to word 0 of 64 pages (atomics)
  const warps = Array.from({ length: 4 }, (_, w) =>
    Array.from({ length: 64 }, (_, j) => [a + (w * 64 + j) * PAGE, ACCESS.ATOMIC, 1]),
  );
  const run = await runKernel(world, 0, warps);
  console.log(
    `kernel: ${run.faults} far faults, ${run.failed} warps cancelled, ${(run.elapsedNs / 1000).toFixed(1)} µs`,
  );

  // the CPU reads the results back (the pages migrate back to system memory)
  for (let i = 0; i < 256; i++) {
    const v = await world.mm.readU32(a + i * PAGE);
    if (v !== i + 1) throw new Error(`page ${i}: CPU reads ${v}, expected ${i + 1}`);
  }
  return worldVerdict(world);
});
console.log(verdict.line);
if (verdict.violations !== 0) process.exit(1);
