/**
 * make_device_exclusive() (mm/rmap.c, the single-page API of Linux 6.14+): give a device
 * exclusive access to one anonymous page for atomics. The CPU PTE becomes a writable
 * device-exclusive entry; any CPU access revokes it (an EXCLUSIVE invalidation with owner null,
 * then the original PTE is restored) — mm does the revocation.
 *
 * @module
 */
import { Mm, PAGE_SIZE } from '@hmmkit/mm';
import { ArgumentError, StateError } from '@hmmkit/sim';
import { registerMachine } from './machine-registry.ts';
import { hmmStats } from './stats.ts';

/** Result of {@link makeDeviceExclusive}: the locked, referenced page, or a negative errno. */
export type DeviceExclusiveOutcome = { pfn: number } | { error: number };

/**
 * Models make_device_exclusive(mm, addr, owner, &folio): the caller holds the mmap read lock.
 * Faults the page in writable (breaking COW, splitting a THP mapping), requires an anonymous
 * non-hugetlb page (-EOPNOTSUPP), trylocks it (-EBUSY), checks it is still mapped writable
 * (-EBUSY), issues an EXCLUSIVE invalidation with `owner` and installs a writable
 * device-exclusive entry. Returns `{pfn}` with the page locked and referenced — map it in the
 * device inside the notifier critical section, then unlock and put it — or `{error}` (-EFAULT
 * when there is no VMA or the fault fails).
 */
export async function makeDeviceExclusive(
  mm: Mm,
  addr: number,
  owner: unknown,
): Promise<DeviceExclusiveOutcome> {
  const fn = 'makeDeviceExclusive';
  if (!(mm instanceof Mm)) throw new ArgumentError(fn, 'mm', 'must be an Mm', mm);
  if (!Number.isSafeInteger(addr) || addr < 0 || addr % PAGE_SIZE !== 0) {
    throw new ArgumentError(fn, 'addr', 'must be a page-aligned non-negative integer', addr);
  }
  if (!mm.mmapLock.isLocked) throw new StateError(fn, 'the mmap read lock must be held');
  registerMachine(mm.machine);
  const r = await mm.makeDeviceExclusive(addr, owner);
  if (r.ret !== 0) return { error: r.ret };
  hmmStats(mm.sim).exclusive.value++;
  return { pfn: r.pfn };
}
