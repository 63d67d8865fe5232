/**
 * Our model of IGT xe_exec_system_allocator's `test_exec()` on GpuSvm. Every exec is a GPU kernel
 * that fetches its batch from the allocation (the CPU wrote MI_STORE_DWORD_IMM, the address, the
 * value), stores the value at `data[idx].data`, then writes the user fence; the CPU polls the fence
 * (in a separate shared page, or with RACE inside the allocation, racing the GPU) and then checks
 * the value. Flags carry the original's names. Exec queues are modelled as {@link ExecQueue}s
 * (exec i goes to queue i mod n, each queue in order); like the original, each exec's fence is
 * waited for before the next exec, so one test_exec never has two execs in flight. BUSY, BO_UNMAP
 * and BO_MAP need a `GpuVm` (`src/vm.ts`, option `vm`); the thread and process families are
 * built in `xe-families.ts` (docs/clients.md maps every section).
 */
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_HUGE_2MB,
  MAP_HUGETLB,
  MAP_LOCKED,
  MAP_POPULATE,
  MAP_PRIVATE,
  MAP_SHARED,
  MREMAP_DONTUNMAP,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  TmpFile,
} from '@hmmkit/mm';
import { Errno, Mutex, Rng, type Sim } from '@hmmkit/sim';
import { expect } from 'vitest';
import {
  type Access,
  type BufferObject,
  deviceLoc,
  type GpuVm,
  type KernelRun,
  LOC,
  runKernel,
  type SvmWorld,
} from '../../src/index.ts';
import { A, K64, M2, P, R, W } from './helpers.ts';

export const MMAP = 1 << 0;
export const NEW = 1 << 1;
export const BO_UNMAP = 1 << 2;
export const FREE = 1 << 3;
export const BUSY = 1 << 4;
export const BO_MAP = 1 << 5;
export const RACE = 1 << 6;
export const SKIP_MEMSET = 1 << 7;
export const FAULT = 1 << 8;
export const FILE_BACKED = 1 << 9;
export const LOCK = 1 << 10;
export const MMAP_SHARED = 1 << 11;
export const HUGE_PAGE = 1 << 12;
export const FORK_READ = 1 << 14;
export const FORK_READ_AFTER = 1 << 15;
export const MREMAP = 1 << 16;
export const DONTUNMAP = 1 << 17;
export const READ_ONLY_REMAP = 1 << 18;
export const SYNC_EXEC = 1 << 19;
export const EVERY_OTHER_CHECK = 1 << 20;
export const MULTI_FAULT = 1 << 21;
export const PREFETCH = 1 << 22;
export const MADVISE_SWIZZLE = 1 << 27;
export const ATOMIC_BATCH = 1 << 29;

/** sizeof(struct test_exec_data): batch[32], pad, vm_sync, exec_sync, data, expected_data. */
const DATA = 160;
const OFF_EXEC_SYNC = 144;
const OFF_DATA = 152;
const OFF_EXPECTED = 156;
const MI_STORE_DWORD_IMM = 0x10400002;
const MI_BATCH_BUFFER_END = 0x05000000;
/** MI_ATOMIC | MI_ATOMIC_INC. */
const MI_ATOMIC_INC = 0x17800501;
/** What an ATOMIC_BATCH exec leaves: the CPU stores one less, the GPU increments it. */
const VAL_ATOMIC_EXPECTED = 56;
const FENCE = 0xdeadbeef;
const N_MULTI_FAULT = 4;

/** One `test_exec()` shape: exec queues, execs, allocation size (0: from the execs) and stride. */
export interface Shape {
  readonly queues: number;
  readonly execs: number;
  readonly boSize: number;
  readonly stride: number;
}

/** The per-section shapes of the original's subtest loop (prefix → arguments). */
export const SHAPES: Record<string, Shape> = {
  once: { queues: 1, execs: 1, boSize: 0, stride: 0 },
  'once-large': { queues: 1, execs: 1, boSize: M2, stride: 0 },
  twice: { queues: 1, execs: 2, boSize: 0, stride: 0 },
  'twice-large': { queues: 1, execs: 2, boSize: M2, stride: 0 },
  many: { queues: 1, execs: 128, boSize: 0, stride: 0 },
  'many-stride': { queues: 1, execs: 128, boSize: 0, stride: 256 },
  'many-large': { queues: 1, execs: 128, boSize: M2, stride: 0 },
  'many-64k': { queues: 1, execs: 128, boSize: K64, stride: 0 },
  'many-execqueues': { queues: 16, execs: 128, boSize: 0, stride: 0 },
  'many-large-execqueues': { queues: 16, execs: 128, boSize: M2, stride: 0 },
};

/**
 * The sections that need a GPU VM with buffer objects beside the mirror (`GpuVm`, option `vm` of
 * {@link testExec}): unbinding a busy mirror, a BO bound and unbound before the execs, BOs mapped
 * between the execs.
 */
export const VM_SECTIONS: readonly (readonly [string, number])[] = [
  ['malloc-busy', BUSY],
  ['malloc-bo-unmap', BO_UNMAP],
  ['new-bo-map', NEW | BO_MAP],
  ['new-busy', NEW | BUSY],
  ['malloc-busy-nomemset', SKIP_MEMSET | BUSY],
  ['malloc-bo-unmap-nomemset', SKIP_MEMSET | BO_UNMAP],
  ['new-bo-map-nomemset', SKIP_MEMSET | NEW | BO_MAP],
  ['new-busy-nomemset', SKIP_MEMSET | NEW | BUSY],
];

/** The sections of the original that today's API expresses (name → flags). */
export const SECTIONS: readonly (readonly [string, number])[] = [
  ['malloc', 0],
  ['malloc-madvise', MADVISE_SWIZZLE],
  ['malloc-prefetch', PREFETCH],
  ['malloc-prefetch-madvise', PREFETCH | MADVISE_SWIZZLE],
  ['malloc-multi-fault', MULTI_FAULT],
  ['malloc-fork-read', FORK_READ],
  ['malloc-fork-read-after', FORK_READ | FORK_READ_AFTER],
  ['malloc-mlock', LOCK],
  ['malloc-race', RACE],
  ['malloc-prefetch-race', RACE | PREFETCH],
  ['mmap', MMAP],
  ['mmap-prefetch', MMAP | PREFETCH],
  ['mmap-remap', MMAP | MREMAP],
  ['mmap-remap-madvise', MMAP | MREMAP | MADVISE_SWIZZLE],
  ['mmap-remap-dontunmap', MMAP | MREMAP | DONTUNMAP],
  ['mmap-remap-ro', MMAP | MREMAP | READ_ONLY_REMAP],
  ['mmap-remap-ro-dontunmap', MMAP | MREMAP | DONTUNMAP | READ_ONLY_REMAP],
  ['mmap-remap-eocheck', MMAP | MREMAP | EVERY_OTHER_CHECK],
  ['mmap-remap-dontunmap-eocheck', MMAP | MREMAP | DONTUNMAP | EVERY_OTHER_CHECK],
  ['mmap-remap-ro-eocheck', MMAP | MREMAP | READ_ONLY_REMAP | EVERY_OTHER_CHECK],
  ['mmap-remap-ro-dontunmap-eocheck', MMAP | MREMAP | DONTUNMAP | READ_ONLY_REMAP | EVERY_OTHER_CHECK],
  ['mmap-huge', MMAP | HUGE_PAGE],
  ['mmap-shared', MMAP | LOCK | MMAP_SHARED],
  ['mmap-prefetch-shared', MMAP | LOCK | MMAP_SHARED | PREFETCH],
  ['mmap-shared-remap', MMAP | LOCK | MMAP_SHARED | MREMAP],
  ['mmap-shared-remap-dontunmap', MMAP | LOCK | MMAP_SHARED | MREMAP | DONTUNMAP],
  ['mmap-shared-remap-eocheck', MMAP | LOCK | MMAP_SHARED | MREMAP | EVERY_OTHER_CHECK],
  ['mmap-shared-remap-dontunmap-eocheck', MMAP | LOCK | MMAP_SHARED | MREMAP | DONTUNMAP | EVERY_OTHER_CHECK],
  ['mmap-mlock', MMAP | LOCK],
  ['mmap-file', MMAP | FILE_BACKED],
  ['mmap-file-mlock', MMAP | LOCK | FILE_BACKED],
  ['mmap-race', MMAP | RACE],
  ['free', NEW | FREE],
  ['free-madvise', NEW | FREE | MADVISE_SWIZZLE],
  ['free-race', NEW | FREE | RACE],
  ['new', NEW],
  ['new-madvise', NEW | MADVISE_SWIZZLE],
  ['new-prefetch', NEW | PREFETCH],
  ['new-race', NEW | RACE],
  ['mmap-free', MMAP | NEW | FREE],
  ['mmap-free-madvise', MMAP | NEW | FREE | MADVISE_SWIZZLE],
  ['mmap-free-huge', MMAP | NEW | FREE | HUGE_PAGE],
  ['mmap-free-race', MMAP | NEW | FREE | RACE],
  ['mmap-new', MMAP | NEW],
  ['mmap-new-madvise', MMAP | NEW | MADVISE_SWIZZLE],
  ['mmap-new-huge', MMAP | NEW | HUGE_PAGE],
  ['mmap-new-race', MMAP | NEW | RACE],
  ['malloc-nomemset', SKIP_MEMSET],
  ['malloc-mlock-nomemset', SKIP_MEMSET | LOCK],
  ['malloc-race-nomemset', SKIP_MEMSET | RACE],
  ['mmap-nomemset', SKIP_MEMSET | MMAP],
  ['mmap-huge-nomemset', SKIP_MEMSET | MMAP | HUGE_PAGE],
  ['mmap-shared-nomemset', SKIP_MEMSET | MMAP | MMAP_SHARED],
  ['mmap-mlock-nomemset', SKIP_MEMSET | MMAP | LOCK],
  ['mmap-file-nomemset', SKIP_MEMSET | MMAP | FILE_BACKED],
  ['mmap-file-mlock-nomemset', SKIP_MEMSET | MMAP | LOCK | FILE_BACKED],
  ['mmap-race-nomemset', SKIP_MEMSET | MMAP | RACE],
  ['free-nomemset', SKIP_MEMSET | NEW | FREE],
  ['free-race-nomemset', SKIP_MEMSET | NEW | FREE | RACE],
  ['new-nomemset', SKIP_MEMSET | NEW],
  ['new-race-nomemset', SKIP_MEMSET | NEW | RACE],
  ['mmap-free-nomemset', SKIP_MEMSET | MMAP | NEW | FREE],
  ['mmap-free-huge-nomemset', SKIP_MEMSET | MMAP | NEW | FREE | HUGE_PAGE],
  ['mmap-free-race-nomemset', SKIP_MEMSET | MMAP | NEW | FREE | RACE],
  ['mmap-new-nomemset', SKIP_MEMSET | MMAP | NEW],
  ['mmap-new-huge-nomemset', SKIP_MEMSET | MMAP | NEW | HUGE_PAGE],
  ['mmap-new-race-nomemset', SKIP_MEMSET | MMAP | NEW | RACE],
];

/**
 * Subtests that fail on today's GpuSvm because of an issue 9 defect (full name → reason). They are
 * not generated; docs/clients.md lists them; remove an entry once svm-core's fix merges.
 */
export const BLOCKED: Record<string, string> = {};

/** One generated subtest. */
export interface XeSubtest {
  readonly name: string;
  readonly shape: Shape;
  readonly flags: number;
  readonly seed: number;
}

/**
 * The subtests `<shape>-<section>` of `shapes` over every expressible section, minus no-ops and
 * {@link BLOCKED}; `pick(shapeIndex, sectionIndex)` keeps a sample (default all).
 */
export function xeSubtests(
  shapes: readonly string[],
  seedBase: number,
  pick: (shapeIndex: number, sectionIndex: number) => boolean = () => true,
): XeSubtest[] {
  const out: XeSubtest[] = [];
  let seed = seedBase;
  shapes.forEach((sh, i) => {
    const shape = SHAPES[sh]!;
    SECTIONS.forEach(([section, flags], k) => {
      const name = `${sh}-${section}`;
      const s = seed++;
      if (isNoop(shape, flags) || name in BLOCKED || !pick(i, k)) return;
      out.push({ name, shape, flags, seed: s });
    });
  });
  return out;
}

/**
 * The many-* shapes, and the sample CI runs (file 0 or 1): section k once, in shape many (k even) or
 * many-64k (k odd), in file floor(k/2) mod 2. The 2 MiB and 5 MiB shapes (many-large,
 * many-stride) take seconds each, so CI leaves them to the full run (`XE_MANY_ALL=1`).
 */
export const MANY_SHAPES = ['many', 'many-64k', 'many-stride', 'many-large'] as const;
export const manySample =
  (file: number, all: boolean) =>
  (shapeIndex: number, k: number): boolean =>
    Math.floor(k / 2) % 2 === file && (all || shapeIndex === k % 2);

/** Whether the original returns before doing anything for this shape (nothing to port). */
export function isNoop(shape: Shape, flags: number): boolean {
  return (
    ((flags & MULTI_FAULT) !== 0 && shape.boSize === 0) ||
    ((flags & EVERY_OTHER_CHECK) !== 0 && shape.execs % 2 === 1)
  );
}

/**
 * One GpuEngine per device context: `GpuEngine.run` refuses a second kernel while one runs
 * (StateError), so kernels submitted at once to one world (threads of a shared VM, or several
 * exec queues) take turns at kernel granularity, in submission order; their CPU sides interleave.
 * (xe runs each thread's queue on its own hardware engine; VMs of their own run concurrently here.)
 */
const engines = new WeakMap<SvmWorld, Mutex>();
function engine(w: SvmWorld): Mutex {
  let m = engines.get(w);
  if (m === undefined) {
    m = new Mutex(w.sim.sched, 'xe-engine');
    engines.set(w, m);
  }
  return m;
}

const roundUp = (n: number, a: number): number => Math.ceil(n / a) * a;

/**
 * write_dword(): the CPU writes, at `batchAt`, one MI_STORE_DWORD_IMM of `value` per address of
 * `sdis`, then MI_BATCH_BUFFER_END, and records `value` in the struct's expected_data (through
 * `write`, default the CPU mm: a BO's CPU mapping passes its own).
 */
export async function writeStoreBatch(
  w: SvmWorld,
  batchAt: number,
  sdis: readonly number[],
  value: number,
  write: (va: number, v: number) => Promise<unknown> = (va, v) => w.mm.writeU32(va, v),
): Promise<void> {
  let k = 0;
  for (const a of sdis) {
    for (const word of [MI_STORE_DWORD_IMM, a % 2 ** 32, Math.floor(a / 2 ** 32), value])
      await write(batchAt + 4 * k++, word);
  }
  await write(batchAt + 4 * k, MI_BATCH_BUFFER_END);
  await write(batchAt + OFF_EXPECTED, value);
}

/** The GPU accesses of one exec of the batch at `batchAt`: fetch it, do its stores, signal `fence`. */
export function batchAccesses(
  batchAt: number,
  sdis: readonly number[],
  value: number,
  fence: number,
): Access[] {
  const acc: Access[] = [];
  for (let k = 0; k < 4 * sdis.length; k++) acc.push([batchAt + 4 * k, R, 0]);
  for (const a of sdis) acc.push([a, W, value]);
  if (fence >= 0) acc.push([fence, W, FENCE]);
  return acc;
}

/**
 * One exec queue (xe_exec_queue_create on a VM): an in-order stream of execs. An exec starts only
 * after every earlier exec of its queue has completed; execs of different queues are ordered only
 * by the engine they share.
 */
export class ExecQueue {
  /** Index among the queues test_exec created. */
  readonly id: number;
  /** Execs submitted and completed, in order. */
  submitted = 0;
  completed = 0;
  private readonly sched: Sim['sched'];
  private readonly waiting: ReturnType<Sim['sched']['waiter']>[] = [];

  constructor(w: SvmWorld, id: number) {
    this.id = id;
    this.sched = w.sim.sched;
  }

  /** xe_exec: takes the next place in the stream (in the submitting task); returns its number. */
  submit(): number {
    return this.submitted++;
  }

  /** Runs `job` as exec `seq` of this queue once every earlier exec has completed. */
  async run<T>(seq: number, job: () => Promise<T>): Promise<T> {
    while (this.completed !== seq) {
      const x = this.sched.waiter();
      this.waiting.push(x);
      await this.sched.wait(x);
    }
    try {
      return await job();
    } finally {
      this.completed++;
      for (const x of this.waiting.splice(0)) this.sched.wake(x);
    }
  }
}

/**
 * xe_exec + xe_wait_ufence: runs `warps` on device `dev` (on `queue` when given, then taking the
 * device's one engine) in its own task while the caller's task polls the fence dword every 2 µs,
 * until it reads the fence value or the kernel ended without writing it (no fence: `fence` < 0).
 * `afterSubmit` runs right after the submission, before the wait (SYNC_EXEC's barrier). Returns
 * the kernel's run.
 */
export async function execAndWait(
  w: SvmWorld,
  dev: number,
  warps: readonly (readonly Access[])[],
  fence: number,
  queue?: ExecQueue,
  afterSubmit?: () => Promise<void>,
): Promise<KernelRun> {
  let run: KernelRun | null = null;
  const eng = engine(w);
  const onEngine = async (): Promise<void> => {
    await eng.lock();
    try {
      run = await runKernel(w, dev, warps);
    } finally {
      eng.unlock();
    }
  };
  const seq = queue?.submit() ?? -1;
  const gpu = w.sim.sched.spawn('xe-exec', () =>
    queue === undefined ? onEngine() : queue.run(seq, onEngine),
  );
  if (afterSubmit !== undefined) await afterSubmit();
  for (; fence >= 0; ) {
    if ((await w.mm.readU32(fence)) === FENCE) break;
    if (run !== null) break;
    await w.sim.sched.sleep(2000);
  }
  await w.sim.sched.join(gpu);
  return run as unknown as KernelRun;
}

/** The fence value the GPU writes (the low half of USER_FENCE_VALUE). */
export const USER_FENCE = FENCE;
/** Offsets inside struct test_exec_data. */
export const EXEC_DATA = { size: DATA, execSync: OFF_EXEC_SYNC, data: OFF_DATA } as const;

/** What one exec did, for the caller's checks. */
export interface ExecOutcome {
  readonly failed: number;
  readonly faults: number;
}

/** Options of {@link testExec}. */
export interface TestExecOptions {
  readonly dev?: number;
  /** The GPU VM `w` belongs to (`vm.world`): needed by BUSY, BO_UNMAP and BO_MAP. */
  readonly vm?: GpuVm;
  /** SYNC_EXEC: a barrier every thread waits at before each exec and right after submitting it. */
  readonly barrier?: () => Promise<void>;
  /** A shared allocation (threads-shared-vm-shared-alloc): the base address of this thread's data. */
  readonly alloc?: number;
  /** Runs once the first allocation is made and memset (BO_UNMAP binds and unbinds a BO over it). */
  readonly afterAlloc?: (data: number, size: number) => Promise<void>;
  /** Runs after each exec's batch is written, before its prefetch (madvise_prefetch_op). */
  readonly afterBatch?: (data: number, size: number, exec: number) => Promise<void>;
  /** Runs after the last exec, before anything is freed (BUSY: unbind_system_allocator()). */
  readonly afterExecs?: (data: number, size: number) => Promise<void>;
}

/**
 * Models test_exec(): allocate (malloc = an aligned anonymous mapping; mmap with its flags),
 * memset, then per exec write the batch on the CPU, optionally madvise the preferred location and
 * prefetch, run it on the GPU, wait for the fence, optionally mremap / fork, check the value, and
 * for NEW/FREE replace the allocation. Returns the execs' outcomes.
 */
export async function testExec(
  w: SvmWorld,
  shape: Shape,
  flags: number,
  opts: TestExecOptions = {},
): Promise<ExecOutcome[]> {
  const { mm, svm, sim } = w;
  const dev = opts.dev ?? 0;
  const here = deviceLoc(dev);
  const { execs, stride } = shape;
  let boSize = shape.boSize;
  const origSize = boSize;
  if (flags & MULTI_FAULT) boSize *= N_MULTI_FAULT;
  if (boSize === 0) boSize = roundUp(DATA * execs * (stride === 0 ? 1 : stride), P);
  let alignment = shape.boSize === 0 ? P : shape.boSize;
  if (flags & HUGE_PAGE) {
    alignment = roundUp(alignment, M2);
    boSize = roundUp(boSize, M2);
  }
  const rng = new Rng(sim.sched.seed * 31 + execs);
  const outcomes: ExecOutcome[] = [];
  const toFree: number[] = [];

  /** __aligned_alloc + __aligned_partial_free: a PROT_NONE reservation of exactly `size` at an aligned VA. */
  const reserve = async (align: number, size: number): Promise<number> => {
    const raw = await mm.mmap(0, size + align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS);
    expect(raw).toBeGreaterThan(0);
    const a = roundUp(raw, align);
    if (a > raw) expect(await mm.munmap(raw, a - raw)).toBe(0);
    if (raw + size + align > a + size)
      expect(await mm.munmap(a + size, raw + size + align - a - size)).toBe(0);
    return a;
  };
  const rw = PROT_READ | PROT_WRITE;
  /** Allocates one buffer the way the section does. */
  const allocate = async (fresh: boolean): Promise<number> => {
    const at = await reserve(alignment, boSize);
    let f = MAP_FIXED;
    let file: TmpFile | null = null;
    if (fresh && flags & MMAP)
      f |= MAP_SHARED | MAP_ANONYMOUS; // NEW|MMAP maps MAP_SHARED anonymous
    else if (flags & MMAP) {
      f |= flags & MMAP_SHARED ? MAP_SHARED : MAP_PRIVATE;
      if (flags & HUGE_PAGE) f |= MAP_HUGETLB | MAP_HUGE_2MB;
      if (flags & FILE_BACKED) file = new TmpFile(mm.machine.phys, boSize);
      else f |= MAP_ANONYMOUS;
    } else f |= MAP_PRIVATE | MAP_ANONYMOUS; // aligned_alloc: a private anonymous mapping
    if (flags & LOCK && !fresh) f |= MAP_LOCKED | MAP_POPULATE; // mlock(): VM_LOCKED, populated
    const a = await mm.mmap(at, boSize, rw, f, file, 0);
    expect(a).toBe(at);
    if (!(flags & SKIP_MEMSET)) await mm.write(a, new Uint8Array(boSize).fill(5));
    return a;
  };

  const vm = opts.vm;
  if (flags & (BUSY | BO_UNMAP | BO_MAP) && vm === undefined)
    throw new Error('testExec: BUSY, BO_UNMAP and BO_MAP need options.vm (a GpuVm)');
  if (vm !== undefined && vm.world !== w) throw new Error('testExec: options.vm must be the VM of the world');
  const queues = Array.from({ length: shape.queues }, (_, k) => new ExecQueue(w, k));
  /** The BO the current `data` is (BO_MAP), reached through its CPU mapping (read32/write32). */
  let bo: BufferObject | null = null;
  const inBo = (va: number): boolean => bo !== null && va >= data && va < data + boSize;
  const write32 = async (va: number, v: number): Promise<void> => {
    if (inBo(va)) bo!.write32(va - data, v);
    else await mm.writeU32(va, v);
  };
  const read32 = async (va: number): Promise<number> => (inBo(va) ? bo!.read32(va - data) : mm.readU32(va));

  /** After an exec on a BO: the mirror bound back over it, its VA unmapped, the handle closed. */
  const dropBo = async (): Promise<void> => {
    expect(await vm!.bindMirror(data, boSize)).toBe(0);
    expect(await mm.munmap(data, boSize)).toBe(0);
    bo!.close();
    expect(bo!.alive, 'the BO is freed').toBe(false);
    bo = null;
  };

  let data = opts.alloc ?? (await allocate(false));
  const ownData = opts.alloc === undefined;
  if (opts.afterAlloc !== undefined) await opts.afterAlloc(data, boSize);
  if (flags & BO_UNMAP) {
    // a VRAM BO bound over the allocation, the mirror bound back over it, the handle closed
    const b = vm!.device.createBo(boSize) as BufferObject;
    expect(typeof b, 'BO_UNMAP: xe_bo_create').toBe('object');
    expect(await vm!.bindBo(b, 0, data, boSize)).toBe(0);
    expect(vm!.boAt(data)?.bo).toBe(b);
    expect(vm!.isMirrored(data)).toBe(false);
    expect(await vm!.bindMirror(data, boSize)).toBe(0);
    expect(vm!.boAt(data)).toBeNull();
    b.close();
    expect(b.alive, 'no binding holds the BO: its VRAM is freed').toBe(false);
  }
  let fenceAt = -1;
  if (!(flags & RACE)) {
    fenceAt = await mm.mmap(0, P, rw, MAP_SHARED | MAP_ANONYMOUS);
    await mm.write(fenceAt, new Uint8Array(P).fill(5));
  }
  const region = flags & (RACE | FILE_BACKED | LOCK | MMAP_SHARED | HUGE_PAGE) ? LOC.SYSMEM : here;
  if (flags & PREFETCH && !(flags & FAULT)) {
    if (region === LOC.SYSMEM)
      expect(await svm.prefetch(data, data + boSize, LOC.SYSMEM)).toBeGreaterThanOrEqual(0);
    if (fenceAt >= 0) expect(await svm.prefetch(fenceAt, fenceAt + P, LOC.SYSMEM)).toBeGreaterThanOrEqual(0);
  }

  const expected = new Map<number, number>(); // idx → value
  const valueFor = (idx: number): number => {
    let v = expected.get(idx);
    if (v === undefined) {
      v = ((rng.below(1 << 19) + 1) * 4096 + idx) >>> 0;
      expected.set(idx, v);
    }
    return v;
  };
  /** write_dword(): the batch at data[idx] stores `value` at `sdi` (and `extra` more, multi-fault). */
  const writeBatch = (base: number, idx: number, sdi: number, value: number, n = 1) =>
    writeStoreBatch(
      w,
      base + idx * DATA,
      Array.from({ length: n }, (_, j) => sdi + j * origSize),
      value,
      write32,
    );
  const atomic = (flags & ATOMIC_BATCH) !== 0;
  if (atomic)
    expect(flags & (MULTI_FAULT | EVERY_OTHER_CHECK | FAULT), 'ATOMIC_BATCH is modelled alone').toBe(0);
  const check = async (base: number, idx: number) => {
    const want = atomic ? VAL_ATOMIC_EXPECTED : valueFor(idx);
    expect(await read32(base + idx * DATA + OFF_DATA), `data[${idx}]`).toBe(want);
  };

  let nextData = -1;
  let prevIdx = -1;
  for (let i = 0; i < execs; i++) {
    const idx = stride === 0 ? i : i * stride;
    const nextIdx = stride === 0 ? i + 1 : (i + 1) * stride;
    const sdi = data + idx * DATA + OFF_DATA;
    const faultInject = (flags & FAULT) !== 0 && i === Math.floor(execs / 2);
    if (opts.barrier !== undefined) await opts.barrier();
    if (flags & MADVISE_SWIZZLE) {
      svm.attrs.advise(data, data + boSize, { preferredLoc: i % 2 === 0 ? LOC.SYSMEM : here });
    }
    if (atomic) {
      // write_dword(atomic): data = expected - 1, then MI_ATOMIC_INC of it
      await mm.writeU32(sdi, VAL_ATOMIC_EXPECTED - 1);
      const b = data + idx * DATA;
      for (const [k, word] of [
        MI_ATOMIC_INC,
        sdi % 2 ** 32,
        Math.floor(sdi / 2 ** 32),
        MI_BATCH_BUFFER_END,
      ].entries())
        await mm.writeU32(b + 4 * k, word);
    } else if (flags & MULTI_FAULT) await writeBatch(data, idx, sdi, valueFor(idx), N_MULTI_FAULT);
    else if (!(flags & EVERY_OTHER_CHECK)) await writeBatch(data, idx, sdi, valueFor(idx));
    else if (i % 2 === 0) {
      await writeBatch(data, idx, sdi, valueFor(idx));
      nextData = await reserve(alignment, boSize);
      await writeBatch(data, nextIdx, nextData + nextIdx * DATA + OFF_DATA, valueFor(nextIdx));
    }
    if (opts.afterBatch !== undefined) await opts.afterBatch(data, boSize, i);
    if (flags & PREFETCH && !(flags & FAULT) && (region !== LOC.SYSMEM || flags & (NEW | MREMAP))) {
      expect(await svm.prefetch(data, data + boSize, region)).toBeGreaterThanOrEqual(0);
    }
    // the exec: fetch the batch, store the value(s), signal the fence
    const batchAt = data + idx * DATA;
    const fence = fenceAt >= 0 ? fenceAt : data + idx * DATA + OFF_EXEC_SYNC;
    const words = flags & MULTI_FAULT ? 4 * N_MULTI_FAULT : 4;
    const acc: Access[] = [];
    if (faultInject) acc.push([batchAt * 2, R, 0]);
    else if (atomic) {
      for (let k = 0; k < 3; k++) acc.push([batchAt + 4 * k, R, 0]);
      acc.push([sdi, A, 1], [fence, W, FENCE]);
    } else {
      for (let k = 0; k < words; k++) acc.push([batchAt + 4 * k, R, 0]);
      const n = flags & MULTI_FAULT ? N_MULTI_FAULT : 1;
      for (let j = 0; j < n; j++) acc.push([sdi + j * origSize, W, valueFor(idx)]);
      acc.push([fence, W, FENCE]);
    }
    const r = await execAndWait(w, dev, [acc], fence, queues[i % queues.length], opts.barrier);
    outcomes.push({ failed: r.failed, faults: r.faults });
    if (faultInject) {
      expect(r.failed, 'fault injection cancels the exec').toBe(1);
      expect(await mm.readU32(fence)).not.toBe(FENCE);
      continue;
    }
    expect(r.failed, `exec ${i} cancelled`).toBe(0);
    expect(await mm.readU32(fence)).toBe(FENCE);
    // the GPU fetched the batch the CPU wrote
    expect(r.data[0]).toBe(atomic ? MI_ATOMIC_INC : MI_STORE_DWORD_IMM);
    if (atomic) expect(r.data[3], 'the atomic returns the old value').toBe(VAL_ATOMIC_EXPECTED - 1);
    else expect(r.data[3]).toBe(valueFor(idx));
    if (fenceAt >= 0) await mm.writeU32(fenceAt, 0);
    if (flags & MREMAP) {
      const old = data;
      if (flags & READ_ONLY_REMAP) expect(await mm.mprotect(old, boSize, PROT_READ)).toBe(0);
      const target = nextData >= 0 ? nextData : await reserve(alignment, boSize);
      nextData = -1;
      const mflags = MREMAP_MAYMOVE | MREMAP_FIXED | (flags & DONTUNMAP ? MREMAP_DONTUNMAP : 0);
      data = await mm.mremap(old, boSize, boSize, mflags, target);
      expect(data).toBe(target);
      if (flags & READ_ONLY_REMAP) expect(await mm.mprotect(data, boSize, rw)).toBe(0);
      if (flags & DONTUNMAP) expect(await mm.munmap(old, boSize)).toBe(0);
    }
    if (!(flags & EVERY_OTHER_CHECK) || i % 2 === 1) {
      if (flags & FORK_READ) {
        const child = await mm.fork();
        expect(await child.readU32(data + idx * DATA + OFF_DATA), 'child reads the GPU write').toBe(
          valueFor(idx),
        );
        if (!(flags & FORK_READ_AFTER)) await check(data, idx);
        await child.exit();
        if (flags & FORK_READ_AFTER) await check(data, idx);
      } else {
        await check(data, idx);
        if (flags & MULTI_FAULT) {
          for (let j = 1; j < N_MULTI_FAULT; j++) {
            expect(await mm.readU32(data + j * origSize + idx * DATA + OFF_DATA)).toBe(valueFor(idx));
          }
        }
      }
      if (flags & EVERY_OTHER_CHECK) await check(data, prevIdx);
    }
    const onBo = bo !== null;
    if (onBo) await dropBo();
    if (flags & NEW) {
      if (onBo) {
        // the BO's VA was unmapped with it
      } else if (flags & FREE) expect(await mm.munmap(data, boSize)).toBe(0);
      else toFree.push(data);
      expected.clear();
      if (flags & BO_MAP && i % 2 === 1) {
        // __aligned_alloc reserves the VA; xe_bo_map_fixed + VM_BIND MAP put a VRAM BO there
        data = await reserve(alignment, boSize);
        const b = vm!.device.createBo(boSize) as BufferObject;
        expect(typeof b, 'BO_MAP: xe_bo_create').toBe('object');
        expect(await vm!.bindBo(b, 0, data, boSize)).toBe(0);
        bo = b;
        if (!(flags & SKIP_MEMSET)) for (let o = 0; o < boSize; o += 4) b.write32(o, 0x05050505);
      } else data = await allocate(true);
    }
    prevIdx = idx;
  }
  if (bo !== null) {
    await dropBo();
    data = -1;
  }
  if (opts.afterExecs !== undefined) await opts.afterExecs(data, boSize);
  if (flags & BUSY) {
    // unbind_system_allocator() while the allocations still have ranges (xe_svm_has_mapping)
    const all = vm!.vaEnd - vm!.svm.mmStart;
    expect(await vm!.unbind(vm!.svm.mmStart, all), 'BUSY: the unbind is refused').toBe(-Errno.EBUSY);
    expect(vm!.isMirrored(data), 'a refused unbind changes nothing').toBe(true);
  }
  for (const a of toFree) expect(await mm.munmap(a, boSize)).toBe(0);
  if (fenceAt >= 0) expect(await mm.munmap(fenceAt, P)).toBe(0);
  if (ownData && data >= 0) expect(await mm.munmap(data, boSize)).toBe(0);
  for (const q of queues) expect(q.completed, `exec queue ${q.id} ran its execs`).toBe(q.submitted);
  return outcomes;
}
