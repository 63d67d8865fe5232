/**
 * Invalidation dispatch and the read side with 10^2 .. 10^6 interval notifiers.
 *
 * - dispatch-hit: one invalidation of a 2 MiB window that overlaps ~1 notifier (start → end),
 *   against a baseline of the same number of callback calls made directly (no tree, no protocol):
 *   the ratio is the protocol's overhead per invalidation at that population.
 * - dispatch-miss: an invalidation that overlaps nothing (the common case for an mm with a GPU
 *   mirror of a few ranges): the cost is the tree probe.
 * - readBegin+readRetry: the driver's read side, against reading a plain field twice.
 *
 * Run: pnpm --filter @hmmkit/notifier bench  (or: tsx bench/notifier.bench.ts)
 * SIZES=1000,1000000 picks the populations; ORDER=address inserts the notifiers in address order
 * (so their objects and tree records lie in memory in the order the queries visit them) instead
 * of the default shuffled order: the difference is what memory locality costs at 10^6.
 */
import { createSim, RwSemaphore } from '@hmmkit/sim';
import { Bench } from 'tinybench';
import {
  MmuIntervalNotifier,
  type MmuIntervalNotifierOps,
  MmuNotifyEvent,
  mmuIntervalNotifierInsert,
  mmuIntervalReadBegin,
  mmuIntervalReadRetry,
  mmuIntervalSetSeq,
  mmuNotifierInvalidateRangeEnd,
  mmuNotifierInvalidateRangeStart,
  mmuNotifierRangeInit,
  type NotifierMm,
} from '../src/index.ts';

const SIZES = (process.env.SIZES ?? '100,1000,10000,100000,1000000').split(',').map(Number);
const ORDER = process.env.ORDER ?? 'shuffled';
const K = 256; // operations per timed sample
const WINDOW = 2 * 1024 * 1024;
let sink = 0;

const ops: MmuIntervalNotifierOps = {
  invalidate(sub, _range, seq) {
    mmuIntervalSetSeq(sub, seq);
    sink++;
    return true;
  },
};

async function setup(n: number) {
  const sim = createSim({ costs: { notifierCallbackNs: 0 } });
  const mm: NotifierMm = {
    sim,
    mmapLock: new RwSemaphore(sim.sched),
    mmUsers: 1,
    notifierSubscriptions: null,
  };
  const subs: MmuIntervalNotifier[] = [];
  // One 2 MiB-aligned notifier per window, spread over a 47-bit VA in a shuffled insertion order
  // (or address order with ORDER=address).
  const stride = Math.floor(2 ** 46 / n / WINDOW) * WINDOW;
  for (let i = 0; i < n; i++) {
    const s = new MmuIntervalNotifier();
    const slot = ORDER === 'address' ? i : (i * 7919) % n;
    await mmuIntervalNotifierInsert(s, mm, slot * stride, WINDOW, ops);
    subs.push(s);
  }
  return { mm, subs, stride };
}

const rows: Record<string, string | number>[] = [];
for (const n of SIZES) {
  const { mm, subs, stride } = await setup(n);
  const bench = new Bench({ time: 300, warmupTime: 50, timestampProvider: 'hrtimeNow' });
  let q = 0;
  bench
    .add('dispatch-hit', async () => {
      for (let i = 0; i < K; i++) {
        const start = (q++ % n) * stride;
        const r = mmuNotifierRangeInit(MmuNotifyEvent.CLEAR, 0, mm, start, start + WINDOW);
        await mmuNotifierInvalidateRangeStart(r);
        await mmuNotifierInvalidateRangeEnd(r);
      }
    })
    .add('direct-call (baseline)', async () => {
      for (let i = 0; i < K; i++) {
        const s = subs[q++ % n]!;
        await ops.invalidate(s, undefined as never, 3);
      }
    })
    .add('dispatch-miss', async () => {
      for (let i = 0; i < K; i++) {
        const start = (q++ % n) * stride + WINDOW; // the gap after a notifier
        const r = mmuNotifierRangeInit(MmuNotifyEvent.CLEAR, 0, mm, start, start + 4096);
        await mmuNotifierInvalidateRangeStart(r);
        await mmuNotifierInvalidateRangeEnd(r);
      }
    })
    .add('readBegin+readRetry', async () => {
      for (let i = 0; i < K; i++) {
        const s = subs[q++ % n]!;
        const seq = await mmuIntervalReadBegin(s);
        if (mmuIntervalReadRetry(s, seq)) sink++;
      }
    })
    .add('field read x2 (baseline)', async () => {
      for (let i = 0; i < K; i++) {
        const s = subs[q++ % n]!;
        const seq = await Promise.resolve(s.invalidateSeq);
        if (s.invalidateSeq !== seq) sink++;
      }
    });
  await bench.run();
  const ns = (name: string) =>
    ((bench.getTask(name)!.result as { latency: { mean: number } }).latency.mean * 1e6) / K;
  rows.push({
    notifiers: n,
    'hit ns/op': ns('dispatch-hit').toFixed(0),
    'hit / direct call': (ns('dispatch-hit') / ns('direct-call (baseline)')).toFixed(2),
    'miss ns/op': ns('dispatch-miss').toFixed(0),
    'read side ns/op': ns('readBegin+readRetry').toFixed(0),
    'read / field read': (ns('readBegin+readRetry') / ns('field read x2 (baseline)')).toFixed(2),
  });
}
console.table(rows);
if (sink === -1) console.log(sink);
