import { ArgumentError, createSim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import { ACCESS, FaultBatch, FaultBuffer, type FaultTarget } from '../src/index.ts';

function entries(b: FaultBatch) {
  const out: [number, number, number, number][] = [];
  for (let k = 0; k < b.count; k++) {
    const i = b.order[k]!;
    out.push([b.instance[i]!, b.va[i]!, b.access[i]!, b.dups[i]!]);
  }
  return out;
}

describe('FaultBuffer', () => {
  it('coalesces duplicates (same 4K page and instance) at fetch time, keeping the most intrusive access', () => {
    const sim = createSim();
    const fb = new FaultBuffer(sim, { capacity: 64 });
    fb.push(0x5000, ACCESS.READ, 0, 1);
    fb.push(0x5ff8, ACCESS.WRITE, 3, 1); // same page → duplicate, upgraded to WRITE
    fb.push(0x5000, ACCESS.READ, 0, 2); // other instance → not a duplicate
    fb.push(0x1000, ACCESS.PREFETCH, 1, 1);
    fb.push(0x1000, ACCESS.ATOMIC, 1, 1);
    fb.push(0x5000, ACCESS.READ, 2, 1);
    const b = new FaultBatch(16);
    expect(fb.fetch(b)).toBe(3);
    expect(b.duplicates).toBe(3);
    expect(fb.pending).toBe(0);
    expect(sim.counters.get('gpu.fault.duplicates')).toBe(3);
    expect(sim.counters.get('gpu.fault.fetched')).toBe(6);
    b.sort();
    expect(entries(b)).toEqual([
      [1, 0x1000, ACCESS.ATOMIC, 1],
      [1, 0x5000, ACCESS.WRITE, 2],
      [2, 0x5000, ACCESS.READ, 0],
    ]);
  });

  it('sorts by address, then access type with the most intrusive first', () => {
    const b = new FaultBatch(8);
    b.reset();
    // distinct pages (no coalescing); same page across instances shows the access order
    b.add(0x3000, ACCESS.READ, 0, 0, 0);
    b.add(0x2000, ACCESS.PREFETCH, 0, 0, 0);
    b.add(0x2000, ACCESS.WRITE, 0, 0, 5);
    b.add(0x1000, ACCESS.WRITE, 0, 0, 0);
    b.sort();
    expect(entries(b).map((e) => [e[0], e[1]])).toEqual([
      [0, 0x1000],
      [0, 0x2000],
      [0, 0x3000],
      [5, 0x2000],
    ]);
  });

  it('fetches at most faultBatchMax (or the given max) per batch, in ring order', () => {
    const sim = createSim({ costs: { faultBatchMax: 4 } });
    const fb = new FaultBuffer(sim, { capacity: 8 });
    for (let i = 0; i < 6; i++) fb.push(i * 4096, ACCESS.READ, 0, 0);
    const b = new FaultBatch(256);
    expect(fb.fetch(b)).toBe(4);
    expect(fb.pending).toBe(2);
    expect(fb.fetch(b, 1)).toBe(1);
    expect(b.va[0]).toBe(4 * 4096);
    expect(() => fb.fetch(b, 0)).toThrow(ArgumentError);
    expect(fb.pending).toBe(1);
    // wrap-around; entries written after the PUT was last read wait for the next fetch
    for (let i = 0; i < 7; i++) fb.push(0x100000 + i * 4096, ACCESS.READ, 0, 0);
    expect(fb.fetch(b, 100)).toBe(1); // GET had not reached the cached PUT: no re-read
    expect(b.va[0]).toBe(5 * 4096);
    expect(fb.fetch(b, 100)).toBe(7); // an explicit max overrides faultBatchMax
    expect(b.va[6]).toBe(0x100000 + 6 * 4096);
    expect(fb.pending).toBe(0);
  });

  it('flush: UPDATE_PUT drops everything written, CACHED_PUT only up to the PUT cached at fetch', () => {
    const sim = createSim({ costs: { faultBatchMax: 2 } });
    const fb = new FaultBuffer(sim, { capacity: 16 });
    const b = new FaultBatch(256);
    for (let i = 0; i < 5; i++) fb.push(i * 4096, ACCESS.READ, 0, 0);
    expect(fb.fetch(b)).toBe(2); // PUT read: 5 known, 2 fetched
    for (let i = 5; i < 8; i++) fb.push(i * 4096, ACCESS.READ, 0, 0); // written while servicing
    expect(fb.flush('cached-put')).toBe(3); // entries 2..4
    expect(fb.pending).toBe(3);
    expect(fb.fetch(b)).toBe(2);
    expect(b.va[0]).toBe(5 * 4096);
    fb.push(9 * 4096, ACCESS.READ, 0, 0);
    expect(fb.flush('update-put')).toBe(2); // entry 7 and the one written after the fetch
    expect(fb.pending).toBe(0);
    expect(() => fb.flush('all' as 'update-put')).toThrow(ArgumentError);
  });

  it('drops faults on overflow and counts them; flush discards pending entries', () => {
    const sim = createSim();
    const fb = new FaultBuffer(sim, { capacity: 2 });
    expect(fb.push(0, ACCESS.READ, 0, 0)).toBe(true);
    expect(fb.push(4096, ACCESS.READ, 0, 0)).toBe(true);
    expect(fb.push(8192, ACCESS.READ, 0, 0)).toBe(false);
    expect(sim.counters.get('gpu.fault.overflow')).toBe(1);
    expect(sim.counters.get('gpu.fault.raised')).toBe(3);
    expect(fb.flush()).toBe(2);
    expect(fb.pending).toBe(0);
  });

  it('raises the interrupt callback when the ring goes from empty to non-empty', () => {
    const fb = new FaultBuffer(createSim(), { capacity: 4 });
    let irqs = 0;
    fb.setInterruptHandler(() => irqs++);
    fb.push(0, ACCESS.READ, 0, 0);
    fb.push(4096, ACCESS.READ, 0, 0);
    expect(irqs).toBe(1);
    fb.flush();
    fb.push(0, ACCESS.READ, 0, 0);
    expect(irqs).toBe(2);
    fb.setInterruptHandler(null);
    fb.flush();
    fb.push(0, ACCESS.READ, 0, 0);
    expect(irqs).toBe(2);
  });

  it('replay and cancel reach the attached target', () => {
    const sim = createSim();
    const fb = new FaultBuffer(sim);
    const log: string[] = [];
    const target: FaultTarget = {
      onReplay: () => log.push('replay'),
      onCancel: (va, inst) => {
        log.push(`cancel ${va.toString(16)} ${inst}`);
        return 2;
      },
    };
    fb.attach(target);
    fb.replay();
    expect(fb.cancel(0x5123, 7)).toBe(2);
    expect(log).toEqual(['replay', 'cancel 5000 7']);
    expect(fb.replayGeneration).toBe(1);
    expect(sim.counters.get('gpu.fault.cancels')).toBe(1);
  });

  it('waitForFaults wakes on a fault and starts gpuFarFaultBaseNs after it was raised', async () => {
    const sim = createSim();
    const fb = new FaultBuffer(sim);
    let woke = -1;
    let done = false;
    sim.sched.spawn('driver', async () => {
      while (await fb.waitForFaults(() => done)) {
        woke = sim.now;
        fb.flush();
      }
    });
    sim.sched.spawn('gpu', async () => {
      await sim.sched.sleep(1000);
      fb.push(0x1000, ACCESS.READ, 0, 0);
      await sim.sched.sleep(100_000);
      done = true;
      fb.kick();
    });
    await sim.sched.run();
    expect(woke).toBe(1000 + sim.costs.gpuFarFaultBaseNs);
  });
});
