/**
 * xe_exec_system_allocator (IGT tests/intel/xe_exec_system_allocator.c): the sections that need a
 * GPU VM with buffer objects — malloc-busy, new-busy, malloc-bo-unmap, new-bo-map and their
 * -nomemset variants — in the shapes once, once-large, twice, twice-large, many, many-64k,
 * many-stride, many-large (`xe-families.ts`). CI runs every section in once-, twice- and one of
 * the many shapes; `XE_FAMILY_ALL=1` runs all 64.
 */
import { createSim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import { expectCoherent, mmapRw, P, W, xeWorld } from './helpers.ts';
import { familySubtests, runFamilySubtest } from './xe-families.ts';
import { ExecQueue, execAndWait } from './xe-model.ts';

describe('xe_exec_system_allocator: busy, bo-unmap, new-bo-map', () => {
  const all = process.env.XE_FAMILY_ALL === '1';
  // shapes 0 once, 2 twice (every section), and section k once more in many (k even) or many-64k
  const pick = (shape: number, k: number) => all || shape === 0 || shape === 2 || shape === 4 + (k % 2);
  for (const t of familySubtests('vm-sections', 1600, pick)) {
    it(`xe_exec_system_allocator: ${t.name}`, () => runFamilySubtest(t));
  }
});

describe('xe exec queues (the model)', () => {
  it('execs of one queue complete in submission order; every exec of either queue runs', async () => {
    const sim = createSim({ seed: 1699 });
    const w = await xeWorld(sim);
    await sim.sched.runMain(async () => {
      const a = await mmapRw(w, P);
      const queues = [new ExecQueue(w, 0), new ExecQueue(w, 1)];
      const order: string[] = [];
      // three submitters, 1 ns apart: each exec is submitted while the first one still runs
      const tasks = (
        [
          ['q0-first', 0, 1],
          ['q1-only', 1, 2],
          ['q0-second', 0, 3],
        ] as const
      ).map(([name, q, v], k) =>
        sim.sched.spawn(name, async () => {
          await sim.sched.sleep(k + 1);
          const r = await execAndWait(w, 0, [[[a + 4 * v, W, v]]], -1, queues[q]);
          expect(r.failed).toBe(0);
          order.push(name);
        }),
      );
      for (const t of tasks) await sim.sched.join(t);
      expect(order.indexOf('q0-first')).toBeLessThan(order.indexOf('q0-second'));
      expect(queues.map((q) => [q.submitted, q.completed])).toEqual([
        [2, 2],
        [1, 1],
      ]);
      for (const v of [1, 2, 3]) expect(await w.mm.readU32(a + 4 * v)).toBe(v);
      expectCoherent(w);
    });
  });
});
