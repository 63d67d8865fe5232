/**
 * Command-line flags of `hmmkit sweep` → a {@link SweepSpec}, with errors that name the flag and
 * the rule (`--vram must be a positive multiple of 2 (MiB), got 3`), and the accepted values of
 * every list flag in one place (the help text and the JSON Schema use them too).
 *
 * @module
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { COST_PARAMS, type CostParamName } from '@hmmkit/sim';
import { GENERATORS } from '@hmmkit/workloads';
import {
  CPU_MODES,
  type CpuMode,
  costLabelOf,
  PLACEMENTS,
  type Placement,
  type WorkloadGenerator,
  type WorkloadSpec,
} from './experiment.ts';
import { DEFAULT_EVICTION, EVICTION_POLICIES, GRANULE_POLICIES, NOTIFIER_POLICIES } from './policies.ts';
import { type CostVariant, DEFAULT_SWEEP, SAME_GRANULE, type SweepSpec } from './sweep.ts';

/** A command-line mistake: the message names the flag and the rule. The CLI exits with 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Accepted values of the list flags. */
export const ACCEPTED = {
  workloads: [...Object.keys(GENERATORS), 'pageTouch'] as readonly string[],
  /** Workload generators a --spec file may also name. */
  generators: [...Object.keys(GENERATORS), 'pageTouch', 'trace'] as readonly string[],
  granules: Object.keys(GRANULE_POLICIES) as readonly string[],
  notifiers: Object.keys(NOTIFIER_POLICIES) as readonly string[],
  evictions: Object.keys(EVICTION_POLICIES) as readonly string[],
  /** Granule policies once the pool is full, or 'same' (no switch). */
  granulesOnceFull: [SAME_GRANULE, ...Object.keys(GRANULE_POLICIES)] as readonly string[],
  cpu: CPU_MODES as readonly string[],
  placement: PLACEMENTS as readonly string[],
  costs: Object.keys(COST_PARAMS) as readonly string[],
} as const;

/** The flags of `hmmkit sweep` as cac hands them over (numbers when they look numeric). */
export interface SweepFlags {
  spec?: string;
  workloads?: unknown;
  granules?: unknown;
  notifiers?: unknown;
  evictions?: unknown;
  granulesOnceFull?: unknown;
  costs?: unknown;
  seeds?: unknown;
  footprint?: unknown;
  cpu?: unknown;
  placement?: unknown;
  accessCounterThreshold?: unknown;
  vram?: unknown;
  devices?: unknown;
  threads?: unknown;
  maxSteps?: unknown;
  timeout?: unknown;
  shard?: unknown;
  baseline?: unknown;
  trace?: unknown;
  timeline?: unknown;
  out?: unknown;
  force?: boolean;
  html?: boolean;
  quiet?: boolean;
}

/** Splits a comma list (cac gives a string, a number or an array for a repeated flag); no repeats. */
export function list(v: unknown): string[] {
  if (v === undefined || v === null || v === '' || v === true) return [];
  const parts = Array.isArray(v) ? v : [v];
  const out = parts
    .flatMap((p) => String(p).split(','))
    .map((s) => s.trim())
    .filter((s) => s !== '');
  return [...new Set(out)];
}

/** The single value of a flag (a flag given twice is an error). */
export function single(flag: string, v: unknown): string | undefined {
  if (v === undefined) return undefined;
  if (Array.isArray(v)) throw new UsageError(`--${flag} was given ${v.length} times; give it once`);
  if (v === true || v === '') throw new UsageError(`--${flag} needs a value`);
  return String(v);
}

/** Checks every item of a list flag against its accepted values. */
function checkNames(flag: keyof typeof ACCEPTED, items: readonly string[]): void {
  for (const x of items) {
    if (!ACCEPTED[flag].includes(x)) {
      const name = flag.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
      throw new UsageError(`--${name}: unknown value '${x}'; accepted: ${ACCEPTED[flag].join(', ')}`);
    }
  }
}

/** A number flag: finite, and `rule(n)` holds. */
export function numberFlag(
  flag: string,
  v: unknown,
  rule: string,
  ok: (n: number) => boolean,
): number | undefined {
  const s = single(flag, v);
  if (s === undefined) return undefined;
  const n = s.trim() === '' ? Number.NaN : Number(s);
  if (!Number.isFinite(n) || !ok(n)) throw new UsageError(`--${flag} must be ${rule}, got ${s}`);
  return n;
}

const isInt = Number.isSafeInteger;

/** Parses one `--costs` variant: `default` or `name=value[,name=value...]`, names from COST_PARAMS. */
export function costVariantFlag(text: string): CostVariant {
  const t = text.trim();
  if (t === '' || t === 'default') return { label: 'default', overrides: {} };
  const overrides: Partial<Record<CostParamName, number>> = {};
  for (const part of t.split(',')) {
    const eq = part.indexOf('=');
    const k = eq < 0 ? part.trim() : part.slice(0, eq).trim();
    const v = eq < 0 ? '' : part.slice(eq + 1).trim();
    if (!Object.hasOwn(COST_PARAMS, k)) {
      throw new UsageError(
        `--costs: '${k}' is not a cost parameter; valid names: ${ACCEPTED.costs.join(', ')}`,
      );
    }
    const n = v === '' ? Number.NaN : Number(v);
    if (!Number.isFinite(n) || n < 0) {
      throw new UsageError(
        `--costs: ${k} must be a finite number ≥ 0, got '${v}' (form: name=value[,name=value])`,
      );
    }
    overrides[k as CostParamName] = n;
  }
  return { label: costLabelOf(overrides), overrides };
}

/** Reads a `--spec` file: JSON of a {@link SweepSpec} (schema: `hmmkit schema`). */
export function readSpecFile(file: string): SweepSpec {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`--spec ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`--spec ${file}: not JSON (${(e as Error).message})`);
  }
  const o = v as Record<string, unknown>;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new UsageError(`--spec ${file}: must be a JSON object (a SweepSpec; see \`hmmkit schema\`)`);
  }
  for (const k of ['workloads', 'granules', 'notifiers'] as const) {
    if (!Array.isArray(o[k])) throw new UsageError(`--spec ${file}: '${k}' must be an array`);
  }
  const known = new Set(Object.keys(SWEEP_SPEC_FIELDS));
  for (const k of Object.keys(o)) {
    if (!known.has(k)) {
      throw new UsageError(`--spec ${file}: unknown field '${k}'; fields: ${[...known].join(', ')}`);
    }
  }
  return v as SweepSpec;
}

/** The fields of a SweepSpec and what they are (used by the schema and the spec-file check). */
export const SWEEP_SPEC_FIELDS = {
  workloads: 'workloads (generator, params, cpu, label)',
  granules: 'granule policies',
  notifiers: 'notifier policies',
  evictions: "eviction policies of device memory (placement 'vram' or 'counters'; default lru-chunk)",
  granulesOnceFull:
    "granule policies used from the device pool's first eviction on (UVMSmart's -hwprefetch_oversub), or 'same' (default)",
  costs: 'cost variants ({label, overrides})',
  seeds: 'seeds',
  devices: 'GPUs',
  vramBytes: 'VRAM per device in bytes',
  placement: 'placement',
  accessCounterThreshold:
    "remote accesses per 2 MiB region that migrate it (placement 'counters'; default 256)",
  replay: 'fault replay policy',
  maxSteps: 'scheduler step budget per phase',
  timeoutMs: 'wall-clock budget per cell (ms)',
} as const;

/** Builds the sweep from the flags (a JSON spec file, else the default sweep, with overrides). */
export function sweepFromFlags(f: SweepFlags): SweepSpec {
  const specFile = single('spec', f.spec);
  let s: SweepSpec = specFile !== undefined ? readSpecFile(specFile) : DEFAULT_SWEEP;
  const wl = list(f.workloads);
  checkNames('workloads', wl);
  const traces = list(f.trace);
  if (traces.length > 0 && wl.length > 0) throw new UsageError('--trace and --workloads exclude each other');
  if (traces.length > 0) {
    for (const t of traces) if (!existsSync(t)) throw new UsageError(`--trace ${t}: no such file`);
    s = {
      ...s,
      workloads: traces.map((t) => ({
        generator: 'trace' as const,
        params: { file: resolve(t) },
        label: basename(t),
      })),
    };
  }
  const footprint = numberFlag(
    'footprint',
    f.footprint,
    'a positive number of MiB (≥ 0.004)',
    (n) => n * 1048576 >= 4096,
  );
  const cpuText = single('cpu', f.cpu);
  if (cpuText !== undefined) checkNames('cpu', [cpuText]);
  if (wl.length > 0 || footprint !== undefined || cpuText !== undefined) {
    const cpu = cpuText as CpuMode | undefined;
    const base: readonly WorkloadSpec[] =
      wl.length > 0 ? wl.map((g) => ({ generator: g as WorkloadGenerator, label: g })) : s.workloads;
    s = {
      ...s,
      workloads: base.map((w) => ({
        ...w,
        params: {
          ...(w.params ?? {}),
          ...(footprint !== undefined ? { footprintBytes: Math.round(footprint * 1048576) } : {}),
        },
        ...(cpu !== undefined ? { cpu } : {}),
      })),
    };
  }
  const g = list(f.granules);
  checkNames('granules', g);
  if (g.length > 0) s = { ...s, granules: g };
  const n = list(f.notifiers);
  checkNames('notifiers', n);
  if (n.length > 0) s = { ...s, notifiers: n };
  const ev = list(f.evictions);
  checkNames('evictions', ev);
  if (ev.length > 0) s = { ...s, evictions: ev };
  const onceFull = list(f.granulesOnceFull);
  checkNames('granulesOnceFull', onceFull);
  if (onceFull.length > 0) s = { ...s, granulesOnceFull: onceFull };
  const c = f.costs === undefined ? [] : (Array.isArray(f.costs) ? f.costs : [f.costs]).map(String);
  if (c.length > 0) {
    const variants = c.map(costVariantFlag);
    s = { ...s, costs: variants.filter((v, i) => variants.findIndex((w) => w.label === v.label) === i) };
  }
  const seeds = list(f.seeds).map((x) => {
    const v = Number(x);
    if (!isInt(v) || v < 0 || v > 2 ** 32 - 1)
      throw new UsageError(`--seeds: each seed must be an integer in [0, 4294967295], got ${x}`);
    return v;
  });
  if (seeds.length > 0) s = { ...s, seeds };
  const placement = single('placement', f.placement);
  if (placement !== undefined) {
    checkNames('placement', [placement]);
    s = { ...s, placement: placement as Placement };
  }
  const vram = numberFlag(
    'vram',
    f.vram,
    'a positive multiple of 2 (MiB)',
    (v) => isInt(v) && v > 0 && v % 2 === 0,
  );
  if (vram !== undefined) s = { ...s, vramBytes: vram * 1048576 };
  const devices = numberFlag(
    'devices',
    f.devices,
    'an integer in [1, 8]',
    (v) => isInt(v) && v >= 1 && v <= 8,
  );
  if (devices !== undefined) s = { ...s, devices };
  const maxSteps = numberFlag('max-steps', f.maxSteps, 'a positive integer', (v) => isInt(v) && v >= 1);
  if (maxSteps !== undefined) s = { ...s, maxSteps };
  const timeout = numberFlag('timeout', f.timeout, 'a number of seconds ≥ 0 (0 = none)', (v) => v >= 0);
  if (timeout !== undefined) s = { ...s, timeoutMs: Math.round(timeout * 1000) };
  if (ev.some((e) => e !== DEFAULT_EVICTION) && s.placement === 'sysmem') {
    throw new UsageError(
      `--evictions applies to device memory only: it needs --placement vram or counters (placement is ${s.placement})`,
    );
  }
  if (onceFull.some((g) => g !== SAME_GRANULE) && s.placement === 'sysmem') {
    throw new UsageError(
      `--granules-once-full switches at the device pool's first eviction: it needs --placement vram or counters (placement is ${s.placement})`,
    );
  }
  const act = numberFlag(
    'access-counter-threshold',
    f.accessCounterThreshold,
    'an integer in [1, 65535]',
    (v) => isInt(v) && v >= 1 && v <= 65535,
  );
  if (act !== undefined) {
    if ((s.placement ?? 'vram') !== 'counters') {
      throw new UsageError('--access-counter-threshold needs --placement counters');
    }
    s = { ...s, accessCounterThreshold: act };
  }
  return s;
}
