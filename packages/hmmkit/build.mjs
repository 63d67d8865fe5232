// Builds the installable `hmmkit` package into dist/:
// - dist/index.js, dist/cli.js, dist/worker.js: esbuild bundles of the workspace packages' sources
//   (ESM, node 20; npm dependencies stay imports and are this package's `dependencies`), so an
//   outside project needs no @hmmkit/* package and no TypeScript; the sweep's worker threads load
//   dist/worker.js next to the bundle;
// - dist/types/<package>/...: each workspace package's declarations (from `tsc -b`), with
//   `@hmmkit/<p>` specifiers rewritten to relative paths; dist/index.d.ts re-exports them.
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const dist = join(here, 'dist');
const PACKAGES = ['sim', 'interval-tree', 'notifier', 'mm', 'hmm', 'gpu', 'svm', 'workloads', 'bench'];
const pkg = JSON.parse(readFileSync(join(here, 'package.json'), 'utf8'));

// declarations of every workspace package (incremental: a no-op when up to date)
execFileSync(
  join(root, 'node_modules', '.bin', 'tsc'),
  ['-b', join(root, 'packages', 'bench', 'tsconfig.build.json')],
  {
    stdio: 'inherit',
  },
);

rmSync(dist, { recursive: true, force: true });
await build({
  entryPoints: {
    index: join(here, 'src', 'index.ts'),
    cli: join(here, 'src', 'cli.ts'),
    worker: join(root, 'packages', 'bench', 'src', 'worker.ts'),
  },
  outdir: dist,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: Object.keys(pkg.dependencies),
  chunkNames: 'chunk-[hash]',
  sourcemap: true,
  logLevel: 'warning',
});
chmodSync(join(dist, 'cli.js'), 0o755);

function walk(dir) {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}
for (const p of PACKAGES) {
  const from = join(root, 'packages', p, 'dist');
  const to = join(dist, 'types', p);
  for (const f of walk(from).filter((x) => x.endsWith('.d.ts'))) {
    const out = join(to, relative(from, f));
    mkdirSync(dirname(out), { recursive: true });
    const text = readFileSync(f, 'utf8').replace(
      /(['"])@hmmkit\/([a-z-]+)(\/[a-z-]+)?\1/g,
      (_m, q, name, sub) => {
        let rel = relative(dirname(out), join(dist, 'types', name, sub ? `${sub.slice(1)}.js` : 'index.js'));
        if (!rel.startsWith('.')) rel = `./${rel}`;
        return `${q}${rel}${q}`;
      },
    );
    writeFileSync(out, text);
  }
}
const index = readFileSync(join(here, 'src', 'index.ts'), 'utf8').replace(
  /'@hmmkit\/([a-z-]+)'/g,
  (_m, name) => `'./types/${name}/index.js'`,
);
writeFileSync(join(dist, 'index.d.ts'), index);
writeFileSync(join(dist, 'cli.d.ts'), 'export {};\n');
cpSync(join(root, 'packages', 'bench', 'sweep.schema.json'), join(dist, 'sweep.schema.json'));
console.log(`hmmkit: built ${relative(root, dist)}`);
