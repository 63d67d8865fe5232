/**
 * Planted granule-policy bugs: a policy whose range runs past the VMA end, and one whose range
 * is not page aligned. GpuSvm must reject either with an ArgumentError that names the policy
 * (the fault fails at the culprit), not fault a hole or crash deeper in hmm.
 */
import { ACCESS } from '@hmmkit/gpu';
import { ArgumentError, createSim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  createSvmWorld,
  drmGpusvmPolicy,
  type GranulePolicy,
  mmapAnonymous,
  runKernel,
} from '../src/index.ts';

/** drm_gpusvm's policy with its answer bent by `bend`. */
function planted(name: string, bend: (end: number, vmaEnd: number) => number): GranulePolicy {
  const base = drmGpusvmPolicy();
  return {
    name,
    choose(ctx) {
      const r = base.choose(ctx);
      if ('error' in r) return r;
      const end = bend(r.end, ctx.vmaEnd);
      return { ...r, end, faultEnd: end };
    },
  };
}

describe('planted granule-policy bugs', () => {
  const cases = [
    ['a range past the VMA end', planted('past-vma-end', (_end, vmaEnd) => vmaEnd + 65536)],
    ['an unaligned range', planted('unaligned-end', (end) => end - 100)],
  ] as const;
  for (const [what, policy] of cases) {
    it(`${what} is rejected with an ArgumentError naming the policy`, async () => {
      const sim = createSim({ seed: 1 });
      const w = await createSvmWorld(sim, { granule: policy });
      const run = sim.sched.runMain(async () => {
        const a = await mmapAnonymous(w.mm, 16 * 4096);
        await mmapAnonymous(w.mm, 16 * 4096, a + 16 * 4096); // a neighbour the range must not reach
        await runKernel(w, 0, [[[a, ACCESS.READ, 0]]]);
      });
      const err = await run.then(
        () => null,
        (e: Error) => e,
      );
      expect(err, 'not caught').not.toBeNull();
      expect(err!.cause).toBeInstanceOf(ArgumentError);
      expect(err!.message).toContain(policy.name);
      expect(w.svm.ranges).toEqual([]); // nothing half-inserted
    });
  }
});
