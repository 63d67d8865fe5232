/**
 * xe_exec_system_allocator (IGT tests/intel/xe_exec_system_allocator.c): the execqueues family
 * (`xe-families.ts`), part 2 of 4 (section k in part k mod 4). CI runs each of this part's
 * sections once, in many-execqueues-; `XE_FAMILY_ALL=1` runs many-large-execqueues- too.
 */
import { describe, it } from 'vitest';
import { familySample, familySubtests, runFamilySubtest } from './xe-families.ts';

const PART = 1;

describe('xe_exec_system_allocator: execqueues (part 2 of 4)', () => {
  const all = process.env.XE_FAMILY_ALL === '1';
  for (const t of familySubtests('execqueues', 6000, familySample(PART, 4, [0], all))) {
    it(`xe_exec_system_allocator: ${t.name}`, () => runFamilySubtest(t));
  }
});
