// The apply's health verdict on the real engine (issue 13): one-shot services, a
// service_completed_successfully dependency, a profile and a service scaled to 0, run
// by the host's compose (Debian's docker-compose 1.29) against the private dockerd of
// the test run (test/support/global-setup-docker.ts). The verdict is what the agent's
// apply reads: `waitHealthy` fed with the runner's `expectedServices`, as reconcile does.

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { scanComposeText } from '../renderer/core/compose-vars.js';
import { ComposeStepError } from '../renderer/core/errors.js';
import { remoteBranchHead } from '../renderer/core/git.js';
import { MANIFEST_PATH, serializeManifest, sha256, type Manifest, type RenderedFile } from '../renderer/core/manifest.js';
import { publishTenants } from '../renderer/publish/publish.js';
import { startGitServer, type GitServer } from '../test/support/git-server.js';
import { docker } from '../test/support/images.js';
import { fakeSourceCommit, FIXTURE_SOURCE_REPO } from '../test/support/tenant-fixture.js';
import type { ComposeRunner, ComposeTarget, ServiceState } from './compose-runner.js';
import { createComposeRunner, waitHealthy } from './compose.js';
import { parseAgentConfig } from './config.js';
import { reconcileOnce } from './reconcile.js';

const ctx = inject('docker');
const client = { host: ctx.host, dockerConfig: ctx.dockerConfig };
const image = `${ctx.testImage.repository}:v1`;

/** Every service keeps the test-stack rules: no network, an init process. */
function service(lines: string[]): string[] {
  return [`    image: ${image}`, '    init: true', '    network_mode: none', ...lines];
}

// `init` and `migrate` are one-shots whose exit codes come from .env; `app` starts only
// after `migrate` completed; `debug` (profile) and `spare`/`standby` (scaled to 0) are
// not part of the stack unless the profile is active.
const COMPOSE = [
  'services:',
  '  init:',
  ...service(['    restart: "no"', '    command: ["sh", "-c", "exit ${INIT_EXIT:-0}"]']),
  '  migrate:',
  ...service(['    restart: "no"', '    command: ["sh", "-c", "exit ${MIGRATE_EXIT:-0}"]']),
  '  app:',
  ...service([
    '    command: ["sleep", "3600"]',
    '    depends_on:',
    '      migrate:',
    '        condition: service_completed_successfully',
  ]),
  '  debug:',
  ...service(['    profiles: ["debug"]', '    command: ["sleep", "3600"]']),
  '  spare:',
  ...service(['    scale: 0', '    command: ["sleep", "3600"]']),
  '  standby:',
  ...service(['    deploy:', '      replicas: 0', '    command: ["sleep", "3600"]']),
  '',
].join('\n');

const runner = createComposeRunner({ command: ['docker-compose'], dockerHost: ctx.host, env: { ...process.env, DOCKER_CONFIG: ctx.dockerConfig } });

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A stack folder with the compose file above and the given .env, brought down and removed after the test. */
async function stack(env: string): Promise<ComposeTarget> {
  const dir = await mkdtemp(join(process.env.FLOTILLA_TEST_RUN_DIR ?? tmpdir(), 'health-'));
  await writeFile(join(dir, 'docker-compose.yml'), COMPOSE);
  await writeFile(join(dir, '.env'), env);
  const target = { dir, project: `flotilla-h${Math.random().toString(36).slice(2, 8)}` };
  cleanups.push(async () => {
    await runner.down(target).catch(() => {});
    await rm(dir, { recursive: true, force: true });
  });
  return target;
}

/** The apply's verdict, as reconcile asks for it after `up`. */
async function verdict(target: ComposeTarget, r: ComposeRunner = runner) {
  return waitHealthy(r, target, { timeoutMs: 30_000, pollMs: 250, expectedServices: await r.expectedServices?.(target) });
}

/**
 * Waits until a one-shot nothing depends on has exited: `up` returns once it started,
 * and a verdict taken while it still runs would count it as running.
 */
async function untilExited(target: ComposeTarget, name: string): Promise<ServiceState> {
  for (let i = 0; i < 100; i++) {
    const found = (await runner.services(target)).find((s) => s.service === name);
    if (found?.state === 'exited') return found;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${name} did not exit within 10 s`);
}

const serviceNames = (states: ServiceState[]) => [...new Set(states.map((s) => s.service))].sort();

describe('health verdict on the real engine', () => {
  it('passes a stack whose init and migration one-shots exited 0, without the inactive profile and the services scaled to 0', async () => {
    const target = await stack('');
    await runner.config(target);
    await runner.pull(target);
    await runner.up(target);
    await untilExited(target, 'init');

    expect(await runner.expectedServices!(target)).toEqual(['app', 'init', 'migrate']);
    const health = await verdict(target);

    expect(health.detail).toBe('1/1 healthy, 2 done (init, migrate)');
    expect(health.ok).toBe(true);
    // What compose made of the file agrees with what the verdict expected of it.
    expect(serviceNames(health.services)).toEqual(['app', 'init', 'migrate']);
    expect(health.services.find((s) => s.service === 'migrate')).toMatchObject({ state: 'exited', exitCode: 0, restartPolicy: 'no' });
  });

  it('expects the profile .env activates, as compose starts it', async () => {
    const target = await stack('COMPOSE_PROFILES=debug\n');
    await runner.up(target);
    await untilExited(target, 'init');

    expect(await runner.expectedServices!(target)).toEqual(['app', 'debug', 'init', 'migrate']);
    const health = await verdict(target);
    expect(health.detail).toBe('2/2 healthy, 2 done (init, migrate)');
    expect(serviceNames(health.services)).toEqual(['app', 'debug', 'init', 'migrate']);
  });

  it('fails when the migration exits 1, naming migrate and its exit code', async () => {
    const target = await stack('MIGRATE_EXIT=1\n');

    // Compose itself refuses to start app; its own message names only a container id.
    const error = await runner.up(target).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(ComposeStepError);
    expect((error as ComposeStepError).step).toBe('up');
    expect((error as ComposeStepError).outputTail).toMatch(/migrate exited \(1\)$/);

    const health = await verdict(target);
    expect(health.ok).toBe(false);
    expect(health.detail).toContain('migrate exited (1)');
  });

  it('fails when a one-shot nothing waits for exits non-zero, naming it and its exit code', async () => {
    const target = await stack('INIT_EXIT=3\n');
    await runner.up(target);
    expect(await untilExited(target, 'init')).toMatchObject({ exitCode: 3 });

    const health = await verdict(target);
    expect(health.ok).toBe(false);
    expect(health.detail).toBe('1/2 healthy, 1 done (migrate); init exited (3)');
  });

  it('fails when a service the file says should run has no container, naming it', async () => {
    const target = await stack('');
    await runner.up(target);
    await untilExited(target, 'init');
    const app = (await runner.services(target)).find((s) => s.service === 'app')!;
    await docker(['rm', '--force', app.container], client);

    const health = await verdict(target);
    expect(health.ok).toBe(false);
    expect(health.detail).toBe('0/1 healthy, 2 done (init, migrate); app has no container');
  });
});

describe('an apply of a stack with one-shots, on the real engine', () => {
  const TENANT = 'oneshot';
  let git: GitServer;
  let work: string;
  let repoUrl: string;
  let release = 0;

  beforeAll(async () => {
    git = await startGitServer();
    await git.createBareRepo('fleet.git');
    repoUrl = git.url('fleet.git');
    work = await mkdtemp(join(process.env.FLOTILLA_TEST_RUN_DIR ?? tmpdir(), 'health-apply-'));
    await mkdir(join(work, 'install'));
  });

  afterAll(async () => {
    await runner.down({ dir: join(work, 'install'), project: TENANT }).catch(() => {});
    await git?.stop();
    await rm(work, { recursive: true, force: true });
  });

  /** Publishes the stack above to tenants/oneshot with these env-patch values, as the publish workflow does. */
  async function publish(envPatch: Record<string, string>): Promise<string> {
    const sourceCommit = fakeSourceCommit(`oneshot release ${++release}`);
    const files: RenderedFile[] = [{ path: 'docker-compose.yml', content: COMPOSE, mode: 0o644 }];
    const manifest: Manifest = {
      schemaVersion: 1,
      tenant: TENANT,
      mode: 'managed',
      imageTag: `r${release}`,
      source: { repo: FIXTURE_SOURCE_REPO, commit: sourceCommit },
      files: files.map((f) => ({ path: f.path, sha256: sha256(f.content), mode: f.mode })),
      envPatch,
      requiredVariables: scanComposeText(COMPOSE, 'docker-compose.yml').required,
      secrets: [],
    };
    files.push({ path: MANIFEST_PATH, content: serializeManifest(manifest), mode: 0o644 });
    await publishTenants({
      repoUrl,
      workDir: join(work, 'publish.git'),
      tenants: [{ slug: TENANT, files }],
      source: { repo: FIXTURE_SOURCE_REPO, commit: sourceCommit },
    });
    return (await remoteBranchHead(repoUrl, `tenants/${TENANT}`))!;
  }

  async function once() {
    const statuses: string[] = [];
    const outcome = await reconcileOnce({
      config: parseAgentConfig({
        FLOTILLA_REPO: repoUrl,
        FLOTILLA_TENANT: TENANT,
        FLOTILLA_DIR: join(work, 'install'),
        FLOTILLA_STATE_DIR: join(work, 'state'),
        FLOTILLA_HEALTH_TIMEOUT: '30',
        FLOTILLA_COMPOSE: 'docker-compose',
      }),
      compose: runner,
      report: async (u) => void statuses.push(`${u.state}: ${u.description}`),
      log: () => {},
      healthPollMs: 250,
    });
    return { outcome, statuses };
  }

  it('applies the release instead of rolling it back: the one-shots are done, the profile and scale-0 services not missed', async () => {
    const commit = await publish({ MIGRATE_EXIT: '0' });

    const { outcome, statuses } = await once();

    expect(outcome).toEqual({ kind: 'applied', commit, description: 'r1 up, 1/1 healthy, 2 done (init, migrate)' });
    expect(statuses.at(-1)).toBe('success: r1 up, 1/1 healthy, 2 done (init, migrate)');
  });

  it('fails the next release whose migration exits 1, naming migrate, and brings the previous stack back', async () => {
    const commit = await publish({ MIGRATE_EXIT: '1' });

    const { outcome, statuses } = await once();

    expect(outcome).toMatchObject({ kind: 'failed', commit });
    expect(statuses.at(-1)).toMatch(/^failure: up failed: migrate exited \(1\); rolled back, previous stack 1\/1 healthy, 2 done \(init, migrate\)$/);
  });
});
