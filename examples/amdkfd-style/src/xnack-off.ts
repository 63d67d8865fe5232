/**
 * amdkfd with XNACK off (no retryable faults): what a KFD client does on such a GPU. Memory is
 * registered with the attribute ioctl (`setAttr`: preferred + prefetch location, accessed-by,
 * flags) before the launch, `getAttr` reads every attribute back, the SMI-style migration events
 * name their trigger, and a kernel that strays outside registered memory raises a memory exception
 * (address and access) that kills the queue, as KFD's HSA_EVENTTYPE_MEMORY does.
 */
import { ACCESS } from '@hmmkit/gpu';
import { createSim, hex } from '@hmmkit/sim';
import {
  amdkfdPolicy,
  createSvmWorld,
  deviceLoc,
  LOC,
  MIGRATE_TRIGGER,
  mmapAnonymous,
  perRangeNotifiers,
  runKernel,
  SVM_FLAG,
  worldVerdict,
} from '@hmmkit/svm';

const P = 4096;
const GPU = deviceLoc(0);
const TRIGGER_NAMES = Object.fromEntries(Object.entries(MIGRATE_TRIGGER).map(([k, v]) => [v, k]));

/** Numbers of one XNACK-off run. */
export interface XnackOffMetrics {
  /** GPU faults of the first kernel (over registered memory): 0 with XNACK off. */
  readonly registeredKernelFaults: number;
  /** Pages moved, by migration trigger (SMI-style `svm.migrate.end` events). */
  readonly migrationsByTrigger: Record<string, number>;
  /** Attributes read back by getAttr over the registered buffer. */
  readonly attrs: { preferredLoc: number; prefetchLoc: number; accessedBy: number; gpuRo: boolean };
  /** The memory exception of the stray kernel: [va, access], or null. */
  readonly exception: [number, number] | null;
  readonly queueKilled: boolean;
  readonly violations: number;
  readonly dataOk: boolean;
}

/** Runs the XNACK-off scenario; returns printed lines and metrics. */
export async function runXnackOff(seed = 1): Promise<{ lines: string[]; metrics: XnackOffMetrics }> {
  const sim = createSim({ seed });
  const w = await createSvmWorld(sim, {
    granule: amdkfdPolicy(),
    notifiers: perRangeNotifiers(),
    devmem: { migrate: 'fault' },
    vramBytes: 16 << 20,
    xnack: false,
  });
  const byTrigger: Record<string, number> = {};
  w.sim.trace.on('svm.migrate.end', (_start, _pages, _from, _to, trigger, moved) => {
    if (moved === 0) return;
    const name = TRIGGER_NAMES[trigger] ?? String(trigger);
    byTrigger[name] = (byTrigger[name] ?? 0) + moved;
  });
  return sim.sched.runMain(async () => {
    const lines: string[] = [];
    const say = (s: string) => lines.push(s);
    const buf = await mmapAnonymous(w.mm, 16 * P);
    const table = await mmapAnonymous(w.mm, 4 * P); // read-only for the GPU
    const stray = await mmapAnonymous(w.mm, P); // never registered
    for (let i = 0; i < 16; i++) await w.mm.writeU32(buf + i * P, i);
    await w.mm.writeU32(table, 7);
    // RegisterSVMRange: preferred + prefetch location gpu0, accessed by gpu0 (maps it at once)
    const rc = await w.svm.setAttr(buf, buf + 16 * P, {
      preferredLoc: GPU,
      prefetchLoc: GPU,
      setAccessedBy: 1,
    });
    const rc2 = await w.svm.setAttr(table, table + 4 * P, {
      prefetchLoc: LOC.SYSMEM,
      setAccessedBy: 1,
      setFlags: SVM_FLAG.GPU_RO,
    });
    const a = await w.svm.getAttr(buf, buf + 16 * P);
    const t = await w.svm.getAttr(table, table + 4 * P);
    if (typeof a === 'number' || typeof t === 'number' || rc !== 0 || rc2 !== 0) {
      throw new Error(`setAttr/getAttr failed: ${rc} ${rc2} ${String(a)} ${String(t)}`);
    }
    say(
      `setAttr: buf preferred gpu0, prefetch gpu0, accessed-by ${a.accessedBy}; table GPU_RO ` +
        `(getAttr flags ${hex(t.flags)})`,
    );
    // a kernel over registered memory: no fault at all
    const k1 = await runKernel(w, 0, [
      Array.from({ length: 16 }, (_, i) => [buf + i * P, ACCESS.READ, 0] as const),
      [[table, ACCESS.READ, 0]],
      [[buf + 4, ACCESS.WRITE, 99]],
    ]);
    let dataOk = k1.failed === 0;
    for (let i = 0; i < 16; i++) if (k1.data[i] !== i) dataOk = false;
    if (k1.data[16] !== 7) dataOk = false;
    say(`kernel over registered memory: ${k1.faults} GPU faults, ${k1.failed} failed warps`);
    // a kernel that strays: the fault is fatal
    const next = w.svm.nextMemoryException(0);
    const k2 = await runKernel(w, 0, [[[stray, ACCESS.WRITE, 1]]]);
    const ex = await next;
    const killed = w.svm.queueKilled(0);
    say(
      `stray store at ${hex(ex.va)}: memory exception (access ${ex.access}, errno ${ex.errno}), ` +
        `${k2.failed} warp failed, queue ${killed ? 'killed' : 'alive'}`,
    );
    if ((await w.mm.readU32(stray)) !== 0) dataOk = false;
    if ((await w.mm.readU32(buf + 4)) !== 99) dataOk = false;
    say(
      `migrations by trigger (pages): ${Object.entries(byTrigger)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
    );
    const v = worldVerdict(w);
    say(`oracle: ${v.violations} violations; data ${dataOk ? 'ok' : 'WRONG'}`);
    return {
      lines,
      metrics: {
        registeredKernelFaults: k1.faults,
        migrationsByTrigger: byTrigger,
        attrs: {
          preferredLoc: a.preferredLoc,
          prefetchLoc: a.prefetchLoc,
          accessedBy: a.accessedBy,
          gpuRo: (t.flags & SVM_FLAG.GPU_RO) !== 0,
        },
        exception: [ex.va, ex.access],
        queueKilled: killed,
        violations: v.violations,
        dataOk,
      },
    };
  });
}
