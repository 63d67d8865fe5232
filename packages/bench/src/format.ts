/**
 * Plain-text outputs of a sweep: the console table, CSV and JSON.
 *
 * @module
 */
import { METRIC_NAMES } from './experiment.ts';
import { DEFAULT_EVICTION, granuleLabel } from './policies.ts';
import type { CellFailure, CellResult, SweepResult } from './sweep.ts';

const MiB = 1024 * 1024;

/** One table column: header, right-aligned cell text. */
interface Column {
  readonly head: string;
  readonly get: (c: CellResult) => string;
  readonly left?: boolean;
}

const fmtInt = (n: number): string => Math.round(n).toLocaleString('en-US');
const fmtMiB = (b: number): string => (b / MiB).toFixed(1);
const fmtMs = (ns: number): string => (ns / 1e6).toFixed(2);

/** The columns of {@link formatTable}. */
const COLUMNS: readonly Column[] = [
  { head: 'workload', get: (c) => c.spec.workload.label, left: true },
  { head: 'granule', get: (c) => granuleLabel(c.spec), left: true },
  { head: 'notifier', get: (c) => c.spec.notifier, left: true },
  { head: 'costs', get: (c) => c.spec.costLabel, left: true },
  { head: 'seed', get: (c) => String(c.spec.seed) },
  { head: 'sim ms', get: (c) => fmtMs(c.metrics.simTimeNs) },
  { head: 'far faults', get: (c) => fmtInt(c.metrics.farFaults) },
  { head: 'serviced', get: (c) => fmtInt(c.metrics.faultsServiced) },
  { head: 'batches', get: (c) => fmtInt(c.metrics.faultBatches) },
  { head: 'retries', get: (c) => fmtInt(c.metrics.retries) },
  { head: 'migr MiB', get: (c) => fmtMiB(c.metrics.bytesMigrated) },
  { head: 'overfetch MiB', get: (c) => fmtMiB(c.metrics.bytesOverFetched) },
  { head: 'TLB inv', get: (c) => fmtInt(c.metrics.tlbInvalidations) },
  { head: 'evict', get: (c) => fmtInt(c.metrics.evictions) },
  { head: 'failed', get: (c) => fmtInt(c.metrics.failedWarps) },
  { head: 'oracle', get: (c) => String(c.metrics.oracleViolations) },
];

/** The sweep as an aligned text table (one row per cell, cell order). */
export function formatTable(result: Pick<SweepResult, 'cells'>): string {
  const rows = result.cells.map((c) => COLUMNS.map((col) => col.get(c)));
  const widths = COLUMNS.map((col, i) => Math.max(col.head.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((t, i) => (COLUMNS[i]!.left === true ? t.padEnd(widths[i]!) : t.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  const out = [line(COLUMNS.map((c) => c.head)), widths.map((w) => '-'.repeat(w)).join('  ')];
  for (const r of rows) out.push(line(r));
  return out.join('\n');
}

/** The failed cells: kind, cell, seed, error, and the command that replays each. */
export function formatFailures(failures: readonly CellFailure[]): string {
  const out = [
    `${failures.length} cell${failures.length === 1 ? '' : 's'} failed (every other cell's results are above and in the files):`,
  ];
  for (const f of failures) {
    const s = f.spec;
    out.push(
      `  cell ${f.index} ${s.workload.label}/${granuleLabel(s)}/${s.notifier}/${s.costLabel} seed ${s.seed} [${f.kind}]: ${f.error}`,
      `    replay: ${f.replay}`,
    );
  }
  return out.join('\n');
}

/** CSV field quoting (RFC 4180). */
function csvField(v: string | number): string {
  const s = String(v);
  return /[",\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

/** The spec columns of {@link toCsv}. */
const SPEC_COLUMNS = [
  'workload',
  'generator',
  'granule',
  'notifier',
  'eviction',
  'costs',
  'seed',
  'devices',
  'vramBytes',
  'placement',
  'replay',
  'granuleOnceFull',
] as const;

/** The sweep as CSV: spec columns, then every metric; one row per cell. */
export function toCsv(result: Pick<SweepResult, 'cells'>): string {
  const lines = [[...SPEC_COLUMNS, ...METRIC_NAMES].join(',')];
  for (const c of result.cells) {
    const s = c.spec;
    const spec = [
      s.workload.label,
      s.workload.generator,
      s.granule,
      s.notifier,
      s.eviction ?? DEFAULT_EVICTION,
      s.costLabel,
      s.seed,
      s.devices,
      s.vramBytes,
      s.placement,
      s.replay,
      s.granuleOnceFull ?? s.granule,
    ];
    lines.push([...spec, ...METRIC_NAMES.map((m) => c.metrics[m])].map(csvField).join(','));
  }
  return `${lines.join('\n')}\n`;
}

/** The sweep as pretty JSON (what `hmmkit report` reads). */
export function toJson(result: SweepResult): string {
  return `${JSON.stringify(result, null, 2)}\n`;
}
