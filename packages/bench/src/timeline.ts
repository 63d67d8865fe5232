/**
 * `--timeline FILE`: one experiment's simulated timeline as Chrome trace-event JSON (opens in
 * Perfetto, https://ui.perfetto.dev, and chrome://tracing). Timestamps are simulated time (µs in
 * the file, as the format wants). Built from the trace bus and the devices' own objects, without
 * changing any result:
 *
 * - per GPU (one process each): "fault handler" slices, one per fault batch (`svm.fault.batch`:
 *   entries fetched, unique pages serviced, evictions during the batch); "copy engine" slices,
 *   one per migration copy (H2D or D2H, bytes); "TLB" instants (range invalidates and full
 *   flushes); "replay" instants (`gpu.replay`) and cancels (`gpu.cancel`);
 * - the CPU (one process, one track per simulated thread — the scheduler task that ran): instants
 *   for each `mm.invalidate` (munmap, migrate, ...) and CPU page fault (`mm.fault`), and
 *   notifier invalidation slices from `notifier.invalidateStart` (emitted once the start
 *   callbacks ran) to `notifier.invalidateEnd`;
 * - a counter track of 2 MiB evictions (cumulative).
 *
 * The file keeps at most `maxEvents` events (default 200,000) and says so in its metadata when
 * it dropped some.
 *
 * @module
 */
import type { GpuDevice } from '@hmmkit/gpu';
import { mmuNotifyEventName } from '@hmmkit/notifier';
import type { Sim } from '@hmmkit/sim';

/** One Chrome trace event (the subset used here). */
export interface TraceEventJson {
  readonly name: string;
  readonly ph: 'X' | 'i' | 'C' | 'M';
  readonly ts: number;
  readonly pid: number;
  readonly tid: number;
  readonly dur?: number;
  readonly s?: 't' | 'p' | 'g';
  readonly cat?: string;
  readonly args?: Record<string, number | string>;
}

/** The JSON document. */
export interface ChromeTrace {
  readonly traceEvents: TraceEventJson[];
  readonly displayTimeUnit: 'ns';
  readonly otherData: Record<string, number | string>;
}

const CPU_PID = 0;
const TID = { handler: 1, copy: 2, tlb: 3, replay: 4, evictions: 9 } as const;
const us = (ns: number): number => ns / 1000;
const hex = (n: number): string => `0x${n.toString(16)}`;

/** Records one experiment's timeline (attach before the first phase, {@link toJson} at the end). */
export class TimelineRecorder {
  private readonly events: TraceEventJson[] = [];
  private dropped = 0;
  private readonly maxEvents: number;
  private readonly sim: Sim;
  private readonly cpuTid: () => number;

  constructor(sim: Sim, devices: readonly GpuDevice[], label: string, maxEvents = 200_000) {
    this.sim = sim;
    this.maxEvents = maxEvents;
    const meta = (pid: number, tid: number, what: 'process_name' | 'thread_name', name: string): void => {
      this.events.push({ name: what, ph: 'M', ts: 0, pid, tid, args: { name } });
    };
    meta(CPU_PID, 0, 'process_name', `CPU (${label})`);
    // one CPU track per simulated thread (scheduler task) that invalidates or faults
    const tids = new Map<string, number>();
    this.cpuTid = (): number => {
      const name = sim.sched.currentTask?.name ?? 'host';
      let tid = tids.get(name);
      if (tid === undefined) {
        tid = 10 + tids.size;
        tids.set(name, tid);
        meta(CPU_PID, tid, 'thread_name', `CPU thread ${name}`);
      }
      return tid;
    };
    let evictions = 0;
    const evictionCounter = (): number => sim.counters.snapshot()['svm.evictions'] ?? 0;
    for (const dev of devices) {
      const pid = dev.id + 1;
      meta(pid, 0, 'process_name', `GPU ${dev.id}`);
      meta(pid, TID.handler, 'thread_name', 'fault handler (batches)');
      meta(pid, TID.copy, 'thread_name', 'copy engine (migrations)');
      meta(pid, TID.tlb, 'thread_name', 'TLB invalidations');
      meta(pid, TID.replay, 'thread_name', 'replays / cancels');
      // every transfer goes through the engine's scheduler (submitH2d/D2h/D2d, timed copies); the
      // direction is read from the engine's byte counters, which the submitter bumps first
      const ce = dev.copyEngine as unknown as {
        schedule: (bytes: number) => { start: number; done: number; bytes: number };
        bytesH2d: { value: number };
        bytesD2h: { value: number };
      };
      const schedule = ce.schedule.bind(ce);
      let seenH2d = ce.bytesH2d.value;
      let seenD2h = ce.bytesD2h.value;
      ce.schedule = (bytes: number) => {
        const t = schedule(bytes);
        const dir = ce.bytesH2d.value !== seenH2d ? 'H2D' : ce.bytesD2h.value !== seenD2h ? 'D2H' : 'D2D';
        seenH2d = ce.bytesH2d.value;
        seenD2h = ce.bytesD2h.value;
        this.push({
          name: `copy ${dir}`,
          cat: 'migration',
          ph: 'X',
          ts: us(t.start),
          dur: us(t.done - t.start),
          pid,
          tid: TID.copy,
          args: { bytes: t.bytes },
        });
        return t;
      };
      const tlb = dev.tlb;
      const range = tlb.invalidateRange.bind(tlb);
      tlb.invalidateRange = (start: number, size: number): number => {
        this.instant('TLB invalidate', 'tlb', pid, TID.tlb, { start: hex(start), size });
        return range(start, size);
      };
      const all = tlb.invalidateAll.bind(tlb);
      tlb.invalidateAll = (): void => {
        this.instant('TLB flush', 'tlb', pid, TID.tlb, {});
        all();
      };
    }
    sim.trace.on('svm.fault.batch', (dev, entries, pages, t0, t1) => {
      const e = evictionCounter();
      this.push({
        name: 'fault batch',
        cat: 'fault',
        ph: 'X',
        ts: us(t0),
        dur: us(t1 - t0),
        pid: dev + 1,
        tid: TID.handler,
        args: { entries, pages, evictions: e - evictions },
      });
      if (e !== evictions) {
        this.push({
          name: 'evictions',
          ph: 'C',
          ts: us(t1),
          pid: dev + 1,
          tid: TID.evictions,
          args: { chunks: e },
        });
      }
      evictions = e;
    });
    sim.trace.on('gpu.replay', (generation) =>
      this.instant('replay', 'fault', 1, TID.replay, { generation }),
    );
    sim.trace.on('gpu.cancel', (va, _instance, warps) =>
      this.instant('cancel', 'fault', 1, TID.replay, { va: hex(va), warps }),
    );
    sim.trace.on('mm.invalidate', (_mm, event, start, end) =>
      this.instant(
        `invalidate ${mmuNotifyEventName(event as never)}`,
        'invalidation',
        CPU_PID,
        this.cpuTid(),
        {
          start: hex(start),
          bytes: end - start,
        },
      ),
    );
    sim.trace.on('mm.fault', (_mm, address, flags) =>
      this.instant('CPU fault', 'fault', CPU_PID, this.cpuTid(), { address: hex(address), flags }),
    );
    // notifier invalidations as slices from range_start's end (callbacks done) to range_end
    const open = new Map<string, { ts: number; hits: number }[]>();
    sim.trace.on('notifier.invalidateStart', (event, start, end, _seq, hits) => {
      const k = `${event}:${start}:${end}`;
      const list = open.get(k) ?? [];
      list.push({ ts: sim.now, hits });
      open.set(k, list);
    });
    sim.trace.on('notifier.invalidateEnd', (event, start, end) => {
      const o = open.get(`${event}:${start}:${end}`)?.pop();
      if (o === undefined) return; // a start that failed (-EAGAIN) has no slice
      this.push({
        name: `invalidate ${mmuNotifyEventName(event as never)}`,
        cat: 'invalidation',
        ph: 'X',
        ts: us(o.ts),
        dur: us(sim.now - o.ts),
        pid: CPU_PID,
        tid: this.cpuTid(),
        args: { start: hex(start), bytes: end - start, subscriptions: o.hits },
      });
    });
  }

  private instant(
    name: string,
    cat: string,
    pid: number,
    tid: number,
    args: Record<string, number | string>,
  ): void {
    this.push({ name, cat, ph: 'i', s: 't', ts: us(this.sim.now), pid, tid, args });
  }

  private push(e: TraceEventJson): void {
    if (this.events.length < this.maxEvents) this.events.push(e);
    else this.dropped++;
  }

  /** The recorded timeline. */
  toJson(): ChromeTrace {
    return {
      traceEvents: this.events,
      displayTimeUnit: 'ns',
      otherData: {
        producer: 'hmmkit --timeline',
        clock: 'simulated time',
        droppedEvents: this.dropped,
      },
    };
  }
}
