// kill -9 of the agent at every step of an apply, on the real engine: the private
// dockerd and registry of the test run, Debian's docker-compose, the loopback git
// server. For each step the real CLI is run with a crash point at that step
// (`node --import tsx test/support/agent-with-crash-point.ts <step> once`) and dies by
// SIGKILL there; the agent is started again and the host must end fully on one commit
// (every managed file, `.env` and the running container agree with the commit the state
// records), with the stack up and healthy, the journal gone and no staging left behind.
import { spawn } from 'node:child_process';
import { access, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { remoteBranchHead } from '../../renderer/core/git.js';
import { publishTenants } from '../../renderer/publish/publish.js';
import { createComposeRunner } from '../../agent/compose.js';
import { journalPath } from '../../agent/journal.js';
import { runAgentCli } from '../../agent/main.js';
import { CRASH_POINTS, type CrashPoint } from '../../agent/reconcile.js';
import { readState } from '../../agent/state.js';
import { agentSettings } from '../support/agent-settings.js';
import { startGitServer, type GitServer } from '../support/git-server.js';
import { docker } from '../support/images.js';
import { fakeSourceCommit, FIXTURE_SOURCE_REPO, tenantFixture, type TenantFixture } from '../support/tenant-fixture.js';

const ctx = inject('docker');
const dockerClient = { host: ctx.host, dockerConfig: ctx.dockerConfig };
const REPOSITORY = 'flotilla-test/app';
const REPO_ROOT = join(import.meta.dirname, '..', '..');
const TENANT = 'killed';

let git: GitServer;
let work: string;
let repoUrl: string;
let installDir: string;
let stateDir: string;
let env: Record<string, string>;
/** Every published release by tenant commit, to check the host against the one it claims. */
const releases = new Map<string, { tag: string; fixture: TenantFixture }>();

const exists = (path: string) => access(path).then(() => true, () => false);

let count = 0;
/** A release that changes both managed files (config and compose) and the tag, so a half-done swap is visible. */
async function publish(tag: 'v1' | 'v2'): Promise<string> {
  const sourceCommit = fakeSourceCommit(`kill ${++count}`);
  const requires = count % 2 === 0 ? ['SMTP_HOST'] : [];
  const fixture = tenantFixture({
    tenant: TENANT,
    imageTag: tag,
    registry: ctx.registry,
    repository: REPOSITORY,
    sourceCommit,
    requires,
    envPatch: { SMTP_HOST: 'mail.internal' },
    configText: `release ${count}\n`,
  });
  await publishTenants({
    repoUrl,
    workDir: join(work, 'publish.git'),
    tenants: [{ slug: TENANT, files: fixture.files }],
    source: { repo: FIXTURE_SOURCE_REPO, commit: sourceCommit },
  });
  const commit = (await remoteBranchHead(repoUrl, `tenants/${TENANT}`))!;
  releases.set(commit, { tag, fixture });
  return commit;
}

async function onceInProcess(): Promise<{ code: number; log: string }> {
  const lines: string[] = [];
  const code = await runAgentCli(['once'], { env, stdout: (s) => void lines.push(s), stderr: (s) => void lines.push(s) });
  return { code, log: lines.join('') };
}

async function onceAsProcess(crashAfter: CrashPoint): Promise<{ code: number | null; signal: string | null; log: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/agent-with-crash-point.ts', crashAfter, 'once'], {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr.on('data', (d: Buffer) => (log += d.toString()));
  const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => child.on('close', (c, s) => resolve([c, s])));
  return { code, signal, log };
}

async function runningApp(): Promise<{ id: string; version: string; health: string; conf: string }> {
  const ids = (
    await docker(['ps', '--quiet', '--filter', `label=com.docker.compose.project=${TENANT}`, '--filter', 'label=com.docker.compose.service=app'], dockerClient)
  )
    .split(/\s+/)
    .filter(Boolean);
  expect(ids).toHaveLength(1);
  const id = ids[0]!;
  return {
    id,
    version: (await docker(['exec', id, 'cat', '/VERSION'], dockerClient)).trim(),
    health: (await docker(['inspect', '--format', '{{.State.Health.Status}}', id], dockerClient)).trim(),
    conf: await docker(['exec', id, 'cat', '/etc/app.conf'], dockerClient),
  };
}

/** The host is fully on the commit its state records: files, `.env`, container; nothing half-done left. */
async function expectFullyOn(commit: string): Promise<void> {
  expect((await readState(stateDir)).lastApplied?.commit).toBe(commit);
  const release = releases.get(commit)!;
  for (const file of release.fixture.files.filter((f) => !f.path.startsWith('.flotilla/'))) {
    expect(await readFile(join(installDir, file.path), 'utf8'), file.path).toBe(file.content);
  }
  const envText = await readFile(join(installDir, '.env'), 'utf8');
  expect(envText).toMatch(new RegExp(`^IMAGE_TAG=${release.tag}$`, 'm'));
  const app = await runningApp();
  expect(app).toMatchObject({ version: release.tag, health: 'healthy' });
  expect(app.conf).toBe(release.fixture.files.find((f) => f.path === 'config/app.conf')!.content);
  expect(await exists(journalPath(stateDir))).toBe(false);
  expect(await exists(join(work, '.install.flotilla-staging'))).toBe(false);
}

beforeAll(async () => {
  work = await mkdtemp(join(process.env.FLOTILLA_TEST_RUN_DIR ?? tmpdir(), 'kill-every-step-'));
  installDir = join(work, 'install');
  stateDir = join(work, 'state');
  await mkdir(installDir);
  git = await startGitServer();
  await git.createBareRepo('fleet.git');
  repoUrl = git.url('fleet.git');
  env = agentSettings(ctx, { repoUrl, tenant: TENANT, installDir, stateDir });
  const first = await publish('v1');
  const applied = await onceInProcess();
  expect(applied.code, applied.log).toBe(0);
  await expectFullyOn(first);
});

afterAll(async () => {
  const compose = createComposeRunner({ command: ['docker-compose'], dockerHost: ctx.host, env: { ...process.env, DOCKER_CONFIG: ctx.dockerConfig } });
  if (await exists(join(installDir, 'docker-compose.yml'))) await compose.down({ dir: installDir, project: TENANT }).catch(() => undefined);
  await git?.stop();
  await rm(work, { recursive: true, force: true });
});

/** Steps at which `compose up` has not run yet: the old container must still be serving after the kill. */
const BEFORE_UP = new Set(['stage', 'pull', 'mid-swap', 'swap', 'env-patch']);

describe('kill -9 at every step of an apply', () => {
  it.each(CRASH_POINTS.map((step) => ({ step })))('ends fully on one commit, stack up, after a kill after $step', async ({ step }) => {
    const from = (await readState(stateDir)).lastApplied!.commit;
    const fromApp = await runningApp();
    const to = await publish(releases.get(from)!.tag === 'v1' ? 'v2' : 'v1');

    const killed = await onceAsProcess(step);

    expect(killed.signal, killed.log).toBe('SIGKILL');
    if (BEFORE_UP.has(step)) expect((await runningApp()).id).toBe(fromApp.id);

    const restarted = await onceInProcess();

    expect(restarted.code, restarted.log).toBe(0);
    // Recovery rolls back (or finishes), then the same pass applies the commit the branch
    // points at: the host ends on the new commit, and never on a mix of both.
    await expectFullyOn(to);
    const again = await onceInProcess();
    expect(again.log).toMatch(/outcome: noop/);
  });
});
