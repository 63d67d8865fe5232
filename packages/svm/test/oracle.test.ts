import {
  ACCESS,
  type AccessType,
  APERTURE,
  createGpuDevice,
  type GpuDevice,
  makeStreams,
  PAGE_4K,
} from '@hmmkit/gpu';
import {
  createMachine,
  MADV_DONTNEED,
  MADV_FREE,
  MADV_PAGEOUT,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  Mm,
  PROT_READ,
  PROT_WRITE,
} from '@hmmkit/mm';
import { createSim, explore, InvariantError, type Sim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import { CoherenceOracle, type CoherenceOracleOptions, describeViolation } from '../src/index.ts';
import { MiniMirror } from './helpers/mini-mirror.ts';
import { plantedStorm } from './helpers/planted-driver.ts';

async function setup(sim: Sim, opts: CoherenceOracleOptions = {}) {
  const mm = new Mm(createMachine(sim));
  const dev = createGpuDevice(sim);
  const phys = mm.machine.phys;
  const buf = new Uint8Array(4);
  const dv = new DataView(buf.buffer);
  dev.attachSystemMemory({
    read32(pa) {
      phys.readPage(Math.floor(pa / 4096), pa % 4096, buf, 0, 4);
      return dv.getUint32(0, true);
    },
    write32(pa, value) {
      dv.setUint32(0, value >>> 0, true);
      phys.writePage(Math.floor(pa / 4096), pa % 4096, buf, 0, 4);
    },
  });
  const oracle = new CoherenceOracle(mm, [dev], opts);
  await oracle.attach();
  const a = await mm.mmap(0, 16 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  return { mm, dev, oracle, a };
}

/** One warp of data accesses on `dev` (every page must already be mapped: nobody services faults). */
async function gpu(dev: GpuDevice, accesses: [number, AccessType, number][]): Promise<Uint32Array> {
  const s = makeStreams([accesses]);
  const r = await dev.engine.run(s);
  expect(r.faults).toBe(0);
  return s.data!;
}

/** Maps device page `va` to CPU frame `pfn` through the SYS aperture. */
function mapSys(dev: GpuDevice, va: number, pfn: number, writable: boolean): void {
  dev.pageTable.map(va, PAGE_4K, pfn * 4096, { aperture: APERTURE.SYS, writable });
}

describe('CoherenceOracle', () => {
  it('accepts mappings that match the CPU and reports each kind of violation', async () => {
    const sim = createSim({ seed: 1 });
    const { mm, dev, oracle, a } = await setup(sim, { throwOnViolation: false });
    await mm.writeU32(a, 1);
    await mm.writeU32(a + 4096, 2);
    const [p0, w0] = oracle.cpuLookup(a);
    const [p1] = oracle.cpuLookup(a + 4096);
    expect(p0).toBeGreaterThanOrEqual(0);
    expect(w0).toBe(true);
    dev.pageTable.map(a, PAGE_4K, p0 * 4096, { aperture: APERTURE.SYS, writable: true });
    expect(oracle.checkAll()).toEqual([]);
    // wrong pfn
    dev.pageTable.map(a + 4096, PAGE_4K, p0 * 4096, { aperture: APERTURE.SYS, writable: false });
    expect(oracle.checkAll().map((v) => [v.va - a, v.reason, v.cpuPfn])).toEqual([
      [4096, 'pfn-mismatch', p1],
    ]);
    dev.pageTable.unmap(a + 4096, 4096);
    // CPU unmapped: a driver that ignores invalidations keeps the stale page
    await mm.madvise(a, 4096, MADV_DONTNEED);
    const v = oracle.violations.at(-1)!;
    expect([v.va, v.reason, v.when]).toEqual([a, 'cpu-unmapped', 'CLEAR']);
    expect(oracle.checkedInvalidations).toBeGreaterThan(0);
    // write-protect: fork makes the private page read-only in the parent
    dev.pageTable.unmap(a, 4096);
    await mm.writeU32(a + 8192, 3);
    const [p2] = oracle.cpuLookup(a + 8192);
    dev.pageTable.map(a + 8192, PAGE_4K, p2 * 4096, { aperture: APERTURE.SYS, writable: true });
    const before = oracle.violations.length;
    await mm.fork();
    const wp = oracle.violations.slice(before);
    expect(wp.map((x) => [x.va - a, x.reason])).toEqual([[8192, 'writable-after-wp']]);
  });

  it('throws InvariantError by default, and VRAM pages are unknown without a resolver', async () => {
    const sim = createSim({ seed: 1 });
    const { dev, oracle, a } = await setup(sim);
    dev.pageTable.map(a, PAGE_4K, 0x200000, {});
    expect(() => oracle.checkAll()).toThrow(InvariantError);
    expect(oracle.violations[0]!.reason).toBe('unknown-page');
  });

  it('rule 1 covers the TLB: a PTE zapped without the TLB invalidate is flagged at the invalidation end', async () => {
    const sim = createSim({ seed: 3 });
    const { mm, dev, oracle, a } = await setup(sim, { throwOnViolation: false });
    await mm.writeU32(a, 5);
    mapSys(dev, a, oracle.cpuLookup(a)[0], true);
    expect(await gpu(dev, [[a, ACCESS.READ, 0]])).toEqual(Uint32Array.of(5)); // fills the TLB
    dev.pageTable.unmap(a, 4096); // the planted bug: no dev.tlb invalidate
    expect(oracle.checkAll()).toEqual([]); // nothing changed on the CPU yet: the entry is still right
    await mm.madvise(a, 4096, MADV_DONTNEED);
    expect(oracle.violations.map((v) => [v.source, v.reason, v.va - a, v.when])).toEqual([
      ['tlb', 'cpu-unmapped', 0, 'CLEAR'],
    ]);
    // the same driver with the flush is clean; a rule-1 oracle without TLBs sees nothing
    const off = await setup(createSim({ seed: 3 }), { tlb: false });
    await off.mm.writeU32(off.a, 5);
    mapSys(off.dev, off.a, off.oracle.cpuLookup(off.a)[0], true);
    await gpu(off.dev, [[off.a, ACCESS.READ, 0]]);
    off.dev.pageTable.unmap(off.a, 4096);
    await off.mm.madvise(off.a, 4096, MADV_DONTNEED);
    expect(off.oracle.violations).toEqual([]);
  });

  it('rule 2 judges the translation each GPU access uses, even when no later check would see it', async () => {
    const sim = createSim({ seed: 4 });
    const { mm, dev, oracle, a } = await setup(sim, { throwOnViolation: false });
    await mm.writeU32(a, 1);
    await mm.writeU32(a + 4096, 2);
    const p0 = oracle.cpuLookup(a)[0];
    mapSys(dev, a + 4096, p0, false); // a stale bind: page 1 pointing at page 0's frame
    expect(await gpu(dev, [[a + 4096, ACCESS.READ, 0]])).toEqual(Uint32Array.of(1));
    dev.pageTable.unmap(a + 4096, 4096); // a later zap hides it from rule 1
    dev.tlb.invalidateAll();
    expect(oracle.checkAll()).toEqual([]);
    const got = oracle.violations.map((v) => [v.source, v.reason, v.va - a, v.when, v.expected, v.actual]);
    expect(got).toEqual([
      ['access', 'pfn-mismatch', 4096, 'gpu-read', undefined, undefined],
      ['data', 'lost-write', 4096, 'gpu-read', 2, 1],
    ]);
    expect(oracle.checkedAccesses).toBe(1);
    expect(describeViolation(oracle.violations[1]!)).toMatch(
      /loaded 0x1 at 0x[0-9a-f]+ where 0x2 was last stored.*seed 4/,
    );
  });

  it('rule 2 flags a GPU store through a page the CPU maps read-only', async () => {
    const sim = createSim({ seed: 5 });
    const { mm, dev, oracle, a } = await setup(sim, { throwOnViolation: false });
    await mm.writeU32(a, 1);
    await mm.mprotect(a, 4096, PROT_READ);
    mapSys(dev, a, oracle.cpuLookup(a)[0], true); // a bind that ignored HMM_PFN_WRITE
    await gpu(dev, [
      [a, ACCESS.READ, 0],
      [a, ACCESS.WRITE, 9],
    ]);
    expect(oracle.violations.map((v) => [v.source, v.reason, v.when])).toEqual([
      ['access', 'write-to-readonly', 'gpu-write'],
    ]);
    expect(() => new CoherenceOracle(mm, [dev]).check(a, a + 4096)).toThrow(/writable-after-wp.*seed 5/);
  });

  it('rule 3: loads return the last store of either side; discarded content is forgotten, kept content is not', async () => {
    const sim = createSim({ seed: 6 });
    const { mm, dev, oracle, a } = await setup(sim, { throwOnViolation: false });
    for (let p = 0; p < 4; p++) await mm.writeU32(a + p * 4096, 10 + p);
    for (let p = 0; p < 4; p++) mapSys(dev, a + p * 4096, oracle.cpuLookup(a + p * 4096)[0], true);
    // GPU stores and an atomic, CPU loads them back
    await gpu(dev, [
      [a + 4, ACCESS.WRITE, 77],
      [a + 4096, ACCESS.ATOMIC, 5],
      [a + 8192, ACCESS.READ, 0],
    ]);
    expect(await mm.readU32(a + 4)).toBe(77);
    expect(await mm.readU32(a + 4096)).toBe(16);
    expect(oracle.checkedLoads).toBe(4); // GPU read + atomic, two CPU reads
    dev.pageTable.unmap(a, 4 * 4096); // the device lets go before the CPU side changes
    dev.tlb.invalidateAll();
    // MADV_DONTNEED discards page 0 (a zero-filled page follows); mprotect keeps page 1
    await mm.madvise(a, 4096, MADV_DONTNEED);
    await mm.mprotect(a + 4096, 4096, PROT_READ);
    expect(await mm.readU32(a + 4)).toBe(0);
    expect(await mm.readU32(a + 4096)).toBe(16);
    // fork: the child's stores land in its own copy and never in the parent's shadow
    const child = await mm.fork();
    await child.writeU32(a + 8192, 999);
    expect(await mm.readU32(a + 8192)).toBe(12);
    expect(oracle.violations).toEqual([]);
    // a frame changed behind the mm's back (a lost write) is caught at the next CPU load
    const pfn3 = oracle.cpuLookup(a + 3 * 4096)[0];
    mm.machine.phys.writePage(pfn3, 0, Uint8Array.of(1, 0, 0, 0), 0, 4);
    await mm.read(a + 3 * 4096, 8);
    expect(oracle.violations.map((v) => [v.device, v.source, v.reason, v.expected, v.actual])).toEqual([
      [-1, 'data', 'lost-write', 13, 1],
    ]);
  });

  it('rule 3 keeps content across swap-out and swap-in, and forgets MADV_FREE pages only once reclaimed', async () => {
    const sim = createSim({ seed: 9 });
    const { mm, oracle, a } = await setup(sim, { throwOnViolation: true });
    await mm.writeU32(a, 41);
    await mm.writeU32(a + 4096, 42);
    expect(await mm.madvise(a, 4096, MADV_PAGEOUT)).toBe(0);
    expect(oracle.cpuLookup(a)[0]).toBe(-1); // a swap entry: not mapped, content kept
    expect(oracle.shadow!.hasPage(a)).toBe(true);
    expect(await mm.readU32(a)).toBe(41); // swapped back in and compared
    expect(await mm.madvise(a + 4096, 4096, MADV_FREE)).toBe(0);
    expect(await mm.readU32(a + 4096)).toBe(42); // not reclaimed yet: the old data is still there
    expect(await mm.madvise(a + 4096, 4096, MADV_PAGEOUT)).toBe(0); // reclaim discards a lazy-free page
    expect(await mm.readU32(a + 4096)).toBe(0);
    expect(oracle.violations).toEqual([]);
  });

  it('rule 3 leaves shared mappings alone (one frame, several addresses)', async () => {
    const sim = createSim({ seed: 7 });
    const { mm, oracle } = await setup(sim);
    const s = await mm.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS);
    await mm.writeU32(s, 1);
    const child = await mm.fork();
    await child.writeU32(s, 2); // the parent sees the child's store: not a lost write
    expect(await mm.readU32(s)).toBe(2);
    expect(oracle.shadow!.size).toBe(0);
  });

  it('does not perturb what it watches: the same seed runs the same schedule with or without rules 2 and 3', async () => {
    for (const seed of [1, 2, 3]) {
      const full = createSim({ seed });
      const lean = createSim({ seed });
      const a = await plantedStorm(full, 'none');
      const b = await plantedStorm(lean, 'none', { accesses: false, shadow: false });
      expect(a.oracle.checkedAccesses).toBeGreaterThan(0);
      expect(b.oracle.checkedAccesses).toBe(0);
      expect(full.now).toBe(lean.now);
      expect(full.sched.schedule).toEqual(lean.sched.schedule);
    }
  });

  it('costs nothing when rules 2 and 3 are off: nobody listens to the access events', async () => {
    const sim = createSim({ seed: 8 });
    const { oracle } = await setup(sim, { accesses: false, shadow: false });
    expect(oracle.shadow).toBeNull();
    expect(sim.trace.wants('gpu.access')).toBe(false);
    expect(sim.trace.wants('mm.access')).toBe(false);
    const on = await setup(createSim({ seed: 8 }));
    expect(on.mm.sim.trace.wants('gpu.access')).toBe(true);
    on.oracle.detachAccesses();
    expect(on.mm.sim.trace.wants('gpu.access')).toBe(false);
  });

  it('a correct mirror never violates coherence across seeds', async () => {
    stats.retries = 0;
    const r = await explore(scenario(false), { seeds: 40 });
    expect(r.failure).toBeNull();
    expect(r.runs).toBe(40);
    // the race was exercised: some seeds hit readRetry and re-faulted
    expect(stats.retries).toBeGreaterThan(0);
  });

  it('catches the broken driver that skips readRetry within a bounded number of seeds, and the seed replays', async () => {
    const r = await explore(scenario(true), { seeds: 64 });
    expect(r.failure).not.toBeNull();
    const f = r.failure!;
    expect(f.seed).toBeLessThanOrEqual(64);
    expect(String(f.error)).toMatch(/coherence: device 0 maps/);
    // replaying the recorded schedule reproduces the same failure
    const sim = createSim({ replay: f.schedule });
    await expect(scenario(true)(sim)).rejects.toThrow(/coherence: device 0 maps/);
    // and so does re-running the same seed
    await expect(scenario(true)(createSim({ seed: f.seed }))).rejects.toThrow(/coherence/);
  });
});

const stats = { retries: 0 };

/** Driver task mirrors pages while a CPU task zaps and rewrites them. */
function scenario(broken: boolean) {
  return async (sim: Sim): Promise<void> => {
    const { mm, dev, oracle, a } = await setup(sim);
    const mirror = new MiniMirror(mm, dev, oracle);
    mirror.skipReadRetry = broken;
    await mirror.init(a, 16 * 4096);
    for (let i = 0; i < 4; i++) await mm.writeU32(a + i * 4096, i + 1);
    sim.sched.spawn('gpu-driver', async () => {
      for (let i = 0; i < 4; i++) await mirror.faultPage(a + i * 4096, true);
    });
    sim.sched.spawn('cpu', async () => {
      for (let i = 0; i < 4; i++) {
        await sim.sched.yield();
        await mm.madvise(a + i * 4096, 4096, MADV_DONTNEED);
        // the freed frame goes to another page, so the rewrite below gets a different pfn
        await mm.writeU32(a + (8 + i) * 4096, 1);
        await mm.writeU32(a + i * 4096, 100 + i);
      }
    });
    await sim.sched.run();
    stats.retries += mirror.retries;
    oracle.checkAll();
  };
}
