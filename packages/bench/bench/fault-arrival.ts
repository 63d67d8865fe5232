/**
 * Issue 11, step 1: how faults arrive, and why UVM's tree prefetcher saves only ≈3× on the
 * streaming workload. Deterministic (simulated time), a few seconds:
 *
 *     sh scripts/run.sh tsx packages/bench/bench/fault-arrival.ts [MiB,...] [--stall]
 *
 * Part 1 prints the first batches of streaming (32 MiB, uvm-tree): raw entries fetched, unique
 * pages, duplicate ratio, KiB migrated (faulted + prefetched). Part 2 sweeps the "wave" (distinct
 * pages the resident warps touch per round = numSMs × warpsPerSM × 128 B / 4 KiB) and prints the
 * tree-vs-4K ratios of far faults and kernel time. Part 3: the ratios over footprints. Part 4: the
 * same footprints under UVMSmart's service model (`--uvmsmart`: the driver takes one fault entry
 * per service instead of UVM's 256-entry batch; far faults also counted as UVMSmart counts them,
 * serviced faults = pages not yet resident; calibration target i). Part 4 at 256 MiB takes minutes.
 * Part 5 (`--preferred`): the same with the preferred location advised to the GPU, so UVM's
 * first-touch rule populates a whole VA block on its first fault (`uvm_perf_prefetch.c`).
 * `--stall` turns on GpuEngine.stallClientOnFault (a faulted SM issues nothing until replay).
 */
import { deviceLoc } from '@hmmkit/svm';
import { type CpuMode, type ExperimentSpec, runExperiment } from '../src/experiment.ts';

const args = process.argv.slice(2);
const stall = args.includes('--stall');
const uvmsmart = args.includes('--uvmsmart');
const preferred = args.includes('--preferred');
const sizes = (args.find((a) => /^[\d,]+$/.test(a)) ?? '8,32').split(',').map(Number);

function spec(
  mib: number,
  granule: string,
  warpsPerSM = 32,
  faultBatchMax?: number,
  cpu: CpuMode = 'init',
): ExperimentSpec {
  return {
    ...(faultBatchMax === undefined ? {} : { costs: { faultBatchMax } }),
    workload: { generator: 'streaming', params: { footprintBytes: mib << 20, warpsPerSM }, cpu },
    granule,
    placement: 'vram',
    vramBytes: Math.max(64, 2 * mib) << 20,
  };
}

/** `preferGpu`: cudaMemAdviseSetPreferredLocation(GPU 0) over the whole address space first. */
async function run(s: ExperimentSpec, perBatch?: string[], preferGpu = false) {
  let lastB = 0;
  let lastF = 0;
  return runExperiment(s, {
    onWorld: (w) => {
      const dev = w.devices[0]!;
      dev.engine.stallClientOnFault = stall;
      if (preferGpu) w.svm.attrs.advise(0, 2 ** 47, { preferredLoc: deviceLoc(0) });
      if (perBatch === undefined) return;
      w.sim.trace.on('svm.fault.batch', (_d, unique, faulted, t0, t1) => {
        const raw = dev.faultBuffer.fetched.value - lastF;
        const kib = (dev.copyEngine.bytesH2d.value - lastB) / 1024;
        lastF += raw;
        lastB += kib * 1024;
        perBatch.push(
          `${String(raw).padStart(4)} ${String(unique).padStart(6)} ${(1 - unique / raw).toFixed(2).padStart(5)} ` +
            `${String(faulted).padStart(7)} ${String(kib).padStart(8)} ${((t1 - t0) / 1000).toFixed(0).padStart(6)}`,
        );
      });
    },
  });
}

console.log(`stallClientOnFault: ${stall}\n\n== 1. first batches, streaming 32 MiB, uvm-tree`);
const rows: string[] = [];
await run(spec(32, 'uvm-tree'), rows);
console.log(' raw unique  dup% faulted  KiB H2D     µs');
console.log(rows.slice(0, 12).join('\n'));

console.log('\n== 2. wave width (32 MiB): tree vs 4K on-demand');
console.log('warpsPerSM  wave(pages)  tree far  tree ms   4k far    4k ms  ×far  ×time');
for (const wps of [1, 4, 8, 32]) {
  const t = await run(spec(32, 'uvm-tree', wps));
  const k = await run(spec(32, '4k', wps));
  console.log(
    `${String(wps).padStart(10)} ${String((80 * wps * 128) / 4096).padStart(12)} ${String(t.farFaults).padStart(9)} ` +
      `${(t.kernelTimeNs / 1e6).toFixed(1).padStart(8)} ${String(k.farFaults).padStart(8)} ${(k.kernelTimeNs / 1e6).toFixed(1).padStart(8)} ` +
      `${(k.farFaults / t.farFaults).toFixed(1).padStart(5)} ${(k.kernelTimeNs / t.kernelTimeNs).toFixed(1).padStart(6)}`,
  );
}

console.log('\n== 3. footprints (default 2560 warps): tree vs 4K on-demand');
console.log('   MiB  tree far  tree ms   4k far    4k ms  ×far  ×time');
for (const mib of sizes) {
  const t = await run(spec(mib, 'uvm-tree'));
  const k = await run(spec(mib, '4k'));
  console.log(
    `${String(mib).padStart(6)} ${String(t.farFaults).padStart(9)} ${(t.kernelTimeNs / 1e6).toFixed(1).padStart(8)} ` +
      `${String(k.farFaults).padStart(8)} ${(k.kernelTimeNs / 1e6).toFixed(1).padStart(8)} ` +
      `${(k.farFaults / t.farFaults).toFixed(1).padStart(5)} ${(k.kernelTimeNs / t.kernelTimeNs).toFixed(1).padStart(6)}`,
  );
}

if (uvmsmart) {
  console.log("\n== 4. UVMSmart's service model (faultBatchMax 1): tree vs 4K on-demand");
  console.log('   MiB  tree far  tree svc  tree ms    4k far   4k svc     4k ms  ×far  ×svc  ×time');
  for (const mib of sizes) {
    const t = await run(spec(mib, 'uvm-tree', 32, 1));
    const k = await run(spec(mib, '4k', 32, 1));
    console.log(
      `${String(mib).padStart(6)} ${String(t.farFaults).padStart(9)} ${String(t.faultsServiced).padStart(9)} ` +
        `${(t.kernelTimeNs / 1e6).toFixed(1).padStart(8)} ${String(k.farFaults).padStart(9)} ${String(k.faultsServiced).padStart(8)} ` +
        `${(k.kernelTimeNs / 1e6).toFixed(1).padStart(9)} ${(k.farFaults / t.farFaults).toFixed(1).padStart(5)} ` +
        `${(k.faultsServiced / t.faultsServiced).toFixed(1).padStart(5)} ${(k.kernelTimeNs / t.kernelTimeNs).toFixed(1).padStart(6)}`,
    );
  }
}

if (preferred) {
  console.log('\n== 5. preferred location = the GPU (first-touch population of whole VA blocks), tree vs 4K');
  console.log(
    'cpu   warps/SM    MiB  tree far  tree svc  tree ms   4k far   4k svc    4k ms  ×far  ×svc  ×time',
  );
  const cells: [CpuMode, number, number][] = [];
  for (const mib of sizes) cells.push(['none', 32, mib]);
  for (const mib of sizes) cells.push(['init', 32, mib]);
  for (const wps of [1, 4, 8]) cells.push(['none', wps, 32]);
  for (const [cpu, wps, mib] of cells) {
    const t = await run(spec(mib, 'uvm-tree', wps, undefined, cpu), undefined, true);
    const k = await run(spec(mib, '4k', wps, undefined, cpu), undefined, true);
    console.log(
      `${cpu.padEnd(4)} ${String(wps).padStart(9)} ${String(mib).padStart(6)} ${String(t.farFaults).padStart(9)} ` +
        `${String(t.faultsServiced).padStart(9)} ${(t.kernelTimeNs / 1e6).toFixed(1).padStart(8)} ` +
        `${String(k.farFaults).padStart(8)} ${String(k.faultsServiced).padStart(8)} ${(k.kernelTimeNs / 1e6).toFixed(1).padStart(8)} ` +
        `${(k.farFaults / t.farFaults).toFixed(1).padStart(5)} ${(k.faultsServiced / t.faultsServiced).toFixed(1).padStart(5)} ` +
        `${(k.kernelTimeNs / t.kernelTimeNs).toFixed(1).padStart(6)}`,
    );
  }
}
