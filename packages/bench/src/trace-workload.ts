/**
 * Workloads read from a trace file (`hmmkit sweep --trace FILE`): hmmkit's binary trace format
 * (`@hmmkit/workloads` trace.ts), a GPGPU-Sim UVMSmart page-access dump, or a CSV with the header
 * `va,size,kind,warp` (one GPU access per line, in issue order; `va` decimal or 0x-hex, `size` in
 * bytes (1..65535), `kind` R/W/A or read/write/atomic or 1/2/3, `warp` 0..65535; one kernel).
 *
 * The address ranges the trace touches are mapped automatically: the distinct 4 KiB pages its
 * accesses touch, in runs, with gaps under 64 KiB closed, each run one anonymous mapping (a
 * binary trace that records its arrays uses those instead).
 *
 * @module
 */
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename } from 'node:path';
import { ArgumentError } from '@hmmkit/sim';
import {
  type AccessBatch,
  type ArrayRegion,
  createBatch,
  importUvmSmartDump,
  type Kernel,
  PATTERN,
  type Phase,
  readTracePhases,
  resolveParams,
  streamsFromBatches,
  TRACE,
  type TraceWorkloadMeta,
  type Workload,
} from '@hmmkit/workloads';

/** Trace file formats. */
export const TRACE_FORMATS = ['hmmkit', 'uvmsmart', 'csv'] as const;
/** One of {@link TRACE_FORMATS}. */
export type TraceFormat = (typeof TRACE_FORMATS)[number];

/** The CSV header (required as the first non-comment line). */
export const CSV_HEADER = 'va,size,kind,warp';

const PAGE = 4096;
/** Gaps between touched runs smaller than this are mapped too (one mapping). */
const GAP_BYTES = 64 << 10;

/** The format of `file`: the binary trace's magic, a CSV header line, else a UVMSmart dump. */
export async function detectTraceFormat(file: string): Promise<TraceFormat> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(256);
    const { bytesRead } = await fh.read(buf, 0, 256, 0);
    const head = buf.subarray(0, bytesRead).toString('latin1');
    if (head.startsWith(TRACE.MAGIC)) return 'hmmkit';
    const first = head.split('\n').find((l) => l.trim() !== '' && !l.startsWith('#'));
    if (first?.trim().replaceAll(' ', '') === CSV_HEADER) return 'csv';
    return 'uvmsmart';
  } finally {
    await fh.close();
  }
}

const KINDS: Record<string, number> = {
  r: 1,
  read: 1,
  '1': 1,
  w: 2,
  write: 2,
  '2': 2,
  a: 3,
  atomic: 3,
  '3': 3,
};

/** Parses a CSV trace (see the module comment) into one kernel's access batches. */
export async function readCsvTrace(
  source: AsyncIterable<string | Uint8Array>,
  file = 'trace.csv',
): Promise<{ batches: AccessBatch[]; warps: number }> {
  const fn = 'readCsvTrace';
  const batches: AccessBatch[] = [];
  let b = createBatch(1 << 16);
  let warps = 0;
  let line = 0;
  let header = false;
  let rest = '';
  const td = new TextDecoder();
  const take = (text: string): void => {
    const t = text.trim();
    line++;
    if (t === '' || t.startsWith('#')) return;
    if (!header) {
      if (t.replaceAll(' ', '') !== CSV_HEADER) {
        throw new ArgumentError(fn, `${file}:${line}`, `must start with the header ${CSV_HEADER}`, t);
      }
      header = true;
      return;
    }
    const f = t.split(',');
    const va = f[0]?.startsWith('0x') ? Number.parseInt(f[0].slice(2), 16) : Number(f[0]);
    const size = Number(f[1]);
    const kind = KINDS[(f[2] ?? '').trim().toLowerCase()];
    const warp = Number(f[3]);
    if (f.length !== 4 || !Number.isSafeInteger(va) || va < 0 || va >= 2 ** 47) {
      throw new ArgumentError(
        fn,
        `${file}:${line}`,
        'must be va,size,kind,warp with va an address < 2^47',
        t,
      );
    }
    if (!Number.isInteger(size) || size < 1 || size > 65535) {
      throw new ArgumentError(fn, `${file}:${line}`, 'size must be an integer in [1, 65535]', t);
    }
    if (kind === undefined) throw new ArgumentError(fn, `${file}:${line}`, 'kind must be R, W or A', t);
    if (!Number.isInteger(warp) || warp < 0 || warp > 65535) {
      throw new ArgumentError(fn, `${file}:${line}`, 'warp must be an integer in [0, 65535]', t);
    }
    if (b.count === b.va.length) {
      batches.push(b);
      b = createBatch(1 << 16);
    }
    const i = b.count++;
    b.va[i] = va;
    b.size[i] = size;
    b.kind[i] = kind;
    b.warp[i] = warp;
    if (warp + 1 > warps) warps = warp + 1;
  };
  for await (const chunk of source) {
    rest += typeof chunk === 'string' ? chunk : td.decode(chunk, { stream: true });
    let nl = rest.indexOf('\n');
    while (nl >= 0) {
      take(rest.slice(0, nl));
      rest = rest.slice(nl + 1);
      nl = rest.indexOf('\n');
    }
  }
  if (rest !== '') take(rest);
  if (!header) throw new ArgumentError(fn, file, `must start with the header ${CSV_HEADER}`, '');
  if (b.count > 0) batches.push(b);
  return { batches, warps: Math.max(1, warps) };
}

/**
 * The anonymous mappings that cover every page `kernels` touch: runs of touched pages, gaps
 * under 64 KiB closed, in address order.
 */
export function mapTouchedRanges(kernels: readonly Kernel[]): ArrayRegion[] {
  const pages = new Set<number>();
  for (const k of kernels) {
    const { vas, sizes } = k.streams;
    for (let i = 0; i < vas.length; i++) {
      const va = vas[i]!;
      const end = va + Math.max(1, sizes[i]!) - 1;
      for (let p = Math.floor(va / PAGE); p <= Math.floor(end / PAGE); p++) pages.add(p);
    }
  }
  const sorted = [...pages].sort((a, b) => a - b);
  const out: ArrayRegion[] = [];
  let lo = -1;
  let hi = -1;
  const flush = (): void => {
    if (lo >= 0) {
      out.push({
        name: `trace-range-${out.length}`,
        va: lo * PAGE,
        bytes: (hi + 1 - lo) * PAGE,
        elemSize: 4,
      });
    }
  };
  for (const p of sorted) {
    if (lo >= 0 && (p - hi - 1) * PAGE < GAP_BYTES) hi = p;
    else {
      flush();
      lo = p;
      hi = p;
    }
  }
  flush();
  return out;
}

/** A workload built from already-read kernels and CPU phases, with its ranges mapped. */
function traceWorkload(name: string, phases: readonly Phase[], recorded: readonly ArrayRegion[]): Workload {
  const kernels = phases.flatMap((p) => (p.type === 'kernel' ? [p.kernel] : []));
  if (kernels.length === 0) throw new ArgumentError('loadTraceWorkload', name, 'has no GPU access', 0);
  const arrays = recorded.length > 0 ? recorded : mapTouchedRanges(kernels);
  const footprintBytes = arrays.reduce((s, a) => s + a.bytes, 0);
  const fixed: Phase[] = phases.map((p) =>
    p.type === 'kernel' && p.kernel.arrays.length === 0
      ? { ...p, kernel: { ...p.kernel, arrays, footprintBytes } }
      : p,
  );
  return {
    name,
    pattern: PATTERN.TRACE,
    params: resolveParams('trace', { footprintBytes: Math.max(PAGE, footprintBytes) }),
    arrays,
    footprintBytes,
    phaseCount: fixed.length,
    kernelCount: kernels.length,
    *phases() {
      yield* fixed;
    },
  };
}

/** Reads `file` (format detected unless given) as a {@link Workload}. */
export async function loadTraceWorkload(file: string, format?: TraceFormat): Promise<Workload> {
  const fmt = format ?? (await detectTraceFormat(file));
  const name = basename(file);
  if (fmt === 'hmmkit') {
    let meta: TraceWorkloadMeta | null = null;
    const phases: Phase[] = [];
    for await (const p of readTracePhases(createReadStream(file), (m) => {
      meta = m;
    })) {
      phases.push(p);
    }
    return traceWorkload(name, phases, (meta as TraceWorkloadMeta | null)?.arrays ?? []);
  }
  if (fmt === 'uvmsmart') {
    const { kernel } = await importUvmSmartDump(createReadStream(file, 'utf8'), { name });
    return traceWorkload(name, [{ type: 'kernel', index: 0, kernel }], []);
  }
  const { batches, warps } = await readCsvTrace(createReadStream(file), file);
  const warpsPerSM = 32;
  const numSMs = Math.max(1, Math.ceil(warps / warpsPerSM));
  const streams = streamsFromBatches(batches, numSMs * warpsPerSM);
  const kernel: Kernel = {
    name,
    pattern: PATTERN.TRACE,
    numSMs,
    warpsPerSM,
    warpsPerCta: warpsPerSM, // warp w runs on SM floor(w / 32)
    warps: numSMs * warpsPerSM,
    arrays: [],
    footprintBytes: 0,
    streams,
    accesses: streams.vas.length,
  };
  return traceWorkload(name, [{ type: 'kernel', index: 0, kernel }], []);
}
