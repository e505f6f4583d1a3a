// Services Flotilla did not deploy, on the real engine (the run's private dockerd and
// loopback registry, Debian's docker-compose 1.29, git over HTTP): an operator's
// hand-added `sidecar` in the tenant's compose project survives an apply, while a
// service Flotilla deployed and a later render drops is removed.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { remoteBranchHead } from '../renderer/core/git.js';
import { MANIFEST_PATH, serializeManifest, sha256, type Manifest, type RenderedFile } from '../renderer/core/manifest.js';
import { publishTenants } from '../renderer/publish/publish.js';
import { agentSettings } from '../test/support/agent-settings.js';
import { startGitServer, type GitServer } from '../test/support/git-server.js';
import { docker } from '../test/support/images.js';
import { fakeSourceCommit, FIXTURE_SOURCE_REPO } from '../test/support/tenant-fixture.js';
import { createComposeRunner } from './compose.js';
import { runAgentCli } from './main.js';
import { readState } from './state.js';

const ctx = inject('docker');
const dockerClient = { host: ctx.host, dockerConfig: ctx.dockerConfig };
const PROJECT = 'orbit';

let git: GitServer;
let work: string;
let installDir: string;
let stateDir: string;
let sidecarDir: string;

/** A service that sleeps; `crashing-*` ones exit 1 at once, so the release fails its health check. */
function service(name: string): string[] {
  return [
    `  ${name}:`,
    `    image: ${ctx.registry}/flotilla-test/app:v1`,
    '    init: true',
    '    network_mode: none',
    name.startsWith('crashing') ? '    command: ["sh", "-c", "exit 1"]' : '    command: ["sleep", "3600"]',
  ];
}

function composeOf(services: string[]): string {
  return ['services:', ...services.flatMap(service), ''].join('\n');
}

let releases = 0;
/** Publishes a render whose compose file declares exactly these services. */
async function publish(services: string[]): Promise<string> {
  const sourceCommit = fakeSourceCommit(`orphans ${++releases}`);
  const compose = composeOf(services);
  const files: RenderedFile[] = [{ path: 'docker-compose.yml', content: compose, mode: 0o644 }];
  const manifest: Manifest = {
    schemaVersion: 1,
    tenant: PROJECT,
    mode: 'managed',
    imageTag: 'v1',
    source: { repo: FIXTURE_SOURCE_REPO, commit: sourceCommit },
    files: [{ path: 'docker-compose.yml', sha256: sha256(compose), mode: 0o644 }],
    envPatch: {},
    requiredVariables: [],
    secrets: [],
  };
  files.push({ path: MANIFEST_PATH, content: serializeManifest(manifest), mode: 0o644 });
  await publishTenants({
    repoUrl: git.url('fleet.git'),
    workDir: join(work, 'publish.git'),
    tenants: [{ slug: PROJECT, files }],
    source: { repo: FIXTURE_SOURCE_REPO, commit: sourceCommit },
  });
  return (await remoteBranchHead(git.url('fleet.git'), `tenants/${PROJECT}`))!;
}

async function once(): Promise<{ code: number; log: string }> {
  let log = '';
  const code = await runAgentCli(['once'], {
    env: agentSettings(ctx, { repoUrl: git.url('fleet.git'), tenant: PROJECT, installDir, stateDir }),
    stdout: (s) => void (log += s),
    stderr: (s) => void (log += s),
  });
  return { code, log };
}

/** Containers of the project (running ones, or all with `all`), by compose service label. */
async function runningServices(all = false): Promise<string[]> {
  const out = await docker(
    ['ps', ...(all ? ['--all'] : []), '--filter', `label=com.docker.compose.project=${PROJECT}`, '--format', '{{.Label "com.docker.compose.service"}}'],
    dockerClient,
  );
  return out.split('\n').filter(Boolean).sort();
}

const composeRunner = () =>
  createComposeRunner({ command: ['docker-compose'], dockerHost: ctx.host, env: { ...process.env, DOCKER_CONFIG: ctx.dockerConfig } });

beforeAll(async () => {
  work = await mkdtemp(join(process.env.FLOTILLA_TEST_RUN_DIR ?? tmpdir(), 'adoption-docker-'));
  installDir = join(work, 'install');
  stateDir = join(work, 'state');
  sidecarDir = join(work, 'operator-sidecar');
  await mkdir(installDir);
  await mkdir(sidecarDir);
  git = await startGitServer();
  await git.createBareRepo('fleet.git');
});

afterAll(async () => {
  const compose = composeRunner();
  await compose.down({ dir: installDir, project: PROJECT }).catch(() => undefined);
  await compose.down({ dir: sidecarDir, project: PROJECT }).catch(() => undefined);
  await git?.stop();
  await rm(work, { recursive: true, force: true });
});

describe('containers of services Flotilla did not deploy', () => {
  it('keeps an operator-added sidecar of the same project, and removes a service Flotilla deployed once the render drops it', async () => {
    await publish(['app', 'worker']);
    const first = await once();
    expect(first.code, first.log).toBe(0);
    expect(await runningServices()).toEqual(['app', 'worker']);
    expect((await readState(stateDir)).services).toEqual(['app', 'worker']);

    // The operator's own service, in the tenant's compose project, from a compose file of its own.
    await writeFile(join(sidecarDir, 'docker-compose.yml'), composeOf(['sidecar']));
    await composeRunner().up({ dir: sidecarDir, project: PROJECT });
    expect(await runningServices()).toEqual(['app', 'sidecar', 'worker']);

    await publish(['app']);
    const second = await once();

    expect(second.code, second.log).toBe(0);
    expect(await runningServices()).toEqual(['app', 'sidecar']);
    expect(second.log).toMatch(/up: removed orbit_worker_1 of worker, which this release no longer declares/);
    expect((await readState(stateDir)).services).toEqual(['app']);
  });

  it('rolls back a release that added a service: its containers go, the sidecar stays', async () => {
    await publish(['app', 'crashing-worker']);
    const failed = await once();

    expect(failed.code, failed.log).toBe(1);
    expect(failed.log).toMatch(/rollback: removed orbit_crashing-worker_1 of crashing-worker, which the failed release added/);
    expect(await runningServices(true)).toEqual(['app', 'sidecar']);
    expect((await readState(stateDir)).services).toEqual(['app']);
  });
});
