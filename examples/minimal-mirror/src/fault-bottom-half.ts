/**
 * The GPU fault-buffer bottom half every example driver shares (nouveau_svm_fault's loop, without
 * a driver's batching policy). Imported as `@hmmkit/example-minimal-mirror/fault-bottom-half`.
 */
import type { GpuDevice } from '@hmmkit/gpu';
import type { Task } from '@hmmkit/sim';

/** A fault service routine: 0, or a negative errno that makes the bottom half cancel the fault. */
export type FaultService = (va: number, access: number) => Promise<number>;

/**
 * The fault-buffer bottom half as a `name`d task: fetch a batch, sort it, service each fault
 * (cancel what fails), replay, until `stop()` holds once the buffer is drained.
 */
export function startFaultBottomHalf(
  dev: GpuDevice,
  name: string,
  service: FaultService,
  stop: () => boolean,
): Task {
  const sim = dev.sim;
  return sim.sched.spawn(name, async () => {
    const fb = dev.faultBuffer;
    const batch = dev.newFaultBatch();
    while (await fb.waitForFaults(stop)) {
      fb.fetch(batch);
      sim.charge(sim.costs.faultBatchFixedNs);
      batch.sort();
      for (let k = 0; k < batch.count; k++) {
        const i = batch.order[k]!;
        if ((await service(batch.va[i]!, batch.access[i]!)) !== 0)
          fb.cancel(batch.va[i]!, batch.instance[i]!);
      }
      fb.replay();
    }
  });
}
