/**
 * Page-table translate throughput: the one format-generic walker (`PageTable.translateInto`,
 * driven by the compiled descriptor) against a walker hand-specialised for NVIDIA MMU v2 (bit
 * positions, shifts and the dual-PDE logic written as constants), both reading the same table
 * pool. The tree holds 4K, 64K and 2M mappings over 1 GiB; lookups are random VAs in it
 * (1/8 unmapped). Ratio = generic ns/walk ÷ specialised ns/walk: the price of keeping format
 * versions out of the walker. nv-mmu-v3 and amd-gfx9 run through the same generic walker for
 * comparison.
 *
 * A second table: map + unmap throughput (`mapContiguous` of one 2 MiB region as 512 4K PTEs
 * through a CE batch, then `unmap`) per 4K page, against writing the same 512 entries' words
 * into a Uint32Array (the floor of touching the entries at all).
 *
 * Run from packages/gpu: `tsx bench/walker.bench.ts`.
 */
import { createSim, modPow2, Rng } from '@hmmkit/sim';
import { newBench, nsPerOp, printTable, sink } from '@hmmkit/sim/bench';
import {
  amdGfx9,
  nvMmuV2,
  nvMmuV3,
  PAGE_2M,
  PAGE_4K,
  PAGE_64K,
  PageTable,
  type PtFormat,
  PtUpdateBatch,
  Translation,
  WALK,
} from '../src/index.ts';

const BASE = 0x40_0000_0000;
const SPAN = 2 ** 30;
const K = 4096;

function build(fmt: PtFormat): PageTable {
  const pt = new PageTable(createSim(), fmt);
  const rng = new Rng(5);
  for (let a = BASE; a < BASE + SPAN; a += PAGE_2M) {
    const kind = rng.below(8);
    const pa = (a - BASE) % 2 ** 36;
    if (kind === 0) continue; // unmapped
    if (kind <= 2) pt.map(a, PAGE_2M, pa);
    else if (kind <= 4) pt.mapContiguous(a, PAGE_2M, PAGE_64K, pa);
    else pt.mapContiguous(a, PAGE_2M, PAGE_4K, pa);
  }
  return pt;
}

/** The same outputs the generic walker produces (pa, page shift, permissions, aperture). */
const outV2 = { pa: 0, pageShift: 12, writable: false, atomic: false, aperture: 0 };

function leafV2(w: Uint32Array, o: number, va: number, shift: number): number {
  const lo = w[o]!;
  const ap = (lo >>> 1) & 3;
  const pfn =
    ap >= 2 ? (lo >>> 8) + (w[o + 1]! & 0x3fffff) * 16777216 : (lo >>> 8) + (w[o + 1]! & 1) * 16777216;
  outV2.pa = pfn * 4096 + modPow2(va, 2 ** shift);
  outV2.pageShift = shift;
  outV2.aperture = ap;
  outV2.writable = (lo & 0x40) === 0;
  outV2.atomic = outV2.writable && (lo & 0x80) === 0;
  return outV2.pa;
}

/** NVIDIA MMU v2, written out by hand (VID page tables): returns the pa or -1 (fault / not mapped). */
function walkV2(w: Uint32Array, poolBase: number, root: number, va: number): number {
  // PDE3 (48:47), PDE2 (46:38), PDE1 (37:29): 8-byte PDEs, aperture 2:1, VID address 32:8 << 12.
  let o = (root - poolBase) / 4 + (Math.floor(va / 2 ** 47) & 3) * 2;
  let lo = w[o]!;
  if (((lo >>> 1) & 3) === 0) return -1;
  let t = ((lo >>> 8) + (w[o + 1]! & 1) * 16777216) * 4096;
  o = (t - poolBase) / 4 + (Math.floor(va / 2 ** 38) & 511) * 2;
  lo = w[o]!;
  if (((lo >>> 1) & 3) === 0) return -1;
  t = ((lo >>> 8) + (w[o + 1]! & 1) * 16777216) * 4096;
  o = (t - poolBase) / 4 + (Math.floor(va / 2 ** 29) & 511) * 2;
  lo = w[o]!;
  if ((lo & 1) === 1) return leafV2(w, o, va, 29);
  if (((lo >>> 1) & 3) === 0) return -1;
  t = ((lo >>> 8) + (w[o + 1]! & 1) * 16777216) * 4096;
  // PDE0 dual (28:21), 16-byte entries.
  o = (t - poolBase) / 4 + (Math.floor(va / 2 ** 21) & 255) * 4;
  lo = w[o]!;
  if ((lo & 1) === 1) return leafV2(w, o, va, 21);
  if (((lo >>> 1) & 3) !== 0) {
    // big table: address 32:4 << 8
    const bt = ((lo >>> 4) + (w[o + 1]! & 1) * 268435456) * 256;
    const bo = (bt - poolBase) / 4 + (Math.floor(va / 65536) & 31) * 2;
    const b = w[bo]!;
    if ((b & 1) === 1) return leafV2(w, bo, va, 16);
    if ((b & 0x20) !== 0 || (b & 0x8) !== 0) return -1; // unmapped / sparse
  }
  const hi = w[o + 2]!;
  if (((hi >>> 1) & 3) === 0) return -1;
  // small table: address 96:72 << 12
  const st = ((hi >>> 8) + (w[o + 3]! & 1) * 16777216) * 4096;
  const so = (st - poolBase) / 4 + (Math.floor(va / 4096) & 511) * 2;
  if ((w[so]! & 1) === 0) return -1;
  return leafV2(w, so, va, 12);
}

const rng = new Rng(9);
const vas = new Float64Array(1 << 16);
for (let i = 0; i < vas.length; i++) vas[i] = BASE + Math.floor(rng.next() * SPAN);

const tables = { v2: build(nvMmuV2), v3: build(nvMmuV3), amd: build(amdGfx9) };
const tr = new Translation();
// Correctness first: the two v2 walkers agree on every sampled address.
const v2 = tables.v2;
for (let i = 0; i < vas.length; i++) {
  const g = v2.translateInto(vas[i]!, tr) === WALK.MAPPED ? tr.pa : -1;
  const s = walkV2(v2.words, v2.poolBase, v2.rootAddr, vas[i]!);
  if (
    s >= 0 &&
    (outV2.pageShift !== tr.pageShift || outV2.writable !== tr.writable || outV2.atomic !== tr.atomic)
  ) {
    throw new Error(`walkers disagree on attributes at 0x${vas[i]!.toString(16)}`);
  }
  if (g !== s) throw new Error(`walkers disagree at 0x${vas[i]!.toString(16)}: ${g} vs ${s}`);
}

let c = 0;
function generic(pt: PageTable): number {
  let s = 0;
  for (let k = 0; k < K; k++) {
    if (pt.translateInto(vas[c++ & 0xffff]!, tr) === WALK.MAPPED) s += tr.pa;
  }
  return s;
}
function special(): number {
  let s = 0;
  const w = v2.words;
  for (let k = 0; k < K; k++) s += walkV2(w, v2.poolBase, v2.rootAddr, vas[c++ & 0xffff]!);
  return s;
}

const bench = newBench();
bench.add('hand-specialised nv-mmu-v2', () => {
  sink.value += special();
});
bench.add('generic walker, nv-mmu-v2', () => {
  sink.value += generic(tables.v2);
});
bench.add('generic walker, nv-mmu-v3', () => {
  sink.value += generic(tables.v3);
});
bench.add('generic walker, amd-gfx9', () => {
  sink.value += generic(tables.amd);
});
await bench.run();
const base = nsPerOp(bench, 'hand-specialised nv-mmu-v2', K);
printTable(
  `Page-table walks over 1 GiB of mixed 4K/64K/2M mappings (node ${process.version}, ${K} walks per call)`,
  'hand-specialised nv-mmu-v2',
  base,
  ['generic walker, nv-mmu-v2', 'generic walker, nv-mmu-v3', 'generic walker, amd-gfx9'].map((n) => [
    n,
    nsPerOp(bench, n, K),
  ]),
);
console.log(`\n(sink ${sink.value > 0 ? 'ok' : 'empty'})`);

// ---------------------------------------------------------------- map / unmap throughput

const mapTables = { v2: new PageTable(createSim(), nvMmuV2), amd: new PageTable(createSim(), amdGfx9) };
const raw = new Uint32Array(1024);
let region = 0;
function mapUnmap(pt: PageTable): number {
  const b = new PtUpdateBatch(pt.sim, 'ce');
  const va = BASE + (region++ % 64) * PAGE_2M;
  pt.mapContiguous(va, PAGE_2M, PAGE_4K, 0x4000_0000, {}, b);
  pt.unmap(va, PAGE_2M, b);
  b.commit();
  return b.pteWrites;
}
const mapBench = newBench();
mapBench.add('raw Uint32Array entry writes', () => {
  for (let i = 0; i < 512; i++) {
    raw[2 * i] = (0x40000 + i) * 256 + 1;
    raw[2 * i + 1] = 0;
  }
  sink.value += raw[1022]!;
});
mapBench.add('map+unmap 512 × 4K, nv-mmu-v2', () => {
  sink.value += mapUnmap(mapTables.v2);
});
mapBench.add('map+unmap 512 × 4K, amd-gfx9', () => {
  sink.value += mapUnmap(mapTables.amd);
});
await mapBench.run();
const rawNs = nsPerOp(mapBench, 'raw Uint32Array entry writes', 512);
printTable(
  `Page-table map + unmap, per 4K page (node ${process.version}, 512 pages per call, CE batch)`,
  'raw Uint32Array entry writes',
  rawNs,
  ['map+unmap 512 × 4K, nv-mmu-v2', 'map+unmap 512 × 4K, amd-gfx9'].map((n) => [
    n,
    nsPerOp(mapBench, n, 512),
  ]),
);
console.log(`\n(sink ${sink.value > 0 ? 'ok' : 'empty'})`);
