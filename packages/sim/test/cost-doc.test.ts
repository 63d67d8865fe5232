import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { COST_PARAMS, costModelMarkdown } from '../src/index.ts';

const page = fileURLToPath(new URL('../../../docs/cost-model.md', import.meta.url));

/** A table's cells, row by row, ignoring the column padding the formatter adds. */
function cells(table: string): string[][] {
  return table
    .trim()
    .split('\n')
    .map((row) =>
      row
        .split('|')
        .slice(1, -1)
        .map((c) => c.trim().replace(/^-+$/, '---')),
    );
}

describe('docs/cost-model.md', () => {
  it('holds the table generated from COST_PARAMS (regenerate: tsx packages/sim/bench/cost-doc.ts)', () => {
    const doc = readFileSync(page, 'utf8');
    const start = doc.indexOf('<!-- cost-table:start -->');
    const end = doc.indexOf('<!-- cost-table:end -->');
    expect(start).toBeGreaterThan(-1);
    expect(cells(doc.slice(start + '<!-- cost-table:start -->'.length, end))).toEqual(
      cells(costModelMarkdown()),
    );
  });

  it('lists every parameter once', () => {
    const table = costModelMarkdown();
    for (const name of Object.keys(COST_PARAMS)) expect(table.split(`\`${name}\``).length - 1).toBe(1);
  });
});
