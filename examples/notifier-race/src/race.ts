/**
 * The notifier protocol at work, told step by step: a GPU driver mirrors a CPU page while the
 * CPU unmaps it. The scheduler is steered (by seed) into the interleaving where the unmap lands
 * between the driver's page-table snapshot and its commit, which is exactly the window the
 * mmu_interval_read_begin / read_retry pair exists to close.
 */
import {
  MmuIntervalNotifier,
  type MmuNotifierRange,
  MmuNotifyEvent,
  mmuIntervalNotifierInsert,
  mmuIntervalReadBegin,
  mmuIntervalReadRetry,
  mmuIntervalSetSeq,
  mmuNotifierInvalidateRangeEnd,
  mmuNotifierInvalidateRangeStart,
  mmuNotifierRangeInit,
  type NotifierMm,
} from '@hmmkit/notifier';
import { createSim, hex, Mutex, RwSemaphore } from '@hmmkit/sim';

const PAGE = 4096;

/** What one run of the scenario did. */
export interface RaceResult {
  readonly lines: string[];
  readonly retries: number;
  /** Device PTEs that map a page the CPU no longer maps (must be 0 for a correct driver). */
  readonly stale: number;
  readonly seed: number;
}

/**
 * One run: `cpu` munmaps page 1 while `gpu-fault` mirrors pages 0..3. With `checkRetry` false
 * the driver skips mmu_interval_read_retry (the classic bug).
 */
export async function runRace(seed: number, checkRetry = true): Promise<RaceResult> {
  const sim = createSim({ seed });
  const lines: string[] = [];
  const log = (who: string, what: string) =>
    lines.push(`  t=${String(sim.now).padStart(5)}ns  ${who.padEnd(10)} ${what}`);

  // A toy CPU mm: one PTE per page holding a pfn (0 = not present).
  const cpuPte = new Int32Array([0x11, 0x12, 0x13, 0x14]);
  const mm: NotifierMm = {
    sim,
    mmapLock: new RwSemaphore(sim.sched, 'mmap_lock'),
    mmUsers: 1,
    notifierSubscriptions: null,
  };

  // The driver: a device page table, its update lock, and an interval notifier over the buffer.
  const devPte = new Int32Array(4);
  const update = new Mutex(sim.sched, 'driver->update');
  const sub = new MmuIntervalNotifier();
  let retries = 0;
  await mmuIntervalNotifierInsert(sub, mm, 0, 4 * PAGE, {
    invalidate: async (s, range: MmuNotifierRange, curSeq) => {
      await update.lock();
      mmuIntervalSetSeq(s, curSeq);
      for (let p = range.start / PAGE; p < range.end / PAGE; p++) devPte[p] = 0;
      log(
        'driver',
        `invalidate(${hex(range.start)}..${hex(range.end)}): set_seq(${curSeq}), zap device PTEs`,
      );
      update.unlock();
      return true;
    },
  });

  sim.sched.spawn('gpu-fault', async () => {
    for (let page = 0; page < 4; page++) {
      for (;;) {
        const seq = await mmuIntervalReadBegin(sub);
        log('gpu-fault', `mmu_interval_read_begin → seq ${seq}`);
        await mm.mmapLock.read();
        const pfn = cpuPte[page]!; // hmm_range_fault: snapshot the CPU PTE
        mm.mmapLock.readUnlock();
        log(
          'gpu-fault',
          `hmm_range_fault(VA ${hex(page * PAGE)}) → ${pfn ? `pfn ${hex(pfn)}` : 'not present'}`,
        );
        sim.charge(100);
        await update.lock();
        if (checkRetry && mmuIntervalReadRetry(sub, seq)) {
          update.unlock();
          retries++;
          log(
            'gpu-fault',
            `lock; mmu_interval_read_retry(seq ${seq}) → true: collision, drop the snapshot, retry`,
          );
          continue;
        }
        devPte[page] = pfn;
        const check = checkRetry ? 'read_retry → false;' : '(no read_retry!)';
        log(
          'gpu-fault',
          `lock; ${check} program device PTE ${hex(page * PAGE)} → ${pfn ? hex(pfn) : 'invalid'}`,
        );
        update.unlock();
        break;
      }
    }
  });

  sim.sched.spawn('cpu', async () => {
    await sim.sched.yield();
    await mm.mmapLock.write();
    const range = mmuNotifierRangeInit(MmuNotifyEvent.UNMAP, 0, mm, PAGE, 2 * PAGE);
    log('cpu', `munmap(${hex(PAGE)}, 4096): invalidate_range_start(UNMAP)`);
    await mmuNotifierInvalidateRangeStart(range);
    cpuPte[1] = 0;
    sim.charge(1000);
    await mmuNotifierInvalidateRangeEnd(range);
    log('cpu', `PTE cleared; invalidate_range_end → global seq ${mm.notifierSubscriptions!.invalidateSeq}`);
    mm.mmapLock.writeUnlock();
  });

  await sim.sched.run();
  let stale = 0;
  for (let p = 0; p < 4; p++) if (devPte[p] !== 0 && devPte[p] !== cpuPte[p]) stale++;
  return { lines, retries, stale, seed };
}

/** The interleaving worth showing: the snapshot saw the page mapped, then the unmap collided. */
export function collidedAfterSnapshot(r: RaceResult): boolean {
  const i = r.lines.findIndex((l) => l.includes('hmm_range_fault(VA 0x1000) → pfn 0x12'));
  const next = r.lines.slice(i + 1).find((l) => l.includes('gpu-fault'));
  return i >= 0 && next !== undefined && next.includes('→ true: collision');
}

/** The first seed in 1..limit whose run satisfies `want`. */
export async function findSeed(
  want: (r: RaceResult) => boolean,
  checkRetry: boolean,
  limit = 500,
): Promise<RaceResult> {
  for (let seed = 1; seed <= limit; seed++) {
    const r = await runRace(seed, checkRetry);
    if (want(r)) return r;
  }
  throw new Error(`no seed in 1..${limit} produced the interleaving`);
}
