import { describe, expect, it } from 'vitest';
import { collidedAfterSnapshot, findSeed, runRace } from '../src/race.ts';

describe('notifier-race demo', () => {
  it('a correct driver retries when the munmap lands in its window and ends coherent', async () => {
    const r = await findSeed(collidedAfterSnapshot, true);
    expect(r.stale).toBe(0);
    expect(r.retries).toBe(1);
    expect(r.lines.some((l) => l.includes('mmu_interval_read_retry(seq 1) → true'))).toBe(true);
    expect(r.lines.at(-1)).toContain('program device PTE 0x3000 → 0x14');
    expect(r.lines.some((l) => l.includes('invalidate(0x1000..0x2000): set_seq(3)'))).toBe(true);
  });

  it('the same seed replays the same story', async () => {
    const a = await runRace(17);
    const b = await runRace(17);
    expect(a.lines).toEqual(b.lines);
  });

  it('a driver without read_retry leaves a stale device PTE under some seed', async () => {
    const r = await findSeed((x) => x.stale > 0, false);
    expect(r.stale).toBe(1);
    const again = await runRace(r.seed, false);
    expect(again.stale).toBe(1);
  });
});
