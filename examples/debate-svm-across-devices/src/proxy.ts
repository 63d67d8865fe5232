/**
 * The proxy-process scheme against a shared VA per process (Oak Zeng: "In your scheme, GPU VA =
 * CPU VA + offset. In every single place where driver need to call hmm facilities such as
 * hmm_range_fault, migrate_vma_setup and in mmu notifier call back, you need to offset … your
 * scheme also have a risk of running out of process space because you have to partition whole
 * address space b/t processes").
 *
 * - {@link ProxyMirror}: one GPU page table for several guest processes; process i owns GPU VA
 *   [i·S, (i+1)·S) with S the CPU user VA size, and GPU VA = CPU VA + i·S. Every fault translates
 *   GPU → (process, CPU VA) and every invalidation CPU → GPU; both are counted.
 * - per process: a page table (GPU VM context) per process with GPU VA = CPU VA, modelled as one
 *   simulated GpuDevice per context running `MinimalMirror` (the smallest correct hmm driver).
 */

import { startFaultBottomHalf } from '@hmmkit/example-minimal-mirror/fault-bottom-half';
import { runKernel as runMirrorKernel } from '@hmmkit/example-minimal-mirror/harness';
import { MinimalMirror } from '@hmmkit/example-minimal-mirror/mirror';
import {
  ACCESS,
  APERTURE,
  createGpuDevice,
  type GpuDevice,
  nvMmuV2,
  nvMmuV3,
  PAGE_4K,
  type PtFormat,
} from '@hmmkit/gpu';
import * as hmm from '@hmmkit/hmm';
import { createMachine, Mm, TASK_SIZE } from '@hmmkit/mm';
import * as mn from '@hmmkit/notifier';
import { ArgumentError, createSim, Errno, RwSemaphore, type Task } from '@hmmkit/sim';
import { type Access, CoherenceOracle, identitySysResolver, mmapAnonymous } from '@hmmkit/svm';

/** The CPU user VA a process may use: TASK_SIZE rounded up to a power of two (2^47 on x86-64 4-level paging). */
export const CPU_VA_SPAN = 2 ** Math.ceil(Math.log2(TASK_SIZE));

interface Guest {
  readonly mm: Mm;
  readonly off: number;
  readonly sub: mn.MmuIntervalNotifier;
  readonly start: number;
  readonly end: number;
}

/** One GPU page table shared by guest processes, GPU VA = CPU VA + index · {@link CPU_VA_SPAN}. */
export class ProxyMirror {
  readonly dev: GpuDevice;
  readonly guests: Guest[] = [];
  readonly update: RwSemaphore;
  /** GPU ↔ CPU address translations done by the driver (faults and invalidations). */
  translations = 0;
  faults = 0;
  invalidations = 0;

  constructor(dev: GpuDevice) {
    this.dev = dev;
    this.update = new RwSemaphore(dev.sim.sched, 'proxy->update');
  }

  /** Adds a guest process mirroring [start, end) of its VA; -ENOSPC when the GPU VA has no partition left. */
  async attach(mm: Mm, start: number, end: number): Promise<number> {
    const off = this.guests.length * CPU_VA_SPAN;
    if (off + CPU_VA_SPAN > 2 ** this.dev.format.vaBits) return -Errno.ENOSPC;
    const g: Guest = { mm, off, sub: new mn.MmuIntervalNotifier(), start, end };
    const ops = {
      invalidate: (_s: unknown, r: mn.MmuNotifierRange, seq: number) => this.invalidate(g, r, seq),
    };
    const r = await mn.mmuIntervalNotifierInsert(g.sub, mm, start, end - start, ops);
    if (r !== 0) return r;
    this.guests.push(g);
    return this.guests.length - 1;
  }

  private async invalidate(g: Guest, r: mn.MmuNotifierRange, seq: number): Promise<boolean> {
    if (!mn.mmuNotifierRangeBlockable(r)) return false;
    await this.update.write();
    try {
      mn.mmuIntervalSetSeq(g.sub, seq);
      this.invalidations++;
      this.translations++; // CPU range → GPU range
      const s = r.start + g.off;
      const u = this.dev.beginUpdate();
      this.dev.pageTable.unmap(s, r.end - r.start, u.pt);
      u.tlb.invalidate(s, r.end - r.start);
      u.end();
      return true;
    } finally {
      this.update.writeUnlock();
    }
  }

  /** A GPU fault: find the guest, translate, hmm_range_fault the 64 KiB window, map at GPU VA. */
  async fault(gpuVa: number, access: number): Promise<number> {
    this.faults++;
    this.translations++; // GPU VA → (guest, CPU VA)
    const g = this.guests[Math.floor(gpuVa / CPU_VA_SPAN)];
    if (g === undefined) return -Errno.EFAULT;
    const va = gpuVa - g.off;
    const page = va - (va % PAGE_4K);
    const ws = page - (page % 0x10000);
    const range = new hmm.HmmRange({
      notifier: g.sub,
      start: Math.max(ws, g.start),
      end: Math.min(ws + 0x10000, g.end),
      pfnFlagsMask: hmm.HMM_PFN_REQ_FAULT | hmm.HMM_PFN_REQ_WRITE,
    });
    const write = access === ACCESS.WRITE || access === ACCESS.ATOMIC;
    range.hmmFlags[(page - range.start) / PAGE_4K] =
      hmm.HMM_PFN_REQ_FAULT | (write ? hmm.HMM_PFN_REQ_WRITE : 0);
    const ret = await hmm.hmmRangeFaultLocked(range, this.update);
    if (ret !== 0) return ret;
    try {
      const u = this.dev.beginUpdate();
      for (let i = 0; i < range.npages; i++) {
        const f = range.hmmFlags[i]!;
        if ((f & hmm.HMM_PFN_VALID) === 0) continue;
        const attrs = { aperture: APERTURE.SYS, writable: (f & hmm.HMM_PFN_WRITE) !== 0 };
        this.dev.pageTable.map(
          range.start + i * PAGE_4K + g.off,
          PAGE_4K,
          range.hmmPfns[i]! * PAGE_4K,
          attrs,
          u.pt,
        );
      }
      u.tlb.invalidate(range.start + g.off, range.end - range.start);
      u.end();
      return 0;
    } finally {
      this.update.readUnlock();
    }
  }

  /** The fault bottom half servicing faults with {@link fault}. */
  startFaultHandler(stop: () => boolean): Task {
    return startFaultBottomHalf(this.dev, 'proxy-faults', (va, a) => this.fault(va, a), stop);
  }
}

/** How many guest processes fit one GPU VA space, by format and CPU user VA bits. */
export interface ExhaustionRow {
  readonly format: string;
  readonly gpuVaBits: number;
  readonly cpuVaBits: number;
  /** Partitions the format's VA holds: 2^(gpuVaBits - cpuVaBits). */
  readonly byFormat: number;
  /** Partitions whose top page the simulated page table accepted (counted up to `cap`). */
  readonly processes: number;
  /** True when counting stopped at the cap rather than at a failure. */
  readonly capped: boolean;
}

/**
 * Counts the partitions of `cpuVaBits` that fit a GPU VA space: maps the top page of partition i
 * (the last page a process may use) in a fresh page table until the format refuses the address.
 */
export function exhaustion(fmt: PtFormat, cpuVaBits: number, cap = 4096): ExhaustionRow {
  const sim = createSim({ seed: 1 });
  const dev = createGpuDevice(sim, { format: fmt, vramBytes: 2 << 20 });
  let n = 0;
  for (; n < cap; n++) {
    const va = (n + 1) * 2 ** cpuVaBits - PAGE_4K;
    try {
      dev.pageTable.map(va, PAGE_4K, 0x1000_0000, { aperture: APERTURE.SYS });
    } catch (e) {
      if (e instanceof ArgumentError) break;
      throw e;
    }
  }
  const byFormat = fmt.vaBits >= cpuVaBits ? 2 ** (fmt.vaBits - cpuVaBits) : 0;
  return { format: fmt.name, gpuVaBits: fmt.vaBits, cpuVaBits, byFormat, processes: n, capped: n === cap };
}

/** Result of the proxy vs per-process run. */
export interface ProxyRow {
  readonly scheme: 'proxy (VA + offset)' | 'page table per process';
  readonly processes: number;
  /** A further process could be attached. */
  readonly roomForMore: boolean;
  readonly faults: number;
  readonly invalidations: number;
  readonly translations: number;
  /** Kernel words read correctly through the process's GPU pointers. */
  readonly correctReads: number;
  readonly reads: number;
  /** A kernel of process 2 handed its raw CPU pointer: words that came from another process. */
  readonly foreignReads: number;
  /** Coherence oracle violations (-1: not checkable — the oracle needs GPU VA = CPU VA). */
  readonly violations: number;
}

const BUF_VA = 0x7f00_0000_0000; // the same CPU address in every process (mmap area)
const BUF_PAGES = 64;

async function guestSetup(machine: ReturnType<typeof createMachine>, i: number): Promise<Mm> {
  const mm = new Mm(machine);
  await mmapAnonymous(mm, BUF_PAGES * PAGE_4K, BUF_VA);
  for (let p = 0; p < BUF_PAGES; p++) await mm.writeU32(BUF_VA + p * PAGE_4K, 1000 * (i + 1) + p);
  return mm;
}

const sweep = (base: number): Access[][] => [
  Array.from({ length: BUF_PAGES }, (_, p): Access => [base + p * PAGE_4K, ACCESS.READ, 0]),
];

/** Runs `processes` guests (same CPU VA) through both schemes on format `fmt`. */
export async function runProxy(fmt: PtFormat, processes: number, seed = 1): Promise<ProxyRow[]> {
  const rows: ProxyRow[] = [];
  for (const scheme of ['proxy (VA + offset)', 'page table per process'] as const) {
    const sim = createSim({ seed });
    const machine = createMachine(sim, { thp: 'never' });
    const row = await sim.sched.runMain(async () => {
      const mms: Mm[] = [];
      for (let i = 0; i < processes; i++) mms.push(await guestSetup(machine, i));
      let correct = 0;
      let reads = 0;
      let foreign = 0;
      let violations = 0;
      const count = (data: Uint32Array, owner: number, remapped = false) => {
        for (let p = 0; p < BUF_PAGES; p++) {
          reads++;
          const want = remapped && p < BUF_PAGES / 2 ? 5000 + p : 1000 * (owner + 1) + p;
          if (data[p] === want) correct++;
        }
      };
      if (scheme === 'proxy (VA + offset)') {
        const dev = createGpuDevice(sim, { format: fmt, vramBytes: 2 << 20 });
        attachSys(machine, dev);
        const pm = new ProxyMirror(dev);
        for (const mm of mms) await pm.attach(mm, BUF_VA, BUF_VA + BUF_PAGES * PAGE_4K);
        const extra = await pm.attach(
          await guestSetup(machine, processes),
          BUF_VA,
          BUF_VA + BUF_PAGES * PAGE_4K,
        );
        for (let i = 0; i < mms.length; i++)
          count((await runMirrorKernel(sim, pm, sweep(BUF_VA + pm.guests[i]!.off))).data, i);
        // process 1 unmaps and remaps half its buffer (the invalidation path), then reads again
        await mms[1]!.munmap(BUF_VA, (BUF_PAGES / 2) * PAGE_4K);
        await mmapAnonymous(mms[1]!, (BUF_PAGES / 2) * PAGE_4K, BUF_VA);
        for (let p = 0; p < BUF_PAGES / 2; p++) await mms[1]!.writeU32(BUF_VA + p * PAGE_4K, 5000 + p);
        count((await runMirrorKernel(sim, pm, sweep(BUF_VA + pm.guests[1]!.off))).data, 1, true);
        // process 2 passes the CPU pointer it has, without the offset
        const raw = (await runMirrorKernel(sim, pm, sweep(BUF_VA))).data;
        for (let p = 0; p < BUF_PAGES; p++) if (raw[p] !== 3000 + p) foreign++;
        return {
          scheme,
          processes,
          roomForMore: extra >= 0,
          faults: pm.faults,
          invalidations: pm.invalidations,
          translations: pm.translations,
          correctReads: correct,
          reads,
          foreignReads: foreign,
          violations: -1, // the oracle compares device VA with CPU VA: it cannot follow an offset
        };
      }
      let faults = 0;
      let invalidations = 0;
      const mirrors: MinimalMirror[] = [];
      for (let i = 0; i < processes; i++) {
        const dev = createGpuDevice(sim, { format: fmt, vramBytes: 2 << 20, counterPrefix: `ctx${i}` });
        attachSys(machine, dev);
        const m = new MinimalMirror(mms[i]!, dev, BUF_VA, BUF_VA + BUF_PAGES * PAGE_4K);
        await m.init();
        mirrors.push(m);
      }
      for (let i = 0; i < processes; i++)
        count((await runMirrorKernel(sim, mirrors[i]!, sweep(BUF_VA))).data, i);
      await mms[1]!.munmap(BUF_VA, (BUF_PAGES / 2) * PAGE_4K);
      await mmapAnonymous(mms[1]!, (BUF_PAGES / 2) * PAGE_4K, BUF_VA);
      for (let p = 0; p < BUF_PAGES / 2; p++) await mms[1]!.writeU32(BUF_VA + p * PAGE_4K, 5000 + p);
      count((await runMirrorKernel(sim, mirrors[1]!, sweep(BUF_VA))).data, 1, true);
      const raw = (await runMirrorKernel(sim, mirrors[2 % processes]!, sweep(BUF_VA))).data;
      for (let p = 0; p < BUF_PAGES; p++) if (raw[p] !== 1000 * ((2 % processes) + 1) + p) foreign++;
      for (const m of mirrors) {
        invalidations += m.zaps;
      }
      for (let i = 0; i < processes; i++) faults += sim.counters.get(`ctx${i}.fault.raised`);
      // each context's page table against its own process: the oracle
      for (let i = 0; i < processes; i++) {
        const o = new CoherenceOracle(mms[i]!, [mirrors[i]!.dev], {
          throwOnViolation: false,
          resolve: identitySysResolver,
        });
        o.checkAll();
        violations += o.violations.length;
      }
      return {
        scheme,
        processes,
        roomForMore: true,
        faults,
        invalidations,
        translations: 0,
        correctReads: correct,
        reads,
        foreignReads: foreign,
        violations,
      };
    });
    rows.push(row);
  }
  return rows;
}

/** Wires a device's SYS aperture to the machine's frames. */
function attachSys(machine: ReturnType<typeof createMachine>, dev: GpuDevice): void {
  const phys = machine.phys;
  const buf = new Uint8Array(4);
  const dv = new DataView(buf.buffer);
  dev.attachSystemMemory({
    read32(pa) {
      phys.readPage(Math.floor(pa / PAGE_4K), pa % PAGE_4K, buf, 0, 4);
      return dv.getUint32(0, true);
    },
    write32(pa, value) {
      dv.setUint32(0, value >>> 0, true);
      phys.writePage(Math.floor(pa / PAGE_4K), pa % PAGE_4K, buf, 0, 4);
    },
  });
}

export { nvMmuV2, nvMmuV3 };
