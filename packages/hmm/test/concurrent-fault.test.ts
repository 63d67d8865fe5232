/**
 * Concurrent CPU faults on one device-private page (do_swap_page's device-private branch,
 * Linux 6.15+): the fault that wins the page lock takes the reference and calls migrate_to_ram;
 * every loser waits for the page lock WITHOUT a reference and retries. Before the fix the losers
 * held a reference while waiting, migrate_vma_check_page saw the page as pinned, the winner
 * restored it, and the readers spun until "fault ... does not make progress".
 */

import { createMachine, Mm, PTE_DEVICE_PRIVATE, PTE_TYPE_MASK } from '@hmmkit/mm';
import {
  MmuIntervalNotifier,
  MmuNotifier,
  mmuIntervalNotifierInsert,
  mmuIntervalReadBegin,
  mmuIntervalSetSeq,
  mmuNotifierRegister,
} from '@hmmkit/notifier';
import { explore, type Sim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import { HMM_PFN_REQ_FAULT, HMM_PFN_VALID, HmmRange, hmmRangeFault } from '../src/index.ts';
import { anon, makeDriver, P } from './helpers.ts';

/** Device pages in use (the helper driver's DeviceMemory has 2048). */
const used = (mem: { freePages: number }): number => 2048 - mem.freePages;

/**
 * A notifier whose invalidate_range_start sleeps (a driver waiting for its GPU): every
 * invalidation, including migrate_to_ram's MIGRATE one, becomes a point where other tasks run.
 */
async function sleepyNotifier(sim: Sim, mm: Mm): Promise<void> {
  await mmuNotifierRegister(
    new MmuNotifier({
      invalidateRangeStart: async () => {
        await sim.sched.sleep(50);
        return 0;
      },
    }),
    mm,
  );
}

const SEEDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];

describe('concurrent faults on one device-private page', () => {
  it('eight concurrent CPU readers of one migrated address all complete with the right data', async () => {
    const result = await explore(
      async (sim) => {
        const machine = createMachine(sim);
        const mm = new Mm(machine);
        const drv = makeDriver(machine);
        await sleepyNotifier(sim, mm);
        const a = await anon(mm, 4);
        for (let k = 0; k < 4; k++) await mm.writeU32(a + k * P + 8, 1000 + k);
        const { args } = await drv.toDeviceLocked(mm, a, 4);
        expect(args.cpages).toBe(4);
        expect(mm.readEntry(a + P).flags & PTE_TYPE_MASK).toBe(PTE_DEVICE_PRIVATE);
        const seen: number[] = [];
        for (let t = 0; t < 8; t++) {
          sim.sched.spawn(`reader${t}`, async () => {
            seen.push(await mm.readU32(a + P + 8));
          });
        }
        await sim.sched.run();
        expect(seen).toEqual(Array(8).fill(1001));
        // exactly one fault migrated the page: the others waited for its lock and retried
        expect(drv.calls.length).toBe(1);
        expect(mm.readEntry(a + P).flags & PTE_TYPE_MASK).not.toBe(PTE_DEVICE_PRIVATE);
        // the device page went back to the device allocator: no reference leaked
        expect(used(drv.mem)).toBe(3);
        await mm.exit();
        expect(used(drv.mem)).toBe(0);
      },
      { seeds: SEEDS },
    );
    if (result.failure !== null) throw result.failure.error;
    expect(result.runs).toBe(SEEDS.length);
  });

  it('a CPU fault racing hmmRangeFault(REQ_FAULT) on the same device page: both complete', async () => {
    const result = await explore(
      async (sim) => {
        const machine = createMachine(sim);
        const mm = new Mm(machine);
        const drv = makeDriver(machine);
        await sleepyNotifier(sim, mm);
        const sub = new MmuIntervalNotifier();
        await mmuIntervalNotifierInsert(sub, mm, 0, 2 ** 47, {
          invalidate(s, _r, cur) {
            mmuIntervalSetSeq(s, cur);
            return true;
          },
        });
        const a = await anon(mm, 2);
        await mm.writeU32(a + 12, 77);
        await drv.toDeviceLocked(mm, a, 2);
        let cpu = -1;
        let hmmRet = -1;
        let hmmFlags = 0;
        let hmmPfn = -1;
        sim.sched.spawn('cpu', async () => {
          cpu = await mm.readU32(a + 12);
        });
        sim.sched.spawn('other-device', async () => {
          // a second device (owner null) asks for the page: hmm faults it back to RAM
          const range = new HmmRange({
            notifier: sub,
            start: a,
            end: a + P,
            defaultFlags: HMM_PFN_REQ_FAULT,
          });
          for (;;) {
            range.notifierSeq = await mmuIntervalReadBegin(sub);
            await mm.mmapLock.read();
            try {
              hmmRet = await hmmRangeFault(range);
            } finally {
              mm.mmapLock.readUnlock();
            }
            if (hmmRet !== -16) break; // -EBUSY: the sequence moved, retry as drivers do
          }
          hmmFlags = range.hmmFlags[0]!;
          hmmPfn = range.hmmPfns[0]!;
        });
        await sim.sched.run();
        expect(cpu).toBe(77);
        expect(hmmRet).toBe(0);
        expect(hmmFlags & HMM_PFN_VALID).toBe(HMM_PFN_VALID);
        expect(machine.phys.isDevicePrivatePage(hmmPfn)).toBe(false);
        expect(drv.calls.length).toBe(1);
        expect(used(drv.mem)).toBe(1);
        await mm.exit();
        expect(used(drv.mem)).toBe(0);
      },
      { seeds: SEEDS },
    );
    if (result.failure !== null) throw result.failure.error;
    expect(result.runs).toBe(SEEDS.length);
  });
});
