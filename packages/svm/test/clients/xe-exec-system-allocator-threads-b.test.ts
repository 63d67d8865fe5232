/**
 * xe_exec_system_allocator (IGT tests/intel/xe_exec_system_allocator.c): threads-many-* (`xe-families.ts`),
 * part 2 of 4 (section k in part k mod 4). CI runs each of this part's sections once, in
 * the threads-many- or threads-many-execqueues- shape; `XE_FAMILY_ALL=1` runs all five shapes.
 */
import { describe, it } from 'vitest';
import { familySample, familySubtests, runFamilySubtest } from './xe-families.ts';

const FILE = 1;

describe('xe_exec_system_allocator: threads-many-* (part 2 of 4)', () => {
  const all = process.env.XE_FAMILY_ALL === '1';
  for (const t of familySubtests('threads-many', 15000, familySample(FILE, 4, [0, 2], all))) {
    it(`xe_exec_system_allocator: ${t.name}`, () => runFamilySubtest(t));
  }
});
