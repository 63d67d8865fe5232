// Creates packages/<name> with the conventions of DESIGN.md: src/, test/, bench/, a
// source-first package.json, tsconfig.json (typecheck), tsconfig.build.json (emit) and a
// vitest project. Usage: node scripts/new-package.mjs <name> "<description>" [dep ...]
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [name, description, ...deps] = process.argv.slice(2);
if (!name || !description) {
  console.error('usage: node scripts/new-package.mjs <name> "<description>" [@hmmkit/dep ...]');
  process.exit(2);
}
const dir = join('packages', name);
if (existsSync(dir)) {
  console.error(`${dir} exists`);
  process.exit(2);
}
for (const sub of ['src', 'test', 'bench']) mkdirSync(join(dir, sub), { recursive: true });
const json = (file, value) => writeFileSync(join(dir, file), `${JSON.stringify(value, null, 2)}\n`);
json('package.json', {
  name: `@hmmkit/${name}`,
  version: '0.1.0',
  description,
  type: 'module',
  private: true,
  exports: { '.': { types: './src/index.ts', dist: './dist/index.js', default: './src/index.ts' } },
  publishConfig: { exports: { '.': { types: './dist/index.d.ts', default: './dist/index.js' } } },
  scripts: {
    build: 'tsc -b tsconfig.build.json',
    typecheck: 'tsc -p tsconfig.json --noEmit',
    lint: 'biome check .',
    test: 'vitest run',
    bench: 'sh ../../scripts/bench.sh',
  },
  dependencies: Object.fromEntries(deps.map((d) => [d, 'workspace:*'])),
});
json('tsconfig.json', {
  extends: '../../tsconfig.base.json',
  compilerOptions: { noEmit: true },
  include: ['src', 'test', 'bench'],
});
json('tsconfig.build.json', {
  extends: '../../tsconfig.base.json',
  compilerOptions: { composite: true, rootDir: 'src', outDir: 'dist' },
  include: ['src'],
  references: deps.map((d) => ({ path: `../${d.replace('@hmmkit/', '')}/tsconfig.build.json` })),
});
writeFileSync(
  join(dir, 'vitest.config.ts'),
  `import { hmmkitProject } from '../../vitest.shared.ts';\n\nexport default hmmkitProject('@hmmkit/${name}');\n`,
);
console.log(`created ${dir}`);
