/**
 * Workload generation and trace I/O throughput.
 *
 * 1. Accesses generated per second by each generator (every kernel of an 8 MiB workload with its
 *    default iterations, 80 SMs × 32 warps, graph generation included) against a plain loop that fills the same three typed arrays (Float64Array va,
 *    Uint8Array kind, Uint16Array size) with a linear sequence: the floor of writing a stream.
 * 2. Trace write and read throughput (MB/s) of a streaming kernel's trace against fs writing and
 *    reading the same bytes (one `writeFile`, one `createReadStream` pass).
 *
 * Run from packages/workloads: `tsx bench/workloads.bench.ts` (or `sh ../../scripts/bench.sh`).
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newBench, nsPerOp, printTable, sink } from '@hmmkit/sim/bench';
import {
  type AccessBatch,
  GENERATORS,
  type GeneratorName,
  issueOrder,
  type Kernel,
  kernelMeta,
  memorySink,
  readTrace,
  streaming,
  TraceWriter,
  type Workload,
  writableSink,
} from '../src/index.ts';

const FOOTPRINT = 8 << 20;

function firstKernel(w: Workload): Kernel {
  for (const ph of w.phases()) if (ph.type === 'kernel') return ph.kernel;
  throw new Error(`${w.name} has no kernel`);
}

/** Builds every kernel of a workload; returns the total access count. */
function allAccesses(w: Workload): number {
  let n = 0;
  for (const ph of w.phases()) if (ph.type === 'kernel') n += ph.kernel.accesses;
  return n;
}

// ---- 1. generators vs a linear fill ---------------------------------------------------------
const names = Object.keys(GENERATORS) as GeneratorName[];
const sizes = new Map<GeneratorName, number>();
for (const n of names) sizes.set(n, allAccesses(GENERATORS[n]({ footprintBytes: FOOTPRINT })));

const LINEAR = 1 << 20;
function linearFill(n: number): number {
  const va = new Float64Array(n);
  const kind = new Uint8Array(n);
  const size = new Uint16Array(n);
  const base = 0x1_0000_0000;
  for (let i = 0; i < n; i++) {
    va[i] = base + i * 128;
    kind[i] = 1;
    size[i] = 128;
  }
  return va[n - 1]! + kind[n >> 1]! + size[0]!;
}

const gen = newBench(400, 50);
gen.add('linear typed-array fill', () => {
  sink.value += linearFill(LINEAR);
});
for (const n of names) {
  gen.add(n, () => {
    sink.value += allAccesses(GENERATORS[n]({ footprintBytes: FOOTPRINT }));
  });
}
await gen.run();
const base = nsPerOp(gen, 'linear typed-array fill', LINEAR);
printTable(
  `Accesses generated (whole ${FOOTPRINT >> 20} MiB workloads, 2560 warps; node ${process.version})`,
  'linear typed-array fill',
  base,
  names.map((n) => [`${n} (${sizes.get(n)} accesses)`, nsPerOp(gen, n, sizes.get(n)!)] as [string, number]),
);

// ---- 2. trace I/O vs fs ---------------------------------------------------------------------
const dir = await mkdtemp(join(tmpdir(), 'hmmkit-bench-'));
const k = firstKernel(streaming({ footprintBytes: 32 << 20 }));
const mem = memorySink();
{
  const tw = new TraceWriter(mem);
  await tw.begin({ name: 'bench', pattern: 'streaming', arrays: k.arrays });
  await tw.writeKernel(k);
  await tw.close();
}
const bytes = mem.bytes();
const MB = bytes.length / 1e6;
const tracePath = join(dir, 'trace.hmmtrace');
const rawPath = join(dir, 'raw.bin');
await writeFile(rawPath, bytes);

// Pre-interleave once, so the write task measures encoding + file I/O, not issueOrder.
const batches: AccessBatch[] = [];
for (const b of issueOrder(k.streams, 4096)) {
  batches.push({
    count: b.count,
    va: b.va.slice(),
    kind: b.kind.slice(),
    warp: b.warp.slice(),
    size: b.size.slice(),
  });
}
async function writeTraceFile(): Promise<number> {
  const out = createWriteStream(tracePath);
  const tw = new TraceWriter(writableSink(out));
  await tw.begin({ name: 'bench', pattern: 'streaming', arrays: k.arrays });
  await tw.beginKernel(kernelMeta(k));
  for (const b of batches) await tw.writeAccesses(b);
  await tw.endKernel();
  await tw.close();
  await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
  return tw.bytesWritten;
}
async function readTraceFile(): Promise<number> {
  let n = 0;
  for await (const ev of readTrace(createReadStream(tracePath, { highWaterMark: 1 << 16 }))) {
    if (ev.type === 'accesses') n += ev.batch.count;
  }
  return n;
}
async function readRaw(): Promise<number> {
  let n = 0;
  for await (const c of createReadStream(rawPath, { highWaterMark: 1 << 16 })) n += (c as Buffer).length;
  return n;
}
await writeTraceFile();
const io = newBench(1500, 100);
io.add('fs writeFile (same bytes)', async () => {
  await writeFile(join(dir, 'copy.bin'), bytes);
  sink.value += 1;
});
io.add('TraceWriter → file', async () => {
  sink.value += await writeTraceFile();
});
io.add('fs createReadStream (same bytes)', async () => {
  sink.value += await readRaw();
});
io.add('readTrace ← file', async () => {
  sink.value += await readTraceFile();
});
await io.run();
const mbps = (name: string): number => MB / (nsPerOp(io, name, 1) / 1e9);
console.log(`\nTrace I/O (${k.accesses} accesses, ${MB.toFixed(1)} MB, 64 KiB chunks)\n`);
console.log('| task | MB/s | fs baseline MB/s | ratio (trace / fs) |');
console.log('| --- | ---: | ---: | ---: |');
for (const [t, b] of [
  ['TraceWriter → file', 'fs writeFile (same bytes)'],
  ['readTrace ← file', 'fs createReadStream (same bytes)'],
] as const) {
  console.log(
    `| ${t} | ${mbps(t).toFixed(0)} | ${mbps(b).toFixed(0)} | ${(mbps(t) / mbps(b)).toFixed(2)}× |`,
  );
}
await rm(dir, { recursive: true, force: true });
console.log(`\n(sink ${sink.value > 0 ? 'ok' : 'empty'})`);
