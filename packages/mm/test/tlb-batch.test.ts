import { MmuNotifyEvent } from '@hmmkit/notifier';
import { createSim } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import { MAP_ANONYMOUS, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE } from '../src/constants.ts';
import { createMachine } from '../src/machine.ts';
import { Mm } from '../src/mm.ts';

const RW = PROT_READ | PROT_WRITE;
const M2 = 0x200000;

async function world(pages: number) {
  const sim = createSim({ seed: 1 });
  const machine = createMachine(sim);
  const mm = new Mm(machine);
  const raw = await mm.mmap(0, pages * PAGE_SIZE + M2, RW, MAP_PRIVATE | MAP_ANONYMOUS);
  const a = raw % M2 === 0 ? raw : raw - (raw % M2) + M2;
  await mm.touch(a, pages * PAGE_SIZE, true);
  const pfns = Array.from({ length: pages }, (_, i) => mm.readEntry(a + i * PAGE_SIZE).val);
  for (const pfn of pfns) expect(machine.phys.trylockPage(pfn)).toBe(true);
  return { sim, machine, mm, a, pfns };
}

describe('migration entries batch the CPU TLB flush per 2 MiB block (migrate_vma_collect_pmd)', () => {
  it('inside an invalidation: one flush per 2 MiB block, charged when the invalidation ends', async () => {
    const { sim, machine, mm, a, pfns } = await world(1024);
    const flushes = machine.stats.tlbFlush;
    const f0 = flushes.value;
    const r = await mm.invStart(MmuNotifyEvent.MIGRATE, a, a + 1024 * PAGE_SIZE, null);
    const t0 = sim.now;
    for (let i = 0; i < 1024; i++) expect(mm.installMigrationEntry(a + i * PAGE_SIZE)).toBe(pfns[i]);
    expect(flushes.value).toBe(f0); // queued, not yet paid
    expect(sim.now).toBe(t0);
    await mm.invEnd(r);
    expect(flushes.value).toBe(f0 + 2); // two 2 MiB blocks
    expect(sim.now - t0).toBe(2 * sim.costs.cpuTlbShootdownNs);
    // nothing left queued: the next invalidation pays nothing
    const r2 = await mm.invStart(MmuNotifyEvent.MIGRATE, a, a + PAGE_SIZE, null);
    await mm.invEnd(r2);
    expect(flushes.value).toBe(f0 + 2);
  });

  it('outside an invalidation the flush is immediate, one per entry', async () => {
    const { sim, machine, mm, a, pfns } = await world(2);
    const f0 = machine.stats.tlbFlush.value;
    const t0 = sim.now;
    expect(mm.installMigrationEntry(a)).toBe(pfns[0]);
    expect(machine.stats.tlbFlush.value).toBe(f0 + 1);
    expect(mm.installMigrationEntry(a + PAGE_SIZE)).toBe(pfns[1]);
    expect(machine.stats.tlbFlush.value).toBe(f0 + 2);
    expect(sim.now - t0).toBe(2 * sim.costs.cpuTlbShootdownNs);
  });
});
