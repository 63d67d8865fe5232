import {
  MmuNotifier,
  MmuNotifyEvent,
  mmuNotifierInvalidateRangeEnd,
  mmuNotifierInvalidateRangeStart,
  mmuNotifierRangeInit,
  mmuNotifierRegister,
  mmuNotifyEventName,
} from '@hmmkit/notifier';
import { createSim, type Sim } from '@hmmkit/sim';
import { PAGE_SIZE as P, VM_FAULT_SIGBUS } from '../src/constants.ts';
import { createMachine, type Machine, type MachineOptions } from '../src/machine.ts';
import { Mm } from '../src/mm.ts';
import { PTE_MIGRATION, PTE_TYPE_MASK } from '../src/page-table.ts';
import { DevPagemap, type VmFault } from '../src/physmem.ts';

/** The owner cookie of the test device. */
export const OWNER = 'dev0';

/** A fresh sim, machine and process. */
export function setup(options: MachineOptions = {}): { sim: Sim; machine: Machine; mm: Mm } {
  const sim = createSim({ seed: 1 });
  const machine = createMachine(sim, options);
  return { sim, machine, mm: new Mm(machine) };
}

/** One recorded invalidation, as `EVENT start-end` with hex addresses. */
export type Rec = string;

/** Registers a classic notifier on `mm` that records every invalidate_range_start/end. */
export async function record(mm: Mm): Promise<{ events: Rec[]; clear(): void }> {
  const events: Rec[] = [];
  const fmt = (kind: string, r: { event: number; start: number; end: number; owner: unknown }) =>
    `${kind} ${mmuNotifyEventName(r.event as 0)} ${r.start.toString(16)}-${r.end.toString(16)}${r.owner === null || r.owner === undefined ? '' : ` owner=${String(r.owner)}`}`;
  const sub = new MmuNotifier({
    invalidateRangeStart: (_s, r) => {
      events.push(fmt('start', r));
      return 0;
    },
    invalidateRangeEnd: (_s, r) => {
      events.push(fmt('end', r));
    },
  });
  await mmuNotifierRegister(sub, mm);
  return {
    events,
    clear() {
      events.length = 0;
    },
  };
}

/** Only the start records, e.g. `['UNMAP 7f..-7f..']`. */
export function starts(events: Rec[]): string[] {
  return events.filter((e) => e.startsWith('start ')).map((e) => e.slice(6));
}

/** A snapshot of VMAs plus a sample of entries (for "state unchanged" checks). */
export function snapshot(mm: Mm, addrs: number[]): unknown {
  return {
    vmas: mm.vmaSnapshot(),
    entries: addrs.map((a) => mm.readEntry(a)),
    rss: mm.rss,
    tables: mm.pt.tables,
  };
}

/** Bytes 0..n-1 with a pattern depending on `seed`. */
export function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 17 + 1) & 255;
  return b;
}

/** Byte-for-byte equality of two buffers (fast; vitest's deep equality is slow on MiB arrays). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return (
    Buffer.compare(
      Buffer.from(a.buffer, a.byteOffset, a.byteLength),
      Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    ) === 0
  );
}

/** A miniature device-private driver built only on the mm primitives hmm will use. */
export function makeDevice(mm: Mm) {
  const phys = mm.phys;
  const free: number[] = [];
  const calls: VmFault[] = [];
  const pgmap = new DevPagemap('private', OWNER, {
    migrateToRam: async (vmf) => {
      calls.push(vmf);
      const m = vmf.mm;
      const r = mmuNotifierRangeInit(MmuNotifyEvent.MIGRATE, 0, m, vmf.address, vmf.address + P, OWNER);
      await mmuNotifierInvalidateRangeStart(r);
      const dev = vmf.page;
      const got = m.installMigrationEntry(vmf.address);
      if (got !== dev) {
        await mmuNotifierInvalidateRangeEnd(r);
        return VM_FAULT_SIGBUS;
      }
      await m.tryToMigrate(dev);
      const page = phys.allocPage(0);
      phys.copyPage(page, dev);
      m.migratePageMetadata(page, dev);
      m.removeMigrationPtes(dev, page);
      phys.putPage(dev);
      phys.putPage(page);
      await mmuNotifierInvalidateRangeEnd(r);
      return 0;
    },
    pageFree: (pfn) => free.push(pfn),
  });
  const start = phys.memremapPages(pgmap, 64);
  for (let k = 63; k >= 0; k--) free.push(start + k);

  /** migrate_vma-like move of the page at addr to device memory. */
  async function toDevice(addr: number, target: Mm = mm): Promise<number> {
    const mm = target;
    const r = mmuNotifierRangeInit(MmuNotifyEvent.MIGRATE, 0, mm, addr, addr + P, OWNER);
    await mmuNotifierInvalidateRangeStart(r);
    const src = mm.readEntry(addr).val;
    if (!phys.trylockPage(src)) throw new Error('page locked');
    if (mm.installMigrationEntry(addr) !== src) throw new Error('no migration entry');
    if ((mm.readEntry(addr).flags & PTE_TYPE_MASK) !== PTE_MIGRATION)
      throw new Error('not a migration entry');
    if ((await mm.tryToMigrate(src)) !== 0) throw new Error('still mapped');
    const dev = free.pop()!;
    phys.zoneDevicePageInit(dev);
    phys.copyPage(dev, src);
    mm.migratePageMetadata(dev, src);
    mm.removeMigrationPtes(src, dev);
    phys.unlockPage(src);
    phys.putPage(src);
    phys.unlockPage(dev);
    phys.putPage(dev);
    await mmuNotifierInvalidateRangeEnd(r);
    return dev;
  }
  return { pgmap, free, calls, toDevice, start };
}
