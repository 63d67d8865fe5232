/**
 * `GpuDevice`: one simulated GPU (format, page table, TLB, VRAM, copy engines, fault buffer,
 * execution engine) plus {@link DeviceUpdate}, the object a driver programs a page-table change
 * through: PTE/PDE writes (BAR0 or one copy-engine push) followed by the batched TLB
 * invalidate, in that order, as a real driver's push + membar + invalidate.
 *
 * @module
 */
import { ArgumentError, type Sim, StateError } from '@hmmkit/sim';
import { CopyEngine } from './copy-engine.ts';
import { type EngineOptions, GpuEngine } from './engine.ts';
import { FaultBatch, FaultBuffer } from './fault-buffer.ts';
import { APERTURE, APERTURE_NAMES, type PtFormat } from './format.ts';
import { PageTable, Translation, WALK } from './page-table.ts';
import { nvMmuV2 } from './presets.ts';
import { PtUpdateBatch, type PtUpdateCounters, type PtUpdateMode, ptUpdateCounters } from './pt-update.ts';
import { TLB_FLAG, Tlb, TlbBatch, type TlbOptions } from './tlb.ts';
import { Vram } from './vram.ts';

/** Options of {@link createGpuDevice}. */
export interface GpuDeviceOptions {
  /** Device id (default 0). */
  readonly id?: number;
  /** Page-table format (default NVIDIA MMU v2). */
  readonly format?: PtFormat;
  /** VRAM bytes, a multiple of 2 MiB (default 256 MiB). */
  readonly vramBytes?: number;
  readonly tlb?: TlbOptions;
  /** Fault buffer ring entries (default 8192). */
  readonly faultBufferEntries?: number;
  /** Copy engines (default 2). */
  readonly copyEngines?: number;
  readonly engine?: EngineOptions;
  /** Physical base of the page-table pool (default: the format's). */
  readonly tablePoolBase?: number;
  /** Prefix of this device's counters (default 'gpu'; use e.g. 'gpu1' to keep devices apart). */
  readonly counterPrefix?: string;
  /**
   * Use this VRAM instead of allocating one (`vramBytes` is then ignored): a second context of the
   * same GPU — its own page table, TLB, fault buffer and engine (an address space, as an ASID or
   * VMID names one) over the one physical memory.
   */
  readonly vram?: Vram;
}

/** 32-bit word access to a memory (VRAM has it; system memory and peers are attached). */
export interface Memory32 {
  read32(pa: number): number;
  write32(pa: number, value: number): void;
}

/** A cached translation the page table no longer backs (see {@link GpuDevice.staleTlbEntries}). */
export interface StaleTlbEntry {
  readonly va: number;
  readonly size: number;
  readonly pa: number;
  readonly reason: 'unmapped' | 'remapped' | 'write-protected' | 'atomic-disabled';
}

/** A page-table update in progress on one device: writes first, then TLB invalidation. */
export class DeviceUpdate {
  /** Pass to PageTable.map / unmap / split / setLeafState. */
  readonly pt: PtUpdateBatch;
  /** Add the ranges whose translations changed. */
  readonly tlb: TlbBatch;
  constructor(pt: PtUpdateBatch, tlb: TlbBatch) {
    this.pt = pt;
    this.tlb = tlb;
  }
  /**
   * Commits the page-table writes (one copy-engine push in CE mode), then issues the TLB
   * invalidates (per range, or one full flush past tlbBatchMaxRanges). Returns the number of
   * invalidate operations.
   */
  end(): number {
    this.pt.commit();
    return this.tlb.end();
  }
}

/** One simulated GPU. */
export class GpuDevice {
  readonly id: number;
  readonly sim: Sim;
  readonly format: PtFormat;
  readonly pageTable: PageTable;
  readonly tlb: Tlb;
  readonly vram: Vram;
  readonly copyEngine: CopyEngine;
  readonly faultBuffer: FaultBuffer;
  readonly engine: GpuEngine;
  /** Prefix of this device's counters. */
  readonly counterPrefix: string;
  /** The page-table update counters, looked up once for every {@link beginUpdate}. */
  private readonly ptCounters: PtUpdateCounters;

  constructor(sim: Sim, options: GpuDeviceOptions = {}) {
    const id = options.id ?? 0;
    if (!Number.isInteger(id) || id < 0)
      throw new ArgumentError('GpuDevice', 'options.id', 'must be a non-negative integer', id);
    this.id = id;
    this.sim = sim;
    this.format = options.format ?? nvMmuV2;
    const px = options.counterPrefix ?? 'gpu';
    this.counterPrefix = px;
    this.ptCounters = ptUpdateCounters(sim, px);
    this.pageTable = new PageTable(
      sim,
      this.format,
      options.tablePoolBase === undefined
        ? { counterPrefix: px }
        : { poolBase: options.tablePoolBase, counterPrefix: px },
    );
    const shifts = this.format.pageSizes
      .map((s) => Math.log2(s))
      .filter((s) => s === 12 || s === 16 || s === 21);
    this.tlb = new Tlb(sim, { pageShifts: shifts, counterPrefix: px, ...options.tlb });
    this.vram = options.vram ?? new Vram(options.vramBytes ?? 256 * 2 ** 20);
    this.copyEngine = new CopyEngine(sim, this.vram, options.copyEngines ?? 2, px);
    this.faultBuffer = new FaultBuffer(
      sim,
      options.faultBufferEntries === undefined
        ? { counterPrefix: px }
        : { capacity: options.faultBufferEntries, counterPrefix: px },
    );
    this.engine = new GpuEngine(sim, this.pageTable, this.tlb, this.faultBuffer, options.engine);
    this.engine.setMemoryPort({
      read32: (aperture, pa, peerId) => this.route('read32', aperture, peerId).read32(pa),
      write32: (aperture, pa, value, peerId) => this.route('write32', aperture, peerId).write32(pa, value),
    });
  }

  private systemMemory: Memory32 | null = null;
  private readonly peers = new Map<number, Memory32>();

  /**
   * Connects the SYS apertures (coherent and non-coherent) to system memory, e.g. the CPU mm's
   * physical frames, so kernels with data can touch pages mapped from system memory.
   */
  attachSystemMemory(memory: Memory32 | null): void {
    this.systemMemory = memory;
  }

  /** Connects PEER aperture `peerId` to another device's memory (e.g. `other.vram`). */
  attachPeer(peerId: number, memory: Memory32): void {
    if (!Number.isInteger(peerId) || peerId < 0 || peerId > 7) {
      throw new ArgumentError('GpuDevice.attachPeer', 'peerId', 'must be an integer in [0, 7]', peerId);
    }
    this.peers.set(peerId, memory);
  }

  private route(fn: string, aperture: number, peerId: number): Memory32 {
    if (aperture === APERTURE.VID) return this.vram;
    const m = aperture === APERTURE.PEER ? this.peers.get(peerId) : this.systemMemory;
    if (m === undefined || m === null) {
      throw new StateError(
        `GpuDevice.${fn}`,
        `no memory attached for aperture ${APERTURE_NAMES[aperture]} (peer ${peerId})`,
      );
    }
    return m;
  }

  /** Starts a page-table update: `'ce'` (default, one copy-engine push) or `'bar0'`. */
  beginUpdate(mode: PtUpdateMode = 'ce'): DeviceUpdate {
    return new DeviceUpdate(
      new PtUpdateBatch(this.sim, mode, this.counterPrefix, this.ptCounters),
      new TlbBatch(this.tlb),
    );
  }

  /**
   * Coherence check of the TLB against the page table: every cached translation that the page
   * table no longer backs (unmapped, another physical page, or cached writable/atomic where the
   * PTE no longer allows it). Empty when every change was followed by its TLB invalidate.
   */
  staleTlbEntries(): StaleTlbEntry[] {
    const out: StaleTlbEntry[] = [];
    const tr = new Translation();
    this.tlb.forEachEntry((va, size, pa, flags) => {
      for (let a = va; a < va + size; a += 4096) {
        const st = this.pageTable.translateInto(a, tr);
        let why: StaleTlbEntry['reason'] | null = null;
        if (st !== WALK.MAPPED) why = 'unmapped';
        else if (tr.pa !== pa + (a - va)) why = 'remapped';
        else if ((flags & TLB_FLAG.WRITABLE) !== 0 && !tr.writable) why = 'write-protected';
        else if ((flags & TLB_FLAG.ATOMIC) !== 0 && !tr.atomic) why = 'atomic-disabled';
        if (why !== null) {
          out.push({ va, size, pa, reason: why });
          return;
        }
      }
    });
    return out;
  }

  /** A fault batch sized for this device (`faultBatchMax` entries). */
  newFaultBatch(): FaultBatch {
    return new FaultBatch(this.sim.costs.faultBatchMax);
  }
}

/** Creates a {@link GpuDevice}. */
export function createGpuDevice(sim: Sim, options: GpuDeviceOptions = {}): GpuDevice {
  return new GpuDevice(sim, options);
}
