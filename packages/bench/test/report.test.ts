import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPORT_CHARTS, renderReport } from '../src/report.ts';
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
      notifiers: ['window-512M', 'per-range'],
    },
    { threads: 0 },
  );
  html = await renderReport(result, { title: 'report test' });
});

describe('renderReport', () => {
  it('is self-contained: inline SVG charts, no external resources', () => {
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html.match(/<svg/g)?.length).toBe(REPORT_CHARTS.length);
    expect(html).not.toMatch(/<script[^>]+src=/);
    expect(html).not.toMatch(/<link[^>]+href=/);
    expect(html).not.toMatch(/(src|href)="https?:/);
    for (const c of REPORT_CHARTS) expect(html).toContain(`data-metric="${c.metric}"`);
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
      expect(await charts.count()).toBe(REPORT_CHARTS.length);
      for (let i = 0; i < REPORT_CHARTS.length; i++) {
        const box = await charts.nth(i).boundingBox();
        expect(box).not.toBeNull();
        expect(box!.width).toBeGreaterThan(100);
        expect(box!.height).toBeGreaterThan(100);
      }
      // bars are drawn: vega renders each bar as a path in a mark group
      const marks = await page.locator('figure.chart[data-metric="simTimeNs"] g.mark-rect path').count();
      expect(marks).toBe(result.cells.length);
      // the results table: one row per cell, and the first row names the first cell
      const rows = page.locator('#results tbody tr');
      expect(await rows.count()).toBe(result.cells.length);
      const first = await rows.first().locator('td').allTextContents();
      expect(first.slice(0, 3)).toEqual(['streaming', '4k', 'window-512M']);
      expect(requests).toEqual([]);
      mkdirSync('reports', { recursive: true });
      const png = await page.screenshot({ path: 'reports/report-screenshot.png', fullPage: true });
      expect(png.length).toBeGreaterThan(10_000);
    } finally {
      await context.close();
    }
  });
});
