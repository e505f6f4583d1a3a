// The demo without Docker: the labelled dry run on the real git server, the real
// renderer and agents, and the GitHub stand-in; plus the small pure pieces.
import { access, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoImageReferences } from './demo-images.js';
import { pointRegistryAt, runDemo, seededEnvFile, stripLogPrefix, type DemoResult } from './demo.js';

const REPO_ROOT = join(import.meta.dirname, '..');

describe('the dry run (no Docker engine)', () => {
  let work: string;
  let result: DemoResult;
  let output = '';
  let envAfterFirstApply = '';

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'flotilla-demo-test-'));
    result = await runDemo({
      mode: 'dry-run',
      dryRunReasons: ['not running as root (a test)'],
      repoRoot: REPO_ROOT,
      hostsDir: join(work, 'hosts'),
      runDir: join(work, 'run'),
      out: (s) => void (output += s),
      beforeCleanup: async (live) => {
        const linda = live.tenants.find((t) => t.slug === 'linda')!;
        envAfterFirstApply = await readFile(join(linda.installDir, '.env'), 'utf8');
      },
    });
  }, 240_000);

  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('says plainly that nothing is deployed, and why', () => {
    expect(output.split('\n')[0]).toMatch(/DRY RUN: no Docker engine here, so compose is NOT run/);
    expect(output).toContain('not running as root (a test)');
    expect(output).toMatch(/DRY RUN: nothing was deployed/);
    expect(output).not.toMatch(/docker exec|dockerd pid/);
  });

  it('prints the compose commands each agent would run, in the order it would run them', () => {
    const bnkops = output
      .split('\n')
      .filter((l) => l.includes('[dry run] would run') && l.includes('--project-name bnkops'))
      .map((l) => /--project-name bnkops (\w+)/.exec(l)![1]);
    // First install, then the bump: config, pull, up each time.
    expect(bnkops).toEqual(['config', 'pull', 'up', 'config', 'pull', 'up']);
    expect(output).toContain('docker-compose --project-name linda up --detach --remove-orphans');
    expect(output).not.toContain('--project-name trbh');
  });

  it('rolls the bump out to the one tenant and leaves the others alone', () => {
    expect(result.problems).toEqual([]);
    const bySlug = Object.fromEntries(result.tenants.map((t) => [t.slug, t]));
    expect(Object.keys(bySlug).sort()).toEqual(['bnkops', 'linda', 'marcelle', 'pia', 'soroush']);
    expect(bySlug.bnkops).toMatchObject({ firstPass: 'applied', secondPass: 'applied', versionBefore: 'v2.10.3', versionAfter: 'v2.11.0' });
    expect(bySlug.linda).toMatchObject({ firstPass: 'applied', secondPass: 'noop', versionBefore: 'v2.9.7', versionAfter: 'v2.9.7' });
  });

  it("patches the adopted host's hand-written .env and keeps its secrets and comments", () => {
    expect(envAfterFirstApply).toMatch(/^# Changemaker for linda\.cmlite\.org, installed with install\.sh\./);
    expect(envAfterFirstApply).toMatch(/^POSTGRES_PASSWORD=\S{20,}$/m);
    expect(envAfterFirstApply).toMatch(/^BACKUP_HOUR=3$/m);
    expect(envAfterFirstApply).toMatch(/^IMAGE_TAG=v2\.9\.7$/m);
  });

  it('removes its folders', async () => {
    await expect(access(join(work, 'hosts'))).rejects.toThrow();
    await expect(access(join(work, 'run'))).rejects.toThrow();
  });
});

describe('pieces of the demo', () => {
  it('points fleet.yaml at the demo registry and keeps every other byte', async () => {
    const text = await readFile(join(REPO_ROOT, 'fleet', 'fleet.yaml'), 'utf8');
    const edited = pointRegistryAt(text, '127.0.0.1:41234/flotilla');
    expect(edited).toMatch(/^ {2}registry: 127\.0\.0\.1:41234\/flotilla$/m);
    const changed = edited.split('\n').filter((line, i) => line !== text.split('\n')[i]);
    expect(changed).toEqual(['  registry: 127.0.0.1:41234/flotilla']);
  });

  it('builds every release tag of the followed images and the pinned tag of the others', () => {
    const refs = demoImageReferences('127.0.0.1:5000/flotilla', { api: 'changemaker-api', nginx: 'nginx:1.27-alpine' }, ['v1', 'v2']);
    expect(refs.map((r) => `${r.reference} /VERSION=${r.tag}`)).toEqual([
      '127.0.0.1:5000/flotilla/changemaker-api:v1 /VERSION=v1',
      '127.0.0.1:5000/flotilla/changemaker-api:v2 /VERSION=v2',
      '127.0.0.1:5000/flotilla/nginx:1.27-alpine /VERSION=1.27-alpine',
    ]);
  });

  it('writes an adopted host .env holding every key its tenant file says the host holds', () => {
    const text = seededEnvFile(
      { slug: 'marcelle', mode: 'adopted', domain: 'marcelle.example', hostEnv: ['POSTGRES_PASSWORD', 'NEWT_ID'] },
      8081,
      () => 'not-a-real-secret',
    );
    expect(text).toMatch(/^HTTP_PORT=8081$/m);
    expect(text).toMatch(/^POSTGRES_PASSWORD=not-a-real-secret$/m);
    expect(text).toMatch(/^NEWT_ID=marcelle-newt$/m);
    expect(text).toMatch(/^# /);
  });

  it('drops the timestamp and tenant of agent log lines, keeping warnings marked', () => {
    expect(stripLogPrefix('[2026-11-23 01:22:57.405] INFO: [pia] detect: branch tenants/pia does not exist yet\n')).toBe(
      'detect: branch tenants/pia does not exist yet\n',
    );
    expect(stripLogPrefix('[2026-11-23 01:22:57.405] WARN: [pia] drift: x\n')).toBe('WARN: drift: x\n');
    expect(stripLogPrefix('2026-11-23T01:22:57.405Z flotilla-agent[pia] outcome: noop\n')).toBe('outcome: noop\n');
  });
});
