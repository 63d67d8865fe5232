/**
 * GPU page-table formats as data. A {@link FormatDesc} says everything a walker needs: the
 * levels (VA bits per level, entry size, which may hold leaves), the dual big/small PDE, and the
 * bit layout of every entry kind as named bounded fields plus a few *semantic* patterns (what
 * "valid", "is a PTE", "read-only", "unmapped", "sparse" look like in this format).
 * {@link compileFormat} turns a descriptor into a {@link PtFormat}: compiled fields and
 * mask/value patterns, so the one walker in `page-table.ts` never branches on a format version.
 *
 * @module
 */
import { ArgumentError } from '@hmmkit/sim';
import { type BitField, CompiledField, type IndexField, Pattern, ScatteredField } from './bits.ts';
import type { PatTable } from './pat-table.ts';

/** Where an address points: the memory kinds an aperture field names. */
export const APERTURE = { VID: 0, PEER: 1, SYS: 2, SYS_NC: 3 } as const;
/** One of the {@link APERTURE} values. */
export type Aperture = (typeof APERTURE)[keyof typeof APERTURE];
/** Aperture names, for descriptors and messages. */
export type ApertureName = 'vid' | 'peer' | 'sys' | 'sysNc';
const APERTURE_BY_NAME: Record<ApertureName, Aperture> = { vid: 0, peer: 1, sys: 2, sysNc: 3 };
/** Names of {@link APERTURE} values, indexed by value. */
export const APERTURE_NAMES: readonly ApertureName[] = ['vid', 'peer', 'sys', 'sysNc'];

/** Field name → value, e.g. `{ valid: 1 }`. */
export type FieldValues = Readonly<Record<string, number>>;

/** How an entry names memory: an aperture field (or none = always VID) and address fields. */
export interface AddressDesc {
  /** Field holding the aperture code; absent = every address is VID. */
  readonly apertureField?: string;
  /** Aperture code → aperture name; a code not listed means "no target" (invalid PDE half). */
  readonly apertures: Readonly<Partial<Record<ApertureName, number>>>;
  /** Aperture → address field name (holds `pa >> shift`). */
  readonly addressFields: Readonly<Partial<Record<ApertureName, string>>>;
  /** Right shift applied to the byte address before it is stored (12, or 8 for a 64K table). */
  readonly shift: number;
}

/** Semantics of a PTE layout. */
export interface PteDesc extends AddressDesc {
  /** Fields every valid PTE has set (`{ valid: 1 }`). */
  readonly valid: FieldValues;
  /** Set when the page is NOT writable (NVIDIA READ_ONLY). Use this or `writable`. */
  readonly readOnly?: FieldValues;
  /** Set when the page IS writable (AMD WRITEABLE). */
  readonly writable?: FieldValues;
  /** Set when atomics are disabled. */
  readonly atomicDisable?: FieldValues;
  /** Set when atomics are enabled (xe's XE_USM_PPGTT_PTE_AE); without it the PTE forbids atomics. */
  readonly atomicEnable?: FieldValues;
  /** Set for uncached/volatile mappings. */
  readonly volatile?: FieldValues;
  /** Set for privileged-only mappings. */
  readonly privileged?: FieldValues;
  /** Kind/compression field name, if the format has one. */
  readonly kindField?: string;
  /**
   * Caching-policy index field (Intel's PAT index, AMD's MTYPE), if the format has one: a mapping's
   * `pat` (MapAttrs) is stored there. A list names the fields holding the index's bits, least
   * significant first (Intel's PAT0..PAT4 are not contiguous). Every value it holds is a valid
   * index unless the format has a {@link FormatDesc.patTable}.
   */
  readonly patField?: string | readonly string[];
  /** Peer id field (which peer GPU a PEER-aperture PTE points into), if the format has one. */
  readonly peerIdField?: string;
  /** AMD-style FRAGMENT field: log2 of contiguous 4K pages the TLB may cache as one. */
  readonly fragmentField?: string;
  /** An invalid PTE that makes the MMU fault without looking at the small table (dual PDE). */
  readonly unmapped?: FieldValues;
  /** An invalid PTE that makes accesses succeed silently (reads zero, writes dropped). */
  readonly sparse?: FieldValues;
}

/** Semantics of a PDE (or of one half of a dual PDE). */
export interface PdeDesc extends AddressDesc {
  /** Fields set on every present PDE (AMD `{ valid: 1 }`); NVIDIA uses the aperture alone. */
  readonly present?: FieldValues;
}

/** A 64- or 128-bit entry layout: named fields `[hi, lo]`. */
export interface LayoutDesc {
  readonly bits: 64 | 128;
  readonly fields: Readonly<Record<string, BitField>>;
}

/** The dual-PDE description of a level: big (64K) and small (4K) table pointers. */
export interface DualDesc {
  /** Page shift of the big table's PTEs (16). */
  readonly bigPageShift: number;
  /** Byte size of a big table (256 on NVIDIA: 32 × 8 B). */
  readonly bigTableBytes: number;
  readonly big: PdeDesc;
  readonly small: PdeDesc;
}

/** One level of the tree, root first. */
export interface LevelDesc {
  readonly name: string;
  /** Highest VA bit indexed at this level. */
  readonly vaHi: number;
  /** Lowest VA bit indexed at this level (= the page shift of a leaf here). */
  readonly vaLo: number;
  readonly entryBytes: 8 | 16;
  /** Alignment (and minimum allocation) of a table of this level; default 4096. */
  readonly tableAlign?: number;
  /** Layout of this level's entries (fields of the PDE, dual PDE or PTE). */
  readonly layout: LayoutDesc;
  /** PDE semantics (absent on the last level and on dual levels). */
  readonly pde?: PdeDesc;
  /** Dual PDE semantics (NVIDIA PDE0). */
  readonly dual?: DualDesc;
  /** PTE semantics when this level may hold a leaf (last level; huge leaves above). */
  readonly pte?: PteDesc;
  /** Layout of a PTE held at this level, if it differs from `layout` (dual levels: 64-bit PTE). */
  readonly pteLayout?: LayoutDesc;
  /** Fields that mark an entry of a PDE level as a PTE (`IS_PTE = 1`, `PDE_PTE = 1`). */
  readonly leafTest?: FieldValues;
}

/** A page-table format descriptor. */
export interface FormatDesc {
  readonly name: string;
  readonly vaBits: number;
  readonly levels: readonly LevelDesc[];
  /** Layout and semantics of the big (64K) table PTEs of a dual level (same as the last level's by default). */
  readonly bigPte?: { readonly layout: LayoutDesc; readonly pte: PteDesc };
  /** Default physical base of the simulated page-table pool (VID aperture). */
  readonly tablePoolBase: number;
  /** One line on where the format comes from. */
  readonly source: string;
  /** What each PAT index means and which the hardware reserves (absent: every index is valid). */
  readonly patTable?: PatTable;
}

/** Compiled address half (aperture + address fields, indexed by aperture code). */
export class CompiledAddress {
  /** Aperture field, or null (always VID). */
  readonly apertureField: CompiledField | null;
  /** Aperture code → APERTURE value, or -1 when the code means "not present". */
  readonly kindByCode: Int8Array;
  /** APERTURE value → code, or -1 when the format cannot name that aperture. */
  readonly codeByKind: Int8Array;
  /** Aperture code → address field (null where the code is not present). */
  readonly addrByCode: readonly (CompiledField | null)[];
  readonly shift: number;
  readonly scale: number;

  constructor(desc: AddressDesc, fields: Record<string, CompiledField>, where: string) {
    this.apertureField = desc.apertureField === undefined ? null : need(fields, desc.apertureField, where);
    const codes = this.apertureField === null ? 1 : 2 ** this.apertureField.width;
    this.kindByCode = new Int8Array(codes).fill(-1);
    this.codeByKind = new Int8Array(4).fill(-1);
    const addrByCode: (CompiledField | null)[] = new Array(codes).fill(null);
    for (const [name, code] of Object.entries(desc.apertures) as [ApertureName, number][]) {
      if (!(code >= 0 && code < codes))
        throw new ArgumentError('compileFormat', `${where}.apertures.${name}`, 'out of range', code);
      const kind = APERTURE_BY_NAME[name];
      this.kindByCode[code] = kind;
      this.codeByKind[kind] = code;
      const af = desc.addressFields[name];
      if (af === undefined)
        throw new ArgumentError('compileFormat', `${where}.addressFields.${name}`, 'is missing', af);
      addrByCode[code] = need(fields, af, where);
    }
    this.addrByCode = addrByCode;
    this.shift = desc.shift;
    this.scale = 2 ** desc.shift;
  }

  /** Aperture (APERTURE value) of the entry at `w[base]`, or -1 if its code names no target. */
  aperture(w: Uint32Array, base: number): number {
    return this.apertureField === null
      ? this.kindByCode[0]!
      : this.kindByCode[this.apertureField.read(w, base)]!;
  }

  /** Byte address stored in the entry at `w[base]` (assumes its aperture code is present). */
  address(w: Uint32Array, base: number): number {
    const code = this.apertureField === null ? 0 : this.apertureField.read(w, base);
    const f = this.addrByCode[code];
    return f === null || f === undefined ? 0 : f.read(w, base) * this.scale;
  }
}

/** Compiled PTE semantics. */
export class CompiledPte {
  readonly layout: Record<string, CompiledField>;
  readonly words: number;
  readonly addr: CompiledAddress;
  readonly valid: Pattern;
  readonly readOnly: Pattern | null;
  readonly writable: Pattern | null;
  readonly atomicDisable: Pattern | null;
  readonly atomicEnable: Pattern | null;
  readonly volatile: Pattern | null;
  readonly privileged: Pattern | null;
  readonly kind: CompiledField | null;
  /** Caching-policy (PAT/MTYPE) index field, or null. */
  readonly pat: IndexField | null;
  readonly peerId: CompiledField | null;
  readonly fragment: CompiledField | null;
  readonly unmapped: Pattern | null;
  readonly sparse: Pattern | null;

  constructor(layout: LayoutDesc, desc: PteDesc, where: string) {
    this.layout = compileLayout(layout, where);
    this.words = layout.bits / 32;
    this.addr = new CompiledAddress(desc, this.layout, where);
    const pat = (v: FieldValues | undefined) => (v === undefined ? null : pattern(this.layout, v, where));
    this.valid = pattern(this.layout, desc.valid, where);
    this.readOnly = pat(desc.readOnly);
    this.writable = pat(desc.writable);
    this.atomicDisable = pat(desc.atomicDisable);
    this.atomicEnable = pat(desc.atomicEnable);
    this.volatile = pat(desc.volatile);
    this.privileged = pat(desc.privileged);
    this.kind = desc.kindField === undefined ? null : need(this.layout, desc.kindField, where);
    const pf = desc.patField;
    this.pat =
      pf === undefined
        ? null
        : typeof pf === 'string'
          ? need(this.layout, pf, where)
          : new ScatteredField(
              `${where}.pat`,
              pf.map((n) => need(this.layout, n, where)),
            );
    this.peerId = desc.peerIdField === undefined ? null : need(this.layout, desc.peerIdField, where);
    this.fragment = desc.fragmentField === undefined ? null : need(this.layout, desc.fragmentField, where);
    this.unmapped = pat(desc.unmapped);
    this.sparse = pat(desc.sparse);
  }

  /** True when the valid PTE at `w[base]` allows writes. */
  isWritable(w: Uint32Array, base: number): boolean {
    if (this.readOnly !== null) return !this.readOnly.matches(w, base);
    if (this.writable !== null) return this.writable.matches(w, base);
    return true;
  }

  /** True when the valid PTE at `w[base]` allows atomics (writable, not atomic-disabled, atomic-enabled). */
  isAtomic(w: Uint32Array, base: number): boolean {
    return (
      this.isWritable(w, base) &&
      (this.atomicDisable === null || !this.atomicDisable.matches(w, base)) &&
      (this.atomicEnable === null || this.atomicEnable.matches(w, base))
    );
  }
}

/** Compiled PDE semantics. */
export class CompiledPde {
  readonly addr: CompiledAddress;
  readonly present: Pattern | null;
  constructor(desc: PdeDesc, fields: Record<string, CompiledField>, where: string) {
    this.addr = new CompiledAddress(desc, fields, where);
    this.present = desc.present === undefined ? null : pattern(fields, desc.present, where);
  }
  /** Table address the PDE (half) at `w[base]` points to, or -1 if it points nowhere. */
  target(w: Uint32Array, base: number): number {
    if (this.present !== null && !this.present.matches(w, base)) return -1;
    const a = this.addr;
    const code = a.apertureField === null ? 0 : a.apertureField.read(w, base);
    const f = a.addrByCode[code];
    if (f === null || f === undefined) return -1;
    return f.read(w, base) * a.scale;
  }
}

/** A compiled level: everything the walker reads, as plain numbers and compiled objects. */
export class CompiledLevel {
  readonly index: number;
  readonly name: string;
  /** Lowest VA bit (page shift of a leaf here). */
  readonly shift: number;
  /** 2^shift: bytes one entry covers. */
  readonly span: number;
  /** 2^-shift (multiplying by it is exact and cheaper than dividing by span). */
  readonly invSpan: number;
  readonly entries: number;
  /** entries − 1 (index mask). */
  readonly indexMask: number;
  /** 32-bit words per entry (2 or 4). */
  readonly words: number;
  /** Bytes a table of this level occupies in the pool (size rounded up to its alignment). */
  readonly tableBytes: number;
  readonly fields: Record<string, CompiledField>;
  readonly pde: CompiledPde | null;
  readonly pte: CompiledPte | null;
  /** Null when every entry of the level is a PTE (last level), else the IS_PTE pattern. */
  readonly leafTest: Pattern | null;
  readonly dualBig: CompiledPde | null;
  readonly dualSmall: CompiledPde | null;
  /** Dual levels: the big table's PTE semantics and geometry. */
  readonly bigPte: CompiledPte | null;
  readonly bigShift: number;
  /** 2^bigShift. */
  readonly bigSpan: number;
  /** 2^-bigShift. */
  readonly invBigSpan: number;
  readonly bigEntries: number;
  readonly bigTableBytes: number;

  constructor(desc: LevelDesc, index: number, last: boolean, fmt: FormatDesc) {
    const where = `${fmt.name}.levels[${index}]`;
    this.index = index;
    this.name = desc.name;
    this.shift = desc.vaLo;
    this.span = 2 ** desc.vaLo;
    this.invSpan = 2 ** -desc.vaLo;
    this.entries = 2 ** (desc.vaHi - desc.vaLo + 1);
    this.indexMask = this.entries - 1;
    this.words = desc.entryBytes / 4;
    if (desc.layout.bits !== desc.entryBytes * 8) {
      throw new ArgumentError(
        'compileFormat',
        `${where}.layout.bits`,
        'must equal entryBytes * 8',
        desc.layout.bits,
      );
    }
    const align = desc.tableAlign ?? 4096;
    this.tableBytes = Math.max(this.entries * desc.entryBytes, align);
    if (4096 % this.tableBytes !== 0 && this.tableBytes !== 4096) {
      throw new ArgumentError(
        'compileFormat',
        `${where}`,
        'tables must be at most 4 KiB and divide 4 KiB',
        this.tableBytes,
      );
    }
    this.fields = compileLayout(desc.layout, where);
    this.pde = desc.pde === undefined ? null : new CompiledPde(desc.pde, this.fields, `${where}.pde`);
    this.pte =
      desc.pte === undefined
        ? null
        : new CompiledPte(desc.pteLayout ?? desc.layout, desc.pte, `${where}.pte`);
    if (last && (this.pte === null || this.pde !== null || desc.dual !== undefined)) {
      throw new ArgumentError('compileFormat', where, 'the last level must hold PTEs only', desc.name);
    }
    if (!last && this.pde === null && desc.dual === undefined) {
      throw new ArgumentError('compileFormat', where, 'a non-last level needs pde or dual', desc.name);
    }
    if (!last && this.pte !== null && desc.leafTest === undefined) {
      throw new ArgumentError(
        'compileFormat',
        `${where}.leafTest`,
        'is required for a huge-leaf level',
        desc.name,
      );
    }
    this.leafTest =
      last || desc.leafTest === undefined ? null : pattern(this.pte!.layout, desc.leafTest, where);
    if (desc.dual !== undefined) {
      const d = desc.dual;
      this.dualBig = new CompiledPde(d.big, this.fields, `${where}.dual.big`);
      this.dualSmall = new CompiledPde(d.small, this.fields, `${where}.dual.small`);
      const bp = fmt.bigPte;
      const lastDesc = fmt.levels[fmt.levels.length - 1]!;
      this.bigPte = new CompiledPte(
        bp?.layout ?? lastDesc.layout,
        bp?.pte ?? lastDesc.pte!,
        `${where}.bigPte`,
      );
      this.bigShift = d.bigPageShift;
      this.bigSpan = 2 ** d.bigPageShift;
      this.invBigSpan = 2 ** -d.bigPageShift;
      this.bigEntries = 2 ** (desc.vaLo - d.bigPageShift);
      this.bigTableBytes = d.bigTableBytes;
      if (this.bigEntries * 8 > d.bigTableBytes) {
        throw new ArgumentError(
          'compileFormat',
          `${where}.dual.bigTableBytes`,
          'is smaller than its entries',
          d.bigTableBytes,
        );
      }
    } else {
      this.dualBig = null;
      this.dualSmall = null;
      this.bigPte = null;
      this.bigShift = 0;
      this.bigSpan = 0;
      this.invBigSpan = 0;
      this.bigEntries = 0;
      this.bigTableBytes = 0;
    }
  }

  /** Index of `va` in a table of this level. */
  indexOf(va: number): number {
    return Math.floor(va / this.span) & this.indexMask;
  }
}

/** Where a page size lives in the tree. */
export interface PageTarget {
  /** Page shift (12, 16, 21, ...). */
  readonly pageShift: number;
  /** Level whose entries (or whose big table's entries) hold the leaf. */
  readonly level: number;
  /** True when the leaf is a 64K PTE of a dual level's big table. */
  readonly big: boolean;
  /** AMD-style fragment: leaf is 2^fragment 4K PTEs carrying FRAGMENT = fragment. */
  readonly fragment: number;
}

/** A compiled, immutable page-table format: what {@link PageTable} and the walker run on. */
export interface PtFormat {
  readonly name: string;
  readonly vaBits: number;
  readonly desc: FormatDesc;
  readonly levels: readonly CompiledLevel[];
  /** Supported page sizes in bytes, ascending. */
  readonly pageSizes: readonly number[];
  /** Page shift → target, for every supported size. */
  readonly targets: ReadonlyMap<number, PageTarget>;
  /** True when some level is a dual (big/small) PDE. */
  readonly hasDualPde: boolean;
  readonly tablePoolBase: number;
  /** The format's PAT table, or null (every index its PAT field holds is valid). */
  readonly patTable: PatTable | null;
}

function need(fields: Record<string, CompiledField>, name: string, where: string): CompiledField {
  const f = fields[name];
  if (f === undefined) throw new ArgumentError('compileFormat', where, `names unknown field '${name}'`, name);
  return f;
}

function compileLayout(layout: LayoutDesc, where: string): Record<string, CompiledField> {
  const out: Record<string, CompiledField> = {};
  for (const [name, bf] of Object.entries(layout.fields))
    out[name] = new CompiledField(`${where}.${name}`, bf, layout.bits);
  return out;
}

function pattern(fields: Record<string, CompiledField>, values: FieldValues, where: string): Pattern {
  return new Pattern(Object.entries(values).map(([k, v]) => [need(fields, k, where), v] as const));
}

/** Compiles and checks a descriptor. Throws {@link ArgumentError} naming the bad part. */
export function compileFormat(desc: FormatDesc): PtFormat {
  const n = desc.levels.length;
  if (n < 1) throw new ArgumentError('compileFormat', 'levels', 'must not be empty', n);
  const first = desc.levels[0]!;
  if (first.vaHi !== desc.vaBits - 1) {
    throw new ArgumentError(
      'compileFormat',
      'levels[0].vaHi',
      `must be vaBits - 1 (${desc.vaBits - 1})`,
      first.vaHi,
    );
  }
  for (let i = 1; i < n; i++) {
    if (desc.levels[i]!.vaHi !== desc.levels[i - 1]!.vaLo - 1) {
      throw new ArgumentError(
        'compileFormat',
        `levels[${i}].vaHi`,
        'must continue the previous level',
        desc.levels[i]!.vaHi,
      );
    }
  }
  const levels = desc.levels.map((l, i) => new CompiledLevel(l, i, i === n - 1, desc));
  const targets = new Map<number, PageTarget>();
  for (const l of levels) {
    if (l.pte !== null) targets.set(l.shift, { pageShift: l.shift, level: l.index, big: false, fragment: 0 });
    if (l.bigPte !== null)
      targets.set(l.bigShift, { pageShift: l.bigShift, level: l.index, big: true, fragment: 0 });
  }
  const lastLevel = levels[n - 1]!;
  const frag = lastLevel.pte!.fragment;
  if (frag !== null) {
    // Fragment sizes between the smallest leaf and the next native leaf size (AMD 8K..1M).
    const native = [...targets.keys()].sort((a, b) => a - b);
    const nextNative = native.find((s) => s > lastLevel.shift) ?? lastLevel.shift + frag.max;
    for (let s = lastLevel.shift + 1; s < nextNative && s - lastLevel.shift <= frag.max; s++) {
      if (!targets.has(s))
        targets.set(s, { pageShift: s, level: n - 1, big: false, fragment: s - lastLevel.shift });
    }
  }
  const pageSizes = [...targets.keys()].sort((a, b) => a - b).map((s) => 2 ** s);
  return {
    name: desc.name,
    vaBits: desc.vaBits,
    desc,
    levels,
    pageSizes,
    targets,
    hasDualPde: levels.some((l) => l.dualBig !== null),
    tablePoolBase: desc.tablePoolBase,
    patTable: desc.patTable ?? null,
  };
}

/** Page sizes a user normally asks about. */
export const PAGE_4K = 4096;
/** 64 KiB (NVIDIA big page). */
export const PAGE_64K = 65536;
/** 2 MiB (PDE0 / PDB0 leaf). */
export const PAGE_2M = 2097152;
