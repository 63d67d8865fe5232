/**
 * nouveau's atomic path inside GpuSvm (`ATOMIC_ACCESS.EXCLUSIVE`, exclusive.ts): a GPU atomic on a
 * system page takes it device-exclusive (nouveau_atomic_range_fault → make_device_exclusive), a
 * CPU access restores it and zaps the device mapping. The hmm-tests.c cases exclusive,
 * exclusive_mprotect and exclusive_cow are ported by name onto GpuSvm (the dmirror EXCLUSIVE ioctl
 * becomes a GPU kernel of atomicAdd(0), one per page; CHECK_EXCLUSIVE becomes "no device PTE of the
 * buffer is atomic-enabled"), then a seeded storm of GPU atomics racing CPU loads, stores,
 * mprotect, fork and DONTNEED on the same pages, judged by the oracle and by exact counts.
 */
import { ACCESS, type AccessType } from '@hmmkit/gpu';
import {
  MADV_DONTNEED,
  MAP_SHARED,
  MmSignalError,
  O_RDWR,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
  PTE_DEVICE_EXCLUSIVE,
  pteType,
  TmpFile,
} from '@hmmkit/mm';
import { createSim, Errno, Rng, type Sim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  ATOMIC_ACCESS,
  createSvmWorld,
  LOC,
  madviseAtomic,
  nouveauPolicy,
  runKernel,
  type SvmWorld,
  type SvmWorldOptions,
} from '../src/index.ts';
import { mmapRw, P, where } from './clients/helpers.ts';

const A = ACCESS.ATOMIC;

/** A nouveau-like world: one page per fault (the CPU map order), atomics through device-exclusive. */
function nouveauWorld(sim: Sim, opts: SvmWorldOptions = {}): Promise<SvmWorld> {
  return createSvmWorld(sim, { granule: nouveauPolicy(), throwOnViolation: true, ...opts });
}

/** Runs `body` in a fresh simulation; the oracle's full pass must find nothing at the end. */
async function run(seed: number, body: (w: SvmWorld) => Promise<void>, opts: SvmWorldOptions = {}) {
  const sim = createSim({ seed });
  const w = await nouveauWorld(sim, opts);
  await sim.sched.runMain(async () => {
    await body(w);
    expect(w.oracle.checkAll()).toEqual([]);
  });
  expect(w.oracle.violations).toEqual([]);
  return w;
}

/** `npages` pages with `ptr[k] = k` in the first word of each, advised EXCLUSIVE. */
async function initBuffer(w: SvmWorld, npages: number): Promise<number> {
  const buf = await mmapRw(w, npages * P);
  for (let k = 0; k < npages; k++) await w.mm.writeU32(buf + k * P, k);
  await madviseAtomic(w.svm, buf, buf + npages * P, ATOMIC_ACCESS.EXCLUSIVE);
  return buf;
}

/** The EXCLUSIVE ioctl's GPU form: one atomicAdd(`add`) per page; returns the old values. */
async function atomics(w: SvmWorld, buf: number, npages: number, add = 0): Promise<number[]> {
  const r = await runKernel(w, 0, [Array.from({ length: npages }, (_, k) => [buf + k * P, A, add] as const)]);
  expect(r.failed).toBe(0);
  return Array.from(r.data);
}

/** CPU entries of the buffer that are device-exclusive. */
function exclusiveEntries(w: SvmWorld, buf: number, npages: number): number {
  let n = 0;
  for (let k = 0; k < npages; k++)
    if (pteType(w.mm.readEntry(buf + k * P).flags) === PTE_DEVICE_EXCLUSIVE) n++;
  return n;
}

/** CHECK_EXCLUSIVE's GPU form: device PTEs over the buffer that still allow atomics. */
function atomicPtes(w: SvmWorld, buf: number, npages: number): number {
  let n = 0;
  w.devs[0]!.pageTable.forEachMapping(buf, buf + npages * P, (m) => {
    if (m.atomic) n += m.size / P;
  });
  return n;
}

describe('hmm-tests.c exclusive cases on GpuSvm (ATOMIC_ACCESS.EXCLUSIVE)', () => {
  const npages = 16;

  it('hmm-tests.c: exclusive', () =>
    run(1, async (w) => {
      const buf = await initBuffer(w, npages);
      // EXCLUSIVE → 0, npages; mirror == k
      expect(await atomics(w, buf, npages)).toEqual(Array.from({ length: npages }, (_, k) => k));
      expect(w.svm.c.exclusiveGrants.value).toBe(npages);
      expect(exclusiveEntries(w, buf, npages)).toBe(npages);
      expect(atomicPtes(w, buf, npages)).toBe(npages);
      // CPU: ptr[k]++ reads k, afterwards k + 1 — each access revokes the page
      const inv = w.svm.c.invalidations.value;
      for (let k = 0; k < npages; k++) {
        expect(await w.mm.readU32(buf + k * P)).toBe(k);
        await w.mm.writeU32(buf + k * P, k + 1);
        expect(await w.mm.readU32(buf + k * P)).toBe(k + 1);
      }
      expect(w.svm.c.invalidations.value - inv).toBe(npages); // one EXCLUSIVE (owner null) each
      // CHECK_EXCLUSIVE → 0: atomic access revoked everywhere
      expect(exclusiveEntries(w, buf, npages)).toBe(0);
      expect(atomicPtes(w, buf, npages)).toBe(0);
      // the GPU takes the pages again and adds on top of the CPU's values
      expect(await atomics(w, buf, npages, 10)).toEqual(Array.from({ length: npages }, (_, k) => k + 1));
      for (let k = 0; k < npages; k++) expect(await w.mm.readU32(buf + k * P)).toBe(k + 11);
    }));

  it('hmm-tests.c: exclusive_mprotect', () =>
    run(2, async (w) => {
      const buf = await initBuffer(w, npages);
      expect(await atomics(w, buf, npages)).toEqual(Array.from({ length: npages }, (_, k) => k));
      expect(await w.mm.mprotect(buf, npages * P, PROT_READ)).toBe(0);
      // the write-protect revoked device atomics (the oracle checked at invalidation end)
      expect(atomicPtes(w, buf, npages)).toBe(0);
      // W → -EPERM: a CPU store faults with SIGSEGV, a GPU atomic is refused (warp cancelled)
      await expect(w.mm.writeU32(buf, 7)).rejects.toThrow(MmSignalError);
      const r = await runKernel(w, 0, [[[buf, A, 1]]]);
      expect(r.failed).toBe(1);
      for (let k = 0; k < npages; k++) expect(await w.mm.readU32(buf + k * P)).toBe(k);
      expect(await w.mm.mprotect(buf, npages * P, PROT_READ | PROT_WRITE)).toBe(0);
    }));

  it('hmm-tests.c: exclusive_cow', () =>
    run(3, async (w) => {
      const buf = await initBuffer(w, npages);
      expect(await atomics(w, buf, npages)).toEqual(Array.from({ length: npages }, (_, k) => k));
      // fork restores the exclusive entries in the parent, then shares the pages COW
      const child = await w.mm.fork();
      expect(exclusiveEntries(w, buf, npages)).toBe(0);
      expect(atomicPtes(w, buf, npages)).toBe(0);
      for (const mm of [child, w.mm]) {
        for (let k = 0; k < npages; k++) {
          expect(await mm.readU32(buf + k * P)).toBe(k);
          await mm.writeU32(buf + k * P, k + 1);
          expect(await mm.readU32(buf + k * P)).toBe(k + 1);
        }
      }
      await child.exit();
      // the parent's GPU atomics see the parent's values, not the child's
      expect(await atomics(w, buf, npages, 1)).toEqual(Array.from({ length: npages }, (_, k) => k + 1));
      for (let k = 0; k < npages; k++) expect(await w.mm.readU32(buf + k * P)).toBe(k + 2);
    }));
});

/**
 * GPU warps atomicAdd into (and sometimes load) word 0 of a few pages while a CPU task loads the same words, stores
 * its own words (word 1) of the same pages, changes their protection (RW → RWX → RW), forks, and
 * DONTNEEDs a page of its own. Every GPU add must land exactly once: the final word 0 is the sum of the adds.
 */
async function atomicStorm(seed: number): Promise<SvmWorld> {
  const sim = createSim({ seed });
  const w = await nouveauWorld(sim, { throwOnViolation: false });
  const rng = new Rng(seed * 7919 + 11);
  const int = (lo: number, hi: number) => lo + rng.below(hi - lo);
  const npages = 8;
  await sim.sched.runMain(async () => {
    const buf = await initBuffer(w, npages);
    // a ninth page nobody shares, for DONTNEED
    const spare = await mmapRw(w, P);
    let added = 0;
    const gpu = sim.sched.spawn('gpu', async () => {
      for (let k = 0; k < 4; k++) {
        const warps = Array.from({ length: 4 }, () =>
          Array.from({ length: 8 }, (): [number, AccessType, number] => {
            const page = buf + int(0, npages) * P;
            if (int(0, 4) === 0) return [page, ACCESS.READ, 0]; // a plain load maps it non-atomic
            const v = int(1, 5);
            added += v;
            return [page, A, v];
          }),
        );
        const r = await runKernel(w, 0, warps);
        expect(r.failed).toBe(0);
        await sim.sched.sleep(int(0, 20) * 1000);
      }
    });
    const cpu = sim.sched.spawn('cpu', async () => {
      for (let op = 0; op < 16; op++) {
        await sim.sched.sleep(int(1, 30) * 1000);
        const page = buf + int(0, npages) * P;
        switch (int(0, 5)) {
          case 0:
            await w.mm.readU32(page); // revokes; the shadow checks the value
            break;
          case 1:
            await w.mm.writeU32(page + 4, op); // the CPU's own word of a GPU-atomic page
            break;
          case 2:
            // RW → RWX → RW: the protection changes (an invalidation) but never forbids the atomic
            await w.mm.mprotect(page, P, PROT_READ | PROT_WRITE | PROT_EXEC);
            await sim.sched.sleep(int(1, 10) * 1000);
            await w.mm.mprotect(page, P, PROT_READ | PROT_WRITE);
            break;
          case 3: {
            // dup_mmap fails with -ENOMEM while an exclusive folio is locked mid-grant (Linux's
            // try_restore_exclusive_pte trylock); the parent is left consistent either way
            const child = await w.mm.tryFork();
            if (typeof child === 'number') {
              expect(child).toBe(-Errno.ENOMEM);
              break;
            }
            await sim.sched.sleep(int(1, 10) * 1000);
            await child.exit();
            break;
          }
          default:
            await w.mm.madvise(spare, P, MADV_DONTNEED);
        }
      }
    });
    await sim.sched.join(cpu);
    await sim.sched.join(gpu);
    let sum = 0;
    for (let k = 0; k < npages; k++) sum += (await w.mm.readU32(buf + k * P)) - k;
    expect(sum).toBe(added); // no GPU atomic lost
    w.oracle.checkAll();
  });
  return w;
}

describe('GPU atomics racing the CPU under EXCLUSIVE', () => {
  it('a storm of GPU atomics and CPU loads, stores, mprotect, fork: no add lost, no violation (12 seeds)', async () => {
    let grants = 0;
    for (let seed = 1; seed <= 12; seed++) {
      const w = await atomicStorm(seed);
      expect(w.oracle.violations.slice(0, 2), `seed ${seed}`).toEqual([]);
      grants += w.svm.c.exclusiveGrants.value;
    }
    // more grants than pages: CPU accesses revoked pages and the GPU took them again
    expect(grants).toBeGreaterThan(12 * 8);
  });
});

describe('EXCLUSIVE on memory make_device_exclusive refuses', () => {
  it('a file-backed page: the GPU atomic is cancelled (-EOPNOTSUPP), plain GPU stores still land', () =>
    run(4, async (w) => {
      const file = new TmpFile(w.mm.machine.phys, 4 * P, O_RDWR);
      const buf = await w.mm.mmap(0, 4 * P, PROT_READ | PROT_WRITE, MAP_SHARED, file, 0);
      expect(buf).toBeGreaterThan(0);
      await w.mm.writeU32(buf, 7);
      await madviseAtomic(w.svm, buf, buf + 4 * P, ATOMIC_ACCESS.EXCLUSIVE);
      const r = await runKernel(w, 0, [[[buf, A, 1]]]);
      expect(r.failed).toBe(1);
      expect(w.svm.c.exclusiveGrants.value).toBe(0);
      expect(exclusiveEntries(w, buf, 4)).toBe(0);
      expect((await runKernel(w, 0, [[[buf + 4, ACCESS.WRITE, 9]]])).failed).toBe(0);
      expect(await w.mm.readU32(buf)).toBe(7);
      expect(await w.mm.readU32(buf + 4)).toBe(9);
    }));
});

describe('regressions', () => {
  // Storm seed 1 found it: the fault batch's "already mapped" check (pageMappedFor) ignored the
  // atomic-enable bit, so an atomic on a page a plain load had mapped was replayed forever.
  it('storm seed 1: a GPU atomic on a page a GPU load mapped non-atomic is serviced, not skipped', async () => {
    const sim = createSim({ seed: 1, maxSteps: 200_000 });
    const w = await nouveauWorld(sim);
    await sim.sched.runMain(async () => {
      const buf = await initBuffer(w, 1);
      await w.mm.writeU32(buf, 40);
      const r0 = await runKernel(w, 0, [[[buf, ACCESS.READ, 0]]]);
      expect(Array.from(r0.data)).toEqual([40]);
      const r = await runKernel(w, 0, [[[buf, A, 2]]]);
      expect(r.failed).toBe(0);
      expect(Array.from(r.data)).toEqual([40]);
      expect(w.svm.c.exclusiveGrants.value).toBe(1);
      expect(await w.mm.readU32(buf)).toBe(42);
    });
    expect(w.oracle.violations).toEqual([]);
  });

  it('the same for xe GLOBAL: an atomic on a system page a GPU store mapped migrates to VRAM', async () => {
    const sim = createSim({ seed: 2, maxSteps: 200_000 });
    const w = await createSvmWorld(sim, { throwOnViolation: true, devmem: { migrate: 'fault' } });
    await sim.sched.runMain(async () => {
      const buf = await mmapRw(w, P);
      w.svm.attrs.advise(buf, buf + P, { preferredLoc: LOC.SYSMEM });
      await madviseAtomic(w.svm, buf, buf + P, ATOMIC_ACCESS.GLOBAL);
      expect((await runKernel(w, 0, [[[buf, ACCESS.WRITE, 5]]])).failed).toBe(0);
      expect(where(w, buf)).toBe('sys');
      const r = await runKernel(w, 0, [[[buf, A, 1]]]);
      expect(r.failed).toBe(0);
      expect(where(w, buf)).toBe('gpu0');
      expect(await w.mm.readU32(buf)).toBe(6);
    });
    expect(w.oracle.violations).toEqual([]);
  });
});
