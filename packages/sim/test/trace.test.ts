import { describe, expect, it } from 'vitest';
import { Counters, TraceBus } from '../src/index.ts';

declare module '../src/index.ts' {
  interface TraceEvents {
    'test.ping': [value: number];
  }
}

describe('TraceBus', () => {
  it('delivers typed events only while somebody listens', () => {
    const bus = new TraceBus();
    expect(bus.wants('test.ping')).toBe(false);
    const got: number[] = [];
    const off = bus.on('test.ping', (v) => got.push(v));
    expect(bus.wants('test.ping')).toBe(true);
    bus.emit('test.ping', 3);
    off();
    bus.emit('test.ping', 4);
    expect(got).toEqual([3]);
    expect(bus.wants('test.ping')).toBe(false);
  });
});

describe('Counters', () => {
  it('counts through handles and snapshots sorted', () => {
    const c = new Counters();
    const faults = c.counter('faults');
    faults.add();
    faults.value += 2;
    c.counter('a').add(5);
    expect(c.snapshot()).toEqual({ a: 5, faults: 3 });
    c.reset();
    expect(c.get('faults')).toBe(0);
    expect(c.get('never')).toBe(0);
  });
});

describe('format', () => {
  it('prints virtual time in the unit that reads best, and addresses in hex', async () => {
    const { formatNs, hex } = await import('../src/index.ts');
    expect([formatNs(850), formatNs(12_345), formatNs(4_560_000), formatNs(1.234e9)]).toEqual([
      '850 ns',
      '12.3 µs',
      '4.56 ms',
      '1.23 s',
    ]);
    expect(hex(0x7f0000001000)).toBe('0x7f0000001000');
  });
});
