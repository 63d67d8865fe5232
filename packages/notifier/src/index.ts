/**
 * `@hmmkit/notifier`: MMU notifiers and interval notifiers with Linux's seqno/retry protocol
 * (mm/mmu_notifier.c, include/linux/mmu_notifier.h). Names are the kernel's in camelCase.
 *
 * @module
 */
export {
  MMU_NOTIFIER_RANGE_BLOCKABLE,
  MmuNotifierRange,
  MmuNotifyEvent,
  mmuNotifierRangeBlockable,
  mmuNotifierRangeInit,
  mmuNotifyEventName,
  type NotifierMm,
} from './events.ts';
export {
  MmuIntervalNotifier,
  type MmuIntervalNotifierOps,
  MmuNotifier,
  type MmuNotifierOps,
  MmuNotifierSubscriptions,
  mmHasNotifiers,
  mmuIntervalCheckRetry,
  mmuIntervalNotifierInsert,
  mmuIntervalNotifierInsertLocked,
  mmuIntervalNotifierRemove,
  mmuIntervalReadBegin,
  mmuIntervalReadRetry,
  mmuIntervalSetSeq,
  mmuNotifierClearFlushYoung,
  mmuNotifierClearYoung,
  mmuNotifierInvalidateRangeEnd,
  mmuNotifierInvalidateRangeStart,
  mmuNotifierInvalidateRangeStartNonblock,
  mmuNotifierRegister,
  mmuNotifierRegisterLocked,
  mmuNotifierRelease,
  mmuNotifierTestYoung,
  mmuNotifierUnregister,
} from './subscriptions.ts';
