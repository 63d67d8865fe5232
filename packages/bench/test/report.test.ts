import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chartsFor, REPORT_CHARTS, renderReport } from '../src/report.ts';
import { runSweep, type SweepResult } from '../src/sweep.ts';

const CHROMIUM = '/usr/bin/chromium';

let result: SweepResult;
let html: string;

beforeAll(async () => {
  result = await runSweep(
    {
      workloads: [
        { generator: 'streaming', params: { footprintBytes: 1 << 20, numSMs: 8 }, label: 'streaming' },
        {
          generator: 'randomAccess',
          params: { footprintBytes: 4 << 20, updates: 256, numSMs: 8 },
          label: 'random',
        },
      ],
      granules: ['4k', 'xe', 'uvm-tree'],
      notifiers: ['window-512M'],
      seeds: [1, 2],
    },
    { threads: 0 },
  );
  html = await renderReport(result, { title: 'report test' });
});

describe('renderReport', () => {
  it('is self-contained: inline SVG charts, no external resources', () => {
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html.match(/<svg/g)?.length).toBe(2 + chartsFor(result).length);
    expect(html).not.toMatch(/<script[^>]+src=/);
    expect(html).not.toMatch(/<link[^>]+href=/);
    expect(html).not.toMatch(/(src|href)="https?:/);
    for (const c of chartsFor(result)) expect(html).toContain(`data-metric="${c.metric}"`);
  });

  it('leaves out the charts whose values are all zero', () => {
    const zero = REPORT_CHARTS.filter((c) => result.cells.every((cell) => cell.metrics[c.metric] === 0));
    expect(zero.length).toBeGreaterThan(0); // retries: no CPU activity races these kernels
    for (const c of zero) expect(html).not.toContain(`data-metric="${c.metric}"`);
    expect(chartsFor(result).length).toBe(REPORT_CHARTS.length - zero.length);
  });
});

describe('report page in headless Chromium', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hmmkit-report-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('renders every chart and the results table, and screenshots it', async () => {
    const file = join(dir, 'report.html');
    writeFileSync(file, html);
    // a fresh user-data dir per run (launchPersistentContext owns --user-data-dir)
    const context = await chromium.launchPersistentContext(join(dir, 'profile'), {
      executablePath: CHROMIUM,
      viewport: { width: 1400, height: 900 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    });
    try {
      const page = await context.newPage();
      const requests: string[] = [];
      page.on('request', (r) => {
        if (!r.url().startsWith('file:')) requests.push(r.url());
      });
      await page.goto(pathToFileURL(file).href);
      expect(await page.title()).toBe('report test');
      const charts = page.locator('figure.chart svg');
      const n = 2 + chartsFor(result).length;
      expect(await charts.count()).toBe(n);
      for (let i = 0; i < n; i++) {
        const box = await charts.nth(i).boundingBox();
        expect(box).not.toBeNull();
        expect(box!.width).toBeGreaterThan(100);
        expect(box!.height).toBeGreaterThan(100);
      }
      // one bar per workload × policy (the mean of 2 seeds) and one 95 % interval rule on each;
      // vega renders bars as paths in a rect mark group, rules as lines
      const groups = result.cells.length / 2;
      const sim = page.locator('figure.chart[data-metric="simTimeNs"]');
      expect(await sim.locator('g.mark-rect path').count()).toBe(groups);
      expect(await sim.locator('g.mark-rule.role-mark line').count()).toBe(groups);
      // one y-scale per workload: each facet draws its own y axis
      expect(await sim.locator('g.mark-group.role-axis[aria-label^="Y-axis"]').count()).toBe(2);
      // the trade-off scatter: one point per workload × policy
      expect(await page.locator('figure[data-chart="tradeoff"] g.mark-symbol.role-mark path').count()).toBe(
        groups,
      );
      // where time went: one stacked segment per policy × part
      expect(await page.locator('figure[data-chart="breakdown"] g.mark-rect.role-mark path').count()).toBe(
        groups * 6,
      );
      // the answer, at the top
      const rec = await page.locator('#recommendation').textContent();
      expect(rec).toMatch(/^Best policy per workload .*geometric mean over 2 seeds, 95 % CI/);
      expect(rec).toMatch(
        /\n {2}streaming {2}\S+ {2}(is the baseline|\d+\.\d\d× \[\d+\.\d\d×, \d+\.\d\d×\] vs 4k\/window-512M); migrated/,
      );
      // the results table: one row per cell, and the first row names the first cell
      const rows = page.locator('#results tbody tr');
      expect(await rows.count()).toBe(result.cells.length);
      const first = await rows.first().locator('td').allTextContents();
      expect(first.slice(0, 5)).toEqual(['streaming', '4k', 'window-512M', 'default', '1']);
      expect(requests).toEqual([]);
      mkdirSync('reports', { recursive: true });
      const png = await page.screenshot({ path: 'reports/report-screenshot.png', fullPage: true });
      expect(png.length).toBeGreaterThan(10_000);
    } finally {
      await context.close();
    }
  });
});
