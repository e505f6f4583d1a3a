// Compose's own variables in the env patch. The install dir's `.env` is read by the agent's
// compose and by any compose a person runs there by hand: a branch that sets
// COMPOSE_PROJECT_NAME (or COMPOSE_FILE, DOCKER_HOST…) there points that hand-run compose at
// another project or engine. Such keys are refused by `flotilla check` and by the agent,
// unless fleet.yaml declares them on purpose (`defaults.composeSettings`, e.g. COMPOSE_PROFILES).
import { access, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../renderer/main.js';
import { publishTenants } from '../../renderer/publish/publish.js';
import { MANIFEST_PATH, parseManifest, serializeManifest, type Manifest } from '../../renderer/core/manifest.js';
import { runAgentCli } from '../../agent/main.js';
import type { ServiceState } from '../../agent/compose-runner.js';
import { startGitServer, type GitServer } from '../support/git-server.js';
import { RecordingCompose } from '../support/recording-compose.js';
import { fakeSourceCommit, FIXTURE_SOURCE_REPO, tenantFixture } from '../support/tenant-fixture.js';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'flotilla-compose-settings-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

const FLEET = 'defaults:\n  imageTag: v1\n  registry: 127.0.0.1:5000/flotilla\n  images:\n    api: api\n  domainSuffix: example.org\n';

/** A fleet repo on disk; returns `flotilla check --root` on it. */
async function check(name: string, fleetYaml: string, envHbs: string) {
  const root = join(work, name);
  await mkdir(join(root, 'fleet/tenants'), { recursive: true });
  await mkdir(join(root, 'templates'), { recursive: true });
  await writeFile(join(root, 'fleet/fleet.yaml'), fleetYaml);
  await writeFile(join(root, 'fleet/tenants/linda.yaml'), 'domain: linda.example.org\nmode: managed\n');
  await writeFile(join(root, 'templates/docker-compose.yml.hbs'), 'services:\n  api:\n    image: {{images.api}}:${IMAGE_TAG}\n');
  await writeFile(join(root, 'templates/env.hbs'), envHbs);
  let out = '';
  let err = '';
  const code = await runCli(['--root', root, 'check'], { stdout: (s) => void (out += s), stderr: (s) => void (err += s), cwd: root, env: {} });
  return { code, out, err, root };
}

describe('flotilla check', () => {
  it.each([
    ['COMPOSE_PROJECT_NAME', 'other'],
    ['COMPOSE_FILE', 'docker-compose.yml:evil.yml'],
    ['DOCKER_HOST', 'tcp://10.0.0.9:2375'],
    ['COMPOSE_PROFILES', 'monitoring'],
  ])('refuses %s in the env patch when the fleet does not declare it', async (key, value) => {
    const run = await check(`undeclared-${key}`, FLEET, `IMAGE_TAG={{imageTag}}\n${key}=${value}\n`);
    expect(run.err).toContain(
      `templates/env.hbs (tenant linda): output line 2: ${key} is compose's own setting (COMPOSE_* / DOCKER_*); declare it in fleet/fleet.yaml defaults.composeSettings to set it on purpose`,
    );
    expect(run.code).toBe(1);
  });

  it('accepts COMPOSE_PROFILES declared in defaults.composeSettings, and carries the declaration in the manifest', async () => {
    const fleet = `${FLEET}  composeSettings: [COMPOSE_PROFILES]\n`;
    const run = await check('declared', fleet, 'IMAGE_TAG={{imageTag}}\nCOMPOSE_PROFILES=monitoring\n');
    expect(run.err).toBe('');
    expect(run.code).toBe(0);
    const out = join(work, 'declared-out');
    const render = await runCli(['--root', run.root, 'render', '--out', out], { stdout: () => undefined, stderr: () => undefined, cwd: run.root, env: {} });
    expect(render).toBe(0);
    const manifest = parseManifest(await readFile(join(out, 'linda', MANIFEST_PATH), 'utf8'));
    expect(manifest.composeSettings).toEqual(['COMPOSE_PROFILES']);
    expect(manifest.envPatch.COMPOSE_PROFILES).toBe('monitoring');
    // Declaring one name lets through that name only.
    const other = await check('declared-other', fleet, 'IMAGE_TAG={{imageTag}}\nCOMPOSE_PROJECT_NAME=x\n');
    expect(other.err).toContain('output line 2: COMPOSE_PROJECT_NAME is compose\'s own setting');
    expect(other.code).toBe(1);
  });

  it('refuses a composeSettings entry that is not a COMPOSE_* / DOCKER_* name', async () => {
    const run = await check('not-compose', `${FLEET}  composeSettings: [PATH]\n`, 'IMAGE_TAG={{imageTag}}\n');
    expect(run.err).toBe('flotilla: fleet/fleet.yaml:7: defaults.composeSettings[0]: "PATH" must match ^(COMPOSE|DOCKER)_[A-Za-z0-9_]*$\n');
    expect(run.code).toBe(1);
  });
});

describe('the agent', () => {
  const HEALTHY: ServiceState[] = [{ service: 'app', container: 'acme_app_1', state: 'running', health: 'healthy', image: 'app:v1' }];
  let git: GitServer;
  beforeAll(async () => {
    git = await startGitServer();
    await git.createBareRepo('fleet.git');
  });
  afterAll(async () => {
    await git?.stop();
  });

  /** Publishes a branch the way an older or tampered publisher could: the manifest as given. */
  async function publish(label: string, envPatch: Record<string, string>, composeSettings?: string[]) {
    const sourceCommit = fakeSourceCommit(label);
    const fixture = tenantFixture({ tenant: 'acme', imageTag: 'v1', registry: '127.0.0.1:5000', repository: 'flotilla-test/app', sourceCommit, envPatch });
    const manifest: Manifest = { ...fixture.manifest, ...(composeSettings ? { composeSettings } : {}) };
    const files = fixture.files.map((f) => (f.path === MANIFEST_PATH ? { ...f, content: serializeManifest(manifest) } : f));
    await publishTenants({
      repoUrl: git.url('fleet.git'),
      workDir: join(work, 'publish.git'),
      tenants: [{ slug: 'acme', files }],
      source: { repo: FIXTURE_SOURCE_REPO, commit: sourceCommit },
    });
  }

  it('refuses a branch whose env patch sets COMPOSE_PROJECT_NAME undeclared: nothing written, compose never run; applies a declared COMPOSE_PROFILES', async () => {
    const installDir = join(work, 'install');
    await mkdir(installDir, { recursive: true });
    const env = { FLOTILLA_REPO: git.url('fleet.git'), FLOTILLA_TENANT: 'acme', FLOTILLA_DIR: installDir, FLOTILLA_STATE_DIR: join(work, 'state'), FLOTILLA_HEALTH_TIMEOUT: '1' };
    const once = async (compose: RecordingCompose) => {
      let err = '';
      const code = await runAgentCli(['once'], { env, stdout: () => undefined, stderr: (s) => void (err += s), compose });
      return { code, err };
    };

    await publish('undeclared', { COMPOSE_PROJECT_NAME: 'other' });
    const refusedCompose = new RecordingCompose({ services: HEALTHY });
    const refused = await once(refusedCompose);
    expect(refused.err).toContain('envPatch key COMPOSE_PROJECT_NAME is compose\'s own setting and the fleet does not declare it (fleet.yaml defaults.composeSettings)');
    expect(refused.code).toBe(3); // a refusal of the commit, as every refusal
    expect(refusedCompose.calls).toEqual([]);
    await expect(access(join(installDir, '.env'))).rejects.toThrow(/ENOENT/);
    await expect(access(join(installDir, 'docker-compose.yml'))).rejects.toThrow(/ENOENT/);

    await publish('declared', { COMPOSE_PROFILES: 'monitoring' }, ['COMPOSE_PROFILES']);
    const applied = await once(new RecordingCompose({ services: HEALTHY }));
    expect(applied.err).toMatch(/outcome: applied/);
    expect(applied.code).toBe(0);
    expect(await readFile(join(installDir, '.env'), 'utf8')).toContain('COMPOSE_PROFILES=monitoring');

    // A host that applied such a key before the rule existed (its state file says so) is not stuck:
    // the rule is for what a branch asks now, and the next clean release applies.
    const stateFile = join(work, 'state', 'state.json');
    const state = JSON.parse(await readFile(stateFile, 'utf8')) as { lastApplied: { manifest: Manifest } };
    state.lastApplied.manifest.envPatch.COMPOSE_PROJECT_NAME = 'other';
    delete state.lastApplied.manifest.composeSettings;
    await writeFile(stateFile, JSON.stringify(state));
    await publish('clean', { COMPOSE_PROFILES: 'monitoring', LOG_LEVEL: 'debug' }, ['COMPOSE_PROFILES']);
    const moved = await once(new RecordingCompose({ services: HEALTHY }));
    expect(moved.err).toMatch(/outcome: applied/);
    expect(moved.code).toBe(0);
    expect(await readFile(join(installDir, '.env'), 'utf8')).toContain('LOG_LEVEL=debug');
  });
});
