import { ACCESS, type GpuDevice, WALK } from '@hmmkit/gpu';
import { MAP_ANONYMOUS, MAP_PRIVATE, type Mm, PROT_READ, PROT_WRITE } from '@hmmkit/mm';
import { Errno } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import { createWorld, runKernel, runScenario } from '../src/harness.ts';
import { MinimalMirror } from '../src/mirror.ts';

const P = 4096;

/** A mirror that keeps one page read-only on the device and refuses GPU writes to it. */
class OnePageReadOnly extends MinimalMirror {
  readonly page: number;
  writeFaults: number[] = [];
  constructor(mm: Mm, dev: GpuDevice, start: number, end: number, page: number) {
    super(mm, dev, start, end);
    this.page = page;
  }
  protected override deviceWritable(va: number, hmmFlags: number): boolean {
    return super.deviceWritable(va, hmmFlags) && va !== this.page;
  }
  protected override async writeFault(page: number): Promise<number> {
    this.writeFaults.push(page);
    return page === this.page ? -Errno.EACCES : 0;
  }
}

describe('MinimalMirror policy hooks', () => {
  it('deviceWritable shapes the device PTE, writeFault runs on write faults only and can cancel them', async () => {
    const r = await runScenario(1, async (sim) => {
      const { mm, dev, oracle } = await createWorld(sim, { thp: 'never' });
      const a = await mm.mmap(0, 32 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
      for (let i = 0; i < 32; i++) await mm.writeU32(a + i * P, i);
      const m = new OnePageReadOnly(mm, dev, a, a + 32 * P, a + 3 * P);
      await m.init();
      const k = await runKernel(sim, m, [[[a + 3 * P, ACCESS.READ, 0]], [[a + 20 * P, ACCESS.WRITE, 77]]]);
      const ro = dev.pageTable.translate(a + 3 * P);
      const rw = dev.pageTable.translate(a + 20 * P);
      const k2 = await runKernel(sim, m, [[[a + 3 * P + 4, ACCESS.WRITE, 99]]]);
      const words = [await mm.readU32(a + 3 * P + 4), await mm.readU32(a + 20 * P)];
      oracle.checkAll();
      await m.fini();
      return {
        k,
        k2,
        ro,
        rw,
        words,
        faults: m.writeFaults.map((va) => (va - a) / P),
        bad: oracle.violations.length,
      };
    });
    expect(r.k.data[0]).toBe(3);
    expect(r.ro.status).toBe(WALK.MAPPED);
    expect(r.ro.writable).toBe(false); // the CPU PTE is writable; the hook took the permission away
    expect(r.rw.writable).toBe(true);
    expect(r.faults.slice().sort((x, y) => x - y)).toEqual([3, 20]); // the read fault never asked
    expect(r.k.failed).toBe(0);
    expect(r.k2.failed).toBe(1); // the refused write was cancelled
    expect(r.words).toEqual([0, 77]);
    expect(r.bad).toBe(0);
  });
});
