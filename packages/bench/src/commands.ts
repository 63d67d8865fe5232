/**
 * The `hmmkit` commands: `sweep`, `merge`, `report`, `cell`, `schema`, `run`, `calibrate` (the
 * bin `cli.ts` only calls {@link main}).
 *
 * @module
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { cac } from 'cac';
import cliProgress from 'cli-progress';
import { answer, formatAnswer, parseBaseline } from './analysis.ts';
import { calibrationTable, runCalibration } from './calibration.ts';
import { listExamples, runExample } from './examples.ts';
import { type ExperimentSpec, runExperiment } from './experiment.ts';
import { ACCEPTED, numberFlag, type SweepFlags, single, sweepFromFlags, UsageError } from './flags.ts';
import { formatFailures, formatTable, toCsv, toJson } from './format.ts';
import { renderReport } from './report.ts';
import { sweepSchema } from './schema.ts';
import {
  DEFAULT_SWEEP,
  expandSweep,
  mergeResults,
  parseShard,
  runSweep,
  type Shard,
  type SweepResult,
} from './sweep.ts';

export { sweepFromFlags, UsageError } from './flags.ts';

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

const OUT_EXTS = ['.json', '.csv', '.html'] as const;

/**
 * The output prefix of a run. An explicit `--out` whose files exist is refused unless `--force`
 * (checked before anything runs); the default `reports/sweep` becomes `reports/sweep-2`, `-3`, ...
 * when taken, so a run never silently overwrites another run's results.
 */
export function outputPrefix(out: string | undefined, force: boolean, base = 'reports/sweep'): string {
  const taken = (p: string): string | undefined => OUT_EXTS.map((e) => `${p}${e}`).find((f) => existsSync(f));
  if (out !== undefined) {
    const t = taken(out);
    if (t !== undefined && !force) {
      throw new UsageError(`--out ${out}: ${t} exists (another run's results); pass --force to overwrite it`);
    }
    return out;
  }
  if (force) return base;
  let p = base;
  for (let n = 2; taken(p) !== undefined; n++) p = `${base}-${n}`;
  return p;
}

/**
 * Runs `body` under a progress bar on stderr (or on `stream`, drawn even when it is not a
 * terminal), stopped whatever `body` does: a running bar's redraw timer would keep the process
 * alive after an error (the CLI then hung at 0 % CPU).
 */
export async function withProgress<T>(
  total: number,
  body: (update: (done: number, label: string) => void) => Promise<T>,
  stream?: NodeJS.WritableStream,
): Promise<T> {
  const bar =
    stream !== undefined || progressEnabled()
      ? new cliProgress.SingleBar(
          {
            stream: stream ?? process.stderr,
            format: 'sweep [{bar}] {value}/{total} cells | {eta}s left | {cell}',
            ...(stream !== undefined ? { noTTYOutput: true, notTTYSchedule: 50 } : {}),
          },
          cliProgress.Presets.shades_classic,
        )
      : null;
  bar?.start(total, 0, { cell: '' });
  try {
    return await body((done, label) => bar?.update(done, { cell: label }));
  } finally {
    bar?.stop();
  }
}

/** Prints the table, failures and recommendation; writes JSON, CSV (and HTML); sets the exit code. */
async function emitResult(
  result: SweepResult,
  prefix: string,
  f: { html?: boolean; quiet?: boolean; baseline?: unknown },
): Promise<void> {
  const baseline = parseBaseline(single('baseline', f.baseline) ?? '');
  process.stdout.write(`${formatTable(result)}\n`);
  const failures = result.failures ?? [];
  if (failures.length > 0) process.stdout.write(`\n${formatFailures(failures)}\n`);
  process.stdout.write(`\n${formatAnswer(answer(result, baseline))}\n`);
  const files = [writeOut(`${prefix}.json`, toJson(result)), writeOut(`${prefix}.csv`, toCsv(result))];
  if (f.html === true) files.push(writeOut(`${prefix}.html`, await renderReport(result, { baseline })));
  const violations = result.cells.reduce((s, c) => s + c.metrics.oracleViolations, 0);
  if (f.quiet !== true) {
    process.stderr.write(
      `${result.cells.length} cells finished, ${failures.length} failed; ${result.threads} threads, ` +
        `${(result.wallMs / 1000).toFixed(1)} s; oracle violations: ${violations}\nwrote ${files.join(', ')}\n`,
    );
  }
  if (violations > 0 || failures.length > 0) process.exitCode = 1;
}

async function sweepCommand(f: SweepFlags): Promise<void> {
  const spec = sweepFromFlags(f);
  const threads = numberFlag(
    'threads',
    f.threads,
    'an integer ≥ 0 (0 = inline)',
    (n) => Number.isSafeInteger(n) && n >= 0,
  );
  const shardText = single('shard', f.shard);
  let shard: Shard | undefined;
  if (shardText !== undefined) {
    try {
      shard = parseShard(shardText);
    } catch {
      throw new UsageError(`--shard must be i/N with 0 ≤ i < N (e.g. 0/4), got ${shardText}`);
    }
  }
  const out = single('out', f.out);
  const prefix = outputPrefix(
    out,
    f.force === true,
    shard !== undefined ? `reports/sweep.shard-${shard.index}-of-${shard.count}` : 'reports/sweep',
  );
  const total = expandSweep(spec).length;
  const timeline = single('timeline', f.timeline);
  const mine = shard === undefined ? total : Math.ceil((total - shard.index) / shard.count);
  const result = await withProgress(mine, (update) =>
    runSweep(spec, {
      ...(threads !== undefined ? { threads } : {}),
      ...(shard !== undefined ? { shard } : {}),
      ...(timeline !== undefined ? { timeline } : {}),
      onProgress: (done, _total, cell) =>
        update(done, `${cell.spec.workload.label}/${cell.spec.granule}/${cell.spec.notifier}`),
    }),
  );
  await emitResult(result, prefix, f);
}

async function mergeCommand(
  files: readonly string[],
  f: {
    out?: unknown;
    force?: boolean;
    html?: boolean;
    quiet?: boolean;
    partial?: boolean;
    baseline?: unknown;
  },
): Promise<void> {
  if (files.length === 0)
    throw new UsageError("merge needs the shards' results files: hmmkit merge a.json b.json ...");
  const parts = files.map((file) => readResult(file));
  const merged = mergeResults(parts, { partial: f.partial === true });
  const prefix = outputPrefix(single('out', f.out), f.force === true, 'reports/merged');
  await emitResult(merged, prefix, f);
}

function readResult(file: string): SweepResult {
  let v: SweepResult;
  try {
    v = JSON.parse(readFileSync(file, 'utf8')) as SweepResult;
  } catch (e) {
    throw new UsageError(`${file}: cannot read it as JSON (${(e as Error).message})`);
  }
  if (v?.format !== 'hmmkit-sweep/1') throw new UsageError(`${file}: not an hmmkit sweep result`);
  return v;
}

async function reportCommand(
  input: string,
  f: { out?: unknown; force?: boolean; baseline?: unknown },
): Promise<void> {
  const result = readResult(input);
  const out = single('out', f.out) ?? `${input.replace(/\.json$/, '')}.html`;
  if (existsSync(out) && f.force !== true && single('out', f.out) !== undefined) {
    throw new UsageError(`--out ${out} exists; pass --force to overwrite it`);
  }
  const baseline = parseBaseline(single('baseline', f.baseline) ?? '');
  const p = writeOut(out, await renderReport(result, { baseline }));
  process.stderr.write(`wrote ${p}\n`);
}

async function cellCommand(json: string): Promise<void> {
  let spec: ExperimentSpec;
  try {
    spec = JSON.parse(json) as ExperimentSpec;
  } catch (e) {
    throw new UsageError(`cell: the argument must be an experiment spec as JSON (${(e as Error).message})`);
  }
  const metrics = await runExperiment(spec);
  process.stdout.write(`${JSON.stringify(metrics, null, 2)}\n`);
  if (metrics.oracleViolations > 0) process.exitCode = 1;
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

const MiB = 1 << 20;
const d = DEFAULT_SWEEP;

/** The command names (an unknown one is an error). */
export const COMMANDS = ['sweep', 'merge', 'report', 'cell', 'schema', 'run', 'calibrate'] as const;

/** Builds the CLI (exported for tests). */
export function createCli(): ReturnType<typeof cac> {
  const cli = cac('hmmkit');
  cli
    .command('sweep', 'Run workloads × granule policies × notifier policies × cost variants × seeds')
    .option(
      '--spec <file>',
      'Sweep spec JSON (a SweepSpec; schema: `hmmkit schema`, docs/lab.md); flags override it',
    )
    .option(
      '--workloads <list>',
      `Generators, comma separated: ${ACCEPTED.workloads.join(', ')} (default: ${d.workloads.map((w) => w.label).join(', ')})`,
    )
    .option(
      '--granules <list>',
      `Granule policies: ${ACCEPTED.granules.join(', ')} (default: ${d.granules.join(',')})`,
    )
    .option(
      '--notifiers <list>',
      `Notifier policies: ${ACCEPTED.notifiers.join(', ')} (default: ${d.notifiers.join(',')})`,
    )
    .option(
      '--evictions <list>',
      `Eviction policies of device memory (placement vram or counters): ${ACCEPTED.evictions.join(', ')} (default: lru-chunk)`,
    )
    .option(
      '--granules-once-full <list>',
      `Granule policies from the device pool's first eviction on (UVMSmart's -hwprefetch_oversub; placement vram or counters): ${ACCEPTED.granulesOnceFull.join(', ')} (default: same)`,
    )
    .option(
      '--costs <variant>',
      `A cost variant: default or name=value[,name=value]; repeat for several (default: default). Names (docs/cost-model.md): ${ACCEPTED.costs.join(', ')}`,
    )
    .option('--seeds <list>', 'Seeds, integers (default: 1); several give the 95 % interval')
    .option(
      '--trace <file>',
      'Workloads from trace files instead of generators (comma list): hmmkit binary, UVMSmart dump, or CSV va,size,kind,warp (docs/lab.md); ranges are mapped automatically',
    )
    .option(
      '--timeline <file>',
      "Write each cell's simulated timeline as Chrome trace-event JSON (Perfetto, chrome://tracing); several cells: <file>.cell-<i>.json",
    )
    .option('--footprint <MiB>', "Workload footprint in MiB (default: each workload's own; generators: 16)")
    .option(
      '--cpu <mode>',
      `CPU activity: ${ACCEPTED.cpu.join(', ')} (default: each workload's own, else init)`,
    )
    .option('--placement <p>', `${ACCEPTED.placement.join(', ')} (default: ${d.placement})`)
    .option(
      '--access-counter-threshold <n>',
      'With --placement counters: remote accesses per 2 MiB region that migrate it (default: 256)',
    )
    .option('--vram <MiB>', `VRAM per device in MiB, a multiple of 2 (default: ${(d.vramBytes ?? 0) / MiB})`)
    .option('--devices <n>', 'GPUs, 1 to 8 (default: 1)')
    .option('--threads <n>', 'Worker threads (0 = inline; default and cap: available parallelism)')
    .option('--max-steps <n>', 'Scheduler step budget per phase of a cell (default: 100000000)')
    .option('--timeout <s>', 'Wall-clock budget per cell in seconds (default: 0 = none)')
    .option('--shard <i/N>', 'Run only cells with index ≡ i (mod N); combine with `hmmkit merge`')
    .option(
      '--baseline <policy>',
      'Baseline of the speed-ups: granule[/notifier[/costs]] (default: 4k and the first notifier)',
    )
    .option(
      '--out <prefix>',
      'Output prefix → .json, .csv, .html (default: reports/sweep; when taken reports/sweep-2, -3 and so on)',
    )
    .option('--force', 'Overwrite the files of an existing --out')
    .option('--html', 'Also write the HTML report')
    .option('--quiet', 'No summary on stderr')
    .action((f: SweepFlags) => sweepCommand(f));
  cli
    .command('merge [...results]', "Merge the shards' results files of one sweep into one")
    .option(
      '--out <prefix>',
      'Output prefix (default: reports/merged; when taken reports/merged-2 and so on)',
    )
    .option('--partial', 'Allow missing shards')
    .option('--baseline <policy>', 'Baseline of the speed-ups (as for sweep)')
    .option('--force', 'Overwrite the files of an existing --out')
    .option('--html', 'Also write the HTML report')
    .option('--quiet', 'No summary on stderr')
    .action((files: string[], f) => mergeCommand(files, f));
  cli
    .command('report <results>', 'Render a sweep results JSON as a self-contained HTML report')
    .option('--out <file>', 'Output HTML (default: <results>.html)')
    .option('--baseline <policy>', 'Baseline of the speed-ups (as for sweep)')
    .option('--force', 'Overwrite an existing --out')
    .action((input: string, f) => reportCommand(input, f));
  cli
    .command('cell <spec>', "Run one experiment inline from its JSON spec (a failed cell's replay command)")
    .action((json: string) => cellCommand(json));
  cli.command('schema', 'Print the JSON Schema of --spec files').action(() => {
    process.stdout.write(`${JSON.stringify(sweepSchema(), null, 2)}\n`);
  });
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

/**
 * The bin's whole job: {@link main}, then an error as one `hmmkit: message` line (the stack with
 * HMMKIT_DEBUG set) and the exit code (1 a failure, 2 a usage error).
 */
export async function runCli(argv: string[] = process.argv): Promise<void> {
  try {
    await main(argv);
  } catch (e) {
    const debug = process.env.HMMKIT_DEBUG !== undefined;
    process.stderr.write(
      `hmmkit: ${e instanceof Error ? (debug ? (e.stack ?? e.message) : e.message) : String(e)}\n`,
    );
    process.exitCode = e instanceof UsageError ? 2 : 1;
  }
}

/** Runs the CLI on `argv` (process.argv layout). An unknown command is a {@link UsageError}. */
export async function main(argv: string[] = process.argv): Promise<void> {
  const cli = createCli();
  try {
    cli.parse(argv, { run: false });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (cli.matchedCommand === undefined) {
    if (cli.options.help === true || cli.options.version === true) return;
    if (cli.args.length > 0) {
      throw new UsageError(
        `unknown command '${cli.args[0]}'; commands: ${COMMANDS.join(', ')} (hmmkit --help)`,
      );
    }
    cli.outputHelp();
    return;
  }
  if (cli.options.help === true) return;
  try {
    await cli.runMatchedCommand();
  } catch (e) {
    // cac's own checks (unknown option, missing value) are usage errors too
    if ((e as Error)?.name === 'CACError') throw new UsageError((e as Error).message);
    throw e;
  }
}
