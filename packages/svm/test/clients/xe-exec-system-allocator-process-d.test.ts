/**
 * xe_exec_system_allocator (IGT tests/intel/xe_exec_system_allocator.c): process-many-* (`xe-families.ts`),
 * part 4 of 4 (section k in part k mod 4). CI runs each of this part's sections once, in
 * the process-many- or process-many-execqueues- shape; `XE_FAMILY_ALL=1` runs all five shapes.
 */
import { describe, it } from 'vitest';
import { familySample, familySubtests, runFamilySubtest } from './xe-families.ts';

const FILE = 3;

describe('xe_exec_system_allocator: process-many-* (part 4 of 4)', () => {
  const all = process.env.XE_FAMILY_ALL === '1';
  for (const t of familySubtests('process-many', 15000, familySample(FILE, 4, [0, 2], all))) {
    it(`xe_exec_system_allocator: ${t.name}`, () => runFamilySubtest(t));
  }
});
