import { describe, expect, it } from 'vitest';
import { runAccessCounters } from '../src/access-counters.ts';

const K64 = 64 << 10;

describe('uvm-style example, access counters', () => {
  it('the hot region moves to VRAM through a notification, the cold one stays, data intact', async () => {
    const { metrics: m } = await runAccessCounters();
    expect(m.faults).toBe(0);
    expect(m.notifications).toBeGreaterThanOrEqual(1);
    expect(m.migratedRegions).toEqual([K64]);
    expect(m.faultsAfter).toBe(0);
    expect(m.dataOk).toBe(true);
    expect(m.violations).toBe(0);
  });

  it('below the threshold nothing moves', async () => {
    const { metrics: m } = await runAccessCounters(1000);
    expect(m.notifications).toBe(0);
    expect(m.migratedRegions).toEqual([]);
    expect(m.dataOk).toBe(true);
  });
});
