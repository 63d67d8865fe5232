/**
 * xe_exec_system_allocator (IGT tests/intel/xe_exec_system_allocator.c): the threads-many family
 * (`xe-families.ts`), part 4 of 6 (section k in part k mod 6). CI runs each of this part's
 * sections once, in threads-many- or threads-many-execqueues-; `XE_FAMILY_ALL=1` runs all five shapes.
 */
import { describe, it } from 'vitest';
import { familySample, familySubtests, runFamilySubtest } from './xe-families.ts';

const PART = 3;

describe('xe_exec_system_allocator: threads-many (part 4 of 6)', () => {
  const all = process.env.XE_FAMILY_ALL === '1';
  for (const t of familySubtests('threads-many', 3000, familySample(PART, 6, [0, 2], all))) {
    it(`xe_exec_system_allocator: ${t.name}`, () => runFamilySubtest(t));
  }
});
