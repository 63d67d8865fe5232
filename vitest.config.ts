import { defineConfig } from 'vitest/config';

/** Root config: `pnpm vitest` from the top runs every package and example as one project set. */
export default defineConfig({ test: { projects: ['packages/*', 'examples/*'] } });
