// A tenant commit whose tree holds an entry named `..` (a hand push; publish never
// writes one) is the commit's fault: refused with exit 3 and a failure status, once,
// never retried every poll; a good commit on top applies. Real git objects in the
// loopback git server's repository, the real CLI.
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runAgentCli } from '../../agent/main.js';
import type { ServiceState } from '../../agent/compose-runner.js';
import { publishTenants } from '../../renderer/publish/publish.js';
import { startGitServer, type GitServer } from '../support/git-server.js';
import { RecordingCompose } from '../support/recording-compose.js';
import { fakeSourceCommit, FIXTURE_SOURCE_REPO, tenantFixture } from '../support/tenant-fixture.js';

const HEALTHY: ServiceState[] = [{ service: 'app', container: 'acme_app_1', state: 'running', health: 'healthy', image: 'app:v1' }];

let git: GitServer;
let work: string;
let bare: string;

beforeAll(async () => {
  git = await startGitServer();
  work = await mkdtemp(join(tmpdir(), 'flotilla-hostile-tree-'));
  await mkdir(join(work, 'install'));
  bare = await git.createBareRepo('fleet.git');
});
afterAll(async () => {
  await git.stop();
  await rm(work, { recursive: true, force: true });
});

const gitIn = (args: string[], input?: Buffer) =>
  execFileSync('git', ['--git-dir', bare, ...args], { input, env: { ...process.env, GIT_AUTHOR_NAME: 'x', GIT_AUTHOR_EMAIL: 'x@localhost', GIT_COMMITTER_NAME: 'x', GIT_COMMITTER_EMAIL: 'x@localhost' } })
    .toString()
    .trim();

async function once() {
  let out = '';
  const env = {
    FLOTILLA_REPO: git.url('fleet.git'),
    FLOTILLA_TENANT: 'acme',
    FLOTILLA_DIR: join(work, 'install'),
    FLOTILLA_STATE_DIR: join(work, 'state'),
    FLOTILLA_HEALTH_TIMEOUT: '1',
  };
  const compose = new RecordingCompose({ services: HEALTHY });
  const code = await runAgentCli(['once'], { env, stdout: (s) => void (out += s), stderr: (s) => void (out += s), compose });
  return { code, out, compose };
}

async function publishTo(branchPrefix: string, imageTag: string): Promise<string> {
  const sourceCommit = fakeSourceCommit(`${branchPrefix} ${imageTag}`);
  const fixture = tenantFixture({ tenant: 'acme', imageTag, registry: '127.0.0.1:5000', repository: 'flotilla-test/app', sourceCommit });
  await publishTenants({
    repoUrl: git.url('fleet.git'),
    workDir: join(work, `publish-${branchPrefix.replace(/\W/g, '')}.git`),
    tenants: [{ slug: 'acme', files: fixture.files }],
    source: { repo: FIXTURE_SOURCE_REPO, commit: sourceCommit },
    branchPrefix,
  });
  return gitIn(['rev-parse', `${branchPrefix}acme`]);
}

it('refuses a tree entry named .. once, with exit 3, and applies the good commit pushed on top', async () => {
  // The repository holds only tenant branches: its HEAD names no branch (fetches must not mind).
  const good = await publishTo('tenants/', 'v1');
  expect((await once()).out).toMatch(/outcome: applied/);

  // git itself will not build such a tree; the bytes are written as they are.
  const blob = gitIn(['hash-object', '-w', '--stdin'], Buffer.from('hi\n'));
  const tree = gitIn(['hash-object', '-t', 'tree', '--literally', '-w', '--stdin'], Buffer.concat([Buffer.from('100644 ..\0'), Buffer.from(blob, 'hex')]));
  const hostile = gitIn(['commit-tree', tree, '-p', good, '-m', 'hand push']);
  gitIn(['update-ref', 'refs/heads/tenants/acme', hostile]);

  const refused = await once();
  expect(refused.code).toBe(3);
  expect(refused.out).toMatch(/refused: git read tree .*unsafe/);
  expect(refused.compose.calls).toEqual([]);
  const again = await once();
  expect(again.code).toBe(0);
  expect(again.out).toMatch(/outcome: noop/);

  // The fix, pushed on top of the hostile commit: a release's tree, as publish builds it.
  const release = gitIn(['rev-parse', `${await publishTo('scratch/', 'v2')}^{tree}`]);
  gitIn(['update-ref', 'refs/heads/tenants/acme', gitIn(['commit-tree', release, '-p', hostile, '-m', 'fix'])]);
  const applied = await once();
  expect(applied.out).toMatch(/outcome: applied/);
  expect(applied.code).toBe(0);
});
