/**
 * Blocking primitives on the deterministic scheduler: mutex, rw-semaphore and wait queue,
 * with the kernel's semantics (FIFO hand-off, trylock for non-blockable contexts,
 * `wait_event` / `wake_up_all`). Every acquisition is a scheduling point inside a run.
 *
 * @module
 */
import { StateError } from './errors.ts';
import type { Scheduler, Waiter } from './scheduler.ts';

/** A sleeping mutex (`struct mutex`) with FIFO hand-off. */
export class Mutex {
  private readonly sched: Scheduler;
  readonly name: string;
  private held = false;
  private readonly waiters: Waiter[] = [];

  constructor(sched: Scheduler, name = 'mutex') {
    this.sched = sched;
    this.name = name;
  }

  /** True while somebody holds the mutex. */
  get isLocked(): boolean {
    return this.held;
  }

  /** Models mutex_lock(): a scheduling point, then the lock (waiting FIFO if it is held). */
  async lock(): Promise<void> {
    await this.sched.yield();
    if (!this.held) {
      this.held = true;
      return;
    }
    const w = this.sched.waiter();
    this.waiters.push(w);
    await this.sched.wait(w); // ownership is handed over by unlock()
  }

  /** Models mutex_trylock(): takes the mutex if it is free; never blocks. */
  tryLock(): boolean {
    if (this.held) return false;
    this.held = true;
    return true;
  }

  /** Models mutex_unlock(). Hands the mutex to the first waiter, if any. */
  unlock(): void {
    if (!this.held) throw new StateError('Mutex.unlock', `'${this.name}' is not locked`);
    const next = this.waiters.shift();
    if (next === undefined) this.held = false;
    else this.sched.wake(next);
  }

  /** Runs `fn` with the mutex held. */
  async with<T>(fn: () => T | Promise<T>): Promise<T> {
    await this.lock();
    try {
      return await fn();
    } finally {
      this.unlock();
    }
  }
}

interface RwWaiter {
  readonly waiter: Waiter;
  readonly write: boolean;
}

/** A fair reader-writer semaphore (`struct rw_semaphore`): the mmap lock, drm_gpusvm's notifier lock. */
export class RwSemaphore {
  private readonly sched: Scheduler;
  readonly name: string;
  private readers = 0;
  private writer = false;
  private readonly queue: RwWaiter[] = [];

  constructor(sched: Scheduler, name = 'rwsem') {
    this.sched = sched;
    this.name = name;
  }

  /** Number of current readers. */
  get readerCount(): number {
    return this.readers;
  }
  /** True while a writer holds it. */
  get isWriteLocked(): boolean {
    return this.writer;
  }
  /** True while held in either mode (lockdep_assert_held). */
  get isLocked(): boolean {
    return this.writer || this.readers > 0;
  }

  /** Models down_read(). A reader queues behind an earlier waiting writer (fairness). */
  async read(): Promise<void> {
    await this.sched.yield();
    if (!this.writer && this.queue.length === 0) {
      this.readers++;
      return;
    }
    await this.enqueue(false);
  }

  /** Models down_write(). */
  async write(): Promise<void> {
    await this.sched.yield();
    if (!this.writer && this.readers === 0 && this.queue.length === 0) {
      this.writer = true;
      return;
    }
    await this.enqueue(true);
  }

  /** Models down_read_trylock(). */
  tryRead(): boolean {
    if (this.writer || this.queue.length !== 0) return false;
    this.readers++;
    return true;
  }

  /** Models down_write_trylock(). */
  tryWrite(): boolean {
    if (this.writer || this.readers !== 0) return false;
    this.writer = true;
    return true;
  }

  /** Models up_read(). */
  readUnlock(): void {
    if (this.readers === 0)
      throw new StateError('RwSemaphore.readUnlock', `'${this.name}' is not read-locked`);
    this.readers--;
    if (this.readers === 0) this.grant();
  }

  /** Models up_write(). */
  writeUnlock(): void {
    if (!this.writer) throw new StateError('RwSemaphore.writeUnlock', `'${this.name}' is not write-locked`);
    this.writer = false;
    this.grant();
  }

  /** Models downgrade_write(): write → read without letting a writer in between. */
  downgrade(): void {
    if (!this.writer) throw new StateError('RwSemaphore.downgrade', `'${this.name}' is not write-locked`);
    this.writer = false;
    this.readers = 1;
    this.grant();
  }

  private async enqueue(write: boolean): Promise<void> {
    const w = this.sched.waiter();
    this.queue.push({ waiter: w, write });
    await this.sched.wait(w); // granted by grant()
  }

  private grant(): void {
    while (this.queue.length !== 0) {
      const head = this.queue[0]!;
      if (head.write) {
        if (this.readers !== 0 || this.writer) return;
        this.writer = true;
        this.queue.shift();
        this.sched.wake(head.waiter);
        return;
      }
      if (this.writer) return;
      this.readers++;
      this.queue.shift();
      this.sched.wake(head.waiter);
    }
  }
}

/** A wait queue (`wait_queue_head_t`) with `wait_event` / `wake_up_all` semantics. */
export class WaitQueue {
  private readonly sched: Scheduler;
  private waiters: Waiter[] = [];

  constructor(sched: Scheduler) {
    this.sched = sched;
  }

  /** Number of waiters currently queued. */
  get length(): number {
    return this.waiters.length;
  }

  /** Models wait_event(wq, cond): returns at once if `cond()` holds, else sleeps until it does. */
  async waitEvent(cond: () => boolean): Promise<void> {
    while (!cond()) {
      const w = this.sched.waiter();
      this.waiters.push(w);
      await this.sched.wait(w);
    }
  }

  /** Models wake_up_all(): every waiter re-checks its condition. */
  wakeUpAll(): void {
    if (this.waiters.length === 0) return;
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) this.sched.wake(w);
  }
}
