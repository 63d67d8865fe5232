/**
 * A small mirroring driver on the public API (hmm, notifier, gpu) with one switch per planted
 * bug, and the storm the planted-bug tests run it in. With `bug: 'none'` it is the correct
 * driver of Documentation/mm/hmm.rst: one interval notifier over the buffer, the
 * read_begin → hmm_range_fault → lock → read_retry loop, a bind under the driver lock, and an
 * invalidate callback that sets the sequence, zaps the device PTEs and flushes the GPU TLB.
 */
import { ACCESS, APERTURE, createGpuDevice, type GpuDevice, makeStreams, PAGE_4K } from '@hmmkit/gpu';
import * as hmm from '@hmmkit/hmm';
import {
  createMachine,
  MADV_DONTNEED,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  Mm,
  PROT_READ,
  PROT_WRITE,
} from '@hmmkit/mm';
import * as mn from '@hmmkit/notifier';
import { Errno, Rng, RwSemaphore, type Sim } from '@hmmkit/sim';
import { CoherenceOracle, type CoherenceOracleOptions } from '../../src/index.ts';

/** The planted bugs. */
export type PlantedBug =
  | 'none'
  | 'no-read-retry'
  | 'no-set-seq'
  | 'no-tlb-flush'
  | 'zap-first-page'
  | 'ignore-pfn-write';

/** A mirror of `[start, end)` on one GPU with one planted bug. */
export class PlantedMirror {
  readonly update: RwSemaphore;
  readonly sub = new mn.MmuIntervalNotifier();
  retries = 0;
  readonly mm: Mm;
  readonly dev: GpuDevice;
  readonly start: number;
  readonly end: number;
  readonly bug: PlantedBug;

  constructor(mm: Mm, dev: GpuDevice, start: number, end: number, bug: PlantedBug) {
    this.mm = mm;
    this.dev = dev;
    this.start = start;
    this.end = end;
    this.bug = bug;
    this.update = new RwSemaphore(mm.sim.sched, 'driver->update');
  }

  init(): Promise<number> {
    const ops = { invalidate: (_s: unknown, r: mn.MmuNotifierRange, seq: number) => this.invalidate(r, seq) };
    return mn.mmuIntervalNotifierInsert(this.sub, this.mm, this.start, this.end - this.start, ops);
  }

  private async invalidate(r: mn.MmuNotifierRange, seq: number): Promise<boolean> {
    if (!mn.mmuNotifierRangeBlockable(r)) return false;
    await this.update.write();
    if (this.bug !== 'no-set-seq') mn.mmuIntervalSetSeq(this.sub, seq);
    const s = Math.max(r.start, this.start);
    const e =
      this.bug === 'zap-first-page' ? Math.min(r.end, this.end, s + PAGE_4K) : Math.min(r.end, this.end);
    const u = this.dev.beginUpdate();
    this.dev.pageTable.unmap(s, e - s, u.pt);
    if (this.bug !== 'no-tlb-flush') u.tlb.invalidate(s, e - s);
    u.end();
    this.update.writeUnlock();
    return true;
  }

  /** Services one GPU fault: hmm_range_fault over the 16-page window, bind every valid page. */
  async fault(va: number, access: number): Promise<number> {
    const page = va - (va % PAGE_4K);
    const win = 16 * PAGE_4K;
    const s = Math.max(this.start, page - (page % win));
    const e = Math.min(this.end, s + win);
    const write = access === ACCESS.WRITE || access === ACCESS.ATOMIC;
    const range = new hmm.HmmRange({ notifier: this.sub, start: s, end: e });
    range.pfnFlagsMask = hmm.HMM_PFN_REQ_FAULT | hmm.HMM_PFN_REQ_WRITE;
    if (!this.mm.mmgetNotZero()) return -Errno.EFAULT;
    try {
      for (;;) {
        range.hmmFlags.fill(0);
        range.hmmFlags[(page - s) / PAGE_4K] = hmm.HMM_PFN_REQ_FAULT | (write ? hmm.HMM_PFN_REQ_WRITE : 0);
        range.notifierSeq = await mn.mmuIntervalReadBegin(this.sub);
        await this.mm.mmapLock.read();
        const ret = await hmm.hmmRangeFault(range);
        this.mm.mmapLock.readUnlock();
        if (ret === -Errno.EBUSY) continue;
        if (ret !== 0) return ret;
        await this.mm.sim.sched.yield(); // the window between the snapshot and the bind
        await this.update.read();
        if (this.bug !== 'no-read-retry' && mn.mmuIntervalReadRetry(this.sub, range.notifierSeq)) {
          this.update.readUnlock();
          this.retries++;
          continue;
        }
        break;
      }
    } finally {
      await this.mm.mmput();
    }
    const u = this.dev.beginUpdate();
    for (let i = 0; i < range.npages; i++) {
      const f = range.hmmFlags[i]!;
      if ((f & hmm.HMM_PFN_VALID) === 0) continue;
      // the planted bug maps every page writable, whatever HMM_PFN_WRITE says (no COW break)
      const writable = this.bug === 'ignore-pfn-write' || (f & hmm.HMM_PFN_WRITE) !== 0;
      const attrs = { aperture: APERTURE.SYS, writable };
      this.dev.pageTable.map(s + i * PAGE_4K, PAGE_4K, range.hmmPfns[i]! * PAGE_4K, attrs, u.pt);
    }
    u.tlb.invalidate(s, e - s); // a read-only → writable upgrade must not hit a stale entry
    u.end();
    this.update.readUnlock();
    return 0;
  }
}

/** What one storm run leaves behind for the test to judge. */
export interface StormRun {
  readonly oracle: CoherenceOracle;
  readonly driver: PlantedMirror;
  readonly gpuFailedWarps: number;
}

const P = PAGE_4K;
const PAGES = 16;

/**
 * The storm: a GPU kernel (4 warps reading word 0 of every page and storing into words 1..4 of
 * pages 0..7, four passes) races a CPU task that, at seeded times, drops pages with
 * MADV_DONTNEED (then touches a spare buffer so the freed frames are reused, and stores new
 * values), write-protects pages 8..15 for a while, stores into word 0, or forks (every page
 * turns copy-on-write; the child stores into its copy and exits). At the end the CPU
 * loads every word and munmaps the buffer (zapping whatever stale mapping is left), and the
 * oracle checks everything. Throws at the first violation when `oracle.throwOnViolation`.
 */
export async function plantedStorm(
  sim: Sim,
  bug: PlantedBug,
  oracleOptions: CoherenceOracleOptions = {},
): Promise<StormRun> {
  const mm = new Mm(createMachine(sim));
  const dev = createGpuDevice(sim, { vramBytes: 8 << 20 });
  const phys = mm.machine.phys;
  const buf = new Uint8Array(4);
  const dv = new DataView(buf.buffer);
  dev.attachSystemMemory({
    read32(pa) {
      phys.readPage(Math.floor(pa / P), pa % P, buf, 0, 4);
      return dv.getUint32(0, true);
    },
    write32(pa, value) {
      dv.setUint32(0, value >>> 0, true);
      phys.writePage(Math.floor(pa / P), pa % P, buf, 0, 4);
    },
  });
  const oracle = new CoherenceOracle(mm, [dev], oracleOptions);
  await oracle.attach();
  const rng = new Rng(sim.sched.seed * 7919 + 17);
  const int = (lo: number, hi: number) => lo + rng.below(hi - lo); // [lo, hi)
  let out: StormRun | null = null;
  sim.sched.spawn('main', async () => {
    const prot = PROT_READ | PROT_WRITE;
    const a = await mm.mmap(0, PAGES * P, prot, MAP_PRIVATE | MAP_ANONYMOUS);
    const spare = await mm.mmap(0, PAGES * P, prot, MAP_PRIVATE | MAP_ANONYMOUS);
    for (let p = 0; p < PAGES; p++) await mm.writeU32(a + p * P, 1000 + p);
    const driver = new PlantedMirror(mm, dev, a, a + PAGES * P, bug);
    await driver.init();
    const warps = Array.from({ length: 4 }, (_, w) => {
      const acc: [number, (typeof ACCESS)[keyof typeof ACCESS], number][] = [];
      for (let pass = 0; pass < 4; pass++) {
        for (let k = 0; k < PAGES; k++) {
          const p = (k + w * 4) % PAGES;
          acc.push([a + p * P, ACCESS.READ, 0]);
          if (p < 8) acc.push([a + p * P + 4 * (1 + w), ACCESS.WRITE, (pass << 8) | (w << 4) | p]);
        }
      }
      return acc;
    });
    let done = false;
    let failed = 0;
    const gpu = sim.sched.spawn('gpu', async () => {
      const handler = dev.faultBuffer;
      const bh = sim.sched.spawn('faults', async () => {
        const batch = dev.newFaultBatch();
        while (await handler.waitForFaults(() => done)) {
          handler.fetch(batch);
          sim.charge(sim.costs.faultBatchFixedNs);
          batch.sort();
          for (let k = 0; k < batch.count; k++) {
            const i = batch.order[k]!;
            if ((await driver.fault(batch.va[i]!, batch.access[i]!)) !== 0)
              handler.cancel(batch.va[i]!, batch.instance[i]!);
          }
          handler.replay();
        }
      });
      const r = await dev.engine.run(makeStreams(warps));
      failed = r.failed;
      done = true;
      handler.kick();
      await sim.sched.join(bh);
    });
    const cpu = sim.sched.spawn('cpu', async () => {
      for (let op = 0; op < 6; op++) {
        await sim.sched.sleep(int(1, 40) * 1000);
        const kind = int(0, 5);
        if (kind <= 1) {
          const p = int(0, PAGES - 4);
          const n = int(1, 4);
          await mm.madvise(a + p * P, n * P, MADV_DONTNEED);
          for (let k = 0; k < n; k++) await mm.writeU32(spare + int(0, PAGES) * P, 7);
          for (let k = 0; k < n; k++) await mm.writeU32(a + (p + k) * P, 2000 + op * 16 + p + k);
        } else if (kind === 2) {
          const p = 8 + int(0, 6);
          await mm.mprotect(a + p * P, 2 * P, PROT_READ);
          await sim.sched.sleep(int(1, 10) * 1000);
          await mm.mprotect(a + p * P, 2 * P, prot);
        } else if (kind === 3) {
          const p = int(0, PAGES);
          await mm.writeU32(a + p * P, 3000 + op * 16 + p);
        } else {
          // fork: every private page becomes copy-on-write; the child writes its own copy
          const child = await mm.fork();
          await child.writeU32(a + int(0, PAGES) * P + 64, 4000 + op);
          await sim.sched.sleep(int(1, 10) * 1000);
          await child.exit();
        }
      }
    });
    await sim.sched.join(cpu);
    await sim.sched.join(gpu);
    // every word the GPU or the CPU stored is loaded back (the data shadow compares each)
    await mm.read(a, PAGES * P);
    await mm.munmap(a, PAGES * P); // zaps whatever stale mapping is left
    oracle.checkAll();
    out = { oracle, driver, gpuFailedWarps: failed };
  });
  await sim.sched.run();
  if (out === null) throw new Error('storm did not finish');
  return out;
}
