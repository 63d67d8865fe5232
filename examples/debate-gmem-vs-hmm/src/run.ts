/**
 * GMEM vs HMM, measured on one simulated GPU: a GMEM-style core ({@link GmemCore}, written once)
 * with a gm_mmu driver ({@link GpuGmMmu}) next to an HMM-style driver (`GpuSvm`, xe-like: migrate
 * to VRAM on GPU fault, 2 MiB chunks, LRU chunk eviction). Both run the same kernels on the same mm:
 * driver size, fault and invalidation costs, coherence under a racing storm, and oversubscription.
 */
import { readFileSync } from 'node:fs';
import { startFaultBottomHalf } from '@hmmkit/example-minimal-mirror/fault-bottom-half';
import { runKernel as runMirrorKernel } from '@hmmkit/example-minimal-mirror/harness';
import { ACCESS, APERTURE, createGpuDevice, type GpuDevice, PAGE_2M, PAGE_4K } from '@hmmkit/gpu';
import { createMachine, MADV_DONTNEED, Mm } from '@hmmkit/mm';
import { createSim, type Sim } from '@hmmkit/sim';
import {
  type Access,
  CoherenceOracle,
  createSvmWorld,
  deviceLoc,
  identitySysResolver,
  LOC,
  mmapAnonymous,
  runKernel,
} from '@hmmkit/svm';
import { madviseStorm } from '@hmmkit/workloads';
import { GM_HINT, GmemCore } from './gmem-core.ts';
import { GpuGmMmu } from './gmem-driver.ts';

/** The two designs. */
export const DESIGNS = ['gmem', 'hmm'] as const;
/** One of {@link DESIGNS}. */
export type Design = (typeof DESIGNS)[number];
/** GPU access patterns of the oversubscription sweeps. */
export const PATTERNS = ['blocked', 'interleaved'] as const;
/** One of {@link PATTERNS}. */
export type Pattern = (typeof PATTERNS)[number];

/** One design sweeping an oversubscribed working set with one pattern. */
export interface OverRow {
  readonly design: Design;
  readonly pattern: Pattern;
  readonly ns: number;
  readonly toDevice: number;
  readonly toHost: number;
  readonly failedWarps: number;
  readonly dataOk: boolean;
  readonly violations: number;
}

/** What one design did in one scenario. */
export interface GmemRow {
  readonly design: Design;
  /** GPU faults raised in the first pass over host-resident data. */
  readonly faults: number;
  /** Virtual time of that pass (ns). */
  readonly firstPassNs: number;
  /** Virtual time of a second, fault-free pass (ns). */
  readonly steadyNs: number;
  /** CPU reads one word of every 2 MiB block the GPU holds: virtual time per block (ns). */
  readonly cpuFaultPerBlockNs: number;
  /** Moving the buffer off the device again: hmadvise(DONTNEED) / prefetch to system memory (ns, pages moved). */
  readonly offloadNs: number;
  readonly offloadPages: number;
  /** munmap of one device-resident 2 MiB block (ns). */
  readonly munmapBlockNs: number;
  /** hmadvise(PREFETCH) / GpuSvm.prefetch of the buffer after the CPU took it back (ns). */
  readonly prefetchNs: number;
  /** The cost scenario ended coherent with the GPU reading what the CPU reads. */
  readonly costsOk: boolean;
  /** Racing madvise storm: oracle violations, fault retries, whether the GPU read what the CPU reads. */
  readonly stormViolations: number;
  readonly stormRetries: number;
  readonly stormDataOk: boolean;
}

/** Lines of code (non-blank, non-comment). */
export interface LocRow {
  readonly what: string;
  readonly files: string;
  readonly lines: number;
}

/** Options of {@link run}. */
export interface GmemOptions {
  /** Buffer for the cost and storm scenarios (default 8 MiB). */
  readonly bytes?: number;
  /** Oversubscription: device memory and host working set (default 4 MiB over 64 MiB: the RFC's 32 GB over 500 GB is 16×). */
  readonly overVram?: number;
  readonly overBytes?: number;
  /** GPU sweeps over the oversubscribed working set (default 2). */
  readonly overSweeps?: number;
  /** Storm rounds × operations (default 4 × 32). */
  readonly stormRounds?: number;
  readonly stormOps?: number;
  readonly seed?: number;
}

/** Result of {@link run}. */
export interface GmemResult {
  readonly loc: LocRow[];
  readonly rows: GmemRow[];
  readonly over: OverRow[];
  readonly lines: string[];
}

const BASE = 0x4_0000_0000;
const STORM_GAP_NS = 20_000;

/** One design on one fresh machine: its mm, device, and how to run a kernel / prefetch / check. */
interface Rig {
  readonly sim: Sim;
  readonly mm: Mm;
  readonly dev: GpuDevice;
  kernel(warps: Access[][]): Promise<{ data: Uint32Array; failed: number }>;
  prefetch(va: number, size: number): Promise<void>;
  /** hmadvise(DONTNEED) / GpuSvm.prefetch to system memory. */
  offload(va: number, size: number): Promise<void>;
  violations(): number;
  retries(): number;
  toDevice(): number;
  toHost(): number;
  /** Sets the buffer up (mmap; MAP_PEER_SHARED for GMEM). */
  map(bytes: number): Promise<number>;
}

async function gmemRig(sim: Sim, vramPool: number): Promise<Rig> {
  const mm = new Mm(createMachine(sim, { thp: 'never' }));
  const dev = createGpuDevice(sim, { vramBytes: vramPool + 8 * PAGE_2M, counterPrefix: 'gpu0' });
  const core = new GmemCore(mm, new GpuGmMmu(dev, vramPool));
  const oracle = new CoherenceOracle(mm, [dev], {
    throwOnViolation: false,
    resolve: (d, m, va) =>
      m.aperture === APERTURE.VID ? core.paToPfn(m.pa + (va - m.va)) : identitySysResolver(d, m, va),
  });
  await oracle.attach();
  const driver = {
    dev,
    startFaultHandler: (stop: () => boolean) =>
      startFaultBottomHalf(dev, 'gm_dev_fault', (va, access) => core.devFault(va, access), stop),
  };
  return {
    sim,
    mm,
    dev,
    kernel: (warps) => runMirrorKernel(sim, driver, warps),
    prefetch: async (va, size) => {
      await core.hmadvise(va, size, GM_HINT.PREFETCH);
    },
    offload: async (va, size) => {
      await core.hmadvise(va, size, GM_HINT.DONTNEED);
    },
    violations: () => {
      oracle.checkAll();
      return oracle.violations.length;
    },
    retries: () => sim.counters.get('hmm.rangeFaultLocked.retries'),
    toDevice: () => core.toDevice,
    toHost: () => core.toHost,
    map: (bytes) => core.mmapPeerShared(BASE, bytes),
  };
}

async function hmmRig(sim: Sim, vramPool: number): Promise<Rig> {
  const w = await createSvmWorld(sim, {
    vramBytes: vramPool + 8 * PAGE_2M,
    devmem: { migrate: 'fault', bytes: vramPool },
  });
  const k = (n: string) => sim.counters.get(n);
  return {
    sim,
    mm: w.mm,
    dev: w.devs[0]!,
    kernel: (warps) => runKernel(w, 0, warps),
    prefetch: async (va, size) => {
      await w.svm.prefetch(va, va + size, deviceLoc(0));
    },
    offload: async (va, size) => {
      await w.svm.prefetch(va, va + size, LOC.SYSMEM);
    },
    violations: () => {
      w.oracle.checkAll();
      return w.oracle.violations.length;
    },
    retries: () => k('svm.fault.retries') + k('hmm.rangeFaultLocked.retries'),
    toDevice: () => k('svm.migrate.toVram.pages'),
    toHost: () => k('svm.migrate.toRam.pages'),
    map: (bytes) => mmapAnonymous(w.mm, bytes, BASE),
  };
}

const rig = (d: Design, sim: Sim, pool: number) => (d === 'gmem' ? gmemRig(sim, pool) : hmmRig(sim, pool));

/**
 * Warps reading one word of every page of [buf, buf + bytes): `blocked` gives each warp its own
 * contiguous slice (every warp's block is live at once); `interleaved` has warp w read pages
 * w, w + warps, ... (the warps move through the buffer together).
 */
function sweep(buf: number, bytes: number, pattern: Pattern = 'blocked', warps = 64): Access[][] {
  const pages = bytes / PAGE_4K;
  const per = Math.ceil(pages / warps);
  return Array.from({ length: warps }, (_, w) => {
    const out: Access[] = [];
    for (let i = 0; i < per; i++) {
      const p = pattern === 'blocked' ? w * per + i : i * warps + w;
      if (p < pages && (pattern === 'interleaved' || i < pages - w * per))
        out.push([buf + p * PAGE_4K, ACCESS.READ, 0]);
    }
    return out;
  });
}

/** Unshuffles a sweep's data (in warp order) into page order. */
function byPage(data: Uint32Array, bytes: number, pattern: Pattern, warps = 64): Uint32Array {
  if (pattern === 'blocked') return data;
  const pages = bytes / PAGE_4K;
  const per = Math.ceil(pages / warps);
  const out = new Uint32Array(pages);
  let k = 0;
  for (let w = 0; w < warps; w++)
    for (let i = 0; i < per; i++) if (i * warps + w < pages) out[i * warps + w] = data[k++]!;
  return out;
}

async function fill(mm: Mm, buf: number, bytes: number): Promise<void> {
  for (let i = 0; i < bytes / PAGE_4K; i++) await mm.writeU32(buf + i * PAGE_4K, i + 1);
}

/** Does the GPU's sweep data match what the CPU reads now? */
async function matches(mm: Mm, buf: number, data: Uint32Array): Promise<boolean> {
  for (let i = 0; i < data.length; i++) if (data[i] !== (await mm.readU32(buf + i * PAGE_4K))) return false;
  return true;
}

async function costs(d: Design, o: Required<GmemOptions>) {
  const sim = createSim({ seed: o.seed });
  const r = await rig(d, sim, 4 * o.bytes);
  return sim.sched.runMain(async () => {
    const buf = await r.map(o.bytes);
    await fill(r.mm, buf, o.bytes);
    const f0 = sim.counters.get('gpu0.fault.raised');
    let t = sim.now;
    await r.kernel(sweep(buf, o.bytes));
    const firstPassNs = sim.now - t;
    const faults = sim.counters.get('gpu0.fault.raised') - f0;
    t = sim.now;
    await r.kernel(sweep(buf, o.bytes));
    const steadyNs = sim.now - t;
    const blocks = o.bytes / PAGE_2M;
    t = sim.now;
    for (let b = 0; b < blocks; b++) await r.mm.readU32(buf + b * PAGE_2M);
    const cpuFaultPerBlockNs = (sim.now - t) / blocks;
    t = sim.now;
    await r.prefetch(buf, o.bytes);
    const prefetchNs = sim.now - t;
    await r.kernel(sweep(buf, o.bytes));
    t = sim.now;
    await r.mm.munmap(buf + o.bytes - PAGE_2M, PAGE_2M);
    const munmapBlockNs = sim.now - t;
    const h0 = r.toHost();
    t = sim.now;
    await r.offload(buf, o.bytes - PAGE_2M);
    const offloadNs = sim.now - t;
    const offloadPages = r.toHost() - h0;
    const after = await r.kernel(sweep(buf, o.bytes - PAGE_2M));
    const dataOk = (await matches(r.mm, buf, after.data)) && r.violations() === 0;
    return {
      faults,
      firstPassNs,
      steadyNs,
      cpuFaultPerBlockNs,
      prefetchNs,
      munmapBlockNs,
      offloadNs,
      offloadPages,
      dataOk,
    };
  });
}

async function storm(d: Design, o: Required<GmemOptions>) {
  const sim = createSim({ seed: o.seed });
  const r = await rig(d, sim, 4 * o.bytes);
  return sim.sched.runMain(async () => {
    const buf = await r.map(o.bytes);
    await fill(r.mm, buf, o.bytes);
    await r.kernel(sweep(buf, o.bytes));
    for (let round = 0; round < o.stormRounds; round++) {
      const ops = madviseStorm({ va: buf, bytes: o.bytes }, { count: o.stormOps, seed: o.seed * 31 + round });
      const cpu = sim.sched.spawn(`storm-${round}`, async () => {
        for (const op of ops) {
          await sim.sched.sleep(STORM_GAP_NS);
          if (op.op === 'madvise') await r.mm.madvise(op.addr, op.len, MADV_DONTNEED);
        }
      });
      await r.kernel(sweep(buf, o.bytes));
      await sim.sched.join(cpu);
    }
    const last = await r.kernel(sweep(buf, o.bytes));
    return { violations: r.violations(), retries: r.retries(), dataOk: await matches(r.mm, buf, last.data) };
  });
}

async function oversubscribe(d: Design, pattern: Pattern, o: Required<GmemOptions>): Promise<OverRow> {
  const sim = createSim({ seed: o.seed });
  const r = await rig(d, sim, o.overVram);
  return sim.sched.runMain(async () => {
    const buf = await r.map(o.overBytes);
    await fill(r.mm, buf, o.overBytes);
    const t = sim.now;
    let failed = 0;
    let last = new Uint32Array(0) as Uint32Array;
    for (let s = 0; s < o.overSweeps; s++) {
      const k = await r.kernel(sweep(buf, o.overBytes, pattern));
      failed += k.failed;
      last = byPage(k.data, o.overBytes, pattern);
    }
    const ns = sim.now - t;
    const toDevice = r.toDevice();
    const toHost = r.toHost();
    return {
      design: d,
      pattern,
      ns,
      toDevice,
      toHost,
      failedWarps: failed,
      dataOk: await matches(r.mm, buf, last),
      violations: r.violations(),
    };
  });
}

/** Code lines of a source file: non-blank lines that are not comments. */
function codeLines(url: URL): number {
  let n = 0;
  let inDoc = false;
  for (const raw of readFileSync(url, 'utf8').split('\n')) {
    const l = raw.trim();
    if (inDoc) {
      if (l.includes('*/')) inDoc = false;
      continue;
    }
    if (l.startsWith('/*')) {
      inDoc = !l.includes('*/');
      continue;
    }
    if (l === '' || l.startsWith('//')) continue;
    n++;
  }
  return n;
}

const SVM_FILES = [
  'gpusvm.ts',
  'devmem.ts',
  'granule.ts',
  'notifier-policy.ts',
  'attr-map.ts',
  'attrs.ts',
  'page-mask.ts',
  'thrashing.ts',
];

function loc(): LocRow[] {
  const svm = SVM_FILES.reduce(
    (n, f) => n + codeLines(new URL(`../../../packages/svm/src/${f}`, import.meta.url)),
    0,
  );
  return [
    {
      what: 'GMEM: driver (gm_mmu functions)',
      files: 'src/gmem-driver.ts',
      lines: codeLines(new URL('./gmem-driver.ts', import.meta.url)),
    },
    {
      what: 'GMEM: core (once, in mm/)',
      files: 'src/gmem-core.ts',
      lines: codeLines(new URL('./gmem-core.ts', import.meta.url)),
    },
    { what: 'HMM: driver (GpuSvm stack)', files: `packages/svm/src/{${SVM_FILES.join(',')}}`, lines: svm },
  ];
}

const ms = (ns: number) => `${(ns / 1e6).toFixed(2)} ms`;
const us = (ns: number) => `${(ns / 1e3).toFixed(1)} µs`;
const mib = (b: number) => `${b / 1048576} MiB`;

/** Runs every scenario for both designs. */
export async function run(opts: GmemOptions = {}): Promise<GmemResult> {
  const o: Required<GmemOptions> = {
    bytes: opts.bytes ?? 8 << 20,
    overVram: opts.overVram ?? 4 << 20,
    overBytes: opts.overBytes ?? 64 << 20,
    overSweeps: opts.overSweeps ?? 2,
    stormRounds: opts.stormRounds ?? 4,
    stormOps: opts.stormOps ?? 32,
    seed: opts.seed ?? 1,
  };
  const rows: GmemRow[] = [];
  const over: OverRow[] = [];
  for (const p of PATTERNS) for (const d of DESIGNS) over.push(await oversubscribe(d, p, o));
  for (const d of DESIGNS) {
    const c = await costs(d, o);
    const s = await storm(d, o);
    rows.push({
      design: d,
      faults: c.faults,
      firstPassNs: c.firstPassNs,
      steadyNs: c.steadyNs,
      cpuFaultPerBlockNs: c.cpuFaultPerBlockNs,
      munmapBlockNs: c.munmapBlockNs,
      prefetchNs: c.prefetchNs,
      offloadNs: c.offloadNs,
      offloadPages: c.offloadPages,
      costsOk: c.dataOk,
      stormViolations: s.violations,
      stormRetries: s.retries,
      stormDataOk: s.dataOk,
    });
  }
  const l = loc();
  const lines: string[] = [
    '| code | files | lines (non-blank, non-comment) |',
    '|---|---|---|',
    ...l.map((x) => `| ${x.what} | ${x.files} | ${x.lines} |`),
    '',
    `costs (buffer ${mib(o.bytes)} in host memory, device memory to spare):`,
    '',
    '| design | GPU faults, first pass | first pass | steady pass | CPU touch of a device-resident 2 MiB block | prefetch of the buffer | munmap of a device-resident 2 MiB block | DONTNEED / prefetch-to-host of the rest (pages) | coherent, data ok |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.design} | ${r.faults} | ${ms(r.firstPassNs)} | ${us(r.steadyNs)} | ${us(r.cpuFaultPerBlockNs)} | ${ms(r.prefetchNs)} | ${us(r.munmapBlockNs)} | ${ms(r.offloadNs)} (${r.offloadPages}) | ${r.costsOk ? 'yes' : 'NO'} |`,
    ),
    '',
    `coherence: madvise(DONTNEED) storm racing GPU passes (${o.stormRounds} × ${o.stormOps} ops, one every ${STORM_GAP_NS / 1000} µs):`,
    '',
    '| design | oracle | fault retries | GPU read what the CPU reads |',
    '|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.design} | ${r.stormViolations === 0 ? 'coherent' : `${r.stormViolations} violations`} | ${r.stormRetries} | ${r.stormDataOk ? 'yes' : 'NO'} |`,
    ),
    '',
    `oversubscription: ${mib(o.overVram)} of device memory, ${mib(o.overBytes)} host working set, ${o.overSweeps} GPU sweeps:`,
    '',
    '| access pattern | design | time | pages to device | pages back to host | moves per page per sweep | cancelled warps | data | oracle |',
    '|---|---|---|---|---|---|---|---|---|',
    ...over.map(
      (r) =>
        `| ${r.pattern} | ${r.design} | ${ms(r.ns)} | ${r.toDevice} | ${r.toHost} | ${(r.toDevice / (o.overSweeps * (o.overBytes / PAGE_4K))).toFixed(2)} | ${r.failedWarps} | ${r.dataOk ? 'ok' : 'WRONG'} | ${r.violations === 0 ? 'coherent' : `${r.violations} violations`} |`,
    ),
  ];
  return { loc: l, rows, over, lines };
}
