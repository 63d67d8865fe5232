/**
 * A seeded storm on GpuSvm for the oracle tests: GPU kernels with data (loads and stores over a
 * 2 MiB buffer in system memory or VRAM) race a CPU task doing MADV_DONTNEED, mprotect(R) then
 * mprotect(RW), munmap + mmap back, fork (and the child's exit), CPU stores and loads. Every load
 * goes through the oracle's data shadow, every GPU access through its translation check, every
 * invalidation end through its PTE and TLB check.
 */
import { ACCESS, type AccessType } from '@hmmkit/gpu';
import { MADV_DONTNEED, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '@hmmkit/mm';
import { Rng, type Sim } from '@hmmkit/sim';
import {
  amdkfdPolicy,
  createSvmWorld,
  drmGpusvmPolicy,
  type GranulePolicy,
  type NotifierPolicy,
  nouveauPolicy,
  perRangeNotifiers,
  runKernel,
  type SvmWorld,
  type SvmWorldOptions,
  uvmTreePolicy,
  windowNotifiers,
} from '../../src/index.ts';

const P = 4096;
const SZ_2M = 2 << 20;

/** Granule policies the storm runs under, by name. */
export const STORM_GRANULES: Record<string, () => GranulePolicy> = {
  drm: () => drmGpusvmPolicy(),
  amdkfd: () => amdkfdPolicy(),
  nouveau: () => nouveauPolicy(),
  uvm: () => uvmTreePolicy(),
};

/** Notifier policies the storm runs under, by name. */
export const STORM_NOTIFIERS: Record<string, () => NotifierPolicy> = {
  window: () => windowNotifiers(),
  range: () => perRangeNotifiers(),
};

/** One storm configuration. */
export interface StormConfig {
  readonly placement: 'sys' | 'vram';
  readonly granule: keyof typeof STORM_GRANULES;
  readonly notifiers: keyof typeof STORM_NOTIFIERS;
  /** GPUs (default 1); kernels take turns on them. */
  readonly devices?: number;
  /** VRAM only: the GPUs map each other's VRAM (PEER aperture) instead of faulting it back. */
  readonly peer?: boolean;
}

/** What a storm run leaves for the test: the world (oracle inside) and the GPU's failed warps. */
export interface SvmStormRun {
  readonly world: SvmWorld;
  readonly failedWarps: number;
}

/** Runs one storm on `sim`; the oracle records (does not throw) unless `throwOnViolation`. */
export async function svmStorm(
  sim: Sim,
  cfg: StormConfig,
  throwOnViolation = false,
  extra: SvmWorldOptions = {},
  log: ((line: string) => void) | null = null,
): Promise<SvmStormRun> {
  const world = await createSvmWorld(sim, {
    ...extra,
    vramBytes: 16 << 20,
    granule: STORM_GRANULES[cfg.granule]!(),
    notifiers: STORM_NOTIFIERS[cfg.notifiers]!(),
    throwOnViolation,
    devices: cfg.devices ?? 1,
    ...(cfg.placement === 'vram' ? { devmem: { migrate: 'fault' as const, peer: cfg.peer ?? false } } : {}),
  });
  const { mm } = world;
  const rng = new Rng(sim.sched.seed * 104_729 + 3);
  const int = (lo: number, hi: number) => lo + rng.below(hi - lo); // [lo, hi)
  const prot = PROT_READ | PROT_WRITE;
  const flags = MAP_PRIVATE | MAP_ANONYMOUS;
  let failedWarps = 0;
  await sim.sched.runMain(async () => {
    // a 2 MiB-aligned buffer: map 4 MiB, keep the aligned 2 MiB in the middle
    const raw = await mm.mmap(0, 2 * SZ_2M, prot, flags);
    const a = raw + ((SZ_2M - (raw % SZ_2M)) % SZ_2M);
    if (a > raw) await mm.munmap(raw, a - raw);
    if (a + SZ_2M < raw + 2 * SZ_2M) await mm.munmap(a + SZ_2M, raw + 2 * SZ_2M - a - SZ_2M);
    const pages = Array.from({ length: 24 }, () => int(0, 512)).sort((x, y) => x - y);
    for (const p of pages) await mm.writeU32(a + p * P, 100 + p);
    const kernels = sim.sched.spawn('gpu', async () => {
      for (let k = 0; k < 2 + world.devs.length; k++) {
        const warps = Array.from({ length: 6 }, (_, w) => {
          const acc: [number, AccessType, number][] = [];
          for (let i = 0; i < 12; i++) {
            const p = pages[int(0, pages.length)]!;
            const write = int(0, 3) === 0;
            const word = write ? 1 + w : 0;
            acc.push([a + p * P + 4 * word, write ? ACCESS.WRITE : ACCESS.READ, (k << 12) | (w << 8) | i]);
          }
          return acc;
        });
        const r = await runKernel(world, k % world.devs.length, warps);
        failedWarps += r.failed;
        await sim.sched.sleep(int(0, 20) * 1000);
      }
    });
    const cpu = sim.sched.spawn('cpu', async () => {
      for (let op = 0; op < 6; op++) {
        await sim.sched.sleep(int(1, 60) * 1000);
        const p = pages[int(0, pages.length)]!;
        const n = int(1, 17);
        const span = Math.min(n, 512 - p) * P;
        const kind = int(0, 6);
        log?.(
          `t=${sim.now} op ${op}: ${['dontneed', 'mprotect R/RW', 'munmap+mmap', 'fork', 'store', 'load'][kind]} page ${p} x${span / P}`,
        );
        switch (kind) {
          case 0:
            await mm.madvise(a + p * P, span, MADV_DONTNEED);
            break;
          case 1:
            await mm.mprotect(a + p * P, span, PROT_READ);
            await sim.sched.sleep(int(1, 20) * 1000);
            await mm.mprotect(a + p * P, span, prot);
            break;
          case 2: {
            await mm.munmap(a + p * P, span);
            const back = await mm.mmap(a + p * P, span, prot, flags | MAP_FIXED);
            if (back !== a + p * P) throw new Error(`mmap back failed: ${back}`);
            break;
          }
          case 3: {
            const child = await mm.fork();
            await sim.sched.sleep(int(1, 20) * 1000);
            await child.exit();
            break;
          }
          case 4:
            await mm.writeU32(a + p * P, 5000 + op);
            break;
          default:
            await mm.readU32(a + p * P + 4 * int(0, 8));
        }
      }
    });
    await sim.sched.join(cpu);
    await sim.sched.join(kernels);
    // every word stored by either side is loaded back through the shadow
    for (const p of pages) await mm.read(a + p * P, 32);
  });
  return { world, failedWarps };
}
