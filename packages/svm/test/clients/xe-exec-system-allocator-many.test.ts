/**
 * xe_exec_system_allocator (IGT tests/intel/xe_exec_system_allocator.c): the 128-exec subtests
 * (many-, many-64k-, many-stride-, many-large-). CI runs a sample (xe-model.ts `manySample`): every
 * section once, in many- or many-64k-, split over this file and its sibling; `XE_MANY_ALL=1` runs
 * all four shapes of this file's sections (minutes, not a CI run).
 */
import { createSim } from '@hmmkit/sim';
import { describe, it } from 'vitest';
import { expectCoherent, xeWorld } from './helpers.ts';
import { MANY_SHAPES, manySample, testExec, xeSubtests } from './xe-model.ts';

const FILE = 0;

describe('xe_exec_system_allocator (many, sample)', () => {
  const all = process.env.XE_MANY_ALL === '1';
  for (const t of xeSubtests(MANY_SHAPES, 500, manySample(FILE, all))) {
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
