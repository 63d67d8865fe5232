/**
 * Copy engines: DMA between caller-supplied "system" byte buffers and VRAM, and within VRAM.
 * A transfer takes `transferTimeNs(costs, bytes)` (the UVMSmart atan bandwidth curve with a
 * `copyFixedNs` floor). Each engine does one transfer at a time; a transfer queues on the
 * engine that frees up first. Data moves when the transfer is submitted (the simulation has no
 * concurrent writer that could observe the difference); time is what queues.
 *
 * @module
 */
import { ArgumentError, type Counter, type Sim, transferTimeNs } from '@hmmkit/sim';
import type { Vram } from './vram.ts';

/** A submitted transfer. */
export interface CopyTicket {
  readonly engine: number;
  /** Virtual time the transfer starts (after queueing). */
  readonly start: number;
  /** Virtual time it completes. */
  readonly done: number;
  readonly bytes: number;
}

/** Direction of a transfer: host to device, device to host, or within VRAM. */
export type CopyDirection = 'h2d' | 'd2h' | 'd2d';

/** A device's copy engines. */
export class CopyEngine {
  readonly sim: Sim;
  readonly vram: Vram;
  /** Time at which each engine becomes free. */
  readonly busyUntil: Float64Array;
  readonly bytesH2d: Counter;
  readonly bytesD2h: Counter;
  readonly transfers: Counter;
  /** Total ns transfers waited in queue. */
  queuedNs = 0;

  constructor(sim: Sim, vram: Vram, engines = 1, counterPrefix = 'gpu') {
    if (!Number.isInteger(engines) || engines < 1) {
      throw new ArgumentError('CopyEngine', 'engines', 'must be a positive integer', engines);
    }
    this.sim = sim;
    this.vram = vram;
    this.busyUntil = new Float64Array(engines);
    this.bytesH2d = sim.counters.counter(`${counterPrefix}.ce.bytesH2d`);
    this.bytesD2h = sim.counters.counter(`${counterPrefix}.ce.bytesD2h`);
    this.transfers = sim.counters.counter(`${counterPrefix}.ce.transfers`);
  }

  /** Number of engines. */
  get engines(): number {
    return this.busyUntil.length;
  }

  private schedule(bytes: number): CopyTicket {
    let e = 0;
    for (let i = 1; i < this.busyUntil.length; i++) if (this.busyUntil[i]! < this.busyUntil[e]!) e = i;
    const now = this.sim.now;
    const start = Math.max(now, this.busyUntil[e]!);
    const done = start + transferTimeNs(this.sim.costs, bytes);
    this.busyUntil[e] = done;
    this.queuedNs += start - now;
    this.transfers.value++;
    return { engine: e, start, done, bytes };
  }

  /**
   * Submits a host-to-device copy of `bytes` from `src[srcOff..]` (null = a zero page source)
   * to VRAM at `dstPa`. Returns the ticket; the caller waits with {@link wait}.
   */
  submitH2d(src: Uint8Array | null, srcOff: number, dstPa: number, bytes: number): CopyTicket {
    checkLen('submitH2d', bytes);
    if (src !== null && (srcOff < 0 || srcOff + bytes > src.length)) {
      throw new ArgumentError('submitH2d', 'srcOff', 'source range must lie inside src', srcOff);
    }
    this.vram.write(dstPa, src === null ? null : src.subarray(srcOff, srcOff + bytes), bytes);
    this.bytesH2d.add(bytes);
    return this.schedule(bytes);
  }

  /** Submits a device-to-host copy of `bytes` from VRAM at `srcPa` into `dst[dstOff..]`. */
  submitD2h(srcPa: number, dst: Uint8Array, dstOff: number, bytes: number): CopyTicket {
    checkLen('submitD2h', bytes);
    if (dstOff < 0 || dstOff + bytes > dst.length) {
      throw new ArgumentError('submitD2h', 'dstOff', 'destination range must lie inside dst', dstOff);
    }
    this.vram.read(srcPa, bytes, dst.subarray(dstOff, dstOff + bytes));
    this.bytesD2h.add(bytes);
    return this.schedule(bytes);
  }

  /** Submits a VRAM-to-VRAM copy (pages never written copy as zeros and allocate nothing). */
  submitD2d(srcPa: number, dstPa: number, bytes: number): CopyTicket {
    checkLen('submitD2d', bytes);
    this.vram.copyWithin(dstPa, srcPa, bytes);
    return this.schedule(bytes);
  }

  /**
   * Submits a timing-only transfer: charges `bytes` of `direction` on the engines exactly as a
   * copy of that size would (queueing, {@link transferTimeNs}, the byte counter of the direction,
   * `transfers`) and moves no data. For callers that already moved the bytes page by page (or
   * had none to move: pages never written) and need the transfer's time.
   */
  submitTimed(bytes: number, direction: CopyDirection): CopyTicket {
    checkLen('submitTimed', bytes);
    if (direction === 'h2d') this.bytesH2d.add(bytes);
    else if (direction === 'd2h') this.bytesD2h.add(bytes);
    else if (direction !== 'd2d')
      throw new ArgumentError('submitTimed', 'direction', "must be 'h2d', 'd2h' or 'd2d'", direction);
    return this.schedule(bytes);
  }

  /** Submits a timing-only transfer ({@link submitTimed}) and waits for it. */
  async copyTimed(bytes: number, direction: CopyDirection): Promise<CopyTicket> {
    const t = this.submitTimed(bytes, direction);
    await this.wait(t);
    return t;
  }

  /** Waits (scheduler sleep, or clock advance outside a run) until `ticket` is done. */
  async wait(ticket: CopyTicket): Promise<void> {
    const d = ticket.done - this.sim.now;
    if (d > 0) await this.sim.sched.sleep(d);
  }

  /** Submits an H2D copy and waits for it. */
  async copyH2d(src: Uint8Array | null, srcOff: number, dstPa: number, bytes: number): Promise<CopyTicket> {
    const t = this.submitH2d(src, srcOff, dstPa, bytes);
    await this.wait(t);
    return t;
  }

  /** Submits a D2H copy and waits for it. */
  async copyD2h(srcPa: number, dst: Uint8Array, dstOff: number, bytes: number): Promise<CopyTicket> {
    const t = this.submitD2h(srcPa, dst, dstOff, bytes);
    await this.wait(t);
    return t;
  }

  /** Time at which every engine is idle. */
  get idleAt(): number {
    let m = 0;
    for (let i = 0; i < this.busyUntil.length; i++) m = Math.max(m, this.busyUntil[i]!);
    return m;
  }
}

function checkLen(fn: string, bytes: number): void {
  if (!Number.isSafeInteger(bytes) || bytes <= 0)
    throw new ArgumentError(fn, 'bytes', 'must be a positive integer', bytes);
}
