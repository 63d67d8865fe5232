/**
 * The hmmkit trace format (binary, version 1) with a streaming writer and reader.
 *
 * Layout (little-endian): a 32-byte header, then 16-byte records.
 *
 * Header: `0` magic `"HMMKTRC\0"` · `8` u16 version (1) · `10` u16 header bytes (32) ·
 * `12` u16 record bytes (16) · `14` u16 flags (0) · `16..31` reserved (0).
 *
 * Record: `0` f64 value (a VA for accesses) · `8` u32 (warp, or a blob's byte length) ·
 * `12` u16 size · `14` u8 access kind · `15` u8 record type:
 * - 1 ACCESS: va, warp, size, kind (READ 1, WRITE 2, ATOMIC 3), in GPU issue order;
 * - 2 WORKLOAD, 3 KERNEL_BEGIN, 5 CPU: a blob; the u32 is the UTF-8 JSON length L and the next
 *   ceil(L/16) records hold the bytes, zero-padded (workload meta, kernel meta, a CpuOp list);
 * - 4 KERNEL_END: value = accesses in the kernel;
 * - 6 END: value = records before it. A trace is complete only if it ends with END.
 *
 * @module
 */
import type { Writable } from 'node:stream';
import { ArgumentError, HmmkitError, StateError } from '@hmmkit/sim';
import { type AccessBatch, createBatch, issueOrder, streamsFromBatches, type WarpStreams } from './access.ts';
import type { CpuOp } from './cpu.ts';
import type { ArrayRegion, Kernel, PatternClass, Phase, Workload } from './kernel.ts';

/** Format constants. */
export const TRACE = {
  MAGIC: 'HMMKTRC\0',
  VERSION: 1,
  HEADER_BYTES: 32,
  RECORD_BYTES: 16,
  /** Largest blob accepted by the reader (bounds its memory). */
  MAX_BLOB_BYTES: 1 << 24,
} as const;

/** Record types. */
export const RECORD = { ACCESS: 1, WORKLOAD: 2, KERNEL_BEGIN: 3, KERNEL_END: 4, CPU: 5, END: 6 } as const;

/** Workload metadata stored at the start of a trace. */
export interface TraceWorkloadMeta {
  readonly name: string;
  readonly pattern: PatternClass;
  readonly arrays: readonly ArrayRegion[];
}

/** Kernel metadata stored at each KERNEL_BEGIN. */
export interface TraceKernelMeta {
  readonly name: string;
  readonly pattern: PatternClass;
  readonly numSMs: number;
  readonly warpsPerSM: number;
  readonly warpsPerCta: number;
  readonly warps: number;
  readonly arrays: readonly ArrayRegion[];
}

/** What the reader yields. An `accesses` batch is reused: consume it before the next event. */
export type TraceEvent =
  | { readonly type: 'workload'; readonly meta: TraceWorkloadMeta }
  | { readonly type: 'kernelBegin'; readonly meta: TraceKernelMeta }
  | { readonly type: 'accesses'; readonly batch: AccessBatch }
  | { readonly type: 'kernelEnd'; readonly accesses: number }
  | { readonly type: 'cpu'; readonly ops: readonly CpuOp[] }
  | { readonly type: 'end'; readonly records: number };

/** A malformed or truncated trace. */
export class TraceFormatError extends HmmkitError {
  override name = 'TraceFormatError';
}

/** Where the writer sends full chunks; it never touches a chunk again after handing it over. */
export interface TraceSink {
  write(chunk: Uint8Array): void | Promise<void>;
}

/** A sink over a Node Writable that waits for 'drain' when the stream is full. */
export function writableSink(stream: Writable): TraceSink {
  return {
    write(chunk) {
      if (stream.write(chunk)) return;
      return new Promise<void>((resolve, reject) => {
        const onDrain = (): void => {
          stream.off('error', onError);
          resolve();
        };
        const onError = (e: Error): void => {
          stream.off('drain', onDrain);
          reject(e);
        };
        stream.once('drain', onDrain);
        stream.once('error', onError);
      });
    },
  };
}

/** A sink that keeps every chunk (for tests and small traces); `bytes()` concatenates them. */
export function memorySink(): TraceSink & { readonly chunks: Uint8Array[]; bytes(): Uint8Array } {
  const chunks: Uint8Array[] = [];
  return {
    chunks,
    write(c) {
      chunks.push(c);
    },
    bytes() {
      let n = 0;
      for (const c of chunks) n += c.length;
      const out = new Uint8Array(n);
      let o = 0;
      for (const c of chunks) {
        out.set(c, o);
        o += c.length;
      }
      return out;
    },
  };
}

/** Typed views write little-endian records directly only on little-endian hosts. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The trace metadata of a kernel (everything but its streams). */
export function kernelMeta(k: Kernel): TraceKernelMeta {
  return {
    name: k.name,
    pattern: k.pattern,
    numSMs: k.numSMs,
    warpsPerSM: k.warpsPerSM,
    warpsPerCta: k.warpsPerCta,
    warps: k.warps,
    arrays: k.arrays,
  };
}

/** JSON-encodes blob metadata, checking the size limit (before any writer state changes). */
function encodeBlob(value: unknown): Uint8Array {
  const bytes = encoder.encode(JSON.stringify(value));
  if (bytes.length > TRACE.MAX_BLOB_BYTES) {
    throw new ArgumentError(
      'TraceWriter',
      'metadata',
      `must encode to at most ${TRACE.MAX_BLOB_BYTES} bytes`,
      bytes.length,
    );
  }
  return bytes;
}

/** Options of {@link TraceWriter}. */
export interface TraceWriterOptions {
  /** Bytes per chunk handed to the sink (a multiple of 16, ≥ 64). Default 64 KiB. */
  readonly chunkBytes?: number;
}

/**
 * Streaming trace writer: records go into a chunk buffer that is handed to the sink when full;
 * memory stays at one chunk however long the trace. Call `begin` first and `close` last.
 */
export class TraceWriter {
  private readonly sink: TraceSink;
  private readonly chunkBytes: number;
  private buf: Uint8Array;
  private view: DataView;
  private f64: Float64Array;
  private u32: Uint32Array;
  private u16: Uint16Array;
  private pos = 0;
  private records = 0;
  private kernelAccesses = -1;
  private state: 'new' | 'open' | 'closed' = 'new';
  /** Bytes handed to the sink so far. */
  bytesWritten = 0;

  constructor(sink: TraceSink, opts: TraceWriterOptions = {}) {
    const cb = opts.chunkBytes ?? 1 << 16;
    if (!Number.isInteger(cb) || cb < 64 || cb % 16 !== 0 || cb > 1 << 26) {
      throw new ArgumentError('TraceWriter', 'opts.chunkBytes', 'must be a multiple of 16 in [64, 2^26]', cb);
    }
    this.sink = sink;
    this.chunkBytes = cb;
    this.buf = new Uint8Array(cb);
    this.view = new DataView(this.buf.buffer);
    this.f64 = new Float64Array(this.buf.buffer);
    this.u32 = new Uint32Array(this.buf.buffer);
    this.u16 = new Uint16Array(this.buf.buffer);
  }

  /** Writes the header and the workload metadata. */
  async begin(meta: TraceWorkloadMeta): Promise<void> {
    if (this.state !== 'new') throw new StateError('TraceWriter.begin', 'must be called once, first');
    const body = encodeBlob({ name: meta.name, pattern: meta.pattern, arrays: meta.arrays });
    this.state = 'open';
    const h = new Uint8Array(TRACE.HEADER_BYTES);
    h.set(encoder.encode(TRACE.MAGIC), 0);
    const dv = new DataView(h.buffer);
    dv.setUint16(8, TRACE.VERSION, true);
    dv.setUint16(10, TRACE.HEADER_BYTES, true);
    dv.setUint16(12, TRACE.RECORD_BYTES, true);
    await this.raw(h);
    await this.blob(RECORD.WORKLOAD, body);
  }

  /** Starts a kernel. */
  async beginKernel(meta: TraceKernelMeta): Promise<void> {
    this.checkOpen('beginKernel');
    if (this.kernelAccesses >= 0) throw new StateError('TraceWriter.beginKernel', 'a kernel is already open');
    const body = encodeBlob(meta);
    this.kernelAccesses = 0;
    await this.blob(RECORD.KERNEL_BEGIN, body);
  }

  /** Appends `batch.count` accesses (issue order) to the open kernel. */
  async writeAccesses(batch: AccessBatch): Promise<void> {
    this.checkOpen('writeAccesses');
    if (this.kernelAccesses < 0) throw new StateError('TraceWriter.writeAccesses', 'needs an open kernel');
    const { va, kind, warp, size } = batch;
    let i = 0;
    while (i < batch.count) {
      if (this.pos === this.chunkBytes) await this.flushChunk();
      // Records sit at 16-byte offsets of the chunk (header and blobs are multiples of 16), so
      // aligned typed views write them directly on little-endian hosts.
      const n = Math.min(batch.count - i, (this.chunkBytes - this.pos) / 16);
      const buf = this.buf;
      let p = this.pos;
      if (LITTLE_ENDIAN) {
        const { f64, u32, u16 } = this;
        for (let e = i + n; i < e; i++) {
          f64[p / 8] = va[i]!;
          u32[p / 4 + 2] = warp[i]!;
          u16[p / 2 + 6] = size[i]!;
          buf[p + 14] = kind[i]!;
          buf[p + 15] = RECORD.ACCESS;
          p += 16;
        }
      } else {
        const dv = this.view;
        for (let e = i + n; i < e; i++) {
          dv.setFloat64(p, va[i]!, true);
          dv.setUint32(p + 8, warp[i]!, true);
          dv.setUint16(p + 12, size[i]!, true);
          buf[p + 14] = kind[i]!;
          buf[p + 15] = RECORD.ACCESS;
          p += 16;
        }
      }
      this.pos = p;
    }
    this.records += batch.count;
    this.kernelAccesses += batch.count;
  }

  /** Ends the open kernel. */
  async endKernel(): Promise<void> {
    this.checkOpen('endKernel');
    if (this.kernelAccesses < 0) throw new StateError('TraceWriter.endKernel', 'needs an open kernel');
    await this.record(this.kernelAccesses, 0, RECORD.KERNEL_END);
    this.kernelAccesses = -1;
  }

  /** Writes a CPU phase. */
  async writeCpu(ops: readonly CpuOp[]): Promise<void> {
    this.checkOpen('writeCpu');
    if (this.kernelAccesses >= 0) throw new StateError('TraceWriter.writeCpu', 'not allowed inside a kernel');
    await this.blob(RECORD.CPU, encodeBlob(ops));
  }

  /** Writes a whole kernel in issue order. */
  async writeKernel(k: Kernel, batchCapacity = 4096): Promise<void> {
    await this.beginKernel(kernelMeta(k));
    for (const b of issueOrder(k.streams, batchCapacity)) await this.writeAccesses(b);
    await this.endKernel();
  }

  /** Re-emits a reader event (for filters and copies: the output is byte-identical). */
  async write(ev: TraceEvent): Promise<void> {
    switch (ev.type) {
      case 'workload':
        return this.begin(ev.meta);
      case 'kernelBegin':
        return this.beginKernel(ev.meta);
      case 'accesses':
        return this.writeAccesses(ev.batch);
      case 'kernelEnd':
        return this.endKernel();
      case 'cpu':
        return this.writeCpu(ev.ops);
      case 'end':
        return this.close();
    }
  }

  /** Writes END and flushes the last chunk. */
  async close(): Promise<void> {
    this.checkOpen('close');
    if (this.kernelAccesses >= 0) await this.endKernel();
    await this.record(this.records, 0, RECORD.END);
    this.state = 'closed';
    await this.flushChunk();
  }

  private checkOpen(fn: string): void {
    if (this.state !== 'open')
      throw new StateError(`TraceWriter.${fn}`, 'must be called between begin() and close()');
  }

  private async record(value: number, u32: number, type: number): Promise<void> {
    if (this.pos === this.chunkBytes) await this.flushChunk();
    const p = this.pos;
    this.view.setFloat64(p, value, true);
    this.view.setUint32(p + 8, u32, true);
    this.view.setUint16(p + 12, 0, true);
    this.buf[p + 14] = 0;
    this.buf[p + 15] = type;
    this.pos = p + 16;
    this.records++;
  }

  private async blob(type: number, bytes: Uint8Array): Promise<void> {
    await this.record(0, bytes.length, type);
    const padded = Math.ceil(bytes.length / 16) * 16;
    const body = new Uint8Array(padded);
    body.set(bytes);
    await this.raw(body);
    this.records += padded / 16;
  }

  private async raw(bytes: Uint8Array): Promise<void> {
    let o = 0;
    while (o < bytes.length) {
      if (this.pos === this.chunkBytes) await this.flushChunk();
      const n = Math.min(bytes.length - o, this.chunkBytes - this.pos);
      this.buf.set(bytes.subarray(o, o + n), this.pos);
      this.pos += n;
      o += n;
    }
  }

  private async flushChunk(): Promise<void> {
    if (this.pos === 0) return;
    const out = this.pos === this.chunkBytes ? this.buf : this.buf.slice(0, this.pos);
    this.bytesWritten += this.pos;
    this.buf = new Uint8Array(this.chunkBytes);
    this.view = new DataView(this.buf.buffer);
    this.f64 = new Float64Array(this.buf.buffer);
    this.u32 = new Uint32Array(this.buf.buffer);
    this.u16 = new Uint16Array(this.buf.buffer);
    this.pos = 0;
    await this.sink.write(out);
  }
}

/** Writes a whole workload (every phase, in order) and closes the writer. */
export async function writeWorkloadTrace(
  w: Workload,
  sink: TraceSink,
  opts: TraceWriterOptions = {},
): Promise<number> {
  const tw = new TraceWriter(sink, opts);
  await tw.begin({ name: w.name, pattern: w.pattern, arrays: w.arrays });
  for (const ph of w.phases()) {
    if (ph.type === 'kernel') await tw.writeKernel(ph.kernel);
    else await tw.writeCpu(ph.ops);
  }
  await tw.close();
  return tw.bytesWritten;
}

/** Options of {@link readTrace}. */
export interface TraceReaderOptions {
  /** Accesses per yielded batch. Default 4096. */
  readonly batchCapacity?: number;
  /** Receives the reader's peak buffered bytes (staging + blob + batch) when it finishes. */
  readonly onStats?: (s: { readonly maxBufferedBytes: number; readonly records: number }) => void;
}

/**
 * Streams a trace from chunks of any size (e.g. `fs.createReadStream(path)`), holding only an
 * aligned staging copy of the current chunk (plus a partial record), the current blob and one
 * access batch: a trace larger than memory replays in state bounded by the chunk size.
 * Throws {@link TraceFormatError} on a bad header, a bad record or truncation.
 */
export async function* readTrace(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  opts: TraceReaderOptions = {},
): AsyncGenerator<TraceEvent, void, undefined> {
  const cap = opts.batchCapacity ?? 4096;
  const batch = createBatch(cap);
  const batchBytes = cap * 13;
  const header = new Uint8Array(TRACE.HEADER_BYTES);
  let headerFill = 0;
  // Aligned staging buffer: the partial record carried over plus the current chunk.
  let stage = new Uint8Array(1 << 12);
  let dv = new DataView(stage.buffer);
  let f64 = new Float64Array(stage.buffer);
  let u32 = new Uint32Array(stage.buffer);
  let u16 = new Uint16Array(stage.buffer);
  let fill = 0;
  let blob: Uint8Array | null = null;
  let blobFill = 0;
  let blobLen = 0;
  let blobType = 0;
  let records = 0;
  let ended = false;
  let inKernel = false;
  let maxBuffered = 0;

  const finishBlob = (): TraceEvent => {
    const b = blob!;
    blob = null;
    const value: unknown = JSON.parse(decoder.decode(b.subarray(0, blobLen)));
    if (blobType === RECORD.WORKLOAD) return { type: 'workload', meta: value as TraceWorkloadMeta };
    if (blobType === RECORD.KERNEL_BEGIN) {
      if (inKernel) throw new TraceFormatError('KERNEL_BEGIN inside a kernel');
      inKernel = true;
      return { type: 'kernelBegin', meta: value as TraceKernelMeta };
    }
    return { type: 'cpu', ops: value as CpuOp[] };
  };

  for await (const chunk of source) {
    let o = 0;
    if (headerFill < TRACE.HEADER_BYTES) {
      const k = Math.min(chunk.length, TRACE.HEADER_BYTES - headerFill);
      header.set(chunk.subarray(0, k), headerFill);
      headerFill += k;
      o = k;
      if (headerFill < TRACE.HEADER_BYTES) continue;
      checkHeader(header);
    }
    const total = fill + chunk.length - o;
    if (total > stage.length) {
      let size = stage.length;
      while (size < total) size *= 2;
      const next = new Uint8Array(size);
      next.set(stage.subarray(0, fill));
      stage = next;
      dv = new DataView(stage.buffer);
      f64 = new Float64Array(stage.buffer);
      u32 = new Uint32Array(stage.buffer);
      u16 = new Uint16Array(stage.buffer);
    }
    stage.set(chunk.subarray(o), fill);
    const end = total - (total % 16);
    let p = 0;
    while (p < end) {
      if (blob !== null) {
        const b: Uint8Array = blob;
        const k = Math.min(end - p, b.length - blobFill);
        b.set(stage.subarray(p, p + k), blobFill);
        blobFill += k;
        p += k;
        records += k / 16;
        if (blobFill === b.length) {
          if (batch.count > 0) {
            yield { type: 'accesses', batch };
            batch.count = 0;
          }
          yield finishBlob();
        }
        continue;
      }
      if (ended) throw new TraceFormatError('record after END');
      const type = stage[p + 15]!;
      if (type === RECORD.ACCESS) {
        if (!inKernel) throw new TraceFormatError(`access record ${records} outside a kernel`);
        // Tight loop over consecutive access records.
        let c = batch.count;
        while (p < end && stage[p + 15] === RECORD.ACCESS) {
          if (LITTLE_ENDIAN) {
            batch.va[c] = f64[p / 8]!;
            batch.warp[c] = u32[p / 4 + 2]!;
            batch.size[c] = u16[p / 2 + 6]!;
          } else {
            batch.va[c] = dv.getFloat64(p, true);
            batch.warp[c] = dv.getUint32(p + 8, true);
            batch.size[c] = dv.getUint16(p + 12, true);
          }
          batch.kind[c] = stage[p + 14]!;
          c++;
          p += 16;
          records++;
          if (c === cap) {
            batch.count = c;
            yield { type: 'accesses', batch };
            c = 0;
            batch.count = 0;
          }
        }
        batch.count = c;
        continue;
      }
      records++;
      let ev: TraceEvent | null = null;
      if (type === RECORD.WORKLOAD || type === RECORD.KERNEL_BEGIN || type === RECORD.CPU) {
        const len = dv.getUint32(p + 8, true);
        if (len > TRACE.MAX_BLOB_BYTES) throw new TraceFormatError(`blob of ${len} bytes exceeds the limit`);
        blobType = type;
        blobLen = len;
        blob = new Uint8Array(Math.ceil(len / 16) * 16);
        blobFill = 0;
        if (blob.length === 0) ev = finishBlob();
      } else if (type === RECORD.KERNEL_END) {
        if (!inKernel) throw new TraceFormatError('KERNEL_END outside a kernel');
        inKernel = false;
        ev = { type: 'kernelEnd', accesses: dv.getFloat64(p, true) };
      } else if (type === RECORD.END) {
        ended = true;
        ev = { type: 'end', records: dv.getFloat64(p, true) };
      } else {
        throw new TraceFormatError(`unknown record type ${type} at record ${records - 1}`);
      }
      p += 16;
      if (ev !== null) {
        if (batch.count > 0) {
          yield { type: 'accesses', batch };
          batch.count = 0;
        }
        yield ev;
      }
    }
    const buffered = stage.length + (blob === null ? 0 : (blob as Uint8Array).length) + batchBytes;
    if (buffered > maxBuffered) maxBuffered = buffered;
    stage.copyWithin(0, end, total);
    fill = total - end;
  }
  if (headerFill < TRACE.HEADER_BYTES) throw new TraceFormatError('truncated header');
  if (fill > 0 || blob !== null) throw new TraceFormatError('truncated record');
  if (batch.count > 0) yield { type: 'accesses', batch };
  if (!ended) throw new TraceFormatError('trace has no END record (truncated)');
  opts.onStats?.({ maxBufferedBytes: maxBuffered, records });
}

function checkHeader(h: Uint8Array): void {
  const magic = decoder.decode(h.subarray(0, 8));
  if (magic !== TRACE.MAGIC) throw new TraceFormatError('bad magic: not an hmmkit trace');
  const dv = new DataView(h.buffer, h.byteOffset, h.byteLength);
  const version = dv.getUint16(8, true);
  if (version !== TRACE.VERSION) throw new TraceFormatError(`unsupported trace version ${version}`);
  if (dv.getUint16(10, true) !== TRACE.HEADER_BYTES || dv.getUint16(12, true) !== TRACE.RECORD_BYTES) {
    throw new TraceFormatError('unexpected header or record size');
  }
}

/** A kernel read back from a trace: metadata plus its warp-major streams. */
export interface TracedKernel extends Kernel {
  readonly meta: TraceKernelMeta;
}

/**
 * Reads a trace as phases: each kernel is assembled into warp-major streams (memory bounded by
 * the largest kernel, not the trace), CPU phases pass through. The workload meta is delivered
 * to `onWorkload` when read.
 */
export async function* readTracePhases(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  onWorkload?: (meta: TraceWorkloadMeta) => void,
): AsyncGenerator<Phase, void, undefined> {
  let index = 0;
  let meta: TraceKernelMeta | null = null;
  let parts: AccessBatch[] = [];
  for await (const ev of readTrace(source)) {
    if (ev.type === 'workload') onWorkload?.(ev.meta);
    else if (ev.type === 'kernelBegin') {
      meta = ev.meta;
      parts = [];
    } else if (ev.type === 'accesses') {
      const b = ev.batch;
      parts.push({
        count: b.count,
        va: b.va.slice(0, b.count),
        kind: b.kind.slice(0, b.count),
        warp: b.warp.slice(0, b.count),
        size: b.size.slice(0, b.count),
      });
    } else if (ev.type === 'kernelEnd' && meta !== null) {
      const streams: WarpStreams = streamsFromBatches(parts, Math.max(1, meta.warps));
      let fp = 0;
      for (const a of meta.arrays) fp += a.bytes;
      const kernel: TracedKernel = {
        ...meta,
        meta,
        footprintBytes: fp,
        streams,
        accesses: streams.vas.length,
      };
      yield { type: 'kernel', index: index++, kernel };
      meta = null;
      parts = [];
    } else if (ev.type === 'cpu') yield { type: 'cpu', index: index++, ops: ev.ops };
  }
}
