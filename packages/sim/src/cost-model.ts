/**
 * The cost model: every simulated cost is a named parameter with a default, a unit and the
 * source of that default, so a user changes the model in one place and every report follows.
 *
 * Defaults come from NVIDIA UVM's sources (open-gpu-kernel-modules, kernel-open/nvidia-uvm), Allen &
 * Ge (SC 2021), UVMSmart (Ganguly et al., ISCA 2019, and its simulator) and the nova-core review
 * figures. Parameters marked `estimate` have no published measurement behind them; sweep them.
 *
 * @module
 */
import { ArgumentError } from './errors.ts';

/** The unit a cost parameter is expressed in. */
export type CostUnit = 'ns' | 'ns/KiB' | 'GB/s' | 'count' | 'percent' | '1/KiB';

/** Description of one cost parameter: its default, unit, source and a sensible sweep range. */
export interface CostParamInfo {
  readonly value: number;
  readonly unit: CostUnit;
  readonly source: string;
  readonly range: readonly [number, number];
  /** True when no published measurement backs the default. */
  readonly estimate: boolean;
  readonly doc: string;
}

function p(
  value: number,
  unit: CostUnit,
  range: readonly [number, number],
  source: string,
  doc: string,
  estimate = false,
): CostParamInfo {
  return { value, unit, range, source, doc, estimate };
}

/** Every cost parameter of the simulation with its documented default. */
export const COST_PARAMS = {
  // ---- CPU side (mm, hmm, notifiers) ----
  cpuFaultNs: p(
    1500,
    'ns',
    [500, 3000],
    'estimate, no published measurement: +1–2 µs/page when a CPU fault is needed',
    'handle_mm_fault() for one 4K page, excluding zeroing/copying',
    true,
  ),
  cpuPageZeroNs: p(
    250,
    'ns',
    [100, 1000],
    '4 KiB clear at ~16 GB/s memory bandwidth',
    'clearing one new anonymous 4K page',
    true,
  ),
  cpuPageCopyNs: p(
    400,
    'ns',
    [200, 1500],
    '4 KiB copy at ~10 GB/s memory bandwidth',
    'copying one 4K page (COW, swap-in, NUMA migration)',
    true,
  ),
  cpuTlbShootdownNs: p(
    2000,
    'ns',
    [500, 10000],
    'estimate: CPU unmap + host TLB shootdown',
    'one flush_tlb_range() with IPIs, per operation',
    true,
  ),
  swapIoPerPageNs: p(
    10000,
    'ns',
    [2000, 100000],
    'NVMe 4K write/read, ~10 µs',
    'writing or reading one 4K page to or from swap',
    true,
  ),
  hmmWalkPerPageNs: p(
    100,
    'ns',
    [20, 500],
    'estimate, no published measurement: hmm_range_fault 0.1 µs/page when PTEs are present',
    'hmm_range_fault() cost per page already present',
    true,
  ),
  notifierCallbackNs: p(
    200,
    'ns',
    [50, 2000],
    'no published measurement',
    'dispatching one interval-notifier invalidate() callback',
    true,
  ),
  // ---- GPU fault servicing ----
  gpuFarFaultBaseNs: p(
    25000,
    'ns',
    [10000, 50000],
    'UVMSmart 45 µs; 20–50 µs literature range',
    'stall from a GPU far fault until the driver starts on its batch',
  ),
  faultBatchFixedNs: p(
    40000,
    'ns',
    [20000, 100000],
    'Allen & Ge fit intercepts 30–50 µs (SC 2021)',
    'fixed cost per fault batch: fetch, sort, replay, flush',
  ),
  faultServicePerPageNs: p(
    3000,
    'ns',
    [2000, 5000],
    'Allen & Ge no-prefetch slopes 0.7–1.25 µs/KB = 2.9–5.1 µs/page all-in (SC 2021), less the ' +
      'copy, PTE push and walk charged separately (≈0.3 µs/page at 1 MiB per block)',
    'driver service per unique faulted 4K page of a batch, excluding the copy, PTE writes, TLB ' +
      'invalidates, hmm walk and CPU TLB flush (charged separately)',
  ),
  prefetchPerKiBNs: p(
    200,
    'ns/KiB',
    [100, 300],
    'Allen & Ge prefetch fit 0.2 µs/KB (SC 2021)',
    'all-in cost per KiB of a large prefetch region: a calibration reference, not charged (the copy, ' +
      'walk and PTE costs reproduce it; docs/calibration.md target a)',
  ),
  faultBatchMax: p(
    256,
    'count',
    [32, 1024],
    'UVM uvm_perf_fault_batch_count (nvidia-uvm)',
    'maximum faults fetched per batch',
  ),
  faultDuplicateRatio: p(
    0.8,
    'count',
    [0.5, 0.92],
    'Allen & Ge duplicate fraction (SC 2021)',
    'fraction of GPU faults that duplicate another in flight (workload calibration)',
  ),
  // ---- copy engine and interconnect ----
  copyFixedNs: p(
    2000,
    'ns',
    [1000, 5000],
    '4K memcpy ≈ 2 µs (Allen & Ge, SC 2021)',
    'shortest possible copy-engine transfer (setup latency floor)',
  ),
  pcieAtanA: p(
    12,
    'GB/s',
    [12, 48],
    'UVMSmart calculate_transfer_time, a = 12 for PCIe3 x16',
    'asymptotic link rate of the atan bandwidth curve',
  ),
  pcieAtanB: p(
    0.07292,
    '1/KiB',
    [0.03, 0.15],
    'UVMSmart calculate_transfer_time b',
    'steepness of the atan bandwidth curve per KiB',
  ),
  evictRootChunkNs: p(
    170000,
    'ns',
    [100000, 250000],
    'Allen & Ge: +150–200 µs per 2 MiB eviction (SC 2021)',
    'evicting one 2 MiB VRAM root chunk (D2H copy + unmap)',
  ),
  cpuUnmapPerVaBlockNs: p(
    30000,
    'ns',
    [10000, 50000],
    'estimate, calibrated to the 0–45 % batch share Allen & Ge (SC 2021) measured',
    'unmapping the CPU side of one 2 MiB VA block before a migration to the GPU: a reference, not ' +
      'charged (mm charges cpuTlbShootdownNs once per 2 MiB block a migration unmaps)',
    true,
  ),
  // ---- GPU MMU ----
  tlbInvalidateNs: p(
    1400,
    'ns',
    [1000, 5000],
    'nova-core review, dri-devel April 2026',
    'one GPU TLB invalidate (one range or one full flush)',
  ),
  tlbBatchMaxRanges: p(
    8,
    'count',
    [4, 16],
    'UVM tlb_batch.max_ranges (nvidia-uvm)',
    'ranges batched before a full TLB flush is issued instead',
  ),
  pteWriteBar0Ns: p(
    1000,
    'ns',
    [500, 2000],
    'nova-core review: ~1 µs per PTE write through PRAMIN/BAR0',
    'one 8-byte PTE/PDE write by the CPU through the BAR0 window',
  ),
  pteWriteBatchFixedNs: p(
    2000,
    'ns',
    [1000, 5000],
    'one copy-engine push, as copyFixedNs',
    'fixed cost of a batched page-table update pushed through the copy engine',
    true,
  ),
  pteWriteBatchPerEntryNs: p(
    5,
    'ns',
    [1, 50],
    'PTE bytes over the copy engine at ~2 GB/s',
    'per 8-byte entry in a batched copy-engine page-table update',
    true,
  ),
  gpuPageWalkNs: p(
    100,
    'ns',
    [66, 500],
    'MGPUSim / UVMSmart 100 cycles at 1 GHz',
    'one GPU page-table walk after a TLB miss',
  ),
  gpuTlbHitNs: p(1, 'ns', [0, 10], 'one cycle at 1 GHz', 'a GPU access that hits the TLB', true),
  gpuSysAccessNs: p(
    10,
    'ns',
    [2, 50],
    '128 B warp-wide access over PCIe3 x16 at ≈12 GB/s',
    'extra cost of a GPU access served from system memory (SYS aperture) over one served from its VRAM',
    true,
  ),
  gpuPeerAccessNs: p(
    3,
    'ns',
    [1, 20],
    '128 B warp-wide access over NVLink2/XGMI at ≈50 GB/s',
    "extra cost of a GPU access served from another GPU's VRAM (PEER aperture)",
    true,
  ),
  kernelLaunchNs: p(
    5000,
    'ns',
    [5000, 150000],
    'real 5–10 µs; UVMSmart uses 150 µs',
    'launching one GPU kernel',
  ),
} as const satisfies Record<string, CostParamInfo>;

/** The name of a cost parameter. */
export type CostParamName = keyof typeof COST_PARAMS;

/** Resolved cost parameter values, read on hot paths as plain fields. */
export type CostModel = { readonly [K in CostParamName]: number };

/** The default cost model (every parameter at its documented default). */
export const DEFAULT_COSTS: CostModel = Object.freeze(
  Object.fromEntries(Object.entries(COST_PARAMS).map(([k, v]) => [k, v.value])) as CostModel,
);

/**
 * Builds a cost model from the defaults and `overrides`. Unknown names and values that are
 * not finite and non-negative are rejected with an {@link ArgumentError} naming the parameter.
 */
export function createCostModel(overrides: Partial<Record<CostParamName, number>> = {}): CostModel {
  const out: Record<string, number> = { ...DEFAULT_COSTS };
  for (const [name, value] of Object.entries(overrides)) {
    if (!Object.hasOwn(COST_PARAMS, name)) {
      throw new ArgumentError(
        'createCostModel',
        `overrides.${name}`,
        'is not a cost parameter (see COST_PARAMS)',
        name,
      );
    }
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw new ArgumentError(
        'createCostModel',
        `overrides.${name}`,
        'must be a finite non-negative number',
        value,
      );
    }
    out[name] = value;
  }
  return Object.freeze(out) as CostModel;
}

/**
 * Copy-engine transfer time in ns for one transfer of `bytes`: `bytes / rate(size)` with the
 * UVMSmart atan curve rate(GB/s) = (2a/π)·atan(b·KiB), which already folds the per-transfer
 * overhead into small sizes (4K ≈ 1.8 µs, 64K ≈ 5.9 µs, 1M ≈ 82 µs, matching Allen & Ge's
 * measured cudaMemcpy), floored at `copyFixedNs`. UVMSmart's halving of the rate at ≥ 2 MiB
 * is a modelling quirk and is not reproduced.
 */
export function transferTimeNs(costs: CostModel, bytes: number): number {
  if (bytes <= 0) return 0;
  const kib = bytes / 1024;
  const gbps = ((2 * costs.pcieAtanA) / Math.PI) * Math.atan(costs.pcieAtanB * kib);
  return Math.max(costs.copyFixedNs, bytes / gbps); // bytes / (GB/s) = ns
}
