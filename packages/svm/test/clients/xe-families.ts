/**
 * The families of xe_exec_system_allocator's section loop that run on GPU VMs (`GpuVmDevice` /
 * `GpuVm`, `src/vm.ts`): the VM sections (busy, bo-unmap, new-bo-map) in the single-thread shapes,
 * the exec-queue shapes (many-execqueues, many-large-execqueues), and threads-many-*,
 * threads-shared-vm-many-* and process-many-* with their stride, execqueues, large and
 * large-execqueues shapes — every section of the original, minus the ones its threads() and
 * processes() return from at once. CI runs a sample ({@link familySample}); `XE_FAMILY_ALL=1` runs
 * every subtest.
 */
import { createMachine, Mm } from '@hmmkit/mm';
import { createSim, Errno, type Sim } from '@hmmkit/sim';
import { expect } from 'vitest';
import { type GpuVm, GpuVmDevice } from '../../src/index.ts';
import { expectCoherent, M2 } from './helpers.ts';
import {
  FILE_BACKED,
  FORK_READ,
  isNoop,
  MMAP,
  SECTIONS,
  SHAPES,
  type Shape,
  testExec,
  VM_SECTIONS,
} from './xe-model.ts';

/** How the original runs test_exec for a shape. */
export type Runner = 'single' | 'threads' | 'shared-vm' | 'process';

/** One shape of a family: the subtest name prefix, how it runs, and test_exec's arguments. */
export interface FamilyShape {
  readonly prefix: string;
  readonly runner: Runner;
  readonly shape: Shape;
}

const many = (queues: number, boSize: number, stride: number): Shape => ({
  queues,
  execs: 128,
  boSize,
  stride,
});
/** threads(), threads(shared_vm) and processes(): base, stride, execqueues, large, large-execqueues. */
const threaded = (prefix: string, runner: Runner): FamilyShape[] => [
  { prefix, runner, shape: many(1, 0, 0) },
  { prefix: `${prefix}-stride`, runner, shape: many(1, 0, 256) },
  { prefix: `${prefix}-execqueues`, runner, shape: many(16, 0, 0) },
  { prefix: `${prefix}-large`, runner, shape: many(1, M2, 0) },
  { prefix: `${prefix}-large-execqueues`, runner, shape: many(16, M2, 0) },
];

/** Every family: its shapes and its sections (name → flags). */
export const FAMILIES: Record<
  string,
  { readonly shapes: readonly FamilyShape[]; readonly sections: readonly (readonly [string, number])[] }
> = {
  'vm-sections': {
    shapes: [
      'once',
      'once-large',
      'twice',
      'twice-large',
      'many',
      'many-64k',
      'many-stride',
      'many-large',
    ].map((p) => ({ prefix: p, runner: 'single' as const, shape: SHAPES[p]! })),
    sections: VM_SECTIONS,
  },
  execqueues: {
    shapes: ['many-execqueues', 'many-large-execqueues'].map((p) => ({
      prefix: p,
      runner: 'single' as const,
      shape: SHAPES[p]!,
    })),
    sections: [...SECTIONS, ...VM_SECTIONS],
  },
  'threads-many': { shapes: threaded('threads-many', 'threads'), sections: [...SECTIONS, ...VM_SECTIONS] },
  'threads-shared-vm-many': {
    shapes: threaded('threads-shared-vm-many', 'shared-vm'),
    sections: [...SECTIONS, ...VM_SECTIONS],
  },
  'process-many': { shapes: threaded('process-many', 'process'), sections: [...SECTIONS, ...VM_SECTIONS] },
};

/** One generated subtest of a family. */
export interface FamilySubtest {
  readonly name: string;
  readonly runner: Runner;
  readonly shape: Shape;
  readonly flags: number;
  readonly seed: number;
}

/** Whether the original does nothing for this section in this runner (threads(), processes() return). */
function runnerNoop(runner: Runner, flags: number): boolean {
  if (runner === 'threads' || runner === 'shared-vm') return (flags & (FILE_BACKED | FORK_READ)) !== 0;
  if (runner === 'process') return (flags & FORK_READ) !== 0;
  return false;
}

/**
 * The subtests of `family`, minus no-ops; `pick(shapeIndex, sectionIndex)` keeps a sample. The
 * sections are indexed in family order (no-ops keep their index, so samples stay stable).
 */
export function familySubtests(
  family: string,
  seedBase: number,
  pick: (shapeIndex: number, sectionIndex: number, shapesOfSection: readonly number[]) => boolean = () =>
    true,
): FamilySubtest[] {
  const f = FAMILIES[family]!;
  const out: FamilySubtest[] = [];
  const noop = (i: number, flags: number) =>
    isNoop(f.shapes[i]!.shape, flags) || runnerNoop(f.shapes[i]!.runner, flags);
  const shapesOf = f.sections.map(([, flags]) => f.shapes.map((_, i) => i).filter((i) => !noop(i, flags)));
  f.shapes.forEach(({ prefix, runner, shape }, i) => {
    f.sections.forEach(([section, flags], k) => {
      const seed = seedBase + i * f.sections.length + k;
      if (noop(i, flags) || !pick(i, k, shapesOf[k]!)) return;
      out.push({ name: `${prefix}-${section}`, runner, shape, flags, seed });
    });
  });
  return out;
}

/**
 * The sample CI runs of a family split over `files` files: section k in file k mod `files`, in
 * shape `cheap[floor(k / files) mod cheap.length]` (the shapes given by index) or, when the
 * original does nothing for the section there (malloc-multi-fault needs a bo_size), in the first
 * shape where it does something; with `all`, every shape of the file's sections.
 */
export const familySample =
  (file: number, files: number, cheap: readonly number[], all: boolean) =>
  (shapeIndex: number, k: number, shapesOfSection: readonly number[]): boolean => {
    if (k % files !== file) return false;
    if (all) return true;
    const want = cheap[Math.floor(k / files) % cheap.length]!;
    return shapeIndex === (shapesOfSection.includes(want) ? want : shapesOfSection[0]);
  };

/** `n` parties wait until all have arrived (pthread_barrier_wait). */
export function barrier(sim: Sim, n: number): () => Promise<void> {
  let arrived = 0;
  let gen = 0;
  const waiting: ReturnType<Sim['sched']['waiter']>[] = [];
  return async () => {
    const g = gen;
    if (++arrived === n) {
      arrived = 0;
      gen++;
      for (const x of waiting.splice(0)) sim.sched.wake(x);
      return;
    }
    while (gen === g) {
      const x = sim.sched.waiter();
      waiting.push(x);
      await sim.sched.wait(x);
    }
  };
}

/** Engines of the original's xe_for_each_engine (one thread or process each). */
export const ENGINES = 2;

/** Runs `fn` once per engine, each in its own task, and joins them. */
export async function perEngine(sim: Sim, fn: (k: number) => Promise<unknown>): Promise<void> {
  const tasks = Array.from({ length: ENGINES }, (_, k) =>
    sim.sched.spawn(`engine-${k}`, async () => {
      await fn(k);
    }),
  );
  for (const t of tasks) await sim.sched.join(t);
}

/** unbind_system_allocator(): DRM_XE_VM_BIND_OP_UNMAP of the whole mirror. */
export const unbindSystemAllocator = (vm: GpuVm): Promise<number> =>
  vm.unbind(vm.svm.mmStart, vm.vaEnd - vm.svm.mmStart);

/**
 * Runs one subtest the way the original does: test_exec on a VM of its own ('single'); one thread
 * per engine, each with a VM of its own on one mm ('threads') or all on one VM ('shared-vm', which
 * for MMAP then retries the unbind of the mirror until it succeeds); one process (an mm and a VM)
 * per engine ('process'). Every VM's oracle must stay clean.
 */
export async function runFamilySubtest(t: FamilySubtest): Promise<void> {
  const sim = createSim({ seed: t.seed });
  const machine = createMachine(sim, { thp: 'never' });
  const dev = new GpuVmDevice(machine, { vramBytes: 32 << 20 });
  const vms: GpuVm[] = [];
  const shared = new Mm(machine);
  const vmCount = t.runner === 'single' || t.runner === 'shared-vm' ? 1 : ENGINES;
  for (let k = 0; k < vmCount; k++)
    vms.push(await dev.createVm(t.runner === 'process' ? new Mm(machine) : shared));
  await sim.sched.runMain(async () => {
    if (t.runner === 'single') {
      const vm = vms[0]!;
      await testExec(vm.world, t.shape, t.flags, { vm });
      // everything test_exec allocated is freed: the mirror has no ranges left and unbinds
      expect(await unbindSystemAllocator(vm)).toBe(0);
      expect(vm.isMirrored(vm.svm.mmStart)).toBe(false);
    } else {
      await perEngine(sim, (k) => {
        const vm = vms[t.runner === 'shared-vm' ? 0 : k]!;
        return testExec(vm.world, t.shape, t.flags, { vm });
      });
      if (t.runner === 'shared-vm' && t.flags & MMAP) {
        let ret = -Errno.EBUSY;
        for (let tries = 300; tries > 0 && ret === -Errno.EBUSY; tries--) {
          ret = await unbindSystemAllocator(vms[0]!);
          if (ret === -Errno.EBUSY) await sim.sched.sleep(10_000_000);
        }
        expect(ret).toBe(0);
      }
    }
    for (const vm of vms) expectCoherent(vm.world);
  });
}
