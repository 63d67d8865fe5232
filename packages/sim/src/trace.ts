/**
 * The trace bus: coarse, typed, observable events (a fault serviced, an invalidation, a
 * migration) on eventemitter3. Packages add their events to {@link TraceEvents} by declaration
 * merging. Emitting costs nothing when nobody listens as long as callers guard payload
 * construction with {@link TraceBus.on}-registered checks: `if (trace.wants('x')) trace.emit('x', ...)`.
 *
 * Never use it for the notifier mechanism itself: invalidation is a direct call that returns a
 * value (see `@hmmkit/notifier`).
 *
 * @module
 */
import { EventEmitter } from 'eventemitter3';

/**
 * The registry of trace events: name → positional argument tuple. Extend it from any package:
 * `declare module '@hmmkit/sim' { interface TraceEvents { 'mm.fault': [addr: number, write: boolean] } }`.
 */
// biome-ignore lint/suspicious/noEmptyInterface: extended by declaration merging in other packages
export interface TraceEvents {}

type EventName = keyof TraceEvents & string;
type Args<K extends EventName> = TraceEvents[K] extends unknown[] ? TraceEvents[K] : never;

/** A typed trace bus for one simulation. */
export class TraceBus {
  // eventemitter3's own typing wants a concrete map; the typed wrappers below keep it safe.
  private readonly ee = new EventEmitter<string>();
  private listening = 0;

  /** True when at least one listener is registered for `name`. Guard payload construction with it. */
  wants(name: EventName): boolean {
    return this.listening !== 0 && this.ee.listenerCount(name) !== 0;
  }

  /** Emits `name` to its listeners. */
  emit<K extends EventName>(name: K, ...args: Args<K>): void {
    if (this.listening !== 0) this.ee.emit(name, ...(args as unknown[]));
  }

  /** Registers `fn` for `name`; returns a function that unregisters it. */
  on<K extends EventName>(name: K, fn: (...args: Args<K>) => void): () => void {
    this.ee.on(name, fn as (...a: unknown[]) => void);
    this.listening++;
    return () => {
      this.ee.off(name, fn as (...a: unknown[]) => void);
      this.listening--;
    };
  }
}
