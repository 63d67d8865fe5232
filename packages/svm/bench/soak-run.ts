/**
 * One soak seed: GPU kernels with data race a CPU task doing munmap (+ mmap back), mprotect(R)
 * then (RW), MADV_DONTNEED, fork (the child reads, then exits), CPU loads and stores (CPU faults
 * on VRAM pages), and prefetches, over one grid point of granule policy × notifier policy ×
 * placement picked by the seed. Two checks: the coherence oracle (PTEs, TLBs, translations, its
 * own data shadow) and this file's shadow of every dword the scenario uses — each GPU or CPU read
 * must return a value that the last writes allow (a write racing the read may or may not be seen;
 * nothing else may be).
 *
 * @module
 */
import { ACCESS, type AccessType } from '@hmmkit/gpu';
import { MADV_DONTNEED, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '@hmmkit/mm';
import { createSim, Rng } from '@hmmkit/sim';
import {
  amdkfdPolicy,
  createSvmWorld,
  deviceLoc,
  drmGpusvmPolicy,
  type GranulePolicy,
  LOC,
  type NotifierPolicy,
  nouveauPolicy,
  perRangeNotifiers,
  runKernel,
  type SvmWorldOptions,
  uvmTreePolicy,
  wholeMmNotifier,
  wholeVmaPolicy,
  windowNotifiers,
} from '../src/index.ts';

const P = 4096;
const SZ_2M = 0x200000;
/** Pages of the buffer the scenario uses (inside a 2 MiB-aligned VMA of 512 pages). */
const PAGES = 48;
/** Dword slots per page: 0..3 written by the GPU, 4..7 by the CPU; both read all. */
const SLOTS = 8;

export const GRANULES: Record<string, () => GranulePolicy> = {
  drm: () => drmGpusvmPolicy(),
  amdkfd: () => amdkfdPolicy(),
  nouveau: () => nouveauPolicy(),
  uvm: () => uvmTreePolicy(),
  'whole-vma': () => wholeVmaPolicy(),
};
export const NOTIFIERS: Record<string, () => NotifierPolicy> = {
  'per-range': () => perRangeNotifiers(),
  'window-2M': () => windowNotifiers(SZ_2M),
  'whole-mm': () => wholeMmNotifier(),
};
/** sys: no device memory; vram: migrate on GPU fault; prefetch: VRAM by prefetch only; peer: two GPUs over a peer link. */
export const PLACEMENTS = ['sys', 'vram', 'prefetch', 'peer'] as const;
export type Placement = (typeof PLACEMENTS)[number];

/** One grid point. */
export interface SoakConfig {
  readonly granule: string;
  readonly notifiers: string;
  readonly placement: Placement;
}

/** Every grid point, in a fixed order (seed s runs point s mod length). */
export const GRID: readonly SoakConfig[] = Object.keys(GRANULES).flatMap((granule) =>
  Object.keys(NOTIFIERS).flatMap((notifiers) =>
    PLACEMENTS.map((placement) => ({ granule, notifiers, placement })),
  ),
);

/** The outcome of one seed. */
export interface SoakResult {
  readonly seed: number;
  readonly config: SoakConfig;
  readonly violations: number;
  /** Reads that returned a value no write allows. */
  readonly mismatches: number;
  /** The first few mismatches, readable. */
  readonly examples: string[];
  readonly gpuAccesses: number;
  readonly failedWarps: number;
}

/** Runs seed `seed` (its grid point is `GRID[seed % GRID.length]`). */
export async function soakSeed(seed: number): Promise<SoakResult> {
  const config = GRID[seed % GRID.length]!;
  const sim = createSim({ seed });
  const opts: SvmWorldOptions = {
    granule: GRANULES[config.granule]!(),
    notifiers: NOTIFIERS[config.notifiers]!(),
    vramBytes: 8 << 20,
    throwOnViolation: false,
    ...(config.placement === 'sys'
      ? {}
      : config.placement === 'prefetch'
        ? { devmem: { migrate: 'never' as const } }
        : config.placement === 'peer'
          ? { devices: 2, devmem: { migrate: 'fault' as const, peer: true } }
          : { devmem: { migrate: 'fault' as const } }),
  };
  const w = await createSvmWorld(sim, opts);
  const { mm } = w;
  const devices = config.placement === 'peer' ? 2 : 1;
  const rng = new Rng(seed * 7919 + 11);
  const int = (lo: number, hi: number) => lo + rng.below(hi - lo); // [lo, hi)
  const rw = PROT_READ | PROT_WRITE;
  const anon = MAP_PRIVATE | MAP_ANONYMOUS;
  const examples: string[] = [];
  let mismatches = 0;
  let gpuAccesses = 0;
  let failedWarps = 0;

  // the shadow: per slot, the values a read may return now
  const allowed: Set<number>[] = Array.from({ length: PAGES * SLOTS }, () => new Set([0]));
  /** Values a GPU store in flight may leave in a slot (slot → value), and whether it may be lost. */
  const inflight = new Map<number, number>();
  /** Per slot, every value allowed at some point since the running kernel started. */
  const ever = new Map<number, Set<number>>();
  /** Page state: 0 read-write, 1 read-only, 2 unmapped. */
  const state = new Uint8Array(PAGES);
  /** Slots whose allowed values changed while the running kernel ran. */
  const touched = new Set<number>();
  const set = (slot: number, values: number[]) => {
    allowed[slot] = new Set(values);
    touched.add(slot);
    const e = ever.get(slot);
    if (e !== undefined) for (const v of values) e.add(v);
  };
  const bad = (what: string, slot: number, got: number, ok: Iterable<number>) => {
    mismatches++;
    if (examples.length < 4)
      examples.push(
        `${what} page ${Math.floor(slot / SLOTS)} slot ${slot % SLOTS} read ${got}, allowed [${[...ok]}]`,
      );
  };
  let base = 0;
  const addr = (slot: number) => base + Math.floor(slot / SLOTS) * P + (slot % SLOTS) * 4;
  const cpuCheck = async (slot: number, reader = mm) => {
    const got = await reader.readU32(addr(slot));
    const pending = inflight.get(slot);
    if (!allowed[slot]!.has(got) && got !== pending) bad('CPU', slot, got, allowed[slot]!);
  };
  const zeroPages = (p: number, n: number) => {
    for (let q = p; q < p + n; q++) for (let s = 0; s < SLOTS; s++) set(q * SLOTS + s, [0]);
  };

  await sim.sched.runMain(async () => {
    const raw = await mm.mmap(0, 2 * SZ_2M, rw, anon);
    base = raw + ((SZ_2M - (raw % SZ_2M)) % SZ_2M);
    if (base > raw) await mm.munmap(raw, base - raw);
    if (base + SZ_2M < raw + 2 * SZ_2M) await mm.munmap(base + SZ_2M, raw + 2 * SZ_2M - base - SZ_2M);
    // the CPU fills about half the pages
    for (let p = 0; p < PAGES; p++) {
      if (int(0, 2) === 0) continue;
      for (let s = 0; s < SLOTS; s++) {
        const v = 1000 + p * SLOTS + s;
        await mm.writeU32(addr(p * SLOTS + s), v);
        set(p * SLOTS + s, [v]);
      }
    }
    if (config.placement === 'prefetch') {
      w.svm.attrs.advise(base, base + PAGES * P, { preferredLoc: deviceLoc(0) });
      await w.svm.prefetch(base, base + PAGES * P, deviceLoc(0));
    }

    let stamp = 1;
    const gpu = sim.sched.spawn('gpu', async () => {
      for (let k = 0; k < 3; k++) {
        const dev = int(0, devices);
        const warps: [number, AccessType, number][][] = [];
        const reads: number[] = [];
        const written = new Set<number>();
        for (let wi = 0; wi < 4; wi++) {
          const acc: [number, AccessType, number][] = [];
          for (let i = 0; i < 8; i++) {
            const p = int(0, PAGES);
            if (int(0, 3) === 0) {
              const slot = p * SLOTS + int(0, 4);
              if (written.has(slot)) continue;
              written.add(slot);
              const v = 0x10000 * (k + 1) + stamp++;
              inflight.set(slot, v);
              acc.push([addr(slot), ACCESS.WRITE, v]);
            } else {
              const slot = p * SLOTS + int(0, SLOTS);
              reads.push(slot);
              acc.push([addr(slot), ACCESS.READ, 0]);
            }
          }
          warps.push(acc);
        }
        ever.clear();
        touched.clear();
        for (const s of [...reads, ...written]) ever.set(s, new Set(allowed[s]));
        const r = await runKernel(w, dev, warps);
        gpuAccesses += warps.reduce((n, a) => n + a.length, 0);
        failedWarps += r.failed;
        // GPU loads: anything allowed while the kernel ran, or a store of this kernel
        let j = 0;
        for (const acc of warps) {
          for (const [va, kind] of acc) {
            const got = r.data[j++]!;
            if (kind !== ACCESS.READ) continue;
            const slot = (Math.floor((va - base) / P) * SLOTS + ((va - base) % P) / 4) | 0;
            const pending = inflight.get(slot);
            // a cancelled warp's loads return nothing meaningful
            if (r.failed > 0) continue;
            if (!ever.get(slot)!.has(got) && got !== pending) bad('GPU', slot, got, ever.get(slot)!);
          }
        }
        // resolve the stores: landed, unless a racing zap, mprotect or cancel leaves it uncertain
        for (const slot of written) {
          const v = inflight.get(slot)!;
          inflight.delete(slot);
          const raced = r.failed > 0 || touched.has(slot);
          set(slot, raced ? [...allowed[slot]!, v] : [v]);
        }
        ever.clear();
        await sim.sched.sleep(int(0, 20) * 1000);
      }
    });
    const cpu = sim.sched.spawn('cpu', async () => {
      for (let op = 0; op < 8; op++) {
        await sim.sched.sleep(int(1, 40) * 1000);
        const p = int(0, PAGES);
        const n = Math.min(int(1, 9), PAGES - p);
        const span = n * P;
        const free = () => {
          for (let q = p; q < p + n; q++) if (state[q] !== 0) return false;
          return true;
        };
        switch (int(0, 8)) {
          case 0: // MADV_DONTNEED: the pages read as zeros
            if (!free()) break;
            await mm.madvise(addr(p * SLOTS), span, MADV_DONTNEED);
            zeroPages(p, n);
            break;
          case 1: // mprotect(R) for a while, then back to RW
            if (!free()) break;
            await mm.mprotect(addr(p * SLOTS), span, PROT_READ);
            state.fill(1, p, p + n);
            await sim.sched.sleep(int(1, 20) * 1000);
            await mm.mprotect(addr(p * SLOTS), span, rw);
            state.fill(0, p, p + n);
            break;
          case 2: {
            // munmap, then map fresh zero pages back
            if (!free()) break;
            state.fill(2, p, p + n);
            await mm.munmap(addr(p * SLOTS), span);
            zeroPages(p, n);
            await sim.sched.sleep(int(0, 10) * 1000);
            const back = await mm.mmap(addr(p * SLOTS), span, rw, anon | MAP_FIXED);
            if (back !== addr(p * SLOTS)) throw new Error(`mmap back failed: ${back}`);
            zeroPages(p, n);
            state.fill(0, p, p + n);
            break;
          }
          case 3: {
            // fork: the child reads its copy-on-write view, then exits
            const child = await mm.fork();
            for (let q = p; q < p + n; q++)
              if (state[q] !== 2) await cpuCheck(q * SLOTS + int(0, SLOTS), child);
            await sim.sched.sleep(int(1, 20) * 1000);
            await child.exit();
            break;
          }
          case 4: // CPU stores to the CPU's slots (faults VRAM pages back)
            for (let q = p; q < p + n; q++) {
              if (state[q] !== 0) continue;
              const slot = q * SLOTS + 4 + int(0, 4);
              const v = 0x7000000 + op * 0x1000 + q;
              await mm.writeU32(addr(slot), v);
              set(slot, [v]);
            }
            break;
          case 5: // prefetch to VRAM or back to system memory
            if (config.placement === 'sys') break;
            await w.svm.prefetch(
              addr(p * SLOTS),
              addr(p * SLOTS) + span,
              // with two GPUs over a peer link, either GPU: a VRAM-to-VRAM migration
              int(0, 2) === 0 ? LOC.SYSMEM : deviceLoc(devices === 2 ? int(0, 2) : 0),
            );
            break;
          default: // CPU loads of any slot (CPU faults on VRAM pages)
            for (let q = p; q < p + n; q++) if (state[q] !== 2) await cpuCheck(q * SLOTS + int(0, SLOTS));
        }
      }
    });
    await sim.sched.join(cpu);
    await sim.sched.join(gpu);
    // quiescent: every slot reads back exactly what the shadow allows
    for (let s = 0; s < PAGES * SLOTS; s++) await cpuCheck(s);
    w.oracle.checkAll();
  });
  return {
    seed,
    config,
    violations: w.oracle.violations.length,
    mismatches,
    examples,
    gpuAccesses,
    failedWarps,
  };
}
