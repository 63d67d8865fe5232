/**
 * The nova-core page-table-versions debate, measured: real JavaScript time of three walkers
 * (version branches, per-version specialised, hmmkit's data-driven one) over NVIDIA MMU v2 and v3
 * tables holding the same mappings, next to the simulated MMIO cost of a map and an unmap (BAR0 PTE
 * writes at `pteWriteBar0Ns`, TLB invalidates at `tlbInvalidateNs`), and the MMIO cost per page
 * below which the branches would start to show.
 */
import { readFileSync } from 'node:fs';
import {
  APERTURE,
  createGpuDevice,
  nvMmuV2,
  nvMmuV3,
  PAGE_2M,
  PAGE_4K,
  PAGE_64K,
  type PageTable,
  type PtFormat,
  Translation,
  WALK,
} from '@hmmkit/gpu';
import { createSim, Rng } from '@hmmkit/sim';
import { walkBranchy, walkV2, walkV3 } from './walkers.ts';

/** Page-table walks per mapped page in nova-core's map path (the thread: "During the map prep and execute, page table walks are done"). */
export const WALKS_PER_MAP = 2;
/** Walks per unmapped page (one lookup of the PTE to clear). */
export const WALKS_PER_UNMAP = 1;
/** The share of the per-page cost we call "noise" when asking when branches start to matter. */
export const NOISE_SHARE = 0.01;

/** One walker's measured time on one format. */
export interface WalkerRow {
  readonly format: 'v2' | 'v3';
  readonly walker: 'branchy' | 'specialised' | 'hmmkit-generic';
  /** Real ns per walk: the fastest of the interleaved rounds. */
  readonly nsPerWalk: number;
}

/** Simulated MMIO cost of page-table updates on one format (ns). */
export interface MmioRow {
  readonly format: 'v2' | 'v3';
  /** Map one 4K page into an existing page table through BAR0, then invalidate the TLB range. */
  readonly map4kNs: number;
  readonly map4kPteWrites: number;
  /** Unmap that page (BAR0 write + TLB invalidate). */
  readonly unmap4kNs: number;
  /** Map 512 × 4K (2 MiB) in one BAR0 update + one invalidate: ns per page. */
  readonly map2mAs4kPerPageNs: number;
  /** The same 512 pages pushed through the copy engine (batched): ns per page. */
  readonly map2mCePerPageNs: number;
}

/** Result of {@link run}. */
export interface PteVersionsResult {
  readonly walkers: WalkerRow[];
  /** |difference| between two timings of the same specialised walker (ns / walk). */
  readonly noise: readonly { readonly format: 'v2' | 'v3'; readonly ns: number }[];
  readonly mmio: MmioRow[];
  /** Every walker returned the same PA as `PageTable.translateInto` for every sampled VA. */
  readonly agree: boolean;
  /** Addresses walked per round (mapped and unmapped). */
  readonly vaCount: number;
  /** Source lines: the branchy walker vs the two specialised ones (walkers.ts). */
  readonly linesBranchy: number;
  readonly linesSpecialised: number;
  readonly lines: string[];
}

/** Options of {@link run}. */
export interface PteVersionsOptions {
  /** Walks per timed round (default 100 000). */
  readonly walksPerRound?: number;
  /** Timed rounds per walker (fastest kept; default 41). */
  readonly rounds?: number;
}

const BASE_4K = 0x10_0000_0000; // 64 GiB
const BASE_64K = 0x20_0000_0000;
const BASE_2M = 0x30_0000_0000;

/** Fills a page table with 4K, 64K and 2M mappings and returns a shuffled list of VAs to walk. */
function populate(pt: PageTable, rng: Rng): Float64Array {
  const vas: number[] = [];
  // 4K system-memory pages: 64 per 2 MiB block over 32 blocks, scattered
  for (let b = 0; b < 32; b++) {
    for (let i = 0; i < 64; i++) {
      const va = BASE_4K + b * PAGE_2M * 3 + i * 2 * PAGE_4K;
      pt.map(va, PAGE_4K, 0x4000_0000 + (b * 64 + i) * 7 * PAGE_4K, { aperture: APERTURE.SYS });
      vas.push(va + 0x123, va + PAGE_4K + 0x10); // the second one is not mapped
    }
  }
  // 64K VRAM pages: 16 per 2 MiB over 8 blocks
  for (let b = 0; b < 8; b++) {
    for (let i = 0; i < 16; i++) {
      const va = BASE_64K + b * PAGE_2M + i * 2 * PAGE_64K;
      pt.map(va, PAGE_64K, 0x1000_0000 + (b * 16 + i) * PAGE_64K);
      vas.push(va + 0x4567);
    }
  }
  // 2M system-memory pages
  for (let b = 0; b < 64; b++) {
    pt.map(BASE_2M + b * PAGE_2M, PAGE_2M, 0x80_0000_0000 + b * PAGE_2M, { aperture: APERTURE.SYS });
    vas.push(BASE_2M + b * PAGE_2M + 0x1_2345);
  }
  const out = Float64Array.from(vas);
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.below(i + 1);
    const t = out[i]!;
    out[i] = out[j]!;
    out[j] = t;
  }
  return out;
}

/**
 * ns per walk of each of `walks` over `vas`: the rounds interleave the walkers (A B C A B C ...) so
 * load on the machine hits them alike, and each walker's fastest round is kept (load only ever adds
 * time). Round -1 warms the JIT up.
 */
function timeAll(
  walks: readonly ((va: number) => number)[],
  vas: Float64Array,
  walksPerRound: number,
  rounds: number,
): number[] {
  const n = vas.length;
  const best = walks.map(() => Number.POSITIVE_INFINITY);
  let sink = 0;
  for (let r = -1; r < rounds; r++) {
    for (let k = 0; k < walks.length; k++) {
      const walk = walks[k]!;
      const t0 = performance.now();
      for (let i = 0; i < walksPerRound; i++) sink += walk(vas[i % n]!);
      const ns = ((performance.now() - t0) * 1e6) / walksPerRound;
      if (r >= 0) best[k] = Math.min(best[k]!, ns);
    }
  }
  if (sink === 0.5) console.log(sink); // keep the walks observable
  return best;
}

/** Simulated MMIO cost of map/unmap on a fresh device with format `fmt`. */
function mmio(name: 'v2' | 'v3', fmt: PtFormat): MmioRow {
  const sim = createSim({ seed: 1 });
  const dev = createGpuDevice(sim, { format: fmt, vramBytes: 64 << 20 });
  const va = 0x40_0000_0000;
  const prime = dev.beginUpdate('bar0'); // the tables down to the PT exist: a map writes only its PTE
  dev.pageTable.map(va + PAGE_4K, PAGE_4K, 0x4000_0000, { aperture: APERTURE.SYS }, prime.pt);
  prime.end();
  const op = (f: (u: ReturnType<typeof dev.beginUpdate>) => void, mode: 'bar0' | 'ce' = 'bar0') => {
    const t0 = sim.now;
    const u = dev.beginUpdate(mode);
    f(u);
    u.end();
    return { ns: sim.now - t0, writes: u.pt.pteWrites + u.pt.pdeWrites };
  };
  const m = op((u) => {
    dev.pageTable.map(va, PAGE_4K, 0x4100_0000, { aperture: APERTURE.SYS }, u.pt);
    u.tlb.invalidate(va, PAGE_4K);
  });
  const un = op((u) => {
    dev.pageTable.unmap(va, PAGE_4K, u.pt);
    u.tlb.invalidate(va, PAGE_4K);
  });
  const big = (mode: 'bar0' | 'ce', at: number) =>
    op((u) => {
      const pas = Array.from({ length: 512 }, (_, i) => 0x5000_0000 + i * 3 * PAGE_4K);
      dev.pageTable.mapRange(at, PAGE_4K, pas, { aperture: APERTURE.SYS }, u.pt);
      u.tlb.invalidate(at, PAGE_2M);
    }, mode);
  // prime both 2 MiB blocks' tables first so the per-page figure is PTE writes, not PDE allocation
  for (const at of [va + 4 * PAGE_2M, va + 6 * PAGE_2M]) {
    const p = dev.beginUpdate('bar0');
    dev.pageTable.map(at, PAGE_4K, 0x4000_0000, { aperture: APERTURE.SYS }, p.pt);
    dev.pageTable.unmap(at, PAGE_4K, p.pt);
    p.end();
  }
  const b0 = big('bar0', va + 4 * PAGE_2M);
  const ce = big('ce', va + 6 * PAGE_2M);
  return {
    format: name,
    map4kNs: m.ns,
    map4kPteWrites: m.writes,
    unmap4kNs: un.ns,
    map2mAs4kPerPageNs: b0.ns / 512,
    map2mCePerPageNs: ce.ns / 512,
  };
}

/** Source lines (non-blank, non-comment) of each section of walkers.ts. */
function walkerLines(): { branchy: number; specialised: number } {
  const src = readFileSync(new URL('./walkers.ts', import.meta.url), 'utf8').split('\n');
  let section = '';
  const count: Record<string, number> = {};
  for (const l of src) {
    const t = l.trim();
    if (t.startsWith('// ----')) {
      section = t.includes('branches') ? 'branchy' : 'specialised';
      continue;
    }
    if (section === '' || t === '' || t.startsWith('//') || t.startsWith('/**') || t.startsWith('*'))
      continue;
    count[section] = (count[section] ?? 0) + 1;
  }
  return { branchy: count['branchy'] ?? 0, specialised: count['specialised'] ?? 0 };
}

const f1 = (ns: number) => (ns < 10 ? ns.toFixed(2) : ns.toFixed(1));
const us = (ns: number) => `${(ns / 1000).toFixed(2)} µs`;

/** Runs the measurement and formats the tables. */
export function run(opts: PteVersionsOptions = {}): PteVersionsResult {
  const walksPerRound = opts.walksPerRound ?? 100_000;
  const rounds = opts.rounds ?? 41;
  const walkers: WalkerRow[] = [];
  const noise: { format: 'v2' | 'v3'; ns: number }[] = [];
  let agree = true;
  let vaCount = 0;
  for (const [name, fmt, special, version] of [
    ['v2', nvMmuV2, walkV2, 2],
    ['v3', nvMmuV3, walkV3, 3],
  ] as const) {
    const sim = createSim({ seed: 1 });
    const dev = createGpuDevice(sim, { format: fmt, vramBytes: 64 << 20 });
    const pt = dev.pageTable;
    const vas = populate(pt, new Rng(7));
    vaCount = vas.length;
    const tr = new Translation();
    const w = pt.words;
    const base = pt.poolBase;
    const root = pt.rootAddr;
    for (const va of vas) {
      const ref = pt.translateInto(va, tr) === WALK.MAPPED ? tr.pa : -1;
      if (special(w, base, root, va) !== ref || walkBranchy(version, w, base, root, va) !== ref)
        agree = false;
    }
    const generic = (va: number) => (pt.translateInto(va, tr) === WALK.MAPPED ? tr.pa : -1);
    const branchy = (va: number) => walkBranchy(version, w, base, root, va);
    const spec = (va: number) => special(w, base, root, va);
    // the specialised walker runs twice: the difference between its two figures is the noise floor
    const spec2 = (va: number) => special(w, base, root, va);
    const [b, s1, g, s2] = timeAll([branchy, spec, generic, spec2], vas, walksPerRound, rounds);
    walkers.push({ format: name, walker: 'branchy', nsPerWalk: b! });
    walkers.push({ format: name, walker: 'specialised', nsPerWalk: Math.min(s1!, s2!) });
    walkers.push({ format: name, walker: 'hmmkit-generic', nsPerWalk: g! });
    noise.push({ format: name, ns: Math.abs(s1! - s2!) });
  }
  const mm = [mmio('v2', nvMmuV2), mmio('v3', nvMmuV3)];
  const loc = walkerLines();

  const lines: string[] = [];
  const say = (s: string) => lines.push(s);
  say(
    `walkers agree with PageTable.translateInto on all ${vaCount} addresses (v2 and v3): ${agree ? 'yes' : 'NO'}`,
  );
  say(`source lines: branchy walker ${loc.branchy}, specialised v2 + v3 ${loc.specialised}`);
  say('');
  say('| format | walker | ns / walk (real, fastest round) | Δ vs specialised |');
  say('|---|---|---|---|');
  for (const r of walkers) {
    const s = walkers.find((x) => x.format === r.format && x.walker === 'specialised')!.nsPerWalk;
    say(
      `| ${r.format} | ${r.walker} | ${f1(r.nsPerWalk)} | ${r.walker === 'specialised' ? '—' : f1(r.nsPerWalk - s)} |`,
    );
  }
  say(
    `noise floor (the specialised walker timed twice): ${noise.map((x) => `${x.format} ${f1(x.ns)} ns`).join(', ')}`,
  );
  say('');
  say(
    `| format | map 4K (BAR0 + TLB inv.) | unmap 4K | 2 MiB of 4K via BAR0, per page | 2 MiB of 4K via CE batch, per page |`,
  );
  say('|---|---|---|---|---|');
  for (const m of mm) {
    say(
      `| ${m.format} | ${us(m.map4kNs)} (${m.map4kPteWrites} PTE write) | ${us(m.unmap4kNs)} | ` +
        `${f1(m.map2mAs4kPerPageNs)} ns | ${f1(m.map2mCePerPageNs)} ns |`,
    );
  }
  say('');
  say(
    `| format | all walks per mapped page, branchy (${WALKS_PER_MAP} walks) | share of a BAR0 4K map | branch overhead per mapped page | share of a BAR0 4K map | share of a BAR0 2 MiB map, per page | share of a CE-batched map, per page | branches reach ${NOISE_SHARE * 100}% when MMIO per page < |`,
  );
  say('|---|---|---|---|---|---|---|---|');
  for (const m of mm) {
    const b = walkers.find((x) => x.format === m.format && x.walker === 'branchy')!.nsPerWalk;
    const s = walkers.find((x) => x.format === m.format && x.walker === 'specialised')!.nsPerWalk;
    const over = Math.max(0, b - s) * WALKS_PER_MAP;
    const pct = (den: number) => `${((100 * over) / den).toFixed(3)}%`;
    say(
      `| ${m.format} | ${f1(b * WALKS_PER_MAP)} ns | ${((100 * b * WALKS_PER_MAP) / m.map4kNs).toFixed(2)}% | ${f1(over)} ns | ${pct(m.map4kNs)} | ${pct(m.map2mAs4kPerPageNs)} | ${pct(m.map2mCePerPageNs)} | ${f1(over / NOISE_SHARE)} ns |`,
    );
  }
  return {
    walkers,
    noise,
    mmio: mm,
    agree,
    vaCount,
    linesBranchy: loc.branchy,
    linesSpecialised: loc.specialised,
    lines,
  };
}
