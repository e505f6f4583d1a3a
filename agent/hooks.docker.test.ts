// Hooks on the real engine: a database-like service (a busybox container whose named
// volume holds a data file) through three releases. The pre-swap hook dumps the data
// through `compose exec -T` into its output folder, the post-up hook checks the
// running version, and a failing post-up hook rolls back to the old image with the
// data intact. Real dockerd, registry, docker-compose and git over HTTP.
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { scanComposeText } from '../renderer/core/compose-vars.js';
import { remoteBranchHead } from '../renderer/core/git.js';
import { MANIFEST_PATH, serializeManifest, sha256, type Manifest, type ManifestHooks } from '../renderer/core/manifest.js';
import { publishTenants } from '../renderer/publish/publish.js';
import { startGitServer, type GitServer } from '../test/support/git-server.js';
import { docker, pushTestImage } from '../test/support/images.js';
import { fakeSourceCommit, FIXTURE_SOURCE_REPO } from '../test/support/tenant-fixture.js';
import { createComposeRunner } from './compose.js';
import { parseAgentConfig, type AgentConfig } from './config.js';
import { hookOutputDir, hooksDir } from './hooks.js';
import { reconcileOnce, type ReconcileOutcome } from './reconcile.js';
import { readState } from './state.js';

const ctx = inject('docker');
const dockerClient = { host: ctx.host, dockerConfig: ctx.dockerConfig };
const TENANT = 'hooksdb';
const REPOSITORY = 'flotilla-test/db';
const TOKENS = { FLOTILLA_GIT_TOKEN: 'git-token-5ecret', FLOTILLA_GITHUB_TOKEN: 'gh-token-5ecret' };

// The "database": writes its data file once, on the first start of an empty volume.
const COMPOSE = `services:
  db:
    image: \${REGISTRY}/${REPOSITORY}:\${IMAGE_TAG:-v1}
    init: true
    network_mode: none
    command: ["sh", "-c", "test -f /data/db || echo 'customer rows' > /data/db; exec sleep 3600"]
    volumes:
      - data:/data
    healthcheck:
      test: ["CMD", "test", "-f", "/data/db"]
      interval: 1s
      timeout: 2s
      retries: 3
volumes:
  data: {}
`;

const DUMP = { name: 'dump', keep: 1, run: ['sh', '-c', 'compose exec -T db cat /data/db > "$FLOTILLA_HOOK_OUTPUT_DIR/db-$(date +%s%N).dump"'] };
const checkVersion = (tag: string) => ({ name: 'check', run: ['compose', 'exec', '-T', 'db', 'sh', '-c', `test "$(cat /VERSION)" = ${tag}`] });

let git: GitServer;
let work: string;
let repoUrl: string;
let installDir: string;
let stateDir: string;
let releases = 0;
const compose = createComposeRunner({ command: ['docker-compose'], dockerHost: ctx.host, env: { ...process.env, DOCKER_CONFIG: ctx.dockerConfig } });

beforeAll(async () => {
  work = await mkdtemp(join(process.env.FLOTILLA_TEST_RUN_DIR ?? tmpdir(), 'hooks-e2e-'));
  installDir = join(work, 'install');
  stateDir = join(work, 'state');
  await mkdir(installDir);
  git = await startGitServer();
  await git.createBareRepo('fleet.git');
  repoUrl = git.url('fleet.git');
  await pushTestImage(ctx.registry, REPOSITORY, ['v1', 'v2', 'v3', 'v4'], dockerClient);
});

afterAll(async () => {
  await compose.down({ dir: installDir, project: TENANT }).catch(() => undefined);
  await docker(['volume', 'rm', `${TENANT}_data`], dockerClient).catch(() => undefined);
  await git?.stop();
  await rm(work, { recursive: true, force: true });
});

async function publish(imageTag: string, hooks: ManifestHooks): Promise<string> {
  const sourceCommit = fakeSourceCommit(`hooks release ${++releases}`);
  const manifest: Manifest = {
    schemaVersion: 1,
    tenant: TENANT,
    mode: 'managed',
    imageTag,
    source: { repo: FIXTURE_SOURCE_REPO, commit: sourceCommit },
    files: [{ path: 'docker-compose.yml', sha256: sha256(COMPOSE), mode: 0o644 }],
    envPatch: { REGISTRY: ctx.registry, IMAGE_TAG: imageTag },
    requiredVariables: scanComposeText(COMPOSE, 'docker-compose.yml').required,
    secrets: [],
    hooks,
  };
  const files = [
    { path: 'docker-compose.yml', content: COMPOSE, mode: 0o644 },
    { path: MANIFEST_PATH, content: serializeManifest(manifest), mode: 0o644 },
  ];
  await publishTenants({ repoUrl, workDir: join(work, 'publish.git'), tenants: [{ slug: TENANT, files }], source: { repo: FIXTURE_SOURCE_REPO, commit: sourceCommit } });
  return (await remoteBranchHead(repoUrl, `tenants/${TENANT}`))!;
}

function config(): AgentConfig {
  return parseAgentConfig({
    FLOTILLA_REPO: repoUrl,
    FLOTILLA_TENANT: TENANT,
    FLOTILLA_DIR: installDir,
    FLOTILLA_STATE_DIR: stateDir,
    FLOTILLA_COMPOSE: 'docker-compose',
    FLOTILLA_HEALTH_TIMEOUT: '30',
    ...TOKENS,
  });
}

async function once(): Promise<{ outcome: ReconcileOutcome; statuses: string[]; log: string[] }> {
  const statuses: string[] = [];
  const log: string[] = [];
  const outcome = await reconcileOnce({
    config: config(),
    compose,
    report: async (u) => void statuses.push(`${u.state}: ${u.description}`),
    log: (line) => void log.push(line),
    healthPollMs: 250,
    hookEnv: { PATH: process.env.PATH, HOME: process.env.HOME, DOCKER_HOST: ctx.host, DOCKER_CONFIG: ctx.dockerConfig, ...TOKENS },
  });
  return { outcome, statuses, log };
}

async function db(): Promise<{ id: string; version: string; data: string }> {
  const ids = (await docker(['ps', '--quiet', '--filter', `label=com.docker.compose.project=${TENANT}`, '--filter', 'label=com.docker.compose.service=db'], dockerClient))
    .split(/\s+/)
    .filter(Boolean);
  expect(ids).toHaveLength(1);
  const id = ids[0]!;
  return {
    id,
    version: (await docker(['exec', id, 'cat', '/VERSION'], dockerClient)).trim(),
    data: await docker(['exec', id, 'cat', '/data/db'], dockerClient),
  };
}

async function dumps(): Promise<Record<string, string>> {
  const dir = hookOutputDir(stateDir, 'dump');
  const names = (await readdir(dir).catch(() => [] as string[])).sort();
  return Object.fromEntries(await Promise.all(names.map(async (n) => [n, await readFile(join(dir, n), 'utf8')] as const)));
}

describe('hooks around a database-like service', () => {
  it('first apply: no old stack, so no dump; the post-up check passes on v1', async () => {
    await publish('v1', { preSwap: [DUMP], postUp: [checkVersion('v1')] });
    const { outcome, log } = await once();
    expect(outcome.kind).toBe('applied');
    expect(log).toContain('pre-swap hooks: skipped dump: no stack installed yet, nothing to run them against');
    expect(log).toContain('post-up hook check: running');
    expect(await db()).toMatchObject({ version: 'v1', data: 'customer rows\n' });
    expect(await dumps()).toEqual({});
  });

  it('v2: dumps the data from the running v1 stack before the swap, then checks v2', async () => {
    const before = await db();
    await docker(['exec', before.id, 'sh', '-c', 'echo "order 1" >> /data/db'], dockerClient);
    await publish('v2', { preSwap: [DUMP], postUp: [checkVersion('v2')] });
    const { outcome } = await once();
    expect(outcome.kind).toBe('applied');
    expect(await db()).toMatchObject({ version: 'v2', data: 'customer rows\norder 1\n' });
    expect(Object.values(await dumps())).toEqual(['customer rows\norder 1\n']);
  });

  it('v3: a failing post-up hook rolls back to the v2 image with the data intact; the dump rotated to keep 1', async () => {
    const before = await db();
    await docker(['exec', before.id, 'sh', '-c', 'echo "order 2" >> /data/db'], dockerClient);
    const firstDump = Object.keys(await dumps());
    const head = await publish('v3', {
      preSwap: [DUMP],
      postUp: [{ name: 'migrate', run: ['compose', 'exec', '-T', 'db', 'sh', '-c', 'echo "migration 0042: relation exists" >&2; exit 1'] }],
    });
    const { outcome, statuses } = await once();
    expect(outcome).toMatchObject({ kind: 'failed', commit: head, step: 'post-up hooks' });
    const description = (outcome as { description: string }).description;
    expect(description).toBe('post-up hook migrate failed: migration 0042: relation exists; rolled back, previous stack 1/1 healthy');
    expect(statuses.at(-1)).toBe(`failure: ${description}`);
    expect(await db()).toMatchObject({ version: 'v2', data: 'customer rows\norder 1\norder 2\n' });
    expect((await readState(stateDir)).lastApplied?.manifest.imageTag).toBe('v2');
    const now = await dumps();
    expect(Object.values(now)).toEqual(['customer rows\norder 1\norder 2\n']);
    expect(Object.keys(now)).not.toEqual(firstDump);
    // Every run left its log with the journal; none holds an agent token.
    const runs = await readdir(join(hooksDir(stateDir), 'migrate', 'runs'));
    expect(runs).toHaveLength(1);
    const text = await readFile(join(hooksDir(stateDir), 'migrate', 'runs', runs[0]!), 'utf8');
    expect(text).toContain('migration 0042: relation exists');
    for (const name of ['dump', 'check', 'migrate']) {
      for (const file of await readdir(join(hooksDir(stateDir), name, 'runs'))) {
        const log = await readFile(join(hooksDir(stateDir), name, 'runs', file), 'utf8');
        for (const token of Object.values(TOKENS)) expect(log).not.toContain(token);
      }
    }
  });

  it('v4: a dump failing every poll (the database in trouble) never rotates out the last good dump, and leaves no partial one', async () => {
    const good = await dumps();
    expect(Object.keys(good)).toHaveLength(1);
    // Writes part of a dump, then fails: the pipe's last command is what sh reports.
    const failing = {
      ...DUMP,
      run: ['sh', '-c', 'compose exec -T db sh -c "head -c 8 /data/db; echo pg_dump: connection lost >&2; exit 1" > "$FLOTILLA_HOOK_OUTPUT_DIR/db-$(date +%s%N).dump"'],
    };
    await publish('v4', { preSwap: [failing], postUp: [checkVersion('v4')] });
    for (let poll = 1; poll <= 3; poll++) {
      const { outcome } = await once();
      expect(outcome).toMatchObject({ kind: 'refused', description: 'refused: pre-swap hook dump failed: pg_dump: connection lost' });
      expect(await dumps()).toEqual(good);
    }
    await expect(readdir(join(hooksDir(stateDir), 'dump', 'incoming'))).rejects.toThrow(/ENOENT/);
    expect(await db()).toMatchObject({ version: 'v2', data: 'customer rows\norder 1\norder 2\n' });
  });
});
