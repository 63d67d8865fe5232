/**
 * The coherence oracle. It knows what a real kernel cannot: the CPU page table of one mm, every
 * device page table and TLB, and every load and store. Its rules (docs/oracle.md):
 *
 * 1. **Invalidation end.** After an invalidation's callbacks return and the CPU PTEs changed
 *    (`invalidate_range_end` of a classic MMU notifier), no device page table *and no device TLB
 *    entry* over the span may map a page the CPU no longer maps there, nor map it writable after
 *    a write-protect. {@link CoherenceOracle.checkAll} applies the same rule everywhere on demand.
 * 2. **Every GPU access.** The translation a completed GPU access used (TLB hit or page walk) must
 *    stand for the CPU's pfn at that address at that instant, and a store or atomic needs a
 *    writable CPU PTE. A stale bind is caught the first time the GPU uses it, even when a later
 *    invalidation zaps it before rule 1 looks (a bind nobody uses harms nobody and is not flagged).
 * 3. **Data.** Every load, CPU or GPU, of a private anonymous byte returns the last value stored
 *    there by the CPU or a GPU (the {@link DataShadow}); a lost write is a violation that names
 *    the seed that replays it.
 *
 * Rules 2 and 3 listen to the `gpu.access` (emitted before the access moves data, so a bad store
 * is stopped before it lands) and `mm.access` trace events, which cost nothing while nobody listens.
 *
 * @module
 */
import {
  ACCESS,
  APERTURE,
  type Aperture,
  type GpuDevice,
  type GpuEngine,
  type MappingInfo,
  TLB_FLAG,
} from '@hmmkit/gpu';
import {
  type Mm,
  PageWalk,
  PTE_DEVICE_EXCLUSIVE,
  PTE_DEVICE_PRIVATE,
  PTE_NONE,
  PTE_PRESENT,
  PTE_W,
  pteType,
  VM_SHARED,
  WALK_HOLE,
  WALK_PTE,
} from '@hmmkit/mm';
import {
  MmuNotifier,
  type MmuNotifierRange,
  mmuNotifierRegister,
  mmuNotifyEventName,
} from '@hmmkit/notifier';
import { InvariantError, pow2 } from '@hmmkit/sim';
import { DataShadow, type ShadowMismatch } from './oracle-shadow.ts';

export { DataShadow, type ShadowMismatch } from './oracle-shadow.ts';

/**
 * Translates one device page (VA `va` inside mapping `m`) to the CPU pfn it stands for, or -1 if
 * unknown. The default takes SYS apertures as identity DMA (pa = pfn * 4096) and leaves VRAM
 * unknown; a framework that backs device-private pages with VRAM supplies its own.
 */
export type DevicePageResolver = (dev: GpuDevice, m: MappingInfo, va: number) => number;

/** The default {@link DevicePageResolver}: SYS/SYS_NC identity, anything else unknown. */
export const identitySysResolver: DevicePageResolver = (_dev, m, va) =>
  m.aperture === APERTURE.SYS || m.aperture === APERTURE.SYS_NC
    ? Math.floor((m.pa + (va - m.va)) / 4096)
    : -1;

/**
 * Why a translation or a load is incoherent: a device page the CPU no longer maps there
 * (`cpu-unmapped`), maps as another page (`pfn-mismatch`), maps writable after a write-protect
 * (`writable-after-wp`), a GPU store through a read-only CPU page (`write-to-readonly`), a device
 * page the resolver cannot name (`unknown-page`), or a load that did not return the last value
 * stored (`lost-write`).
 */
export type CoherenceReason =
  | 'cpu-unmapped'
  | 'pfn-mismatch'
  | 'writable-after-wp'
  | 'write-to-readonly'
  | 'write-to-gpu-ro'
  | 'unknown-page'
  | 'lost-write'
  | 'atomic-not-exclusive';

/**
 * What was found incoherent: a device page-table entry (`pte`), a device TLB entry (`tlb`), the
 * translation a GPU access used (`access`), or the data a load returned (`data`).
 */
export type ViolationSource = 'pte' | 'tlb' | 'access' | 'data';

/** One incoherent device page or load. */
export interface CoherenceViolation {
  /** Device id, or -1 for a CPU load. */
  readonly device: number;
  readonly va: number;
  /** CPU pfn the device page stands for (-1 unknown or a CPU load). */
  readonly devicePfn: number;
  /** CPU pfn at `va` (-1: not mapped). */
  readonly cpuPfn: number;
  readonly reason: CoherenceReason;
  readonly source: ViolationSource;
  /** The invalidation event after which it was found, 'check', or the access ('gpu-read', 'cpu-write'...). */
  readonly when: string;
  /** Virtual time of the finding. */
  readonly at: number;
  /** Seed of the simulation: `createSim({ seed })` replays the run. */
  readonly seed: number;
  /** `lost-write` only: the last value stored and the value loaded (a 32-bit word, or a byte). */
  readonly expected?: number;
  readonly actual?: number;
}

/** Options of {@link CoherenceOracle}. */
export interface CoherenceOracleOptions {
  /** Device page → CPU pfn. */
  readonly resolve?: DevicePageResolver;
  /** Throw an InvariantError at the first violation (default true: a test fails at the culprit). */
  readonly throwOnViolation?: boolean;
  /** Check device TLB entries as well as page tables (rule 1; default true). */
  readonly tlb?: boolean;
  /** Check the translation of every GPU access (rule 2; default true). */
  readonly accesses?: boolean;
  /** Keep the data shadow and check every load (rule 3; default true). */
  readonly shadow?: boolean;
  /**
   * Whether `va` is read-only for the devices (amdkfd's GPU_RO attribute): a GPU write or atomic
   * there is a violation `write-to-gpu-ro` whatever the CPU allows (rule 2). Default: none is.
   */
  readonly gpuReadOnly?: (va: number) => boolean;
  /**
   * Whether a GPU atomic on a system-memory page at `va` must hold it device-exclusive (nouveau's
   * atomic path, `ATOMIC_ACCESS.EXCLUSIVE`): such an atomic while the CPU entry is not a
   * device-exclusive entry is a violation `atomic-not-exclusive` (rule 2) — the CPU could be
   * accessing the page at the same time. Default: none must.
   */
  readonly exclusiveAtomics?: (va: number) => boolean;
  /**
   * Whether device mappings at `va` belong to a buffer object bound with VM_BIND rather than to the
   * CPU-address mirror (a GPU VM, `vm.ts`): they stand for the object's memory, not the CPU page
   * there, so rules 1–3 skip them. Default: everything is mirrored.
   */
  readonly unmirrored?: (dev: GpuDevice, va: number) => boolean;
  /**
   * GPU VA − CPU VA of a device's mappings (GpuSvm's `gpuVaOffset`: the "GPU VA = CPU VA +
   * offset" scheme). A device page at GPU VA `g` stands for the CPU page at `g - offset`. Default 0.
   */
  readonly gpuVaOffset?: (dev: GpuDevice) => number;
}

const ACCESS_WHEN = ['gpu-prefetch', 'gpu-read', 'gpu-write', 'gpu-atomic'] as const;

/** Checks device page tables, TLBs, GPU accesses and loaded data against the truth of one mm. */
export class CoherenceOracle {
  readonly mm: Mm;
  readonly devices: readonly GpuDevice[];
  /** Every violation found so far. */
  readonly violations: CoherenceViolation[] = [];
  /** Invalidations checked at range end. */
  checkedInvalidations = 0;
  /** GPU accesses whose translation was checked. */
  checkedAccesses = 0;
  /** Loads (CPU or GPU) compared with the data shadow. */
  checkedLoads = 0;
  /** The data shadow (null when disabled). */
  readonly shadow: DataShadow | null;
  private readonly resolve: DevicePageResolver;
  private readonly throwing: boolean;
  private readonly checkTlb: boolean;
  private readonly checkAccesses: boolean;
  private readonly gpuReadOnly: ((va: number) => boolean) | null;
  private readonly exclusiveAtomics: ((va: number) => boolean) | null;
  private readonly unmirrored: ((dev: GpuDevice, va: number) => boolean) | null;
  private readonly vaOffset: ((dev: GpuDevice) => number) | null;
  private readonly walk = new PageWalk();
  private readonly byEngine = new Map<GpuEngine, GpuDevice>();
  private notifier: MmuNotifier | null = null;
  /** Result of the last {@link lookup}. */
  private cpuPfn = -1;
  private cpuW = false;
  private cpuExclusive = false;
  private readonly off: (() => void)[] = [];
  /** Scratch mapping for resolving one page of a TLB entry or an access. */
  private readonly page = {
    va: 0,
    size: 4096,
    pa: 0,
    aperture: 0 as Aperture,
    writable: false,
    atomic: false,
    peerId: 0,
  };

  constructor(mm: Mm, devices: readonly GpuDevice[], opts: CoherenceOracleOptions = {}) {
    this.mm = mm;
    this.devices = [...devices];
    this.resolve = opts.resolve ?? identitySysResolver;
    this.throwing = opts.throwOnViolation ?? true;
    this.checkTlb = opts.tlb ?? true;
    this.checkAccesses = opts.accesses ?? true;
    this.gpuReadOnly = opts.gpuReadOnly ?? null;
    this.exclusiveAtomics = opts.exclusiveAtomics ?? null;
    this.unmirrored = opts.unmirrored ?? null;
    this.vaOffset = opts.gpuVaOffset ?? null;
    this.shadow = (opts.shadow ?? true) ? new DataShadow() : null;
    for (const d of devices) this.byEngine.set(d.engine, d);
  }

  /**
   * Checks one more device against this mm (another GPU VM of the same process: every VM's GPU
   * stores must reach the one data shadow of the mm).
   */
  addDevice(dev: GpuDevice): void {
    if (this.byEngine.has(dev.engine)) return;
    (this.devices as GpuDevice[]).push(dev);
    this.byEngine.set(dev.engine, dev);
  }

  /**
   * Registers a classic MMU notifier whose `invalidate_range_end` checks the invalidated span
   * (the CPU PTEs have changed by then and every driver's start callback has returned), and
   * listens to GPU accesses and CPU loads and stores for rules 2 and 3.
   */
  async attach(): Promise<void> {
    if (this.notifier !== null) return;
    this.notifier = new MmuNotifier({
      invalidateRangeEnd: (_s, r: MmuNotifierRange) => {
        this.checkedInvalidations++;
        this.forgetDiscarded(r.start, r.end);
        this.check(r.start, r.end, mmuNotifyEventName(r.event));
      },
    });
    await mmuNotifierRegister(this.notifier, this.mm);
    const trace = this.mm.sim.trace;
    if (this.checkAccesses || this.shadow !== null) {
      this.off.push(
        trace.on('gpu.access', (e, va, acc, ap, pa, peer, data) =>
          this.onGpuAccess(e, va, acc, ap, pa, peer, data),
        ),
      );
    }
    if (this.shadow !== null) {
      this.off.push(
        trace.on('mm.access', (id, va, write, buf, o, n) => this.onCpuAccess(id, va, write, buf, o, n)),
      );
    }
  }

  /** Stops listening to accesses (the invalidation notifier stays until the mm goes). */
  detachAccesses(): void {
    for (const f of this.off.splice(0)) f();
  }

  /** CPU pfn mapped at `va` and whether writable: `[pfn, writable]`, pfn -1 when not mapped. */
  cpuLookup(va: number): [number, boolean] {
    this.lookup(va);
    return [this.cpuPfn, this.cpuW];
  }

  /** {@link cpuLookup} without allocating: sets `cpuPfn` and `cpuW`. */
  private lookup(va: number): void {
    const w = this.walk;
    this.mm.pt.walkUnit(va, va + 4096, w);
    this.cpuPfn = -1;
    this.cpuW = false;
    this.cpuExclusive = false;
    if (w.kind === WALK_HOLE) return;
    let val: number;
    let flags: number;
    if (w.kind === WALK_PTE) {
      val = w.pte!.val[w.index]!;
      flags = w.pte!.flags[w.index]!;
    } else {
      flags = w.flags;
      val = w.val + Math.floor((va - w.leafStart) / 4096);
    }
    const t = pteType(flags);
    if (t !== PTE_PRESENT && t !== PTE_DEVICE_PRIVATE && t !== PTE_DEVICE_EXCLUSIVE) return;
    this.cpuPfn = val;
    this.cpuW = (flags & PTE_W) !== 0;
    this.cpuExclusive = t === PTE_DEVICE_EXCLUSIVE;
  }

  /**
   * Checks every device mapping and (unless disabled) TLB entry overlapping `[start, end)`;
   * returns the violations found (also appended to {@link violations}; thrown as InvariantError
   * when configured).
   */
  check(start: number, end: number, when = 'check'): CoherenceViolation[] {
    const found: CoherenceViolation[] = [];
    const lo0 = Math.floor(start / 4096) * 4096;
    const whole = start === 0 && end === Number.MAX_SAFE_INTEGER;
    for (const dev of this.devices) {
      // the CPU span [start, end) is [start + off, end + off) on the device; a full check covers
      // the device's whole VA (a page below the offset stands for no CPU page)
      const off = this.vaOffset?.(dev) ?? 0;
      const top = 2 ** dev.format.vaBits;
      const lo = whole ? 0 : lo0 + off;
      if (lo >= top) continue;
      const hi = Math.min(end + off, top);
      dev.pageTable.forEachMapping(lo, hi, (m) => {
        const a = Math.max(m.va, lo);
        const b = Math.min(m.va + m.size, hi);
        for (let va = a; va < b; va += 4096) {
          const r = this.judge(dev, this.resolve(dev, m, va), va, m.writable);
          if (r !== null) found.push(this.violation(dev.id, va, r, 'pte', when));
        }
      });
      if (this.checkTlb) this.checkTlbOf(dev, lo, hi, when, found);
    }
    this.report(found);
    return found;
  }

  /** Checks the whole address space of every device. */
  checkAll(): CoherenceViolation[] {
    return this.check(0, Number.MAX_SAFE_INTEGER);
  }

  /** Rule 1 for one device's TLB: every cached page overlapping `[lo, hi)`. */
  private checkTlbOf(
    dev: GpuDevice,
    lo: number,
    hi: number,
    when: string,
    found: CoherenceViolation[],
  ): void {
    const tlb = dev.tlb;
    const m = this.page;
    // the cached pages overlapping [lo, hi), in slot order (the order of a full scan)
    const n = tlb.overlapping(lo, hi);
    const slots = tlb.overlapSlots.subarray(0, n).sort();
    for (let k = 0; k < n; k++) {
      const i = slots[k]!;
      const size = pow2(tlb.shifts[i]!);
      const base = tlb.tags[i]! * size;
      m.va = base;
      m.size = size;
      m.pa = tlb.pas[i]!;
      m.aperture = tlb.apertures[i]! as Aperture;
      m.writable = (tlb.flags[i]! & TLB_FLAG.WRITABLE) !== 0;
      m.atomic = (tlb.flags[i]! & TLB_FLAG.ATOMIC) !== 0;
      m.peerId = tlb.peers[i]!;
      const b = Math.min(base + size, hi);
      for (let va = Math.max(base, lo); va < b; va += 4096) {
        const r = this.judge(dev, this.resolve(dev, m, va), va, m.writable);
        if (r !== null) found.push(this.violation(dev.id, va, r, 'tlb', when));
      }
    }
  }

  /** The verdict on a device page standing for `devicePfn` at `va`: reason, device pfn, CPU pfn. */
  private judge(
    dev: GpuDevice,
    devicePfn: number,
    va: number,
    writable: boolean,
  ): [CoherenceReason, number, number] | null {
    if (this.unmirrored?.(dev, va) === true) return null;
    const cva = va - (this.vaOffset?.(dev) ?? 0);
    if (cva < 0) {
      this.cpuPfn = -1;
      this.cpuW = false;
    } else this.lookup(cva);
    const cpuPfn = this.cpuPfn;
    const cpuW = this.cpuW;
    let reason: CoherenceReason | null = null;
    if (devicePfn < 0) reason = 'unknown-page';
    else if (cpuPfn < 0) reason = 'cpu-unmapped';
    else if (cpuPfn !== devicePfn) reason = 'pfn-mismatch';
    else if (writable && !cpuW) reason = 'writable-after-wp';
    return reason === null ? null : [reason, devicePfn, cpuPfn];
  }

  private violation(
    device: number,
    va: number,
    [reason, devicePfn, cpuPfn]: [CoherenceReason, number, number],
    source: ViolationSource,
    when: string,
  ): CoherenceViolation {
    const sim = this.mm.sim;
    return { device, va, devicePfn, cpuPfn, reason, source, when, at: sim.now, seed: sim.sched.seed };
  }

  /** Records violations; throws the first as an InvariantError when configured. */
  private report(found: CoherenceViolation[]): void {
    if (found.length === 0) return;
    this.violations.push(...found);
    if (this.throwing) throw new InvariantError(describeViolation(found[0]!));
  }

  /** Rule 2 and the GPU half of rule 3 (`gpu.access` listener). */
  private onGpuAccess(
    engine: GpuEngine,
    va: number,
    acc: number,
    aperture: number,
    pa: number,
    peer: number,
    data: number,
  ): void {
    if (acc === ACCESS.PREFETCH) return;
    const dev = this.byEngine.get(engine);
    if (dev === undefined) return; // another process's device
    if (this.unmirrored?.(dev, va) === true) return; // a buffer object's page, not the CPU's
    const cva = va - (this.vaOffset?.(dev) ?? 0); // the CPU address the GPU one stands for
    const write = acc !== ACCESS.READ;
    const when = ACCESS_WHEN[acc]!;
    if (this.checkAccesses) {
      this.checkedAccesses++;
      const page = va - (va % 4096);
      const m = this.page;
      m.va = page;
      m.size = 4096;
      m.pa = pa - (va - page);
      m.aperture = aperture as Aperture;
      m.writable = write;
      m.atomic = acc === ACCESS.ATOMIC;
      m.peerId = peer;
      const devicePfn = this.resolve(dev, m, page);
      const r = this.judge(dev, devicePfn, va, write);
      if (r !== null) {
        if (r[0] === 'writable-after-wp') r[0] = 'write-to-readonly';
        this.report([this.violation(dev.id, va, r, 'access', when)]);
      } else if (write && this.gpuReadOnly?.(cva) === true) {
        this.report([
          this.violation(dev.id, va, ['write-to-gpu-ro', devicePfn, this.cpuPfn], 'access', when),
        ]);
      } else if (
        acc === ACCESS.ATOMIC &&
        (aperture === APERTURE.SYS || aperture === APERTURE.SYS_NC) &&
        !this.cpuExclusive &&
        this.exclusiveAtomics?.(cva) === true
      ) {
        this.report([
          this.violation(dev.id, va, ['atomic-not-exclusive', devicePfn, this.cpuPfn], 'access', when),
        ]);
      }
    }
    const shadow = this.shadow;
    const port = engine.memoryPort;
    if (shadow === null || data < 0 || port === null) return;
    // A shadowed page is private anonymous (checked at its first store; it is forgotten when its
    // PTE goes, which any VMA change over it needs), so only a first store asks for the VMA.
    const known = shadow.hasPage(cva);
    // the event comes before the data moves: what a load will return is in memory now
    const old =
      acc === ACCESS.WRITE || (!known && acc === ACCESS.READ)
        ? 0
        : port.read32(aperture as Aperture, pa, peer);
    if (acc !== ACCESS.WRITE && known) {
      this.checkedLoads++;
      const bad = shadow.checkU32(cva, old);
      if (bad !== null) this.lostWrite(dev.id, bad, when);
    }
    if (acc === ACCESS.READ || (!known && !this.shadowed(cva))) return;
    shadow.recordU32(cva, acc === ACCESS.WRITE ? data : (old + data) % 2 ** 32);
  }

  /** The CPU half of rule 3 (`mm.access` listener). */
  private onCpuAccess(
    mmId: number,
    va: number,
    write: boolean,
    buf: Uint8Array,
    off: number,
    n: number,
  ): void {
    const shadow = this.shadow!;
    if (mmId !== this.mm.id) return; // one chunk never crosses a page
    const known = shadow.hasPage(va);
    if (write) {
      if (known || this.shadowed(va)) shadow.record(va, buf, off, n);
      return;
    }
    if (!known) return;
    this.checkedLoads++;
    const bad = shadow.check(va, buf, off, n);
    if (bad !== null) this.lostWrite(-1, bad, 'cpu-read');
  }

  private lostWrite(device: number, bad: ShadowMismatch, when: string): void {
    const sim = this.mm.sim;
    const [cpuPfn] = this.cpuLookup(bad.va);
    this.report([
      {
        device,
        va: bad.va,
        devicePfn: -1,
        cpuPfn,
        reason: 'lost-write',
        source: 'data',
        when,
        at: sim.now,
        seed: sim.sched.seed,
        expected: bad.expected,
        actual: bad.actual,
      },
    ]);
  }

  /** Rule 3 covers private anonymous memory (one VA, one content; no aliasing mapping). */
  private shadowed(va: number): boolean {
    const vma = this.mm.vmaLookup(va);
    return vma !== null && vma.file === null && (vma.flags & VM_SHARED) === 0;
  }

  /**
   * At an invalidation's end, forgets shadowed pages whose CPU PTE is now empty: a private
   * anonymous page with no PTE reads zeros at its next touch (munmap, MADV_DONTNEED), while
   * swap, migration and device-private entries keep their content.
   */
  private forgetDiscarded(start: number, end: number): void {
    const shadow = this.shadow;
    if (shadow === null || shadow.size === 0) return;
    shadow.forEachPage(start, end, (va) => {
      const w = this.walk;
      this.mm.pt.walkUnit(va, va + 4096, w);
      const empty =
        w.kind === WALK_HOLE || (w.kind === WALK_PTE && pteType(w.pte!.flags[w.index]!) === PTE_NONE);
      if (empty) shadow.forgetPage(va);
    });
  }
}

/** One violation as a line that names the seed replaying it. */
export function describeViolation(v: CoherenceViolation): string {
  const where = v.device < 0 ? 'the CPU' : `device ${v.device}`;
  const va = `0x${v.va.toString(16)}`;
  const replay = `(seed ${v.seed}, t=${v.at} ns)`;
  if (v.reason === 'lost-write') {
    return (
      `coherence: ${where} loaded 0x${v.actual!.toString(16)} at ${va} where 0x${v.expected!.toString(16)}` +
      ` was last stored: lost-write on ${v.when} ${replay}`
    );
  }
  const what = v.source === 'tlb' ? 'TLB caches' : v.source === 'access' ? 'accessed' : 'maps';
  return (
    `coherence: ${where} ${what} ${va} (pfn ${v.devicePfn}) ${v.reason}` +
    ` (cpu pfn ${v.cpuPfn}) ${v.source === 'access' ? 'on' : 'after'} ${v.when} ${replay}`
  );
}
