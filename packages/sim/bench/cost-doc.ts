/** Regenerates the table in docs/cost-model.md from COST_PARAMS: `tsx packages/sim/bench/cost-doc.ts`. */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { costModelMarkdown } from '../src/index.ts';

const page = fileURLToPath(new URL('../../../docs/cost-model.md', import.meta.url));
const doc = readFileSync(page, 'utf8');
const open = '<!-- cost-table:start -->';
const close = '<!-- cost-table:end -->';
const a = doc.indexOf(open);
const b = doc.indexOf(close);
if (a < 0 || b < a) throw new Error(`${page} lacks the ${open} / ${close} markers`);
writeFileSync(page, `${doc.slice(0, a + open.length)}\n\n${costModelMarkdown()}\n${doc.slice(b)}`);
console.log(`updated ${page}`);
