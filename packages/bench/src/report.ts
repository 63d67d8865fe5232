/**
 * `hmmkit report`: a self-contained HTML page for a sweep: one chart per metric (simulated time,
 * far faults, retries, bytes over-fetched, TLB invalidations, bytes migrated, evictions), bars
 * per granule policy, faceted by workload, coloured by notifier policy / cost variant. Charts are
 * compiled with vega-lite and rendered to SVG in Node (vega's headless `toSVG`), then inlined:
 * the page needs no script and no network to view.
 *
 * @module
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { Metrics } from './experiment.ts';
import { formatTable } from './format.ts';
import type { SweepResult } from './sweep.ts';

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

/** The charts of the report, in page order. */
export const REPORT_CHARTS: readonly ChartDef[] = [
  { metric: 'simTimeNs', title: 'Simulated time', unit: 'ms', scale: 1e6 },
  { metric: 'farFaults', title: 'Far faults', unit: 'faults', scale: 1, integer: true },
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

/** The series key of a cell: notifier policy, plus the cost variant when the sweep has several. */
function seriesOf(result: SweepResult): (i: number) => string {
  const costs = new Set(result.cells.map((c) => c.spec.costLabel));
  const seeds = new Set(result.cells.map((c) => c.spec.seed));
  return (i) => {
    const s = result.cells[i]!.spec;
    let k = s.notifier;
    if (costs.size > 1) k += ` · ${s.costLabel}`;
    if (seeds.size > 1) k += ` · seed ${s.seed}`;
    return k;
  };
}

/** The vega-lite spec of one chart. */
export function chartSpec(result: SweepResult, chart: ChartDef): TopLevelSpec {
  const series = seriesOf(result);
  const values = result.cells.map((c, i) => ({
    workload: c.spec.workload.label,
    granule: c.spec.granule,
    series: series(i),
    value: c.metrics[chart.metric] / chart.scale,
  }));
  const granules = [...new Set(values.map((v) => v.granule))];
  const workloads = [...new Set(values.map((v) => v.workload))];
  const max = values.reduce((m, v) => Math.max(m, v.value), 0);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: chart.title,
    data: { values },
    mark: { type: 'bar', tooltip: true },
    encoding: {
      column: { field: 'workload', type: 'nominal', title: null, sort: workloads },
      x: {
        field: 'granule',
        type: 'nominal',
        title: 'granule policy',
        sort: granules,
        axis: { labelAngle: -40 },
      },
      xOffset: { field: 'series', type: 'nominal' },
      y: {
        field: 'value',
        type: 'quantitative',
        title: chart.unit,
        axis: chart.integer === true ? { format: '~s', tickMinStep: 1 } : { format: '~s' },
        scale: max > 0 ? { zero: true } : { domain: [0, 1] },
      },
      color: { field: 'series', type: 'nominal', title: 'notifier' },
    },
    width: { step: 14 },
    height: 160,
    config: { font: 'sans-serif', background: 'white' },
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
}

/** Renders the whole report page (self-contained HTML). */
export async function renderReport(result: SweepResult, opts: ReportOptions = {}): Promise<string> {
  const title = opts.title ?? 'hmmkit sweep report';
  const charts: string[] = [];
  for (const c of REPORT_CHARTS) {
    const svg = await renderSvg(chartSpec(result, c));
    charts.push(`<figure class="chart" data-metric="${c.metric}">${svg}</figure>`);
  }
  const violations = result.cells.reduce((s, c) => s + c.metrics.oracleViolations, 0);
  const workloads = [...new Set(result.cells.map((c) => c.spec.workload.label))];
  const granules = [...new Set(result.cells.map((c) => c.spec.granule))];
  const notifiers = [...new Set(result.cells.map((c) => c.spec.notifier))];
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>
body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1400px; }
h1 { font-size: 22px; margin-bottom: 4px; }
p.meta { color: #555; margin-top: 0; }
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
${granules.length} granule policies × ${notifiers.length} notifier policies; ${result.threads} threads,
${(result.wallMs / 1000).toFixed(1)} s wall.
Coherence oracle: <span class="${violations === 0 ? 'ok' : 'bad'}">${violations} violations</span>.</p>
<div class="charts">
${charts.join('\n')}
</div>
<h2>Results</h2>
${htmlTable(result)}
<script type="application/json" id="sweep-data">${JSON.stringify(result).replaceAll('<', '\\u003c')}</script>
</body></html>
`;
}
