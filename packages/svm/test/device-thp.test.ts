/**
 * Device-private 2 MiB folios (`devmem.thp`, devthp.ts; MIGRATE_VMA_SELECT_COMPOUND of Linux
 * 6.19 mm/migrate_device.c): a 2 MiB block whose CPU side is a THP, or empty, migrates to VRAM as
 * one compound entry (one collected entry, one copy-engine transfer, one PMD-level device-private
 * entry, one 2M device PTE), a CPU fault brings it back as one THP, and partial munmap, mprotect or
 * migration split it the way the kernel splits — data intact, no oracle violation.
 */
import { ACCESS } from '@hmmkit/gpu';
import { PROT_READ, PTE_DEVICE_PRIVATE, PTE_PRESENT, pteType } from '@hmmkit/mm';
import { ArgumentError, createSim, type Sim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  type Access,
  createSvmWorld,
  drmGpusvmPolicy,
  LOC,
  runKernel,
  type SvmWorld,
  type SvmWorldOptions,
} from '../src/index.ts';
import { M2, mmapRw, P, pagesAt } from './clients/helpers.ts';

const W = ACCESS.WRITE;
const R = ACCESS.READ;
const NPAGES = M2 / P;

function thpWorld(sim: Sim, opts: SvmWorldOptions = {}): Promise<SvmWorld> {
  return createSvmWorld(sim, {
    granule: drmGpusvmPolicy(),
    devmem: { migrate: 'fault', thp: true },
    vramBytes: 8 << 20,
    thp: 'always',
    throwOnViolation: true,
    ...opts,
  });
}

async function run(
  seed: number,
  body: (w: SvmWorld, c: Copies) => Promise<void>,
  opts: SvmWorldOptions = {},
) {
  const sim = createSim({ seed });
  const w = await thpWorld(sim, opts);
  const c = countCopies(w);
  await sim.sched.runMain(async () => {
    await body(w, c);
    expect(w.oracle.checkAll()).toEqual([]);
  });
  expect(w.oracle.violations).toEqual([]);
}

/** Copy-engine transfers, by direction. */
interface Copies {
  h2d: number;
  d2h: number;
}

function countCopies(w: SvmWorld): Copies {
  const c = { h2d: 0, d2h: 0 };
  const ce = w.devs[0]!.copyEngine;
  const orig = ce.copyTimed.bind(ce);
  ce.copyTimed = (bytes: number, dir: Parameters<typeof ce.copyTimed>[1]) => {
    if (dir === 'h2d') c.h2d++;
    if (dir === 'd2h') c.d2h++;
    return orig(bytes, dir);
  };
  return c;
}

/** A 2 MiB-aligned 2 MiB anonymous buffer; `fill`: the CPU writes page i's first word = i (a THP). */
async function block(w: SvmWorld, fill: boolean): Promise<number> {
  const raw = await mmapRw(w, 2 * M2);
  const at = Math.ceil(raw / M2) * M2;
  if (fill) for (let i = 0; i < NPAGES; i++) await w.mm.writeU32(at + i * P, i);
  return at;
}

const counter = (w: SvmWorld, name: string) => w.sim.counters.get(name);

/** The CPU entry at `va`: its type and map order. */
function entry(w: SvmWorld, va: number): [number, number] {
  const e = w.mm.readEntry(va);
  return [pteType(e.flags), e.order];
}

/** One GPU kernel storing `0x5000 + i` into word 1 of page i (16 warps of 32). */
async function gpuStoreAll(w: SvmWorld, at: number): Promise<void> {
  const warps: Access[][] = [];
  for (let g = 0; g < 16; g++) {
    warps.push(
      Array.from({ length: 32 }, (_, k): Access => [at + (g * 32 + k) * P + 4, W, 0x5000 + g * 32 + k]),
    );
  }
  expect((await runKernel(w, 0, warps)).failed).toBe(0);
}

/** Every page i not in `skip` reads back i (when `cpu`) and 0x5000 + i. */
async function checkData(w: SvmWorld, at: number, cpu: boolean, skip: (i: number) => boolean = () => false) {
  for (let i = 0; i < NPAGES; i++) {
    if (skip(i)) continue;
    expect(await w.mm.readU32(at + i * P)).toBe(cpu ? i : 0);
    expect(await w.mm.readU32(at + i * P + 4)).toBe(0x5000 + i);
  }
}

describe('device-private THP (devmem.thp)', () => {
  it('a CPU THP migrates as one compound entry: one collected entry, one copy, a PMD device-private entry, a 2M PTE', () =>
    run(1, async (w, copies) => {
      const at = await block(w, true);
      expect(entry(w, at)).toEqual([PTE_PRESENT, 9]);
      const collected = counter(w, 'hmm.migrate.collected');
      await gpuStoreAll(w, at);
      expect(counter(w, 'hmm.migrate.collected') - collected).toBe(1); // one COMPOUND entry
      expect(counter(w, 'svm.migrate.toVram.pages')).toBe(NPAGES);
      expect(copies.h2d).toBe(1);
      expect(entry(w, at)).toEqual([PTE_DEVICE_PRIVATE, 9]);
      expect(entry(w, at + 77 * P)).toEqual([PTE_DEVICE_PRIVATE, 9]);
      expect(counter(w, 'svm.pte.2m')).toBeGreaterThanOrEqual(1);
      expect(w.devs[0]!.pageTable.translate(at + 77 * P).pageShift).toBe(21);
      expect(Array.from(w.svm.devmem[0]!.chunkUsed).filter((u) => u > 0)).toEqual([NPAGES]); // one whole chunk
    }));

  it('an empty 2 MiB block migrates as one device folio too', () =>
    run(2, async (w, copies) => {
      const at = await block(w, false);
      await gpuStoreAll(w, at);
      expect(entry(w, at)).toEqual([PTE_DEVICE_PRIVATE, 9]);
      expect(copies.h2d).toBe(1);
      expect(pagesAt(w, at, at + M2, 'gpu0')).toBe(NPAGES);
      await checkData(w, at, false);
    }));

  it('a CPU fault on the device THP brings the 2 MiB back as one THP (one copy, one migrate_to_ram)', () =>
    run(3, async (w, copies) => {
      const at = await block(w, true);
      await gpuStoreAll(w, at);
      const toRam = counter(w, 'svm.migrate.toRam.pages');
      const collected = counter(w, 'hmm.migrate.collected');
      expect(await w.mm.readU32(at + 300 * P + 4)).toBe(0x5000 + 300);
      expect(counter(w, 'svm.migrate.toRam.pages') - toRam).toBe(NPAGES);
      expect(counter(w, 'hmm.migrate.collected') - collected).toBe(1);
      expect(copies.d2h).toBe(1);
      expect(entry(w, at)).toEqual([PTE_PRESENT, 9]); // a system THP, PMD-mapped
      expect(w.svm.devmem[0]!.mem.freePages).toBe(w.svm.devmem[0]!.nrPages);
      await checkData(w, at, true);
    }));

  it('partial munmap splits the device folio: the rest stays on the device with its data', () =>
    run(4, async (w) => {
      const at = await block(w, true);
      await gpuStoreAll(w, at);
      expect(await w.mm.munmap(at + 64 * P, 16 * P)).toBe(0);
      expect(entry(w, at)).toEqual([PTE_DEVICE_PRIVATE, 0]); // PMD split into PTEs
      expect(pagesAt(w, at, at + M2, 'gpu0')).toBe(NPAGES - 16);
      // the folio stays compound (Linux queues it for a deferred split): its VRAM returns whole
      expect(w.svm.devmem[0]!.mem.freePages).toBe(w.svm.devmem[0]!.nrPages - NPAGES);
      await checkData(w, at, true, (i) => i >= 64 && i < 80);
      // the CPU faults the rest back page by page; then the folio's last page goes and the chunk is free
      expect(pagesAt(w, at, at + M2, 'gpu0')).toBe(0);
      expect(w.svm.devmem[0]!.mem.freePages).toBe(w.svm.devmem[0]!.nrPages);
    }));

  it('partial mprotect splits the PMD; the GPU still reads every page', () =>
    run(5, async (w) => {
      const at = await block(w, true);
      await gpuStoreAll(w, at);
      expect(await w.mm.mprotect(at, 8 * P, PROT_READ)).toBe(0);
      expect(entry(w, at + 100 * P)[1]).toBe(0);
      const r = await runKernel(w, 0, [
        Array.from({ length: 32 }, (_, k): Access => [at + k * 16 * P + 4, R, 0]),
      ]);
      expect(Array.from(r.data)).toEqual(Array.from({ length: 32 }, (_, k) => 0x5000 + k * 16));
      await checkData(w, at, true);
    }));

  it('partial migration back (prefetch of 64 KiB to system memory) splits; the rest stays on the device', () =>
    run(6, async (w) => {
      const at = await block(w, true);
      await gpuStoreAll(w, at);
      expect(await w.svm.prefetch(at + 32 * P, at + 48 * P, LOC.SYSMEM)).toBe(16);
      expect(pagesAt(w, at, at + M2, 'sys')).toBe(16);
      expect(pagesAt(w, at, at + M2, 'gpu0')).toBe(NPAGES - 16);
      await checkData(w, at, true);
    }));

  it('eviction moves a device THP back as one THP', () =>
    run(7, async (w, copies) => {
      const at = await block(w, true);
      await gpuStoreAll(w, at);
      const chunk = w.svm.devmem[0]!.chunkUsed.findIndex((u) => u > 0);
      expect(await w.svm.evictChunk(0, chunk)).toBe(NPAGES);
      expect(copies.d2h).toBe(1);
      expect(entry(w, at)).toEqual([PTE_PRESENT, 9]);
      await checkData(w, at, true);
    }));

  it('devmem.thp must be a boolean (ArgumentError)', async () => {
    const sim = createSim({ seed: 8 });
    await expect(thpWorld(sim, { devmem: { thp: 1 as unknown as boolean } })).rejects.toThrow(ArgumentError);
  });
});
