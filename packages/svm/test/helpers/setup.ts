/** Test defaults over the public world builder: a smaller VRAM and an oracle that throws. */
import { ACCESS } from '@hmmkit/gpu';
import type { Sim } from '@hmmkit/sim';
import { createSvmWorld, type SvmWorld, type SvmWorldOptions } from '../../src/index.ts';

export { mmapAnonymous as mmapAnon, runKernel } from '../../src/index.ts';

export type World = SvmWorld;

export function makeWorld(sim: Sim, opts: SvmWorldOptions = {}): Promise<World> {
  return createSvmWorld(sim, { vramBytes: 32 << 20, throwOnViolation: true, ...opts });
}

export const R = ACCESS.READ;
export const W = ACCESS.WRITE;
