import { describe, expect, it } from 'vitest';
import {
  createSim,
  DeadlockError,
  explore,
  Mutex,
  ReplayDivergenceError,
  RwSemaphore,
  Scheduler,
  TaskFailedError,
  WaitQueue,
} from '../src/index.ts';

/** Two tasks that each append their name at three scheduling points. */
async function interleaving(seed: number, replay?: readonly number[]) {
  const sched = new Scheduler(replay ? { seed, replay } : { seed });
  const log: string[] = [];
  for (const name of ['a', 'b', 'c']) {
    sched.spawn(name, async () => {
      for (let i = 0; i < 3; i++) {
        log.push(`${name}${i}`);
        await sched.yield();
      }
    });
  }
  const result = await sched.run();
  return { log: log.join(' '), result };
}

describe('Scheduler', () => {
  it('gives the same interleaving for the same seed', async () => {
    const a = await interleaving(7);
    const b = await interleaving(7);
    expect(a.log).toBe(b.log);
    expect(a.result.schedule).toEqual(b.result.schedule);
  });

  it('gives different interleavings for different seeds', async () => {
    const logs = new Set<string>();
    for (let seed = 1; seed <= 20; seed++) logs.add((await interleaving(seed)).log);
    expect(logs.size).toBeGreaterThan(5);
  });

  it('replays a recorded schedule exactly, whatever the seed', async () => {
    const a = await interleaving(3);
    const b = await interleaving(99, a.result.schedule);
    expect(b.log).toBe(a.log);
  });

  it('reports a replay that names a task that cannot run', async () => {
    await expect(interleaving(1, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0])).rejects.toBeInstanceOf(
      ReplayDivergenceError,
    );
  });

  it('advances virtual time to the earliest sleeper', async () => {
    const sim = createSim();
    const order: string[] = [];
    sim.sched.spawn('late', async () => {
      await sim.sched.sleep(5000);
      order.push(`late@${sim.now}`);
    });
    sim.sched.spawn('early', async () => {
      await sim.sched.sleep(1000);
      order.push(`early@${sim.now}`);
    });
    const r = await sim.sched.run();
    expect(order).toEqual(['early@1000', 'late@5000']);
    expect(r.now).toBe(5000);
  });

  it('wraps a task failure with its seed and schedule', async () => {
    const sched = new Scheduler({ seed: 5 });
    sched.spawn('ok', async () => {
      await sched.yield();
    });
    sched.spawn('bad', async () => {
      await sched.yield();
      throw new Error('boom');
    });
    const err = await sched.run().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskFailedError);
    expect((err as TaskFailedError).task).toBe('bad');
    expect((err as TaskFailedError).seed).toBe(5);
    expect((err as TaskFailedError).schedule.length).toBeGreaterThan(0);
  });

  it('detects a deadlock between two mutexes taken in opposite order', async () => {
    let found = false;
    for (let seed = 1; seed <= 30 && !found; seed++) {
      const sched = new Scheduler({ seed });
      const m1 = new Mutex(sched, 'm1');
      const m2 = new Mutex(sched, 'm2');
      sched.spawn('t1', async () => {
        await m1.lock();
        await m2.lock();
        m2.unlock();
        m1.unlock();
      });
      sched.spawn('t2', async () => {
        await m2.lock();
        await m1.lock();
        m1.unlock();
        m2.unlock();
      });
      const err = await sched.run().catch((e: unknown) => e);
      if (err instanceof DeadlockError) {
        found = true;
        expect(err.blocked).toHaveLength(2);
      } else {
        expect(err).toMatchObject({ seed });
      }
    }
    expect(found).toBe(true);
  });

  it('joins a task', async () => {
    const sched = new Scheduler({ seed: 2 });
    const log: string[] = [];
    const child = sched.spawn('child', async () => {
      await sched.sleep(10);
      log.push('child');
    });
    sched.spawn('parent', async () => {
      await sched.join(child);
      log.push('parent');
    });
    await sched.run();
    expect(log).toEqual(['child', 'parent']);
  });
});

describe('Mutex', () => {
  it('serialises critical sections under every interleaving', async () => {
    const result = await explore(
      async (sim) => {
        const m = new Mutex(sim.sched);
        let inside = 0;
        let max = 0;
        for (let t = 0; t < 3; t++) {
          sim.sched.spawn(`t${t}`, async () => {
            for (let i = 0; i < 3; i++) {
              await m.lock();
              inside++;
              max = Math.max(max, inside);
              await sim.sched.yield();
              inside--;
              m.unlock();
            }
          });
        }
        await sim.sched.run();
        if (max !== 1) throw new Error(`${max} tasks inside`);
      },
      { seeds: 50 },
    );
    expect(result.failure).toBeNull();
    expect(result.runs).toBe(50);
  });

  it('works outside a run and hands off FIFO', async () => {
    const sched = new Scheduler();
    const m = new Mutex(sched);
    await m.lock();
    expect(m.tryLock()).toBe(false);
    const order: number[] = [];
    const p1 = m.lock().then(() => {
      order.push(1);
      m.unlock();
    });
    const p2 = m.lock().then(() => {
      order.push(2);
      m.unlock();
    });
    await Promise.resolve();
    m.unlock();
    await Promise.all([p1, p2]);
    expect(order).toEqual([1, 2]);
    expect(m.isLocked).toBe(false);
    expect(() => m.unlock()).toThrow(/not locked/);
  });
});

describe('RwSemaphore', () => {
  it('admits many readers or one writer, and queues readers behind a waiting writer', async () => {
    const sched = new Scheduler();
    const s = new RwSemaphore(sched);
    await s.read();
    await s.read();
    expect(s.readerCount).toBe(2);
    expect(s.tryWrite()).toBe(false);
    let writerIn = false;
    const w = s.write().then(() => {
      writerIn = true;
    });
    await Promise.resolve(); // let write() pass its scheduling point and queue
    expect(s.tryRead()).toBe(false); // fair: a writer waits
    s.readUnlock();
    await Promise.resolve();
    expect(writerIn).toBe(false);
    s.readUnlock();
    await w;
    expect(writerIn).toBe(true);
    expect(s.isWriteLocked).toBe(true);
    s.downgrade();
    expect(s.readerCount).toBe(1);
    s.readUnlock();
    expect(s.isLocked).toBe(false);
  });
});

describe('WaitQueue', () => {
  it('wakes waiters whose condition became true', async () => {
    const sim = createSim({ seed: 4 });
    const wq = new WaitQueue(sim.sched);
    let flag = false;
    const seen: number[] = [];
    sim.sched.spawn('waiter', async () => {
      await wq.waitEvent(() => flag);
      seen.push(sim.now);
    });
    sim.sched.spawn('setter', async () => {
      await sim.sched.sleep(300);
      flag = true;
      wq.wakeUpAll();
    });
    await sim.sched.run();
    expect(seen).toEqual([300]);
  });
});

describe('explore', () => {
  it('finds a lost update and replays it', async () => {
    const scenario = async (sim: ReturnType<typeof createSim>) => {
      let x = 0;
      for (const name of ['a', 'b']) {
        sim.sched.spawn(name, async () => {
          const v = x;
          await sim.sched.yield();
          x = v + 1;
        });
      }
      await sim.sched.run();
      if (x !== 2) throw new Error(`lost update: x = ${x}`);
    };
    const r = await explore(scenario, { seeds: 20 });
    expect(r.failure).not.toBeNull();
    const replayed = createSim({ replay: r.failure!.schedule });
    await expect(scenario(replayed)).rejects.toThrow(/lost update/);
  });
});

describe('runMain', () => {
  it('runs a main task with helpers to completion and returns its result', async () => {
    const sched = new Scheduler({ seed: 3 });
    const got = await sched.runMain(async () => {
      const helper = sched.spawn('helper', async () => {
        await sched.sleep(50);
      });
      await sched.join(helper);
      return sched.clock.now;
    });
    expect(got).toBe(50);
  });
});
