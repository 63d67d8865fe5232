/**
 * ROCm kfdtest's KFDSVMRangeTest with XNACK on (retry faults): the cases are in
 * `kfd-svm-range-cases.ts`, shared with the XNACK-off run.
 */
import { describe } from 'vitest';
import { defineKfdSvmRangeCases } from './kfd-svm-range-cases.ts';

describe('KFDSVMRangeTest', () => defineKfdSvmRangeCases({ xnack: true }));
