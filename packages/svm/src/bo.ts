/**
 * Buffer objects: device memory with a lifetime of its own (a GEM object, xe_bo), created on one
 * GPU and bound into GPU VMs with VM_BIND (`vm.ts`) beside the CPU-address mirror. A BO's VRAM is
 * allocated at creation from the device's buddy allocator (2 MiB blocks, 4 KiB for a tail) and
 * freed when the last handle and the last binding are gone (gem_close drops the handle; a binding
 * holds a reference, as a drm_gpuva holds its drm_gem_object).
 *
 * Deviations from xe (Linux 6.15): BOs live in VRAM only and are never evicted or moved (TTM's
 * eviction and system-memory placements are not modelled); the CPU reaches a BO through
 * {@link BufferObject.read32}/{@link BufferObject.write32} (the BAR mapping xe_bo_map_fixed
 * would give), not through the CPU mm.
 *
 * @module
 */
import type { Vram } from '@hmmkit/gpu';
import { ArgumentError, StateError } from '@hmmkit/sim';

const PAGE = 4096;
const BLOCK = 0x200000;

/** One buffer object in VRAM. */
export class BufferObject {
  /** Size in bytes (a multiple of 4 KiB). */
  readonly size: number;
  /** The VRAM it lives in. */
  readonly vram: Vram;
  /** Device id it was created on. */
  readonly deviceId: number;
  /** VRAM address of each 4 KiB page. */
  readonly pagePa: Float64Array;
  private readonly blocks: number[];
  private handleOpen = true;
  private refs = 0;

  private constructor(vram: Vram, deviceId: number, size: number, blocks: number[], pagePa: Float64Array) {
    this.vram = vram;
    this.deviceId = deviceId;
    this.size = size;
    this.blocks = blocks;
    this.pagePa = pagePa;
  }

  /**
   * Models xe_bo_create() with a VRAM placement: `size` bytes (a positive multiple of 4 KiB) of
   * device `deviceId`'s VRAM, zeroed. Returns the BO or -ENOMEM (nothing left allocated).
   */
  static create(vram: Vram, deviceId: number, size: number): BufferObject | number {
    if (!Number.isSafeInteger(size) || size <= 0 || size % PAGE !== 0) {
      throw new ArgumentError('BufferObject.create', 'size', 'must be a positive multiple of 4096', size);
    }
    const blocks: number[] = [];
    const pagePa = new Float64Array(size / PAGE);
    let at = 0;
    while (at < size) {
      const sz = size - at >= BLOCK ? BLOCK : PAGE;
      const pa = vram.alloc(sz);
      if (pa < 0) {
        for (const b of blocks) vram.free(b);
        return pa;
      }
      blocks.push(pa);
      for (let k = 0; k < sz / PAGE; k++) pagePa[at / PAGE + k] = pa + k * PAGE;
      at += sz;
    }
    return new BufferObject(vram, deviceId, size, blocks, pagePa);
  }

  /** Whether the memory is still allocated (a handle or a binding holds it). */
  get alive(): boolean {
    return this.handleOpen || this.refs > 0;
  }

  /** Whether the handle is open (not yet closed). */
  get open(): boolean {
    return this.handleOpen;
  }

  /** Bindings that reference the BO. */
  get bindings(): number {
    return this.refs;
  }

  /** Models gem_close(): drops the handle; the memory goes when no binding holds it. */
  close(): void {
    if (!this.handleOpen) throw new StateError('BufferObject.close', 'the handle is already closed');
    this.handleOpen = false;
    this.release();
  }

  /** @internal A binding takes a reference (the handle must be open). */
  get(): void {
    if (!this.handleOpen) throw new StateError('BufferObject.get', 'the handle is closed');
    this.refs++;
  }

  /**
   * @internal A binding split in two (madvise over part of it) takes a reference for the new
   * half; the handle may be closed already (the existing binding keeps the BO alive).
   */
  getSplit(): void {
    if (!this.alive) throw new StateError('BufferObject.getSplit', 'the BO was freed');
    this.refs++;
  }

  /** @internal A binding drops its reference. */
  put(): void {
    this.refs--;
    this.release();
  }

  private release(): void {
    if (this.alive || this.blocks.length === 0) return;
    for (const b of this.blocks) this.vram.free(b);
    this.blocks.length = 0;
  }

  /** The CPU reads a dword at byte `offset` (through the BO's BAR mapping). */
  read32(offset: number): number {
    return this.vram.read32(this.paOf('BufferObject.read32', offset));
  }

  /** The CPU writes a dword at byte `offset` (through the BO's BAR mapping). */
  write32(offset: number, value: number): void {
    this.vram.write32(this.paOf('BufferObject.write32', offset), value);
  }

  private paOf(fn: string, offset: number): number {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + 4 > this.size || offset % 4 !== 0) {
      throw new ArgumentError(fn, 'offset', 'must be a 4-byte aligned offset inside the BO', offset);
    }
    if (!this.alive) throw new StateError(fn, 'the BO was freed');
    return this.pagePa[Math.floor(offset / PAGE)]! + (offset % PAGE);
  }
}
