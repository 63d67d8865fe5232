// Adds up the vitest JSON reports of every package and example into the closing line CI reads.
// Exits non-zero when a test failed, a test file could not run, or a package wrote no report.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

let passed = 0;
let failed = 0;
let problems = 0;
for (const group of ['packages', 'examples']) {
  if (!existsSync(group)) continue;
  for (const name of readdirSync(group).sort()) {
    const dir = join(group, name);
    if (!existsSync(join(dir, 'package.json'))) continue;
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    if (!pkg.scripts?.test) continue;
    const file = join(dir, 'reports', 'vitest.json');
    if (!existsSync(file)) {
      console.error(`summary: ${dir} wrote no test report (its tests did not run)`);
      problems++;
      continue;
    }
    const r = JSON.parse(readFileSync(file, 'utf8'));
    passed += r.numPassedTests;
    failed += r.numFailedTests;
    if (r.numFailedTestSuites > 0) {
      console.error(`summary: ${dir}: ${r.numFailedTestSuites} test file(s) failed to run`);
      problems++;
    }
    if (r.numTotalTests === 0) {
      console.error(`summary: ${dir} ran no test`);
      problems++;
    }
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 || problems > 0 ? 1 : 0);
