/**
 * The "drm_gpuvm across GPU devices" debate, measured: memory hints shared across devices vs per
 * device ({@link runHints}), and the proxy-process scheme vs a page table per process
 * ({@link runProxy}, {@link exhaustion}).
 */
import { type HintRow, runHints } from './hints.ts';
import {
  CPU_VA_SPAN,
  type ExhaustionRow,
  exhaustion,
  nvMmuV2,
  nvMmuV3,
  type ProxyRow,
  runProxy,
} from './proxy.ts';

/** Options of {@link run}. */
export interface AcrossOptions {
  /** Rounds of (gpu1 heavy, gpu0 light) kernels (default 4). */
  readonly rounds?: number;
  /** gpu1 kernels per round (default 4). */
  readonly heavy?: number;
  /** Guest processes in the proxy comparison (default 4: what fits NVIDIA MMU v2). */
  readonly processes?: number;
  readonly seed?: number;
}

/** Result of {@link run}. */
export interface AcrossResult {
  readonly hints: HintRow[];
  readonly proxy: ProxyRow[];
  readonly exhaustion: ExhaustionRow[];
  readonly lines: string[];
}

const ms = (ns: number) => `${(ns / 1e6).toFixed(2)} ms`;

/** Runs both halves and formats the tables. */
export async function run(opts: AcrossOptions = {}): Promise<AcrossResult> {
  const rounds = opts.rounds ?? 4;
  const heavy = opts.heavy ?? 4;
  const processes = opts.processes ?? 4;
  const seed = opts.seed ?? 1;
  const hints = await runHints(rounds, heavy, seed);
  const proxy = await runProxy(nvMmuV2, processes, seed);
  const ex = [
    exhaustion(nvMmuV2, 47),
    exhaustion(nvMmuV2, 56),
    exhaustion(nvMmuV3, 47),
    exhaustion(nvMmuV3, 56),
  ];
  const lines = [
    `hints: a 2 MiB buffer the CPU initialised; ${rounds} rounds of (gpu0: one read sweep, gpu1: ${heavy} atomicAdd sweeps); it belongs in gpu1's VRAM`,
    '',
    '| hints | pages to VRAM | pages back to system memory | GPU time | gpu1 maps | gpu0 maps | oracle | data |',
    '|---|---|---|---|---|---|---|---|',
    ...hints.map(
      (h) =>
        `| ${h.mode} | ${h.toVramPages} | ${h.toRamPages} | ${ms(h.gpuNs)} | ${h.gpu1Maps} | ${h.gpu0Maps} | ${h.violations === 0 ? 'coherent' : `${h.violations} violations`} | ${h.dataOk ? 'ok' : 'WRONG'} |`,
    ),
    '',
    `proxy process vs a page table per process: ${processes} guest processes, each with a 256 KiB buffer at the same CPU VA (NVIDIA MMU v2, partition = 2^${Math.log2(CPU_VA_SPAN)})`,
    '',
    '| scheme | room for one more process | GPU faults | invalidations | address translations by the driver | correct reads | raw CPU pointer of process 2 read another process | oracle |',
    '|---|---|---|---|---|---|---|---|',
    ...proxy.map(
      (p) =>
        `| ${p.scheme} | ${p.roomForMore ? 'yes' : 'no'} | ${p.faults} | ${p.invalidations} | ${p.translations} | ${p.correctReads} / ${p.reads} | ${p.foreignReads} of 64 words | ${p.violations < 0 ? 'n/a (GPU VA ≠ CPU VA)' : p.violations === 0 ? 'coherent' : `${p.violations} violations`} |`,
    ),
    '',
    'address-space exhaustion: guest processes one GPU VA space holds (each needs the full CPU user VA)',
    '',
    '| GPU format | GPU VA bits | CPU user VA bits | processes that fit (format) | processes the simulated page table accepted |',
    '|---|---|---|---|---|',
    ...ex.map(
      (e) =>
        `| ${e.format} | ${e.gpuVaBits} | ${e.cpuVaBits} | ${e.byFormat} | ${e.processes}${e.capped ? '+' : ''}${e.processes < e.byFormat ? ' (addresses above 2^53 are not safe integers)' : ''} |`,
    ),
  ];
  return { hints, proxy, exhaustion: ex, lines };
}
