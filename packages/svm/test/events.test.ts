/**
 * Typed migration / fault / unmap / queue events with their trigger (amdkfd's SMI events): each
 * trigger is reported for the operation that causes it, and the pages the end events report add
 * up to the pages the migration counters saw.
 */
import { ACCESS } from '@hmmkit/gpu';
import { PROT_READ } from '@hmmkit/mm';
import { createSim, type Sim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  createSvmWorld,
  deviceLoc,
  LOC,
  MIGRATE_TRIGGER,
  mmapAnonymous,
  runKernel,
  type SvmWorld,
  type SvmWorldOptions,
  UNMAP_TRIGGER,
  worldVerdict,
} from '../src/index.ts';

const P = 4096;
const M2 = 0x200000;
const R = ACCESS.READ;
const W = ACCESS.WRITE;
const GPU = deviceLoc(0);

type Mig = { start: number; pages: number; from: number; to: number; trigger: number; moved: number };

/** Collects every svm event of a world. */
function record(w: SvmWorld) {
  const starts: Omit<Mig, 'moved'>[] = [];
  const ends: Mig[] = [];
  const faults: { start: number; end: number; migrated: number } = { start: 0, end: 0, migrated: 0 };
  const unmaps: { dev: number; start: number; end: number; trigger: number }[] = [];
  const queue: string[] = [];
  const t = w.sim.trace;
  t.on('svm.migrate.start', (start, pages, from, to, trigger) =>
    starts.push({ start, pages, from, to, trigger }),
  );
  t.on('svm.migrate.end', (start, pages, from, to, trigger, moved) =>
    ends.push({ start, pages, from, to, trigger, moved }),
  );
  t.on('svm.pagefault.start', () => faults.start++);
  t.on('svm.pagefault.end', (_d, _va, migrated) => {
    faults.end++;
    faults.migrated += migrated;
  });
  t.on('svm.unmap.gpu', (dev, start, end, trigger) => unmaps.push({ dev, start, end, trigger }));
  t.on('svm.queue.evict', (dev) => queue.push(`evict ${dev}`));
  t.on('svm.queue.restore', (dev) => queue.push(`restore ${dev}`));
  const moved = (trigger: number, to?: number) =>
    ends
      .filter((e) => e.trigger === trigger && (to === undefined || e.to === to))
      .reduce((n, e) => n + e.moved, 0);
  return { starts, ends, faults, unmaps, queue, moved };
}

async function run(seed: number, opts: SvmWorldOptions, body: (w: SvmWorld) => Promise<void>): Promise<void> {
  const sim: Sim = createSim({ seed });
  const w = await createSvmWorld(sim, { devmem: { migrate: 'fault' }, vramBytes: 16 << 20, ...opts });
  await sim.sched.runMain(async () => {
    await body(w);
    expect(worldVerdict(w).violations).toBe(0);
  });
}

const toVram = (w: SvmWorld) => w.sim.counters.get('svm.migrate.toVram.pages');
const toRam = (w: SvmWorld) => w.sim.counters.get('svm.migrate.toRam.pages');

describe('KFDSVMRangeTest', () => {
  it('KFDSVMRangeTest.HMMProfilingEvent', () =>
    run(10, {}, async (w) => {
      // the reader opens the SMI stream first; the first message is the prefetch's migrate start
      const msgs: string[] = [];
      w.sim.trace.on('svm.migrate.start', (start, pages, _from, _to, trigger) =>
        msgs.push(`start ${start} ${pages} ${trigger}`),
      );
      const size = 16 << 10;
      const buf = await mmapAnonymous(w.mm, size);
      w.svm.attrs.advise(buf, buf + size, { setAccessedBy: 1 });
      expect(await w.svm.prefetch(buf, buf + size, GPU)).toBe(size / P);
      expect(msgs[0]).toBe(`start ${buf} ${size / P} ${MIGRATE_TRIGGER.PREFETCH}`);
    }));
});

describe('SMI-style events', () => {
  it('prefetch, GPU fault, CPU fault and eviction each report their trigger; pages add up to the counters', () =>
    run(1, { devmem: { migrate: 'fault', bytes: 4 << 20 } }, async (w) => {
      const ev = record(w);
      const a = await mmapAnonymous(w.mm, 2 * M2, 0x40000000);
      const b = await mmapAnonymous(w.mm, 2 * M2, 0x50000000);
      for (let k = 0; k < 2 * M2; k += P) {
        await w.mm.writeU32(a + k, k);
        await w.mm.writeU32(b + k, k + 1);
      }
      // prefetch of a (4 MiB = the whole pool) to VRAM
      expect(await w.svm.prefetch(a, a + 2 * M2, GPU)).toBe(1024);
      expect(ev.moved(MIGRATE_TRIGGER.PREFETCH, GPU)).toBe(1024);
      expect(
        ev.starts.filter((s) => s.trigger === MIGRATE_TRIGGER.PREFETCH).every((s) => s.from === LOC.SYSMEM),
      ).toBe(true);
      // a GPU fault on b: migrates b's first 2 MiB block, evicting a chunk of a
      const r = await runKernel(w, 0, [[[b, R, 0]]]);
      expect(r.failed).toBe(0);
      expect(ev.moved(MIGRATE_TRIGGER.GPU_FAULT, GPU)).toBeGreaterThan(0);
      expect(ev.moved(MIGRATE_TRIGGER.TTM_EVICTION, LOC.SYSMEM)).toBeGreaterThan(0);
      expect(
        ev.ends.filter((e) => e.trigger === MIGRATE_TRIGGER.TTM_EVICTION).every((e) => e.from === GPU),
      ).toBe(true);
      // page faults: one end per start, and their migrated pages are the GPU-fault migrations
      expect(ev.faults.start).toBeGreaterThan(0);
      expect(ev.faults.end).toBe(ev.faults.start);
      expect(ev.faults.migrated).toBe(ev.moved(MIGRATE_TRIGGER.GPU_FAULT));
      // a CPU read of a page of b now in VRAM: migrate_to_ram
      expect(await w.mm.readU32(b + 8 * P)).toBe(8 * P + 1);
      expect(ev.moved(MIGRATE_TRIGGER.CPU_FAULT, LOC.SYSMEM)).toBeGreaterThan(0);
      expect(ev.ends.find((e) => e.trigger === MIGRATE_TRIGGER.CPU_FAULT)!.from).toBe(GPU);
      // prefetch back to system memory
      const before = ev.moved(MIGRATE_TRIGGER.PREFETCH, LOC.SYSMEM);
      expect(await w.svm.prefetch(a, a + 2 * M2, LOC.SYSMEM)).toBeGreaterThan(0);
      expect(ev.moved(MIGRATE_TRIGGER.PREFETCH, LOC.SYSMEM)).toBeGreaterThan(before);
      // every start has its end; the end events account for every page the counters saw
      expect(ev.ends.length).toBe(ev.starts.length);
      const vram = ev.ends.filter((e) => e.to === GPU).reduce((n, e) => n + e.moved, 0);
      const ram = ev.ends.filter((e) => e.to === LOC.SYSMEM).reduce((n, e) => n + e.moved, 0);
      expect([vram, ram]).toEqual([toVram(w), toRam(w)]);
      // data intact
      expect(await w.mm.readU32(a + 5 * P)).toBe(5 * P);
    }));

  it('unmap from GPU reports munmap, a migration and a CPU-side change (mprotect) by trigger', () =>
    run(2, { devmem: { migrate: 'never' } }, async (w) => {
      const ev = record(w);
      const a = await mmapAnonymous(w.mm, 4 * P, 0x40000000);
      const r = await runKernel(w, 0, [[[a, W, 1]], [[a + 2 * P, W, 2]]]);
      expect(r.failed).toBe(0);
      expect(await w.mm.mprotect(a, 4 * P, PROT_READ)).toBe(0);
      const mp = ev.unmaps.filter((u) => u.trigger === UNMAP_TRIGGER.MMU_NOTIFY);
      expect(mp.length).toBeGreaterThan(0);
      expect(mp.every((u) => u.dev === 0 && u.start >= a && u.end <= a + 4 * P)).toBe(true);
      expect(mp.some((u) => u.start <= a + 2 * P && u.end > a + 2 * P)).toBe(true);
      // map again, then munmap
      expect((await runKernel(w, 0, [[[a, R, 0]]])).failed).toBe(0);
      expect(await w.mm.munmap(a, 4 * P)).toBe(0);
      expect(ev.unmaps.filter((u) => u.trigger === UNMAP_TRIGGER.UNMAP_FROM_CPU).length).toBeGreaterThan(0);
      expect(ev.unmaps.filter((u) => u.trigger === UNMAP_TRIGGER.MMU_NOTIFY_MIGRATE).length).toBe(0);
    }));

  it('a migration of mapped pages unmaps them with the MIGRATE trigger', () =>
    run(3, { devmem: { migrate: 'never' } }, async (w) => {
      const ev = record(w);
      const a = await mmapAnonymous(w.mm, 4 * P, 0x40000000);
      expect((await runKernel(w, 0, [[[a, W, 1]]])).failed).toBe(0);
      expect(ev.unmaps.length).toBe(0);
      expect(await w.svm.prefetch(a, a + 4 * P, GPU)).toBe(4);
      expect(ev.unmaps.filter((u) => u.trigger === UNMAP_TRIGGER.MMU_NOTIFY_MIGRATE).length).toBeGreaterThan(
        0,
      );
    }));

  it('with XNACK off an invalidated granted page is a queue eviction then a restore', () =>
    run(4, { xnack: false }, async (w) => {
      const ev = record(w);
      const a = await mmapAnonymous(w.mm, 4 * P, 0x40000000);
      w.svm.attrs.advise(a, a + 4 * P, { setAccessedBy: 1 });
      await w.svm.prefetch(a, a + 4 * P, GPU);
      await w.mm.writeU32(a, 5); // CPU fault: back to system memory, GPU PTEs gone
      expect(ev.moved(MIGRATE_TRIGGER.CPU_FAULT)).toBeGreaterThan(0);
      const r = await runKernel(w, 0, [[[a, R, 0]]]);
      expect([r.failed, r.data[0]]).toEqual([0, 5]);
      expect(ev.queue).toEqual(['evict 0', 'restore 0']);
    }));

  it('costs nothing when nobody listens: no svm event is emitted', () =>
    run(5, { devmem: { migrate: 'fault', bytes: 2 << 20 } }, async (w) => {
      const t = w.sim.trace;
      const emit = t.emit.bind(t);
      let svmEmits = 0;
      t.emit = ((name: string, ...args: unknown[]) => {
        if (name.startsWith('svm.')) svmEmits++;
        (emit as (n: string, ...a: unknown[]) => void)(name, ...args);
      }) as typeof t.emit;
      const a = await mmapAnonymous(w.mm, 2 * M2, 0x40000000);
      await w.svm.prefetch(a, a + M2, GPU);
      expect((await runKernel(w, 0, [[[a + M2, W, 1]]])).failed).toBe(0); // evicts, migrates
      await w.mm.readU32(a);
      expect(await w.mm.munmap(a, 2 * M2)).toBe(0);
      expect(toVram(w)).toBeGreaterThan(0);
      expect(svmEmits).toBe(0);
    }));
});
