// The first contact with a running host, and hand edits after Flotilla wrote a file:
// real git over HTTP (loopback git-http-backend), real files, the real CLI for the
// host's decisions; compose is recorded (agent/adoption.docker.test.ts runs the engine).
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { remoteBranchHead } from '../renderer/core/git.js';
import { MANIFEST_PATH, serializeManifest, sha256, type RenderedFile } from '../renderer/core/manifest.js';
import { publishTenants } from '../renderer/publish/publish.js';
import { startGitServer, type GitServer } from '../test/support/git-server.js';
import { RecordingCompose } from '../test/support/recording-compose.js';
import { recordedPass } from '../test/support/reconcile-pass.js';
import { fakeSourceCommit, FIXTURE_SOURCE_REPO, tenantFixture } from '../test/support/tenant-fixture.js';
import { snapshotTree } from '../test/support/tree-snapshot.js';
import type { ServiceState } from './compose-runner.js';
import { parseAgentConfig } from './config.js';
import { runAgentCli } from './main.js';
import type { StatusUpdate } from './reconcile.js';
import { readState } from './state.js';

const HEALTHY: ServiceState[] = [{ service: 'app', container: 'acme_app_1', state: 'running', health: 'healthy', image: 'app:v1' }];

// The sizes of the seeds' preview: install.sh's default.conf and the template's.
const HOST_NGINX = `# install.sh default.conf\n${'#'.repeat(5296 - 26 - 1)}\n`;
const TEMPLATE_NGINX = (variant = '') => `# template default.conf${variant}\n${'x'.repeat(15695 - 24 - variant.length - 1)}\n`;
const NGINX = 'nginx/conf.d/default.conf';

let git: GitServer;
let work: string;
let installDir: string;
let stateDir: string;
let n = 0;

beforeAll(async () => {
  git = await startGitServer();
});
afterAll(async () => {
  await git.stop();
});
beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'flotilla-adoption-'));
  installDir = join(work, 'install');
  stateDir = join(work, 'state');
  await mkdir(installDir);
  await git.createBareRepo(`fleet-${++n}.git`);
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

const repoUrl = () => git.url(`fleet-${n}.git`);
const env = (over: Record<string, string> = {}) => ({
  FLOTILLA_REPO: repoUrl(),
  FLOTILLA_TENANT: 'acme',
  FLOTILLA_DIR: installDir,
  FLOTILLA_STATE_DIR: stateDir,
  FLOTILLA_HEALTH_TIMEOUT: '1',
  ...over,
});

interface Release {
  imageTag?: string;
  nginx?: string;
  configText?: string;
  adopt?: 'replace';
}

/** Publishes an adopted tenant whose render adds nginx/conf.d/default.conf to the fixture. */
async function publish(release: Release = {}): Promise<string> {
  const sourceCommit = fakeSourceCommit(`adoption ${n} ${Math.random()}`);
  const fixture = tenantFixture({
    tenant: 'acme',
    mode: 'adopted',
    imageTag: release.imageTag ?? 'v1',
    registry: '127.0.0.1:5000',
    repository: 'flotilla-test/app',
    sourceCommit,
    ...(release.configText ? { configText: release.configText } : {}),
  });
  const nginx = release.nginx ?? TEMPLATE_NGINX();
  const files: RenderedFile[] = [...fixture.files.filter((f) => f.path !== MANIFEST_PATH), { path: NGINX, content: nginx, mode: 0o644 }];
  const manifest = {
    ...fixture.manifest,
    files: [...fixture.manifest.files, { path: NGINX, sha256: sha256(nginx), mode: 0o644 }].sort((a, b) => (a.path < b.path ? -1 : 1)),
    ...(release.adopt ? { adopt: release.adopt } : {}),
  };
  files.push({ path: MANIFEST_PATH, content: serializeManifest(manifest), mode: 0o644 });
  await publishTenants({
    repoUrl: repoUrl(),
    workDir: join(work, 'publish.git'),
    tenants: [{ slug: 'acme', files }],
    source: { repo: FIXTURE_SOURCE_REPO, commit: sourceCommit },
  });
  return (await remoteBranchHead(repoUrl(), 'tenants/acme'))!;
}

/** Statuses recorded with their context (`drift success: ...`) where they have one. */
const withContext = (u: StatusUpdate) => `${u.context ? `${u.context} ` : ''}${u.state}: ${u.description}`;

async function pass(compose: RecordingCompose, over: Record<string, string> = {}) {
  return recordedPass({ config: parseAgentConfig(env(over)), compose }, { statusLine: withContext });
}

async function cli(argv: string[], over: Record<string, string> = {}) {
  let out = '';
  let err = '';
  const code = await runAgentCli(argv, { env: env(over), stdout: (s) => void (out += s), stderr: (s) => void (err += s), compose: new RecordingCompose({ services: HEALTHY }) });
  return { code, out, err };
}

/** What install.sh left on the host: its own nginx config, compose file and `.env`. */
async function installShHost(): Promise<void> {
  await mkdir(join(installDir, 'nginx/conf.d'), { recursive: true });
  await writeFile(join(installDir, NGINX), HOST_NGINX);
  await writeFile(join(installDir, 'docker-compose.yml'), 'services:\n  app:\n    image: install-sh/app:1.0\n');
  await writeFile(join(installDir, '.env'), 'DB_PASSWORD=host-only\n');
}

/** Every kept copy under <stateDir>/replaced, path -> content. */
async function keptCopies(): Promise<Record<string, string>> {
  const root = join(stateDir, 'replaced');
  const snap = await snapshotTree(root, { dirs: false }).catch(() => ({}));
  return Object.fromEntries(Object.entries(snap).filter(([p]) => !p.endsWith('.json')).map(([p, v]) => [p.replace(/^[^/]+\//, ''), v.replace(/^file \d+ /, '')]));
}

const snapshot = () => snapshotTree(installDir, { dirs: false });

describe('first contact with a host Flotilla did not set up', () => {
  it('refuses the first apply, names the files it did not write with their sizes, and changes nothing', async () => {
    await installShHost();
    const commit = await publish();
    const before = await snapshot();
    const compose = new RecordingCompose({ services: HEALTHY });

    const { outcome, statuses } = await pass(compose);

    expect(outcome).toEqual({ kind: 'refused', commit, description: expect.any(String), missing: [], undecided: ['docker-compose.yml', NGINX] });
    const description = (outcome as { description: string }).description;
    expect(description).toBe('refused: would replace 2 files it did not write: nginx/conf.d/default.conf (5,296 -> 15,695 B), +1 more; see `flotilla-agent plan`');
    // GitHub's limit for a status description.
    expect(description.length).toBeLessThanOrEqual(140);
    expect(statuses).toEqual(['pending: applying v1', `failure: ${description}`]);
    expect(compose.ops).toEqual([]);
    expect(await snapshot()).toEqual(before);
    expect((await readState(stateDir)).lastAttempt).toMatchObject({ outcome: 'refused', undecided: ['docker-compose.yml', NGINX] });

    // `once` takes the refusal path: exit 3.
    expect((await cli(['once'])).code).toBe(3);
    expect(await snapshot()).toEqual(before);
  });

  it('shows the files with their diffs in `flotilla-agent plan`, with the ways to decide', async () => {
    await installShHost();
    await publish();

    const { code, out } = await cli(['plan']);

    expect(code).toBe(0);
    expect(out).toContain('files Flotilla did not write (or that changed on this host since it did):');
    expect(out).toMatch(/nginx\/conf\.d\/default\.conf\s+not written by Flotilla, 5,296 -> 15,695 B: refused until decided/);
    expect(out).toContain('`flotilla-agent adopt`');
    expect(out).toContain('-# install.sh default.conf');
    expect(out).toContain('+# template default.conf');
  });

  it('applies once the fleet decides (adopt: replace), keeping the old file in the state dir with a cp line to restore it', async () => {
    await installShHost();
    await publish();
    const compose = new RecordingCompose({ services: HEALTHY });
    await pass(compose);
    const decided = await publish({ adopt: 'replace' });

    const { outcome, log } = await pass(compose);

    expect(outcome).toMatchObject({ kind: 'applied', commit: decided });
    expect(await readFile(join(installDir, NGINX), 'utf8')).toBe(TEMPLATE_NGINX());
    expect(await keptCopies()).toEqual({ [NGINX]: HOST_NGINX, 'docker-compose.yml': 'services:\n  app:\n    image: install-sh/app:1.0\n' });
    expect(log.join('\n')).toMatch(/keep: docker-compose\.yml, nginx\/conf\.d\/default\.conf copied to .*\/replaced\/\d{8}T\d{6}Z before the swap/);

    const plan = await cli(['plan']);
    const restore = plan.out.split('\n').find((l) => l.includes(`cp `) && l.endsWith(join(installDir, NGINX)))!.trim();
    expect(restore).toMatch(new RegExp(`^cp ${stateDir}/replaced/\\d{8}T\\d{6}Z/${NGINX} ${installDir}/${NGINX}$`));
    // The documented restore is a plain cp.
    const [, from, to] = restore.split(' ');
    await cp(from!, to!);
    expect(await readFile(join(installDir, NGINX), 'utf8')).toBe(HOST_NGINX);
  });

  it('applies once the host decides (flotilla-agent adopt), and refuses again a file edited after that decision', async () => {
    await installShHost();
    const commit = await publish();
    const compose = new RecordingCompose({ services: HEALTHY });
    await pass(compose);

    const adopted = await cli(['adopt']);
    expect(adopted.code).toBe(0);
    expect(adopted.out).toContain(`adopted for commit ${commit.slice(0, 12)}: the next apply replaces`);
    expect(adopted.out).toContain(`  ${NGINX} (5,296 -> 15,695 B)`);

    // Edited after the decision: that content was never agreed to.
    await writeFile(join(installDir, NGINX), `${HOST_NGINX}# one more line\n`);
    const again = await pass(compose);
    expect(again.outcome).toMatchObject({ kind: 'refused', description: expect.stringContaining(`${NGINX} (5,312 -> 15,695 B)`) });
    expect(again.outcome.kind === 'refused' && again.outcome.description).not.toContain('docker-compose.yml');
    // Retried quietly while it fails the same way.
    expect(again.statuses).toEqual(['failure: refused: would replace 1 file it did not write: nginx/conf.d/default.conf (5,312 -> 15,695 B); see `flotilla-agent plan`']);

    await writeFile(join(installDir, NGINX), HOST_NGINX);
    const applied = await pass(compose);

    expect(applied.outcome).toMatchObject({ kind: 'applied', commit });
    expect(await readFile(join(installDir, NGINX), 'utf8')).toBe(TEMPLATE_NGINX());
    expect(await keptCopies()).toMatchObject({ [NGINX]: HOST_NGINX });
  });
});

describe('hand edits after Flotilla wrote a file', () => {
  /** A host Flotilla set up (the fleet adopted it), then an operator's hotfix. */
  async function hotfixedHost(compose: RecordingCompose): Promise<string> {
    await publish({ adopt: 'replace' });
    expect((await pass(compose)).outcome.kind).toBe('applied');
    await writeFile(join(installDir, NGINX), '# hotfix\n');
    return publish({ adopt: 'replace', imageTag: 'v2' });
  }

  it('refuses the next release under FLOTILLA_DRIFT=report, naming the file; the hotfix stays', async () => {
    const compose = new RecordingCompose({ services: HEALTHY });
    await hotfixedHost(compose);
    const ups = compose.ops.length;

    const { outcome, statuses } = await pass(compose);

    const description = 'refused: 1 local change to managed files: nginx/conf.d/default.conf; see `flotilla-agent plan`';
    expect(outcome).toMatchObject({ kind: 'refused', description });
    expect(statuses).toEqual(['pending: applying v2', `failure: ${description}`]);
    expect(await readFile(join(installDir, NGINX), 'utf8')).toBe('# hotfix\n');
    expect(compose.ops.length).toBe(ups);
  });

  it('keeps an accepted hotfix and reports it, and refuses again once a release changes its template', async () => {
    const compose = new RecordingCompose({ services: HEALTHY });
    const v2 = await hotfixedHost(compose);
    await pass(compose);

    const accepted = await cli(['accept', NGINX]);
    expect(accepted.code).toBe(0);
    const { outcome, statuses } = await pass(compose);

    expect(outcome).toMatchObject({ kind: 'applied', commit: v2 });
    expect(await readFile(join(installDir, NGINX), 'utf8')).toBe('# hotfix\n');
    expect(statuses).toContain('drift success: kept local changes (accepted on the host): nginx/conf.d/default.conf');
    // Staged with the hotfix, as up sees it.
    expect(compose.calls.find((c) => c.op === 'up')).toBeDefined();
    expect((await pass(compose)).outcome).toMatchObject({ kind: 'noop', commit: v2 });

    await publish({ adopt: 'replace', imageTag: 'v3', nginx: TEMPLATE_NGINX(' v3') });
    const changed = await pass(compose);
    expect(changed.outcome).toMatchObject({ kind: 'refused', description: 'refused: 1 local change to managed files: nginx/conf.d/default.conf; see `flotilla-agent plan`' });
    expect((await cli(['plan'])).out).toContain('accepted on this host, but this release changes the template for it: decide again');
    expect(await readFile(join(installDir, NGINX), 'utf8')).toBe('# hotfix\n');

    // Deciding again on the host for the new template: adopt takes it, keeping the hotfix's copy.
    expect((await cli(['adopt'])).code).toBe(0);
    expect((await pass(compose)).outcome).toMatchObject({ kind: 'applied' });
    expect(await readFile(join(installDir, NGINX), 'utf8')).toBe(TEMPLATE_NGINX(' v3'));
    expect(await keptCopies()).toMatchObject({ [NGINX]: '# hotfix\n' });
  });

  it('replaces a hand edit under FLOTILLA_DRIFT=heal and keeps what it replaced', async () => {
    const compose = new RecordingCompose({ services: HEALTHY });
    await hotfixedHost(compose);

    const { outcome } = await pass(compose, { FLOTILLA_DRIFT: 'heal' });

    expect(outcome).toMatchObject({ kind: 'applied' });
    expect(await readFile(join(installDir, NGINX), 'utf8')).toBe(TEMPLATE_NGINX());
    expect(await keptCopies()).toMatchObject({ [NGINX]: '# hotfix\n' });
    const sets = (await readdir(join(stateDir, 'replaced'))).filter((f) => f.endsWith('.json'));
    const record = JSON.parse(await readFile(join(stateDir, 'replaced', sets.at(-1)!), 'utf8')) as { files: { path: string; kind: string; by: string }[] };
    expect(record.files).toEqual([expect.objectContaining({ path: NGINX, kind: 'local-change', by: 'heal' })]);
  });

  it('posts drift on an applied commit as <context>/drift, once per change, and clears it when the file is put back', async () => {
    const compose = new RecordingCompose({ services: HEALTHY });
    await publish({ adopt: 'replace' });
    await pass(compose);
    await writeFile(join(installDir, NGINX), '# hotfix\n');

    const first = await pass(compose);
    const second = await pass(compose);
    await writeFile(join(installDir, NGINX), TEMPLATE_NGINX());
    const cleared = await pass(compose);

    expect(first.outcome).toMatchObject({ kind: 'noop', drift: [{ path: NGINX, state: 'modified' }] });
    expect(first.statuses).toEqual(['drift failure: 1 local change: nginx/conf.d/default.conf (modified); see `flotilla-agent plan`']);
    expect(second.statuses).toEqual([]);
    expect(cleared.statuses).toEqual(['drift success: no local changes']);
  });
});
