import { MmuNotifier, mmuNotifierRegister } from '@hmmkit/notifier';
import { createSim, explore } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  MADV_DONTNEED,
  MADV_PAGEOUT,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '../src/constants.ts';
import { createMachine, MmSignalError } from '../src/machine.ts';
import { Mm } from '../src/mm.ts';

const RW = PROT_READ | PROT_WRITE;
const P = PAGE_SIZE;

describe('concurrency (scheduler interleavings)', () => {
  it('CPU threads, munmap/mprotect/DONTNEED/PAGEOUT and a sleeping notifier never corrupt the mm', async () => {
    const result = await explore(
      async (sim) => {
        const machine = createMachine(sim, { thp: 'always' });
        const mm = new Mm(machine);
        // a notifier whose callbacks sleep: every invalidation is a scheduling point
        await mmuNotifierRegister(
          new MmuNotifier({
            invalidateRangeStart: async () => {
              await sim.sched.sleep(50);
              return 0;
            },
          }),
          mm,
        );
        const m = await mm.mmap(0, 3 * PMD_SIZE, RW, MAP_PRIVATE | MAP_ANONYMOUS);
        const base = Math.ceil(m / PMD_SIZE) * PMD_SIZE;
        const N = 600;
        const child = { mm: null as Mm | null };
        for (let t = 0; t < 2; t++) {
          sim.sched.spawn(`cpu${t}`, async () => {
            for (let i = 0; i < 40; i++) {
              const a = base + ((i * 37 + t * 11) % N) * P;
              try {
                await mm.writeU32(a + 4 * t, i);
                const v = await mm.readU32(a + 4 * t);
                // another thread may have zapped the page in between: then it reads 0
                if (v !== i && v !== 0) throw new Error(`read ${v}, wrote ${i}`);
              } catch (e) {
                if (!(e instanceof MmSignalError)) throw e;
              }
            }
          });
        }
        sim.sched.spawn('syscalls', async () => {
          expect(await mm.madvise(base, 64 * P, MADV_DONTNEED)).toBe(0);
          expect(await mm.mprotect(base + 100 * P, 50 * P, PROT_READ)).toBe(0);
          expect(await mm.madvise(base + 200 * P, 100 * P, MADV_PAGEOUT)).toBe(0);
          child.mm = await mm.fork();
          expect(await mm.munmap(base + 300 * P, 20 * P)).toBe(0);
          expect(await mm.mprotect(base + 100 * P, 50 * P, RW)).toBe(0);
        });
        await sim.sched.run();
        // the mm is consistent: every mapped page is readable and rss matches the page tables
        let present = 0;
        for (let a = m; a < m + 3 * PMD_SIZE; a += P) {
          const e = mm.readEntry(a);
          if (e.flags !== 0 && (e.flags & 7) === 1 && !mm.phys.isZeroPfn(e.val)) present++;
        }
        expect(present).toBe(mm.rss);
        await child.mm?.exit();
        await mm.exit();
        expect(machine.phys.nodes[0]!.usedPages).toBe(0);
        expect(machine.phys.swap.used).toBe(0);
      },
      { seeds: 12 },
    );
    if (result.failure !== null) throw result.failure.error;
    expect(result.runs).toBe(12);
  });
});

describe('migration entries block CPU access until the page is unlocked', () => {
  it('a CPU read waits on the folio lock, then sees the restored page', async () => {
    const sim = createSim({ seed: 7 });
    const machine = createMachine(sim);
    const mm = new Mm(machine);
    const a = await mm.mmap(0, PAGE_SIZE, RW, MAP_PRIVATE | MAP_ANONYMOUS);
    await mm.writeU32(a, 99);
    const pfn = mm.readEntry(a).val;
    const order: string[] = [];
    sim.sched.spawn('migrator', async () => {
      expect(machine.phys.trylockPage(pfn)).toBe(true);
      expect(mm.installMigrationEntry(a)).toBe(pfn);
      await sim.sched.sleep(1000);
      order.push('restore');
      mm.removeMigrationPtes(pfn, pfn);
      machine.phys.putPage(pfn);
      machine.phys.unlockPage(pfn);
    });
    sim.sched.spawn('cpu', async () => {
      await sim.sched.sleep(10);
      const v = await mm.readU32(a);
      order.push(`read ${v}`);
    });
    await sim.sched.run();
    expect(order).toEqual(['restore', 'read 99']);
    expect(sim.now).toBeGreaterThanOrEqual(1000);
  });
});
