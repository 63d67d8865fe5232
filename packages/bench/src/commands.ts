/**
 * The `hmmkit` commands: `sweep`, `report`, `run`, `calibrate` (the bin `cli.ts` only calls {@link main}).
 *
 * @module
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { cac } from 'cac';
import cliProgress from 'cli-progress';
import { calibrationTable, runCalibration } from './calibration.ts';
import { listExamples, runExample } from './examples.ts';
import {
  CPU_MODES,
  type CpuMode,
  PLACEMENTS,
  type Placement,
  type WorkloadGenerator,
  type WorkloadSpec,
} from './experiment.ts';
import { formatTable, toCsv, toJson } from './format.ts';
import { renderReport } from './report.ts';
import {
  DEFAULT_SWEEP,
  expandSweep,
  parseCostVariant,
  runSweep,
  type SweepResult,
  type SweepSpec,
} from './sweep.ts';

/** Splits a comma list option (cac gives a string, a number or an array for repeated flags). */
function list(v: unknown): string[] {
  if (v === undefined || v === null || v === '') return [];
  const parts = Array.isArray(v) ? v : [v];
  return parts
    .flatMap((p) => String(p).split(','))
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

function writeOut(path: string, text: string): string {
  const p = resolve(path);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, text);
  return p;
}

/** Whether a progress bar may be drawn on stderr. */
export function progressEnabled(): boolean {
  return process.stderr.isTTY === true && !process.env.CI;
}

interface SweepFlags {
  spec?: string;
  workloads?: string;
  granules?: string;
  notifiers?: string;
  costs?: string | string[];
  seeds?: string;
  footprint?: number;
  cpu?: string;
  placement?: string;
  vram?: number;
  devices?: number;
  threads?: number;
  out?: string;
  html?: boolean;
  quiet?: boolean;
}

/** Builds the sweep from the flags (a JSON spec file, else the default sweep with overrides). */
export function sweepFromFlags(f: SweepFlags): SweepSpec {
  let s: SweepSpec =
    f.spec !== undefined ? (JSON.parse(readFileSync(f.spec, 'utf8')) as SweepSpec) : DEFAULT_SWEEP;
  const wl = list(f.workloads);
  if (wl.length > 0 || f.footprint !== undefined || f.cpu !== undefined) {
    const cpu = f.cpu as CpuMode | undefined;
    if (cpu !== undefined && !CPU_MODES.includes(cpu)) throw new Error(`--cpu must be one of ${CPU_MODES}`);
    const base: readonly WorkloadSpec[] =
      wl.length > 0 ? wl.map((g) => ({ generator: g as WorkloadGenerator, label: g })) : s.workloads;
    s = {
      ...s,
      workloads: base.map((w) => ({
        ...w,
        params: {
          ...(w.params ?? {}),
          ...(f.footprint !== undefined ? { footprintBytes: Math.round(f.footprint * 1024 * 1024) } : {}),
        },
        ...(cpu !== undefined ? { cpu } : {}),
      })),
    };
  }
  const g = list(f.granules);
  if (g.length > 0) s = { ...s, granules: g };
  const n = list(f.notifiers);
  if (n.length > 0) s = { ...s, notifiers: n };
  const c = Array.isArray(f.costs) ? f.costs : f.costs !== undefined ? [f.costs] : [];
  if (c.length > 0) s = { ...s, costs: c.map((x) => parseCostVariant(String(x))) };
  const seeds = list(f.seeds).map(Number);
  if (seeds.length > 0) s = { ...s, seeds };
  if (f.placement !== undefined) {
    if (!PLACEMENTS.includes(f.placement as Placement))
      throw new Error(`--placement must be one of ${PLACEMENTS}`);
    s = { ...s, placement: f.placement as Placement };
  }
  if (f.vram !== undefined) s = { ...s, vramBytes: Math.round(f.vram * 1024 * 1024) };
  if (f.devices !== undefined) s = { ...s, devices: f.devices };
  return s;
}

async function sweepCommand(f: SweepFlags): Promise<void> {
  const spec = sweepFromFlags(f);
  const bar = progressEnabled()
    ? new cliProgress.SingleBar(
        { stream: process.stderr, format: 'sweep [{bar}] {value}/{total} cells | {eta}s left | {cell}' },
        cliProgress.Presets.shades_classic,
      )
    : null;
  bar?.start(expandSweep(spec).length, 0, { cell: '' });
  const result = await runSweep(spec, {
    ...(f.threads !== undefined ? { threads: f.threads } : {}),
    onProgress: (done, _total, cell) => {
      if (bar === null) return;
      bar.update(done, { cell: `${cell.spec.workload.label}/${cell.spec.granule}/${cell.spec.notifier}` });
    },
  });
  bar?.stop();
  process.stdout.write(`${formatTable(result)}\n`);
  const out = f.out ?? 'reports/sweep';
  const json = writeOut(`${out}.json`, toJson(result));
  const csv = writeOut(`${out}.csv`, toCsv(result));
  const files = [json, csv];
  if (f.html === true) files.push(writeOut(`${out}.html`, await renderReport(result)));
  const violations = result.cells.reduce((s, c) => s + c.metrics.oracleViolations, 0);
  if (f.quiet !== true) {
    process.stderr.write(
      `${result.cells.length} cells, ${result.threads} threads, ${(result.wallMs / 1000).toFixed(1)} s; ` +
        `oracle violations: ${violations}\nwrote ${files.join(', ')}\n`,
    );
  }
  if (violations > 0) process.exitCode = 1;
}

async function reportCommand(input: string, f: { out?: string }): Promise<void> {
  const result = JSON.parse(readFileSync(input, 'utf8')) as SweepResult;
  if (result.format !== 'hmmkit-sweep/1') throw new Error(`${input}: not an hmmkit sweep result`);
  const out = f.out ?? `${input.replace(/\.json$/, '')}.html`;
  const p = writeOut(out, await renderReport(result));
  process.stderr.write(`wrote ${p}\n`);
}

async function runCommand(name: string | undefined, args: readonly string[]): Promise<void> {
  if (name === undefined) {
    const names = listExamples();
    process.stdout.write(names.length === 0 ? 'no examples found\n' : `${names.join('\n')}\n`);
    return;
  }
  const r = await runExample(name, { args });
  process.exitCode = r.code;
}

/** Builds the CLI (exported for tests). */
export function createCli(): ReturnType<typeof cac> {
  const cli = cac('hmmkit');
  cli
    .command('sweep', 'Run workloads × granule policies × notifier policies × cost overrides')
    .option('--spec <file>', 'Sweep spec JSON (SweepSpec); flags below override it')
    .option('--workloads <list>', 'Generators, comma separated (streaming,stencil,randomAccess,...)')
    .option(
      '--granules <list>',
      'Granule policies (4k,xe,xe-64k,amdkfd,nouveau,uvm-tree,uvm-noprefetch,whole-vma)',
    )
    .option('--notifiers <list>', 'Notifier policies (per-range,window-2M,window-512M,whole-mm)')
    .option('--costs <overrides>', 'A cost variant name=value[,name=value]; repeat for several')
    .option('--seeds <list>', 'Seeds')
    .option('--footprint <MiB>', 'Workload footprint in MiB')
    .option('--cpu <mode>', 'CPU activity: none, init, pingpong')
    .option('--placement <p>', 'sysmem or vram')
    .option('--vram <MiB>', 'VRAM per device in MiB')
    .option('--devices <n>', 'GPUs')
    .option('--threads <n>', 'Worker threads (0 = inline; default: available parallelism)')
    .option('--out <prefix>', 'Output prefix (default reports/sweep → .json, .csv)')
    .option('--html', 'Also write the HTML report')
    .option('--quiet', 'No summary on stderr')
    .action((f: SweepFlags) => sweepCommand(f));
  cli
    .command('report <results>', 'Render a sweep results JSON as a self-contained HTML report')
    .option('--out <file>', 'Output HTML (default: <results>.html)')
    .action((input: string, f: { out?: string }) => reportCommand(input, f));
  cli
    .command('run [example] [...args]', 'Run examples/<example>/src/main.ts (no name: list them)')
    .action((name: string | undefined, args: string[]) => runCommand(name, args));
  cli
    .command(
      'calibrate',
      'Compare the default cost model with the published UVM measurements (uvm-costs §2.7)',
    )
    .action(async () => {
      const results = await runCalibration();
      process.stdout.write(`${calibrationTable(results)}\n`);
    });
  cli.help();
  cli.version('0.1.0');
  return cli;
}

/** Runs the CLI on `argv` (process.argv layout). */
export async function main(argv: string[] = process.argv): Promise<void> {
  const cli = createCli();
  cli.parse(argv, { run: false });
  if (cli.matchedCommand === undefined) {
    if (cli.options.help !== true && cli.options.version !== true) cli.outputHelp();
    return;
  }
  await cli.runMatchedCommand();
}
