/** Test fixtures: a minimal mm and a minimal mirroring driver on top of the notifier. */
import { createSim, Mutex, RwSemaphore, type Sim } from '@hmmkit/sim';
import {
  MmuIntervalNotifier,
  type MmuNotifierRange,
  type MmuNotifyEvent,
  mmuIntervalReadBegin,
  mmuIntervalReadRetry,
  mmuIntervalSetSeq,
  mmuNotifierInvalidateRangeEnd,
  mmuNotifierInvalidateRangeStart,
  mmuNotifierRangeInit,
  type NotifierMm,
} from '../src/index.ts';

/** A bare NotifierMm with a CPU "page table" of `pages` entries (value 0 = not mapped). */
export interface FakeMm extends NotifierMm {
  readonly pte: Int32Array;
}

export function fakeMm(sim: Sim = createSim(), pages = 16): FakeMm {
  return {
    sim,
    mmapLock: new RwSemaphore(sim.sched, 'mmap_lock'),
    mmUsers: 1,
    notifierSubscriptions: null,
    pte: new Int32Array(pages),
  };
}

export const PAGE = 4096;

/** Runs a whole start → change → end invalidation of [start, end) like an mm operation would. */
export async function invalidate(
  mm: NotifierMm,
  start: number,
  end: number,
  event: MmuNotifyEvent,
  change: () => void | Promise<void> = () => {},
  owner: unknown = null,
): Promise<MmuNotifierRange> {
  const range = mmuNotifierRangeInit(event, 0, mm, start, end, owner);
  await mmuNotifierInvalidateRangeStart(range);
  await change();
  await mmuNotifierInvalidateRangeEnd(range);
  return range;
}

/**
 * The smallest mirroring driver: a device page table (`dev`) kept coherent with `mm.pte` by the
 * hmm.rst protocol. `checkRetry: false` builds the classic bug: it programs without read_retry.
 */
export class MiniMirror {
  readonly sub = new MmuIntervalNotifier();
  readonly lock: Mutex;
  readonly dev: Int32Array;
  readonly events: { event: number; start: number; end: number; seq: number }[] = [];
  retries = 0;

  readonly mm: FakeMm;
  readonly checkRetry: boolean;

  constructor(mm: FakeMm, checkRetry = true) {
    this.mm = mm;
    this.checkRetry = checkRetry;
    this.lock = new Mutex(mm.sim.sched, 'driver->update');
    this.dev = new Int32Array(mm.pte.length);
  }

  ops = {
    invalidate: async (sub: MmuIntervalNotifier, range: MmuNotifierRange, curSeq: number) => {
      await this.lock.lock();
      mmuIntervalSetSeq(sub, curSeq);
      this.events.push({ event: range.event, start: range.start, end: range.end, seq: curSeq });
      for (let p = range.start / PAGE; p < range.end / PAGE && p < this.dev.length; p++) this.dev[p] = 0;
      this.lock.unlock();
      return true;
    },
  };

  /** Mirrors page `page` into the device table, retrying on collision. */
  async fault(page: number): Promise<void> {
    for (;;) {
      const seq = await mmuIntervalReadBegin(this.sub);
      const value = this.mm.pte[page]!; // hmm_range_fault's snapshot
      await this.mm.sim.sched.yield(); // the window an invalidation can race into
      await this.lock.lock();
      if (this.checkRetry && mmuIntervalReadRetry(this.sub, seq)) {
        this.lock.unlock();
        this.retries++;
        continue;
      }
      this.dev[page] = value;
      this.lock.unlock();
      return;
    }
  }
}
