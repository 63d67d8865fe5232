/**
 * xe_exec_system_allocator (IGT tests/intel/xe_exec_system_allocator.c): the once- and once-large-
 * subtests of every section today's API expresses, on an xe-like GpuSvm (see xe-model.ts).
 */
import { createSim } from '@hmmkit/sim';
import { describe, it } from 'vitest';
import { expectCoherent, xeWorld } from './helpers.ts';
import { testExec, xeSubtests } from './xe-model.ts';

describe('xe_exec_system_allocator (once)', () => {
  for (const t of xeSubtests(['once', 'once-large'], 100)) {
    it(`xe_exec_system_allocator: ${t.name}`, async () => {
      const sim = createSim({ seed: t.seed });
      const w = await xeWorld(sim);
      await sim.sched.runMain(async () => {
        await testExec(w, t.shape, t.flags);
        expectCoherent(w);
      });
    });
  }
});
