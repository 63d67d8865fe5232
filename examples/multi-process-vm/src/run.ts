/**
 * Two processes on one GPU, each with its own GPU VM (`GpuVmDevice.createVm`): their own page
 * tables and notifiers, one VRAM and one eviction LRU. Process A binds a VRAM buffer object
 * (VM_BIND) beside its CPU-address mirror; process B's VRAM pressure evicts A's mirrored pages;
 * A reads its data back; unbinding a mirror that still has ranges is refused with -EBUSY.
 */
import { ACCESS } from '@hmmkit/gpu';
import { createMachine, MAP_ANONYMOUS, MAP_PRIVATE, Mm, PROT_NONE, PROT_READ, PROT_WRITE } from '@hmmkit/mm';
import { createSim, Errno } from '@hmmkit/sim';
import {
  type Access,
  type BufferObject,
  type GpuVm,
  GpuVmDevice,
  runKernel,
  worldVerdict,
} from '@hmmkit/svm';

const MiB = 1 << 20;
const STRIDE = 64 * 1024;

/** What the run measured. */
export interface Metrics {
  readonly aPagesInVramBefore: number;
  readonly aPagesInVramAfter: number;
  readonly foreignEvictedPages: number;
  readonly boValueOk: boolean;
  readonly dataOk: boolean;
  readonly busyUnbind: number;
  readonly separatePageTables: boolean;
  readonly violations: number;
}

/** Runs the scenario; returns printable lines and the metrics the test checks. */
export async function run(): Promise<{ lines: string[]; metrics: Metrics }> {
  const sim = createSim({ seed: 14 });
  const machine = createMachine(sim, { thp: 'never' });
  const gpu = new GpuVmDevice(machine, { vramBytes: 12 * MiB, svmBytes: 8 * MiB });
  const a = await gpu.createVm(new Mm(machine));
  const b = await gpu.createVm(new Mm(machine));
  const lines: string[] = [];
  const pagesOf = (vm: GpuVm): number => {
    let n = 0;
    for (let k = 0; k < gpu.pool.rmapTag.length; k++)
      if (gpu.pool.rmapTag[k] === vm.tag && gpu.pool.rmapVa1[k]! > 0) n++;
    return n;
  };
  const value = (p: number, i: number) => (p * 0x10000 + i + 1) >>> 0;
  /** Each process: mmap `bytes`, one GPU store per 64 KiB (xe migrates each 2 MiB range to VRAM). */
  const gpuFill = async (vm: GpuVm, p: number, bytes: number): Promise<number> => {
    const at = await vm.mm.mmap(0, bytes + 2 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    const base = Math.ceil(at / (2 * MiB)) * 2 * MiB;
    const warps: Access[][] = [];
    for (let i = 0; i < bytes / STRIDE; i++) warps.push([[base + i * STRIDE, ACCESS.WRITE, value(p, i)]]);
    await runKernel(vm.world, 0, warps);
    return base;
  };
  let m: Metrics | null = null;
  await sim.sched.runMain(async () => {
    const aData = await gpuFill(a, 1, 6 * MiB);
    const before = pagesOf(a);
    lines.push(`A: 6 MiB written by its GPU VM → ${before} of A's pages in VRAM (the pool holds 2048)`);

    // VM_BIND: a 2 MiB VRAM BO at a reserved VA of A, beside the mirror
    const boVa = await a.mm.mmap(0, 2 * MiB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS);
    const bo = gpu.createBo(2 * MiB) as BufferObject;
    const bound = await a.bindBo(bo, 0, boVa, 2 * MiB);
    const k = await runKernel(a.world, 0, [[[boVa + 64, ACCESS.WRITE, 0xb0b0]]]);
    const boValueOk = bound === 0 && k.failed === 0 && k.faults === 0 && bo.read32(64) === 0xb0b0;
    lines.push(
      `A: VM_BIND of a 2 MiB BO → ${bound}; a GPU store there takes no fault, BO reads 0x${bo.read32(64).toString(16)}`,
    );

    await gpuFill(b, 2, 6 * MiB);
    const after = pagesOf(a);
    const foreign = sim.counters.get('gpu0.vm.evict.foreign.pages');
    lines.push(
      `B: 6 MiB on the same GPU → evicts ${foreign} of A's pages (one LRU); A keeps ${after} in VRAM`,
    );

    let dataOk = true;
    for (let i = 0; i < (6 * MiB) / STRIDE; i++)
      if ((await a.mm.readU32(aData + i * STRIDE)) !== value(1, i)) dataOk = false;
    lines.push(`A: the CPU reads its 6 MiB back → ${dataOk ? 'every value intact' : 'DATA LOST'}`);

    const busyUnbind = await a.unbind(a.svm.mmStart, a.vaEnd - a.svm.mmStart);
    lines.push(
      `A: unbinding the system allocator while ranges live → ${busyUnbind === -Errno.EBUSY ? '-EBUSY' : busyUnbind}`,
    );
    expectZero(await a.bindMirror(boVa, 2 * MiB)); // the mirror back over the BO: the BO is unbound
    bo.close();

    const va = aData;
    const ta = a.dev.pageTable.translate(va);
    const tb = b.dev.pageTable.translate(va);
    const separatePageTables =
      a.dev.pageTable !== b.dev.pageTable && (ta.pa !== tb.pa || ta.aperture !== tb.aperture);
    lines.push(`page tables: A and B each map their own page at VA 0x${va.toString(16)} (two ASIDs)`);
    const va_ = worldVerdict(a.world);
    const vb = worldVerdict(b.world);
    for (const [name, vm, v] of [
      ['A', a, va_],
      ['B', b, vb],
    ] as const) {
      const px = `gpu0.vm${vm.tag}.tlb`;
      const tlb = sim.counters.get(`${px}.invalidate`) + sim.counters.get(`${px}.flush`);
      lines.push(
        `${name}: oracle checked ${v.checkedInvalidations} invalidations + ${v.checkedAccesses} GPU accesses + ` +
          `${v.checkedLoads} loads → ${v.violations === 0 ? 'COHERENT' : `${v.violations} VIOLATIONS`}; ` +
          `${tlb} TLB invalidations in its own context`,
      );
    }
    m = {
      aPagesInVramBefore: before,
      aPagesInVramAfter: after,
      foreignEvictedPages: foreign,
      boValueOk,
      dataOk,
      busyUnbind,
      separatePageTables,
      violations: va_.violations + vb.violations,
    };
  });
  return { lines, metrics: m as unknown as Metrics };
}

function expectZero(r: number): void {
  if (r !== 0) throw new Error(`bind failed: ${r}`);
}
