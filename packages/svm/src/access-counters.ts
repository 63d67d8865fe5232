/**
 * Access counters (NVIDIA UVM, Volta and later; uvm_gpu_access_counters.c): the GPU counts its
 * accesses to *remote* memory it maps without faulting — system memory, or a peer's VRAM, through
 * an accessed-by mapping — per region of `granularity` bytes; when a region's count reaches
 * `threshold` the GPU writes a notification to the access-counter buffer and resets the count.
 * The driver's handler services the buffer: it migrates each notified region to the GPU's VRAM
 * (and maps it there, plus its accessed-by devices) — migration driven by use instead of a fault.
 *
 * Model: the counting listens to the engine's `gpu.access` trace event (the same per-access hook
 * the coherence oracle uses) and counts the accesses served through the SYS / SYS_NC / PEER
 * apertures; it is opt-in (`accessCounters` option) because listening makes every access traced.
 * Counts live in a per-device Map keyed by region (hardware has a fixed set of counters; UVM's
 * default granularity is 2 MiB and threshold 256). Notifications go to a per-device queue that
 * {@link startAccessCounterHandler} drains; the notifications of a region already queued merge.
 *
 * @module
 */

import { APERTURE, type GpuEngine } from '@hmmkit/gpu';
import { ArgumentError, type Task, WaitQueue } from '@hmmkit/sim';
import { deviceLoc } from './attrs.ts';
import { MIGRATE_TRIGGER } from './events.ts';
import type { GpuSvm } from './gpusvm.ts';
import { PAGE_SIZE } from './granule.ts';
import { prefetchIn } from './migrate.ts';

/** Options of access counters (`GpuSvmOptions.accessCounters`). */
export interface AccessCounterOptions {
  /** Region size in bytes: a power of two from 64 KiB to 2 MiB (UVM: 64K, 2M, 16M, 16G; default 2 MiB). */
  readonly granularity?: number;
  /** Remote accesses to a region that raise a notification (UVM default 256). */
  readonly threshold?: number;
}

/** Access-counter state of one GpuSvm. */
export class AccessCounters {
  readonly granularity: number;
  readonly threshold: number;
  /** Per device: region index → remote accesses since the last notification. */
  readonly counts: Map<number, number>[];
  /** Per device: notified region indices waiting for the handler (the notification buffer). */
  readonly pending: number[][];
  /** Notifications raised, per device. */
  readonly notifications: Uint32Array;
  /** Regions migrated by the handler, per device. */
  readonly migrations: Uint32Array;
  /** @internal Woken when a notification is queued. */
  readonly wq: WaitQueue;
  /** @internal Stops the counting. */
  off: (() => void) | null = null;

  constructor(svm: GpuSvm, opts: AccessCounterOptions) {
    const fn = 'GpuSvm';
    const g = opts.granularity ?? 2 << 20;
    if (!Number.isInteger(g) || g < 64 << 10 || g > 2 << 20 || (g & (g - 1)) !== 0) {
      throw new ArgumentError(
        fn,
        'accessCounters.granularity',
        'must be a power of two in [64 KiB, 2 MiB]',
        g,
      );
    }
    const t = opts.threshold ?? 256;
    if (!Number.isInteger(t) || t < 1 || t > 65535) {
      throw new ArgumentError(fn, 'accessCounters.threshold', 'must be an integer in [1, 65535]', t);
    }
    this.granularity = g;
    this.threshold = t;
    const n = svm.devices.length;
    this.counts = Array.from({ length: n }, () => new Map<number, number>());
    this.pending = Array.from({ length: n }, () => []);
    this.notifications = new Uint32Array(n);
    this.migrations = new Uint32Array(n);
    this.wq = new WaitQueue(svm.mm.sim.sched);
    const engines: GpuEngine[] = svm.devices.map((d) => d.engine);
    this.off = svm.mm.sim.trace.on('gpu.access', (e, va, _access, aperture) => {
      if (aperture !== APERTURE.SYS && aperture !== APERTURE.SYS_NC && aperture !== APERTURE.PEER) return;
      const d = engines.indexOf(e);
      if (d < 0) return;
      const region = Math.floor(va / this.granularity);
      const m = this.counts[d]!;
      const c = (m.get(region) ?? 0) + 1;
      if (c < this.threshold) {
        m.set(region, c);
        return;
      }
      m.delete(region);
      this.notifications[d]!++;
      const q = this.pending[d]!;
      if (!q.includes(region)) q.push(region);
      this.wq.wakeUpAll();
    });
  }
}

/**
 * Spawns device `devIndex`'s access-counter handler (uvm_gpu_service_access_counters): waits for
 * notifications and migrates each notified region, clipped to the managed VA, to the device's
 * VRAM and maps it (trigger {@link MIGRATE_TRIGGER.ACCESS_COUNTER}); a region whose pages are all
 * on the device already, or without VMAs, moves nothing. Ends when `stop()` holds and the queue is
 * empty.
 */
export function startAccessCounterHandler(svm: GpuSvm, devIndex: number, stop: () => boolean): Task {
  const ac = svm.accessCounters;
  const dev = svm.devices[devIndex];
  if (dev === undefined) {
    throw new ArgumentError('GpuSvm.startAccessCounterHandler', 'devIndex', 'no such device', devIndex);
  }
  if (ac === null || svm.devmem[devIndex] === undefined) {
    throw new ArgumentError(
      'GpuSvm.startAccessCounterHandler',
      'devIndex',
      'needs the accessCounters option and device memory',
      devIndex,
    );
  }
  const sim = svm.mm.sim;
  return sim.sched.spawn(`svm-access-counters-${dev.id}`, async () => {
    const q = ac.pending[devIndex]!;
    for (;;) {
      if (q.length === 0) {
        if (stop()) return;
        await ac.wq.waitEvent(() => q.length > 0 || stop());
        continue;
      }
      const region = q.shift()!;
      const start = Math.max(region * ac.granularity, svm.mmStart);
      const end = Math.min(start - (start % ac.granularity) + ac.granularity, svm.mmEnd);
      if (end - start < PAGE_SIZE) continue;
      const moved = await prefetchIn(
        svm,
        start,
        end,
        deviceLoc(devIndex),
        MIGRATE_TRIGGER.ACCESS_COUNTER,
        true,
      );
      if (moved > 0) ac.migrations[devIndex]!++;
    }
  });
}
