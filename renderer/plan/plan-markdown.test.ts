import { describe, expect, it } from 'vitest';
import { renderedSide } from '../../test/support/rendered-side.js';
import type { Manifest } from '../core/manifest.js';
import { loadFleetFromFiles, type Fleet } from '../fleet/fleet.js';
import { buildPlan, type PlanReport, type RegistryCheck, type RenderedSide } from './plan.js';
import { code, GITHUB_COMMENT_LIMIT, PLAN_COMMENT_MARKER, renderPlanJson, renderPlanMarkdown } from './plan-markdown.js';

const FLEET_YAML = `defaults:
  imageTag: v2.10.3
  registry: 127.0.0.1:5000/flotilla
  images:
    api: changemaker-api
  domainSuffix: fleet.example.net
  secrets: [JWT_SECRET]
waves:
  - name: canary
    tenants: [t000]
`;

function fleetWith(slugs: string[], extra: Record<string, string> = {}): Fleet {
  const files = new Map([['fleet/fleet.yaml', FLEET_YAML]]);
  for (const slug of slugs) files.set(`fleet/tenants/${slug}.yaml`, extra[slug] ?? 'mode: managed\n');
  return loadFleetFromFiles(files);
}

const side = (slug: string, files: Record<string, string>, manifest: Partial<Manifest> = {}, paused = false): RenderedSide =>
  renderedSide(slug, files, { secrets: ['JWT_SECRET'], ...manifest }, paused);

/** A config file of about `lines` lines that mentions the tenant (so no two tenants' diffs are identical). */
function configFor(slug: string, lines: number, version: number): string {
  return Array.from({ length: lines }, (_, i) => `${slug} line ${i} setting_${i % 7} = ${i % 20 === 0 ? version : 0}`).join('\n') + '\n';
}

const slugsOf = (n: number) => Array.from({ length: n }, (_, i) => `t${String(i).padStart(3, '0')}`);

// S3_BUCKET is needed only while S3_URL is unset or empty: the base's env patch sets S3_URL, the head's does not.
const COMPOSE_T000 = 'services:\n  api:\n    environment:\n      LOG_LEVEL: $LOG_LEVEL\n      JWT_SECRET: ${JWT_SECRET:?}\n      S3: ${S3_URL:-s3://$S3_BUCKET}\n';

async function smallPlan(registryCheck?: RegistryCheck): Promise<PlanReport> {
  const fleet = fleetWith(['t000', 't001', 't002', 't003'], { t002: 'mode: adopted\npaused: true\n' });
  const nginxBefore = 'x'.repeat(5296);
  const nginxAfter = `${'x'.repeat(5296)}\n${'y'.repeat(10398)}`;
  return buildPlan({
    fleet,
    baseSide: { ref: 'origin/main', commit: 'a'.repeat(40) },
    headSide: { ref: 'working tree' },
    registryCheck,
    base: [
      side(
        't000',
        { 'docker-compose.yml': COMPOSE_T000, 'nginx/conf.d/default.conf': nginxBefore },
        { envPatch: { LOG_LEVEL: 'info', S3_URL: 's3://tenant-bucket' } },
      ),
      side('t001', { 'docker-compose.yml': 'services: {}\n' }),
      side('t002', { 'docker-compose.yml': 'services: {}\n' }, {}, true),
      side('t003', { 'docker-compose.yml': 'services: {}\n' }),
    ],
    head: [
      side(
        't000',
        { 'docker-compose.yml': COMPOSE_T000, 'nginx/conf.d/default.conf': nginxAfter, 'configs/new.yml': 'a: 1\n' },
        {
          imageTag: 'v2.11.0',
          envPatch: { LOG_LEVEL: 'debug', JWT_SECRET: 'hunter2-do-not-show' },
          requiredVariables: ['LOG_LEVEL', 'JWT_SECRET', 'S3_BUCKET'],
        },
      ),
      side('t001', { 'docker-compose.yml': 'services: {}\n' }),
      side('t002', { 'docker-compose.yml': 'services: {api: {}}\n' }, {}, true),
      side('t003', { 'docker-compose.yml': 'services: {}\n' }),
    ],
  });
}

describe('renderPlanMarkdown', () => {
  it('starts with the hidden marker and the pre-flight, then a file table per changed tenant', async () => {
    const md = renderPlanMarkdown(await smallPlan(async () => 'present'));
    expect(md.startsWith(`${PLAN_COMMENT_MARKER}\n`)).toBe(true);
    expect(md.indexOf('### Pre-flight')).toBeLessThan(md.indexOf('#### `t000`'));
    expect(md).toContain('**Blast radius:** 2 tenants of 4 and 3 files change.');
    expect(md).toContain('- wave `canary`: `t000`');
    expect(md).toContain('- no wave: `t002`');
    expect(md).toContain('⏸ **Paused** (changes wait until unpaused): `t002`');
    expect(md).toContain('✅ Image tags present in the registry: `127.0.0.1:5000/flotilla/changemaker-api:v2.11.0`');
    expect(md).toContain('#### `t000` · `v2.10.3` → `v2.11.0`');
    expect(md).toContain('| `nginx/conf.d/default.conf` | **modified** | 5,296 → 15,695 (+10,399) |');
    expect(md).toContain('| `configs/new.yml` | **created** | — → 5 |');
    expect(md).toContain('| `docker-compose.yml` | unchanged | 133 |');
  });

  it('folds each diff in <details> and collapses unchanged tenants into one line', async () => {
    const md = renderPlanMarkdown(await smallPlan());
    expect(md).toMatch(/<details>\n<summary><code>configs\/new\.yml<\/code> — created, \+1 −0<\/summary>\n\n```diff\n--- \/dev\/null\n\+\+\+ b\/configs\/new\.yml/);
    expect(md).toContain('**Unchanged (2):** `t001`, `t003`');
    expect(md).not.toContain('#### `t001`');
  });

  it('shows env patch changes without secret values', async () => {
    const md = renderPlanMarkdown(await smallPlan());
    expect(md).toContain('| `LOG_LEVEL` | `info` | `debug` |');
    expect(md).toContain('| `JWT_SECRET` | — | *secret, not shown* |');
    expect(md).not.toContain('hunter2');
    expect(renderPlanJson(await smallPlan())).not.toContain('hunter2');
  });

  it('shows host settings that changed: windows, hooks (pipes kept inside the table) and generated secrets', async () => {
    const fleet = fleetWith(['t000'], {});
    const dump = { name: 'dump', run: ['sh', '-c', 'pg_dump app | gzip > /backups/app.sql.gz'], keep: 7 };
    const report = await buildPlan({
      fleet,
      base: [side('t000', { 'docker-compose.yml': 'services: {}\n' })],
      head: [side('t000', { 'docker-compose.yml': 'services: {}\n' }, { windows: ['Sat 22:00-02:00 Europe/Berlin'], hooks: { preSwap: [dump] } })],
    });
    const md = renderPlanMarkdown(report);
    expect(md).toContain('#### `t000`');
    expect(md).toContain('**Host settings**');
    expect(md).toContain('| maintenance windows | *any time* | `Sat 22:00-02:00 Europe/Berlin` |');
    expect(md).toMatch(/\| pre-swap hooks \| — \| `dump: sh -c pg_dump app \\\| gzip > \/backups\/app\.sql\.gz \(keeps 7\)` \|/);
  });

  it("says per adopted tenant what its agent does with host files Flotilla did not write, and shows the decision changing", async () => {
    const fleet = fleetWith(['t000', 't001'], { t000: 'mode: adopted\nadopt: replace\n', t001: 'mode: adopted\n' });
    const files = { 'docker-compose.yml': 'services: {}\n' };
    const report = await buildPlan({
      fleet,
      base: [side('t000', files, { mode: 'adopted' }), side('t001', files, { mode: 'adopted' })],
      head: [side('t000', files, { mode: 'adopted', adopt: 'replace' }), side('t001', files, { mode: 'adopted', envPatch: { A: '1' } })],
    });
    const md = renderPlanMarkdown(report);
    const section = (slug: string) => md.slice(md.indexOf(`#### \`${slug}\``)).split('\n#### ')[0]!;
    expect(section('t000')).toContain('`adopt: replace`: host files Flotilla did not write are replaced, copies kept');
    expect(section('t000')).toContain('| files Flotilla did not write | *refuse until decided* | `replace (the host keeps a copy)` |');
    expect(section('t001')).toContain('host files Flotilla did not write: refused until decided (`adopt: replace`)');
  });

  it('raises a red alert for a missing image tag and for uncovered variables', async () => {
    const md = renderPlanMarkdown(await smallPlan(async () => 'missing'));
    expect(md).toContain('## ❌ Flotilla plan');
    expect(md).toMatch(/> \[!CAUTION\]\n> \*\*Image tag check failed\*\*[^\n]*\n>\n> - `127\.0\.0\.1:5000\/flotilla\/changemaker-api:v2\.11\.0` not found \(for `t000`\)/);
    expect(md).toMatch(/> \[!CAUTION\]\n> \*\*Env coverage:\*\*[^\n]*\n>\n> - `t000`: `S3_BUCKET` \(1 new in this change\)/);
  });

  it('cuts a long diff at a line end and says how much it cut', async () => {
    const fleet = fleetWith(['t000']);
    const report = await buildPlan({
      fleet,
      base: [side('t000', { 'big.conf': configFor('t000', 2000, 1) })],
      head: [side('t000', { 'big.conf': configFor('t000', 2000, 2) })],
    });
    const md = renderPlanMarkdown(report, { maxDiffChars: 3000 });
    expect(md).toMatch(/✂ Diff cut after \d+ lines of \d+ \([\d,]+ characters not shown\)\./);
    expect(md).toContain('1 diff cut at 3,000 characters');
    expect(md).toContain('**This comment was shortened**');
    const fenced = /```diff\n([\s\S]*?)\n```/.exec(md)?.[1] ?? '';
    expect(fenced.length).toBeLessThanOrEqual(3000);
    expect(fenced.split('\n').every((l) => /^([ +\-@]|---|\+\+\+)/.test(l))).toBe(true);
  });

  it('keeps a diff whose content holds a code fence inside its own, longer fence', async () => {
    const fleet = fleetWith(['t000']);
    const report = await buildPlan({
      fleet,
      base: [side('t000', { 'README.md': 'intro\n```\ncode\n```\n' })],
      head: [side('t000', { 'README.md': 'intro\n```\ncode\n```\nmore\n' })],
    });
    const md = renderPlanMarkdown(report);
    expect(md).toContain('````diff\n');
    expect(md).toContain('\n````\n');
  });

  it('stays under 65,536 characters for 500 tenants whose templates all changed, and says what it folded', async () => {
    const slugs = slugsOf(500);
    const fleet = fleetWith(slugs);
    const files = (slug: string, v: number) => ({
      'docker-compose.yml': configFor(slug, 300, v),
      'nginx/conf.d/default.conf': configFor(slug, 200, v),
      'configs/prometheus/prometheus.yml': configFor(slug, 80, v),
      '.env.example': configFor(slug, 40, v),
    });
    const report = await buildPlan({
      fleet,
      base: slugs.map((s) => side(s, files(s, 1))),
      head: slugs.map((s) => side(s, files(s, 2), { imageTag: 'v2.11.0' })),
    });
    expect(report.blastRadius).toMatchObject({ tenantsChanged: 500, filesChanged: 2000 });

    const md = renderPlanMarkdown(report);
    expect(md.length).toBeLessThanOrEqual(GITHUB_COMMENT_LIMIT);
    expect(md.startsWith(PLAN_COMMENT_MARKER)).toBe(true);
    expect(md).toContain('**Blast radius:** 500 tenants of 500 and 2,000 files change.');

    // Every tenant is accounted for: in detail, on its own line, or in the "and N more" count.
    const detailed = md.match(/^#### /gm)?.length ?? 0;
    const oneLine = md.match(/^- `t\d{3}`/gm)?.length ?? 0;
    const unlisted = Number(/^- and (\d+) more tenants, listed in the full plan$/m.exec(md)?.[1] ?? 0);
    expect(detailed).toBeGreaterThan(0);
    expect(detailed + oneLine + unlisted).toBe(500);
    expect(md).toContain(`**${500 - detailed} more tenants change** (one line each to fit the comment):`);
    expect(md).toMatch(new RegExp(`\\*\\*This comment was shortened\\*\\* to stay under GitHub's 65,536-character limit: ${500 - detailed} tenants summarised in one line`));
    expect(md).toContain('Run `flotilla plan --base base` for the full plan.');
  });

  it('shows a diff shared by many tenants once and points at it from the others', async () => {
    const slugs = slugsOf(500);
    const fleet = fleetWith(slugs);
    const report = await buildPlan({
      fleet,
      base: slugs.map((s) => side(s, { 'nginx/nginx.conf': configFor('shared', 50, 1) })),
      head: slugs.map((s) => side(s, { 'nginx/nginx.conf': configFor('shared', 50, 2) })),
    });
    const md = renderPlanMarkdown(report);
    expect(md.length).toBeLessThanOrEqual(GITHUB_COMMENT_LIMIT);
    expect(md.match(/```diff/g)).toHaveLength(1);
    expect(md).toContain('- `nginx/nginx.conf`: same diff as `t000`');
  });

  it('keeps a crowded pre-flight (many waves, failed checks, uncovered tenants) under the limit', async () => {
    const slugs = slugsOf(500);
    const report = await buildPlan({
      fleet: fleetWith(slugs),
      base: slugs.map((s) => side(s, { 'a.conf': configFor(s, 100, 1) })),
      head: slugs.map((s) =>
        side(s, { 'a.conf': configFor(s, 100, 2) }, { requiredVariables: Array.from({ length: 40 }, (_, i) => `VAR_${i}_${'X'.repeat(30)}`) }),
      ),
    });
    report.blastRadius.waves = Array.from({ length: 200 }, (_, i) => ({ wave: `wave-${i}`, tenants: slugs }));
    report.tagChecks = Array.from({ length: 300 }, (_, i) => ({
      image: `127.0.0.1:5000/flotilla/image-${i}`,
      tag: `v${i}`,
      result: 'error' as const,
      error: 'x'.repeat(2000),
      tenants: slugs,
    }));
    report.notes = Array.from({ length: 50 }, () => 'n'.repeat(5000));
    const md = renderPlanMarkdown(report);
    expect(md.length).toBeLessThanOrEqual(GITHUB_COMMENT_LIMIT);
    expect(md).toContain('- and 180 more waves');
    expect(md).toContain('> - and 285 more failed checks');
    expect(md).toContain('> - and 480 more tenants');
  });

  it('respects a smaller limit too', async () => {
    const slugs = slugsOf(50);
    const report = await buildPlan({
      fleet: fleetWith(slugs),
      base: slugs.map((s) => side(s, { 'a.conf': configFor(s, 100, 1) })),
      head: slugs.map((s) => side(s, { 'a.conf': configFor(s, 100, 2) })),
    });
    for (const limit of [12_000, 20_000, 40_000]) {
      expect(renderPlanMarkdown(report, { limit }).length).toBeLessThanOrEqual(limit);
    }
  });
});

describe('code', () => {
  it('wraps values holding backticks and pipes so a table cell stays intact', () => {
    expect(code('a`b')).toBe('``a`b``');
    expect(code('a|b')).toBe('`a\\|b`');
    expect(code('`x')).toBe('`` `x ``');
  });
});
