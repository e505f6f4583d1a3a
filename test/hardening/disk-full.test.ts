// A disk that fills up while the agent stages a release. The install dir and its
// staging sibling live on a 1 MiB tmpfs mounted inside the test run's private mount
// namespace (scripts/test.sh runs vitest under `unshare --mount`), so the mount is seen
// by nobody else and goes away with the run. The release carries a 2 MiB file (under
// the 4 MiB manifest limit): staging fails with ENOSPC, nothing is swapped, compose is
// not called, the staging leftovers are removed (the disk is usable again) and the
// next release that fits applies.
import { execFile } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { remoteBranchHead } from '../../renderer/core/git.js';
import { publishTenants } from '../../renderer/publish/publish.js';
import { parseAgentConfig } from '../../agent/config.js';
import { journalPath } from '../../agent/journal.js';
import { reconcileOnce, type ReconcileOutcome } from '../../agent/reconcile.js';
import { readState } from '../../agent/state.js';
import type { ServiceState } from '../../agent/compose-runner.js';
import { startGitServer, type GitServer } from '../support/git-server.js';
import { RecordingCompose } from '../support/recording-compose.js';
import { fakeSourceCommit, FIXTURE_SOURCE_REPO, tenantFixture } from '../support/tenant-fixture.js';
import { snapshotTree } from '../support/tree-snapshot.js';

const execFileAsync = promisify(execFile);
const HEALTHY: ServiceState[] = [{ service: 'app', container: 'acme_app_1', state: 'running', health: 'healthy', image: 'app:v1' }];

/**
 * True inside scripts/test.sh: root, in the mount namespace it creates for the run
 * (FLOTILLA_TEST_RUN_DIR is set there), so a tmpfs mounted here is private and the
 * script's cleanup unmounts it even after a crash.
 */
function privateMountNamespace(): boolean {
  return process.getuid?.() === 0 && !!process.env.FLOTILLA_TEST_RUN_DIR;
}
const canMount = privateMountNamespace();

let git: GitServer;
let work: string;
let disk: string;
let installDir: string;
let stateDir: string;

beforeAll(async () => {
  if (!canMount) return;
  work = await mkdtemp(join(process.env.FLOTILLA_TEST_RUN_DIR ?? tmpdir(), 'disk-full-'));
  disk = join(work, 'disk');
  stateDir = join(work, 'state');
  await mkdir(disk);
  await execFileAsync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0755', 'flotilla-test-tmpfs', disk]);
  installDir = join(disk, 'install');
  await mkdir(installDir);
  git = await startGitServer();
  await git.createBareRepo('fleet.git');
});

afterAll(async () => {
  if (!canMount) return;
  await git?.stop();
  await execFileAsync('umount', [disk]).catch(() => undefined);
  await rm(work, { recursive: true, force: true });
});

let count = 0;
async function publish(configText: string): Promise<string> {
  const sourceCommit = fakeSourceCommit(`disk full ${++count}`);
  const fixture = tenantFixture({ tenant: 'acme', imageTag: `v${count}`, registry: '127.0.0.1:5000', repository: 'flotilla-test/app', sourceCommit, configText });
  await publishTenants({
    repoUrl: git.url('fleet.git'),
    workDir: join(work, 'publish.git'),
    tenants: [{ slug: 'acme', files: fixture.files }],
    source: { repo: FIXTURE_SOURCE_REPO, commit: sourceCommit },
  });
  return (await remoteBranchHead(git.url('fleet.git'), 'tenants/acme'))!;
}

async function pass(compose: RecordingCompose): Promise<ReconcileOutcome> {
  return reconcileOnce({
    config: parseAgentConfig({
      FLOTILLA_REPO: git.url('fleet.git'),
      FLOTILLA_TENANT: 'acme',
      FLOTILLA_DIR: installDir,
      FLOTILLA_STATE_DIR: stateDir,
      FLOTILLA_HEALTH_TIMEOUT: '1',
    }),
    compose,
    report: async () => undefined,
    log: () => undefined,
    healthPollMs: 1,
  });
}

// Files only: a rollback may leave an empty folder it created behind, which is harmless.
const snapshot = (dir: string) => snapshotTree(dir, { dirs: false });

describe.runIf(canMount)('a disk that fills during staging', () => {
  it('swaps nothing, keeps the old stack, cleans the staging up, and applies the next release that fits', async () => {
    const compose = new RecordingCompose({ services: HEALTHY });
    const v1 = await publish('small\n');
    expect(await pass(compose)).toMatchObject({ kind: 'applied', commit: v1 });
    const files = await snapshot(installDir);
    const calls = compose.calls.length;
    const freeBefore = (await statfs(disk)).bfree;

    const huge = await publish(`${'x'.repeat(2 * 1024 * 1024)}\n`);
    const full = await pass(compose);

    // A full disk is the host's fault, not the commit's: waited out as pending, retried (agent/host-fault.ts).
    expect(full).toMatchObject({ kind: 'waiting', reason: 'host-fault', commit: huge });
    expect('description' in full && full.description).toMatch(/^waiting: disk full, a problem on this host, not in the commit; retrying: stage failed: .*(ENOSPC|no space left)/i);
    expect((await readState(stateDir)).lastAttempt).toMatchObject({ commit: huge, outcome: 'waiting' });
    expect(compose.ops.slice(calls)).toEqual([]);
    expect(await snapshot(installDir)).toEqual(files);
    expect((await readState(stateDir)).lastApplied?.commit).toBe(v1);
    expect(await lstat(journalPath(stateDir)).then(() => true, () => false)).toBe(false);
    expect(await readdir(disk)).toEqual(['install']);
    expect((await statfs(disk)).bfree).toBe(freeBefore);

    const fits = await publish('small again\n');
    expect(await pass(compose)).toMatchObject({ kind: 'applied', commit: fits });
    expect(await readFile(join(installDir, 'config/app.conf'), 'utf8')).toBe('small again\n');
  });
});
