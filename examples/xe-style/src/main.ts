/** `pnpm --filter @hmmkit/example-xe-style start`: drm_gpusvm chunk sizes and migration to VRAM on fault. */

import { runAtomic } from './atomic.ts';
import { runDeviceThp } from './device-thp.ts';
import { run } from './run.ts';

const r = await run();
console.log('hmmkit example: an xe-style SVM driver (drm_gpusvm chunks {2M, 64K, 4K}, VRAM on fault)\n');
for (const line of r.lines) console.log(`  ${line}`);

const at = await runAtomic();
console.log('\nmadvise of the atomic-access and PAT attributes\n');
for (const line of at.lines) console.log(`  ${line}`);

console.log('\ndevice-private 2 MiB folios (devmem.thp, MIGRATE_VMA_SELECT_COMPOUND)\n');
for (const thp of [true, false]) {
  const m = await runDeviceThp(thp);
  console.log(
    `  thp ${thp ? 'on ' : 'off'}: ${m.collected} migrate entr${m.collected === 1 ? 'y' : 'ies'} for the 2 MiB THP block; ` +
      `CPU entry order on the device ${m.cpuOrderOnDevice}, after the CPU reads it back ${m.cpuOrderBack}; ` +
      `data ${m.dataOk ? 'ok' : 'WRONG'}, ${m.violations} violations`,
  );
}
