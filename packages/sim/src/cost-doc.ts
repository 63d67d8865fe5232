/**
 * Renders the cost model as the Markdown table of docs/cost-model.md, so the page is generated
 * from `COST_PARAMS` and a test keeps the two in sync.
 *
 * @module
 */
import { COST_PARAMS } from './cost-model.ts';

function fmt(value: number, unit: string): string {
  if (unit === 'ns' && value >= 1000) return `${value / 1000} µs`;
  if (unit === 'ns') return `${value} ns`;
  return `${value} ${unit}`;
}

/** The Markdown table of every cost parameter: name, default, sweep range, meaning, source. */
export function costModelMarkdown(): string {
  const lines = [
    '| parameter | default | range | what it charges | source |',
    '| --- | --- | --- | --- | --- |',
  ];
  for (const [name, p] of Object.entries(COST_PARAMS)) {
    const range = `${fmt(p.range[0], p.unit)} – ${fmt(p.range[1], p.unit)}`;
    const source = p.estimate ? `${p.source} (**estimate**)` : p.source;
    lines.push(`| \`${name}\` | ${fmt(p.value, p.unit)} | ${range} | ${p.doc} | ${source} |`);
  }
  return `${lines.join('\n')}\n`;
}
