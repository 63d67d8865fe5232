import { createReadStream, readFileSync } from 'node:fs';
import { ArgumentError } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  ACCESS_KIND,
  importUvmSmartDump,
  issueOrder,
  kernelStats,
  readUvmSmartDump,
  smOfWarp,
} from '../src/index.ts';

const fixture = new URL('./fixtures/uvmsmart-access.txt', import.meta.url);

describe('UVMSmart page-access dump importer', () => {
  it('maps lines to warp-major streams with global warp ids, skipping non-records', async () => {
    const { kernel, stats } = await importUvmSmartDump(createReadStream(fixture, { highWaterMark: 64 }), {
      warpsPerSM: 4,
    });
    expect(stats.lines).toBe(17);
    expect(stats.accesses).toBe(14);
    expect(stats.skipped).toBe(3);
    expect(stats.pageMismatches).toBe(0);
    expect(stats.monotonic).toBe(true);
    expect([stats.firstCycle, stats.lastCycle]).toEqual([1000, 1091]);
    expect(kernel.numSMs).toBe(2);
    expect(kernel.warps).toBe(8);
    expect(kernel.accesses).toBe(14);
    const { vas, access, warpStart } = kernel.streams;
    // sm 0 warp 0 = warp 0: four reads 3 KiB apart.
    expect(Array.from(vas.subarray(warpStart[0]!, warpStart[1]!))).toEqual([
      0xc0000000, 0xc0000c00, 0xc0001800, 0xc0002400,
    ]);
    // sm 1 warp 3 = warp 7: one write; sm 0 warp 1's last access was the hex address, a write.
    expect(warpStart[8]! - warpStart[7]!).toBe(1);
    expect(access[warpStart[7]!]).toBe(ACCESS_KIND.WRITE);
    expect(vas[warpStart[2]! - 1]).toBe(0xc0002080);
    expect(access[warpStart[2]! - 1]).toBe(ACCESS_KIND.WRITE);
    expect(smOfWarp(kernel, 7)).toBe(1);
    expect(smOfWarp(kernel, 1)).toBe(0);
    const st = kernelStats(kernel);
    expect(st.uniquePages).toBe(3);
    expect(st.writes).toBe(2);
  });

  it('keeps the file order as issue order when streaming', async () => {
    const text = readFileSync(fixture, 'utf8');
    const order: number[] = [];
    for await (const b of readUvmSmartDump([text], { warpsPerSM: 4, batchCapacity: 5 })) {
      for (let i = 0; i < b.count; i++) order.push(b.warp[i]!);
    }
    expect(order).toEqual([0, 1, 4, 0, 1, 4, 0, 1, 4, 0, 1, 4, 7, 1]);
    // Round-robin issue order of the imported kernel is a valid replay order too.
    const { kernel } = await importUvmSmartDump([text], { warpsPerSM: 4 });
    let n = 0;
    for (const b of issueOrder(kernel.streams)) n += b.count;
    expect(n).toBe(14);
  });

  it('counts inconsistencies and rejects bad options', async () => {
    const s = await importUvmSmartDump(['5 4096 4 1 1 0 0\n1 4096 4 0 0 0 0'], { warpsPerSM: 2 });
    expect(s.stats.pageMismatches).toBe(1);
    expect(s.stats.monotonic).toBe(false);
    await expect(importUvmSmartDump(['1 4096 4 1 1 0 0'], { warpsPerSM: 0 })).rejects.toThrow(ArgumentError);
  });
});
