/**
 * xe_exec_system_allocator (IGT tests/intel/xe_exec_system_allocator.c): the process-many family
 * (`xe-families.ts`), part 2 of 5 (section k in part k mod 5). CI runs each of this part's
 * sections once, in process-many- or process-many-execqueues-; `XE_FAMILY_ALL=1` runs all five shapes.
 */
import { describe, it } from 'vitest';
import { familySample, familySubtests, runFamilySubtest } from './xe-families.ts';

const PART = 1;

describe('xe_exec_system_allocator: process-many (part 2 of 5)', () => {
  const all = process.env.XE_FAMILY_ALL === '1';
  for (const t of familySubtests('process-many', 5000, familySample(PART, 5, [0, 2], all))) {
    it(`xe_exec_system_allocator: ${t.name}`, () => runFamilySubtest(t));
  }
});
