/**
 * Importer for the page-access dump of GPGPU-Sim's UVM model (gpgpu-sim_UVMSmart,
 * `print_access_pattern`): one access per line, whitespace-separated,
 *
 *     page_no mem_addr size cycle is_read sm_id warp_id
 *
 * Numbers are decimal, or hex with a `0x` prefix. Lines that do not have seven numeric fields
 * (headers, blank lines, `#` comments, kernel timeline rows) are skipped and counted. Accesses
 * keep the file's order as issue order; the hmmkit warp id is `sm_id × warpsPerSM + warp_id`.
 *
 * @module
 */
import { ArgumentError } from '@hmmkit/sim';
import {
  ACCESS_KIND,
  type AccessBatch,
  createBatch,
  streamsFromBatches,
  type WarpStreams,
} from './access.ts';
import { type Kernel, PATTERN } from './kernel.ts';

/** Options of the UVMSmart importer. */
export interface UvmSmartOptions {
  /** Hardware warp slots per SM, to number warps globally. Default 64 (Pascal). */
  readonly warpsPerSM?: number;
  /** Accesses per yielded batch. Default 4096. */
  readonly batchCapacity?: number;
  /** Page size the dump's page_no refers to, for the consistency count. Default 4096. */
  readonly pageSize?: number;
}

/** Counters filled while importing. */
export interface UvmSmartImportStats {
  lines: number;
  accesses: number;
  skipped: number;
  /** Lines whose page_no ≠ floor(mem_addr / pageSize). */
  pageMismatches: number;
  maxSm: number;
  /** Whether cycles never decrease. */
  monotonic: boolean;
  firstCycle: number;
  lastCycle: number;
}

function parseNum(s: string): number {
  if (s.length > 2 && s[0] === '0' && (s[1] === 'x' || s[1] === 'X')) return Number.parseInt(s.slice(2), 16);
  if (!/^\d+$/.test(s)) return Number.NaN;
  return Number(s);
}

/**
 * Streams a dump (chunks of text or bytes, e.g. `fs.createReadStream(path)`) as issue-ordered
 * access batches (the batch is reused). `stats` is updated as lines are read.
 */
export async function* readUvmSmartDump(
  source: AsyncIterable<string | Uint8Array> | Iterable<string | Uint8Array>,
  opts: UvmSmartOptions = {},
  stats: UvmSmartImportStats = newImportStats(),
): AsyncGenerator<AccessBatch, void, undefined> {
  const wps = opts.warpsPerSM ?? 64;
  if (!Number.isInteger(wps) || wps < 1 || wps > 1024) {
    throw new ArgumentError('readUvmSmartDump', 'opts.warpsPerSM', 'must be an integer in [1, 1024]', wps);
  }
  const pageSize = opts.pageSize ?? 4096;
  const batch = createBatch(opts.batchCapacity ?? 4096);
  const cap = batch.va.length;
  const decoder = new TextDecoder();
  let rest = '';
  const line = (text: string): void => {
    stats.lines++;
    const f = text.trim().split(/\s+/);
    if (f.length !== 7) {
      stats.skipped++;
      return;
    }
    const v = f.map(parseNum) as [number, number, number, number, number, number, number];
    const [pageNo, addr, size, cycle, isRead, sm, warp] = v;
    if (v.some((x) => !Number.isFinite(x)) || (isRead !== 0 && isRead !== 1) || warp >= wps || size > 65535) {
      stats.skipped++;
      return;
    }
    const gw = sm * wps + warp;
    if (gw > 65535) throw new ArgumentError('readUvmSmartDump', 'sm_id', 'gives a warp id over 65535', sm);
    if (pageNo !== Math.floor(addr / pageSize)) stats.pageMismatches++;
    if (stats.accesses === 0) stats.firstCycle = cycle;
    else if (cycle < stats.lastCycle) stats.monotonic = false;
    stats.lastCycle = cycle;
    if (sm > stats.maxSm) stats.maxSm = sm;
    stats.accesses++;
    const c = batch.count;
    batch.va[c] = addr;
    batch.kind[c] = isRead === 1 ? ACCESS_KIND.READ : ACCESS_KIND.WRITE;
    batch.warp[c] = gw;
    batch.size[c] = size;
    batch.count = c + 1;
  };
  for await (const chunk of source) {
    const text = rest + (typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true }));
    let start = 0;
    for (;;) {
      const nl = text.indexOf('\n', start);
      if (nl < 0) break;
      line(text.slice(start, nl));
      start = nl + 1;
      if (batch.count === cap) {
        yield batch;
        batch.count = 0;
      }
    }
    rest = text.slice(start);
  }
  rest += decoder.decode();
  if (rest.trim().length > 0) line(rest);
  if (batch.count > 0) yield batch;
}

/** Fresh import counters. */
export function newImportStats(): UvmSmartImportStats {
  return {
    lines: 0,
    accesses: 0,
    skipped: 0,
    pageMismatches: 0,
    maxSm: -1,
    monotonic: true,
    firstCycle: 0,
    lastCycle: 0,
  };
}

/** An imported dump as one kernel, plus the import counters. */
export interface UvmSmartImport {
  readonly kernel: Kernel;
  readonly stats: UvmSmartImportStats;
}

/**
 * Imports a whole dump as one {@link Kernel} (pattern 'trace') with warp-major streams; warps
 * = (maxSm + 1) × warpsPerSM (warpsPerCta = warpsPerSM, so smOfWarp gives sm_id). For dumps larger than memory use {@link readUvmSmartDump}.
 */
export async function importUvmSmartDump(
  source: AsyncIterable<string | Uint8Array> | Iterable<string | Uint8Array>,
  opts: UvmSmartOptions & { readonly name?: string } = {},
): Promise<UvmSmartImport> {
  const wps = opts.warpsPerSM ?? 64;
  const stats = newImportStats();
  const parts: AccessBatch[] = [];
  for await (const b of readUvmSmartDump(source, opts, stats)) {
    parts.push({
      count: b.count,
      va: b.va.slice(0, b.count),
      kind: b.kind.slice(0, b.count),
      warp: b.warp.slice(0, b.count),
      size: b.size.slice(0, b.count),
    });
  }
  const numSMs = Math.max(1, stats.maxSm + 1);
  const streams: WarpStreams = streamsFromBatches(parts, numSMs * wps);
  return {
    stats,
    kernel: {
      name: opts.name ?? 'uvmsmart',
      pattern: PATTERN.TRACE,
      numSMs,
      warpsPerSM: wps,
      warpsPerCta: wps, // so that smOfWarp() returns the dump's sm_id
      warps: numSMs * wps,
      arrays: [],
      footprintBytes: 0,
      streams,
      accesses: streams.vas.length,
    },
  };
}
