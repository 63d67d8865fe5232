import { createReadStream, createWriteStream, readFileSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ArgumentError, StateError } from '@hmmkit/sim';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ACCESS_KIND,
  createBatch,
  type Kernel,
  kernelsOf,
  memorySink,
  munmapStorm,
  type Phase,
  pingPong,
  RECORD,
  readTrace,
  readTracePhases,
  stencil,
  TRACE,
  TraceFormatError,
  TraceWriter,
  withCpuPhases,
  writableSink,
  writeWorkloadTrace,
} from '../src/index.ts';

function* chunksOf(bytes: Uint8Array, size: number): Generator<Uint8Array> {
  for (let o = 0; o < bytes.length; o += size) yield bytes.subarray(o, Math.min(bytes.length, o + size));
}

async function drain<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

const workload = () => {
  const w = pingPong(stencil({ footprintBytes: 1 << 20, numSMs: 2, warpsPerSM: 4, iterations: 2 }));
  return withCpuPhases(
    w,
    (k) => (k === 0 ? [...munmapStorm(w.arrays[0]!, { count: 3 }), { op: 'fork' }] : []),
    {
      suffix: '+storm',
    },
  );
};

describe('trace writer/reader', () => {
  it('round-trips byte for byte through odd chunk sizes, and back to identical streams', async () => {
    const w = workload();
    const sink = memorySink();
    const written = await writeWorkloadTrace(w, sink, { chunkBytes: 4096 });
    const a = sink.bytes();
    expect(a.length).toBe(written);
    expect(new TextDecoder().decode(a.subarray(0, 8))).toBe(TRACE.MAGIC);
    expect((a.length - TRACE.HEADER_BYTES) % TRACE.RECORD_BYTES).toBe(0);
    for (const size of [7, 1000, 1 << 16]) {
      const copy = memorySink();
      const tw = new TraceWriter(copy, { chunkBytes: 1024 });
      for await (const ev of readTrace(chunksOf(a, size), { batchCapacity: 100 })) await tw.write(ev);
      expect(Buffer.from(copy.bytes()).equals(Buffer.from(a))).toBe(true);
    }
    // Phases read back: same kinds, same CPU ops, same per-warp streams.
    const orig: Phase[] = [...w.phases()];
    let meta: unknown = null;
    const back = await drain(readTracePhases(chunksOf(a, 333), (m) => (meta = m)));
    expect(meta).toMatchObject({ name: w.name, pattern: w.pattern });
    expect(back.map((p) => p.type)).toEqual(orig.map((p) => p.type));
    for (let i = 0; i < orig.length; i++) {
      const o = orig[i]!;
      const b = back[i]!;
      if (o.type === 'cpu' && b.type === 'cpu') expect(b.ops).toEqual(o.ops);
      if (o.type === 'kernel' && b.type === 'kernel') {
        const x: Kernel = o.kernel;
        const y: Kernel = b.kernel;
        expect(y.name).toBe(x.name);
        expect(y.warps).toBe(x.warps);
        expect(Buffer.from(y.streams.vas.buffer).equals(Buffer.from(x.streams.vas.buffer))).toBe(true);
        expect(Array.from(y.streams.warpStart)).toEqual(Array.from(x.streams.warpStart));
        expect(Array.from(y.streams.access)).toEqual(Array.from(x.streams.access));
        expect(Array.from(y.streams.sizes)).toEqual(Array.from(x.streams.sizes));
      }
    }
    expect(kernelsOf(w).length).toBe(back.filter((p) => p.type === 'kernel').length);
  });

  it('rejects bad magic, other versions, truncation and misplaced records', async () => {
    const sink = memorySink();
    await writeWorkloadTrace(workload(), sink);
    const good = sink.bytes();
    const bad = good.slice();
    bad[0] = 0x58;
    await expect(drain(readTrace([bad]))).rejects.toThrow(TraceFormatError);
    const v2 = good.slice();
    v2[8] = 2;
    await expect(drain(readTrace([v2]))).rejects.toThrow(/version/);
    await expect(drain(readTrace([good.subarray(0, good.length - 16)]))).rejects.toThrow(/END/);
    await expect(drain(readTrace([good.subarray(0, good.length - 5)]))).rejects.toThrow(/truncated/);
    await expect(drain(readTrace([good.subarray(0, 10)]))).rejects.toThrow(/header/);
    // An ACCESS record right after the workload blob (outside a kernel).
    const rogue = memorySink();
    const tw = new TraceWriter(rogue);
    await tw.begin({ name: 'x', pattern: 'trace', arrays: [] });
    await tw.close();
    const bytes = rogue.bytes();
    const patched = new Uint8Array(bytes.length + 16);
    patched.set(bytes.subarray(0, bytes.length - 16));
    patched[bytes.length - 1] = RECORD.ACCESS;
    patched.set(bytes.subarray(bytes.length - 16), bytes.length);
    await expect(drain(readTrace([patched]))).rejects.toThrow(/outside a kernel/);
  });

  it('writer protocol misuse throws StateError, leaving the output unchanged', async () => {
    const sink = memorySink();
    const tw = new TraceWriter(sink, { chunkBytes: 64 });
    const meta = {
      name: 'k',
      pattern: 'trace',
      numSMs: 1,
      warpsPerSM: 1,
      warpsPerCta: 1,
      warps: 1,
      arrays: [],
    } as const;
    await expect(tw.beginKernel(meta)).rejects.toThrow(StateError);
    await tw.begin({ name: 'x', pattern: 'trace', arrays: [] });
    await expect(tw.writeAccesses(createBatch(1))).rejects.toThrow(StateError);
    await expect(tw.endKernel()).rejects.toThrow(StateError);
    await expect(tw.begin({ name: 'x', pattern: 'trace', arrays: [] })).rejects.toThrow(StateError);
    await tw.beginKernel(meta);
    await expect(tw.writeCpu([])).rejects.toThrow(StateError);
    await expect(tw.beginKernel(meta)).rejects.toThrow(StateError);
    await tw.close();
    await expect(tw.close()).rejects.toThrow(StateError);
    // The output is still a valid trace: the failed calls wrote nothing.
    const evs = await drain(readTrace([sink.bytes()]));
    expect(evs.map((e) => e.type)).toEqual(['workload', 'kernelBegin', 'kernelEnd', 'end']);
    expect(() => new TraceWriter(memorySink(), { chunkBytes: 100 })).toThrow(ArgumentError);
  });
});

describe('large traces stream in bounded state', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hmmkit-trace-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes 1.5M records to a file and reads them back in 64 KiB chunks', async () => {
    const path = join(dir, 'big.hmmtrace');
    const total = 1_500_000;
    const out = createWriteStream(path);
    const tw = new TraceWriter(writableSink(out));
    await tw.begin({ name: 'big', pattern: 'trace', arrays: [] });
    await tw.beginKernel({
      name: 'k',
      pattern: 'trace',
      numSMs: 1,
      warpsPerSM: 64,
      warpsPerCta: 1,
      warps: 64,
      arrays: [],
    });
    const b = createBatch(4096);
    let sum = 0;
    for (let i = 0; i < total; i += b.va.length) {
      b.count = Math.min(b.va.length, total - i);
      for (let j = 0; j < b.count; j++) {
        const n = i + j;
        b.va[j] = 0x1_0000_0000 + n * 128;
        b.kind[j] = n % 3 === 0 ? ACCESS_KIND.WRITE : ACCESS_KIND.READ;
        b.warp[j] = n % 64;
        b.size[j] = 128;
        sum += n % 64;
      }
      await tw.writeAccesses(b);
    }
    await tw.close();
    await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
    expect((await stat(path)).size).toBe(tw.bytesWritten);
    let n = 0;
    let warpSum = 0;
    let ordered = true;
    let peak = 0;
    let records = 0;
    for await (const ev of readTrace(createReadStream(path, { highWaterMark: 1 << 16 }), {
      onStats: (s) => {
        peak = s.maxBufferedBytes;
        records = s.records;
      },
    })) {
      if (ev.type !== 'accesses') continue;
      const batch = ev.batch;
      for (let j = 0; j < batch.count; j++) {
        if (batch.va[j] !== 0x1_0000_0000 + (n + j) * 128) ordered = false;
        warpSum += batch.warp[j]!;
      }
      n += batch.count;
    }
    expect(n).toBe(total);
    expect(ordered).toBe(true);
    expect(warpSum).toBe(sum);
    // Reader state: one 4096-entry batch (13 B each) + the 64 KiB staging copy + a small blob,
    // independent of the trace's 24 MB.
    expect(peak).toBeLessThan(4096 * 13 + (1 << 17) + 4096);
    expect(records).toBeGreaterThan(total);
    expect(readFileSync(path).subarray(0, 7).toString()).toBe('HMMKTRC');
  });
});
