/**
 * One vitest project definition for every package and example, so that every test run
 * writes the same JSON report that `scripts/check.sh` adds up into CI's closing line.
 */
import { defineProject, type UserWorkspaceConfig } from 'vitest/config';

/** A vitest project for the package in the current directory. */
export function hmmkitProject(name: string, extra: UserWorkspaceConfig['test'] = {}): UserWorkspaceConfig {
  return defineProject({
    test: {
      name,
      include: ['test/**/*.test.ts'],
      exclude: ['**/node_modules/**', '**/dist/**', '**/bench/**'],
      reporters: ['default', 'json'],
      outputFile: { json: 'reports/vitest.json' },
      testTimeout: 60_000,
      ...extra,
    },
  });
}
