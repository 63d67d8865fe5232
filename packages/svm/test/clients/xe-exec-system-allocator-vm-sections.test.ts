/**
 * xe_exec_system_allocator (IGT tests/intel/xe_exec_system_allocator.c): the sections that need a
 * GPU VM with buffer objects — malloc-busy, new-busy, malloc-bo-unmap, new-bo-map and their
 * -nomemset variants — in the shapes once, once-large, twice, twice-large, many, many-64k,
 * many-stride, many-large (`xe-families.ts`). CI runs every section in once-, twice- and one of
 * the many shapes; `XE_FAMILY_ALL=1` runs all 64.
 */
import { describe, it } from 'vitest';
import { familySubtests, runFamilySubtest } from './xe-families.ts';

describe('xe_exec_system_allocator: busy, bo-unmap, new-bo-map', () => {
  const all = process.env.XE_FAMILY_ALL === '1';
  // shapes 0 once, 2 twice (every section), and section k once more in many (k even) or many-64k
  const pick = (shape: number, k: number) => all || shape === 0 || shape === 2 || shape === 4 + (k % 2);
  for (const t of familySubtests('vm-sections', 1600, pick)) {
    it(`xe_exec_system_allocator: ${t.name}`, () => runFamilySubtest(t));
  }
});
