/**
 * The replayable fault handler (the bottom half of uvm_gpu_replayable_faults.c): fetch a batch, sort, service it one 2 MiB VA block at a time, flush, replay.
 *
 * @module
 */

import { ACCESS, type FaultBatch, type FlushMode } from '@hmmkit/gpu';
import { HMM_PFN_WRITE } from '@hmmkit/hmm';
import { ArgumentError, type Task } from '@hmmkit/sim';
import { pageAtomicMapped } from './atomic.ts';
import { attrFlags, SVM_FLAG } from './attrs.ts';
import { handleFaultIn } from './fault.ts';
import type { FaultHandlerOptions, GpuSvm } from './gpusvm.ts';
import { alignDown, PAGE_SIZE, SZ_2M } from './granule.ts';
import { pageMaskSet, pageMaskWeight } from './page-mask.ts';
import { serviceNoRetryBatch } from './xnack.ts';

/**
 * Spawns the device's fault handler task (the bottom half of uvm_gpu_replayable_faults.c):
 * wait for faults → fetch a batch (coalesced, `faultBatchFixedNs`) → sort → service it per 2 MiB
 * VA block ({@link serviceFaultBatch}) → with the default replay policy 'batch-flush'
 * (UVM_PERF_FAULT_REPLAY_POLICY_BATCH_FLUSH) flush the buffer's stale duplicates (UPDATE_PUT when
 * the batch was mostly duplicates, else CACHED_PUT, as `opts.flushMode` 'ratio' says) → one replay. 'batch' replays without the flush (UVM_PERF_FAULT_REPLAY_POLICY_BATCH:
 * every stale duplicate is fetched and serviced again). Failed faults are cancelled. Ends when
 * `stop()` holds and the buffer is empty. With XNACK off (`svm.noRetry`) a batch is serviced by
 * {@link serviceNoRetryBatch} instead: no fault-driven migration, fatal faults kill the queue.
 */
export function startFaultHandler(
  svm: GpuSvm,
  devIndex: number,
  stop: () => boolean,
  opts: FaultHandlerOptions = {},
): Task {
  const fn = 'GpuSvm.startFaultHandler';
  const dev = svm.devices[devIndex];
  if (dev === undefined) throw new ArgumentError(fn, 'devIndex', 'no such device', devIndex);
  const replay = opts.replay ?? 'batch-flush';
  if (replay !== 'batch-flush' && replay !== 'batch') {
    throw new ArgumentError(fn, 'opts.replay', "must be 'batch-flush' or 'batch'", replay);
  }
  const flushMode = opts.flushMode ?? 'ratio';
  if (flushMode !== 'ratio' && flushMode !== 'update-put' && flushMode !== 'cached-put') {
    throw new ArgumentError(fn, 'opts.flushMode', "must be 'ratio', 'update-put' or 'cached-put'", flushMode);
  }
  const ratio = opts.updatePutRatio ?? 50;
  if (!Number.isInteger(ratio) || ratio < 0 || ratio > 100) {
    throw new ArgumentError(fn, 'opts.updatePutRatio', 'must be an integer in [0, 100]', ratio);
  }
  const sim = svm.mm.sim;
  const max = sim.costs.faultBatchMax;
  if (!Number.isInteger(max) || max < 1) {
    // rejected here, before the handler starts, not by the first fetch mid-run
    throw new ArgumentError(fn, 'sim.costs.faultBatchMax', 'must be a positive integer', max);
  }
  return sim.sched.spawn(`svm-faults-${dev.id}`, async () => {
    const batch = dev.newFaultBatch();
    const fb = dev.faultBuffer;
    while (await fb.waitForFaults(stop)) {
      const t0 = sim.now;
      const fetched0 = fb.fetched.value;
      fb.fetch(batch);
      const cached = fb.fetched.value - fetched0; // num_cached_faults
      sim.charge(sim.costs.faultBatchFixedNs);
      batch.sort();
      const pages =
        svm.noRetry === null
          ? await serviceFaultBatch(svm, devIndex, batch)
          : await serviceNoRetryBatch(svm, devIndex, batch);
      if (replay === 'batch-flush') {
        // uvm_gpu_service_replayable_faults: UPDATE_PUT when num_duplicate_faults * 100 >
        // num_cached_faults * replay_update_put_ratio. Duplicates: entries fetched that needed no
        // service of their own (merged at fetch, or their page was already mapped).
        let mode: FlushMode = flushMode === 'ratio' ? 'cached-put' : flushMode;
        if (flushMode === 'ratio' && (cached - pages) * 100 > cached * ratio) mode = 'update-put';
        fb.flush(mode);
      }
      fb.replay();
      if (sim.trace.wants('svm.fault.batch')) {
        sim.trace.emit('svm.fault.batch', dev.id, batch.count, pages, t0, sim.now);
      }
    }
  });
}

/**
 * Models service_fault_batch(): walks a fetched, sorted batch one 2 MiB VA block at a time. For
 * each block it builds the mask of the block's faulted pages not yet mapped (for their access),
 * charges `faultServicePerPageNs` once per such unique page (duplicates coalesced in the batch
 * are not serviced twice), and services the block's faults with that mask and the block's
 * prior fault count, so the granule policy (UVM's prefetcher) is consulted once per block with
 * the whole batch in view and the block's pages are migrated and mapped together (one
 * copy-engine transfer and one bind). Faults the first service left unmapped (another range,
 * another granule) are serviced in turn. Failed faults are cancelled. Returns the number of
 * unique pages serviced.
 */
export async function serviceFaultBatch(svm: GpuSvm, devIndex: number, batch: FaultBatch): Promise<number> {
  const dev = svm.devices[devIndex];
  if (dev === undefined)
    throw new ArgumentError('GpuSvm.serviceFaultBatch', 'devIndex', 'no such device', devIndex);
  const sim = svm.mm.sim;
  const fb = dev.faultBuffer;
  const order = batch.order;
  const n = batch.count;
  const mask = svm.batchMask;
  let serviced = 0;
  svm.c.faults.add(n); // every fetched (coalesced) entry is serviced, most by its block's first
  const off = svm.gpuVaOffset;
  for (let k = 0; k < n; ) {
    const e0 = order[k]!;
    const inst = batch.instance[e0]!;
    const blockStart = alignDown(batch.va[e0]! - off, SZ_2M);
    let k1 = k + 1;
    while (
      k1 < n &&
      batch.instance[order[k1]!] === inst &&
      alignDown(batch.va[order[k1]!]! - off, SZ_2M) === blockStart
    ) {
      k1++;
    }
    mask.fill(0);
    for (let j = k; j < k1; j++) {
      const e = order[j]!;
      const va = batch.va[e]! - off; // the CPU address (gpuVaOffset)
      if (!pageMappedFor(svm, devIndex, va, batch.access[e]!))
        pageMaskSet(mask, (va - blockStart) / PAGE_SIZE);
    }
    const unique = pageMaskWeight(mask);
    if (unique > 0) {
      serviced += unique;
      sim.charge(unique * sim.costs.faultServicePerPageNs);
      const block = blockStart / SZ_2M;
      const prior = svm.blockFaults.get(block) ?? 0;
      svm.blockFaults.set(block, prior + unique);
      for (let j = k; j < k1; j++) {
        const e = order[j]!;
        const va = batch.va[e]! - off; // the CPU address (gpuVaOffset)
        const access = batch.access[e]!;
        if (pageMappedFor(svm, devIndex, va, access)) continue; // serviced with an earlier fault
        const ret = await handleFaultIn(svm, devIndex, va, access, mask, prior);
        if (ret !== 0) fb.cancel(va + off, inst);
      }
    }
    k = k1;
  }
  return serviced;
}

/** Whether device `devIndex` maps the page of `va` with the rights `access` needs. */
export function pageMappedFor(svm: GpuSvm, devIndex: number, va: number, access: number): boolean {
  const r = svm.rangeFind(va);
  if (r === null) return false;
  const i = Math.floor((va - r.start) / PAGE_SIZE);
  if (r.pageValid[i] !== 1 || (r.devMap[i]! & (1 << devIndex)) === 0) return false;
  const wantW = access === ACCESS.WRITE || access === ACCESS.ATOMIC;
  if (!wantW) return true;
  // an atomic needs an atomic-enabled PTE (xe's AE bit, a device-exclusive page)
  if (access === ACCESS.ATOMIC && !pageAtomicMapped(svm, devIndex, r, i, va)) return false;
  // a GPU_RO range is mapped read-only whatever the CPU allows: a write is never "already mapped"
  return (r.flags[i]! & HMM_PFN_WRITE) !== 0 && (attrFlags(svm.attrs.lookup(va)) & SVM_FLAG.GPU_RO) === 0;
}
