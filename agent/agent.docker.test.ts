// The agent end to end on real parts: the private dockerd and loopback registry of the
// test run (test/support/global-setup-docker.ts), Debian's docker-compose, the real
// `git http-backend` behind the loopback git server, and the GitHub stand-in checked
// against GitHub's OpenAPI description. Every pass goes through the agent's CLI
// (`runAgentCli(['once'])`, or the real process for the crash test).
//
// The tests of the managed tenant `acme` run in order on one stack, each starting
// from where the previous one left it (as a host would live through these releases).
import { spawn } from 'node:child_process';
import { access, appendFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { remoteBranchHead } from '../renderer/core/git.js';
import { publishTenants } from '../renderer/publish/publish.js';
import { agentSettings } from '../test/support/agent-settings.js';
import { startGitHubStandIn, type GitHubStandIn } from '../test/support/github-standin.js';
import { startGitServer, type GitServer } from '../test/support/git-server.js';
import { docker } from '../test/support/images.js';
import { fakeSourceCommit, FIXTURE_SOURCE_REPO, tenantFixture, type TenantFixtureOptions } from '../test/support/tenant-fixture.js';
import { createComposeRunner } from './compose.js';
import { journalPath } from './journal.js';
import { runAgentCli } from './main.js';
import type { CrashPoint } from './reconcile.js';
import { readState } from './state.js';
import { snapshotTree } from '../test/support/tree-snapshot.js';

const ctx = inject('docker');
const dockerClient = { host: ctx.host, dockerConfig: ctx.dockerConfig };
const REPOSITORY = 'flotilla-test/app';
const GITHUB_REPO = 'acme/fleet';
const REPO_ROOT = join(import.meta.dirname, '..');

let git: GitServer;
let github: GitHubStandIn;
let work: string;
let repoUrl: string;
/** Everything the agent wrote to stdout/stderr in this file, for the secret checks. */
const output: string[] = [];

interface Host {
  tenant: string;
  installDir: string;
  stateDir: string;
  env: Record<string, string>;
}

async function makeHost(tenant: string): Promise<Host> {
  const installDir = join(work, `${tenant}-install`);
  const stateDir = join(work, `${tenant}-state`);
  await mkdir(installDir, { recursive: true });
  const env = agentSettings(ctx, { repoUrl, tenant, installDir, stateDir, github: { standIn: github, repo: GITHUB_REPO } });
  return { tenant, installDir, stateDir, env };
}

/** One `flotilla-agent once`, in process, with the real compose runner. */
async function once(host: Host): Promise<{ code: number; log: string }> {
  const lines: string[] = [];
  const code = await runAgentCli(['once'], {
    env: host.env,
    stdout: (s) => void lines.push(s),
    stderr: (s) => void lines.push(s),
    // Short client waits; the outbox is what keeps statuses across an outage.
    statusClient: { retry: { retries: 1, baseDelayMs: 50 }, throttle: { minWriteIntervalMs: 10 } },
  });
  output.push(...lines);
  return { code, log: lines.join('') };
}

/** `flotilla-agent once` as its own process (the real entry point), with extra variables. */
/** `once` as its own process, killed by SIGKILL at the crash point (test/support/agent-with-crash-point.ts). */
async function onceAsProcess(host: Host, crashAfter: CrashPoint): Promise<{ code: number | null; signal: string | null; log: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/agent-with-crash-point.ts', crashAfter, 'once'], {
    cwd: REPO_ROOT,
    env: host.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr.on('data', (d: Buffer) => (log += d.toString()));
  const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => child.on('close', (c, s) => resolve([c, s])));
  output.push(log);
  return { code, signal, log };
}

interface Published {
  tenantCommit: string;
  sourceCommit: string;
}

let publishCount = 0;
/** Publishes a render of the fixture to `tenants/<slug>` the way the publish workflow does. */
async function publish(opts: Omit<TenantFixtureOptions, 'registry' | 'repository' | 'sourceCommit'>): Promise<Published> {
  const sourceCommit = fakeSourceCommit(`release ${++publishCount}`);
  const fixture = tenantFixture({ ...opts, registry: ctx.registry, repository: REPOSITORY, sourceCommit });
  const result = await publishTenants({
    repoUrl,
    workDir: join(work, 'publish.git'),
    tenants: [{ slug: opts.tenant, files: fixture.files }],
    source: { repo: FIXTURE_SOURCE_REPO, commit: sourceCommit },
  });
  expect(result.committed).toEqual([opts.tenant]);
  const tenantCommit = await remoteBranchHead(repoUrl, `tenants/${opts.tenant}`);
  return { tenantCommit: tenantCommit!, sourceCommit };
}

/** The `flotilla/<slug>` statuses GitHub shows for a commit, oldest first. */
function statuses(sha: string, tenant = 'acme'): string[] {
  return github
    .statuses(GITHUB_REPO, sha)
    .filter((s) => s.context === `flotilla/${tenant}`)
    .map((s) => `${s.state}: ${s.description ?? ''}`);
}

/** The running containers of the project's `app` service. */
async function appContainers(project: string): Promise<string[]> {
  const ids = await docker(
    ['ps', '--quiet', '--filter', `label=com.docker.compose.project=${project}`, '--filter', 'label=com.docker.compose.service=app'],
    dockerClient,
  );
  return ids.split(/\s+/).filter(Boolean);
}

async function runningApp(project: string): Promise<{ id: string; version: string; health: string }> {
  const [id, ...more] = await appContainers(project);
  expect(more).toEqual([]);
  expect(id).toBeDefined();
  const version = (await docker(['exec', id!, 'cat', '/VERSION'], dockerClient)).trim();
  const health = (await docker(['inspect', '--format', '{{.State.Health.Status}}', id!], dockerClient)).trim();
  return { id: id!, version, health };
}

async function containerVariable(container: string, name: string): Promise<string> {
  return (await docker(['exec', container, 'sh', '-c', `echo "$${name}"`], dockerClient)).trim();
}

// Files only: a rollback may leave an empty folder it created behind, which is harmless.
const snapshot = (dir: string) => snapshotTree(dir, { dirs: false });

/** Every file's text under dir (recursively), for "the secret is nowhere" checks. */
async function allText(dir: string): Promise<string> {
  const parts: string[] = [];
  for (const path of Object.keys(await snapshot(dir))) parts.push(await readFile(join(dir, path), 'latin1'));
  return parts.join('\n');
}

const exists = (path: string) => access(path).then(() => true, () => false);

function envValue(envText: string, key: string): string | undefined {
  return new RegExp(`^${key}=(.*)$`, 'm').exec(envText)?.[1];
}

beforeAll(async () => {
  work = await mkdtemp(join(process.env.FLOTILLA_TEST_RUN_DIR ?? tmpdir(), 'agent-e2e-'));
  git = await startGitServer();
  await git.createBareRepo('fleet.git');
  repoUrl = git.url('fleet.git');
  github = await startGitHubStandIn({ repos: [GITHUB_REPO] });
});

afterAll(async () => {
  const compose = createComposeRunner({ command: ['docker-compose'], dockerHost: ctx.host, env: { ...process.env, DOCKER_CONFIG: ctx.dockerConfig } });
  for (const tenant of ['acme', 'linda']) {
    const dir = join(work, `${tenant}-install`);
    if (await exists(join(dir, 'docker-compose.yml'))) await compose.down({ dir, project: tenant }).catch(() => undefined);
  }
  await github?.close();
  await git?.stop();
  await rm(work, { recursive: true, force: true });
});

describe('a managed tenant through a life of releases', () => {
  let host: Host;
  const acme = (over: Partial<TenantFixtureOptions> & { imageTag: string }) =>
    publish({ tenant: 'acme', secrets: ['APP_SECRET'], ...over });
  let secret = '';

  beforeAll(async () => {
    host = await makeHost('acme');
  });

  it('applies the first release, generating the secret the manifest names into .env', async () => {
    const v1 = await acme({ imageTag: 'v1' });

    const run = await once(host);

    expect(run.code).toBe(0);
    const app = await runningApp('acme');
    expect(app).toMatchObject({ version: 'v1', health: 'healthy' });
    const env = await readFile(join(host.installDir, '.env'), 'utf8');
    secret = envValue(env, 'APP_SECRET') ?? '';
    // 32 random bytes, base64url: 43 characters, URL-safe.
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43,}$/);
    expect(Buffer.from(secret, 'base64url').length).toBeGreaterThanOrEqual(32);
    expect(await containerVariable(app.id, 'APP_SECRET')).toBe(secret);
    expect(statuses(v1.tenantCommit)).toEqual(['pending: applying v1', 'success: v1 up, 1/1 healthy']);
    expect(statuses(v1.sourceCommit)).toEqual(['pending: applying v1', 'success: v1 up, 1/1 healthy']);
    expect((await readState(host.stateDir)).lastApplied?.commit).toBe(v1.tenantCommit);
  });

  it('does nothing when the branch has not moved: same container, no new status', async () => {
    const before = await runningApp('acme');
    const statusCount = github.statuses(GITHUB_REPO).length;

    const run = await once(host);

    expect(run.code).toBe(0);
    expect(run.log).toMatch(/outcome: noop/);
    expect((await runningApp('acme')).id).toBe(before.id);
    expect(github.statuses(GITHUB_REPO)).toHaveLength(statusCount);
  });

  it('rolls a release whose healthcheck fails back to the previous files and stack', async () => {
    const before = await snapshot(host.installDir);
    const bad = await acme({ imageTag: 'v2', healthy: false });

    const run = await once(host);

    expect(run.code).toBe(1);
    expect(await snapshot(host.installDir)).toEqual(before);
    expect(await runningApp('acme')).toMatchObject({ version: 'v1', health: 'healthy' });
    const failure = 'failure: health failed: 0/1 healthy; app unhealthy; rolled back, previous stack 1/1 healthy';
    expect(statuses(bad.tenantCommit)).toEqual(['pending: applying v2', failure]);
    expect(statuses(bad.sourceCommit)).toEqual(['pending: applying v2', failure]);
    expect(await exists(journalPath(host.stateDir))).toBe(false);
  });

  it('applies a tag bump v1 -> v2: the container runs v2, the config and secret carried over', async () => {
    const v2 = await acme({ imageTag: 'v2', configText: 'version = v2\nworkers = 4\n' });

    const run = await once(host);

    expect(run.code).toBe(0);
    const app = await runningApp('acme');
    expect(app).toMatchObject({ version: 'v2', health: 'healthy' });
    expect(await docker(['exec', app.id, 'cat', '/etc/app.conf'], dockerClient)).toBe('version = v2\nworkers = 4\n');
    const env = await readFile(join(host.installDir, '.env'), 'utf8');
    expect(envValue(env, 'IMAGE_TAG')).toBe('v2');
    expect(envValue(env, 'APP_SECRET')).toBe(secret);
    expect(statuses(v2.tenantCommit)).toEqual(['pending: applying v2', 'success: v2 up, 1/1 healthy']);
    expect(statuses(v2.sourceCommit)).toEqual(['pending: applying v2', 'success: v2 up, 1/1 healthy']);
  });

  it('fails at pull on a tag the registry lacks, with the old stack running and no file changed', async () => {
    const before = await snapshot(host.installDir);
    const running = await runningApp('acme');
    const missing = await acme({ imageTag: 'v9-missing' });

    const run = await once(host);

    expect(run.code).toBe(1);
    expect(await snapshot(host.installDir)).toEqual(before);
    expect(await runningApp('acme')).toEqual(running);
    const [pending, failure, ...rest] = statuses(missing.tenantCommit);
    expect(pending).toBe('pending: applying v9-missing');
    expect(failure).toMatch(/^failure: pull failed: .*(manifest unknown|not found)/);
    expect(rest).toEqual([]);
    expect(statuses(missing.sourceCommit)).toEqual([pending, failure]);
    expect(await readdir(work)).not.toContain('.acme-install.flotilla-staging');

    // The next poll tries the pull again (the tag may have been pushed since), quietly.
    expect((await once(host)).code).toBe(1);
    expect(statuses(missing.tenantCommit)).toEqual([pending, failure]);
    expect(await snapshot(host.installDir)).toEqual(before);
  });

  it('refuses a release whose compose file requires a variable nobody defines, naming it, until the host defines it', async () => {
    const before = await snapshot(host.installDir);
    const needsSmtp = await acme({ imageTag: 'v2', requires: ['SMTP_HOST'] });

    const refused = await once(host);

    expect(refused.code).toBe(3);
    expect(await snapshot(host.installDir)).toEqual(before);
    const expected = ['pending: applying v2', 'failure: refused: missing SMTP_HOST'];
    expect(statuses(needsSmtp.tenantCommit)).toEqual(expected);
    expect(statuses(needsSmtp.sourceCommit)).toEqual(expected);

    // Still refused on the next poll, without repeating the statuses.
    expect((await once(host)).code).toBe(3);
    expect(statuses(needsSmtp.tenantCommit)).toEqual(expected);

    // The operator defines it on the host; the next poll applies the same commit.
    await appendFile(join(host.installDir, '.env'), 'SMTP_HOST=mail.internal\n');
    const applied = await once(host);
    expect(applied.code).toBe(0);
    const app = await runningApp('acme');
    expect(await containerVariable(app.id, 'SMTP_HOST')).toBe('mail.internal');
    expect(statuses(needsSmtp.tenantCommit)).toEqual([...expected, 'pending: applying v2', 'success: v2 up, 1/1 healthy']);
  });

  it.each([
    { crashAfter: 'swap' as const, tag: 'v1', recovery: /recover: interrupted at swapped; rolled back/ },
    { crashAfter: 'env-patch' as const, tag: 'v2', recovery: /recover: interrupted at env-patched; finishing/ },
  ])('recovers an agent killed after $crashAfter (before up) on the next start', async ({ crashAfter, tag, recovery }) => {
    const release = await acme({ imageTag: tag, requires: ['SMTP_HOST'], configText: `crash after ${crashAfter}\n` });
    const before = await runningApp('acme');

    const killed = await onceAsProcess(host, crashAfter);

    expect(killed.signal).toBe('SIGKILL');
    expect(await exists(journalPath(host.stateDir))).toBe(true);
    // Killed before `up`: compose never ran, the old container still serves.
    expect((await runningApp('acme')).id).toBe(before.id);

    const restarted = await once(host);

    expect(restarted.code).toBe(0);
    expect(restarted.log).toMatch(recovery);
    expect(await exists(journalPath(host.stateDir))).toBe(false);
    expect(await runningApp('acme')).toMatchObject({ version: tag, health: 'healthy' });
    expect(await readFile(join(host.installDir, 'config/app.conf'), 'utf8')).toBe(`crash after ${crashAfter}\n`);
    expect((await readState(host.stateDir)).lastApplied?.commit).toBe(release.tenantCommit);
    for (const sha of [release.tenantCommit, release.sourceCommit]) {
      const seen = statuses(sha);
      expect(seen[0]).toBe(`pending: applying ${tag}`);
      expect(seen.at(-1)).toMatch(new RegExp(`^success: ${tag} up`));
      expect(seen.filter((s) => s.startsWith('success'))).toHaveLength(1);
    }
  });

  it('keeps statuses while GitHub is down and delivers them, in order, on a later pass', async () => {
    github.failNext(1000, { status: 502, match: { method: 'POST', path: /\/statuses\// } });
    const release = await acme({ imageTag: 'v1', requires: ['SMTP_HOST'], configText: 'during an outage\n' });

    const duringOutage = await once(host);

    expect(duringOutage.code).toBe(0);
    expect(await runningApp('acme')).toMatchObject({ version: 'v1', health: 'healthy' });
    expect(statuses(release.tenantCommit)).toEqual([]);
    expect(statuses(release.sourceCommit)).toEqual([]);
    expect((await readdir(join(host.stateDir, 'outbox'))).filter((n) => n.endsWith('.json')).length).toBeGreaterThan(0);

    github.clearFaults();
    const later = await once(host);

    expect(later.code).toBe(0);
    expect(later.log).toMatch(/outcome: noop/);
    // The outbox keeps the newest status per commit and context, so the pending that
    // GitHub never got is superseded by the result; nothing arrives out of order.
    expect(statuses(release.tenantCommit)).toEqual(['success: v1 up, 1/1 healthy']);
    expect(statuses(release.sourceCommit)).toEqual(['success: v1 up, 1/1 healthy']);
    expect((await readdir(join(host.stateDir, 'outbox'))).filter((n) => n.endsWith('.json'))).toEqual([]);
    expect(github.violations()).toEqual([]);
  });

  it('never lets the generated secret out of .env: not in logs, statuses or state files', async () => {
    expect(secret).not.toBe('');
    expect(output.join('')).not.toContain(secret);
    expect(github.statuses(GITHUB_REPO).map((s) => s.description ?? '').join('\n')).not.toContain(secret);
    expect(await allText(host.stateDir)).not.toContain(secret);
    expect(envValue(await readFile(join(host.installDir, '.env'), 'utf8'), 'APP_SECRET')).toBe(secret);
  });
});

describe('an adopted tenant', () => {
  it("patches only the listed keys of the host's hand-written .env, keeping every other byte", async () => {
    const host = await makeHost('linda');
    // Installed by hand before Flotilla: v1, with secrets Flotilla never sees.
    const handWritten = [
      '# linda: set up by hand, 2023',
      `export REGISTRY=${ctx.registry}`,
      '',
      'IMAGE_TAG=v1 # pinned by ops',
      "DB_PASSWORD='hunter2$and$dollars'",
      'export API_TOKEN="tok en with spaces"',
      '',
    ].join('\r\n');
    const installed = tenantFixture({ tenant: 'linda', imageTag: 'v1', registry: ctx.registry, repository: REPOSITORY, mode: 'adopted' });
    for (const file of installed.files.filter((f) => !f.path.startsWith('.flotilla/'))) {
      await mkdir(join(host.installDir, file.path, '..'), { recursive: true });
      await writeFile(join(host.installDir, file.path), file.content);
    }
    await writeFile(join(host.installDir, '.env'), handWritten);
    const compose = createComposeRunner({ command: ['docker-compose'], dockerHost: ctx.host, env: { ...process.env, DOCKER_CONFIG: ctx.dockerConfig } });
    await compose.up({ dir: host.installDir, project: 'linda' });
    expect((await runningApp('linda')).version).toBe('v1');

    const release = await publish({
      tenant: 'linda',
      imageTag: 'v2',
      mode: 'adopted',
      // The host defines REGISTRY itself; the fleet sets the tag and adds a key.
      envPatch: { REGISTRY: null, LOG_LEVEL: 'info' },
    });
    // The v2 render's config/app.conf differs from the one install.sh left, which Flotilla
    // did not write: the host decides to let it go before the first apply (a copy is kept).
    let adopted = '';
    expect(await runAgentCli(['adopt'], { env: host.env, stdout: (s) => void (adopted += s), stderr: (s) => void (adopted += s) })).toBe(0);
    expect(adopted).toContain('  config/app.conf (');
    const run = await once(host);

    expect(run.code).toBe(0);
    const kept = (await readdir(join(host.stateDir, 'replaced'))).find((n) => !n.endsWith('.json'))!;
    expect(await readFile(join(host.stateDir, 'replaced', kept, 'config/app.conf'), 'utf8')).toBe(installed.files.find((f) => f.path === 'config/app.conf')!.content);
    expect(await readFile(join(host.installDir, '.env'), 'utf8')).toBe(
      handWritten.replace('IMAGE_TAG=v1 # pinned by ops', 'IMAGE_TAG=v2 # pinned by ops') +
        '# Added by fleet env-patch\r\nLOG_LEVEL=info\r\n',
    );
    expect(await runningApp('linda')).toMatchObject({ version: 'v2', health: 'healthy' });
    expect(statuses(release.tenantCommit, 'linda')).toEqual(['pending: applying v2', 'success: v2 up, 1/1 healthy']);
    expect(statuses(release.sourceCommit, 'linda')).toEqual(['pending: applying v2', 'success: v2 up, 1/1 healthy']);
    for (const secret of ['hunter2$and$dollars', 'tok en with spaces']) {
      expect(output.join('')).not.toContain(secret);
      expect(await allText(host.stateDir)).not.toContain(secret);
    }
  });
});
