// The reconcile pass with a recording compose runner: real git over HTTP (the loopback
// git-http-backend), real files in temp dirs; only compose is recorded instead of run.
// The same behaviours on the real engine are in agent.docker.test.ts.
import { execFile } from 'node:child_process';
import { access, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { remoteBranchHead } from '../renderer/core/git.js';
import { MANIFEST_PATH, serializeManifest, sha256 } from '../renderer/core/manifest.js';
import { publishTenants } from '../renderer/publish/publish.js';
import { startGitServer, type GitServer } from '../test/support/git-server.js';
import { RecordingCompose } from '../test/support/recording-compose.js';
import { recordedPass, type RecordedPass } from '../test/support/reconcile-pass.js';
import { fakeSourceCommit, FIXTURE_SOURCE_REPO, tenantFixture, type TenantFixtureOptions } from '../test/support/tenant-fixture.js';
import type { ServiceState } from './compose-runner.js';
import { parseAgentConfig, type AgentConfig } from './config.js';
import { journalPath } from './journal.js';
import { exitCodeOf, isFailedPoll, type ReconcileOutcome } from './reconcile.js';
import { readState } from './state.js';
import { snapshotTree } from '../test/support/tree-snapshot.js';

const execFileAsync = promisify(execFile);

const HEALTHY: ServiceState[] = [{ service: 'app', container: 'acme_app_1', state: 'running', health: 'healthy', image: 'app:v1' }];
const UNHEALTHY: ServiceState[] = [{ ...HEALTHY[0]!, health: 'unhealthy' }];

let git: GitServer;
let bareRepo: string;
let work: string;
let installDir: string;
let stateDir: string;
let releases = 0;

beforeAll(async () => {
  git = await startGitServer();
});
afterAll(async () => {
  await git.stop();
});

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'flotilla-reconcile-'));
  installDir = join(work, 'install');
  stateDir = join(work, 'state');
  await mkdir(installDir);
  bareRepo = await git.createBareRepo(`fleet-${++releases}.git`);
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

function repoUrl(): string {
  return git.url(`fleet-${releases}.git`);
}

function config(over: Record<string, string> = {}): AgentConfig {
  return parseAgentConfig({
    FLOTILLA_REPO: repoUrl(),
    FLOTILLA_TENANT: 'acme',
    FLOTILLA_DIR: installDir,
    FLOTILLA_STATE_DIR: stateDir,
    FLOTILLA_HEALTH_TIMEOUT: '1',
    ...over,
  });
}

async function pass(compose: RecordingCompose, over: Record<string, string> = {}): Promise<RecordedPass> {
  return recordedPass({ config: config(over), compose });
}

async function publish(opts: Partial<TenantFixtureOptions> = {}): Promise<string> {
  const sourceCommit = fakeSourceCommit(`unit release ${releases} ${Math.random()}`);
  const fixture = tenantFixture({
    tenant: 'acme',
    imageTag: 'v1',
    registry: '127.0.0.1:5000',
    repository: 'flotilla-test/app',
    sourceCommit,
    ...opts,
  });
  await publishTenants({
    repoUrl: repoUrl(),
    workDir: join(work, 'publish.git'),
    tenants: [{ slug: 'acme', files: fixture.files }],
    source: { repo: FIXTURE_SOURCE_REPO, commit: sourceCommit },
  });
  return (await remoteBranchHead(repoUrl(), 'tenants/acme'))!;
}

/** Publishes the fixture release with its compose file changed by `edit` (the manifest follows). */
async function publishWithCompose(edit: (compose: string) => string): Promise<string> {
  const fixture = tenantFixture({
    tenant: 'acme',
    imageTag: 'v1',
    registry: '127.0.0.1:5000',
    repository: 'flotilla-test/app',
    sourceCommit: fakeSourceCommit(`edited release ${releases}`),
  });
  const compose = edit(fixture.composeText);
  const manifest = {
    ...fixture.manifest,
    files: fixture.manifest.files.map((f) => (f.path === 'docker-compose.yml' ? { ...f, sha256: sha256(compose) } : f)),
  };
  const files = fixture.files.map((f) =>
    f.path === 'docker-compose.yml' ? { ...f, content: compose } : f.path === MANIFEST_PATH ? { ...f, content: serializeManifest(manifest) } : f,
  );
  await publishTenants({
    repoUrl: repoUrl(),
    workDir: join(work, 'publish.git'),
    tenants: [{ slug: 'acme', files }],
    source: manifest.source,
  });
  return (await remoteBranchHead(repoUrl(), 'tenants/acme'))!;
}

// Files only: a rollback may leave an empty folder it created behind, which is harmless.
const snapshot = (dir: string) => snapshotTree(dir, { dirs: false });

const exists = (path: string) => access(path).then(() => true, () => false);
const staging = () => join(work, '.install.flotilla-staging');

describe('reconcileOnce', () => {
  it('applies a new commit in order: config and pull on the staged tree, then up on the install dir', async () => {
    const commit = await publish();
    const compose = new RecordingCompose({ services: HEALTHY });

    const { outcome, statuses } = await pass(compose);

    expect(outcome).toEqual({ kind: 'applied', commit, description: 'v1 up, 1/1 healthy' });
    expect(statuses).toEqual(['pending: applying v1', 'success: v1 up, 1/1 healthy']);
    expect(compose.ops).toEqual(['config', 'pull', 'up', 'services']);
    expect(compose.calls[0]!.dir).toBe(staging());
    expect(compose.calls[2]!.dir).toBe(installDir);
    // config saw exactly what up saw.
    expect(compose.calls[0]!.files).toEqual(compose.calls[2]!.files);
    expect(compose.calls.every((c) => c.project === 'acme')).toBe(true);
    expect(await exists(staging())).toBe(false);
    expect(await exists(journalPath(stateDir))).toBe(false);
    expect((await readState(stateDir)).lastApplied?.commit).toBe(commit);
  });

  it('does nothing when the branch has not moved: no compose call, no status', async () => {
    const commit = await publish();
    const compose = new RecordingCompose({ services: HEALTHY });
    await pass(compose);
    const before = await snapshot(installDir);
    const calls = compose.calls.length;

    const { outcome, statuses } = await pass(compose);

    expect(outcome).toEqual({ kind: 'noop', commit, drift: [] });
    expect(statuses).toEqual([]);
    expect(compose.calls).toHaveLength(calls);
    expect(await snapshot(installDir)).toEqual(before);
  });

  it('refuses a commit that does not descend from the applied one, unless non-fast-forwards are allowed', async () => {
    const applied = await publish();
    const compose = new RecordingCompose({ services: HEALTHY });
    await pass(compose);
    // History rewritten: an orphan commit with the same tree replaces the branch.
    const tree = (await execFileAsync('git', ['-C', bareRepo, 'rev-parse', `${applied}^{tree}`])).stdout.trim();
    const orphan = (
      await execFileAsync('git', ['-C', bareRepo, 'commit-tree', tree, '-m', 'rewritten'], {
        env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@x', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@x' },
      })
    ).stdout.trim();
    await execFileAsync('git', ['-C', bareRepo, 'update-ref', 'refs/heads/tenants/acme', orphan]);
    const before = await snapshot(installDir);
    const calls = compose.calls.length;

    const refused = await pass(compose);

    expect(refused.outcome).toMatchObject({ kind: 'refused', commit: orphan });
    expect((refused.outcome as { description: string }).description).toMatch(/does not descend from the applied/);
    expect(refused.statuses).toEqual([`failure: ${(refused.outcome as { description: string }).description}`]);
    expect(compose.calls).toHaveLength(calls);
    expect(await snapshot(installDir)).toEqual(before);
    // Not retried (and not re-reported) while the branch stays there.
    expect((await pass(compose)).outcome).toMatchObject({ kind: 'noop', commit: orphan });

    // The operator allows history rewrites: the same commit is applied on the next poll.
    const allowed = await pass(compose, { FLOTILLA_ALLOW_NON_FAST_FORWARD: 'true' });
    expect(allowed.outcome).toMatchObject({ kind: 'applied', commit: orphan });
    expect(allowed.statuses).toEqual(['pending: applying v1', 'success: v1 up, 1/1 healthy']);
  });

  it('reports a managed file changed on the host, and rewrites it with policy heal', async () => {
    await publish();
    const compose = new RecordingCompose({ services: HEALTHY });
    await pass(compose);
    const file = join(installDir, 'config/app.conf');
    const rendered = await readFile(file, 'utf8');
    await writeFile(file, 'edited by hand\n');
    const calls = compose.calls.length;

    const reported = await pass(compose);

    expect(reported.outcome).toMatchObject({ kind: 'noop', drift: [{ path: 'config/app.conf', state: 'modified' }] });
    expect(reported.log.join('\n')).toMatch(/drift: config\/app.conf modified/);
    expect(await readFile(file, 'utf8')).toBe('edited by hand\n');
    expect(compose.calls).toHaveLength(calls);

    const healed = await pass(compose, { FLOTILLA_DRIFT: 'heal' });

    expect(healed.outcome).toMatchObject({ kind: 'applied', description: 'v1 up, 1/1 healthy (drift healed)' });
    expect(await readFile(file, 'utf8')).toBe(rendered);
    expect(compose.ops.slice(calls)).toEqual(['config', 'pull', 'up', 'services']);
  });

  it.each(['config', 'pull'] as const)('leaves every file untouched when %s fails before the swap, and retries quietly', async (step) => {
    await publish({ imageTag: 'v1' });
    const compose = new RecordingCompose({ services: HEALTHY });
    await pass(compose);
    await publish({ imageTag: 'v2', configText: 'new config\n' });
    const before = await snapshot(installDir);
    compose.fail[step] = 'ERROR: manifest for app:v2 not found: manifest unknown';

    const { outcome, statuses } = await pass(compose);

    expect(outcome).toMatchObject({ kind: 'failed', step, description: `${step} failed: ERROR: manifest for app:v2 not found: manifest unknown` });
    expect(statuses).toEqual(['pending: applying v2', `failure: ${step} failed: ERROR: manifest for app:v2 not found: manifest unknown`]);
    expect(await snapshot(installDir)).toEqual(before);
    expect(compose.ops.filter((op) => op === 'up')).toHaveLength(1);
    expect(await exists(staging())).toBe(false);
    expect(await exists(journalPath(stateDir))).toBe(false);

    // Retried on the next poll, quietly while it fails the same way.
    const retried = await pass(compose);
    expect(retried.outcome).toMatchObject({ kind: 'failed', step });
    expect(retried.statuses).toEqual([]);
    expect(await snapshot(installDir)).toEqual(before);

    // The registry has the tag now: the retry applies and says so.
    delete compose.fail[step];
    const applied = await pass(compose);
    expect(applied.outcome).toMatchObject({ kind: 'applied', description: 'v2 up, 1/1 healthy' });
    expect(applied.statuses).toEqual(['pending: applying v2', 'success: v2 up, 1/1 healthy']);
    expect(await readFile(join(installDir, 'config/app.conf'), 'utf8')).toBe('new config\n');
  });

  it('restores the previous files and brings the previous stack up when health fails after up', async () => {
    await publish({ imageTag: 'v1' });
    const compose = new RecordingCompose({ services: HEALTHY });
    await pass(compose);
    const before = await snapshot(installDir);
    await publish({ imageTag: 'v2', configText: 'new config\n' });
    compose.serviceStates = UNHEALTHY;
    const calls = compose.calls.length;

    const { outcome } = await pass(compose);

    expect(outcome).toMatchObject({ kind: 'failed', step: 'health' });
    expect((outcome as { description: string }).description).toMatch(/^health failed: 0\/1 healthy; app unhealthy; rolled back/);
    expect(await snapshot(installDir)).toEqual(before);
    const ups = compose.calls.slice(calls).filter((c) => c.op === 'up');
    expect(ups.map((c) => c.files['.env']?.match(/IMAGE_TAG=(\w+)/)?.[1])).toEqual(['v2', 'v1']);
    expect(await exists(journalPath(stateDir))).toBe(false);
    // The failed commit is held: the next poll does not take the stack down and up again.
    compose.serviceStates = HEALTHY;
    expect((await pass(compose)).outcome.kind).toBe('noop');
  });

  it('takes a failed first release down again (there is no previous stack to go back to)', async () => {
    await publish();
    const compose = new RecordingCompose({ services: UNHEALTHY });

    const { outcome } = await pass(compose);

    expect((outcome as { description: string }).description).toMatch(/rolled back \(no previous stack; the new one is down\)/);
    expect(compose.ops.at(-1)).toBe('down');
    expect(compose.calls.at(-1)!.dir).toBe(staging());
    // Every file the apply created is gone again (an emptied folder may stay).
    expect(await snapshot(installDir)).toEqual({});
  });

  it('refuses a release missing a required variable, names it, and applies once the host defines it', async () => {
    await publish({ requires: ['SMTP_HOST'] });
    const compose = new RecordingCompose({ services: HEALTHY });

    const refused = await pass(compose);

    expect(refused.outcome).toMatchObject({ kind: 'refused', description: 'refused: missing SMTP_HOST', missing: ['SMTP_HOST'] });
    expect(refused.statuses).toEqual(['pending: applying v1', 'failure: refused: missing SMTP_HOST']);
    expect(compose.calls).toEqual([]);
    expect(await readdir(installDir)).toEqual([]);

    const again = await pass(compose);
    expect(again.outcome.kind).toBe('refused');
    expect(again.statuses).toEqual([]);

    await writeFile(join(installDir, '.env'), 'SMTP_HOST=mail.internal\n');
    const applied = await pass(compose);
    expect(applied.outcome.kind).toBe('applied');
    expect(applied.statuses).toEqual(['pending: applying v1', 'success: v1 up, 1/1 healthy']);
  });

  it('refuses a release whose used default names an unset variable (frappe) on a compose v2 host, though nothing in it is required', async () => {
    // frappe_docker's image line: with CUSTOM_TAG unset compose v2 would pull `frappe/erpnext:`.
    await publishWithCompose((text) =>
      text.replace('    init: true\n', '    init: true\n    labels: ["erpnext=${CUSTOM_IMAGE:-frappe/erpnext}:${CUSTOM_TAG:-$ERPNEXT_VERSION}"]\n'),
    );
    // No compose v2 on the test machines: the stand-in answers `version --short` as compose v2 does.
    const v2 = join(work, 'compose-v2');
    await writeFile(v2, '#!/bin/sh\n[ "$1 $2" = "version --short" ] && echo 2.29.1\n', { mode: 0o755 });
    const onV2 = { FLOTILLA_COMPOSE: v2 };
    const compose = new RecordingCompose({ services: HEALTHY });

    const refused = await pass(compose, onV2);

    expect(refused.outcome).toMatchObject({ kind: 'refused', description: 'refused: missing ERPNEXT_VERSION', missing: ['ERPNEXT_VERSION'] });
    expect(exitCodeOf(refused.outcome)).toBe(3);
    expect(compose.calls).toEqual([]);

    // The last assignment wins: an emptied CUSTOM_TAG brings the default back.
    await writeFile(join(installDir, '.env'), 'CUSTOM_TAG=v15.1.0\nCUSTOM_TAG=\n');
    expect((await pass(compose, onV2)).outcome).toMatchObject({ kind: 'refused', missing: ['ERPNEXT_VERSION'] });

    await writeFile(join(installDir, '.env'), 'CUSTOM_TAG=\nCUSTOM_TAG=v15.1.0\n');
    expect((await pass(compose, onV2)).outcome.kind).toBe('applied');
  });

  it('applies the frappe line on a compose v1 host, which reads $ERPNEXT_VERSION in a default literally', async () => {
    await publishWithCompose((text) =>
      text.replace('    init: true\n', '    init: true\n    labels: ["erpnext=${CUSTOM_IMAGE:-frappe/erpnext}:${CUSTOM_TAG:-$ERPNEXT_VERSION}"]\n'),
    );
    const compose = new RecordingCompose({ services: HEALTHY });
    const run = await pass(compose, { FLOTILLA_COMPOSE: '/usr/bin/docker-compose' });
    expect(run.outcome.kind).toBe('applied');
  });
});

describe('exit codes of the outcomes', () => {
  const commit = 'a'.repeat(40);
  it('exits a wait by what it waits for: 0 for a window, as noop; 2 for a fault of the host’s, as error, backed off from', () => {
    const window: ReconcileOutcome = { kind: 'waiting', commit, reason: 'window', description: 'waiting for window (opens Sun 02:00)' };
    const hostFault: ReconcileOutcome = { kind: 'waiting', commit, reason: 'host-fault', description: 'waiting: disk full, a problem on this host' };
    expect([exitCodeOf(window), isFailedPoll(window)]).toEqual([0, false]);
    expect([exitCodeOf(hostFault), isFailedPoll(hostFault)]).toEqual([2, true]);
    expect([exitCodeOf({ kind: 'noop', commit, drift: [] }), exitCodeOf({ kind: 'error', description: 'git unreachable' })]).toEqual([0, 2]);
    expect(exitCodeOf({ kind: 'failed', commit, step: 'up', description: 'up failed', afterSwap: true })).toBe(1);
  });
});
