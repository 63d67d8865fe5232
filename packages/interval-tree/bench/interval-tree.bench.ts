/**
 * @hmmkit/interval-tree against @flatten-js/interval-tree and node-interval-tree, in one
 * process, on the same pre-generated operation streams (notifier-like workloads):
 *
 * - N intervals: page-aligned VA ranges over a 47-bit space, 1..512 pages long, one in eight a
 *   2 MiB-aligned 2 MiB window (a THP-sized notifier);
 * - (a) build: insert all N into an empty tree (ns per insert);
 * - (b) churn: at steady size N, remove a random live interval and insert a fresh one (ns per pair);
 * - (c) stab: the intervals holding one address (3/4 of them inside some interval, as a fault or
 *   an invalidation of a mapped page is) (ns per query);
 * - (d) range: the intervals overlapping a 2 MiB-aligned 2 MiB window (ns per query).
 *
 * Every query result is counted into a module-level sink (the libraries' arrays are consumed).
 * Ratios are others / ours: above 1 means ours is faster.
 *
 * Run: pnpm --filter @hmmkit/interval-tree bench  (or from packages/interval-tree:
 * `tsx bench/interval-tree.bench.ts`). IT_BENCH_SIZES=1000,10000 limits the sizes.
 */
import FlattenIntervalTree from '@flatten-js/interval-tree';
import { Rng } from '@hmmkit/sim';
import { IntervalTree as NodeIntervalTree } from 'node-interval-tree';
import { Bench } from 'tinybench';
import { IntervalTree, type IntervalTreeNode } from '../src/index.ts';

const PAGE = 4096;
const HUGE = 2 * 1024 * 1024;
const VA_PAGES = 2 ** 47 / PAGE;
/** Ops per timed call for churn and queries. */
const K = 1024;
/** Length of the pre-generated churn and query streams (cycled). */
const STREAM = 1 << 16;

/** Sink: every result lands here so no work is eliminated. */
let sink = 0;

interface Rec {
  low: number;
  high: number;
  id: number;
}

interface Workload {
  n: number;
  starts: Float64Array;
  lasts: Float64Array;
  /** Churn stream: slot to replace, and the new interval. */
  churnSlot: Uint32Array;
  churnStart: Float64Array;
  churnLast: Float64Array;
  stab: Float64Array;
  window: Float64Array;
  /** The same queries as tuples, built outside the timed region for @flatten-js. */
  stabTuple: [number, number][];
  windowTuple: [number, number][];
}

function randomInterval(rng: Rng): [number, number] {
  if (rng.below(8) === 0) {
    const w = rng.below(2 ** 47 / HUGE) * HUGE;
    return [w, w + HUGE - 1];
  }
  const pages = rng.between(1, 512);
  const start = rng.below(VA_PAGES - pages) * PAGE;
  return [start, start + pages * PAGE - 1];
}

function makeWorkload(n: number, seed: number): Workload {
  const rng = new Rng(seed);
  const starts = new Float64Array(n);
  const lasts = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const [s, l] = randomInterval(rng);
    starts[i] = s;
    lasts[i] = l;
  }
  const churnSlot = new Uint32Array(STREAM);
  const churnStart = new Float64Array(STREAM);
  const churnLast = new Float64Array(STREAM);
  for (let i = 0; i < STREAM; i++) {
    churnSlot[i] = rng.below(n);
    const [s, l] = randomInterval(rng);
    churnStart[i] = s;
    churnLast[i] = l;
  }
  const stab = new Float64Array(STREAM);
  const window = new Float64Array(STREAM);
  for (let i = 0; i < STREAM; i++) {
    const j = rng.below(n);
    const s = starts[j]!;
    const l = lasts[j]!;
    stab[i] = rng.below(4) === 0 ? rng.below(VA_PAGES) * PAGE + rng.below(PAGE) : s + rng.below(l - s + 1);
    const base = rng.below(4) === 0 ? rng.below(VA_PAGES) * PAGE : s;
    window[i] = Math.floor(base / HUGE) * HUGE;
  }
  const stabTuple = Array.from(stab, (a): [number, number] => [a, a]);
  const windowTuple = Array.from(window, (w): [number, number] => [w, w + HUGE - 1]);
  return { n, starts, lasts, churnSlot, churnStart, churnLast, stab, window, stabTuple, windowTuple };
}

/** One library under test: the four workloads as closures over its own state. */
interface Subject {
  build(): void;
  churn(): void;
  stab(): void;
  range(): void;
  /** Total results of the whole query streams, to check that the libraries agree. */
  checksum(): number;
}

function ours(w: Workload): Subject & { tree: IntervalTree<number> } {
  const { n, starts, lasts } = w;
  const tree = new IntervalTree<number>();
  const slots: IntervalTreeNode<number>[] = [];
  for (let i = 0; i < n; i++) slots.push(tree.insert(starts[i]!, lasts[i]!, i));
  let c = 0;
  let q = 0;
  const stabRun = (from: number, count: number): number => {
    let hits = 0;
    for (let i = from; i < from + count; i++) {
      const a = w.stab[i & (STREAM - 1)]!;
      for (let nd = tree.iterFirst(a, a); nd !== null; nd = tree.iterNext(nd, a, a)) hits++;
    }
    return hits;
  };
  const rangeRun = (from: number, count: number): number => {
    let hits = 0;
    for (let i = from; i < from + count; i++) {
      const s = w.window[i & (STREAM - 1)]!;
      const l = s + HUGE - 1;
      for (let nd = tree.iterFirst(s, l); nd !== null; nd = tree.iterNext(nd, s, l)) hits++;
    }
    return hits;
  };
  return {
    tree,
    build() {
      const t = new IntervalTree<number>();
      for (let i = 0; i < n; i++) t.insert(starts[i]!, lasts[i]!, i);
      sink += t.size;
    },
    churn() {
      for (let k = 0; k < K; k++, c++) {
        const i = c & (STREAM - 1);
        const slot = w.churnSlot[i]!;
        tree.remove(slots[slot]!);
        slots[slot] = tree.insert(w.churnStart[i]!, w.churnLast[i]!, slot);
      }
      sink += tree.size;
    },
    stab() {
      sink += stabRun(q, K);
      q += K;
    },
    range() {
      sink += rangeRun(q, K);
      q += K;
    },
    checksum: () => stabRun(0, STREAM) + rangeRun(0, STREAM),
  };
}

/** Ours again, through the callback API (forEachOverlap) instead of the iterFirst/iterNext cursor. */
let visited = 0;
const countVisit = (): void => {
  visited++;
};

function oursCallback(w: Workload, tree: IntervalTree<number>): Pick<Subject, 'stab' | 'range'> {
  let q = 0;
  return {
    stab() {
      for (let k = 0; k < K; k++, q++) {
        const a = w.stab[q & (STREAM - 1)]!;
        tree.forEachOverlap(a, a, countVisit);
      }
      sink += visited;
    },
    range() {
      for (let k = 0; k < K; k++, q++) {
        const s = w.window[q & (STREAM - 1)]!;
        tree.forEachOverlap(s, s + HUGE - 1, countVisit);
      }
      sink += visited;
    },
  };
}

function flatten(w: Workload): Subject {
  const { n, starts, lasts } = w;
  const tree = new FlattenIntervalTree<number>();
  // Each slot's current key, to remove it by (key, value) as the library requires.
  const keys: [number, number][] = [];
  for (let i = 0; i < n; i++) {
    const key: [number, number] = [starts[i]!, lasts[i]!];
    tree.insert(key, i);
    keys.push(key);
  }
  let c = 0;
  let q = 0;
  const stabRun = (from: number, count: number): number => {
    let hits = 0;
    for (let i = from; i < from + count; i++) hits += tree.search(w.stabTuple[i & (STREAM - 1)]!).length;
    return hits;
  };
  const rangeRun = (from: number, count: number): number => {
    let hits = 0;
    for (let i = from; i < from + count; i++) hits += tree.search(w.windowTuple[i & (STREAM - 1)]!).length;
    return hits;
  };
  return {
    build() {
      const t = new FlattenIntervalTree<number>();
      for (let i = 0; i < n; i++) t.insert([starts[i]!, lasts[i]!], i);
      sink += t.isEmpty() ? 0 : 1;
    },
    churn() {
      for (let k = 0; k < K; k++, c++) {
        const i = c & (STREAM - 1);
        const slot = w.churnSlot[i]!;
        tree.remove(keys[slot]!, slot);
        const key: [number, number] = [w.churnStart[i]!, w.churnLast[i]!];
        tree.insert(key, slot);
        keys[slot] = key;
      }
      sink += c;
    },
    stab() {
      sink += stabRun(q, K);
      q += K;
    },
    range() {
      sink += rangeRun(q, K);
      q += K;
    },
    checksum: () => stabRun(0, STREAM) + rangeRun(0, STREAM),
  };
}

function nit(w: Workload): Subject {
  const { n, starts, lasts } = w;
  const tree = new NodeIntervalTree<Rec>();
  const recs: Rec[] = [];
  for (let i = 0; i < n; i++) {
    const rec = { low: starts[i]!, high: lasts[i]!, id: i };
    tree.insert(rec);
    recs.push(rec);
  }
  let c = 0;
  let q = 0;
  const stabRun = (from: number, count: number): number => {
    let hits = 0;
    for (let i = from; i < from + count; i++) {
      const a = w.stab[i & (STREAM - 1)]!;
      hits += tree.search(a, a).length;
    }
    return hits;
  };
  const rangeRun = (from: number, count: number): number => {
    let hits = 0;
    for (let i = from; i < from + count; i++) {
      const s = w.window[i & (STREAM - 1)]!;
      hits += tree.search(s, s + HUGE - 1).length;
    }
    return hits;
  };
  return {
    build() {
      const t = new NodeIntervalTree<Rec>();
      for (let i = 0; i < n; i++) t.insert({ low: starts[i]!, high: lasts[i]!, id: i });
      sink += t.count;
    },
    churn() {
      for (let k = 0; k < K; k++, c++) {
        const i = c & (STREAM - 1);
        const slot = w.churnSlot[i]!;
        tree.remove(recs[slot]!);
        const rec = { low: w.churnStart[i]!, high: w.churnLast[i]!, id: slot };
        tree.insert(rec);
        recs[slot] = rec;
      }
      sink += tree.count;
    },
    stab() {
      sink += stabRun(q, K);
      q += K;
    },
    range() {
      sink += rangeRun(q, K);
      q += K;
    },
    checksum: () => stabRun(0, STREAM) + rangeRun(0, STREAM),
  };
}

type Workname = 'build' | 'churn' | 'stab' | 'range';
const WORKS: Workname[] = ['stab', 'range', 'churn', 'build'];
const LIBS = ['ours', 'flatten-js', 'node-interval-tree'] as const;

interface Row {
  n: number;
  work: Workname;
  ns: Record<(typeof LIBS)[number] | 'ours (forEachOverlap)', number>;
}

function nsPerOp(bench: Bench, name: string, opsPerCall: number): number {
  const r = bench.getTask(name)?.result;
  if (r === undefined || !('latency' in r)) throw new Error(`task ${name} did not complete (${r?.state})`);
  return (r.latency.mean * 1e6) / opsPerCall;
}

function benchOptions(n: number, build: boolean): ConstructorParameters<typeof Bench>[0] {
  const base = { timestampProvider: 'hrtimeNow' as const, throws: true };
  if (build) {
    // One build of N is one sample: few samples for big N.
    // At 10^6 one flatten-js build takes tens of seconds: one sample (itself a mean of 10^6 inserts).
    if (n >= 1_000_000) return { ...base, time: 0, iterations: 1, warmup: false };
    if (n >= 100_000) return { ...base, time: 500, iterations: 5, warmupTime: 0, warmupIterations: 2 };
    return { ...base, time: 300, iterations: 16, warmupTime: 100, warmupIterations: 4 };
  }
  if (n >= 1_000_000) return { ...base, time: 300, iterations: 16, warmupTime: 100, warmupIterations: 4 };
  return { ...base, time: 400, iterations: 32, warmupTime: 150, warmupIterations: 8 };
}

async function runSize(n: number): Promise<Row[]> {
  const w = makeWorkload(n, 0x1e7 + n);
  const subjects = { ours: ours(w), 'flatten-js': flatten(w), 'node-interval-tree': nit(w) };
  const cb = oursCallback(w, subjects.ours.tree);
  // Same streams, same answers: check before timing anything.
  const sums = LIBS.map((lib) => subjects[lib].checksum());
  if (sums.some((s) => s !== sums[0]))
    throw new Error(`N=${n}: libraries disagree on query results: ${sums}`);
  console.log(
    `N=${n}: the query streams return ${sums[0]} results in every library (${(sums[0]! / (2 * STREAM)).toFixed(2)}/query)`,
  );

  const rows: Row[] = [];
  for (const work of WORKS) {
    const bench = new Bench(benchOptions(n, work === 'build'));
    bench.addEventListener('warning', (e) =>
      console.warn(`  warning: ${String((e as { message?: unknown }).message ?? e.type)}`),
    );
    for (const lib of LIBS) bench.add(lib, subjects[lib][work]);
    if (work === 'stab' || work === 'range') bench.add('ours (forEachOverlap)', cb[work]);
    await bench.run();
    const per = work === 'build' ? n : K;
    const row: Row = {
      n,
      work,
      ns: {
        ours: nsPerOp(bench, 'ours', per),
        'flatten-js': nsPerOp(bench, 'flatten-js', per),
        'node-interval-tree': nsPerOp(bench, 'node-interval-tree', per),
        'ours (forEachOverlap)':
          work === 'stab' || work === 'range' ? nsPerOp(bench, 'ours (forEachOverlap)', per) : Number.NaN,
      },
    };
    rows.push(row);
    printRow(row);
  }
  return rows;
}

const HEADER =
  '| N | workload | ours ns/op | ours forEachOverlap | flatten-js ns/op | node-interval-tree ns/op | flatten-js / ours | node-interval-tree / ours |';
const RULE = '| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |';
const LABEL: Record<Workname, string> = {
  build: '(a) build (insert)',
  churn: '(b) churn (remove+insert)',
  stab: '(c) stab (1 address)',
  range: '(d) range (2 MiB window)',
};

function fmt(x: number): string {
  if (Number.isNaN(x)) return '–';
  return x >= 100 ? x.toFixed(0) : x.toFixed(1);
}

function line(r: Row): string {
  const o = r.ns.ours;
  return `| ${r.n.toExponential(0).replace('e+', 'e')} | ${LABEL[r.work]} | ${fmt(o)} | ${fmt(r.ns['ours (forEachOverlap)'])} | ${fmt(r.ns['flatten-js'])} | ${fmt(r.ns['node-interval-tree'])} | ${(r.ns['flatten-js'] / o).toFixed(2)}× | ${(r.ns['node-interval-tree'] / o).toFixed(2)}× |`;
}

function printRow(r: Row): void {
  console.log(`  ${line(r)}`);
}

async function main(): Promise<void> {
  const sizes = (process.env.IT_BENCH_SIZES ?? '1000,10000,100000,1000000').split(',').map(Number);
  console.log(
    `interval-tree bench: node ${process.version}, K=${K} ops per timed call, streams of ${STREAM}`,
  );
  const all: Row[] = [];
  for (const n of sizes) all.push(...(await runSize(n)));
  console.log('\nns per op (mean); ratio = other / ours, above 1 means ours is faster\n');
  console.log(HEADER);
  console.log(RULE);
  const order: Workname[] = ['build', 'churn', 'stab', 'range'];
  for (const n of sizes)
    for (const work of order) console.log(line(all.find((r) => r.n === n && r.work === work)!));
  console.log(`\n(sink ${sink > 0 ? 'ok' : 'empty'})`);
}

await main();
