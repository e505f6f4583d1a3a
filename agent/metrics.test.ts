// The metrics endpoint, scraped over HTTP on 127.0.0.1: first the daemon for real
// (`flotilla-agent run --metrics`, real git over HTTP, recording compose), then the
// metric arithmetic with a pinned clock.
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { remoteBranchHead } from '../renderer/core/git.js';
import { publishTenants } from '../renderer/publish/publish.js';
import { startGitServer, type GitServer } from '../test/support/git-server.js';
import { RecordingCompose } from '../test/support/recording-compose.js';
import { fakeSourceCommit, FIXTURE_SOURCE_REPO, tenantFixture } from '../test/support/tenant-fixture.js';
import { runAgentCli } from './main.js';
import { createAgentMetrics, parseListenAddress, serveMetrics } from './metrics.js';
import { redactValues } from './redact.js';

let git: GitServer;
let work: string;

beforeAll(async () => {
  git = await startGitServer();
  work = await mkdtemp(join(tmpdir(), 'flotilla-metrics-'));
});
afterAll(async () => {
  await git.stop();
  await rm(work, { recursive: true, force: true });
});

/** Sample lines of a scrape: `name{labels sorted by name} value` -> value (the format leaves label order free). */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels = (m[2] ?? '').match(/\w+="(?:[^"\\]|\\.)*"/g) ?? [];
    out.set(labels.length ? `${m[1]}{${labels.sort().join(',')}}` : m[1]!, Number(m[3]));
  }
  return out;
}

async function scrape(url: string): Promise<{ status: number; type: string; text: string }> {
  const res = await fetch(url);
  return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text() };
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`gave up waiting for ${what}`);
}

describe('flotilla-agent run --metrics', () => {
  it('serves the applied commit, outcomes and poll age of the running daemon', async () => {
    await git.createBareRepo('fleet.git');
    const sourceCommit = fakeSourceCommit('metrics');
    const fixture = tenantFixture({ tenant: 'acme', imageTag: 'v1', registry: '127.0.0.1:5000', repository: 'flotilla-test/app', sourceCommit });
    await publishTenants({
      repoUrl: git.url('fleet.git'),
      workDir: join(work, 'publish.git'),
      tenants: [{ slug: 'acme', files: fixture.files }],
      source: { repo: FIXTURE_SOURCE_REPO, commit: sourceCommit },
    });
    const head = (await remoteBranchHead(git.url('fleet.git'), 'tenants/acme'))!;
    await mkdir(join(work, 'install'));

    let err = '';
    const stop = new AbortController();
    const done = runAgentCli(['run', '--metrics', '127.0.0.1:0', '--log-format', 'json'], {
      stdout: () => undefined,
      stderr: (s) => void (err += s),
      env: {
        FLOTILLA_REPO: git.url('fleet.git'),
        FLOTILLA_TENANT: 'acme',
        FLOTILLA_DIR: join(work, 'install'),
        FLOTILLA_STATE_DIR: join(work, 'state'),
        FLOTILLA_HEALTH_TIMEOUT: '5',
        FLOTILLA_SCHEDULE: '0 0 1 1 *',
      },
      compose: new RecordingCompose({ services: [{ service: 'app', container: 'acme_app_1', state: 'running', health: 'healthy', image: 'app:v1' }] }),
      stopSignal: stop.signal,
    });
    try {
      await until(() => /outcome: applied/.test(err), 'the first apply');
      const lines = err.trim().split('\n').map((l) => JSON.parse(l) as { msg: string; tenant: string });
      expect(lines.every((l) => l.tenant === 'acme')).toBe(true);
      const url = /metrics: serving (http:\S+)/.exec(lines.map((l) => l.msg).join('\n'))![1]!;
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);

      const { status, type, text } = await scrape(url);
      expect(status).toBe(200);
      expect(type).toContain('text/plain');
      const m = samples(text);
      expect(m.get(`flotilla_agent_last_applied_info{commit="${head}",tenant="acme"}`)).toBe(1);
      expect(m.get('flotilla_agent_applies_total{outcome="applied",tenant="acme"}')).toBe(1);
      expect(m.get('flotilla_agent_applies_total{outcome="failed",tenant="acme"}')).toBe(0);
      expect(m.get('flotilla_agent_apply_duration_seconds_count{outcome="applied",tenant="acme"}')).toBe(1);
      expect(m.get('flotilla_agent_poll_failures_total{tenant="acme"}')).toBe(0);
      expect(m.get('flotilla_agent_drift_files{tenant="acme"}')).toBe(0);
      expect(m.get('flotilla_agent_outbox_length{tenant="acme"}')).toBe(0);
      expect(m.get('flotilla_agent_seconds_since_last_successful_poll{tenant="acme"}')).toBeGreaterThanOrEqual(0);
      expect((await scrape(url.replace('/metrics', '/nope'))).status).toBe(404);
    } finally {
      stop.abort();
    }
    expect(await done).toBe(0);
  });
});

describe('agent metrics', () => {
  it('counts outcomes, keeps one applied commit, and ages the last good poll', async () => {
    let clock = new Date('2030-01-01T00:00:00Z');
    let outbox = 0;
    const metrics = createAgentMetrics({
      tenant: 'linda',
      outboxLength: async () => outbox,
      lastApplied: 'a'.repeat(40),
      lastSuccessfulPoll: new Date('2029-12-31T23:59:00Z'),
      now: () => clock,
    });
    const server = await serveMetrics(metrics, '127.0.0.1:0');
    try {
      let m = samples((await scrape(server.url)).text);
      expect(m.get(`flotilla_agent_last_applied_info{commit="${'a'.repeat(40)}",tenant="linda"}`)).toBe(1);
      expect(m.get('flotilla_agent_seconds_since_last_successful_poll{tenant="linda"}')).toBe(60);

      metrics.recordPass({ kind: 'failed', commit: 'b'.repeat(40), step: 'up', description: 'up failed; rolled back', afterSwap: true }, 12);
      metrics.recordPass({ kind: 'error', description: 'git unreachable' }, 1);
      metrics.recordPassError();
      clock = new Date('2030-01-01T00:05:00Z');
      metrics.recordPass({ kind: 'noop', commit: 'a'.repeat(40), drift: [{ path: 'nginx.conf' } as never, { path: '.env' } as never] }, 0.1);
      metrics.recordPass({ kind: 'applied', commit: 'c'.repeat(40), description: 'applied' }, 3);
      outbox = 2;
      clock = new Date('2030-01-01T00:05:30Z');

      m = samples((await scrape(server.url)).text);
      expect(m.has(`flotilla_agent_last_applied_info{commit="${'a'.repeat(40)}",tenant="linda"}`)).toBe(false);
      expect(m.get(`flotilla_agent_last_applied_info{commit="${'c'.repeat(40)}",tenant="linda"}`)).toBe(1);
      expect(m.get('flotilla_agent_applies_total{outcome="failed",tenant="linda"}')).toBe(1);
      expect(m.get('flotilla_agent_applies_total{outcome="applied",tenant="linda"}')).toBe(1);
      expect(m.get('flotilla_agent_apply_duration_seconds_bucket{le="5",outcome="applied",tenant="linda"}')).toBe(1);
      expect(m.get('flotilla_agent_apply_duration_seconds_bucket{le="10",outcome="failed",tenant="linda"}')).toBe(0);
      expect(m.get('flotilla_agent_apply_duration_seconds_bucket{le="30",outcome="failed",tenant="linda"}')).toBe(1);
      expect(m.get('flotilla_agent_poll_failures_total{tenant="linda"}')).toBe(2);
      expect(m.get('flotilla_agent_drift_files{tenant="linda"}')).toBe(0);
      expect(m.get('flotilla_agent_outbox_length{tenant="linda"}')).toBe(2);
      expect(m.get('flotilla_agent_seconds_since_last_successful_poll{tenant="linda"}')).toBe(30);
    } finally {
      await server.close();
    }
  });

  it('masks host values in label values at scrape time, and nothing else of the exposition', async () => {
    const secret = 'hunter2-but-longer-9f8e7d';
    const metrics = createAgentMetrics({
      tenant: 'linda',
      outboxLength: async () => 0,
      lastApplied: `x${secret.slice(0, 12)}`,
      redact: (text) => redactValues(text, [secret]),
    });
    const text = await metrics.text();
    expect(text).not.toContain(secret.slice(0, 8));
    expect(samples(text).get('flotilla_agent_last_applied_info{commit="x***",tenant="linda"}')).toBe(1);
    expect(samples(text).get('flotilla_agent_poll_failures_total{tenant="linda"}')).toBe(0);
  });

  it('takes only an IP:PORT to listen on', () => {
    expect(parseListenAddress('127.0.0.1:9464')).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(parseListenAddress('[::1]:9464')).toEqual({ host: '::1', port: 9464 });
    expect(() => parseListenAddress('localhost:9464')).toThrow(/--metrics: expected IP:PORT/);
    expect(() => parseListenAddress('127.0.0.1:99999')).toThrow(/--metrics/);
  });
});
