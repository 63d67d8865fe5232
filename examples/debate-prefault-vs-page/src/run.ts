/**
 * The xe SVM prefault debate, measured. One buffer, one GPU reading every page of it, and a CPU
 * storm between GPU passes; three drivers over the same simulated mm:
 *
 * - `range-2M`: GpuSvm as xe proposed it (drm_gpusvm chunks {2M, 64K, 4K}, large device PTEs,
 *   every invalidation wipes every range it touches, over the range's full bounds);
 * - `page-4K`: {@link PageMirror} strict page-by-page (2 MiB prefetch window, 4K device PTEs,
 *   invalidation unmaps exactly the invalidated pages);
 * - `page-2M`: page-by-page validity with 2M device PTEs where a whole block is valid (split on
 *   partial invalidation).
 *
 * Per CPU operation the device page table is read before and after: pages it lost that the
 * operation did not cover are *false invalidations*. GPU faults after the first pass are re-faults.
 */
import { runKernel as runMirrorKernel } from '@hmmkit/example-minimal-mirror/harness';
import { ACCESS, PAGE_2M, PAGE_4K } from '@hmmkit/gpu';
import { MADV_DONTNEED } from '@hmmkit/mm';
import { createSim, type Sim } from '@hmmkit/sim';
import {
  type Access,
  createSvmWorld,
  drmGpusvmPolicy,
  mmapAnonymous,
  runKernel,
  type SvmWorld,
  worldVerdict,
} from '@hmmkit/svm';
import { madviseStorm, munmapStorm } from '@hmmkit/workloads';
import { PageMirror } from './page-mirror.ts';

/** The drivers compared. */
export const DRIVERS = ['range-2M', 'page-4K', 'page-2M'] as const;
/** One of {@link DRIVERS}. */
export type DriverKind = (typeof DRIVERS)[number];
/** The CPU storms: madvise(MADV_DONTNEED) or munmap + mmap of random 1..maxPages-page sub-ranges. */
export const STORMS = ['madvise', 'munmap'] as const;
/** One of {@link STORMS}. */
export type StormKind = (typeof STORMS)[number];

/** How the CPU maps the buffer: THP 'always' (2M folios) or 'never' (4K pages). */
export const CPU_PAGES = ['thp', '4k'] as const;
/** One of {@link CPU_PAGES}. */
export type CpuPages = (typeof CPU_PAGES)[number];

/** One driver under one storm. */
export interface PrefaultRow {
  /** CPU pages: 2M folios (THP 'always') or 4K only (THP 'never'). */
  readonly cpuPages: CpuPages;
  readonly driver: DriverKind;
  readonly storm: StormKind;
  /** Mean bytes mapped per device PTE after the warm-up passes (TLB reach per entry). */
  readonly bytesPerPte: number;
  /** GPU TLB misses in the second (fault-free) pass over the buffer. */
  readonly tlbMissesSteady: number;
  /** Virtual time of that pass (ns). */
  readonly steadyNs: number;
  /** Pages the CPU operations covered that the device mapped (must be zapped). */
  readonly neededZaps: number;
  /** Device-mapped pages lost outside the operations' ranges. */
  readonly falseZaps: number;
  /** GPU faults raised in the passes after the storms. */
  readonly refaults: number;
  /** Virtual time of the GPU passes after the storms (ns). */
  readonly gpuNs: number;
  /** Virtual time of the CPU operations (ns; includes the invalidation callbacks). */
  readonly cpuNs: number;
  /** Device PTEs written (8-byte entries) over the whole run. */
  readonly pteWrites: number;
  /** Fault passes voided by a notifier collision (svm retries + hmmRangeFaultLocked retries). */
  readonly retries: number;
  /** The storm ran concurrently with the GPU passes (then the per-operation zap counts are -1). */
  readonly concurrent: boolean;
  readonly violations: number;
  /** The GPU's last pass read what the CPU reads at every page. */
  readonly dataOk: boolean;
}

/** Options of {@link run}. */
export interface PrefaultOptions {
  /** Buffer size, a multiple of 2 MiB (default 32 MiB). */
  readonly bytes?: number;
  /** Storm rounds, each followed by a GPU pass (default 4). */
  readonly rounds?: number;
  /** CPU operations per round (default 32). */
  readonly opsPerRound?: number;
  /** Longest operation in pages (default 16). */
  readonly maxPages?: number;
  readonly seed?: number;
  /** CPU page sizes to run (default both). */
  readonly cpuPages?: readonly CpuPages[];
  /** Storms to run (default both). */
  readonly storms?: readonly StormKind[];
  /** Also run the madvise storm concurrently with the GPU passes, 4K CPU pages (default true). */
  readonly concurrent?: boolean;
}

/** Result of {@link run}. */
export interface PrefaultResult {
  readonly rows: PrefaultRow[];
  /** The concurrent runs (empty with `concurrent: false`). */
  readonly race: PrefaultRow[];
  readonly lines: string[];
}

const BASE = 0x2_0000_0000;
/** Gap between two CPU operations of a concurrent storm (ns). */
export const STORM_GAP_NS = 20_000;

/** Device-mapped 4K pages in [s, e) (page-table read; no cost charged). */
function mappedPages(w: SvmWorld, s: number, e: number): number {
  let n = 0;
  w.devs[0]!.pageTable.forEachMapping(s, e, (m) => {
    const a = Math.max(m.va, s);
    const b = Math.min(m.va + m.size, e);
    if (b > a) n += (b - a) / PAGE_4K;
  });
  return n;
}

/** Bytes per device PTE over [s, e). */
function bytesPerPte(w: SvmWorld, s: number, e: number): number {
  let n = 0;
  let bytes = 0;
  w.devs[0]!.pageTable.forEachMapping(s, e, (m) => {
    n++;
    bytes += m.size;
  });
  return n === 0 ? 0 : bytes / n;
}

async function scenario(
  sim: Sim,
  cpuPages: CpuPages,
  driver: DriverKind,
  storm: StormKind,
  o: Required<PrefaultOptions>,
  concurrent: boolean,
): Promise<PrefaultRow> {
  const w = await createSvmWorld(sim, {
    thp: cpuPages === 'thp' ? 'always' : 'never',
    granule: drmGpusvmPolicy(),
  });
  return sim.sched.runMain(async () => {
    const k = (n: string) => sim.counters.get(n);
    const buf = await mmapAnonymous(w.mm, o.bytes, BASE);
    const pages = o.bytes / PAGE_4K;
    for (let i = 0; i < pages; i++) await w.mm.writeU32(buf + i * PAGE_4K, i + 1);
    const mirror =
      driver === 'range-2M'
        ? null
        : new PageMirror(w.mm, w.devs[0]!, buf, buf + o.bytes, { largePtes: driver === 'page-2M' });
    if (mirror !== null) await mirror.init();
    const warps = 64;
    const per = pages / warps;
    const pass = async (): Promise<{ ns: number; data: Uint32Array }> => {
      const acc: Access[][] = Array.from({ length: warps }, (_, wi) =>
        Array.from({ length: per }, (_, i): Access => [buf + (wi * per + i) * PAGE_4K, ACCESS.READ, 0]),
      );
      const t0 = sim.now;
      const r = mirror === null ? await runKernel(w, 0, acc) : await runMirrorKernel(sim, mirror, acc);
      return { ns: sim.now - t0, data: r.data };
    };
    await pass(); // fault everything in
    const miss0 = k('gpu0.tlb.miss');
    const steadyNs = (await pass()).ns; // steady state: no faults, TLB only
    const tlbMissesSteady = k('gpu0.tlb.miss') - miss0;
    const reach = bytesPerPte(w, buf, buf + o.bytes);

    let neededZaps = 0;
    let falseZaps = 0;
    let cpuNs = 0;
    let gpuNs = 0;
    const faults0 = k('gpu0.fault.raised');
    let last: Uint32Array = new Uint32Array(0);
    const region = { va: buf, bytes: o.bytes };
    for (let round = 0; round < o.rounds; round++) {
      const opts = { count: o.opsPerRound, maxPages: o.maxPages, seed: o.seed * 7919 + round };
      const ops = storm === 'madvise' ? madviseStorm(region, opts) : munmapStorm(region, opts);
      if (concurrent) {
        // the storm races the GPU pass: a CPU thread, one operation every STORM_GAP_NS
        const cpu = sim.sched.spawn(`storm-${round}`, async () => {
          for (const op of ops) {
            await sim.sched.sleep(STORM_GAP_NS);
            if (op.op === 'madvise') await w.mm.madvise(op.addr, op.len, MADV_DONTNEED);
            else if (op.op === 'munmap') await w.mm.munmap(op.addr, op.len);
            else if (op.op === 'mmap') await mmapAnonymous(w.mm, op.len, op.addr);
          }
        });
        const r = await pass();
        await sim.sched.join(cpu);
        gpuNs += r.ns;
        last = (await pass()).data; // a quiet pass after the race: what the GPU reads must match the CPU
        continue;
      }
      for (const op of ops) {
        if (op.op !== 'madvise' && op.op !== 'munmap' && op.op !== 'mmap') continue;
        const before = op.op === 'mmap' ? 0 : mappedPages(w, buf, buf + o.bytes);
        const needed = op.op === 'mmap' ? 0 : mappedPages(w, op.addr, op.addr + op.len);
        const t0 = sim.now;
        if (op.op === 'madvise') await w.mm.madvise(op.addr, op.len, MADV_DONTNEED);
        else if (op.op === 'munmap') await w.mm.munmap(op.addr, op.len);
        else await mmapAnonymous(w.mm, op.len, op.addr);
        cpuNs += sim.now - t0;
        if (op.op === 'mmap') continue;
        const lost = before - mappedPages(w, buf, buf + o.bytes);
        neededZaps += needed;
        falseZaps += lost - needed;
      }
      const r = await pass();
      gpuNs += r.ns;
      last = r.data;
    }
    const refaults = k('gpu0.fault.raised') - faults0;
    let dataOk = last.length === pages;
    for (let i = 0; i < pages && dataOk; i++)
      if (last[i] !== (await w.mm.readU32(buf + i * PAGE_4K))) dataOk = false;
    const v = worldVerdict(w);
    return {
      cpuPages,
      driver,
      storm,
      bytesPerPte: reach,
      tlbMissesSteady,
      steadyNs,
      neededZaps: concurrent ? -1 : neededZaps,
      falseZaps: concurrent ? -1 : falseZaps,
      refaults,
      gpuNs,
      cpuNs,
      pteWrites: k('gpu0.pt.pteWrites'),
      retries: v.retries,
      concurrent,
      violations: v.violations,
      dataOk,
    };
  });
}

const kib = (b: number) =>
  b >= 1024 * 1024 ? `${(b / 1048576).toFixed(2)} MiB` : `${(b / 1024).toFixed(1)} KiB`;
const ms = (ns: number) => `${(ns / 1e6).toFixed(2)} ms`;

/** Runs every driver under every storm and formats the table. */
export async function run(opts: PrefaultOptions = {}): Promise<PrefaultResult> {
  const o: Required<PrefaultOptions> = {
    bytes: opts.bytes ?? 32 * 1024 * 1024,
    rounds: opts.rounds ?? 4,
    opsPerRound: opts.opsPerRound ?? 32,
    maxPages: opts.maxPages ?? 16,
    seed: opts.seed ?? 1,
    cpuPages: opts.cpuPages ?? CPU_PAGES,
    storms: opts.storms ?? STORMS,
    concurrent: opts.concurrent ?? true,
  };
  if (o.bytes % PAGE_2M !== 0 || o.bytes <= 0)
    throw new RangeError('bytes must be a positive multiple of 2 MiB');
  const rows: PrefaultRow[] = [];
  for (const cpuPages of o.cpuPages)
    for (const storm of o.storms)
      for (const driver of DRIVERS)
        rows.push(await scenario(createSim({ seed: o.seed }), cpuPages, driver, storm, o, false));
  const race: PrefaultRow[] = [];
  if (o.concurrent)
    for (const driver of DRIVERS)
      race.push(await scenario(createSim({ seed: o.seed }), '4k', driver, 'madvise', o, true));
  const lines = [
    `buffer ${kib(o.bytes)}, one GPU reads every page; ${o.rounds} rounds × ${o.opsPerRound} CPU ops of 1..${o.maxPages} pages, a GPU pass after each round`,
    '',
    '| CPU pages | storm | driver | bytes per device PTE | TLB misses, steady pass | steady pass time | pages the ops covered | false invalidations (pages) | re-faults | GPU time after storms | CPU time of the ops | PTE writes | oracle | data |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.cpuPages} | ${r.storm} | ${r.driver} | ${kib(r.bytesPerPte)} | ${r.tlbMissesSteady} | ${ms(r.steadyNs)} | ${r.neededZaps} | ${r.falseZaps} | ` +
        `${r.refaults} | ${ms(r.gpuNs)} | ${ms(r.cpuNs)} | ${r.pteWrites} | ${r.violations === 0 ? 'coherent' : `${r.violations} violations`} | ${r.dataOk ? 'ok' : 'WRONG'} |`,
    );
  }
  if (race.length > 0) {
    lines.push(
      '',
      `the madvise storm racing the GPU passes (4K CPU pages, one operation every ${STORM_GAP_NS / 1000} µs):`,
      '',
      '| driver | re-faults (racing + quiet passes) | fault retries (seqno collisions) | GPU time of the racing passes | oracle | data |',
      '|---|---|---|---|---|---|',
    );
    for (const r of race) {
      lines.push(
        `| ${r.driver} | ${r.refaults} | ${r.retries} | ${ms(r.gpuNs)} | ${r.violations === 0 ? 'coherent' : `${r.violations} violations`} | ${r.dataOk ? 'ok' : 'WRONG'} |`,
      );
    }
  }
  return { rows, race, lines };
}
