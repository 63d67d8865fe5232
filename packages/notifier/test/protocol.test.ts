import { ArgumentError, createSim, Errno, StateError } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  MmuIntervalNotifier,
  MmuNotifier,
  MmuNotifyEvent,
  mmHasNotifiers,
  mmuIntervalCheckRetry,
  mmuIntervalNotifierInsert,
  mmuIntervalNotifierInsertLocked,
  mmuIntervalNotifierRemove,
  mmuIntervalReadBegin,
  mmuIntervalReadRetry,
  mmuIntervalSetSeq,
  mmuNotifierClearFlushYoung,
  mmuNotifierClearYoung,
  mmuNotifierInvalidateRangeEnd,
  mmuNotifierInvalidateRangeStart,
  mmuNotifierInvalidateRangeStartNonblock,
  mmuNotifierRangeInit,
  mmuNotifierRegister,
  mmuNotifierRelease,
  mmuNotifierTestYoung,
  mmuNotifierUnregister,
} from '../src/index.ts';
import { fakeMm, invalidate, MiniMirror, PAGE } from './helpers.ts';

/** An interval notifier whose callback records (event, curSeq) and sets the seq. */
function recorder() {
  const calls: { event: number; start: number; end: number; seq: number; owner: unknown }[] = [];
  const sub = new MmuIntervalNotifier();
  const ops = {
    invalidate(
      s: MmuIntervalNotifier,
      range: { event: number; start: number; end: number; owner: unknown },
      seq: number,
    ) {
      mmuIntervalSetSeq(s, seq);
      calls.push({ event: range.event, start: range.start, end: range.end, seq, owner: range.owner });
      return true;
    },
  };
  return { sub, ops, calls };
}

describe('subscriptions', () => {
  it('are created lazily by the first registration, with the global sequence at 2', async () => {
    const mm = fakeMm();
    expect(mmHasNotifiers(mm)).toBe(false);
    const { sub, ops } = recorder();
    expect(await mmuIntervalNotifierInsert(sub, mm, 0, PAGE, ops)).toBe(0);
    expect(mmHasNotifiers(mm)).toBe(true);
    expect(mm.notifierSubscriptions!.invalidateSeq).toBe(2);
    expect(mm.notifierSubscriptions!.hasItree).toBe(true);
    expect(mm.mmapLock.isLocked).toBe(false);
  });

  it('an invalidation with no subscriptions does nothing', async () => {
    const mm = fakeMm();
    await invalidate(mm, 0, PAGE, MmuNotifyEvent.CLEAR);
    expect(mm.notifierSubscriptions).toBeNull();
  });
});

describe('sequence numbers', () => {
  it('a notifier inserted while idle gets global − 1 (odd, not equal), so read_begin does not wait', async () => {
    const mm = fakeMm();
    const { sub, ops } = recorder();
    await mmuIntervalNotifierInsert(sub, mm, 0, 4 * PAGE, ops);
    expect(sub.invalidateSeq).toBe(1);
    expect(await mmuIntervalReadBegin(sub)).toBe(1);
    expect(mm.sim.counters.get('notifier.readBeginWaits')).toBe(0);
  });

  it('an overlapping invalidation makes the global sequence odd, hands it to the callback, and even again at end', async () => {
    const mm = fakeMm();
    const { sub, ops, calls } = recorder();
    await mmuIntervalNotifierInsert(sub, mm, 0, 4 * PAGE, ops);
    const seq = await mmuIntervalReadBegin(sub);
    const subs = mm.notifierSubscriptions!;
    let during = 0;
    await invalidate(mm, PAGE, 2 * PAGE, MmuNotifyEvent.CLEAR, () => {
      during = subs.invalidateSeq;
      expect(subs.activeInvalidateRanges).toBe(1);
    });
    expect(during).toBe(3);
    expect(calls).toEqual([{ event: MmuNotifyEvent.CLEAR, start: PAGE, end: 2 * PAGE, seq: 3, owner: null }]);
    expect(subs.invalidateSeq).toBe(4);
    expect(subs.activeInvalidateRanges).toBe(0);
    expect(mmuIntervalReadRetry(sub, seq)).toBe(true);
    expect(mmuIntervalCheckRetry(sub, seq)).toBe(true);
    // A new read section after the invalidation is clean.
    const seq2 = await mmuIntervalReadBegin(sub);
    expect(seq2).toBe(3);
    expect(mmuIntervalReadRetry(sub, seq2)).toBe(false);
  });

  it('a non-overlapping invalidation leaves the sequence even and calls nobody', async () => {
    const mm = fakeMm();
    const { sub, ops, calls } = recorder();
    await mmuIntervalNotifierInsert(sub, mm, 0, PAGE, ops);
    const seq = await mmuIntervalReadBegin(sub);
    await invalidate(mm, PAGE, 2 * PAGE, MmuNotifyEvent.UNMAP, () => {
      expect(mm.notifierSubscriptions!.invalidateSeq).toBe(2);
    });
    expect(calls).toHaveLength(0);
    expect(mm.notifierSubscriptions!.invalidateSeq).toBe(2);
    expect(mmuIntervalReadRetry(sub, seq)).toBe(false);
  });

  it('a missing invalidation still counts as active: a notifier inserted during it starts odd (fast miss path)', async () => {
    const mm = fakeMm();
    const { sub, ops, calls } = recorder();
    await mmuIntervalNotifierInsert(sub, mm, 0, PAGE, ops);
    const subs = mm.notifierSubscriptions!;
    const events: number[] = [];
    mm.sim.trace.on('notifier.invalidateStart', (_e, _s, _x, seq, hits) => events.push(seq, hits));
    const r = mmuNotifierRangeInit(MmuNotifyEvent.UNMAP, 0, mm, 8 * PAGE, 9 * PAGE);
    await mmuNotifierInvalidateRangeStart(r);
    expect(subs.activeInvalidateRanges).toBe(1);
    expect(events).toEqual([2, 0]);
    // the kernel cannot know the running range: a new notifier assumes it is covered
    const late = new MmuIntervalNotifier();
    await mmuIntervalNotifierInsert(late, mm, 8 * PAGE, PAGE, ops);
    expect(subs.invalidateSeq).toBe(3);
    expect(late.invalidateSeq).toBe(3);
    await mmuNotifierInvalidateRangeEnd(r);
    expect(subs.activeInvalidateRanges).toBe(0);
    expect(subs.invalidateSeq).toBe(4);
    expect(calls).toHaveLength(0);
    expect(mm.sim.counters.get('notifier.invalidations')).toBe(1);
  });

  it('the range [start, end) is exclusive at end: an invalidation ending where a notifier starts misses it', async () => {
    const mm = fakeMm();
    const { sub, ops, calls } = recorder();
    await mmuIntervalNotifierInsert(sub, mm, 2 * PAGE, PAGE, ops);
    await invalidate(mm, 0, 2 * PAGE, MmuNotifyEvent.CLEAR);
    expect(calls).toHaveLength(0);
    await invalidate(mm, 0, 2 * PAGE + 1, MmuNotifyEvent.CLEAR);
    expect(calls).toHaveLength(1);
  });

  it('overlapping concurrent invalidations share one odd sequence; it advances when the last one ends', async () => {
    const mm = fakeMm();
    const { sub, ops, calls } = recorder();
    await mmuIntervalNotifierInsert(sub, mm, 0, 8 * PAGE, ops);
    const subs = mm.notifierSubscriptions!;
    const a = mmuNotifierRangeInit(MmuNotifyEvent.CLEAR, 0, mm, 0, PAGE);
    const b = mmuNotifierRangeInit(MmuNotifyEvent.UNMAP, 0, mm, 4 * PAGE, 5 * PAGE);
    await mmuNotifierInvalidateRangeStart(a);
    await mmuNotifierInvalidateRangeStart(b);
    expect(calls.map((c) => c.seq)).toEqual([3, 3]);
    expect(subs.activeInvalidateRanges).toBe(2);
    await mmuNotifierInvalidateRangeEnd(a);
    expect(subs.invalidateSeq).toBe(3);
    await mmuNotifierInvalidateRangeEnd(b);
    expect(subs.invalidateSeq).toBe(4);
  });

  it('an invalidation that hits nothing, overlapping one that hits, still ends on the shared odd value', async () => {
    const mm = fakeMm();
    const { sub, ops } = recorder();
    await mmuIntervalNotifierInsert(sub, mm, 0, PAGE, ops);
    const subs = mm.notifierSubscriptions!;
    const miss = mmuNotifierRangeInit(MmuNotifyEvent.CLEAR, 0, mm, 8 * PAGE, 9 * PAGE);
    const hit = mmuNotifierRangeInit(MmuNotifyEvent.CLEAR, 0, mm, 0, PAGE);
    await mmuNotifierInvalidateRangeStart(miss);
    expect(subs.invalidateSeq).toBe(2); // partially excluded
    await mmuNotifierInvalidateRangeStart(hit);
    expect(subs.invalidateSeq).toBe(3); // fully excluded
    await mmuNotifierInvalidateRangeEnd(hit);
    expect(subs.invalidateSeq).toBe(3); // `miss` is still active
    await mmuNotifierInvalidateRangeEnd(miss);
    expect(subs.invalidateSeq).toBe(4);
  });
});

describe('deferred insert and remove', () => {
  it('an insert during a fully-excluded invalidation is deferred and its read_begin waits for the end', async () => {
    const sim = createSim({ seed: 3, costs: { notifierCallbackNs: 0 } });
    const mm = fakeMm(sim);
    const a = recorder();
    await mmuIntervalNotifierInsert(a.sub, mm, 0, PAGE, a.ops);
    const subs = mm.notifierSubscriptions!;
    const b = recorder();
    const log: string[] = [];
    sim.sched.spawn('mm', async () => {
      await invalidate(mm, 0, PAGE, MmuNotifyEvent.CLEAR, async () => {
        expect(await mmuIntervalNotifierInsert(b.sub, mm, 0, PAGE, b.ops)).toBe(0);
        expect(b.sub.isInserted).toBe(true);
        expect(b.sub.node).toBeNull(); // not in the tree yet
        expect(subs.deferredList).toEqual([b.sub]);
        expect(b.sub.invalidateSeq).toBe(subs.invalidateSeq);
        await sim.sched.sleep(1000);
        log.push(`end@${sim.now}`);
      });
    });
    sim.sched.spawn('reader', async () => {
      while (!b.sub.isInserted) await sim.sched.yield();
      const seq = await mmuIntervalReadBegin(b.sub);
      log.push(`readBegin@${sim.now} seq ${seq}`);
    });
    await sim.sched.run();
    expect(log).toEqual(['end@1000', 'readBegin@1000 seq 3']);
    expect(b.sub.node).not.toBeNull();
    expect(subs.itree.size).toBe(2);
    expect(subs.deferredList).toHaveLength(0);
    expect(b.calls).toHaveLength(0); // it missed the invalidation that was already running
  });

  it('an insert during a partially-excluded invalidation goes in now and forces the sequence odd', async () => {
    const mm = fakeMm();
    const a = recorder();
    await mmuIntervalNotifierInsert(a.sub, mm, 0, PAGE, a.ops);
    const subs = mm.notifierSubscriptions!;
    const b = recorder();
    await invalidate(mm, 8 * PAGE, 9 * PAGE, MmuNotifyEvent.CLEAR, async () => {
      expect(subs.invalidateSeq).toBe(2);
      await mmuIntervalNotifierInsert(b.sub, mm, 16 * PAGE, PAGE, b.ops);
      expect(subs.invalidateSeq).toBe(3);
      expect(b.sub.node).not.toBeNull();
      expect(b.sub.invalidateSeq).toBe(3);
    });
    expect(subs.invalidateSeq).toBe(4);
  });

  it('a remove during an invalidation is deferred and waits for the end; no callback runs after it returns', async () => {
    const sim = createSim({ seed: 9, costs: { notifierCallbackNs: 0 } });
    const mm = fakeMm(sim);
    const a = recorder();
    await mmuIntervalNotifierInsert(a.sub, mm, 0, PAGE, a.ops);
    const subs = mm.notifierSubscriptions!;
    const log: string[] = [];
    sim.sched.spawn('mm', async () => {
      await invalidate(mm, 0, PAGE, MmuNotifyEvent.CLEAR, async () => {
        await sim.sched.sleep(500);
        log.push(`end@${sim.now}`);
      });
    });
    sim.sched.spawn('driver', async () => {
      while (subs.activeInvalidateRanges === 0) await sim.sched.yield();
      await mmuIntervalNotifierRemove(a.sub);
      log.push(`removed@${sim.now}`);
      expect(a.sub.isInserted).toBe(false);
    });
    await sim.sched.run();
    expect(log).toEqual(['end@500', 'removed@500']);
    expect(subs.itree.size).toBe(0);
    await invalidate(mm, 0, PAGE, MmuNotifyEvent.CLEAR);
    expect(a.calls).toHaveLength(1);
  });

  it('removing a notifier whose insert is still deferred cancels the insert at once', async () => {
    const mm = fakeMm();
    const a = recorder();
    await mmuIntervalNotifierInsert(a.sub, mm, 0, PAGE, a.ops);
    const subs = mm.notifierSubscriptions!;
    const b = recorder();
    await invalidate(mm, 0, PAGE, MmuNotifyEvent.CLEAR, async () => {
      await mmuIntervalNotifierInsert(b.sub, mm, 0, PAGE, b.ops);
      await mmuIntervalNotifierRemove(b.sub); // must not wait: this very invalidation holds the seq
      expect(subs.deferredList).toHaveLength(0);
    });
    expect(subs.itree.size).toBe(1);
    expect(b.sub.isInserted).toBe(false);
  });
});

describe('read_begin', () => {
  it('waits while its own notifier is being invalidated, and only then', async () => {
    const sim = createSim({ seed: 1, costs: { notifierCallbackNs: 0 } });
    const mm = fakeMm(sim);
    const hot = recorder();
    const cold = recorder();
    await mmuIntervalNotifierInsert(hot.sub, mm, 0, PAGE, hot.ops);
    await mmuIntervalNotifierInsert(cold.sub, mm, 4 * PAGE, PAGE, cold.ops);
    const log: string[] = [];
    sim.sched.spawn('mm', async () => {
      await invalidate(mm, 0, PAGE, MmuNotifyEvent.CLEAR, () => sim.sched.sleep(700));
    });
    sim.sched.spawn('readers', async () => {
      while (hot.calls.length === 0) await sim.sched.yield();
      await mmuIntervalReadBegin(cold.sub);
      log.push(`cold@${sim.now}`);
      await mmuIntervalReadBegin(hot.sub);
      log.push(`hot@${sim.now}`);
    });
    await sim.sched.run();
    expect(log).toEqual(['cold@0', 'hot@700']);
    expect(sim.counters.get('notifier.readBeginWaits')).toBe(1);
  });
});

describe('blockable and non-blockable invalidation', () => {
  it('non-blockable: a callback that cannot lock returns false → -EAGAIN, and the interval part is undone', async () => {
    const mm = fakeMm();
    const busy = new MmuIntervalNotifier();
    await mmuIntervalNotifierInsert(busy, mm, 0, PAGE, { invalidate: (_s, range) => range.flags !== 0 });
    const classicStarts: number[] = [];
    await mmuNotifierRegister(
      new MmuNotifier({ invalidateRangeStart: () => classicStarts.push(1) && 0 }),
      mm,
    );
    const range = mmuNotifierRangeInit(MmuNotifyEvent.CLEAR, 0, mm, 0, PAGE);
    expect(await mmuNotifierInvalidateRangeStartNonblock(range)).toBe(-Errno.EAGAIN);
    const subs = mm.notifierSubscriptions!;
    expect(subs.activeInvalidateRanges).toBe(0);
    expect(subs.invalidateSeq).toBe(4); // odd during the attempt, even again after the undo
    expect(classicStarts).toHaveLength(0); // interval notifiers run first; classic ones never started
    expect(mm.sim.counters.get('notifier.wouldBlock')).toBe(1);
    // The blockable path succeeds with the same callback (flags has BLOCKABLE).
    await invalidate(mm, 0, PAGE, MmuNotifyEvent.CLEAR);
    expect(classicStarts).toHaveLength(1);
  });

  it('a blockable callback returning false is a warning, and the invalidation goes on', async () => {
    const mm = fakeMm();
    const bad = new MmuIntervalNotifier();
    await mmuIntervalNotifierInsert(bad, mm, 0, PAGE, { invalidate: () => false });
    const good = recorder();
    await mmuIntervalNotifierInsert(good.sub, mm, 0, PAGE, good.ops);
    await invalidate(mm, 0, PAGE, MmuNotifyEvent.CLEAR);
    expect(good.calls).toHaveLength(1);
    expect(mm.sim.counters.get('notifier.warnings')).toBe(1);
  });

  it('non-blockable classic failure: the notifiers that started get their end at once', async () => {
    const mm = fakeMm();
    const log: string[] = [];
    await mmuNotifierRegister(
      new MmuNotifier({
        invalidateRangeStart: () => {
          log.push('A.start');
          return 0;
        },
        invalidateRangeEnd: () => void log.push('A.end'),
      }),
      mm,
    );
    await mmuNotifierRegister(
      new MmuNotifier({
        invalidateRangeStart: () => {
          log.push('B.start');
          return -Errno.EAGAIN;
        },
      }),
      mm,
    );
    const range = mmuNotifierRangeInit(MmuNotifyEvent.CLEAR, 0, mm, 0, PAGE);
    expect(await mmuNotifierInvalidateRangeStartNonblock(range)).toBe(-Errno.EAGAIN);
    // B was registered last, so it is first on the list (hlist_add_head).
    expect(log).toEqual(['B.start', 'A.start', 'A.end']);
  });
});

describe('events and owner', () => {
  it('carries the event and the owner cookie to every callback', async () => {
    const mm = fakeMm();
    const { sub, ops, calls } = recorder();
    await mmuIntervalNotifierInsert(sub, mm, 0, 16 * PAGE, ops);
    const owner = { device: 0 };
    for (const event of Object.values(MmuNotifyEvent)) {
      if (event === MmuNotifyEvent.RELEASE) continue;
      await invalidate(mm, 0, PAGE, event, () => {}, event === MmuNotifyEvent.MIGRATE ? owner : null);
    }
    expect(calls.map((c) => c.event)).toEqual([0, 1, 2, 3, 4, 6, 7]);
    expect(calls.find((c) => c.event === MmuNotifyEvent.MIGRATE)!.owner).toBe(owner);
  });

  it('release: a RELEASE invalidation of the whole address space, then classic release() and an empty list', async () => {
    const mm = fakeMm();
    const { sub, ops, calls } = recorder();
    await mmuIntervalNotifierInsert(sub, mm, 1 << 30, PAGE, ops);
    const released: string[] = [];
    const classic = new MmuNotifier({ release: () => void released.push('classic') });
    await mmuNotifierRegister(classic, mm);
    await mmuNotifierRelease(mm);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.event).toBe(MmuNotifyEvent.RELEASE);
    expect(calls[0]!.start).toBe(0);
    expect(released).toEqual(['classic']);
    expect(mm.notifierSubscriptions!.list).toHaveLength(0);
    expect(mm.notifierSubscriptions!.invalidateSeq % 2).toBe(0);
    await mmuNotifierUnregister(classic, mm); // already released: no second release()
    expect(released).toEqual(['classic']);
  });

  it('unregister calls release() once and stops further callbacks', async () => {
    const mm = fakeMm();
    const seen: string[] = [];
    const n = new MmuNotifier({
      release: () => void seen.push('release'),
      invalidateRangeStart: () => {
        seen.push('start');
        return 0;
      },
    });
    await mmuNotifierRegister(n, mm);
    await invalidate(mm, 0, PAGE, MmuNotifyEvent.CLEAR);
    await mmuNotifierUnregister(n, mm);
    await invalidate(mm, 0, PAGE, MmuNotifyEvent.CLEAR);
    expect(seen).toEqual(['start', 'release']);
  });

  it('young: clear_flush_young and clear_young OR the answers; test_young stops at the first yes', async () => {
    const mm = fakeMm();
    const asked: string[] = [];
    await mmuNotifierRegister(
      new MmuNotifier({
        testYoung: () => {
          asked.push('old');
          return true;
        },
        clearYoung: () => false,
      }),
      mm,
    );
    await mmuNotifierRegister(
      new MmuNotifier({
        testYoung: () => {
          asked.push('new');
          return true;
        },
        clearFlushYoung: () => true,
        clearYoung: () => true,
      }),
      mm,
    );
    expect(mmuNotifierClearFlushYoung(mm, 0, PAGE)).toBe(true);
    expect(mmuNotifierClearYoung(mm, 0, PAGE)).toBe(true);
    expect(mmuNotifierTestYoung(mm, 0)).toBe(true);
    expect(asked).toEqual(['new']);
    expect(mmuNotifierTestYoung(fakeMm(), 0)).toBe(false);
  });
});

describe('dispatch', () => {
  it('a walk whose callbacks answer sometimes with a promise: every notifier in order, the start settles after the last', async () => {
    const mm = fakeMm();
    const log: string[] = [];
    for (let i = 0; i < 4; i++) {
      const s = new MmuIntervalNotifier();
      await mmuIntervalNotifierInsert(s, mm, i * PAGE, PAGE, {
        invalidate: (sub, _r, seq) => {
          mmuIntervalSetSeq(sub, seq);
          log.push(`call ${i}`);
          if (i % 2 === 0) return true; // synchronous answer
          return Promise.resolve().then(() => {
            log.push(`answer ${i}`);
            return true;
          });
        },
      });
    }
    const range = mmuNotifierRangeInit(MmuNotifyEvent.CLEAR, 0, mm, 0, 4 * PAGE);
    const started = mmuNotifierInvalidateRangeStart(range).then(() => log.push('started'));
    expect(log).toEqual(['call 0', 'call 1']); // synchronous up to the first promise
    await started;
    expect(log).toEqual(['call 0', 'call 1', 'answer 1', 'call 2', 'call 3', 'answer 3', 'started']);
    const subs = mm.notifierSubscriptions!;
    expect(subs.activeInvalidateRanges).toBe(1);
    expect(subs.invalidateSeq % 2).toBe(1);
    expect(mm.sim.counters.get('notifier.callbacks')).toBe(4);
    await mmuNotifierInvalidateRangeEnd(range);
    expect(subs.activeInvalidateRanges).toBe(0);
    expect(subs.invalidateSeq).toBe(4);
  });

  it('non-blockable: a callback answering false through a promise → -EAGAIN, later notifiers not called', async () => {
    const mm = fakeMm();
    const called: number[] = [];
    for (let i = 0; i < 3; i++) {
      const s = new MmuIntervalNotifier();
      await mmuIntervalNotifierInsert(s, mm, i * PAGE, PAGE, {
        invalidate: (sub, range, seq) => {
          called.push(i);
          mmuIntervalSetSeq(sub, seq);
          return i === 1 ? Promise.resolve(range.flags !== 0) : true;
        },
      });
    }
    const range = mmuNotifierRangeInit(MmuNotifyEvent.CLEAR, 0, mm, 0, 3 * PAGE);
    expect(await mmuNotifierInvalidateRangeStartNonblock(range)).toBe(-Errno.EAGAIN);
    expect(called).toEqual([0, 1]);
    const subs = mm.notifierSubscriptions!;
    expect(subs.activeInvalidateRanges).toBe(0);
    expect(subs.invalidateSeq).toBe(4);
    expect(mm.sim.counters.get('notifier.wouldBlock')).toBe(1);
  });

  it('calls exactly the overlapping notifiers, in address order', async () => {
    const mm = fakeMm();
    const hits: number[] = [];
    const subs: MmuIntervalNotifier[] = [];
    for (let i = 0; i < 1000; i++) {
      const s = new MmuIntervalNotifier();
      subs.push(s);
      await mmuIntervalNotifierInsert(s, mm, ((i * 7919) % 1000) * 16 * PAGE, 16 * PAGE, {
        invalidate: (sub, _r, seq) => {
          mmuIntervalSetSeq(sub, seq);
          hits.push(sub.start / (16 * PAGE));
          return true;
        },
      });
    }
    await invalidate(mm, 100 * 16 * PAGE + 5, 110 * 16 * PAGE, MmuNotifyEvent.CLEAR);
    expect(hits).toEqual([100, 101, 102, 103, 104, 105, 106, 107, 108, 109]);
  });
});

describe('bad arguments', () => {
  it('zero or overflowing length → -EOVERFLOW, no mm users → -EINVAL; the tree is unchanged', async () => {
    const mm = fakeMm();
    const a = recorder();
    await mmuIntervalNotifierInsert(a.sub, mm, 0, PAGE, a.ops);
    const tree = mm.notifierSubscriptions!.itree;
    const b = recorder();
    expect(await mmuIntervalNotifierInsert(b.sub, mm, PAGE, 0, b.ops)).toBe(-Errno.EOVERFLOW);
    expect(await mmuIntervalNotifierInsert(b.sub, mm, Number.MAX_SAFE_INTEGER, 2, b.ops)).toBe(
      -Errno.EOVERFLOW,
    );
    mm.mmUsers = 0;
    expect(await mmuIntervalNotifierInsert(b.sub, mm, PAGE, PAGE, b.ops)).toBe(-Errno.EINVAL);
    expect(tree.size).toBe(1);
    expect(b.sub.isInserted).toBe(false);
  });

  it('a non-integer start or length throws ArgumentError naming it', async () => {
    const mm = fakeMm();
    const b = recorder();
    await expect(mmuIntervalNotifierInsert(b.sub, mm, 0.5, PAGE, b.ops)).rejects.toThrow(ArgumentError);
    await expect(mmuIntervalNotifierInsert(b.sub, mm, 0, -1, b.ops)).rejects.toThrow(/'length'/);
    expect(mm.notifierSubscriptions).toBeNull();
    expect(() => mmuNotifierRangeInit(MmuNotifyEvent.CLEAR, 0, mm, PAGE, PAGE)).toThrow(/'end'/);
    expect(() => mmuNotifierRangeInit(42 as MmuNotifyEvent, 0, mm, 0, PAGE)).toThrow(/'event'/);
  });

  it('removing twice or inserting twice throws StateError and changes nothing', async () => {
    const mm = fakeMm();
    const a = recorder();
    await mmuIntervalNotifierInsert(a.sub, mm, 0, PAGE, a.ops);
    await expect(mmuIntervalNotifierInsert(a.sub, mm, 0, PAGE, a.ops)).rejects.toThrow(StateError);
    await mmuIntervalNotifierRemove(a.sub);
    await expect(mmuIntervalNotifierRemove(a.sub)).rejects.toThrow(/removed twice/);
    expect(mm.notifierSubscriptions!.itree.size).toBe(0);
    await expect(mmuIntervalNotifierRemove(new MmuIntervalNotifier())).rejects.toThrow(StateError);
  });

  it('insert_locked requires the mmap lock held for write', async () => {
    const mm = fakeMm();
    const a = recorder();
    expect(() => mmuIntervalNotifierInsertLocked(a.sub, mm, 0, PAGE, a.ops)).toThrow(/mmap lock/);
    await mm.mmapLock.write();
    expect(mmuIntervalNotifierInsertLocked(a.sub, mm, 0, PAGE, a.ops)).toBe(0);
    mm.mmapLock.writeUnlock();
    expect(a.sub.isInserted).toBe(true);
  });
});

describe('the mirroring protocol under every interleaving', () => {
  /** A CPU thread changes PTEs under invalidation while a driver thread mirrors them. */
  async function scenario(seed: number, checkRetry: boolean) {
    const sim = createSim({ seed });
    const mm = fakeMm(sim, 4);
    const mirror = new MiniMirror(mm, checkRetry);
    await mmuIntervalNotifierInsert(mirror.sub, mm, 0, 4 * PAGE, mirror.ops);
    mm.pte.set([11, 12, 13, 14]);
    sim.sched.spawn('gpu-fault', async () => {
      for (let p = 0; p < 4; p++) await mirror.fault(p);
    });
    sim.sched.spawn('cpu-munmap', async () => {
      for (let p = 0; p < 4; p++) {
        await sim.sched.yield();
        await invalidate(mm, p * PAGE, (p + 1) * PAGE, MmuNotifyEvent.UNMAP, () => {
          mm.pte[p] = 0;
        });
      }
    });
    const run = await sim.sched.run();
    // Coherence: the device may only map what the CPU maps now.
    const stale = [...mirror.dev].filter((v, p) => v !== 0 && v !== mm.pte[p]).length;
    return { stale, retries: mirror.retries, schedule: run.schedule };
  }

  it('a correct driver never keeps a stale mapping, over 200 seeds, and some seeds do retry', async () => {
    let retried = 0;
    for (let seed = 1; seed <= 200; seed++) {
      const r = await scenario(seed, true);
      expect(r.stale, `seed ${seed}`).toBe(0);
      if (r.retries > 0) retried++;
    }
    expect(retried).toBeGreaterThan(0);
  });

  it('a driver that skips read_retry is caught within 200 seeds', async () => {
    let caught = 0;
    for (let seed = 1; seed <= 200; seed++) if ((await scenario(seed, false)).stale > 0) caught++;
    expect(caught).toBeGreaterThan(0);
  });
});
