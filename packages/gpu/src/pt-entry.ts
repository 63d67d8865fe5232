/**
 * Page-table entry encoding: a valid leaf from attributes (every field checked before a write),
 * a PDE address, and the attributes of an existing leaf. Bit positions come from the compiled
 * {@link PtFormat}; nothing here knows a vendor.
 *
 * @module
 */
import { ArgumentError } from '@hmmkit/sim';
import type { CompiledAddress, CompiledPte } from './format.ts';
import { APERTURE, type Aperture } from './format.ts';

/** Attributes of a mapping. */
export interface MapAttrs {
  /** Default VID (device memory). */
  readonly aperture?: Aperture;
  /** Default true. */
  readonly writable?: boolean;
  /** Default true (ignored when not writable: atomics need write permission). */
  readonly atomic?: boolean;
  readonly volatile?: boolean;
  readonly privileged?: boolean;
  /** Kind/compression field value, where the format has one. Default 0. */
  readonly kind?: number;
  /** Caching-policy index (xe pat_index, AMD MTYPE) where the format has the field. Default 0. */
  readonly pat?: number;
  /** Peer GPU id for the PEER aperture (NVIDIA 3-bit peer field). Default 0. */
  readonly peerId?: number;
}

/** Invalid states a leaf slot can be put in explicitly. */
export type LeafState = 'invalid' | 'unmapped' | 'sparse';

/** Throws ArgumentError unless `va` is an integer inside the `vaBits` VA space. */
export function checkVa(fn: string, arg: string, va: number, vaBits: number): void {
  if (!Number.isSafeInteger(va) || va < 0 || va >= 2 ** vaBits) {
    throw new ArgumentError(fn, arg, `must be an integer in [0, 2^${vaBits})`, va);
  }
}

/** Writes `pa` with `aperture`'s code into the address half `addr` of entry words `s`. */
export function encodeAddr(addr: CompiledAddress, s: Uint32Array, pa: number, aperture: Aperture): void {
  const code = addr.codeByKind[aperture]!;
  if (addr.apertureField !== null) addr.apertureField.write(s, 0, code);
  const f = addr.addrByCode[code]!;
  f.write(s, 0, pa / addr.scale);
}

/** Encodes a valid leaf into `out[0..3]`, throwing ArgumentError (before any write) if a value does not fit. */
export function encodeLeaf(
  fn: string,
  pte: CompiledPte,
  pa: number,
  attrs: MapAttrs,
  fragment: number,
  out: Uint32Array,
): void {
  const aperture = attrs.aperture ?? APERTURE.VID;
  const code = aperture >= 0 && aperture <= 3 ? pte.addr.codeByKind[aperture] : -1;
  if (code === undefined || code < 0) {
    throw new ArgumentError(fn, 'attrs.aperture', 'is not encodable in this format', aperture);
  }
  const f = pte.addr.addrByCode[code]!;
  const pfn = pa / pte.addr.scale;
  if (!f.fits(pfn)) {
    throw new ArgumentError(fn, 'pa', `must fit ${f.name} (${f.width} bits of pa >> ${pte.addr.shift})`, pa);
  }
  const kind = attrs.kind ?? 0;
  if (kind !== 0 && (pte.kind === null || !pte.kind.fits(kind))) {
    throw new ArgumentError(
      fn,
      'attrs.kind',
      pte.kind === null ? 'is not supported by this format' : `must fit ${pte.kind.width} bits`,
      kind,
    );
  }
  const patIndex = attrs.pat ?? 0;
  if (patIndex !== 0 && (pte.pat === null || !Number.isInteger(patIndex) || !pte.pat.fits(patIndex))) {
    throw new ArgumentError(
      fn,
      'attrs.pat',
      pte.pat === null ? 'is not supported by this format' : `must be an index in [0, ${pte.pat.max + 1})`,
      patIndex,
    );
  }
  const peerId = attrs.peerId ?? 0;
  if (peerId !== 0 && (aperture !== APERTURE.PEER || pte.peerId === null || !pte.peerId.fits(peerId))) {
    throw new ArgumentError(
      fn,
      'attrs.peerId',
      pte.peerId === null
        ? 'is not supported by this format'
        : `needs the PEER aperture and ${pte.peerId.width} bits`,
      peerId,
    );
  }
  if (fragment !== 0 && (pte.fragment === null || !pte.fragment.fits(fragment))) {
    throw new ArgumentError(fn, 'pageSize', 'needs a fragment the format cannot hold', fragment);
  }
  const writable = attrs.writable ?? true;
  if (!writable && pte.readOnly === null && pte.writable === null) {
    throw new ArgumentError(
      fn,
      'attrs.writable',
      'read-only mappings are not encodable in this format',
      false,
    );
  }
  out.fill(0);
  pte.valid.apply(out, 0, 2);
  if (pte.addr.apertureField !== null) pte.addr.apertureField.write(out, 0, code);
  f.write(out, 0, pfn);
  if (!writable && pte.readOnly !== null) pte.readOnly.apply(out, 0, 2);
  if (writable && pte.writable !== null) pte.writable.apply(out, 0, 2);
  if ((attrs.atomic ?? true) === false && pte.atomicDisable !== null) pte.atomicDisable.apply(out, 0, 2);
  if ((attrs.atomic ?? true) && writable && pte.atomicEnable !== null) pte.atomicEnable.apply(out, 0, 2);
  if (attrs.volatile === true && pte.volatile !== null) pte.volatile.apply(out, 0, 2);
  if (attrs.privileged === true && pte.privileged !== null) pte.privileged.apply(out, 0, 2);
  if (kind !== 0) pte.kind!.write(out, 0, kind);
  if (peerId !== 0) pte.peerId!.write(out, 0, peerId);
  if (patIndex !== 0) pte.pat!.write(out, 0, patIndex);
  if (fragment !== 0) pte.fragment!.write(out, 0, fragment);
}

/** The attributes of the valid leaf at word offset `o`. */
export function decodeAttrs(pte: CompiledPte, w: Uint32Array, o: number): MapAttrs {
  return {
    aperture: pte.addr.aperture(w, o) as Aperture,
    writable: pte.isWritable(w, o),
    atomic:
      (pte.atomicDisable === null || !pte.atomicDisable.matches(w, o)) &&
      (pte.atomicEnable === null || pte.atomicEnable.matches(w, o)),
    volatile: pte.volatile?.matches(w, o) === true,
    privileged: pte.privileged?.matches(w, o) === true,
    kind: pte.kind === null ? 0 : pte.kind.read(w, o),
    pat: pte.pat === null ? 0 : pte.pat.read(w, o),
    peerId: pte.peerId === null ? 0 : pte.peerId.read(w, o),
  };
}
