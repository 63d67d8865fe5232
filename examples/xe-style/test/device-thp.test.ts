import { describe, expect, it } from 'vitest';
import { runDeviceThp } from '../src/device-thp.ts';

describe('xe-style example, device-private 2 MiB folios', () => {
  it('with devmem.thp a THP block moves as one compound entry and comes back as one THP', async () => {
    const m = await runDeviceThp(true);
    expect([m.collected, m.cpuOrderOnDevice, m.cpuOrderBack]).toEqual([1, 9, 9]);
    expect(m.dataOk).toBe(true);
    expect(m.violations).toBe(0);
  });

  it('without it the same block is collected page by page and comes back as 4K pages', async () => {
    const m = await runDeviceThp(false);
    expect([m.collected, m.cpuOrderOnDevice, m.cpuOrderBack]).toEqual([512, 0, 0]);
    expect(m.dataOk).toBe(true);
    expect(m.violations).toBe(0);
  });
});
