/**
 * Triggers of the typed migration and unmap events on the trace bus (the trace declarations live
 * in `gpusvm.ts`, whose emitted .d.ts every consumer loads). The values follow amdkfd's SMI event
 * enums (include/uapi/linux/kfd_ioctl.h, Linux 6.x): `KFD_MIGRATE_TRIGGER_*`,
 * `KFD_SVM_UNMAP_TRIGGER_*`, `KFD_QUEUE_EVICTION_TRIGGER_*`.
 *
 * @module
 */

/**
 * Why pages migrated (`KFD_MIGRATE_TRIGGER_{PREFETCH,PAGEFAULT_GPU,PAGEFAULT_CPU,TTM_EVICTION}`),
 * plus ACCESS_COUNTER (UVM's UvmEventMigrationCauseAccessCounters; KFD has no access counters).
 */
export const MIGRATE_TRIGGER = {
  PREFETCH: 0,
  GPU_FAULT: 1,
  CPU_FAULT: 2,
  TTM_EVICTION: 3,
  ACCESS_COUNTER: 4,
} as const;
/** A {@link MIGRATE_TRIGGER} value. */
export type MigrateTrigger = (typeof MIGRATE_TRIGGER)[keyof typeof MIGRATE_TRIGGER];

/**
 * Why device PTEs were removed (`KFD_SVM_UNMAP_TRIGGER_{MMU_NOTIFY,MMU_NOTIFY_MIGRATE,UNMAP_FROM_CPU}`):
 * a CPU-side invalidation (mprotect, COW, DONTNEED, ...), a migration's invalidation (including
 * eviction), or munmap.
 */
export const UNMAP_TRIGGER = { MMU_NOTIFY: 0, MMU_NOTIFY_MIGRATE: 1, UNMAP_FROM_CPU: 2 } as const;
/** An {@link UNMAP_TRIGGER} value. */
export type UnmapTrigger = (typeof UNMAP_TRIGGER)[keyof typeof UNMAP_TRIGGER];

/** Why a queue was evicted (`KFD_QUEUE_EVICTION_TRIGGER_SVM`: an invalidation of an SVM range with XNACK off). */
export const QUEUE_EVICTION_TRIGGER = { SVM: 0 } as const;
