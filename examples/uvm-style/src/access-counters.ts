/**
 * UVM's access counters (Volta and later, uvm_gpu_access_counters.c) with delayed migration: the
 * data stays in system memory and the GPU maps it remotely (accessed-by), so reading it raises no
 * fault; the GPU counts its remote accesses per region, and the driver's access-counter handler
 * migrates a region to VRAM once its count reaches the threshold. A hot region moves, a cold one
 * stays, and every load sees the CPU's data before and after the move.
 */
import { ACCESS } from '@hmmkit/gpu';
import { createSim } from '@hmmkit/sim';
import {
  type Access,
  createSvmWorld,
  LOC,
  MIGRATE_TRIGGER,
  mmapAnonymous,
  runKernel,
  worldVerdict,
} from '@hmmkit/svm';

const P = 4096;
const K64 = 64 << 10;

/** Numbers of the access-counter run. */
export interface AccessCounterMetrics {
  /** Regions (64 KiB) the access-counter handler migrated, as offsets from the buffer. */
  readonly migratedRegions: number[];
  readonly notifications: number;
  /** GPU faults of the hot kernel (the buffer is mapped remotely: none). */
  readonly faults: number;
  /** Faults of a second kernel over the migrated region (mapped from VRAM now: none). */
  readonly faultsAfter: number;
  readonly dataOk: boolean;
  readonly violations: number;
}

/** Runs the scenario: 8 warps read region 1 of four 64 KiB regions 256 times and region 3 once. */
export async function runAccessCounters(
  threshold = 64,
): Promise<{ lines: string[]; metrics: AccessCounterMetrics }> {
  const sim = createSim({ seed: 1 });
  const w = await createSvmWorld(sim, {
    devmem: { migrate: 'never' }, // faults never migrate: only the access counters move data
    vramBytes: 16 << 20,
    accessCounters: { granularity: K64, threshold },
  });
  return sim.sched.runMain(async () => {
    const lines: string[] = [];
    const buf = await mmapAnonymous(w.mm, 4 * K64, 0x40000000);
    for (let k = 0; k < 4 * K64; k += P) await w.mm.writeU32(buf + k, k);
    w.svm.attrs.advise(buf, buf + 4 * K64, { setAccessedBy: 1 }); // map remotely, no fault
    await w.svm.prefetch(buf, buf + 4 * K64, LOC.SYSMEM);
    const migrated: number[] = [];
    w.sim.trace.on('svm.migrate.end', (start, _pages, _from, _to, trigger, moved) => {
      if (trigger === MIGRATE_TRIGGER.ACCESS_COUNTER && moved > 0) migrated.push(start - buf);
    });
    const warps: Access[][] = Array.from({ length: 8 }, (_, i) => {
      const acc: Access[] = [];
      for (let k = 0; k < 32; k++) acc.push([buf + K64 + ((k * P) % K64), ACCESS.READ, 0]);
      if (i === 0) acc.push([buf + 3 * K64, ACCESS.READ, 0]);
      return acc;
    });
    const r = await runKernel(w, 0, warps);
    const want = warps.flatMap((acc) => acc.map(([va]) => va - buf));
    let dataOk = r.failed === 0 && want.every((v, i) => r.data[i] === v);
    const again = await runKernel(w, 0, [[[buf + K64 + 8 * P, ACCESS.READ, 0]]]);
    if (again.data[0] !== K64 + 8 * P) dataOk = false;
    const ac = w.svm.accessCounters!;
    lines.push(
      `hot kernel: ${r.faults} GPU faults (remote mapping), ${ac.notifications[0]} access-counter ` +
        `notification(s) at threshold ${threshold}; regions migrated: ${migrated.map((o) => `+${o / K64}×64K`).join(', ') || 'none'}`,
    );
    lines.push(
      `second kernel over the migrated region: ${again.faults} faults; data ${dataOk ? 'ok' : 'WRONG'}`,
    );
    const v = worldVerdict(w);
    lines.push(`oracle: ${v.violations} violations`);
    return {
      lines,
      metrics: {
        migratedRegions: migrated,
        notifications: ac.notifications[0] ?? 0,
        faults: r.faults,
        faultsAfter: again.faults,
        dataOk,
        violations: v.violations,
      },
    };
  });
}
