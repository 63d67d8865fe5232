/**
 * The driver side of GMEM for a simulated GPU: the `struct gm_mmu` functions and nothing else.
 * Device page-table entries and TLB invalidation (batched into one copy-engine push per call),
 * the VRAM it hands to the core, and page copies. Its size is what the thread's "3,700 lines
 * implementing the MMU functions" stands for (GMEM RFC: the Ascend NPU driver).
 */
import { APERTURE, type DeviceUpdate, type GpuDevice, PAGE_2M, PAGE_4K } from '@hmmkit/gpu';
import type { GmMmu } from './gmem-core.ts';

/** gm_mmu for one GpuDevice. */
export class GpuGmMmu implements GmMmu {
  readonly dev: GpuDevice;
  private readonly vramBytes: number;
  private batch: DeviceUpdate | null = null;

  constructor(dev: GpuDevice, vramBytes: number) {
    this.dev = dev;
    this.vramBytes = vramBytes;
  }

  /** gm_dev_register_physmem(): hands the core `vramBytes` of VRAM in 2 MiB chunks. */
  registerPhysmem(): readonly number[] {
    const out: number[] = [];
    for (let b = 0; b < this.vramBytes; b += PAGE_2M) {
      const pa = this.dev.vram.alloc(PAGE_2M, 1);
      if (pa < 0) break;
      out.push(pa);
    }
    return out;
  }

  private update(): DeviceUpdate {
    this.batch ??= this.dev.beginUpdate('ce');
    return this.batch;
  }

  /** pmap_enter(): device PTEs for [va, va + size) (one 2M PTE or 4K PTEs). */
  pmapEnter(va: number, size: number, pa: number, writable: boolean): void {
    const page = size === PAGE_2M ? PAGE_2M : PAGE_4K;
    this.dev.pageTable.mapContiguous(
      va,
      size,
      page,
      pa,
      { aperture: APERTURE.VID, writable },
      this.update().pt,
    );
  }

  /** pmap_release(): clears the device PTEs of [va, va + size). */
  pmapRelease(va: number, size: number): void {
    this.dev.pageTable.unmap(va, size, this.update().pt);
  }

  /** Pushes the pending page-table writes (one copy-engine batch). */
  pmapCommit(): void {
    this.batch?.end();
    this.batch = null;
  }

  /** tlb_invl(): pushes the pending writes, then invalidates the device TLB for the range. */
  tlbInvl(va: number, size: number): void {
    this.update().tlb.invalidate(va, size);
    this.pmapCommit();
  }

  /** prepare_page(), host → device: one page into VRAM (null: zero-fill). */
  copyIn(pa: number, src: Uint8Array | null): void {
    this.dev.vram.write(pa, src, PAGE_4K);
  }

  /** prepare_page(), device → host: one page out of VRAM. */
  copyOut(pa: number, dst: Uint8Array): void {
    this.dev.vram.read(pa, PAGE_4K, dst);
  }

  /** One copy-engine transfer of `bytes`, waited for. */
  async copyWait(bytes: number, h2d: boolean): Promise<void> {
    const ce = this.dev.copyEngine;
    (h2d ? ce.bytesH2d : ce.bytesD2h).add(bytes);
    await ce.wait(ce.submitD2d(0, 0, bytes));
  }
}
