/**
 * migrate_device_range() and friends take only pfns (as in Linux, where there is one machine).
 * The simulation may hold several machines, so a caller that has more than one passes its
 * machine; without one, hmm resolves a device pfn against the most recently registered machine
 * (the one an Mm or DeviceMemory last showed it), as if it were the only one.
 *
 * One strong reference, not a list of WeakRefs: both `new WeakRef(x)` and `deref()` keep `x` alive
 * until the microtask queue drains, which a long chain of `await`s over many simulations never lets
 * happen, so a WeakRef per machine kept every machine of a seed loop alive (6.3 GB after 2,500 soak
 * seeds). Holding the latest machine keeps at most one machine alive beyond its simulation.
 *
 * @module
 */
import type { Machine } from '@hmmkit/mm';

let latest: Machine | null = null;

/** Remembers `machine` as the one pfn-only calls resolve against. */
export function registerMachine(machine: Machine): void {
  latest = machine;
}

/** The most recently registered machine if it has a device pagemap covering `pfn`, or null. */
export function machineOfDevicePfn(pfn: number): Machine | null {
  const m = latest;
  if (m !== null && pfn < m.phys.frameLimit && m.phys.pagemapOf(pfn) !== null) return m;
  return null;
}
