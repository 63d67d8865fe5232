/**
 * Named counters. A counter is registered once and then bumped through its handle, a plain
 * object with a numeric field, so the hot path is a property increment, not a Map lookup.
 *
 * @module
 */

/** One named counter. Bump `value` directly or through {@link Counter.add}. */
export class Counter {
  readonly name: string;
  value = 0;
  constructor(name: string) {
    this.name = name;
  }
  /** Adds `n` (default 1). */
  add(n = 1): void {
    this.value += n;
  }
}

/** A set of named counters belonging to one simulation. */
export class Counters {
  private readonly byName = new Map<string, Counter>();

  /** The counter called `name`, created at 0 on first use. Keep the handle for hot paths. */
  counter(name: string): Counter {
    let c = this.byName.get(name);
    if (c === undefined) {
      c = new Counter(name);
      this.byName.set(name, c);
    }
    return c;
  }

  /** Current value of `name` (0 if never registered). */
  get(name: string): number {
    return this.byName.get(name)?.value ?? 0;
  }

  /** All counters as a plain sorted record, for reports and test assertions. */
  snapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const name of [...this.byName.keys()].sort()) out[name] = this.byName.get(name)!.value;
    return out;
  }

  /** Sets every counter back to 0 (handles stay valid). */
  reset(): void {
    for (const c of this.byName.values()) c.value = 0;
  }
}
