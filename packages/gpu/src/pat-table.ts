/**
 * PAT tables: what each caching-policy index of a PTE means. The driver programs the table into
 * the GPU's PAT registers (xe_pat.c); a PTE then carries only the index (its `pat` field). hmmkit
 * has no cache model: the table names the policies so drivers and tests can pick an index by
 * meaning (uc, wt, wb, uc-comp) and reject indices the hardware reserves.
 *
 * @module
 */
import { ArgumentError } from '@hmmkit/sim';
import type { PtFormat } from './format.ts';

/** One programmed PAT entry (Xe2 register layout, xe_pat.c XE2_PAT()). */
export interface PatEntry {
  readonly index: number;
  /** XE2_NO_PROMOTE. */
  readonly noPromote: boolean;
  /** XE2_COMP_EN: compression (flat CCS) enabled. */
  readonly compressed: boolean;
  /** L3 class of service (0..3). */
  readonly l3Clos: number;
  /** L3 policy: write-back, write-back transient-display ("XD"), uncached. */
  readonly l3: 'wb' | 'xd' | 'uc';
  /** L4 policy: write-back, write-through, uncached. */
  readonly l4: 'wb' | 'wt' | 'uc';
  /** Coherency with the CPU: none, 1-way, 2-way (xe_pat_index_get_coh_mode: none / at least 1-way). */
  readonly coherency: 'none' | '1way' | '2way';
}

/** The names drivers give indices (xe->pat.idx[XE_CACHE_NONE / _WT / _WB / _NONE_COMPRESSION]). */
export type PatName = 'uc' | 'wt' | 'wb' | 'uc-comp';

/** A PAT table. */
export interface PatTable {
  /** Where it comes from. */
  readonly source: string;
  /** Entries by index (length = xe->pat.n_entries); null where the index is reserved. */
  readonly entries: readonly (PatEntry | null)[];
  /** Indices by name. */
  readonly named: Readonly<Partial<Record<PatName, number>>>;
}

const L3 = ['wb', 'xd', 'uc', 'uc'] as const; // 2 is not used by Xe2
const L4 = ['wb', 'wt', 'uc', 'uc'] as const;
const COH = ['none', 'none', '1way', '2way'] as const;

/** Models xe_pat.c XE2_PAT(no_promote, comp_en, l3clos, l3_policy, l4_policy, coh_mode). */
export function xe2Pat(
  index: number,
  noPromote: number,
  compEn: number,
  l3Clos: number,
  l3Policy: number,
  l4Policy: number,
  coh: number,
): PatEntry {
  return {
    index,
    noPromote: noPromote !== 0,
    compressed: compEn !== 0,
    l3Clos,
    l3: L3[l3Policy]!,
    l4: L4[l4Policy]!,
    coherency: COH[coh]!,
  };
}

// prettier-ignore
const XE2_ROWS: readonly (readonly number[] | null)[] = [
  [0, 0, 0, 0, 3, 0],
  [0, 0, 0, 0, 3, 2],
  [0, 0, 0, 0, 3, 3],
  [0, 0, 0, 3, 3, 0],
  [0, 0, 0, 3, 0, 2],
  [0, 0, 0, 3, 3, 2],
  [1, 0, 0, 1, 3, 0],
  [0, 0, 0, 3, 0, 3],
  [0, 0, 0, 3, 0, 0],
  [0, 1, 0, 0, 3, 0],
  [0, 1, 0, 3, 0, 0],
  [1, 1, 0, 1, 3, 0],
  [0, 1, 0, 3, 3, 0],
  [0, 0, 0, 0, 0, 0],
  [0, 1, 0, 0, 0, 0],
  [1, 1, 0, 1, 1, 0],
  null,
  null,
  null,
  null, // 16..19 reserved
  [0, 0, 1, 0, 3, 0],
  [0, 1, 1, 0, 3, 0],
  [0, 0, 1, 0, 3, 2],
  [0, 0, 1, 0, 3, 3],
  [0, 0, 2, 0, 3, 0],
  [0, 1, 2, 0, 3, 0],
  [0, 0, 2, 0, 3, 2],
  [0, 0, 2, 0, 3, 3],
  [0, 0, 3, 0, 3, 0],
  [0, 1, 3, 0, 3, 0],
  [0, 0, 3, 0, 3, 2],
  [0, 0, 3, 0, 3, 3],
];

/**
 * The Xe2/Xe3 PAT table (xe_pat.c xe2_pat_table as in torvalds/linux d5aa943f, the table madvise
 * validates against in Linux 6.18): 32 entries, 16..19 reserved (their coh_mode is 0, so
 * xe_vm_madvise_ioctl rejects them); uc = 3, wt = 15 (compressed, L3 XD, L4 WT), wb = 2 (2-way
 * coherent), uc-comp = 12 (xe_pat_init_early). Graphics 20.01's Wa_16023588340 (28 entries) is not
 * modelled.
 */
export const XE2_PAT_TABLE: PatTable = {
  source: 'Linux xe_pat.c xe2_pat_table, xe_pat_init_early (GRAPHICS_VER 20/30)',
  entries: XE2_ROWS.map((r, i) => (r === null ? null : xe2Pat(i, r[0]!, r[1]!, r[2]!, r[3]!, r[4]!, r[5]!))),
  named: { uc: 3, wt: 15, wb: 2, 'uc-comp': 12 },
};

/**
 * Whether `index` is a PAT index every leaf of `format` can carry and, where the format has a
 * PAT table, one the table defines (xe: `xe_pat_index_get_coh_mode() != 0`).
 */
export function patIndexValid(format: PtFormat, index: number): boolean {
  if (!Number.isInteger(index) || index < 0 || index >= patIndexCount(format)) return false;
  return format.patTable === null || format.patTable.entries[index] != null;
}

/**
 * Number of PAT indices of `format` (xe->pat.n_entries): the table's length, else 2^width of the
 * narrowest leaf PAT field; 1 (index 0 only) when a leaf has no PAT field.
 */
export function patIndexCount(format: PtFormat): number {
  let n = Number.POSITIVE_INFINITY;
  for (const lvl of format.levels) {
    if (lvl.pte === null) continue;
    n = Math.min(n, lvl.pte.pat === null ? 1 : lvl.pte.pat.max + 1);
  }
  if (!Number.isFinite(n)) n = 1;
  return format.patTable === null ? n : Math.min(n, format.patTable.entries.length);
}

/** The index `format`'s PAT table gives `name` (intel_get_pat_idx_uc() etc.); ArgumentError if none. */
export function patIndexOf(format: PtFormat, name: PatName): number {
  const i = format.patTable?.named[name];
  if (i === undefined) {
    throw new ArgumentError('patIndexOf', 'name', `has no index in the PAT table of ${format.name}`, name);
  }
  return i;
}
