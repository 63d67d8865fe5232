/**
 * `hmmkit report`: a self-contained HTML page for a sweep. At the top, the answer (best policy
 * per workload, speed-up against the baseline with its 95 % interval, bytes migrated and
 * over-fetched) and any failed cells with their replay commands; then a trade-off scatter
 * (simulated time against bytes migrated, one panel and one scale per workload), where the
 * simulated time went (stacked bars), and one bar chart per metric (mean over seeds with a 95 %
 * interval when there are several seeds; one y-scale per workload; charts and workload panels
 * whose values are all zero are left out). Charts are compiled with vega-lite and rendered to SVG in Node (vega's
 * headless `toSVG`), then inlined: the page needs no script and no network to view.
 *
 * @module
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { answer, type BaselineChoice, formatAnswer, meanCi, policyOf } from './analysis.ts';
import { type Metrics, TIME_PARTS } from './experiment.ts';
import { formatFailures, formatTable } from './format.ts';
import { granuleLabel } from './policies.ts';
import type { CellResult, SweepResult } from './sweep.ts';

/** One chart of the report. */
export interface ChartDef {
  /** Metric plotted. */
  readonly metric: keyof Metrics;
  readonly title: string;
  /** Axis title. */
  readonly unit: string;
  /** Divides the metric (e.g. 1e6 for ns → ms). */
  readonly scale: number;
  /** A count: axis ticks at whole numbers. */
  readonly integer?: boolean;
}

/** The metric charts of the report, in page order (one is left out when all its values are 0). */
export const REPORT_CHARTS: readonly ChartDef[] = [
  { metric: 'simTimeNs', title: 'Simulated time', unit: 'ms', scale: 1e6 },
  {
    metric: 'farFaults',
    title: 'Far faults (fault-buffer entries raised)',
    unit: 'faults',
    scale: 1,
    integer: true,
  },
  {
    metric: 'retries',
    title: 'Retries (read_retry + fault retries)',
    unit: 'retries',
    scale: 1,
    integer: true,
  },
  { metric: 'bytesOverFetched', title: 'Bytes over-fetched', unit: 'MiB', scale: 1024 * 1024 },
  {
    metric: 'tlbInvalidations',
    title: 'GPU TLB invalidations',
    unit: 'invalidations',
    scale: 1,
    integer: true,
  },
  { metric: 'bytesMigrated', title: 'Bytes migrated', unit: 'MiB', scale: 1024 * 1024 },
  { metric: 'evictions', title: 'Evictions (2 MiB chunks)', unit: 'chunks', scale: 1, integer: true },
];

/** The charts {@link renderReport} draws for `result`: those with a non-zero value. */
export function chartsFor(result: Pick<SweepResult, 'cells'>): ChartDef[] {
  return REPORT_CHARTS.filter((c) => result.cells.some((cell) => cell.metrics[c.metric] !== 0));
}

/** The series key of a cell: notifier policy, plus the cost variant when the sweep has several. */
function seriesOf(cells: readonly CellResult[]): (c: CellResult) => string {
  const costs = new Set(cells.map((c) => c.spec.costLabel));
  return (c) => (costs.size > 1 ? `${c.spec.notifier} · ${c.spec.costLabel}` : c.spec.notifier);
}

/** Cells grouped by workload × policy (seeds together), in sweep order. */
function groups(cells: readonly CellResult[]): CellResult[][] {
  const m = new Map<string, CellResult[]>();
  for (const c of cells) {
    const k = `${c.spec.workload.label}\u0000${policyOf(c.spec)}`;
    const g = m.get(k);
    if (g === undefined) m.set(k, [c]);
    else g.push(c);
  }
  return [...m.values()];
}

const CONFIG = { font: 'sans-serif', background: 'white' };

/** The vega-lite spec of one metric chart: mean bars, 95 % interval rules, one y-scale per workload. */
export function chartSpec(result: Pick<SweepResult, 'cells'>, chart: ChartDef): TopLevelSpec {
  const series = seriesOf(result.cells);
  // a workload whose values are all zero gets no panel (an empty panel has no scale)
  const live = new Set(
    result.cells.filter((c) => c.metrics[chart.metric] !== 0).map((c) => c.spec.workload.label),
  );
  const values = groups(result.cells.filter((c) => live.has(c.spec.workload.label))).map((g) => {
    const e = meanCi(g.map((c) => c.metrics[chart.metric] / chart.scale));
    return {
      workload: g[0]!.spec.workload.label,
      granule: granuleLabel(g[0]!.spec),
      series: series(g[0]!),
      value: e.mean,
      lo: e.lo ?? e.mean,
      hi: e.hi ?? e.mean,
      seeds: e.n,
    };
  });
  const granules = [...new Set(values.map((v) => v.granule))];
  const workloads = [...new Set(values.map((v) => v.workload))];
  const seeded = values.some((v) => v.seeds > 1);
  const x = {
    field: 'granule',
    type: 'nominal',
    title: 'granule policy',
    sort: granules,
    axis: { labelAngle: -40 },
  };
  const bars = {
    mark: { type: 'bar', tooltip: true },
    encoding: {
      x,
      xOffset: { field: 'series', type: 'nominal' },
      y: {
        field: 'value',
        type: 'quantitative',
        title: seeded ? `${chart.unit} (mean, 95 % CI)` : chart.unit,
        axis: chart.integer === true ? { format: '~s', tickMinStep: 1 } : { format: '~s' },
        scale: { zero: true },
      },
      color: { field: 'series', type: 'nominal', title: 'notifier' },
    },
  };
  const rules = {
    mark: { type: 'rule', color: '#222' },
    encoding: {
      x,
      xOffset: { field: 'series', type: 'nominal' },
      y: { field: 'lo', type: 'quantitative' },
      y2: { field: 'hi' },
    },
  };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: chart.title,
    data: { values },
    facet: { column: { field: 'workload', type: 'nominal', title: null, sort: workloads } },
    spec: { width: { step: 14 }, height: 160, layer: seeded ? [bars, rules] : [bars] },
    resolve: { scale: { y: 'independent' } },
    config: CONFIG,
  } as TopLevelSpec;
}

/** The trade-off scatter: mean simulated time against mean bytes migrated, per policy, per workload. */
export function tradeoffSpec(result: Pick<SweepResult, 'cells'>): TopLevelSpec {
  const values = groups(result.cells).map((g) => ({
    workload: g[0]!.spec.workload.label,
    policy: policyOf(g[0]!.spec),
    granule: granuleLabel(g[0]!.spec),
    notifier: g[0]!.spec.notifier,
    ms: meanCi(g.map((c) => c.metrics.simTimeNs / 1e6)).mean,
    mib: meanCi(g.map((c) => c.metrics.bytesMigrated / 1048576)).mean,
  }));
  const workloads = [...new Set(values.map((v) => v.workload))];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Trade-off: simulated time vs bytes migrated (lower left is better)',
    data: { values },
    facet: { column: { field: 'workload', type: 'nominal', title: null, sort: workloads } },
    spec: {
      width: 200,
      height: 180,
      mark: { type: 'point', filled: true, size: 80, tooltip: { content: 'data' } },
      encoding: {
        x: { field: 'mib', type: 'quantitative', title: 'MiB migrated', scale: { zero: true } },
        y: { field: 'ms', type: 'quantitative', title: 'simulated ms', scale: { zero: true } },
        color: { field: 'granule', type: 'nominal', title: 'granule' },
        shape: { field: 'notifier', type: 'nominal', title: 'notifier' },
      },
    },
    resolve: { scale: { x: 'independent', y: 'independent' } },
    config: CONFIG,
  } as TopLevelSpec;
}

/** Where simulated time went: stacked bars of the {@link TIME_PARTS}, mean over seeds, per policy. */
export function breakdownSpec(result: Pick<SweepResult, 'cells'>): TopLevelSpec {
  const values = groups(result.cells).flatMap((g) =>
    TIME_PARTS.map(([k, label], order) => ({
      workload: g[0]!.spec.workload.label,
      policy: policyOf(g[0]!.spec),
      part: label,
      order,
      ms: meanCi(g.map((c) => (c.metrics[k] ?? 0) / 1e6)).mean,
    })),
  );
  const workloads = [...new Set(values.map((v) => v.workload))];
  const policies = [...new Set(values.map((v) => v.policy))];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Where simulated time went',
    data: { values },
    facet: { row: { field: 'workload', type: 'nominal', title: null, sort: workloads } },
    spec: {
      width: 420,
      height: { step: 14 },
      mark: { type: 'bar', tooltip: true },
      encoding: {
        y: { field: 'policy', type: 'nominal', title: null, sort: policies },
        x: { field: 'ms', type: 'quantitative', title: 'simulated ms', stack: 'zero' },
        color: {
          field: 'part',
          type: 'nominal',
          title: 'part',
          sort: TIME_PARTS.map(([, l]) => l),
          legend: { labelLimit: 320 },
        },
        order: { field: 'order', type: 'quantitative' },
      },
    },
    resolve: { scale: { x: 'independent' } },
    config: CONFIG,
  } as TopLevelSpec;
}

/** Renders one vega-lite spec to an SVG string (no canvas, no network). */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

function esc(s: string): string {
  return s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');
}

/** The HTML table of the sweep (same columns as the console table). */
function htmlTable(result: SweepResult): string {
  const lines = formatTable(result).split('\n');
  const split = (l: string): string[] => l.split(/ {2,}/).map((x) => x.trim());
  const head = split(lines[0]!);
  const rows = lines.slice(2).map(split);
  const th = head.map((h) => `<th>${esc(h)}</th>`).join('');
  const trs = rows.map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`).join('\n');
  return `<table id="results"><thead><tr>${th}</tr></thead><tbody>\n${trs}\n</tbody></table>`;
}

/** Options of {@link renderReport}. */
export interface ReportOptions {
  /** Page title (default 'hmmkit sweep report'). */
  readonly title?: string;
  /** Baseline of the speed-ups (default: see `baselineOf`). */
  readonly baseline?: BaselineChoice;
}

/** Renders the whole report page (self-contained HTML). */
export async function renderReport(result: SweepResult, opts: ReportOptions = {}): Promise<string> {
  const title = opts.title ?? 'hmmkit sweep report';
  const figures: string[] = [];
  const has = result.cells.length > 0;
  if (has) {
    figures.push(
      `<figure class="chart" data-chart="tradeoff">${await renderSvg(tradeoffSpec(result))}</figure>`,
    );
    figures.push(
      `<figure class="chart" data-chart="breakdown">${await renderSvg(breakdownSpec(result))}</figure>`,
    );
  }
  for (const c of chartsFor(result)) {
    const svg = await renderSvg(chartSpec(result, c));
    figures.push(`<figure class="chart" data-metric="${c.metric}">${svg}</figure>`);
  }
  const violations = result.cells.reduce((s, c) => s + c.metrics.oracleViolations, 0);
  const failures = result.failures ?? [];
  const workloads = [...new Set(result.cells.map((c) => c.spec.workload.label))];
  const granules = [...new Set(result.cells.map((c) => granuleLabel(c.spec)))];
  const notifiers = [...new Set(result.cells.map((c) => c.spec.notifier))];
  const seeds = [...new Set(result.cells.map((c) => c.spec.seed))];
  const rec = formatAnswer(answer(result, opts.baseline));
  const fail =
    failures.length === 0
      ? ''
      : `<h2 class="bad">Failed cells</h2>\n<pre id="failures">${esc(formatFailures(failures))}</pre>\n`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>
body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1400px; }
h1 { font-size: 22px; margin-bottom: 4px; }
p.meta { color: #555; margin-top: 0; }
pre { background: #f6f8fa; padding: 8px; overflow-x: auto; font-size: 13px; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
figure.chart { margin: 0; padding: 8px; border: 1px solid #ddd; border-radius: 4px; background: #fff; }
table { border-collapse: collapse; font-size: 13px; margin-top: 16px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; }
td:nth-child(-n+4), th:nth-child(-n+4) { text-align: left; }
.ok { color: #1a7f37; } .bad { color: #cf222e; font-weight: bold; }
</style></head>
<body>
<h1>${esc(title)}</h1>
<p class="meta">${result.cells.length} cells: ${workloads.length} workloads (${esc(workloads.join(', '))}) ×
${granules.length} granule policies × ${notifiers.length} notifier policies × ${seeds.length} seeds;
${failures.length} failed; ${result.threads} threads, ${(result.wallMs / 1000).toFixed(1)} s wall.
Coherence oracle: <span class="${violations === 0 ? 'ok' : 'bad'}">${violations} violations</span>.</p>
<h2>The answer</h2>
<pre id="recommendation">${esc(rec)}</pre>
${fail}<div class="charts">
${figures.join('\n')}
</div>
<h2>Results</h2>
${htmlTable(result)}
<script type="application/json" id="sweep-data">${JSON.stringify(result).replaceAll('<', '\\u003c')}</script>
</body></html>
`;
}
