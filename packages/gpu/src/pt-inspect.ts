/**
 * Cold-path inspection of a device page table: the valid mappings of a range in VA order, raw
 * entry words, and allocation counts (for oracles, tests and reports).
 *
 * @module
 */
import type { Aperture } from './format.ts';
import { checkVa } from './pt-entry.ts';
import type { PtPool } from './pt-pool.ts';
import { existingTable, Translation, WALK, walk } from './pt-walk.ts';

/** One mapping found by {@link PageTable.forEachMapping}. */
export interface MappingInfo {
  readonly va: number;
  readonly size: number;
  readonly pa: number;
  readonly aperture: Aperture;
  readonly writable: boolean;
  readonly atomic: boolean;
  /** Caching-policy (PAT/MTYPE) index (absent: 0, or the format has no PAT field). */
  readonly pat?: number;
  /** Peer id (PEER aperture only; else 0). */
  readonly peerId: number;
}

/**
 * Calls `fn` for every valid mapping overlapping [start, end), in VA order (cold path: for
 * oracles, tests and reports). Fragment groups are reported as one mapping.
 */
export function forEachMapping(p: PtPool, start: number, end: number, fn: (m: MappingInfo) => void): void {
  checkVa('forEachMapping', 'start', start, p.format.vaBits);
  const tr = new Translation();
  let va = Math.floor(start / 4096) * 4096;
  const stop = Math.min(end, 2 ** p.format.vaBits);
  while (va < stop) {
    const st = walk(p, va, tr);
    if (st === WALK.MAPPED) {
      const size = tr.pageSize;
      const base = Math.floor(va / size) * size;
      fn({
        va: base,
        size,
        pa: tr.pa - (va - base),
        aperture: tr.aperture,
        writable: tr.writable,
        atomic: tr.atomic,
        ...(tr.pat === 0 ? {} : { pat: tr.pat }),
        peerId: tr.peerId,
      });
      va = base + size;
    } else if (st === WALK.NO_TABLE) {
      const span = p.levels[tr.level]!.span;
      va = Math.floor(va / span) * span + span;
    } else if (tr.big) {
      const span = p.levels[tr.level]!.bigSpan;
      va = Math.floor(va / span) * span + span;
    } else {
      va += 4096;
    }
  }
}

/** A copy of the raw entry words holding `va` at `level` (`big`: the 64K table), or null. For tests. */
export function readEntry(p: PtPool, va: number, level: number, big = false): Uint32Array | null {
  const table = big ? bigTableOf(p, va, level) : existingTable(p, va, level);
  if (table < 0) return null;
  const L = p.levels[level]!;
  const words = big ? 2 : L.words;
  const o = big
    ? p.off(table) + (Math.floor(va / L.bigSpan) & (L.bigEntries - 1)) * 2
    : p.off(table) + L.indexOf(va) * words;
  return p.words.slice(o, o + words);
}

/** The big (64K) table under `va`'s dual entry at `level`, or -1. */
export function bigTableOf(p: PtPool, va: number, level: number): number {
  const table = existingTable(p, va, level);
  if (table < 0) return -1;
  const L = p.levels[level]!;
  if (L.dualBig === null) return -1;
  return L.dualBig.target(p.words, p.off(table) + L.indexOf(va) * L.words);
}

/** Counts of allocated tables: per level name, plus `big`. */
export function stats(p: PtPool): Record<string, number> {
  const out: Record<string, number> = {};
  p.levels.forEach((l, i) => {
    out[l.name] = p.tablesPerLevel[i]!;
  });
  out['big'] = p.bigTables;
  out['pteWrites'] = p.pteWrites;
  out['pdeWrites'] = p.pdeWrites;
  return out;
}
