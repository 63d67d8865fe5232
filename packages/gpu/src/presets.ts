/**
 * Format presets: NVIDIA MMU v2 (Pascal..Ada), NVIDIA MMU v3 (Hopper, Blackwell), AMD GFX9
 * GPUVM, Intel Xe2 PPGTT, and a small format for tests. Bit positions follow `dev_mmu.h`
 * (`hwref/.../dev_mmu.h` in open-gpu-kernel-modules), `uvm_pascal_mmu.c`, `uvm_hopper_mmu.c`,
 * nouveau `vmmgp100.c`, `amdgpu_vm.h` and xe's `xe_gtt_defs.h`.
 *
 * @module
 */
import {
  compileFormat,
  type FormatDesc,
  type LayoutDesc,
  type PdeDesc,
  type PteDesc,
  type PtFormat,
} from './format.ts';
import { XE2_PAT_TABLE } from './pat-table.ts';

// ---------------------------------------------------------------- NVIDIA MMU v2 (dev_mmu.h VER2)

const V2_PTE: LayoutDesc = {
  bits: 64,
  fields: {
    valid: [0, 0],
    aperture: [2, 1],
    vol: [3, 3],
    encrypted: [4, 4],
    privilege: [5, 5],
    readOnly: [6, 6],
    atomicDisable: [7, 7],
    addressSys: [53, 8],
    addressVid: [32, 8],
    addressVidPeer: [35, 33],
    comptagline: [53, 36],
    kind: [63, 56],
  },
};
const V2_PTE_SEM: PteDesc = {
  valid: { valid: 1 },
  apertureField: 'aperture',
  apertures: { vid: 0, peer: 1, sys: 2, sysNc: 3 },
  addressFields: { vid: 'addressVid', peer: 'addressVid', sys: 'addressSys', sysNc: 'addressSys' },
  shift: 12,
  readOnly: { readOnly: 1 },
  atomicDisable: { atomicDisable: 1 },
  volatile: { vol: 1 },
  privileged: { privilege: 1 },
  kindField: 'kind',
  peerIdField: 'addressVidPeer',
  // uvm_pascal_mmu.c: unmapped_pte() = VALID 0, PRIVILEGE 1 (big PTE: do not fall through);
  // make_sparse_pte: VALID 0, VOL 1.
  unmapped: { valid: 0, privilege: 1 },
  sparse: { valid: 0, vol: 1 },
};
const V2_PDE: LayoutDesc = {
  bits: 64,
  fields: {
    isPte: [0, 0],
    aperture: [2, 1],
    vol: [3, 3],
    noAts: [5, 5],
    addressSys: [53, 8],
    addressVid: [32, 8],
  },
};
// PDE aperture encoding differs from the PTE's: 0 INVALID, 1 VIDEO_MEMORY, 2 SYS coherent, 3 SYS non-coherent.
const V2_PDE_SEM: PdeDesc = {
  apertureField: 'aperture',
  apertures: { vid: 1, sys: 2, sysNc: 3 },
  addressFields: { vid: 'addressVid', sys: 'addressSys', sysNc: 'addressSys' },
  shift: 12,
};
const V2_DUAL: LayoutDesc = {
  bits: 128,
  fields: {
    isPte: [0, 0],
    apertureBig: [2, 1],
    volBig: [3, 3],
    noAts: [5, 5],
    addressBigSys: [53, 4],
    addressBigVid: [32, 4],
    apertureSmall: [66, 65],
    volSmall: [67, 67],
    addressSmallSys: [117, 72],
    addressSmallVid: [96, 72],
  },
};

/** NVIDIA MMU v2 (Pascal to Ada): 49-bit VA, 5 levels, dual PDE at PDE0, 25-bit VRAM PFN. */
export const nvMmuV2Desc: FormatDesc = {
  name: 'nv-mmu-v2',
  vaBits: 49,
  source: 'dev_mmu.h NV_MMU_VER2_*, uvm_pascal_mmu.c, nouveau gp100_vmm_desc_12/16',
  tablePoolBase: 0x10_0000_0000,
  levels: [
    { name: 'PDE3', vaHi: 48, vaLo: 47, entryBytes: 8, layout: V2_PDE, pde: V2_PDE_SEM },
    { name: 'PDE2', vaHi: 46, vaLo: 38, entryBytes: 8, layout: V2_PDE, pde: V2_PDE_SEM },
    // Ampere and later: PDE1 may be a 512M PTE (IS_PTE = 1).
    {
      name: 'PDE1',
      vaHi: 37,
      vaLo: 29,
      entryBytes: 8,
      layout: V2_PDE,
      pde: V2_PDE_SEM,
      pte: V2_PTE_SEM,
      pteLayout: V2_PTE,
      leafTest: { valid: 1 },
    },
    {
      name: 'PDE0',
      vaHi: 28,
      vaLo: 21,
      entryBytes: 16,
      layout: V2_DUAL,
      dual: {
        bigPageShift: 16,
        bigTableBytes: 256,
        big: {
          apertureField: 'apertureBig',
          apertures: { vid: 1, sys: 2, sysNc: 3 },
          addressFields: { vid: 'addressBigVid', sys: 'addressBigSys', sysNc: 'addressBigSys' },
          shift: 8,
        },
        small: {
          apertureField: 'apertureSmall',
          apertures: { vid: 1, sys: 2, sysNc: 3 },
          addressFields: { vid: 'addressSmallVid', sys: 'addressSmallSys', sysNc: 'addressSmallSys' },
          shift: 12,
        },
      },
      pte: V2_PTE_SEM,
      pteLayout: V2_PTE,
      leafTest: { valid: 1 },
    },
    { name: 'PT', vaHi: 20, vaLo: 12, entryBytes: 8, layout: V2_PTE, pte: V2_PTE_SEM },
  ],
};

// ---------------------------------------------------------------- NVIDIA MMU v3 (dev_mmu.h VER3)

const V3_PTE: LayoutDesc = {
  bits: 64,
  fields: {
    valid: [0, 0],
    aperture: [2, 1],
    pcf: [7, 3],
    // A valid PTE's PCF (dev_mmu.h NV_MMU_VER3_PTE_PCF_{REGULAR,PRIVILEGE}_{RW,RO}_{ATOMIC,NO_ATOMIC}_
    // {CACHED,UNCACHED}_{ACE,ACD} = 0x00..0x1F) decomposes into bits: 0 uncached, 1 privilege,
    // 2 read-only, 3 no atomics, 4 access counting disabled.
    pcfUncached: [3, 3],
    pcfPrivilege: [4, 4],
    pcfReadOnly: [5, 5],
    pcfNoAtomic: [6, 6],
    pcfAcd: [7, 7],
    kind: [11, 8],
    address: [51, 12],
    peerId: [63, 61],
  },
};
const V3_PTE_SEM: PteDesc = {
  valid: { valid: 1 },
  apertureField: 'aperture',
  apertures: { vid: 0, peer: 1, sys: 2, sysNc: 3 },
  addressFields: { vid: 'address', peer: 'address', sys: 'address', sysNc: 'address' },
  shift: 12,
  readOnly: { pcfReadOnly: 1 },
  atomicDisable: { pcfNoAtomic: 1 },
  volatile: { pcfUncached: 1 },
  privileged: { pcfPrivilege: 1 },
  kindField: 'kind',
  peerIdField: 'peerId',
  // Invalid-PTE PCF encodings: 0 INVALID, 1 SPARSE, 2 MAPPING_NOWHERE, 3 NO_VALID_4KB_PAGE.
  unmapped: { valid: 0, pcf: 3 },
  sparse: { valid: 0, pcf: 1 },
};
const V3_PDE: LayoutDesc = {
  bits: 64,
  fields: { isPte: [0, 0], aperture: [2, 1], pcf: [5, 3], address: [51, 12] },
};
const V3_PDE_SEM: PdeDesc = {
  apertureField: 'aperture',
  apertures: { vid: 1, sys: 2, sysNc: 3 },
  addressFields: { vid: 'address', sys: 'address', sysNc: 'address' },
  shift: 12,
};
const V3_DUAL: LayoutDesc = {
  bits: 128,
  fields: {
    isPte: [0, 0],
    apertureBig: [2, 1],
    pcfBig: [5, 3],
    addressBig: [51, 8],
    apertureSmall: [66, 65],
    pcfSmall: [69, 67],
    addressSmall: [115, 76],
  },
};

/** NVIDIA MMU v3 (Hopper, Blackwell): 57-bit VA, 6 levels, 40-bit PFN at 51:12, 5-bit PCF at 7:3. */
export const nvMmuV3Desc: FormatDesc = {
  name: 'nv-mmu-v3',
  vaBits: 57,
  source: 'dev_mmu.h NV_MMU_VER3_*, uvm_hopper_mmu.c',
  tablePoolBase: 0x10_0000_0000,
  levels: [
    { name: 'PDE4', vaHi: 56, vaLo: 56, entryBytes: 8, layout: V3_PDE, pde: V3_PDE_SEM },
    { name: 'PDE3', vaHi: 55, vaLo: 47, entryBytes: 8, layout: V3_PDE, pde: V3_PDE_SEM },
    { name: 'PDE2', vaHi: 46, vaLo: 38, entryBytes: 8, layout: V3_PDE, pde: V3_PDE_SEM },
    {
      name: 'PDE1',
      vaHi: 37,
      vaLo: 29,
      entryBytes: 8,
      layout: V3_PDE,
      pde: V3_PDE_SEM,
      pte: V3_PTE_SEM,
      pteLayout: V3_PTE,
      leafTest: { valid: 1 },
    },
    {
      name: 'PDE0',
      vaHi: 28,
      vaLo: 21,
      entryBytes: 16,
      layout: V3_DUAL,
      dual: {
        bigPageShift: 16,
        bigTableBytes: 256,
        big: {
          apertureField: 'apertureBig',
          apertures: { vid: 1, sys: 2, sysNc: 3 },
          addressFields: { vid: 'addressBig', sys: 'addressBig', sysNc: 'addressBig' },
          shift: 8,
        },
        small: {
          apertureField: 'apertureSmall',
          apertures: { vid: 1, sys: 2, sysNc: 3 },
          addressFields: { vid: 'addressSmall', sys: 'addressSmall', sysNc: 'addressSmall' },
          shift: 12,
        },
      },
      pte: V3_PTE_SEM,
      pteLayout: V3_PTE,
      leafTest: { valid: 1 },
    },
    { name: 'PT', vaHi: 20, vaLo: 12, entryBytes: 8, layout: V3_PTE, pte: V3_PTE_SEM },
  ],
};

// ---------------------------------------------------------------- AMD GFX9 GPUVM (amdgpu_vm.h)

const AMD_ENTRY: LayoutDesc = {
  bits: 64,
  fields: {
    valid: [0, 0],
    system: [1, 1],
    snooped: [2, 2],
    tmz: [3, 3],
    executable: [4, 4],
    readable: [5, 5],
    writeable: [6, 6],
    fragment: [11, 7],
    address: [47, 12],
    prt: [51, 51],
    pdePte: [54, 54],
    translateFurther: [56, 56],
    mtype: [58, 57],
  },
};
const AMD_PTE_SEM: PteDesc = {
  valid: { valid: 1, readable: 1 },
  apertureField: 'system',
  apertures: { vid: 0, sys: 1 },
  addressFields: { vid: 'address', sys: 'address' },
  shift: 12,
  writable: { writeable: 1 },
  fragmentField: 'fragment',
  // AMDGPU_PTE_MTYPE_VG10 (58:57): the caching policy, GPU-side counterpart of xe's pat_index
  patField: 'mtype',
  // AMDGPU_PTE_PRT with VALID = 0: partially-resident texture, reads zero, writes dropped.
  sparse: { valid: 0, prt: 1 },
};
const AMD_HUGE_SEM: PteDesc = { ...AMD_PTE_SEM, valid: { valid: 1, readable: 1, pdePte: 1 } };
const AMD_PDE_SEM: PdeDesc = {
  present: { valid: 1, pdePte: 0 },
  apertureField: 'system',
  apertures: { vid: 0, sys: 1 },
  addressFields: { vid: 'address', sys: 'address' },
  shift: 12,
};

/** AMD GFX9+ GPUVM: 48-bit VA, 4 levels of 512 × 8 B, FRAGMENT 11:7, PDE_PTE (bit 54) huge leaves, no dual PDE. */
export const amdGfx9Desc: FormatDesc = {
  name: 'amd-gfx9',
  vaBits: 48,
  source: 'amdgpu_vm.h AMDGPU_PTE_*, amdgpu_vm_adjust_size(256K, 9, 3, 48), gmc_v9_0.c',
  tablePoolBase: 0x10_0000_0000,
  levels: [
    { name: 'PDB2', vaHi: 47, vaLo: 39, entryBytes: 8, layout: AMD_ENTRY, pde: AMD_PDE_SEM },
    {
      name: 'PDB1',
      vaHi: 38,
      vaLo: 30,
      entryBytes: 8,
      layout: AMD_ENTRY,
      pde: AMD_PDE_SEM,
      pte: AMD_HUGE_SEM,
      leafTest: { pdePte: 1 },
    },
    {
      name: 'PDB0',
      vaHi: 29,
      vaLo: 21,
      entryBytes: 8,
      layout: AMD_ENTRY,
      pde: AMD_PDE_SEM,
      pte: AMD_HUGE_SEM,
      leafTest: { pdePte: 1 },
    },
    { name: 'PTB', vaHi: 20, vaLo: 12, entryBytes: 8, layout: AMD_ENTRY, pte: AMD_PTE_SEM },
  ],
};

// ---------------------------------------------------------------- Intel Xe2 PPGTT (xe_gtt_defs.h)

/** Xe2 4 KiB PTE: PRESENT, RW, PAT0/1/2 (3, 4, 7), PS64, NULL, AE, DM, address 51:12, PAT4 61, PAT3 62. */
const XE_PT: LayoutDesc = {
  bits: 64,
  fields: {
    present: [0, 0],
    rw: [1, 1],
    pat0: [3, 3],
    pat1: [4, 4],
    pat2: [7, 7],
    ps64: [8, 8],
    nullPte: [9, 9],
    ae: [10, 10],
    dm: [11, 11],
    address: [51, 12],
    pat4: [61, 61],
    pat3: [62, 62],
  },
};
/** A directory entry: PRESENT, RW, PS (bit 7: a huge leaf when set), table address 51:12. */
const XE_PDE: LayoutDesc = {
  bits: 64,
  fields: { present: [0, 0], rw: [1, 1], ps: [7, 7], address: [51, 12] },
};
/** A huge leaf in a directory (2M or 1G): PS at 7, so PAT2 moves to bit 12 (XE_PPGTT_PDE_PDPE_PAT2). */
const xeHuge = (addrLo: number): LayoutDesc => ({
  bits: 64,
  fields: {
    present: [0, 0],
    rw: [1, 1],
    pat0: [3, 3],
    pat1: [4, 4],
    ps: [7, 7],
    nullPte: [9, 9],
    ae: [10, 10],
    dm: [11, 11],
    pat2: [12, 12],
    address: [51, addrLo],
    pat4: [61, 61],
    pat3: [62, 62],
  },
});
const XE_PAT_BITS = ['pat0', 'pat1', 'pat2', 'pat3', 'pat4'] as const;
const XE_PTE_SEM: PteDesc = {
  // XE_PTE_NULL with PRESENT is a NULL binding (reads zero, writes dropped): "sparse" here
  valid: { present: 1, nullPte: 0 },
  apertureField: 'dm',
  apertures: { sys: 0, vid: 1 },
  addressFields: { sys: 'address', vid: 'address' },
  shift: 12,
  writable: { rw: 1 },
  atomicEnable: { ae: 1 },
  patField: XE_PAT_BITS,
  sparse: { present: 1, nullPte: 1 },
};
const xeHugeSem = (shift: number): PteDesc => ({
  ...XE_PTE_SEM,
  valid: { present: 1, ps: 1, nullPte: 0 },
  sparse: { present: 1, ps: 1, nullPte: 1 },
  shift,
});
const XE_PDE_SEM: PdeDesc = {
  present: { present: 1, ps: 0 },
  apertures: { vid: 0 },
  addressFields: { vid: 'address' },
  shift: 12,
};

/**
 * Intel Xe2/Xe3 PPGTT (Lunar Lake, Battlemage; Linux 6.18 xe_gtt_defs.h, xe_vm.c
 * xelp_pte_encode_bo/pte_encode_pat_index, xe_pat.c): 48-bit VA, 4 levels of 512 × 8 B, 2M and 1G
 * leaves with PS (bit 7), the PAT index in five scattered bits and {@link XE2_PAT_TABLE}, the
 * atomic-enable bit AE, DM for device memory. Deviations: xe's vm_max_level is 4 (a fifth root
 * level with one used entry), not modelled; the PS64 64K hint is not modelled (no 64K pages).
 */
export const xe2Desc: FormatDesc = {
  name: 'xe2',
  vaBits: 48,
  source: 'xe_gtt_defs.h XE_PPGTT_PTE_*, xe_vm.c pte_encode_pat_index, xe_pat.c xe2_pat_table',
  tablePoolBase: 0x10_0000_0000,
  patTable: XE2_PAT_TABLE,
  levels: [
    { name: 'L3', vaHi: 47, vaLo: 39, entryBytes: 8, layout: XE_PDE, pde: XE_PDE_SEM },
    {
      name: 'L2',
      vaHi: 38,
      vaLo: 30,
      entryBytes: 8,
      layout: XE_PDE,
      pde: XE_PDE_SEM,
      pte: xeHugeSem(30),
      pteLayout: xeHuge(30),
      leafTest: { ps: 1 },
    },
    {
      name: 'L1',
      vaHi: 29,
      vaLo: 21,
      entryBytes: 8,
      layout: XE_PDE,
      pde: XE_PDE_SEM,
      pte: xeHugeSem(21),
      pteLayout: xeHuge(21),
      leafTest: { ps: 1 },
    },
    { name: 'L0', vaHi: 20, vaLo: 12, entryBytes: 8, layout: XE_PT, pte: XE_PTE_SEM },
  ],
};

// ---------------------------------------------------------------- toy format for tests

const TOY_PTE: LayoutDesc = {
  bits: 64,
  fields: {
    valid: [0, 0],
    aperture: [2, 1],
    readOnly: [3, 3],
    atomicDisable: [4, 4],
    unmapped: [5, 5],
    sparse: [6, 6],
    kind: [9, 8],
    pat: [11, 10],
    address: [27, 12],
  },
};
const TOY_PTE_SEM: PteDesc = {
  valid: { valid: 1 },
  apertureField: 'aperture',
  apertures: { vid: 0, sys: 2 },
  addressFields: { vid: 'address', sys: 'address' },
  shift: 12,
  readOnly: { readOnly: 1 },
  atomicDisable: { atomicDisable: 1 },
  kindField: 'kind',
  patField: 'pat',
  unmapped: { valid: 0, unmapped: 1 },
  sparse: { valid: 0, sparse: 1 },
};
const TOY_DUAL: LayoutDesc = {
  bits: 128,
  fields: {
    isPte: [0, 0],
    apertureBig: [2, 1],
    addressBig: [31, 8],
    apertureSmall: [66, 65],
    addressSmall: [91, 76],
  },
};

/**
 * A toy format: 24-bit VA (16 MiB), 2 levels. The root is a dual PDE (8 × 16 B, 2M leaves
 * allowed) over a 64K big table (32 entries) and a 4K table (512 entries); 16-bit PFN (256 MiB).
 */
export const toyFormatDesc: FormatDesc = {
  name: 'toy',
  vaBits: 24,
  source: 'hmmkit test format (NVIDIA-like dual PDE, small fields so bounds are easy to hit)',
  tablePoolBase: 0x0800_0000,
  levels: [
    {
      name: 'ROOT',
      vaHi: 23,
      vaLo: 21,
      entryBytes: 16,
      layout: TOY_DUAL,
      dual: {
        bigPageShift: 16,
        bigTableBytes: 256,
        big: {
          apertureField: 'apertureBig',
          apertures: { vid: 1, sys: 2 },
          addressFields: { vid: 'addressBig', sys: 'addressBig' },
          shift: 8,
        },
        small: {
          apertureField: 'apertureSmall',
          apertures: { vid: 1, sys: 2 },
          addressFields: { vid: 'addressSmall', sys: 'addressSmall' },
          shift: 12,
        },
      },
      pte: TOY_PTE_SEM,
      pteLayout: TOY_PTE,
      leafTest: { valid: 1 },
    },
    { name: 'PT', vaHi: 20, vaLo: 12, entryBytes: 8, layout: TOY_PTE, pte: TOY_PTE_SEM },
  ],
};

/** NVIDIA MMU v2, compiled. */
export const nvMmuV2: PtFormat = compileFormat(nvMmuV2Desc);
/** NVIDIA MMU v3, compiled. */
export const nvMmuV3: PtFormat = compileFormat(nvMmuV3Desc);
/** AMD GFX9 GPUVM, compiled. */
export const amdGfx9: PtFormat = compileFormat(amdGfx9Desc);
/** Intel Xe2 PPGTT, compiled. */
export const xe2: PtFormat = compileFormat(xe2Desc);
/** The toy test format, compiled. */
export const toyFormat: PtFormat = compileFormat(toyFormatDesc);

/** Every preset by name. */
export const FORMATS: Readonly<Record<string, PtFormat>> = {
  [nvMmuV2.name]: nvMmuV2,
  [nvMmuV3.name]: nvMmuV3,
  [amdGfx9.name]: amdGfx9,
  [xe2.name]: xe2,
  [toyFormat.name]: toyFormat,
};
