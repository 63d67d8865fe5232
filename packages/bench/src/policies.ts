/**
 * Policies by name, so that experiment specs are plain JSON (they cross worker-thread boundaries
 * and land in results files): granule (fault-around) policies and notifier-granularity policies
 * of `@hmmkit/svm`.
 *
 * @module
 */

import { ArgumentError, type Sim } from '@hmmkit/sim';
import {
  amdkfdPolicy,
  drmGpusvmPolicy,
  type EvictionPolicy,
  type GranulePolicy,
  lruChunkEviction,
  type NotifierPolicy,
  nouveauPolicy,
  perRangeNotifiers,
  type RangeAttrs,
  type Span,
  SZ_2M,
  SZ_64K,
  SZ_512M,
  uvmSmartEviction,
  uvmSmartPrefetcher,
  uvmTreePolicy,
  wholeMmNotifier,
  wholeVmaPolicy,
  windowNotifiers,
} from '@hmmkit/svm';

/** Granule policies by name: the real drivers' fault-around choices plus fixed-size baselines. */
export const GRANULE_POLICIES = {
  /** drm_gpusvm / xe: chunk sizes {2M, 64K, 4K}, largest that fits. */
  xe: () => drmGpusvmPolicy(),
  /** drm_gpusvm limited to 64K and 4K chunks. */
  'xe-64k': () => drmGpusvmPolicy({ chunkSizes: [SZ_64K, 4096] }),
  /** Demand paging: one 4K page per fault (drm_gpusvm with only 4K chunks). */
  '4k': () => drmGpusvmPolicy({ chunkSizes: [4096] }),
  /** amdkfd: 2^granularity-page aligned window (default 9 = 2 MiB). */
  amdkfd: () => amdkfdPolicy(),
  /** nouveau: one page, widened to the CPU map order. */
  nouveau: () => nouveauPolicy(),
  /** NVIDIA UVM's tree prefetcher (51 % threshold, 64K big pages). */
  'uvm-tree': () => uvmTreePolicy(),
  /** UVM with the prefetcher disabled (faulted pages only, grown to 64K big pages off). */
  'uvm-noprefetch': () => uvmTreePolicy({ enable: false }),
  /** The whole VMA at once (the policy reviewers reject; here to measure why). */
  'whole-vma': () => wholeVmaPolicy(),
  /** UVMSmart (Ganguly et al., ISCA 2019) on-demand paging: the faulted 4K page only. */
  'uvmsmart-on-demand': () => uvmSmartPrefetcher('on-demand'),
  /** UVMSmart random 4K prefetcher: the faulted page plus one random page of its 2 MiB block. */
  'uvmsmart-random-4k': () => uvmSmartPrefetcher('random-4k'),
  /** UVMSmart sequential-local prefetcher: the faulted page's 64 KiB basic block. */
  'uvmsmart-seq-64k': () => uvmSmartPrefetcher('sequential-local-64k'),
  /** UVMSmart tree-based neighbourhood prefetcher (UVM's tree, as their simulator models it). */
  'uvmsmart-tree': () => uvmSmartPrefetcher('tree-neighbourhood'),
} as const satisfies Record<string, () => GranulePolicy>;

/** A key of {@link GRANULE_POLICIES}. */
export type GranuleName = keyof typeof GRANULE_POLICIES;

/** Notifier-granularity policies by name. */
export const NOTIFIER_POLICIES = {
  /** One interval notifier per range (nouveau's temporary notifier, amdkfd's per range). */
  'per-range': () => perRangeNotifiers(),
  /** One notifier per 2 MiB window. */
  'window-2M': () => windowNotifiers(SZ_2M),
  /** One notifier per 512 MiB window (drm_gpusvm / xe default). */
  'window-512M': () => windowNotifiers(SZ_512M),
  /** One notifier over the whole managed VA. */
  'whole-mm': () => wholeMmNotifier(),
} as const satisfies Record<string, () => NotifierPolicy>;

/** A key of {@link NOTIFIER_POLICIES}. */
export type NotifierName = keyof typeof NOTIFIER_POLICIES;

/**
 * Eviction policies of the device-memory pool by name (placement 'vram'), each built with the
 * cell's seed (only the random ones use it). The default, `lru-chunk`, is UVM's
 * `pick_root_chunk_to_evict`; the `uvmsmart-*` ones are UVMSmart's (Ganguly et al., ISCA 2019).
 */
export const EVICTION_POLICIES = {
  /** UVM's default: the least recently allocated 2 MiB chunk, whole. */
  'lru-chunk': (_seed: number) => lruChunkEviction(),
  /** UVMSmart LRU 4K: the least recently mapped 4 KiB page (with its bind-mates). */
  'uvmsmart-lru-4k': (seed: number) => uvmSmartEviction('lru-4k', seed),
  /** UVMSmart LRU 2M: the least recently mapped 2 MiB chunk, whole (UVMSmart's default). */
  'uvmsmart-lru-2m': (seed: number) => uvmSmartEviction('lru-2m', seed),
  /** UVMSmart LFU 2M: the least often mapped 2 MiB chunk, whole. */
  'uvmsmart-lfu-2m': (seed: number) => uvmSmartEviction('lfu-2m', seed),
  /** UVMSmart random 4K: one random used page. */
  'uvmsmart-random-4k': (seed: number) => uvmSmartEviction('random-4k', seed),
  /** UVMSmart sequential-local 64K: the first used 64 KiB group of the LRU chunk. */
  'uvmsmart-seq-64k': (seed: number) => uvmSmartEviction('sequential-local-64k', seed),
  /** UVMSmart tree-based neighbourhood pre-eviction (TBNe). */
  'uvmsmart-tree': (seed: number) => uvmSmartEviction('tree-neighbourhood', seed),
} as const satisfies Record<string, (seed: number) => EvictionPolicy>;

/** A key of {@link EVICTION_POLICIES}. */
export type EvictionName = keyof typeof EVICTION_POLICIES;

/** The default eviction policy of an experiment. */
export const DEFAULT_EVICTION: EvictionName = 'lru-chunk';

/** Whether `name` is an eviction policy name. */
export function isEvictionName(name: string): name is EvictionName {
  return Object.hasOwn(EVICTION_POLICIES, name);
}

/** Builds the eviction policy called `name` for a cell of seed `seed`; throws ArgumentError for an unknown name. */
export function evictionPolicy(name: string, seed = 1): EvictionPolicy {
  if (!isEvictionName(name)) {
    throw new ArgumentError(
      'evictionPolicy',
      'name',
      `must be one of ${Object.keys(EVICTION_POLICIES).join(', ')}`,
      name,
    );
  }
  return EVICTION_POLICIES[name](seed);
}

/**
 * The policy label of a cell's fault-side choices: the granule policy, then `>granuleOnceFull`
 * when it switches once the pool is full, then `+eviction` when the eviction policy is not the
 * default (so tables and keys of sweeps without either are unchanged), e.g.
 * `uvmsmart-tree>uvmsmart-on-demand+uvmsmart-lru-4k`.
 */
export function granuleLabel(spec: {
  readonly granule: string;
  readonly granuleOnceFull?: string;
  readonly eviction?: string;
}): string {
  const g = spec.granuleOnceFull === undefined ? spec.granule : `${spec.granule}>${spec.granuleOnceFull}`;
  return spec.eviction === undefined || spec.eviction === DEFAULT_EVICTION ? g : `${g}+${spec.eviction}`;
}

/**
 * Acts as `before` until the device-memory pool's first eviction (the `svm.evictions` counter of
 * `sim`, all devices together), then as `after`, for good. Models UVMSmart's
 * `-hwprefetch_oversub` (Ganguly et al., ISCA'19; `gpu-sim.cc`: the first time
 * `should_evict_page` holds, `update_hardware_prefetcher_oversubscribed` replaces the prefetcher
 * and `over_sub` keeps it replaced); UVMSmart tests the pool when it queues a fault's pages,
 * hmmkit switches at the first eviction that queueing causes.
 */
export function onceFullPolicy(sim: Sim, before: GranulePolicy, after: GranulePolicy): GranulePolicy {
  // stateless: the counter only grows during a run
  const pick = () => (sim.counters.get('svm.evictions') > 0 ? after : before);
  const both = before.migrateToRamSpan !== undefined || after.migrateToRamSpan !== undefined;
  return {
    name: `${before.name}>${after.name}`,
    choose: (ctx) => pick().choose(ctx),
    ...(both
      ? {
          migrateToRamSpan: (va: number, range: Span | null, attrs: RangeAttrs): Span => {
            const p = pick();
            return p.migrateToRamSpan !== undefined
              ? p.migrateToRamSpan(va, range, attrs)
              : (range ?? { start: va - (va % 4096), end: va - (va % 4096) + 4096 });
          },
        }
      : {}),
  };
}

/** Whether `name` is a granule policy name. */
export function isGranuleName(name: string): name is GranuleName {
  return Object.hasOwn(GRANULE_POLICIES, name);
}

/** Whether `name` is a notifier policy name. */
export function isNotifierName(name: string): name is NotifierName {
  return Object.hasOwn(NOTIFIER_POLICIES, name);
}

/** Builds the granule policy called `name`; throws ArgumentError for an unknown name. */
export function granulePolicy(name: string): GranulePolicy {
  if (!isGranuleName(name)) {
    throw new ArgumentError(
      'granulePolicy',
      'name',
      `must be one of ${Object.keys(GRANULE_POLICIES).join(', ')}`,
      name,
    );
  }
  return GRANULE_POLICIES[name]();
}

/** Builds the notifier policy called `name`; throws ArgumentError for an unknown name. */
export function notifierPolicy(name: string): NotifierPolicy {
  if (!isNotifierName(name)) {
    throw new ArgumentError(
      'notifierPolicy',
      'name',
      `must be one of ${Object.keys(NOTIFIER_POLICIES).join(', ')}`,
      name,
    );
  }
  return NOTIFIER_POLICIES[name]();
}
