import { ArgumentError } from '@hmmkit/sim';
import { describe, expect, it } from 'vitest';
import {
  drmGpusvmPolicy,
  isGranuleError,
  makeFaultContext,
  NOTIFIER_KIND,
  notifierSpan,
  perRangeNotifiers,
  SZ_2M,
  SZ_512M,
  wholeMmNotifier,
  windowNotifiers,
} from '../src/index.ts';

const MM_END = 2 ** 47;

describe('notifier policies', () => {
  it('fixed windows are aligned, default 512 MiB, and clipped to the managed VA', () => {
    const w = windowNotifiers();
    expect(w.kind).toBe(NOTIFIER_KIND.WINDOW);
    expect(w.window(0x7f1234567000, 0, MM_END)).toEqual({ start: 0x7f1220000000, end: 0x7f1240000000 });
    expect(w.window(0x1000, 0x10000, MM_END)).toEqual({ start: 0x10000, end: SZ_512M });
    expect(windowNotifiers(SZ_2M).window(0x10345000, 0, MM_END)).toEqual({
      start: 0x10200000,
      end: 0x10400000,
    });
    expect(w.name).toBe('window-512M');
  });

  it('per-range and whole-mm', () => {
    const pr = perRangeNotifiers();
    expect(pr.window(0x5000, 0x1000, MM_END)).toEqual({ start: 0x1000, end: MM_END });
    expect(notifierSpan(pr, 0x5000, { start: 0x4000, end: 0x6000 }, 0, MM_END)).toEqual({
      start: 0x4000,
      end: 0x6000,
    });
    const whole = wholeMmNotifier();
    expect(notifierSpan(whole, 0x5000, { start: 0x4000, end: 0x6000 }, 0x1000, MM_END)).toEqual({
      start: 0x1000,
      end: MM_END,
    });
    expect(notifierSpan(windowNotifiers(SZ_2M), 0x5000, { start: 0x4000, end: 0x6000 }, 0, MM_END)).toEqual({
      start: 0,
      end: SZ_2M,
    });
  });

  it('the window bounds the granule (a 2M chunk never crosses a 2M notifier)', () => {
    const w = windowNotifiers(0x100000); // 1 MiB notifiers
    const win = w.window(0x10345000, 0, MM_END);
    const r = drmGpusvmPolicy().choose(
      makeFaultContext({
        va: 0x10345000,
        vmaStart: 0x10000000,
        vmaEnd: 0x10400000,
        windowStart: win.start,
        windowEnd: win.end,
      }),
    );
    expect(isGranuleError(r) ? null : [r.start, r.end]).toEqual([0x10340000, 0x10350000]);
  });

  it('rejects a bad window size', () => {
    expect(() => windowNotifiers(0x3000)).toThrow(ArgumentError);
    expect(() => windowNotifiers(2048)).toThrow(ArgumentError);
    expect(() => windowNotifiers(1.5 * SZ_2M)).toThrow(ArgumentError);
  });
});
