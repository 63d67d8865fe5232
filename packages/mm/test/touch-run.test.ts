import { createSim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  createMachine,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  Mm,
  MmSignalError,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '../src/index.ts';

/** Builds a world, maps three VMAs (4K, THP-advised, read-only after a hole) and touches them. */
async function touchWorld(inRun: boolean) {
  const sim = createSim({ seed: 3 });
  const mm = new Mm(createMachine(sim, { pagesPerNode: 2 ** 16 }));
  const body = async () => {
    const rw = PROT_READ | PROT_WRITE;
    const anon = MAP_PRIVATE | MAP_ANONYMOUS;
    const a = await mm.mmap(0, 3 * PMD_SIZE, rw, anon);
    const h = await mm.mmap(0, 4 * PMD_SIZE, rw, anon);
    await mm.madvise(h, 4 * PMD_SIZE, MADV_HUGEPAGE);
    // a write run that starts mid-page and crosses 2 MiB blocks, then reads over it and beyond
    await mm.touch(a + 100, 2 * PMD_SIZE, true);
    await mm.touch(a, 3 * PMD_SIZE, false);
    await mm.touch(h + PAGE_SIZE, 3 * PMD_SIZE, true);
    let err: unknown = null;
    try {
      await mm.touch(a + 3 * PMD_SIZE - 2 * PAGE_SIZE, 4 * PAGE_SIZE + 4 * PMD_SIZE, true);
    } catch (e) {
      err = e;
    }
    const pfns: number[] = [];
    for (let x = a; x < a + 3 * PMD_SIZE; x += PAGE_SIZE) {
      const t = mm.pt.pteTable(x, false);
      const i = Math.floor(x / PAGE_SIZE) % 512;
      pfns.push(t === null ? -1 : t.val[i]!, t === null ? -1 : t.flags[i]!);
    }
    return { err, pfns };
  };
  const out = inRun ? await sim.sched.runMain(body) : await body();
  return {
    ...out,
    faults: sim.counters.get('mm.faults'),
    thp: sim.counters.get('mm.thp.alloc'),
    rss: mm.rss,
    now: sim.sched.clock.now,
  };
}

describe('Mm.touch: a run of faults per mmap-lock hold outside a scheduler run', () => {
  it('faults, maps, charges and fails exactly as the per-page path inside a run does', async () => {
    const outside = await touchWorld(false);
    const inside = await touchWorld(true);
    expect(outside.faults).toBeGreaterThan(1000);
    expect(outside.thp).toBeGreaterThanOrEqual(3);
    expect(outside.err).toBeInstanceOf(MmSignalError);
    expect((outside.err as MmSignalError).message).toBe((inside.err as MmSignalError).message);
    expect({ ...outside, err: null }).toEqual({ ...inside, err: null });
  });
});

/**
 * A run over a PTE table whose entries are mixed (none, zero page, present writable, read-only
 * after mprotect) that ends in OOM: every fault's trace event and time, and each page's entry
 * and frame metadata, as the per-page path inside a run produces them.
 */
async function mixedWorld(inRun: boolean) {
  const sim = createSim({ seed: 5 });
  const mm = new Mm(createMachine(sim, { pagesPerNode: 700 }));
  const events: number[] = [];
  sim.trace.on('mm.fault', (_id, addr, flags) => events.push(addr, flags, sim.sched.clock.now));
  const body = async () => {
    const rw = PROT_READ | PROT_WRITE;
    const a = await mm.mmap(0, 2 * PMD_SIZE, rw, MAP_PRIVATE | MAP_ANONYMOUS);
    for (let k = 0; k < 512; k += 7) await mm.touch(a + k * PAGE_SIZE, PAGE_SIZE, k % 2 === 0);
    await mm.touch(a + 40 * PAGE_SIZE, 8 * PAGE_SIZE, true);
    await mm.mprotect(a + 60 * PAGE_SIZE, 4 * PAGE_SIZE, PROT_READ);
    await mm.touch(a + 3 * PAGE_SIZE, 200 * PAGE_SIZE, false); // reads across all kinds
    let err: unknown = null;
    try {
      await mm.touch(a + 100 * PAGE_SIZE, 2 * PMD_SIZE - 100 * PAGE_SIZE, true); // runs out of pages
    } catch (e) {
      err = e;
    }
    const pages: number[] = [];
    const p = mm.phys;
    for (let x = a; x < a + 2 * PMD_SIZE; x += PAGE_SIZE) {
      const t = mm.pt.pteTable(x, false);
      const i = Math.floor(x / PAGE_SIZE) % 512;
      const pfn = t === null ? -1 : t.val[i]!;
      pages.push(pfn, t === null ? -1 : t.flags[i]!);
      if (pfn > 0)
        pages.push(p.refcount[pfn]!, p.mapcount[pfn]!, p.flags[pfn]!, p.mapping[pfn]!, p.index[pfn]!);
    }
    return { err: err instanceof MmSignalError ? err.message : String(err), pages };
  };
  const out = inRun ? await sim.sched.runMain(body) : await body();
  return { ...out, events, faults: sim.counters.get('mm.faults'), rss: mm.rss, now: sim.sched.clock.now };
}

describe('Mm.touch: the shared-descent run over one PTE table', () => {
  it('traces, charges, maps and runs out of memory exactly as the per-page path does', async () => {
    const outside = await mixedWorld(false);
    const inside = await mixedWorld(true);
    expect(outside.err).toMatch(/SIGBUS/);
    expect(outside.faults).toBeGreaterThan(600);
    expect(outside.events.length).toBe(3 * outside.faults);
    expect(outside).toEqual(inside);
  });
});
