// A tenant commit holding a 200 MB file, seen from the agent: the real `git http-backend`
// behind the loopback git server, the real publisher for the good commits and the git CLI
// for the bad one (a hand push). The bad commit is refused with a failure status that
// names it, the file and its size; it is not retried; the commits after it (one removing
// the file, a normal publish on top) apply, whether or not the agent ever saw the bad one.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hasObject, remoteBranchHead } from '../../renderer/core/git.js';
import { publishTenants } from '../../renderer/publish/publish.js';
import { parseAgentConfig } from '../../agent/config.js';
import { reconcileOnce, type ReconcileOutcome, type StatusUpdate } from '../../agent/reconcile.js';
import { readState } from '../../agent/state.js';
import type { ServiceState } from '../../agent/compose-runner.js';
import { startGitServer, type GitServer } from '../support/git-server.js';
import { RecordingCompose } from '../support/recording-compose.js';
import { fakeSourceCommit, FIXTURE_SOURCE_REPO, tenantFixture } from '../support/tenant-fixture.js';
import { snapshotTree } from '../support/tree-snapshot.js';

const execFileAsync = promisify(execFile);
const gitEnv = { ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_CONFIG_NOSYSTEM: '1', HOME: tmpdir() };
const gitCli = async (args: string[], cwd?: string) =>
  (await execFileAsync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.invalid', ...args], { cwd, env: gitEnv })).stdout.trim();

const HEALTHY: ServiceState[] = [{ service: 'app', container: 'acme_app_1', state: 'running', health: 'healthy', image: 'app:v1' }];
const MB200 = 200 * 1024 * 1024;

let git: GitServer;
let work: string;
let installDir: string;
let stateDir: string;
let statuses: StatusUpdate[];

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'flotilla-large-object-'));
  installDir = join(work, 'install');
  stateDir = join(work, 'state');
  await mkdir(installDir);
  statuses = [];
  git = await startGitServer({ root: join(work, 'git-root') });
  await git.createBareRepo('fleet.git');
});

afterEach(async () => {
  await git.stop();
  await rm(work, { recursive: true, force: true });
});

let releases = 0;
async function publish(imageTag: string): Promise<string> {
  const sourceCommit = fakeSourceCommit(`large object ${++releases}`);
  const fixture = tenantFixture({ tenant: 'acme', imageTag, registry: '127.0.0.1:5000', repository: 'flotilla-test/app', sourceCommit, configText: `release ${releases}\n` });
  await publishTenants({
    repoUrl: git.url('fleet.git'),
    workDir: join(work, 'publish.git'),
    tenants: [{ slug: 'acme', files: fixture.files }],
    source: { repo: FIXTURE_SOURCE_REPO, commit: sourceCommit },
  });
  return (await remoteBranchHead(git.url('fleet.git'), 'tenants/acme'))!;
}

/** Whether the agent's repository holds the object: a refused blob must never be stored, nor fetched for history. */
const agentHas = (oid: string) => hasObject(join(stateDir, 'repo.git'), oid);

/** A hand push onto the tenant branch: a 200 MB file (zeros: small on the wire, 200 MB declared), then its removal. */
async function pushBigFileThenRemoveIt(): Promise<{ big: string; blob: string }> {
  const clone = join(work, 'clone');
  await gitCli(['clone', '--quiet', '--branch', 'tenants/acme', git.url('fleet.git'), clone]);
  await writeFile(join(clone, 'big.bin'), '');
  await truncate(join(clone, 'big.bin'), MB200);
  await gitCli(['add', 'big.bin'], clone);
  await gitCli(['commit', '--quiet', '-m', 'add a big file'], clone);
  const big = await gitCli(['rev-parse', 'HEAD'], clone);
  const blob = await gitCli(['rev-parse', 'HEAD:big.bin'], clone);
  await gitCli(['push', '--quiet', 'origin', 'HEAD:refs/heads/tenants/acme'], clone);
  await gitCli(['rm', '--quiet', 'big.bin'], clone);
  await gitCli(['commit', '--quiet', '-m', 'remove the big file'], clone);
  return { big, blob };
}

async function pushRemoval(): Promise<void> {
  await gitCli(['push', '--quiet', 'origin', 'HEAD:refs/heads/tenants/acme'], join(work, 'clone'));
}

async function pass(compose: RecordingCompose): Promise<{ outcome: ReconcileOutcome; log: string[] }> {
  const log: string[] = [];
  const outcome = await reconcileOnce({
    config: parseAgentConfig({
      FLOTILLA_REPO: git.url('fleet.git'),
      FLOTILLA_TENANT: 'acme',
      FLOTILLA_DIR: installDir,
      FLOTILLA_STATE_DIR: stateDir,
      FLOTILLA_HEALTH_TIMEOUT: '1',
    }),
    compose,
    report: async (update) => void statuses.push(update),
    log: (line) => void log.push(line),
    healthPollMs: 1,
  });
  return { outcome, log };
}

describe('a tenant commit holding a 200 MB file', () => {
  it('is refused with a failure status naming it and the file; the commit removing it and a publish on top apply', async () => {
    const compose = new RecordingCompose({ services: HEALTHY });
    const v1 = await publish('v1');
    expect((await pass(compose)).outcome).toMatchObject({ kind: 'applied', commit: v1 });
    const files = await snapshotTree(installDir, { dirs: false });
    const calls = compose.calls.length;

    const { big, blob } = await pushBigFileThenRemoveIt();
    const refused = await pass(compose);

    const description = `refused: ${big.slice(0, 12)} holds big.bin (${MB200} bytes, over the 4194304-byte limit); not fetched`;
    expect(refused.outcome).toMatchObject({ kind: 'refused', commit: big, description });
    expect(statuses.at(-1)).toEqual({ tenantCommit: big, state: 'failure', description });
    expect(compose.ops.slice(calls)).toEqual([]);
    expect(await snapshotTree(installDir, { dirs: false })).toEqual(files);
    expect((await readState(stateDir)).lastApplied?.commit).toBe(v1);

    // The same commit again: nothing fetched, no second status.
    const again = await pass(compose);
    expect(again.outcome).toMatchObject({ kind: 'noop', commit: big });
    expect(statuses.filter((s) => s.tenantCommit === big)).toHaveLength(1);

    await pushRemoval();
    const v2 = await publish('v2');
    const applied = await pass(compose);

    expect(applied.outcome, applied.log.join('\n')).toMatchObject({ kind: 'applied', commit: v2 });
    expect(statuses.at(-1)).toMatchObject({ tenantCommit: v2, state: 'success' });
    expect((await readState(stateDir)).lastApplied?.commit).toBe(v2);
    expect(compose.ops.slice(calls)).toEqual(['config', 'pull', 'up', 'services']);
    expect(await agentHas(blob)).toBe(false);
  });

  it('never blocks the commits after it when the agent never saw it: the fast-forward check reads commits only', async () => {
    const compose = new RecordingCompose({ services: HEALTHY });
    const v1 = await publish('v1');
    expect((await pass(compose)).outcome).toMatchObject({ kind: 'applied', commit: v1 });

    const { big, blob } = await pushBigFileThenRemoveIt();
    await pushRemoval();
    const v2 = await publish('v2');
    const applied = await pass(compose);

    expect(applied.outcome, applied.log.join('\n')).toMatchObject({ kind: 'applied', commit: v2 });
    expect(statuses.map((s) => s.tenantCommit)).not.toContain(big);
    expect((await readState(stateDir)).lastApplied?.commit).toBe(v2);
    expect(await agentHas(blob)).toBe(false);
  });
});
