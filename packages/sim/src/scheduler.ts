/**
 * A deterministic scheduler for simulated concurrency.
 *
 * A task is an async function: a CPU thread, a GPU fault handler, a copy engine. Exactly one
 * task runs at a time; it runs until it reaches a *scheduling point* (a {@link Scheduler.yield},
 * a lock acquisition, a wait, a sleep) and then the scheduler picks the next task to run. The
 * pick is made by a seeded PRNG, so the same seed always gives the same interleaving, and each
 * pick is recorded so that a run can be replayed exactly from its schedule. This is how races
 * between an invalidation and a mirroring thread are made to happen on purpose.
 *
 * Virtual time: when no task can run and some are sleeping, the clock jumps to the earliest
 * wake-up. Work that occupies the simulated machine is charged with {@link Clock.advance}.
 *
 * Outside {@link Scheduler.run} (plain sequential code and tests) every primitive still works:
 * scheduling points are no-ops, waits are plain promises, `sleep` advances the clock.
 *
 * Rule: tasks must block only on this module's primitives. Awaiting a promise that another
 * task resolves by hand would stall the scheduler.
 *
 * @module
 */
import { HmmkitError, StateError } from './errors.ts';
import { Rng } from './rng.ts';

/** Virtual time in nanoseconds. */
export class Clock {
  /** Current virtual time (ns). */
  now = 0;

  /** Moves time forward by `ns` (a non-negative number). */
  advance(ns: number): void {
    if (!(ns >= 0)) throw new StateError('Clock.advance', `cannot move time by ${ns} ns`);
    this.now += ns;
  }

  /** Moves time forward to `t` if it lies in the future. */
  advanceTo(t: number): void {
    if (t > this.now) this.now = t;
  }
}

/** Life-cycle state of a {@link Task}. */
export type TaskState = 'runnable' | 'blocked' | 'sleeping' | 'done';

/** A simulated thread of control. */
export class Task {
  readonly id: number;
  readonly name: string;
  state: TaskState = 'runnable';
  /** Virtual time at which a sleeping task becomes runnable. */
  wakeAt = 0;
  /** @internal resolves the promise the task is suspended on. */
  resume: (() => void) | null = null;
  /** @internal the body, until first scheduled. */
  body: (() => Promise<void>) | null;
  /** @internal tasks waiting in {@link Scheduler.join}. */
  readonly joiners: Waiter[] = [];

  constructor(id: number, name: string, body: () => Promise<void>) {
    this.id = id;
    this.name = name;
    this.body = body;
  }
}

/**
 * One suspended caller of a blocking primitive: a task inside a run, or a plain promise
 * outside one. Primitives keep queues of these and hand them to {@link Scheduler.wake}.
 */
export class Waiter {
  readonly task: Task | null;
  /** @internal */ resolve: (() => void) | null = null;
  /** @internal */ promise: Promise<void> | null = null;
  woken = false;
  constructor(task: Task | null) {
    this.task = task;
  }
}

/** A task threw; carries what is needed to replay the failing interleaving. */
export class TaskFailedError extends HmmkitError {
  override name = 'TaskFailedError';
  readonly task: string;
  readonly seed: number;
  readonly schedule: readonly number[];
  override readonly cause: unknown;
  constructor(task: string, seed: number, schedule: readonly number[], cause: unknown) {
    super(
      `task '${task}' failed (seed ${seed}, ${schedule.length} steps): ${String((cause as Error)?.message ?? cause)}`,
    );
    this.task = task;
    this.seed = seed;
    this.schedule = schedule;
    this.cause = cause;
  }
}

/** Every remaining task is blocked and none sleeps. */
export class DeadlockError extends HmmkitError {
  override name = 'DeadlockError';
  readonly blocked: readonly string[];
  constructor(blocked: readonly string[], seed: number) {
    super(`deadlock (seed ${seed}): blocked tasks ${blocked.join(', ')}`);
    this.blocked = blocked;
  }
}

/** A replayed schedule named a task that could not run at that step. */
export class ReplayDivergenceError extends HmmkitError {
  override name = 'ReplayDivergenceError';
}

/** Options of a {@link Scheduler}. */
export interface SchedulerOptions {
  /** Seed of the interleaving choices (default 1). */
  seed?: number;
  /** A schedule recorded by an earlier run ({@link RunResult.schedule}) to follow exactly. */
  replay?: readonly number[];
  /** The clock to drive (default: a new one). */
  clock?: Clock;
  /** Abort a run after this many scheduling steps (default 10^7): catches livelocks. */
  maxSteps?: number;
}

/** What a finished run reports. */
export interface RunResult {
  readonly seed: number;
  /** The id of the task chosen at every step; feed it to `replay` to reproduce the run. */
  readonly schedule: readonly number[];
  readonly steps: number;
  /** Virtual time at the end of the run (ns). */
  readonly now: number;
}

/** The deterministic scheduler. See the module comment. */
export class Scheduler {
  readonly clock: Clock;
  readonly seed: number;
  private readonly rng: Rng;
  private readonly replay: readonly number[] | null;
  private readonly maxSteps: number;
  private readonly tasks: Task[] = [];
  /** Scratch of {@link run}: the tasks runnable at this step. */
  private readonly runnable: Task[] = [];
  private nextId = 0;
  private current: Task | null = null;
  private parked: (() => void) | null = null;
  private failure: { task: Task; error: unknown } | null = null;
  private readonly recorded: number[] = [];
  private running = false;

  constructor(options: SchedulerOptions = {}) {
    this.seed = options.seed ?? 1;
    this.rng = new Rng(this.seed);
    this.replay = options.replay ?? null;
    this.clock = options.clock ?? new Clock();
    this.maxSteps = options.maxSteps ?? 10_000_000;
  }

  /** The task that is running now, or null outside a run. */
  get currentTask(): Task | null {
    return this.current;
  }

  /** The schedule recorded so far. */
  get schedule(): readonly number[] {
    return this.recorded;
  }

  /**
   * Spawns `body` as a task named `name` (default "main"), runs the scheduler until every task
   * is done, and returns `body`'s result: the one-liner for a scenario driven from a main task.
   */
  async runMain<T>(body: () => Promise<T>, name = 'main'): Promise<T> {
    let out: { value: T } | null = null;
    this.spawn(name, async () => {
      out = { value: await body() };
    });
    await this.run();
    if (out === null) throw new StateError('Scheduler.runMain', `task '${name}' did not finish`);
    return (out as { value: T }).value;
  }

  /** Creates a task; it first runs when the scheduler picks it inside {@link run}. */
  spawn(name: string, body: () => Promise<void> | void): Task {
    const task = new Task(this.nextId++, name, async () => {
      await body();
    });
    this.tasks.push(task);
    return task;
  }

  /**
   * Runs every spawned task (and those they spawn) to completion. Rejects with a
   * {@link TaskFailedError} (carrying seed and schedule) when a task throws, and with a
   * {@link DeadlockError} when every remaining task is blocked.
   */
  async run(): Promise<RunResult> {
    if (this.running) throw new StateError('Scheduler.run', 'already running');
    this.running = true;
    try {
      let steps = 0;
      for (;;) {
        if (this.failure !== null) {
          const { task, error } = this.failure;
          throw new TaskFailedError(task.name, this.seed, [...this.recorded], error);
        }
        // Drop finished tasks and collect the runnable ones, in task order, without allocating:
        // this runs once per step.
        const tasks = this.tasks;
        const now = this.clock.now;
        const runnable = this.runnable;
        runnable.length = 0;
        let live = 0;
        for (let i = 0; i < tasks.length; i++) {
          const t = tasks[i]!;
          if (t.state === 'done') continue;
          tasks[live++] = t;
          if (t.state === 'sleeping' && t.wakeAt <= now) t.state = 'runnable';
          if (t.state === 'runnable') runnable.push(t);
        }
        tasks.length = live;
        if (runnable.length === 0) {
          if (this.tasks.length === 0) break;
          let earliest = Number.POSITIVE_INFINITY;
          for (const t of this.tasks) if (t.state === 'sleeping' && t.wakeAt < earliest) earliest = t.wakeAt;
          if (earliest === Number.POSITIVE_INFINITY) {
            throw new DeadlockError(
              this.tasks.map((t) => `${t.name}#${t.id}`),
              this.seed,
            );
          }
          this.clock.advanceTo(earliest);
          continue;
        }
        if (++steps > this.maxSteps) {
          throw new TaskFailedError(
            'scheduler',
            this.seed,
            [...this.recorded],
            new Error(`more than ${this.maxSteps} steps (livelock?)`),
          );
        }
        const task = this.choose(runnable);
        this.recorded.push(task.id);
        await this.step(task);
      }
      return { seed: this.seed, schedule: [...this.recorded], steps, now: this.clock.now };
    } finally {
      this.running = false;
      this.current = null;
    }
  }

  private choose(runnable: Task[]): Task {
    const k = this.recorded.length;
    if (this.replay !== null && k < this.replay.length) {
      const id = this.replay[k];
      const t = runnable.find((r) => r.id === id);
      if (t === undefined) {
        throw new ReplayDivergenceError(
          `replay step ${k}: task #${id} is not runnable (runnable: ${runnable.map((r) => r.id).join(',')})`,
        );
      }
      return t;
    }
    if (runnable.length === 1) return runnable[0]!;
    return runnable[this.rng.below(runnable.length)]!;
  }

  private step(task: Task): Promise<void> {
    const parked = new Promise<void>((resolve) => {
      this.parked = resolve;
    });
    this.current = task;
    const body = task.body;
    if (body !== null) {
      task.body = null;
      body().then(
        () => this.finish(task),
        (error: unknown) => {
          this.failure = { task, error };
          this.finish(task);
        },
      );
    } else {
      const resume = task.resume!;
      task.resume = null;
      resume();
    }
    return parked;
  }

  private finish(task: Task): void {
    task.state = 'done';
    for (const w of task.joiners.splice(0)) this.wake(w);
    this.release();
  }

  private release(): void {
    this.current = null;
    const p = this.parked;
    this.parked = null;
    p?.();
  }

  /** Suspends the running task in `state` until the scheduler resumes it. */
  private park(task: Task, state: TaskState): Promise<void> {
    task.state = state;
    const gate = new Promise<void>((resolve) => {
      task.resume = resolve;
    });
    this.release();
    return gate;
  }

  /** A scheduling point: lets the scheduler switch to another runnable task. No-op outside a run. */
  yield(): Promise<void> {
    const task = this.current;
    if (task === null) return Promise.resolve();
    return this.park(task, 'runnable');
  }

  /** Sleeps `ns` of virtual time (a scheduling point). Outside a run, advances the clock. */
  sleep(ns: number): Promise<void> {
    const task = this.current;
    if (task === null) {
      this.clock.advance(ns);
      return Promise.resolve();
    }
    task.wakeAt = this.clock.now + ns;
    return this.park(task, 'sleeping');
  }

  /** Waits until `task` has finished. */
  async join(task: Task): Promise<void> {
    if (task.state === 'done') return;
    const w = this.waiter();
    task.joiners.push(w);
    await this.wait(w);
  }

  /** @internal A waiter for the caller (the running task, or a plain promise outside a run). */
  waiter(): Waiter {
    const w = new Waiter(this.current);
    if (w.task === null) {
      w.promise = new Promise<void>((resolve) => {
        w.resolve = resolve;
      });
    }
    return w;
  }

  /** @internal Blocks the caller on `w` until {@link wake}. */
  wait(w: Waiter): Promise<void> {
    if (w.woken) return Promise.resolve();
    if (w.task === null) return w.promise!;
    if (w.task !== this.current)
      throw new StateError('Scheduler.wait', 'a waiter must be waited on by its own task');
    return this.park(w.task, 'blocked');
  }

  /** @internal Makes the owner of `w` runnable again (or resolves its promise). */
  wake(w: Waiter): void {
    if (w.woken) return;
    w.woken = true;
    if (w.task === null) w.resolve!();
    else if (w.task.state === 'blocked') w.task.state = 'runnable';
  }
}
