/**
 * ROCm kfdtest's KFDSVMRangeTest with XNACK off (no retry faults): every case of
 * `kfd-svm-range-cases.ts` in the mode kfdtest's SetUp() selects with HSA_XNACK=0, each also
 * asserting that no memory exception was raised. Four cases have XNACK-off ports of their own in
 * `../xnack-off.test.ts`, written for what differs in that mode (XNACKModeTest switching modes
 * around a live queue, EvictSystemRangeTest's queue restore after the COW break,
 * ReadOnlyRangeTest's fatal write, BasicSystemMemTest without a single fault); they run there,
 * not twice.
 */
import { describe } from 'vitest';
import { defineKfdSvmRangeCases } from './kfd-svm-range-cases.ts';

describe('KFDSVMRangeTest (XNACK off)', () =>
  defineKfdSvmRangeCases({
    xnack: false,
    elsewhere: new Set([
      'KFDSVMRangeTest.BasicSystemMemTest',
      'KFDSVMRangeTest.EvictSystemRangeTest',
      'KFDSVMRangeTest.ReadOnlyRangeTest',
    ]),
  }));
