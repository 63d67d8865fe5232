/**
 * GPU VMs: several address spaces on one GPU, and buffer objects bound beside the mirror.
 *
 * - {@link GpuVmDevice} is one physical GPU: its VRAM, and one SVM device-memory pool (one
 *   drm_pagemap, one pgmap owner) that every VM on the device allocates from, with one LRU over
 *   all of them — so one process's pressure evicts another's pages (xe: TTM's LRU is per device,
 *   and drm_pagemap_evict_to_ram moves whatever the victim holds). A victim chunk's pages are
 *   evicted through the VM that allocated each (the pool's reverse map carries a VM tag, as a
 *   drm_pagemap_devmem allocation records its mm).
 * - {@link GpuVm} is one GPU VM (xe_vm, one per process or open file; several per mm are allowed,
 *   as IGT's threads do): its own context of the device — page table (its ASID), TLB, fault
 *   buffer and engine — a {@link GpuSvm} over the process's mm (its own notifiers, ranges and
 *   invalidations) and its own coherence oracle. Its VA space is drm_gpuvm-like: spans of
 *   CPU-address mirror (DRM_XE_VM_BIND_FLAG_CPU_ADDR_MIRROR; created over the whole VA unless
 *   `mirror: false`) and spans where a {@link BufferObject} is bound (VM_BIND MAP). Mirror ranges
 *   never leave their mirror span; a BO span is mapped at bind time and never faults.
 *
 * Rules (xe_vm_bind_ioctl, Linux 6.15): binding over mirror space that still has SVM ranges, or
 * unbinding such mirror space, returns -EBUSY (xe_svm_has_mapping); garbage is collected first.
 * A CPU fault on a device-private page from a process with no VM on the device (a forked child
 * reading a page COW-shared with its parent) migrates it through the VM that allocated the page,
 * as drm_pagemap_migrate_to_ram works from the page's zone_device_data.
 * Deviations: a BO may not be bound over another BO, and a BO binding is removed whole (drm_gpuvm
 * would split it: REMAP); both throw an ArgumentError here and change nothing. The context's TLB
 * and fault buffer are the VM's own (hardware shares them, tagged by ASID; xe finds the VM of a
 * fault by its ASID). VRAM for BOs and for the SVM pool is split at device creation (`svmBytes`):
 * BOs do not evict SVM pages, nor SVM pages BOs.
 *
 * @module
 */
import { APERTURE, createGpuDevice, type GpuDevice, type PtFormat, patIndexValid } from '@hmmkit/gpu';
import { type Machine, type Mm, VM_FAULT_SIGBUS } from '@hmmkit/mm';
import { ArgumentError, type Counter, Errno, type Sim, StateError } from '@hmmkit/sim';
import { ATOMIC_ACCESS } from './atomic.ts';
import type { AttrUpdate as AttrUpdateOf } from './attr-map.ts';
import { deviceLoc, LOC, type RangeAttrs } from './attrs.ts';
import { adviseAndZap } from './bind.ts';
import { BufferObject } from './bo.ts';
import { SvmDeviceMemory } from './devmem.ts';
import type { EvictionPolicy } from './eviction.ts';
import { GpuSvm, type GpuSvmOptions } from './gpusvm.ts';
import { evictChunk, migrateSpanToRam, migrateToRam } from './migrate.ts';
import { CoherenceOracle } from './oracle.ts';
import { type PageMask, pageMaskNew, pageMaskSet, pageMaskTest } from './page-mask.ts';
import { attrsChanged, garbageCollectLocked } from './range.ts';
import type { SvmWorld } from './world.ts';

export { BufferObject } from './bo.ts';

const PAGE = 4096;

/** Options of {@link GpuVmDevice}. */
export interface GpuVmDeviceOptions {
  /** Device id (default 0); counters are `gpu<id>.vm<n>.*` per VM. */
  readonly id?: number;
  /** VRAM bytes (default 64 MiB). */
  readonly vramBytes?: number;
  /** VRAM given to the shared SVM pool, a multiple of 2 MiB (default 3/4 of VRAM); the rest is for BOs. */
  readonly svmBytes?: number;
  /** Page-table format (default the gpu package's). */
  readonly format?: PtFormat;
  /** Eviction policy of the shared pool (default LRU chunk). */
  readonly eviction?: EvictionPolicy;
}

/** Options of {@link GpuVmDevice.createVm}. */
export interface GpuVmOptions
  extends Pick<
    GpuSvmOptions,
    'granule' | 'notifiers' | 'largePages' | 'faultWrite' | 'thrashing' | 'gpuVaOffset'
  > {
  /** When a GPU fault migrates to VRAM (default 'fault', as xe). */
  readonly migrate?: 'fault' | 'preferred' | 'never';
  /** Bind the CPU-address mirror over the whole VA at creation (default true). */
  readonly mirror?: boolean;
  /** Make the VM's oracle throw at the first violation (default false: it records them). */
  readonly throwOnViolation?: boolean;
}

/** One span of a VM's VA (one xe_vma): mirror, or a BO bound at `boOffset`. */
interface VaSpan {
  start: number;
  end: number;
  bo: BufferObject | null;
  boOffset: number;
  /** A BO VMA's attributes (a mirror VMA's live in the GpuSvm's attribute map). */
  pat: number;
  atomic: number;
}

/**
 * One xe madvise (struct drm_xe_madvise): the attribute and its value. `preferredLoc` is
 * `LOC.SYSMEM` (DRM_XE_PREFERRED_LOC_DEFAULT_SYSTEM), the device's location (`deviceLoc(0)`,
 * DEFAULT_DEVICE) or `LOC.UNDEFINED`; `atomic` an `ATOMIC_ACCESS` value; `pat` a PAT index.
 */
export type MadviseOp =
  | { readonly type: 'preferredLoc'; readonly loc: number }
  | { readonly type: 'atomic'; readonly value: number }
  | { readonly type: 'pat'; readonly index: number };

/** One VMA's attributes, as xe_vm_query_mem_range_attrs() reports them (struct drm_xe_mem_range_attr). */
export interface VmaAttrs {
  readonly start: number;
  readonly end: number;
  /** 'mirror' (CPU-address mirror) or 'bo'. */
  readonly kind: 'mirror' | 'bo';
  readonly preferredLoc: number;
  readonly atomic: number;
  readonly pat: number;
}

/** One physical GPU whose VRAM and SVM pool are shared by several {@link GpuVm}s. */
export class GpuVmDevice {
  readonly sim: Sim;
  readonly machine: Machine;
  /** The physical device: owns the VRAM (its own page table and engine are not used by VMs). */
  readonly gpu: GpuDevice;
  /** The pgmap owner of the device's SVM pages (xe: one per device, shared by its VMs). */
  readonly owner: object = {};
  /** The SVM device-memory pool every VM allocates from. */
  readonly pool: SvmDeviceMemory;
  readonly eviction: EvictionPolicy | undefined;
  /** Pages evicted from one VM to make room for another (`gpu<id>.vm.evict.foreign.pages`). */
  readonly foreignEvictions: Counter;
  /** One coherence oracle per process: it checks every VM of that mm (one data shadow). */
  private readonly oracles = new Map<Mm, CoherenceOracle>();
  private readonly byDev = new Map<GpuDevice, GpuVm>();
  /** VMs by tag (index 0 unused; null after destroy). */
  private readonly vms: (GpuVm | null)[] = [null];

  constructor(machine: Machine, opts: GpuVmDeviceOptions = {}) {
    this.sim = machine.sim;
    this.machine = machine;
    const id = opts.id ?? 0;
    const vramBytes = opts.vramBytes ?? 64 << 20;
    this.gpu = createGpuDevice(machine.sim, {
      id,
      vramBytes,
      counterPrefix: `gpu${id}`,
      ...(opts.format === undefined ? {} : { format: opts.format }),
    });
    const svmBytes = opts.svmBytes ?? Math.floor((vramBytes * 3) / 4 / 0x200000) * 0x200000;
    this.eviction = opts.eviction;
    this.pool = new SvmDeviceMemory(machine, this.gpu, this.owner, svmBytes, async (vmf) => {
      const vm = this.vms.find((v) => v !== null && v.mm === vmf.mm && v.svm.rangeFind(vmf.address) !== null);
      const any = vm ?? this.vms.find((v) => v !== null && v.mm === vmf.mm);
      if (any !== undefined && any !== null) return migrateToRam(any.svm, vmf);
      // A process with no VM of its own (a forked child reading a COW-shared device-private page):
      // drm_pagemap_migrate_to_ram works from the page's zone_device_data, not from a VM of the
      // faulting mm, so migrate through the VM that allocated the page.
      const owner = this.vms[this.pool.rmapTag[vmf.page - this.pool.mem.start] ?? 0];
      if (owner === undefined || owner === null) return VM_FAULT_SIGBUS; // its VM is gone: an orphan
      return migrateToRam(owner.svm, vmf);
    });
    this.pool.evictor = (svm, _devIndex, chunk, pages) => this.evict(svm, chunk, pages);
    this.foreignEvictions = machine.sim.counters.counter(`gpu${id}.vm.evict.foreign.pages`);
  }

  /** The live VMs. */
  get liveVms(): readonly GpuVm[] {
    return this.vms.filter((v): v is GpuVm => v !== null);
  }

  /**
   * Models xe_vm_create() in fault mode: a new GPU VM over `mm` (a process, or another open file
   * of the same process), with its own device context and GpuSvm, and its coherence oracle attached.
   */
  async createVm(mm: Mm, opts: GpuVmOptions = {}): Promise<GpuVm> {
    if (mm.machine !== this.machine) {
      throw new ArgumentError('GpuVmDevice.createVm', 'mm', 'must live on the device’s machine', mm.id);
    }
    let tag = this.vms.indexOf(null, 1);
    if (tag < 0) tag = this.vms.length;
    if (tag > 255) throw new StateError('GpuVmDevice.createVm', 'at most 255 VMs per device');
    let oracle = this.oracles.get(mm);
    const fresh = oracle === undefined;
    oracle ??= new CoherenceOracle(mm, [], {
      resolve: (dev, m, va) => this.byDev.get(dev)?.svm.resolver(dev, m, va) ?? -1,
      unmirrored: (dev, va) => this.byDev.get(dev)?.boAt(va) != null,
      gpuVaOffset: (dev) => this.byDev.get(dev)?.svm.gpuVaOffset ?? 0,
      throwOnViolation: opts.throwOnViolation ?? false,
    });
    this.oracles.set(mm, oracle);
    const vm = new GpuVm(this, mm, tag, opts, oracle);
    this.vms[tag] = vm;
    this.byDev.set(vm.dev, vm);
    oracle.addDevice(vm.dev);
    if (fresh) await oracle.attach();
    return vm;
  }

  /** @internal Forgets a destroyed VM. */
  drop(vm: GpuVm): void {
    if (this.vms[vm.tag] === vm) this.vms[vm.tag] = null;
  }

  /** Models xe_bo_create() in this device's VRAM (BO memory, outside the SVM pool); -ENOMEM when full. */
  createBo(size: number): BufferObject | number {
    return BufferObject.create(this.gpu.vram, this.gpu.id, size);
  }

  /**
   * @internal Moves every device page `vm` allocated back to system memory (through its GpuSvm),
   * so its process's CPU faults never need the destroyed VM. Returns pages moved.
   */
  async evictAllOf(vm: GpuVm): Promise<number> {
    const sd = this.pool;
    let moved = 0;
    for (let c = 0; c < sd.chunkPa.length; c++) {
      let mask: PageMask | null = null;
      for (let k = 0; k < 512; k++) {
        const p = c * 512 + k;
        if (sd.rmapVa1[p] === 0 || sd.rmapTag[p] !== vm.tag) continue;
        mask ??= pageMaskNew();
        pageMaskSet(mask, k);
      }
      if (mask !== null) moved += await vm.svm.evictChunk(0, c, mask);
    }
    return moved;
  }

  /**
   * Evicts a victim chunk of the shared pool: each VM's pages through that VM's GpuSvm (its
   * notifier lock and ranges), by pfn with migrate_device_range as drm_pagemap_evict_to_ram does,
   * so one process's fault never takes another process's mmap lock.
   */
  private async evict(caller: unknown, chunk: number, pages: PageMask | null): Promise<number> {
    const sd = this.pool;
    let moved = 0;
    for (let t = 1; t < this.vms.length; t++) {
      let mask: PageMask | null = null;
      for (let k = 0; k < 512; k++) {
        const p = chunk * 512 + k;
        if (sd.rmapVa1[p] === 0 || sd.rmapTag[p] !== t || (pages !== null && !pageMaskTest(pages, k)))
          continue;
        mask ??= pageMaskNew();
        pageMaskSet(mask, k);
      }
      const vm = this.vms[t];
      if (mask === null || vm === null || vm === undefined) continue;
      // by pfn (drm_pagemap_evict_to_ram): never the victim process's mmap lock
      const m = await evictChunk(vm.svm, 0, chunk, mask, false);
      if (vm.svm !== caller) this.foreignEvictions.value += m;
      moved += m;
    }
    return moved;
  }
}

/** One GPU VM on a {@link GpuVmDevice}: mirror spans and bound buffer objects. */
export class GpuVm {
  readonly device: GpuVmDevice;
  readonly mm: Mm;
  /** Tag of the VM on its device (1..255); its counters are `gpu<id>.vm<tag>.*`. */
  readonly tag: number;
  /** The VM's context of the device: its page table (ASID), TLB, fault buffer and engine. */
  readonly dev: GpuDevice;
  /** The SVM framework of the VM's mirror. */
  readonly svm: GpuSvm;
  /**
   * The coherence oracle of the VM's process, shared by every VM of that mm (BO spans are not
   * mirrored and not checked against the CPU; the GPU_RO rule is not applied: its attribute is
   * per VM).
   */
  readonly oracle: CoherenceOracle;
  /** The VM as an {@link SvmWorld} (one device), for `runKernel` and the scenario helpers. */
  readonly world: SvmWorld;
  /**
   * The PAT index VM_BIND gives a new VMA (IGT's DEFAULT_PAT_INDEX: the table's `wb`, 2 on Xe2;
   * 0 where the format has no PAT table). Every device PTE of the VMA carries its VMA's index.
   */
  readonly defaultPat: number;
  /** VA spans in order: mirror (bo null) or a bound BO. */
  private readonly spans: VaSpan[] = [];
  private destroyed = false;

  /** Use {@link GpuVmDevice.createVm}. */
  constructor(device: GpuVmDevice, mm: Mm, tag: number, opts: GpuVmOptions, oracle: CoherenceOracle) {
    this.device = device;
    this.mm = mm;
    this.tag = tag;
    const gpu = device.gpu;
    this.dev = createGpuDevice(device.sim, {
      id: gpu.id,
      vram: gpu.vram,
      format: gpu.format,
      counterPrefix: `gpu${gpu.id}.vm${tag}`,
    });
    this.svm = new GpuSvm(mm, [this.dev], {
      ...opts,
      devmem: {
        migrate: opts.migrate ?? 'fault',
        shared: { pools: [device.pool], owner: device.owner, tag },
        ...(device.eviction === undefined ? {} : { eviction: device.eviction }),
      },
    });
    this.svm.attachSystemMemory();
    this.defaultPat = gpu.format.patTable?.named.wb ?? 0;
    if (opts.mirror ?? true) {
      this.spans.push(this.mirror(this.vaStart, this.vaEnd));
      if (this.defaultPat !== 0)
        this.svm.attrs.advise(this.svm.mmStart, this.svm.mmEnd, { pat: this.defaultPat });
    }
    const off = this.svm.gpuVaOffset;
    // GpuSvm asks with a CPU address; spans are GPU VA (CPU VA + gpuVaOffset)
    this.svm.mirrorSpan = (va) => {
      const s = this.spanAt(va + off);
      if (s === null || s.bo !== null) return null;
      return off === 0 ? s : { start: s.start - off, end: s.end - off };
    };
    this.oracle = oracle;
    this.world = { sim: device.sim, mm, devs: [this.dev], svm: this.svm, oracle: this.oracle };
  }

  /** Start of the VM's mirrorable GPU VA (the mirror's start plus `gpuVaOffset`). */
  get vaStart(): number {
    return this.svm.mmStart + this.svm.gpuVaOffset;
  }

  /** End of the VM's GPU VA (the mirror's end plus `gpuVaOffset`, within the device's VA bits). */
  get vaEnd(): number {
    return Math.min(this.svm.mmEnd + this.svm.gpuVaOffset, 2 ** this.dev.format.vaBits);
  }

  /** The BO bound at `va` and the offset in it, or null (mirror or nothing). */
  boAt(va: number): { readonly bo: BufferObject; readonly offset: number } | null {
    const s = this.spanAt(va);
    return s === null || s.bo === null ? null : { bo: s.bo, offset: s.boOffset + (va - s.start) };
  }

  /** Whether `va` is in CPU-address-mirror space. */
  isMirrored(va: number): boolean {
    const s = this.spanAt(va);
    return s !== null && s.bo === null;
  }

  /**
   * Models DRM_XE_VM_BIND_OP_MAP of a BO (drm_gpuvm_sm_map over mirror space or a hole): binds
   * `[boOffset, boOffset + size)` of `bo` at `[va, va + size)` and maps it now. Returns 0, or
   * -EBUSY when mirror space there still has SVM ranges (nothing changed). Throws an ArgumentError
   * (nothing changed) for unaligned or out-of-bounds arguments, a BO of another device or a closed
   * handle, or a span overlapping another BO's binding.
   */
  async bindBo(bo: BufferObject, boOffset: number, va: number, size: number): Promise<number> {
    const fn = 'GpuVm.bindBo';
    this.checkSpan(fn, va, size);
    if (!(bo instanceof BufferObject) || bo.vram !== this.dev.vram) {
      throw new ArgumentError(fn, 'bo', 'must be a BO of this VM’s device', bo);
    }
    if (!bo.open) throw new ArgumentError(fn, 'bo', 'handle is closed', bo);
    if (
      !Number.isSafeInteger(boOffset) ||
      boOffset < 0 ||
      boOffset % PAGE !== 0 ||
      boOffset + size > bo.size
    ) {
      throw new ArgumentError(fn, 'boOffset', 'must be page aligned with the span inside the BO', boOffset);
    }
    // the SVM lock: no GPU fault is between its mirror check and its range insert meanwhile
    await this.svm.lock.lock();
    try {
      for (const s of this.spans) {
        if (s.bo !== null && s.start < va + size && va < s.end) {
          throw new ArgumentError(fn, 'va', 'overlaps a bound BO (unbind it or map the mirror first)', va);
        }
      }
      if (await this.mirrorBusyLocked(va, va + size)) return -Errno.EBUSY;
      bo.get();
      this.carve(va, va + size);
      const span: VaSpan = { start: va, end: va + size, bo, boOffset, pat: this.defaultPat, atomic: 0 };
      this.insert(span);
      this.mapBo(span);
    } finally {
      this.svm.lock.unlock();
    }
    return 0;
  }

  /**
   * Programs the VM's PTEs of a BO binding with its PAT index (one batched update). A VRAM BO's
   * PTEs enable atomics unless the VMA's atomic attribute is CPU (xe_atomic_for_vram).
   */
  private mapBo(s: VaSpan): void {
    const bo = s.bo!;
    const u = this.dev.beginUpdate(this.svm.ptUpdate);
    const atomic = s.atomic !== ATOMIC_ACCESS.CPU;
    for (let va = s.start; va < s.end; va += PAGE) {
      this.dev.pageTable.map(
        va,
        PAGE,
        bo.pagePa[(s.boOffset + va - s.start) / PAGE]!,
        { aperture: APERTURE.VID, writable: true, atomic, pat: s.pat },
        u.pt,
      );
    }
    u.end();
  }

  /**
   * Models DRM_XE_VM_BIND_OP_MAP with DRM_XE_VM_BIND_FLAG_CPU_ADDR_MIRROR: `[va, va + size)`
   * becomes mirror space; BO bindings inside it are unbound (each must lie wholly inside). Returns 0.
   */
  async bindMirror(va: number, size: number): Promise<number> {
    const fn = 'GpuVm.bindMirror';
    this.checkSpan(fn, va, size);
    this.checkWholeBos(fn, va, va + size);
    this.unbindBosIn(va, va + size);
    this.carve(va, va + size);
    const span = this.mirror(va, va + size);
    this.insert(span);
    // a new VMA has default attributes (xe_vma_create): the bind's PAT index, no preferred location
    const off = this.svm.gpuVaOffset;
    await adviseAndZap(
      this.svm,
      va - off,
      va + size - off,
      { pat: this.defaultPat, preferredLoc: LOC.UNDEFINED },
      (a) => (a.pat ?? 0) * 64 + a.preferredLoc + 1,
    );
    this.mergeAround(span);
    return 0;
  }

  /**
   * Models DRM_XE_VM_BIND_OP_UNMAP: removes BO bindings (each wholly inside) and mirror space in
   * `[va, va + size)`. Returns 0, or -EBUSY when the mirror there still has SVM ranges (nothing
   * changed): IGT's unbind_system_allocator() after execs that left ranges.
   */
  async unbind(va: number, size: number): Promise<number> {
    const fn = 'GpuVm.unbind';
    this.checkSpan(fn, va, size);
    this.checkWholeBos(fn, va, va + size);
    await this.svm.lock.lock();
    try {
      if (await this.mirrorBusyLocked(va, va + size)) return -Errno.EBUSY;
      this.unbindBosIn(va, va + size);
      this.carve(va, va + size);
    } finally {
      this.svm.lock.unlock();
    }
    return 0;
  }

  /**
   * Models xe_vm_madvise_ioctl(): sets one attribute on every VMA of `[va, va + size)`, first
   * splitting the VMAs at `va` and `va + size` (xe_vm_alloc_madvise_vma). Mirror VMAs keep their
   * attributes in the GpuSvm's attribute map, so a changed attribute zaps their ranges' PTEs and
   * the next fault binds under it; an SVM range straddling a new VMA boundary is migrated back to
   * system memory and removed (xe_svm_unmap_address_range). BO VMAs take atomic and PAT (not the
   * preferred location: xe's TODO) and are rebound at once with the new PTEs. Returns the number
   * of VMAs whose attribute changed.
   *
   * Throws ArgumentError with nothing changed for: a span not page aligned or outside the VM; a
   * bad value (an atomic mode above CPU, a PAT index the format's table does not define — xe:
   * coh_mode 0 — or a location other than UNDEFINED, SYSMEM and this device); a range with no
   * VMA (xe returns 0 there); GLOBAL or CPU atomics over a BO VMA (VRAM-only BOs:
   * check_bo_args_are_sane's -EINVAL, which xe returns after the split, hmmkit before it).
   */
  async madvise(va: number, size: number, op: MadviseOp): Promise<number> {
    const fn = 'GpuVm.madvise';
    this.checkSpan(fn, va, size);
    const end = va + size;
    if (op === null || typeof op !== 'object') throw new ArgumentError(fn, 'op', 'must be a MadviseOp', op);
    if (op.type === 'atomic') {
      if (!Number.isInteger(op.value) || op.value < ATOMIC_ACCESS.UNDEFINED || op.value > ATOMIC_ACCESS.CPU)
        throw new ArgumentError(fn, 'op.value', 'must be an ATOMIC_ACCESS value (0..3)', op.value);
    } else if (op.type === 'pat') {
      if (!patIndexValid(this.dev.format, op.index))
        throw new ArgumentError(
          fn,
          'op.index',
          `must be a PAT index the ${this.dev.format.name} table defines`,
          op.index,
        );
    } else if (op.type === 'preferredLoc') {
      if (op.loc !== LOC.UNDEFINED && op.loc !== LOC.SYSMEM && op.loc !== deviceLoc(0))
        throw new ArgumentError(fn, 'op.loc', 'must be LOC.UNDEFINED, LOC.SYSMEM or deviceLoc(0)', op.loc);
    } else throw new ArgumentError(fn, 'op.type', "must be 'preferredLoc', 'atomic' or 'pat'", op);
    const hit = this.spans.filter((s) => s.start < end && va < s.end);
    if (hit.length === 0) throw new ArgumentError(fn, 'va', 'must overlap a bound VMA (mirror or BO)', va);
    if (op.type === 'atomic' && (op.value === ATOMIC_ACCESS.GLOBAL || op.value === ATOMIC_ACCESS.CPU)) {
      if (hit.some((s) => s.bo !== null)) {
        throw new ArgumentError(
          fn,
          'op.value',
          'GLOBAL and CPU atomics need a BO with a system-memory placement',
          op.value,
        );
      }
    }
    await this.svm.lock.lock();
    try {
      await this.splitAtLocked(va);
      await this.splitAtLocked(end);
    } finally {
      this.svm.lock.unlock();
    }
    const off = this.svm.gpuVaOffset;
    let changed = 0;
    for (const s of this.spans.filter((x) => x.start < end && va < x.end)) {
      if (s.bo === null) {
        const [update, key]: [AttrUpdateOf, (a: RangeAttrs) => number] =
          op.type === 'atomic'
            ? [{ atomic: op.value }, (a) => a.atomic ?? -1]
            : op.type === 'pat'
              ? [{ pat: op.index }, (a) => a.pat ?? 0]
              : [{ preferredLoc: op.loc }, (a) => a.preferredLoc];
        const before = this.svm.attrs.segments(s.start - off, s.end - off);
        await adviseAndZap(this.svm, s.start - off, s.end - off, update, key);
        const now = key(this.svm.attrs.lookup(s.start - off)); // one value over the VMA now
        if (before.some((b) => key(b.attrs) !== now)) changed++;
      } else if (op.type !== 'preferredLoc') {
        const v = op.type === 'atomic' ? op.value : op.index;
        if ((op.type === 'atomic' ? s.atomic : s.pat) === v) continue;
        if (op.type === 'atomic') s.atomic = v;
        else s.pat = v;
        this.mapBo(s);
        changed++;
      }
    }
    return changed;
  }

  /**
   * Models xe_vm_query_mem_range_attrs() (DRM_IOCTL_XE_VM_QUERY_MEM_RANGE_ATTRS): the attributes
   * of every VMA overlapping `[va, va + size)`, in VA order (a mirror VMA's read at its start).
   */
  memRangeAttrs(va: number, size: number): VmaAttrs[] {
    this.checkSpan('GpuVm.memRangeAttrs', va, size);
    const off = this.svm.gpuVaOffset;
    return this.spans
      .filter((s) => s.start < va + size && va < s.end)
      .map((s) => {
        if (s.bo !== null) {
          return {
            start: s.start,
            end: s.end,
            kind: 'bo',
            preferredLoc: LOC.UNDEFINED,
            atomic: s.atomic,
            pat: s.pat,
          };
        }
        const a = this.svm.attrs.lookup(s.start - off);
        return {
          start: s.start,
          end: s.end,
          kind: 'mirror',
          preferredLoc: a.preferredLoc,
          atomic: a.atomic ?? ATOMIC_ACCESS.UNDEFINED,
          pat: a.pat ?? 0,
        };
      });
  }

  /**
   * Models xe_vm_destroy(): migrates the VM's SVM pages in VRAM back to system memory, removes
   * every SVM range and BO binding (dropping their BO references); the VM is gone from its device.
   */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await this.device.evictAllOf(this); // the VM's VRAM goes back to the process first
    await this.svm.fini();
    this.unbindBosIn(0, Number.MAX_SAFE_INTEGER);
    this.spans.length = 0;
    this.device.drop(this);
  }

  // ------------------------------------------------------------------------------- internals

  private checkSpan(fn: string, va: number, size: number): void {
    if (this.destroyed) throw new StateError(fn, 'the VM was destroyed');
    if (!Number.isSafeInteger(va) || va < 0 || va % PAGE !== 0) {
      throw new ArgumentError(fn, 'va', 'must be a page-aligned uint', va);
    }
    if (!Number.isSafeInteger(size) || size <= 0 || size % PAGE !== 0 || va + size > this.vaEnd) {
      throw new ArgumentError(fn, 'size', 'must be a positive multiple of 4096 inside the VM', size);
    }
  }

  private checkWholeBos(fn: string, start: number, end: number): void {
    for (const s of this.spans) {
      if (s.bo !== null && s.start < end && start < s.end && (s.start < start || s.end > end)) {
        throw new ArgumentError(
          fn,
          'size',
          'must cover a bound BO wholly (partial unbinds are not modelled)',
          s.start,
        );
      }
    }
  }

  /** Whether mirror space in `[start, end)` holds SVM ranges, after garbage collection (SVM lock held). */
  private async mirrorBusyLocked(start: number, end: number): Promise<boolean> {
    await garbageCollectLocked(this.svm);
    const off = this.svm.gpuVaOffset;
    return this.svm.ranges.some((r) => !r.unmapped && r.start + off < end && start < r.end + off);
  }

  private unbindBosIn(start: number, end: number): void {
    const gone = this.spans.filter((s) => s.bo !== null && s.start >= start && s.end <= end);
    if (gone.length === 0) return;
    const u = this.dev.beginUpdate(this.svm.ptUpdate);
    for (const s of gone) {
      this.dev.pageTable.unmap(s.start, s.end - s.start, u.pt);
      u.tlb.invalidate(s.start, s.end - s.start);
    }
    u.end();
    for (const s of gone) {
      this.spans.splice(this.spans.indexOf(s), 1);
      s.bo!.put();
    }
  }

  /**
   * Splits the VMA containing `va` at `va` (SVM lock held): a BO VMA into two bindings of the BO
   * (the new one takes a BO reference, as each drm_gpuva does); a mirror VMA into two mirrors,
   * after migrating back and removing every SVM range that straddles `va`.
   */
  private async splitAtLocked(va: number): Promise<void> {
    const s = this.spanAt(va);
    if (s === null || s.start === va) return;
    if (s.bo === null) {
      const cpu = va - this.svm.gpuVaOffset;
      const r = this.svm.rangeFind(cpu);
      if (r !== null && r.start < cpu && !r.unmapped) {
        if (this.svm.devmem.length > 0) await migrateSpanToRam(this.svm, r.start, r.end);
        attrsChanged(this.svm, cpu, cpu);
        await garbageCollectLocked(this.svm);
      }
    } else s.bo.getSplit();
    const tail: VaSpan = { ...s, start: va, boOffset: s.boOffset + (va - s.start) };
    s.end = va;
    this.insert(tail);
  }

  /** Cuts `[start, end)` out of the mirror spans (BO spans there are gone already). */
  private carve(start: number, end: number): void {
    const out: VaSpan[] = [];
    for (const s of this.spans) {
      if (s.bo !== null || s.end <= start || s.start >= end) {
        out.push(s);
        continue;
      }
      if (s.start < start) out.push(this.mirror(s.start, start));
      if (s.end > end) out.push(this.mirror(end, s.end));
    }
    this.spans.length = 0;
    this.spans.push(...out);
  }

  private insert(s: VaSpan): void {
    let k = 0;
    while (k < this.spans.length && this.spans[k]!.start < s.start) k++;
    this.spans.splice(k, 0, s);
  }

  private mirror(start: number, end: number): VaSpan {
    return { start, end, bo: null, boOffset: 0, pat: 0, atomic: 0 };
  }

  /**
   * Joins a newly bound mirror span with adjacent mirror spans whose attributes are the defaults
   * (xe_vm_find_cpu_addr_mirror_vma_range: only default-attribute neighbours are merged).
   */
  private mergeAround(s: VaSpan): void {
    const k = this.spans.indexOf(s);
    const next = this.spans[k + 1];
    if (next !== undefined && next.bo === null && next.start === s.end && this.defaultAttrs(next)) {
      s.end = next.end;
      this.spans.splice(k + 1, 1);
    }
    const prev = this.spans[k - 1];
    if (prev !== undefined && prev.bo === null && prev.end === s.start && this.defaultAttrs(prev)) {
      prev.end = s.end;
      this.spans.splice(k, 1);
    }
  }

  /** xe_vma_has_default_mem_attrs() of a mirror span. */
  private defaultAttrs(s: VaSpan): boolean {
    const off = this.svm.gpuVaOffset;
    return this.svm.attrs
      .segments(s.start - off, s.end - off)
      .every(
        (g) =>
          (g.attrs.atomic ?? 0) === ATOMIC_ACCESS.UNDEFINED &&
          (g.attrs.pat ?? 0) === this.defaultPat &&
          g.attrs.preferredLoc === LOC.UNDEFINED,
      );
  }

  private spanAt(va: number): VaSpan | null {
    let lo = 0;
    let hi = this.spans.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const s = this.spans[mid]!;
      if (va < s.start) hi = mid - 1;
      else if (va >= s.end) lo = mid + 1;
      else return s;
    }
    return null;
  }
}
