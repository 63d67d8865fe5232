import { Errno } from '@hmmkit/sim';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  MADV_COLLAPSE,
  MADV_DONTNEED,
  MADV_HUGEPAGE,
  MADV_PAGEOUT,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
} from '../src/constants.ts';
import { MmSignalError } from '../src/machine.ts';
import type { Mm } from '../src/mm.ts';
import { PTE_PRESENT, PTE_TYPE_MASK } from '../src/page-table.ts';
import { PG } from '../src/physmem.ts';
import { makeDevice, setup } from './helpers.ts';

const NPAGES = 1024; // 4 MiB: two THP-sized blocks
const BASE = 0x40000000;
const P = PAGE_SIZE;

/** The reference model of one process: protection per page (-1 = unmapped) and contents. */
class Model {
  prot = new Int8Array(NPAGES).fill(-1);
  bytes = new Uint8Array(NPAGES * P);
  clone(): Model {
    const m = new Model();
    m.prot.set(this.prot);
    m.bytes.set(this.bytes);
    return m;
  }
}

type Op =
  | { k: 'mmap'; s: number; n: number; prot: number }
  | { k: 'munmap'; s: number; n: number }
  | { k: 'mprotect'; s: number; n: number; prot: number }
  | { k: 'dontneed'; s: number; n: number }
  | { k: 'advise'; s: number; n: number; advice: number }
  | { k: 'write'; page: number; off: number; len: number; val: number }
  | { k: 'read'; page: number; off: number; len: number }
  | { k: 'mremap'; s: number; n: number; d: number }
  | { k: 'dev'; page: number; val: number }
  | { k: 'fork' }
  | { k: 'switch' };

/** A page number, biased towards a small hot set so that operations meet each other. */
const pageNo = fc.oneof(fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: NPAGES - 1 }));
const range = fc
  .tuple(pageNo, fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 600 })))
  .map(([s, n]) => ({ s, n: Math.min(n, NPAGES - s) }));
const prot = fc.constantFrom(PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE);
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.tuple(range, prot).map(([r, p]) => ({ k: 'mmap' as const, ...r, prot: p })) },
  { weight: 2, arbitrary: range.map((r) => ({ k: 'munmap' as const, ...r })) },
  {
    weight: 3,
    arbitrary: fc.tuple(range, prot).map(([r, p]) => ({ k: 'mprotect' as const, ...r, prot: p })),
  },
  { weight: 1, arbitrary: range.map((r) => ({ k: 'dontneed' as const, ...r })) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(range, fc.constantFrom(MADV_HUGEPAGE, MADV_PAGEOUT, MADV_COLLAPSE))
      .map(([r, advice]) => ({ k: 'advise' as const, ...r, advice })),
  },
  {
    weight: 6,
    arbitrary: fc
      .tuple(
        pageNo,
        fc.integer({ min: 0, max: P - 1 }),
        fc.integer({ min: 1, max: 3 * P }),
        fc.integer({ min: 1, max: 255 }),
      )
      .map(([page, off, len, val]) => ({ k: 'write' as const, page, off, len, val })),
  },
  {
    weight: 4,
    arbitrary: fc
      .tuple(pageNo, fc.integer({ min: 0, max: P - 1 }), fc.integer({ min: 1, max: 3 * P }))
      .map(([page, off, len]) => ({ k: 'read' as const, page, off, len })),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(range, pageNo)
      .map(([r, d]) => ({ k: 'mremap' as const, s: r.s, n: Math.min(r.n, NPAGES - d), d })),
  },
  {
    weight: 3,
    arbitrary: fc
      .tuple(pageNo, fc.integer({ min: 1, max: 255 }))
      .map(([page, val]) => ({ k: 'dev' as const, page, val })),
  },
  { weight: 1, arbitrary: fc.constant({ k: 'fork' as const }) },
  { weight: 1, arbitrary: fc.constant({ k: 'switch' as const }) },
);

/** First page of [addr, addr+len) the model forbids, or -1. */
function firstBad(m: Model, addr: number, len: number, write: boolean): number {
  for (let pg = Math.floor((addr - BASE) / P); BASE + pg * P < addr + len; pg++) {
    const pr = pg < NPAGES ? m.prot[pg]! : -1;
    if (pr < 0 || pr === PROT_NONE || (write && !(pr & PROT_WRITE))) return pg;
  }
  return -1;
}

type Device = ReturnType<typeof makeDevice>;

/** Moves the page at `addr` to device-private memory when it is an exclusive anonymous page. */
async function toDevice(mm: Mm, dev: Device, addr: number): Promise<void> {
  const vma = mm.vmaLookup(addr);
  if (vma === null || vma.file !== null || dev.free.length === 0) return;
  if (mm.readEntry(addr).order !== 0) await mm.splitHugePmd(vma, addr);
  const e = mm.readEntry(addr);
  const p = mm.phys;
  if ((e.flags & PTE_TYPE_MASK) !== PTE_PRESENT || p.isZeroPfn(e.val) || p.flags[e.val]! & PG.device) return;
  if (p.mapcount[e.val] !== 1 || p.refcount[e.val] !== 1) return;
  await dev.toDevice(addr, mm);
}

async function apply(mm: Mm, m: Model, o: Op, dev: Device): Promise<void> {
  const at = (pg: number) => BASE + pg * P;
  switch (o.k) {
    case 'dev':
      // store a byte first (when the model allows it) so that there is a page to migrate
      if (m.prot[o.page]! > 0 && m.prot[o.page]! & PROT_WRITE) {
        await mm.writeU8(at(o.page), o.val);
        m.bytes[o.page * P] = o.val;
      }
      await toDevice(mm, dev, at(o.page));
      return;
    case 'mmap': {
      const r = await mm.mmap(at(o.s), o.n * P, o.prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
      expect(r).toBe(at(o.s));
      m.prot.fill(o.prot, o.s, o.s + o.n);
      m.bytes.fill(0, o.s * P, (o.s + o.n) * P);
      return;
    }
    case 'munmap':
      expect(await mm.munmap(at(o.s), o.n * P)).toBe(0);
      m.prot.fill(-1, o.s, o.s + o.n);
      m.bytes.fill(0, o.s * P, (o.s + o.n) * P);
      return;
    case 'mprotect': {
      let want = 0;
      if (m.prot[o.s]! < 0) want = -Errno.ENOMEM;
      else {
        for (let pg = o.s; pg < o.s + o.n; pg++) {
          if (m.prot[pg]! < 0) {
            want = -Errno.ENOMEM;
            break;
          }
          m.prot[pg] = o.prot;
        }
      }
      expect(await mm.mprotect(at(o.s), o.n * P, o.prot)).toBe(want);
      return;
    }
    case 'dontneed': {
      let hole = false;
      for (let pg = o.s; pg < o.s + o.n; pg++) {
        if (m.prot[pg]! < 0) hole = true;
        else m.bytes.fill(0, pg * P, (pg + 1) * P);
      }
      expect(await mm.madvise(at(o.s), o.n * P, MADV_DONTNEED)).toBe(hole ? -Errno.ENOMEM : 0);
      return;
    }
    case 'advise': {
      let hole = false;
      for (let pg = o.s; pg < o.s + o.n; pg++) if (m.prot[pg]! < 0) hole = true;
      const r = await mm.madvise(at(o.s), o.n * P, o.advice);
      if (hole) expect(r).toBe(-Errno.ENOMEM);
      else if (o.advice === MADV_COLLAPSE) expect([0, -Errno.EAGAIN]).toContain(r);
      else expect(r).toBe(0);
      return;
    }
    case 'mremap': {
      const r = await mm.mremap(at(o.s), o.n * P, o.n * P, MREMAP_MAYMOVE | MREMAP_FIXED, at(o.d));
      let mapped = true;
      for (let pg = o.s; pg < o.s + o.n; pg++) if (m.prot[pg]! < 0) mapped = false;
      if (o.s < o.d + o.n && o.d < o.s + o.n) expect(r).toBe(-Errno.EINVAL);
      else if (m.prot[o.s]! < 0) expect(r).toBe(-Errno.EFAULT);
      else if (!mapped || r === -Errno.EFAULT)
        expect(r).toBe(-Errno.EFAULT); // spans a hole or several VMAs
      else {
        expect(r).toBe(at(o.d));
        const prot = m.prot.slice(o.s, o.s + o.n);
        const bytes = m.bytes.slice(o.s * P, (o.s + o.n) * P);
        m.prot.fill(-1, o.s, o.s + o.n);
        m.bytes.fill(0, o.s * P, (o.s + o.n) * P);
        m.prot.set(prot, o.d);
        m.bytes.set(bytes, o.d * P);
      }
      return;
    }
    case 'write': {
      const addr = at(o.page) + o.off;
      const data = new Uint8Array(o.len).fill(o.val);
      const bad = firstBad(m, addr, o.len, true);
      if (bad < 0) {
        await mm.write(addr, data);
        m.bytes.set(data, addr - BASE);
      } else {
        const err = await mm.write(addr, data).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(MmSignalError);
        expect((err as MmSignalError).address).toBe(Math.max(addr, BASE + bad * P));
        const okEnd = Math.max(addr, BASE + bad * P);
        m.bytes.set(data.subarray(0, okEnd - addr), addr - BASE); // stores before the fault landed
      }
      return;
    }
    case 'read': {
      const addr = at(o.page) + o.off;
      const bad = firstBad(m, addr, o.len, false);
      if (bad < 0) {
        const got = await mm.read(addr, o.len);
        const want = m.bytes.subarray(addr - BASE, addr - BASE + o.len);
        expect(Buffer.compare(Buffer.from(got), Buffer.from(want))).toBe(0);
      } else {
        await expect(mm.read(addr, o.len)).rejects.toBeInstanceOf(MmSignalError);
      }
      return;
    }
    default:
      return;
  }
}

describe('property: random syscalls and accesses against a reference model', () => {
  it('contents and protections always match the model (parent and fork children)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(op, { minLength: 5, maxLength: 40 }),
        fc.boolean(),
        async (ops, thpAlways) => {
          const { mm, machine } = setup({ thp: thpAlways ? 'always' : 'madvise' });
          const dev = makeDevice(mm);
          const procs: { mm: Mm; m: Model }[] = [{ mm, m: new Model() }];
          // start with the whole window mapped read-write, so that accesses mostly succeed
          await apply(mm, procs[0]!.m, { k: 'mmap', s: 0, n: NPAGES, prot: PROT_READ | PROT_WRITE }, dev);
          let cur = 0;
          for (const o of ops) {
            const p = procs[cur]!;
            if (o.k === 'fork') {
              if (procs.length < 3) procs.push({ mm: await p.mm.fork(), m: p.m.clone() });
            } else if (o.k === 'switch') cur = (cur + 1) % procs.length;
            else await apply(p.mm, p.m, o, dev);
          }
          for (const { mm: q, m } of procs) {
            for (let pg = 0; pg < NPAGES; pg++) {
              if (m.prot[pg]! <= 0) continue;
              const got = await q.read(BASE + pg * P, P);
              expect(
                Buffer.compare(Buffer.from(got), Buffer.from(m.bytes.subarray(pg * P, (pg + 1) * P))),
              ).toBe(0);
            }
          }
          for (const { mm: q } of procs) await q.exit();
          // every frame and swap slot came back
          expect(machine.phys.nodes[0]!.usedPages).toBe(0);
          expect(machine.phys.swap.used).toBe(0);
          expect(dev.free.length).toBe(64); // every device page came back through page_free
          expect(PMD_SIZE % P).toBe(0);
        },
      ),
      { numRuns: 40, seed: 20260101 },
    );
  });
});
