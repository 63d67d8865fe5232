/** `pnpm --filter @hmmkit/example-xe-style start`: drm_gpusvm chunk sizes and migration to VRAM on fault. */
import { runAtomic } from './atomic.ts';
import { run } from './run.ts';

const r = await run();
console.log('hmmkit example: an xe-style SVM driver (drm_gpusvm chunks {2M, 64K, 4K}, VRAM on fault)\n');
for (const line of r.lines) console.log(`  ${line}`);

const at = await runAtomic();
console.log('\nmadvise of the atomic-access and PAT attributes\n');
for (const line of at.lines) console.log(`  ${line}`);
