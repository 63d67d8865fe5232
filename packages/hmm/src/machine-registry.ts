/**
 * migrate_device_range() and friends take only pfns (as in Linux, where there is one machine).
 * The simulation may hold several machines, so hmm remembers the machine of every Mm or
 * DeviceMemory it sees and resolves a device pfn to the machine whose pagemap owns it.
 *
 * @module
 */
import type { Machine } from '@hmmkit/mm';

// A trap worth knowing: both `new WeakRef(x)` and `deref()` keep x alive until the current job's
// microtask queue drains, which a loop of `await`s over many simulations never lets happen. So
// every machine registered here stays alive in such a loop until it yields to the event loop
// (long seed loops do: see packages/svm/bench/soak.ts). Frameworks pass their machine to
// migrateDeviceRange/Pages/Finalize, so the lookup below is the exception, not the rule.
const machines: WeakRef<Machine>[] = [];
const seen = new WeakSet<Machine>();

/** Remembers `machine` (idempotent). */
export function registerMachine(machine: Machine): void {
  if (seen.has(machine)) return;
  seen.add(machine);
  machines.push(new WeakRef(machine));
}

/** The most recently registered live machine that has a device pagemap covering `pfn`, or null. */
export function machineOfDevicePfn(pfn: number): Machine | null {
  for (let k = machines.length - 1; k >= 0; k--) {
    const m = machines[k]!.deref();
    if (m === undefined) {
      machines.splice(k, 1);
      continue;
    }
    if (pfn < m.phys.capacity && m.phys.pagemapOf(pfn) !== null) return m;
  }
  return null;
}
