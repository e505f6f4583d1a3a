// The `flotilla status --html` page as a person sees it: rendered by Debian's
// Chromium (headless, driven by playwright-core), checked through what is on the
// screen, with a screenshot kept in test-results/dashboard.png. Chromium is a test
// dependency (scripts/test.sh installs it); without it this test fails loudly unless
// FLOTILLA_SKIP_BROWSER=1 says the run knowingly goes without.
import { access, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dashboardOrder, escapeHtml, renderDashboardHtml } from '../../renderer/status/dashboard.js';
import { decideRollout } from '../../renderer/rollout/rollout.js';
import type { FleetStatus, TenantStatusRow } from '../../renderer/status/status.js';

const CHROMIUM = '/usr/bin/chromium';
// The machine's closed network refuses Chromium's background connections; these keep it from trying.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const skipBrowser = process.env.FLOTILLA_SKIP_BROWSER === '1';
// The skipped tests show in the report as skipped; say why where a person reads the run.
if (skipBrowser) console.warn('!! FLOTILLA_SKIP_BROWSER=1: the dashboard is NOT checked in headless Chromium in this run');

const NOW = new Date('2030-03-04T12:00:00Z');
const sha = (c: string) => c.repeat(40);

function row(r: Omit<TenantStatusRow, 'branch'>): TenantStatusRow {
  return { branch: `tenants/${r.slug}`, ...r };
}

const TENANTS: TenantStatusRow[] = [
  row({ slug: 'alpha', desiredTag: 'v2.1.0', paused: false, head: sha('a'), source: sha('1'), publishedTag: 'v2.1.0', state: 'success', description: 'applied v2.1.0', ageSeconds: 120, verdict: 'converged', drift: { state: 'failure', description: '1 local change: nginx/conf.d/<api>.conf (modified)' } }),
  row({ slug: 'bravo', desiredTag: 'v2.1.0', paused: true, head: sha('b'), source: sha('1'), publishedTag: 'v2.0.0', state: 'success', description: 'applied v2.0.0', ageSeconds: 86_400 * 3, verdict: 'paused' }),
  row({ slug: 'charlie', desiredTag: 'v2.1.0', paused: false, head: sha('c'), source: sha('2'), publishedTag: 'v2.1.0', state: 'pending', description: 'pulling images', ageSeconds: 30, verdict: 'pending' }),
  row({ slug: 'zulu', desiredTag: 'v2.1.0', paused: false, head: sha('d'), source: sha('2'), publishedTag: 'v2.1.0', state: 'failure', description: 'up failed: <script>document.title="pwned"</script> rolled back', ageSeconds: 400, verdict: 'failed' }),
  row({ slug: 'echo', desiredTag: 'v2.1.0', paused: false, verdict: 'never reported' }),
];
const STATUS: FleetStatus = {
  tenants: TENANTS,
  counts: { converged: 1, pending: 1, failed: 1, paused: 1, 'never reported': 1, unknown: 0 },
  held: [],
  rollout: { state: 'failure', description: 'wave early: zulu failed (up failed)', source: sha('2'), targetUrl: null },
};
const WAVES = [
  { name: 'canary', tenants: ['alpha'] },
  { name: 'early', tenants: ['zulu', 'charlie'], maxFailures: 0 },
  { name: 'rest', tenants: ['echo', 'bravo'] },
];
const ROLLOUT = decideRollout({
  waves: WAVES,
  tenants: [
    { slug: 'alpha', paused: false, behind: false, branchSource: sha('2'), status: { state: 'success', at: '2030-03-01T00:00:00Z' } },
    { slug: 'zulu', paused: false, behind: false, branchSource: sha('2'), status: { state: 'failure', at: '2030-03-04T11:53:20Z', description: 'up failed' } },
    { slug: 'charlie', paused: false, behind: false, branchSource: sha('2'), status: { state: 'pending', at: '2030-03-04T11:59:30Z' } },
    { slug: 'echo', paused: false, behind: true, branchSource: null },
    { slug: 'bravo', paused: true, behind: true, branchSource: sha('1') },
  ],
  source: sha('2'),
  now: NOW,
});

describe('dashboard html', () => {
  it('puts failed tenants first and escapes what agents wrote', () => {
    expect(dashboardOrder(TENANTS).map((t) => t.slug)).toEqual(['zulu', 'charlie', 'echo', 'bravo', 'alpha']);
    const html = renderDashboardHtml(STATUS, { generatedAt: NOW, rollout: ROLLOUT });
    expect(html).not.toContain('<script');
    expect(html).toContain(escapeHtml('<script>document.title="pwned"</script>'));
    // A host's local changes show beside a verdict they do not change.
    expect(html).toMatch(/data-tenant="alpha"[\s\S]*?converged<\/span> <span class="badge drift" title="1 local change: nginx\/conf\.d\/&lt;api&gt;\.conf \(modified\)">local changes<\/span>/);
    // Self-contained: nothing to fetch.
    expect(html).not.toMatch(/\b(?:src|href)=|url\(|@import/i);
  });

  it('shows a wave-by-wave rollout decision when one is given', () => {
    const html = renderDashboardHtml(STATUS, { generatedAt: NOW, rollout: ROLLOUT });
    expect(html).toContain('Halted at wave early');
    expect(html).toMatch(/data-wave="early" data-state="halted"/);
    expect(html).toMatch(/data-wave="canary" data-state="done"/);
  });
});

describe.skipIf(skipBrowser)('dashboard in headless Chromium', () => {
  let work: string;
  let context: BrowserContext;
  let page: Page;
  const requests: string[] = [];

  beforeAll(async () => {
    try {
      await access(CHROMIUM);
    } catch {
      throw new Error(
        `${CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium; scripts/test.sh does it), ` +
          'or set FLOTILLA_SKIP_BROWSER=1 to run without the browser test',
      );
    }
    work = await mkdtemp(join(tmpdir(), 'flotilla-dashboard-'));
    const file = join(work, 'status.html');
    // What `flotilla status --html` writes: the fleet's waves with each tenant's verdict.
    await writeFile(file, renderDashboardHtml(STATUS, { generatedAt: NOW, waves: WAVES }));
    // A fresh profile per run: nothing from an earlier run (or a person's browser) leaks in.
    context = await chromium.launchPersistentContext(join(work, 'profile'), {
      executablePath: CHROMIUM,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 800 },
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on('request', (r) => void requests.push(r.url()));
    await page.goto(pathToFileURL(file).href);
  });
  afterAll(async () => {
    if (page) {
      await mkdir(resolve('test-results'), { recursive: true });
      await page.screenshot({ path: resolve('test-results/dashboard.png'), fullPage: true });
    }
    await context?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('shows the failed tenant in the first row, saying failed and why', async () => {
    const first = page.locator('table.tenants tbody tr').first();
    await expect.poll(() => first.locator('td').first().innerText()).toBe('zulu');
    expect(await first.locator('td').nth(1).innerText()).toBe('failed');
    // The agent's description is shown as text, not run as a script.
    expect(await first.locator('td.description').innerText()).toContain('<script>document.title="pwned"</script>');
    expect(await page.title()).toBe('Flotilla fleet status');
  });

  it('shows every tenant with its tag, commit, status and age; a paused tenant says paused', async () => {
    const rows = await page.locator('table.tenants tbody tr').evaluateAll((trs) =>
      trs.map((tr) => Array.from(tr.querySelectorAll('td'), (td) => (td as HTMLElement).innerText.trim())),
    );
    expect(rows.map((r) => r[0])).toEqual(['zulu', 'charlie', 'echo', 'bravo', 'alpha']);
    const bravo = rows.find((r) => r[0] === 'bravo')!;
    expect(bravo[1]).toBe('paused (success)');
    expect(bravo[2]).toBe('v2.1.0 (published v2.0.0)');
    expect(bravo[5]).toBe('3d');
    const alpha = rows.find((r) => r[0] === 'alpha')!;
    expect(alpha.slice(1, 6)).toEqual(['converged local changes', 'v2.1.0', 'aaaaaaa', '1111111', '2m']);
    expect(rows.find((r) => r[0] === 'echo')![1]).toBe('never reported');
    await expect.poll(() => page.locator('.counts').innerText()).toMatch(/failed\s*1/);
  });

  it('shows the last rollout wave by wave, halted where it stopped', async () => {
    const waves = await page.locator('li.wave').evaluateAll((lis) => lis.map((li) => (li as HTMLElement).innerText.replace(/\s+/g, ' ').trim()));
    expect(waves).toHaveLength(3);
    expect(waves[0]).toMatch(/canary done/);
    expect(waves[1]).toMatch(/early halted .*failed: zulu.*pending: charlie/);
    expect(waves[2]).toMatch(/rest in progress .*never reported: echo.*paused: bravo/);
    expect(await page.locator('p.decision').innerText()).toBe('Rollout of 2222222: halted — wave early: zulu failed (up failed)');
  });

  it('loads nothing but the page itself', () => {
    expect(requests).toHaveLength(1);
    expect(requests[0]).toMatch(/^file:\/\/.*status\.html$/);
  });
});
