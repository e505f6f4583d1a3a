// A blip is not a failure, on the real engine: the registry the tenant pulls from sits
// behind a loopback TCP proxy the test opens and closes. While it is down the agent
// reports `pending` with the reason and retries; past FLOTILLA_HOST_FAULT_TIMEOUT it
// reports a `failure` that names the host; once the registry is back the commit
// applies. A tag missing from the registry is the commit's fault and fails at once.
import { createServer, connect, type Server, type Socket } from 'node:net';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { remoteBranchHead } from '../renderer/core/git.js';
import { publishTenants } from '../renderer/publish/publish.js';
import { agentSettings } from '../test/support/agent-settings.js';
import { startGitHubStandIn, type GitHubStandIn } from '../test/support/github-standin.js';
import { startGitServer, type GitServer } from '../test/support/git-server.js';
import { fakeSourceCommit, FIXTURE_SOURCE_REPO, tenantFixture } from '../test/support/tenant-fixture.js';
import { snapshotTree } from '../test/support/tree-snapshot.js';
import { createComposeRunner } from './compose.js';
import { runAgentCli } from './main.js';

const ctx = inject('docker');
const GITHUB_REPO = 'acme/fleet';
const FAULT_TIMEOUT_SECONDS = 3;

let git: GitServer;
let github: GitHubStandIn;
let work: string;
let installDir: string;
let env: Record<string, string>;

/** A TCP proxy to the test registry on a fixed loopback port, that can be taken down and brought back. */
class RegistryProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  port = 0;

  async up(): Promise<void> {
    const [host, port] = ctx.registry.split(':');
    this.server = createServer((client) => {
      const upstream = connect(Number(port), host!);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => s.destroy());
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
  }

  async down(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server = undefined;
  }
}

const proxy = new RegistryProxy();

beforeAll(async () => {
  work = await mkdtemp(join(process.env.FLOTILLA_TEST_RUN_DIR ?? tmpdir(), 'host-fault-'));
  installDir = join(work, 'install');
  await mkdir(installDir);
  git = await startGitServer();
  await git.createBareRepo('fleet.git');
  github = await startGitHubStandIn({ repos: [GITHUB_REPO] });
  await proxy.up(); // to learn a free port; taken down again by the test
  env = agentSettings(
    ctx,
    { repoUrl: git.url('fleet.git'), tenant: 'acme', installDir, stateDir: join(work, 'state'), github: { standIn: github, repo: GITHUB_REPO } },
    { FLOTILLA_HOST_FAULT_TIMEOUT: String(FAULT_TIMEOUT_SECONDS) },
  );
});

afterAll(async () => {
  const compose = createComposeRunner({ command: ['docker-compose'], dockerHost: ctx.host, env: { ...process.env, DOCKER_CONFIG: ctx.dockerConfig } });
  await compose.down({ dir: installDir, project: 'acme' }).catch(() => undefined);
  await proxy.down();
  await github?.close();
  await git?.stop();
  await rm(work, { recursive: true, force: true });
});

let releases = 0;
async function publish(imageTag: string): Promise<string> {
  const sourceCommit = fakeSourceCommit(`host fault ${++releases}`);
  const fixture = tenantFixture({ tenant: 'acme', imageTag, registry: `127.0.0.1:${proxy.port}`, repository: 'flotilla-test/app', sourceCommit });
  await publishTenants({
    repoUrl: git.url('fleet.git'),
    workDir: join(work, 'publish.git'),
    tenants: [{ slug: 'acme', files: fixture.files }],
    source: { repo: FIXTURE_SOURCE_REPO, commit: sourceCommit },
  });
  return (await remoteBranchHead(git.url('fleet.git'), 'tenants/acme'))!;
}

async function once(): Promise<{ code: number; log: string }> {
  let log = '';
  const code = await runAgentCli(['once'], {
    env,
    stdout: (s) => void (log += s),
    stderr: (s) => void (log += s),
    statusClient: { retry: { retries: 1, baseDelayMs: 50 }, throttle: { minWriteIntervalMs: 10 } },
  });
  return { code, log };
}

const statuses = (sha: string) =>
  github
    .statuses(GITHUB_REPO, sha)
    .filter((s) => s.context === 'flotilla/acme')
    .map((s) => `${s.state}: ${s.description ?? ''}`);

it('reports a registry outage as pending and retries, names the host once it lasts, and applies when the registry is back', async () => {
  await proxy.down();
  const commit = await publish(ctx.testImage.tags[0]!);

  const first = await once();
  expect(first.code).toBe(2);
  const waiting = statuses(commit).filter((s) => s.startsWith('pending: waiting'));
  expect(waiting).toHaveLength(1);
  expect(waiting[0]).toMatch(/^pending: waiting: registry unreachable, a problem on this host, not in the commit; retrying: pull failed: /);
  expect(first.log).toMatch(/waiting: registry unreachable.*connection refused/);
  expect(statuses(commit).some((s) => s.startsWith('failure'))).toBe(false);
  // Nothing swapped: the host holds no file of the release.
  expect(Object.keys(await snapshotTree(installDir, { dirs: false }))).toEqual([]);

  // The same outage again: retried quietly, still no failure.
  expect((await once()).code).toBe(2);
  expect(statuses(commit).some((s) => s.startsWith('failure'))).toBe(false);

  await sleep(FAULT_TIMEOUT_SECONDS * 1000 + 500);
  const overdue = await once();
  expect(overdue.code).toBe(1);
  expect(statuses(commit).at(-1)).toMatch(
    new RegExp(`^failure: registry unreachable for over ${FAULT_TIMEOUT_SECONDS}s, a problem on this host, not in the commit: pull failed: `),
  );

  await proxy.up();
  const back = await once();
  expect(back.code).toBe(0);
  expect(statuses(commit).at(-1)).toMatch(/^success: /);
});

it('fails at once, as the commit’s fault, when the tag is not in the registry', async () => {
  await proxy.down();
  await proxy.up();
  const commit = await publish('v-not-pushed');
  const run = await once();
  expect(run.code).toBe(1);
  const after = statuses(commit);
  expect(after.some((s) => s.includes('waiting'))).toBe(false);
  expect(after.at(-1)).toMatch(/^failure: pull failed: /);
  expect(after.at(-1)).not.toContain('not in the commit');
});
