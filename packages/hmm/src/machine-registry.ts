/**
 * migrate_device_range() and friends take only pfns (as in Linux, where there is one machine).
 * The simulation may hold several machines, so hmm remembers the machine of every Mm or
 * DeviceMemory it sees and resolves a device pfn to the machine whose pagemap owns it.
 *
 * @module
 */
import type { Machine } from '@hmmkit/mm';

// A trap worth knowing: WeakRef.deref() keeps its target alive until the current job's microtask
// queue drains, which a loop of `await`s over many simulations never lets happen. A lookup here in
// such a loop therefore keeps every machine it derefs alive; frameworks pass their machine to
// migrateDeviceRange/Pages/Finalize so that this lookup is the exception, not the rule.
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
