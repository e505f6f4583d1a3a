// `flotilla plan` on a real git checkout in a temp dir: base and head read from
// commits (or the working tree), rendered with the real renderer.
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Command } from 'commander';
import { afterEach, describe, expect, it } from 'vitest';
import { RegistryError } from '../core/errors.js';
import type { CliIo } from '../cli.js';
import { registerPlan } from '../commands/plan.js';
import { planRepo } from './plan-revisions.js';

const FLEET = {
  'fleet/fleet.yaml': `defaults:
  imageTag: v2.10.3
  registry: REGISTRY/flotilla
  images:
    api: changemaker-api
  domainSuffix: fleet.example.net
  secrets: [JWT_SECRET]
waves:
  - name: canary
    tenants: [bnkops]
`,
  // A comment that must survive, and a pinned tag.
  'fleet/tenants/bnkops.yaml': '# canary host\nmode: managed\n',
  'fleet/tenants/linda.yaml': 'mode: adopted\nimageTag: v2.9.7\nhostEnv: [JWT_SECRET]\n',
  'fleet/tenants/pia.yaml': 'mode: adopted\npaused: true\nhostEnv: [JWT_SECRET]\n',
  'templates/docker-compose.yml.hbs': `services:
  api:
    image: {{images.api}}:{{composeVar "IMAGE_TAG" imageTag}}
    environment:
      DOMAIN: \${DOMAIN}
      JWT_SECRET: \${JWT_SECRET:?must be set}
`,
  'templates/env.hbs': 'IMAGE_TAG={{imageTag}}\nDOMAIN={{domain}}\n',
  'templates/nginx/nginx.conf.hbs': 'server_name {{domain}};\n',
};

describe('flotilla plan', () => {
  const dirs: string[] = [];
  afterEach(async () => {
    await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  });

  async function write(dir: string, files: Record<string, string>) {
    for (const [path, content] of Object.entries(files)) {
      await mkdir(dirname(join(dir, path)), { recursive: true });
      await writeFile(join(dir, path), content);
    }
  }

  async function fleetRepo(registry = '127.0.0.1:5000') {
    const dir = await mkdtemp(join(tmpdir(), 'flotilla-plan-cmd-'));
    dirs.push(dir);
    const git = (...args: string[]) =>
      execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], { cwd: dir, encoding: 'utf8' }).trim();
    git('init', '-q', '-b', 'main');
    await write(dir, { ...FLEET, 'fleet/fleet.yaml': FLEET['fleet/fleet.yaml'].replace('REGISTRY', registry) });
    git('add', '-A');
    git('commit', '-q', '-m', 'fleet');
    return { dir, git };
  }

  function cli(dir: string) {
    const out: string[] = [];
    const err: string[] = [];
    const io: CliIo = { stdout: (s) => out.push(s), stderr: (s) => err.push(s), cwd: dir, env: {} };
    const program = new Command('flotilla').option('--root <dir>', '', '.').exitOverride();
    registerPlan(program, io);
    return { run: (args: string[]) => program.parseAsync(args, { from: 'user' }), out, err };
  }

  it('shows a tag bump on one tenant as its compose and env patch changing, and nothing else', async () => {
    const { dir, git } = await fleetRepo();
    git('checkout', '-q', '-b', 'bump');
    await write(dir, { 'fleet/tenants/linda.yaml': 'mode: adopted\nimageTag: v2.10.3\nhostEnv: [JWT_SECRET]\n' });
    git('commit', '-q', '-am', 'bump linda');

    const checked: string[] = [];
    const report = await planRepo({
      root: dir,
      base: 'main',
      head: 'bump',
      registryCheck: async (image, tag) => {
        checked.push(`${image}:${tag}`);
        return 'present';
      },
    });
    expect(report.tenants.map((t) => [t.slug, t.change])).toEqual([
      ['bnkops', 'unchanged'],
      ['linda', 'changed'],
      ['pia', 'unchanged'],
    ]);
    const linda = report.tenants.find((t) => t.slug === 'linda')!;
    expect(linda.imageTag).toEqual({ before: 'v2.9.7', after: 'v2.10.3' });
    expect(linda.files.filter((f) => f.status !== 'unchanged').map((f) => f.path)).toEqual(['docker-compose.yml']);
    expect(linda.files.find((f) => f.path === 'docker-compose.yml')?.diff).toContain('+    image: 127.0.0.1:5000/flotilla/changemaker-api:${IMAGE_TAG:-v2.10.3}');
    expect(linda.env).toEqual([{ key: 'IMAGE_TAG', status: 'changed', before: 'v2.9.7', after: 'v2.10.3', secret: false }]);
    expect(checked).toEqual(['127.0.0.1:5000/flotilla/changemaker-api:v2.10.3']);
    expect(report.base.commit).toBe(git('rev-parse', 'main'));
    expect(report.head.commit).toBe(git('rev-parse', 'bump'));
  });

  it('plans uncommitted template edits in the working tree against a ref', async () => {
    const { dir } = await fleetRepo();
    await write(dir, { 'templates/nginx/nginx.conf.hbs': 'server_name {{domain}};\nlisten 443 ssl;\n' });
    const report = await planRepo({ root: dir, base: 'main' });
    expect(report.head.ref).toBe('working tree');
    expect(report.blastRadius).toMatchObject({ tenantsChanged: 3, filesChanged: 3, pausedChanged: ['pia'] });
    expect(report.blastRadius.waves).toEqual([
      { wave: 'canary', tenants: ['bnkops'] },
      { wave: null, tenants: ['linda', 'pia'] },
    ]);
  });

  it('shows every tenant changed by a fleet default or by the mode of a template, though no tenant file moved', async () => {
    const { dir, git } = await fleetRepo();
    await write(dir, { 'fleet/fleet.yaml': FLEET['fleet/fleet.yaml'].replace('REGISTRY', '127.0.0.1:5001') });
    git('commit', '-q', '-am', 'move the registry');
    const moved = await planRepo({ root: dir, base: git('rev-parse', 'HEAD^'), head: 'HEAD' });
    expect(moved.tenants.map((t) => [t.slug, t.files.filter((f) => f.status !== 'unchanged').map((f) => f.path)])).toEqual([
      ['bnkops', ['docker-compose.yml']],
      ['linda', ['docker-compose.yml']],
      ['pia', ['docker-compose.yml']],
    ]);
    git('update-index', '--chmod=+x', 'templates/nginx/nginx.conf.hbs');
    git('commit', '-q', '-m', 'nginx.conf executable');
    const chmod = await planRepo({ root: dir, base: git('rev-parse', 'HEAD^'), head: 'HEAD' });
    expect(chmod.tenants.map((t) => t.change)).toEqual(['changed', 'changed', 'changed']);
    // The host chmods the file, so the PR says so, as git shows a mode change.
    expect(chmod.tenants[0]!.files.find((f) => f.path === 'nginx/nginx.conf')).toMatchObject({
      status: 'modified',
      diff: 'old mode 100644\nnew mode 100755\n',
    });
  });

  it('reports required variables a new template needs and no tenant defines', async () => {
    const { dir } = await fleetRepo();
    await write(dir, {
      'templates/docker-compose.yml.hbs': `${FLEET['templates/docker-compose.yml.hbs']}      S3_BUCKET: \${S3_BUCKET}\n`,
    });
    const report = await planRepo({ root: dir, base: 'main' });
    expect(report.tenants.map((t) => t.envCoverage.newlyMissing)).toEqual([['S3_BUCKET'], ['S3_BUCKET'], ['S3_BUCKET']]);
  });

  it('notes a base without a fleet and shows every tenant as new', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'flotilla-plan-cmd-'));
    dirs.push(dir);
    const git = (...args: string[]) =>
      execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], { cwd: dir, encoding: 'utf8' });
    git('init', '-q', '-b', 'main');
    await write(dir, { 'README.md': 'empty\n' });
    git('add', '-A');
    git('commit', '-q', '-m', 'init');
    await write(dir, FLEET);
    const report = await planRepo({ root: dir, base: 'main' });
    expect(report.tenants.every((t) => t.change === 'added')).toBe(true);
    expect(report.notes[0]).toMatch(/has no fleet\/fleet\.yaml/);
  });

  it('prints the comment markdown and exits with an error when the registry cannot confirm the tag', async () => {
    // A loopback port with nothing behind it: the check cannot run, which must not pass.
    const { dir, git } = await fleetRepo('127.0.0.1:9');
    await write(dir, { 'fleet/fleet.yaml': (await readFile(join(dir, 'fleet/fleet.yaml'), 'utf8')).replace('v2.10.3', 'v2.11.0') });
    git('commit', '-q', '-am', 'bump fleet');
    const { run, out } = cli(dir);
    const err = await run(['plan', '--base', git('rev-parse', 'HEAD^'), '--head', 'HEAD']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as Error).message).toContain('127.0.0.1:9/flotilla/changemaker-api:v2.11.0 could not be checked');
    expect(out.join('')).toMatch(/^<!-- flotilla-plan -->/);
    expect(out.join('')).toContain('**Image tag check failed**');
  });

  it('writes JSON to a file with --out and skips the registry with --no-registry-check', async () => {
    const { dir } = await fleetRepo('127.0.0.1:9');
    await write(dir, { 'fleet/tenants/bnkops.yaml': '# canary host\nmode: managed\nimageTag: v3.0.0\n' });
    const { run, out } = cli(dir);
    await run(['plan', '--base', 'main', '--format', 'json', '--out', 'plan.json', '--no-registry-check']);
    expect(out).toEqual([]);
    const report = JSON.parse(await readFile(join(dir, 'plan.json'), 'utf8'));
    expect(report.ok).toBe(true);
    expect(report.tagChecks).toEqual([]);
    expect(report.blastRadius.tenantsChanged).toBe(1);
  });
});
