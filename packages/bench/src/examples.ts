/**
 * `hmmkit run <example>`: the runnable driver prototypes under the repository's `examples/`
 * folder, each started as `tsx examples/<name>/src/main.ts`.
 *
 * @module
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ArgumentError } from '@hmmkit/sim';

/** The repository root (this file lives in packages/bench/src or packages/bench/dist). */
export function repoRoot(): string {
  return fileURLToPath(new URL('../../../', import.meta.url));
}

/** Names of the examples that have a `src/main.ts`, sorted. */
export function listExamples(root: string = repoRoot()): string[] {
  const dir = join(root, 'examples');
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(dir, d.name, 'src', 'main.ts')))
    .map((d) => d.name)
    .sort();
}

/** Options of {@link runExample}. */
export interface RunExampleOptions {
  readonly root?: string;
  /** Extra arguments passed to the example's main. */
  readonly args?: readonly string[];
  /** 'inherit' (default) prints to this process's stdout/stderr; 'pipe' captures them. */
  readonly stdio?: 'inherit' | 'pipe';
}

/** What an example run returned. */
export interface ExampleRun {
  readonly code: number;
  /** Captured output (empty with stdio 'inherit'). */
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `examples/<name>/src/main.ts` with tsx from the repository root. */
export async function runExample(name: string, opts: RunExampleOptions = {}): Promise<ExampleRun> {
  const root = opts.root ?? repoRoot();
  const names = listExamples(root);
  if (!names.includes(name)) {
    throw new ArgumentError('runExample', 'name', `must be one of: ${names.join(', ') || '(none)'}`, name);
  }
  const local = join(root, 'node_modules', '.bin', 'tsx');
  const tsx = existsSync(local) ? local : 'tsx';
  const stdio = opts.stdio ?? 'inherit';
  return new Promise((resolve, reject) => {
    const child = spawn(tsx, [join('examples', name, 'src', 'main.ts'), ...(opts.args ?? [])], {
      cwd: root,
      stdio: stdio === 'inherit' ? 'inherit' : ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (b: Buffer) => {
      stdout += b.toString();
    });
    child.stderr?.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}
