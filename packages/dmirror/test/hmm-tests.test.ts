/**
 * tools/testing/selftests/mm/hmm-tests.c, TEST_F(hmm, ...): every test of the `hmm` fixture,
 * run for both variants (hmm_device_private opens dmirror0, hmm_device_coherent dmirror2).
 * Each `it` carries the C test's name and asserts the C test's values. The `hmm2` fixture is in
 * hmm2-tests.test.ts.
 */
import {
  MADV_COLLAPSE,
  MADV_FREE,
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  MAP_ANONYMOUS,
  MAP_HUGETLB,
  MAP_PRIVATE,
  MAP_SHARED,
  type Mm,
  MmSignalError,
  MREMAP_DONTUNMAP,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  O_RDWR,
  PMD_SIZE,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  TmpFile,
} from '@hmmkit/mm';
import { Errno, Rng } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  dmirrorOpen,
  HMM_DMIRROR_CHECK_EXCLUSIVE,
  HMM_DMIRROR_EXCLUSIVE,
  HMM_DMIRROR_FLAG_FAIL_ALLOC,
  HMM_DMIRROR_FLAGS,
  HMM_DMIRROR_MIGRATE_TO_DEV,
  HMM_DMIRROR_MIGRATE_TO_SYS,
  HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL,
  HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL,
  HMM_DMIRROR_PROT_PMD,
  HMM_DMIRROR_PROT_PUD,
  HMM_DMIRROR_PROT_READ,
  HMM_DMIRROR_PROT_WRITE,
  HMM_DMIRROR_READ,
  HMM_DMIRROR_RELEASE,
  HMM_DMIRROR_SNAPSHOT,
  HMM_DMIRROR_WRITE,
} from '../src/index.ts';
import {
  FOLL_LONGTERM,
  GUP_BASIC_TEST,
  GUP_FAST_BENCHMARK,
  gupTestExec,
  PIN_FAST_BENCHMARK,
  PIN_LONGTERM_BENCHMARK,
} from './gup.ts';
import {
  align,
  cpuInit,
  cpuRead,
  firstMismatch,
  forkAndWait,
  HMM_BUFFER_SIZE,
  HMM_VARIANTS,
  hmmBuffer,
  hmmDmirrorCmd,
  hmmSetup,
  i32,
  NTIMES,
  PS,
  runMigrationBenchmark,
  TWOMEG,
} from './harness.ts';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const NPAGES = align(HMM_BUFFER_SIZE, PS) / PS;
const SIZE = NPAGES * PS;
const M2D = HMM_DMIRROR_MIGRATE_TO_DEV;
const M2S = HMM_DMIRROR_MIGRATE_TO_SYS;
/** read_pmd_pagesize(). */
const PMD = PMD_SIZE;

const id = (i: number) => i;

describe.each(HMM_VARIANTS)('hmm.$name', ({ device, coherent }) => {
  /** FIXTURE_SETUP + the body + FIXTURE_TEARDOWN (close must return 0). */
  async function run(
    body: (f: Awaited<ReturnType<typeof hmmSetup>>) => Promise<void>,
    opts = {},
    seed = 1,
  ): Promise<void> {
    const f = await hmmSetup(device, opts, seed);
    await body(f);
    expect(await f.fd.close()).toBe(0);
  }

  it('open_close', async () => {
    await run(async ({ fd }) => {
      expect(fd.isClosed).toBe(false);
    });
  });

  it('anon_read', async () => {
    await run(async ({ mm, fd }) => {
      const ptr = await mm.mmap(0, SIZE, RW, ANON);
      const b = hmmBuffer(ptr, SIZE);
      // Initialise all but the first two pages (pte_none and the zero page).
      const skip = (2 * PS) / 4;
      await mm.writeI32Array(
        ptr + 2 * PS,
        new Int32Array(SIZE / 4 - skip).map((_, k) => k + skip),
      );
      expect(await mm.mprotect(ptr, SIZE, PROT_READ)).toBe(0);
      expect(await mm.readI32(ptr + PS)).toBe(0);
      expect(await hmmDmirrorCmd(fd, HMM_DMIRROR_READ, b, NPAGES)).toBe(0);
      expect(b.cpages).toBe(NPAGES);
      expect(b.faults).toBe(1);
      const m = i32(b.mirror);
      expect(firstMismatch(m, () => 0, 0, skip)).toBe(-1);
      expect(firstMismatch(m, id, skip)).toBe(-1);
    });
  });

  it('anon_read_prot', async () => {
    await run(async ({ mm, fd }) => {
      const ptr = await mm.mmap(0, SIZE, RW, ANON);
      const b = hmmBuffer(ptr, SIZE);
      await cpuInit(mm, ptr, SIZE, id);
      i32(b.mirror).set(new Int32Array(SIZE / 4).map((_, k) => -k));
      expect(await mm.mprotect(ptr, SIZE, PROT_NONE)).toBe(0);
      expect(await hmmDmirrorCmd(fd, HMM_DMIRROR_READ, b, NPAGES)).toBe(-Errno.EFAULT);
      expect(await mm.mprotect(ptr, SIZE, PROT_READ)).toBe(0);
      expect(firstMismatch(await cpuRead(mm, ptr, SIZE), id)).toBe(-1);
      expect(firstMismatch(i32(b.mirror), (k) => -k)).toBe(-1);
    });
  });

  it('anon_write', async () => {
    await run(async ({ mm, fd }) => {
      const ptr = await mm.mmap(0, SIZE, RW, ANON);
      const b = hmmBuffer(ptr, SIZE);
      i32(b.mirror).set(new Int32Array(SIZE / 4).map((_, k) => k));
      expect(await hmmDmirrorCmd(fd, HMM_DMIRROR_WRITE, b, NPAGES)).toBe(0);
      expect(b.cpages).toBe(NPAGES);
      expect(b.faults).toBe(1);
      expect(firstMismatch(await cpuRead(mm, ptr, SIZE), id)).toBe(-1);
    });
  });

  it('anon_write_prot', async () => {
    await run(async ({ mm, fd }) => {
      const ptr = await mm.mmap(0, SIZE, PROT_READ, ANON);
      const b = hmmBuffer(ptr, SIZE);
      expect(await hmmDmirrorCmd(fd, HMM_DMIRROR_READ, b, 1)).toBe(0);
      expect(b.cpages).toBe(1);
      expect(b.faults).toBe(1);
      i32(b.mirror).set(new Int32Array(SIZE / 4).map((_, k) => k));
      expect(await hmmDmirrorCmd(fd, HMM_DMIRROR_WRITE, b, NPAGES)).toBe(-Errno.EPERM);
      expect(firstMismatch(await cpuRead(mm, ptr, SIZE), () => 0)).toBe(-1);
      expect(await mm.mprotect(ptr, SIZE, RW)).toBe(0);
      expect(await hmmDmirrorCmd(fd, HMM_DMIRROR_WRITE, b, NPAGES)).toBe(0);
      expect(b.cpages).toBe(NPAGES);
      expect(b.faults).toBe(1);
      expect(firstMismatch(await cpuRead(mm, ptr, SIZE), id)).toBe(-1);
    });
  });

  it('anon_write_child', async () => {
    await run(async ({ machine, mm, fd }) => {
      for (let migrate = 0; migrate < 2; ++migrate) {
        for (let useThp = 0; useThp < 2; ++useThp) {
          const npages = align(useThp ? PMD : HMM_BUFFER_SIZE, PS) / PS;
          const size = npages * PS;
          const old = await mm.mmap(0, size * 2, RW, ANON);
          let ptr = old;
          if (useThp) {
            ptr = align(old, size);
            expect(await mm.madvise(ptr, size, MADV_HUGEPAGE)).toBe(0);
          }
          const b = hmmBuffer(ptr, size * 2, size);
          await cpuInit(mm, ptr, size, id);
          i32(b.mirror).set(new Int32Array(size / 4).map((_, k) => -k));
          if (migrate) {
            expect(await hmmDmirrorCmd(fd, M2D, b, npages)).toBe(0);
            expect(b.cpages).toBe(npages);
          }
          // The child works on its own copy of the mirror buffer (fork copies the heap).
          const childMirror = b.mirror.slice();
          const st = await forkAndWait(mm, async (child) => {
            const cb = { ...b, mirror: childMirror };
            expect(firstMismatch(await cpuRead(child, ptr, size), id)).toBe(-1);
            if (!migrate) expect(firstMismatch(i32(cb.mirror), (k) => -k)).toBe(-1);
            const childFd = await dmirrorOpen(machine, child, 0);
            expect(await hmmDmirrorCmd(childFd, HMM_DMIRROR_WRITE, cb, npages)).toBe(0);
            expect(cb.cpages).toBe(npages);
            expect(cb.faults).toBe(1);
            if (!migrate) expect(firstMismatch(await cpuRead(child, ptr, size), (k) => -k)).toBe(-1);
            await childFd.close();
          });
          expect(st.error).toBe(null);
          expect(st.exited).toBe(true);
          expect(firstMismatch(await cpuRead(mm, ptr, size), id)).toBe(-1);
          expect(await mm.munmap(old, size * 2)).toBe(0);
        }
      }
    });
  });

  it('anon_write_child_shared', async () => {
    await run(async ({ machine, mm }) => {
      const ptr = await mm.mmap(0, SIZE, RW, MAP_SHARED | MAP_ANONYMOUS);
      const b = hmmBuffer(ptr, SIZE);
      await cpuInit(mm, ptr, SIZE, id);
      i32(b.mirror).set(new Int32Array(SIZE / 4).map((_, k) => -k));
      const st = await forkAndWait(mm, async (child) => {
        expect(firstMismatch(await cpuRead(child, ptr, SIZE), id)).toBe(-1);
        expect(firstMismatch(i32(b.mirror), (k) => -k)).toBe(-1);
        const childFd = await dmirrorOpen(machine, child, 0);
        expect(await hmmDmirrorCmd(childFd, HMM_DMIRROR_WRITE, b, NPAGES)).toBe(0);
        expect(b.cpages).toBe(NPAGES);
        expect(b.faults).toBe(1);
        expect(firstMismatch(await cpuRead(child, ptr, SIZE), (k) => -k)).toBe(-1);
        await childFd.close();
      });
      expect(st.error).toBe(null);
      expect(st.exited).toBe(true);
      expect(firstMismatch(await cpuRead(mm, ptr, SIZE), (k) => -k)).toBe(-1);
    });
  });

  it('anon_write_huge', async () => {
    await run(async ({ mm, fd }) => {
      const size = 2 * PMD;
      const old = await mm.mmap(0, size, RW, ANON);
      const sz = size / 2;
      const npages = sz / PS;
      const ptr = align(old, sz);
      expect(await mm.madvise(ptr, sz, MADV_HUGEPAGE)).toBe(0);
      const b = hmmBuffer(ptr, sz);
      i32(b.mirror).set(new Int32Array(sz / 4).map((_, k) => k));
      expect(await hmmDmirrorCmd(fd, HMM_DMIRROR_WRITE, b, npages)).toBe(0);
      expect(b.cpages).toBe(npages);
      expect(b.faults).toBe(1);
      expect(firstMismatch(await cpuRead(mm, ptr, sz), id)).toBe(-1);
    });
  });

  it('anon_write_hugetlbfs', async () => {
    await run(async ({ mm, fd, machine }) => {
      // SKIP condition of the C test: no free default hugepages. The machine has 64.
      expect(machine.phys.hugetlbFree).toBeGreaterThan(0);
      const size = align(TWOMEG, PMD_SIZE);
      const npages = size / PS;
      const ptr = await mm.mmap(0, size, RW, ANON | MAP_HUGETLB);
      expect(ptr).toBeGreaterThan(0);
      const b = hmmBuffer(ptr, size);
      i32(b.mirror).set(new Int32Array(size / 4).map((_, k) => k));
      expect(await hmmDmirrorCmd(fd, HMM_DMIRROR_WRITE, b, npages)).toBe(0);
      expect(b.cpages).toBe(npages);
      expect(b.faults).toBe(1);
      expect(firstMismatch(await cpuRead(mm, ptr, size), id)).toBe(-1);
    });
  });

  it('file_read', async () => {
    await run(async ({ mm, fd, machine }) => {
      const file = new TmpFile(machine.phys, SIZE, O_RDWR);
      const data = new Int32Array(SIZE / 4).map((_, k) => k);
      expect(await file.pwrite(new Uint8Array(data.buffer), 0)).toBe(SIZE);
      const ptr = await mm.mmap(0, SIZE, PROT_READ, MAP_SHARED, file, 0);
      const b = hmmBuffer(ptr, SIZE);
      expect(await hmmDmirrorCmd(fd, HMM_DMIRROR_READ, b, NPAGES)).toBe(0);
      expect(b.cpages).toBe(NPAGES);
      expect(b.faults).toBe(1);
      expect(firstMismatch(i32(b.mirror), id)).toBe(-1);
    });
  });

  it('file_write', async () => {
    await run(async ({ mm, fd, machine }) => {
      const file = new TmpFile(machine.phys, SIZE, O_RDWR);
      const ptr = await mm.mmap(0, SIZE, RW, MAP_SHARED, file, 0);
      const b = hmmBuffer(ptr, SIZE);
      i32(b.mirror).set(new Int32Array(SIZE / 4).map((_, k) => k));
      expect(await hmmDmirrorCmd(fd, HMM_DMIRROR_WRITE, b, NPAGES)).toBe(0);
      expect(b.cpages).toBe(NPAGES);
      expect(b.faults).toBe(1);
      expect(firstMismatch(await cpuRead(mm, ptr, SIZE), id)).toBe(-1);
      const back = new Uint8Array(SIZE);
      expect(await file.pread(back, 0)).toBe(SIZE);
      expect(firstMismatch(i32(back), id)).toBe(-1);
    });
  });

  it('migrate', async () => {
    await run(async ({ mm, fd }) => {
      const ptr = await mm.mmap(0, SIZE, RW, ANON);
      const b = hmmBuffer(ptr, SIZE);
      await cpuInit(mm, ptr, SIZE, id);
      expect(await hmmDmirrorCmd(fd, M2D, b, NPAGES)).toBe(0);
      expect(b.cpages).toBe(NPAGES);
      expect(firstMismatch(i32(b.mirror), id)).toBe(-1);
    });
  });

  it('migrate_file_private', async () => {
    await run(async ({ mm, fd, machine }) => {
      const file = new TmpFile(machine.phys, SIZE, O_RDWR);
      const ptr = await mm.mmap(0, SIZE, RW, MAP_PRIVATE, file, 0);
      const b = hmmBuffer(ptr, SIZE);
      await cpuInit(mm, ptr, SIZE, id); // COW: the pages become anonymous
      expect(await hmmDmirrorCmd(fd, M2D, b, NPAGES)).toBe(0);
      expect(b.cpages).toBe(NPAGES);
      expect(firstMismatch(i32(b.mirror), id)).toBe(-1);
    });
  });

  it('migrate_fault', async () => {
    await run(async ({ mm, fd }) => {
      const ptr = await mm.mmap(0, SIZE, RW, ANON);
      const b = hmmBuffer(ptr, SIZE);
      await cpuInit(mm, ptr, SIZE, id);
      expect(await hmmDmirrorCmd(fd, M2D, b, NPAGES)).toBe(0);
      expect(b.cpages).toBe(NPAGES);
      expect(firstMismatch(i32(b.mirror), id)).toBe(-1);
      // Fault half the pages back to system memory and check them.
      expect(firstMismatch(await cpuRead(mm, ptr, SIZE / 2), id)).toBe(-1);
      expect(await hmmDmirrorCmd(fd, M2D, b, NPAGES)).toBe(0);
      expect(b.cpages).toBe(NPAGES);
      expect(firstMismatch(i32(b.mirror), id)).toBe(-1);
    });
  });

  it('migrate_release', async () => {
    await run(async ({ mm, fd }) => {
      const ptr = await mm.mmap(0, SIZE, RW, ANON);
      const b = hmmBuffer(ptr, SIZE);
      await cpuInit(mm, ptr, SIZE, id);
      expect(await hmmDmirrorCmd(fd, M2D, b, NPAGES)).toBe(0);
      expect(b.cpages).toBe(NPAGES);
      expect(firstMismatch(i32(b.mirror), id)).toBe(-1);
      expect(await hmmDmirrorCmd(fd, HMM_DMIRROR_RELEASE, b, NPAGES)).toBe(0);
      expect(firstMismatch(await cpuRead(mm, ptr, SIZE / 2), id)).toBe(-1);
      // Beyond the C test: RELEASE evicted every page, so nothing is device memory any more.
      const snap = hmmBuffer(ptr, SIZE, NPAGES);
      expect(await hmmDmirrorCmd(fd, HMM_DMIRROR_SNAPSHOT, snap, NPAGES)).toBe(0);
      expect(snap.mirror.every((v) => v === HMM_DMIRROR_PROT_WRITE)).toBe(true);
    });
  });

  it('migrate_shared', async () => {
    await run(async ({ mm, fd }) => {
      const ptr = await mm.mmap(0, SIZE, RW, MAP_SHARED | MAP_ANONYMOUS);
      const b = hmmBuffer(ptr, SIZE);
      expect(await hmmDmirrorCmd(fd, M2D, b, NPAGES)).toBe(-Errno.ENOENT);
    });
  });

  it('migrate_multiple', async () => {
    await run(async ({ mm, fd }) => {
      for (let c = 0; c < NTIMES; c++) {
        const ptr = await mm.mmap(0, SIZE, RW, ANON);
        const b = hmmBuffer(ptr, SIZE);
        await cpuInit(mm, ptr, SIZE, id);
        expect(await hmmDmirrorCmd(fd, M2D, b, NPAGES)).toBe(0);
        expect(b.cpages).toBe(NPAGES);
        expect(firstMismatch(i32(b.mirror), id)).toBe(-1);
        if (coherent) {
          expect(await hmmDmirrorCmd(fd, M2S, b, NPAGES)).toBe(0);
          expect(b.cpages).toBe(NPAGES);
        }
        expect(firstMismatch(await cpuRead(mm, ptr, SIZE), id)).toBe(-1);
        expect(await mm.munmap(ptr, SIZE)).toBe(0);
      }
    });
  });

  it('anon_read_multiple', async () => {
    await run(async ({ mm, fd }) => {
      for (let c = 0; c < NTIMES; c++) {
        const ptr = await mm.mmap(0, SIZE, RW, ANON);
        const b = hmmBuffer(ptr, SIZE);
        await cpuInit(mm, ptr, SIZE, (i) => i + c);
        expect(await hmmDmirrorCmd(fd, HMM_DMIRROR_READ, b, NPAGES)).toBe(0);
        expect(b.cpages).toBe(NPAGES);
        expect(b.faults).toBe(1);
        expect(firstMismatch(i32(b.mirror), (i) => i + c)).toBe(-1);
        expect(await mm.munmap(ptr, SIZE)).toBe(0);
      }
    });
  });

  // The C test races a pthread (sleep rand() % 32000 ns, munmap the second half) against READ.
  // Here the two run as scheduler tasks; several seeds give different interleavings and delays.
  it.each([1, 2, 3, 4])('anon_teardown (scheduler seed %i)', async (seed) => {
    await run(
      async ({ sim, mm, fd }) => {
        const rng = new Rng(seed);
        for (let c = 0; c < NTIMES; ++c) {
          const ptr = await mm.mmap(0, SIZE, RW, ANON);
          const b = hmmBuffer(ptr, SIZE);
          await cpuInit(mm, ptr, SIZE, (i) => i + c);
          let rc = 1;
          sim.sched.spawn('unmap_buffer', async () => {
            await sim.sched.sleep(rng.below(32000));
            await mm.munmap(ptr + SIZE / 2, SIZE / 2);
          });
          sim.sched.spawn('reader', async () => {
            rc = await hmmDmirrorCmd(fd, HMM_DMIRROR_READ, b, NPAGES);
          });
          await sim.sched.run(); // pthread_join
          if (rc === 0) {
            expect(b.cpages).toBe(NPAGES);
            expect(b.faults).toBe(1);
            expect(firstMismatch(i32(b.mirror), (i) => i + c)).toBe(-1);
          } else {
            expect(rc).toBe(-Errno.EFAULT);
          }
          await mm.munmap(ptr, SIZE);
        }
      },
      {},
      seed,
    );
  });

  // Beyond the C test: with rand() % 32000 ns the munmap always wins against a 4 MiB READ (on
  // Linux too, the READ takes far longer than 32 µs), so only the -EFAULT path runs above. Here
  // the unmapper's delay is drawn over twice the READ's own (virtual) duration, so the race
  // lands before, inside and after the READ; both outcomes must occur and a successful READ must
  // still return every page.
  it('anon_teardown (widened race window)', async () => {
    await run(async ({ sim, mm, fd }) => {
      const probe = await mm.mmap(0, SIZE, RW, ANON);
      await cpuInit(mm, probe, SIZE, id);
      const t0 = sim.now;
      expect(await hmmDmirrorCmd(fd, HMM_DMIRROR_READ, hmmBuffer(probe, SIZE), NPAGES)).toBe(0);
      const readNs = sim.now - t0;
      await mm.munmap(probe, SIZE);
      const rng = new Rng(7);
      const outcomes = new Set<number>();
      for (let c = 0; c < 12; ++c) {
        const ptr = await mm.mmap(0, SIZE, RW, ANON);
        const b = hmmBuffer(ptr, SIZE);
        await cpuInit(mm, ptr, SIZE, (i) => i + c);
        let rc = 1;
        const delay = rng.below(2 * readNs);
        sim.sched.spawn('unmap_buffer', async () => {
          await sim.sched.sleep(delay);
          await mm.munmap(ptr + SIZE / 2, SIZE / 2);
        });
        sim.sched.spawn('reader', async () => {
          rc = await hmmDmirrorCmd(fd, HMM_DMIRROR_READ, b, NPAGES);
        });
        await sim.sched.run();
        outcomes.add(rc);
        if (rc === 0) {
          expect(b.cpages).toBe(NPAGES);
          expect(b.faults).toBe(1);
          expect(firstMismatch(i32(b.mirror), (i) => i + c)).toBe(-1);
        } else expect(rc).toBe(-Errno.EFAULT);
        await mm.munmap(ptr, SIZE);
      }
      expect([...outcomes].sort()).toEqual([-Errno.EFAULT, 0]);
    });
  });

  it('mixedmap', async () => {
    await run(async ({ mm, fd }) => {
      const ptr = await mm.mmap(0, PS, RW, MAP_PRIVATE, fd.file, 0);
      expect(ptr).toBeGreaterThan(0);
      const b = hmmBuffer(ptr, PS, 1);
      expect(await hmmDmirrorCmd(fd, HMM_DMIRROR_SNAPSHOT, b, 1)).toBe(0);
      expect(b.cpages).toBe(1);
      expect(b.mirror[0]).toBe(HMM_DMIRROR_PROT_READ);
    });
  });

  it('compound', async () => {
    await run(async ({ mm, fd, machine }) => {
      expect(machine.phys.hugetlbFree).toBeGreaterThan(0); // the C test SKIPs otherwise
      const size = align(TWOMEG, PMD_SIZE);
      const npages = size / PS;
      const ptr = await mm.mmap(0, size, RW, ANON | MAP_HUGETLB);
      expect(ptr).toBeGreaterThan(0);
      const b = hmmBuffer(ptr, size, npages);
      await cpuInit(mm, ptr, size, id);
      expect(await hmmDmirrorCmd(fd, HMM_DMIRROR_SNAPSHOT, b, npages)).toBe(0);
      expect(b.cpages).toBe(npages);
      let level = b.mirror[0]! & HMM_DMIRROR_PROT_PUD ? HMM_DMIRROR_PROT_PUD : HMM_DMIRROR_PROT_PMD;
      expect(level).toBe(HMM_DMIRROR_PROT_PMD); // 2 MiB default hugepages
      expect(b.mirror.every((v) => v === (HMM_DMIRROR_PROT_WRITE | level))).toBe(true);
      expect(await mm.mprotect(ptr, size, PROT_READ)).toBe(0);
      expect(await hmmDmirrorCmd(fd, HMM_DMIRROR_SNAPSHOT, b, npages)).toBe(0);
      expect(b.cpages).toBe(npages);
      level = b.mirror[0]! & HMM_DMIRROR_PROT_PUD ? HMM_DMIRROR_PROT_PUD : HMM_DMIRROR_PROT_PMD;
      expect(b.mirror.every((v) => v === (HMM_DMIRROR_PROT_READ | level))).toBe(true);
      expect(await mm.munmap(ptr, size)).toBe(0);
    });
  });

  it('exclusive', async () => {
    await run(async ({ mm, fd }) => {
      const ptr = await mm.mmap(0, SIZE, RW, ANON);
      const b = hmmBuffer(ptr, SIZE);
      await cpuInit(mm, ptr, SIZE, id);
      expect(await hmmDmirrorCmd(fd, HMM_DMIRROR_EXCLUSIVE, b, NPAGES)).toBe(0);
      expect(b.cpages).toBe(NPAGES);
      expect(firstMismatch(i32(b.mirror), id)).toBe(-1);
      // ptr[i]++ == i for every int: loads (revoking exclusive access) then stores.
      const cur = await cpuRead(mm, ptr, SIZE);
      expect(firstMismatch(cur, id)).toBe(-1);
      await mm.writeI32Array(
        ptr,
        cur.map((v) => v + 1),
      );
      expect(firstMismatch(await cpuRead(mm, ptr, SIZE), (i) => i + 1)).toBe(-1);
      expect(await hmmDmirrorCmd(fd, HMM_DMIRROR_CHECK_EXCLUSIVE, b, NPAGES)).toBe(0);
    });
  });

  it('exclusive_mprotect', async () => {
    await run(async ({ mm, fd }) => {
      const ptr = await mm.mmap(0, SIZE, RW, ANON);
      const b = hmmBuffer(ptr, SIZE);
      await cpuInit(mm, ptr, SIZE, id);
      expect(await hmmDmirrorCmd(fd, HMM_DMIRROR_EXCLUSIVE, b, NPAGES)).toBe(0);
      expect(b.cpages).toBe(NPAGES);
      expect(firstMismatch(i32(b.mirror), id)).toBe(-1);
      expect(await mm.mprotect(ptr, SIZE, PROT_READ)).toBe(0);
      expect(await hmmDmirrorCmd(fd, HMM_DMIRROR_WRITE, b, NPAGES)).toBe(-Errno.EPERM);
    });
  });

  it('exclusive_cow', async () => {
    await run(async ({ mm, fd }) => {
      const ptr = await mm.mmap(0, SIZE, RW, ANON);
      const b = hmmBuffer(ptr, SIZE);
      await cpuInit(mm, ptr, SIZE, id);
      expect(await hmmDmirrorCmd(fd, HMM_DMIRROR_EXCLUSIVE, b, NPAGES)).toBe(0);
      expect(b.cpages).toBe(NPAGES);
      const incr = async (p: Mm) => {
        const cur = await cpuRead(p, ptr, SIZE);
        expect(firstMismatch(cur, id)).toBe(-1);
        await p.writeI32Array(
          ptr,
          cur.map((v) => v + 1),
        );
        expect(firstMismatch(await cpuRead(p, ptr, SIZE), (i) => i + 1)).toBe(-1);
      };
      const child = await mm.fork();
      // Parent first, then the child (the C processes run concurrently; each checks its own copy).
      await incr(mm);
      let exited = true;
      try {
        await incr(child);
      } catch {
        exited = false;
      }
      await child.exit();
      expect(exited).toBe(true); // WIFEXITED && WEXITSTATUS == 0
    });
  });

  // gup_test is a debugfs module; test/gup.ts models its four ioctls on the simulated mm
  // (get_user_pages / _fast with FOLL_WRITE, pin_user_pages with FOLL_LONGTERM migrating a
  // device-coherent page out, as check_and_migrate_movable_pages() does).
  it('hmm_gup_test', async () => {
    await run(async ({ mm, fd }) => {
      const npages = 4;
      const size = npages * PS;
      const ptr = await mm.mmap(0, size, RW, ANON);
      const b = hmmBuffer(ptr, size);
      await cpuInit(mm, ptr, size, id);
      expect(await hmmDmirrorCmd(fd, M2D, b, npages)).toBe(0);
      expect(b.cpages).toBe(npages);
      expect(firstMismatch(i32(b.mirror), id)).toBe(-1);
      expect(await gupTestExec(mm, ptr, GUP_BASIC_TEST, 1, PS, 0)).toBe(0);
      expect(await gupTestExec(mm, ptr + PS, GUP_FAST_BENCHMARK, 1, PS, 0)).toBe(0);
      expect(await gupTestExec(mm, ptr + 2 * PS, PIN_FAST_BENCHMARK, 1, PS, FOLL_LONGTERM)).toBe(0);
      expect(await gupTestExec(mm, ptr + 3 * PS, PIN_LONGTERM_BENCHMARK, 1, PS, 0)).toBe(0);
      expect(await hmmDmirrorCmd(fd, HMM_DMIRROR_SNAPSHOT, b, npages)).toBe(0);
      expect(b.cpages).toBe(npages);
      const m = b.mirror;
      if (coherent) {
        expect(m[0]).toBe(HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL | HMM_DMIRROR_PROT_WRITE);
        expect(m[1]).toBe(HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL | HMM_DMIRROR_PROT_WRITE);
      } else {
        expect(m[0]).toBe(HMM_DMIRROR_PROT_WRITE);
        expect(m[1]).toBe(HMM_DMIRROR_PROT_WRITE);
      }
      expect(m[2]).toBe(HMM_DMIRROR_PROT_WRITE);
      expect(m[3]).toBe(HMM_DMIRROR_PROT_WRITE);
      expect(firstMismatch(await cpuRead(mm, ptr, size), id)).toBe(-1);
    });
  });

  it('hmm_cow_in_device', async () => {
    await run(async ({ mm, fd }) => {
      const npages = 4;
      const size = npages * PS;
      const ptr = await mm.mmap(0, size, RW, ANON);
      const b = hmmBuffer(ptr, size);
      await cpuInit(mm, ptr, size, id);
      expect(await hmmDmirrorCmd(fd, M2D, b, npages)).toBe(0);
      expect(b.cpages).toBe(npages);
      // fork(): the child spins until SIGKILL; it never touches memory, so it is a bare mm here.
      const child = await mm.fork();
      await cpuInit(mm, ptr, size, id);
      // kill(pid, SIGKILL) + waitpid: WIFSIGNALED with SIGKILL — the child's mm goes away.
      await child.exit();
      expect(await hmmDmirrorCmd(fd, HMM_DMIRROR_SNAPSHOT, b, npages)).toBe(0);
      expect(b.cpages).toBe(npages);
      for (let i = 0; i < npages; i++) expect(b.mirror[i]).toBe(HMM_DMIRROR_PROT_WRITE);
    });
  });

  it('migrate_anon_huge_empty', async () => {
    await run(async ({ mm, fd }) => {
      const size = PMD;
      const old = await mm.mmap(0, 2 * size, PROT_READ, ANON);
      const b = hmmBuffer(old, 2 * size, size);
      b.mirror.fill(0xff);
      const npages = size / PS;
      const map = align(old, size);
      expect(await mm.madvise(map, size, MADV_HUGEPAGE)).toBe(0);
      b.ptr = map;
      expect(await hmmDmirrorCmd(fd, M2D, b, npages)).toBe(0);
      expect(b.cpages).toBe(npages);
      expect(firstMismatch(i32(b.mirror), () => 0)).toBe(-1);
    });
  });

  it('migrate_anon_huge_zero', async () => {
    await run(async ({ mm, fd }) => {
      const size = PMD;
      const old = await mm.mmap(0, 2 * size, PROT_READ, ANON);
      const b = hmmBuffer(old, 2 * size, size);
      b.mirror.fill(0xff);
      const npages = size / PS;
      const map = align(old, size);
      expect(await mm.madvise(map, size, MADV_HUGEPAGE)).toBe(0);
      b.ptr = map;
      expect(await mm.readI32(map)).toBe(0); // the huge zero page
      expect(await hmmDmirrorCmd(fd, M2D, b, npages)).toBe(0);
      expect(b.cpages).toBe(npages);
      expect(firstMismatch(i32(b.mirror), () => 0)).toBe(-1);
      expect(firstMismatch(await cpuRead(mm, map, size), () => 0)).toBe(-1);
    });
  });

  it('migrate_anon_huge_free', async () => {
    await run(async ({ mm, fd }) => {
      const size = PMD;
      const old = await mm.mmap(0, 2 * size, RW, ANON);
      const b = hmmBuffer(old, 2 * size, size);
      b.mirror.fill(0xff);
      const npages = size / PS;
      const map = align(old, size);
      expect(await mm.madvise(map, size, MADV_HUGEPAGE)).toBe(0);
      b.ptr = map;
      await cpuInit(mm, map, size, id);
      expect(await hmmDmirrorCmd(fd, M2D, b, npages)).toBe(0);
      expect(b.cpages).toBe(npages);
      expect(firstMismatch(i32(b.mirror), id)).toBe(-1);
      expect(await mm.madvise(map, size, MADV_FREE)).toBe(0);
    });
  });

  it('migrate_anon_huge_fault', async () => {
    await run(async ({ mm, fd }) => {
      const size = PMD;
      const old = await mm.mmap(0, 2 * size, RW, ANON);
      const b = hmmBuffer(old, 2 * size, size);
      b.mirror.fill(0xff);
      const npages = size / PS;
      const map = align(old, size);
      b.ptr = map;
      await cpuInit(mm, map, size, id);
      expect(await mm.madvise(map, size, MADV_COLLAPSE)).toBe(0);
      expect(await hmmDmirrorCmd(fd, M2D, b, npages)).toBe(0);
      expect(b.cpages).toBe(npages);
      expect(firstMismatch(i32(b.mirror), id)).toBe(-1);
      if (!coherent) {
        expect(await hmmDmirrorCmd(fd, HMM_DMIRROR_SNAPSHOT, b, npages)).toBe(0);
        expect(b.cpages).toBe(npages);
        const want = HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE | HMM_DMIRROR_PROT_PMD;
        const bad = b.mirror.subarray(0, npages).findIndex((v) => v !== want);
        expect(bad === -1 ? -1 : `${bad}: ${b.mirror[bad]}`).toBe(-1);
        for (let i = 0; i < npages; i++) {
          const e = mm.pagemapEntry(map + i * PS);
          expect(e.swap).toBe(true); // PM_SWAP
          expect(e.present).toBe(false); // !PAGEMAP_PRESENT
        }
      }
      expect(firstMismatch(await cpuRead(mm, map, size), id)).toBe(-1);
    });
  });

  it('migrate_partial_unmap_fault', async () => {
    await run(async ({ mm, fd }) => {
      const size = PMD;
      const unmapSize = size / 2;
      const offsets = [0, size / 4, size / 2];
      for (let useThp = 0; useThp < 2; ++useThp) {
        for (const off of offsets) {
          const old = await mm.mmap(0, 2 * size, RW, ANON);
          const b = hmmBuffer(old, 2 * size, size);
          b.mirror.fill(0xff);
          const npages = size / PS;
          const map = align(old, size);
          expect(await mm.madvise(map, size, useThp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE)).toBe(0);
          b.ptr = map;
          await cpuInit(mm, map, size, id);
          expect(await hmmDmirrorCmd(fd, M2D, b, npages)).toBe(0);
          expect(b.cpages).toBe(npages);
          expect(firstMismatch(i32(b.mirror), id)).toBe(-1);
          expect(await mm.munmap(map + off, unmapSize)).toBe(0);
          if (off > 0) expect(firstMismatch(await cpuRead(mm, map, off), id)).toBe(-1);
          const rest = off + unmapSize;
          if (rest < size) {
            expect(firstMismatch(await cpuRead(mm, map + rest, size - rest), (i) => i + rest / 4)).toBe(-1);
          }
          await mm.munmap(old, 2 * size);
        }
      }
    });
  });

  it('migrate_remap_fault', async () => {
    await run(async ({ mm, fd }) => {
      const size = PMD;
      const offsets = [0, size / 4, size / 2];
      for (let before = 0; before < 2; ++before) {
        for (let dontUnmap = 0; dontUnmap < 2; ++dontUnmap) {
          for (let useThp = 0; useThp < 2; ++useThp) {
            for (const off of offsets) {
              const flags = MREMAP_MAYMOVE | MREMAP_FIXED | (dontUnmap ? MREMAP_DONTUNMAP : 0);
              const old = await mm.mmap(0, 8 * size, RW, ANON);
              const b = hmmBuffer(old, 8 * size, size);
              b.mirror.fill(0xff);
              const npages = size / PS;
              const map = align(old, size);
              expect(await mm.madvise(map, size, useThp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE)).toBe(0);
              await mm.munmap(map + size, size * 2);
              b.ptr = map;
              await cpuInit(mm, map, size, id);
              let newPtr = -1;
              if (before) {
                newPtr = await mm.mremap(map, size, size, flags, map + size + off);
                expect(newPtr).toBe(map + size + off);
                b.ptr = newPtr;
              }
              expect(await hmmDmirrorCmd(fd, M2D, b, npages)).toBe(0);
              expect(b.cpages).toBe(npages);
              expect(firstMismatch(i32(b.mirror), id)).toBe(-1);
              if (!before) {
                newPtr = await mm.mremap(map, size, size, flags, map + size + off);
                expect(newPtr).toBe(map + size + off);
                b.ptr = newPtr;
              }
              expect(firstMismatch(await cpuRead(mm, newPtr, size), id)).toBe(-1);
              await mm.munmap(newPtr, size);
              await mm.munmap(old, 8 * size);
            }
          }
        }
      }
    });
  });

  it('migrate_anon_huge_err', async () => {
    await run(async ({ mm, fd }) => {
      const size = PMD;
      let old = await mm.mmap(0, 2 * size, RW, ANON);
      const npages = size / PS;
      let map = align(old, size);
      expect(await mm.madvise(map, size, MADV_HUGEPAGE)).toBe(0);
      const b = hmmBuffer(map, 2 * size, 2 * size);
      b.mirror.fill(0xff);
      await cpuInit(mm, map, size, id);
      expect(await hmmDmirrorCmd(fd, HMM_DMIRROR_FLAGS, b, HMM_DMIRROR_FLAG_FAIL_ALLOC)).toBe(0);
      expect(await hmmDmirrorCmd(fd, M2D, b, npages)).toBe(0);
      expect(b.cpages).toBe(npages);
      expect(firstMismatch(i32(b.mirror), id, 0, size / 4)).toBe(-1);
      expect(await mm.readI32(map + 2048 * 4)).toBe(2048);
      expect(await mm.munmap(old, 2 * size)).toBe(0);
      old = await mm.mmap(0, 2 * size, RW, ANON);
      map = align(old, size);
      expect(await mm.madvise(map, size, MADV_HUGEPAGE)).toBe(0);
      b.ptr = map;
      await cpuInit(mm, map, size, id);
      expect(await hmmDmirrorCmd(fd, M2D, b, npages)).toBe(0);
      expect(b.cpages).toBe(npages);
      expect(await hmmDmirrorCmd(fd, HMM_DMIRROR_FLAGS, b, HMM_DMIRROR_FLAG_FAIL_ALLOC)).toBe(0);
      expect(await hmmDmirrorCmd(fd, M2S, b, npages)).toBe(0);
      expect(await mm.readI32(map + 2048 * 4)).toBe(2048);
    });
  });

  it('migrate_anon_huge_zero_err', async () => {
    await run(async ({ mm, fd }) => {
      const size = PMD;
      let old = await mm.mmap(0, 2 * size, PROT_READ, ANON);
      const npages = size / PS;
      let map = align(old, size);
      expect(await mm.madvise(map, size, MADV_HUGEPAGE)).toBe(0);
      const b = hmmBuffer(map, 2 * size, 2 * size);
      b.mirror.fill(0xff);
      expect(await hmmDmirrorCmd(fd, HMM_DMIRROR_FLAGS, b, HMM_DMIRROR_FLAG_FAIL_ALLOC)).toBe(0);
      expect(await hmmDmirrorCmd(fd, M2D, b, npages)).toBe(0);
      expect(b.cpages).toBe(npages);
      expect(firstMismatch(i32(b.mirror), () => 0, 0, size / 4)).toBe(-1);
      const stale = map; // `ptr` in the C test keeps pointing at the old mapping
      expect(await mm.readI32(map + 2048 * 4)).toBe(0);
      expect(await mm.munmap(old, 2 * size)).toBe(0);
      old = await mm.mmap(0, 2 * size, PROT_READ, ANON);
      map = align(old, size);
      expect(await mm.madvise(map, size, MADV_HUGEPAGE)).toBe(0);
      b.ptr = map;
      // Quirk kept: "ret = ptr[0]" reads through the stale pointer of the unmapped region. The
      // new mapping is placed where the old one was (top-down allocator), so the read succeeds
      // exactly when the addresses coincide, as on Linux.
      if (stale >= old && stale < old + 2 * size) expect(await mm.readI32(stale)).toBe(0);
      else await expect(mm.readI32(stale)).rejects.toBeInstanceOf(MmSignalError);
      expect(await hmmDmirrorCmd(fd, HMM_DMIRROR_FLAGS, b, HMM_DMIRROR_FLAG_FAIL_ALLOC)).toBe(0);
      expect(await hmmDmirrorCmd(fd, M2D, b, npages)).toBe(0);
      expect(b.cpages).toBe(npages);
      expect(firstMismatch(await cpuRead(mm, map, size), () => 0)).toBe(-1);
    });
  });

  // The C test sweeps thp/4 .. 128*thp with 5 timed iterations each and prints a table; it
  // asserts only that every ioctl returns 0. The test keeps the assertion on a reduced sweep
  // (thp/4 .. 2*thp, 1 iteration); bench/thp-migration.bench.ts runs the real sweep.
  it('benchmark_thp_migration', async () => {
    await run(async ({ mm, fd }) => {
      const thp = PMD;
      for (const bufferSize of [thp / 4, thp / 2, thp, thp * 2]) {
        for (const useThp of [1, 0]) {
          expect(await runMigrationBenchmark(mm, fd, useThp, bufferSize, 1)).toBe(0);
        }
      }
    });
  });
});
