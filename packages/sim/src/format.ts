/**
 * Formatting of simulated quantities for reports, examples and messages.
 *
 * @module
 */

/** Virtual nanoseconds as a human unit: `850 ns`, `12.3 µs`, `4.56 ms`, `1.23 s`. */
export function formatNs(ns: number): string {
  const a = Math.abs(ns);
  if (a < 1000) return `${ns.toFixed(0)} ns`;
  if (a < 1e6) return `${(ns / 1e3).toFixed(1)} µs`;
  if (a < 1e9) return `${(ns / 1e6).toFixed(2)} ms`;
  return `${(ns / 1e9).toFixed(2)} s`;
}

/** An address or pfn in hex: `0x7f0000001000`. */
export function hex(n: number): string {
  return `0x${n.toString(16)}`;
}
