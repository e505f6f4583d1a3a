// The env patch written for the compose the host runs: a reconcile pass with a recording
// compose runner (real git over loopback HTTP, real files) and the real docker-compose 1.29
// binary asked for its version. A value with both `$` and `'` (issue 13) needs different
// bytes for compose v1 (python-dotenv) and v2 (compose-go).
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { readEnvValues } from '../renderer/core/env-file.js';
import { publishTenants } from '../renderer/publish/publish.js';
import { startGitServer, type GitServer } from '../test/support/git-server.js';
import { RecordingCompose } from '../test/support/recording-compose.js';
import { fakeSourceCommit, FIXTURE_SOURCE_REPO, tenantFixture } from '../test/support/tenant-fixture.js';
import type { ServiceState } from './compose-runner.js';
import { parseAgentConfig } from './config.js';
import { runAgentCli } from './main.js';
import { reconcileOnce } from './reconcile.js';

const HEALTHY: ServiceState[] = [{ service: 'app', container: 'acme_app_1', state: 'running', health: 'healthy', image: 'app:v1' }];

let git: GitServer;
let work: string;
let repoUrl: string;
let repos = 0;

beforeAll(async () => {
  git = await startGitServer();
});
afterAll(async () => {
  await git.stop();
});
beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'flotilla-env-flavour-'));
  await mkdir(join(work, 'install'));
  const name = `env-flavour-${++repos}.git`;
  await git.createBareRepo(name);
  repoUrl = git.url(name);
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

/** Publishes a release whose env patch sets PROMO, then runs one pass with `composeCommand`. */
async function applyWith(promo: string, composeCommand: string[]) {
  const sourceCommit = fakeSourceCommit(`env flavour ${repos}`);
  const fixture = tenantFixture({
    tenant: 'acme',
    imageTag: 'v1',
    registry: '127.0.0.1:5000',
    repository: 'flotilla-test/app',
    sourceCommit,
    envPatch: { PROMO: promo },
  });
  await publishTenants({
    repoUrl,
    workDir: join(work, 'publish.git'),
    tenants: [{ slug: 'acme', files: fixture.files }],
    source: { repo: FIXTURE_SOURCE_REPO, commit: sourceCommit },
  });
  const config = parseAgentConfig({
    FLOTILLA_REPO: repoUrl,
    FLOTILLA_TENANT: 'acme',
    FLOTILLA_DIR: join(work, 'install'),
    FLOTILLA_STATE_DIR: join(work, 'state'),
    FLOTILLA_HEALTH_TIMEOUT: '1',
  });
  const outcome = await reconcileOnce({
    config,
    compose: new RecordingCompose({ services: HEALTHY }),
    composeCommand,
    hookEnv: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    report: async () => {},
    log: () => {},
    healthPollMs: 1,
  });
  return { outcome, env: await readFile(join(work, 'install', '.env'), 'utf8').catch(() => undefined) };
}

describe('the env patch on a host, per compose flavour', () => {
  it("writes it's $5 off as docker-compose 1.29 reads it back on a v1 host", async () => {
    expect(existsSync('/usr/bin/docker-compose'), 'docker-compose 1.29 is missing: scripts/test.sh installs it').toBe(true);
    const { outcome, env } = await applyWith("it's $5 off", ['/usr/bin/docker-compose']);
    expect(outcome.kind).toBe('applied');
    // The form compose-go reads back too, which is preferred for v1 (the agent's env coverage reads .env as compose-go).
    expect(env).toContain("PROMO='it\\'s $5 off'\n");
    expect(readEnvValues(env!, '.env', 'v1').get('PROMO')).toBe("it's $5 off");
  });

  it('writes it as compose-go reads it back on a v2 host', async () => {
    // No compose v2 on the test machines: the stand-in answers `version --short` as compose v2 does.
    const standIn = join(work, 'compose-v2');
    await writeFile(standIn, '#!/bin/sh\n[ "$1 $2" = "version --short" ] && echo 2.29.1\n');
    await chmod(standIn, 0o755);
    const { outcome, env } = await applyWith("it's $5 off", [standIn]);
    expect(outcome.kind).toBe('applied');
    expect(env).toContain('PROMO="it\'s \\$5 off"\n');
    expect(readEnvValues(env!, '.env', 'v2').get('PROMO')).toBe("it's $5 off");
  });

  it('refuses on a v1 host a value python-dotenv would expand, naming the key and never the value', async () => {
    const { outcome, env } = await applyWith('pre${HOME}post', ['/usr/bin/docker-compose']);
    expect(outcome.kind).toBe('failed');
    const description = (outcome as { description: string }).description;
    expect(description).toContain('PROMO');
    expect(description).toContain('compose v1');
    expect(description).not.toContain('pre${HOME}post');
    expect(env).toBeUndefined();
  });
});

describe('flotilla-agent env-patch, per compose flavour', () => {
  async function envPatch(args: string[], env: Record<string, string>) {
    let out = '';
    let err = '';
    const code = await runAgentCli(['env-patch', '--file', join(work, '.env'), ...args], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
      stdout: (s) => void (out += s),
      stderr: (s) => void (err += s),
    });
    return { code, out, err, text: await readFile(join(work, '.env'), 'utf8').catch(() => undefined) };
  }

  it("asks the host's compose (FLOTILLA_COMPOSE) when the flavours need different bytes", async () => {
    const run = await envPatch(["PROMO=it's $5 off"], { FLOTILLA_COMPOSE: '/usr/bin/docker-compose' });
    expect(run).toMatchObject({ code: 0, text: "# Added by fleet env-patch\nPROMO='it\\'s $5 off'\n" });
  });

  it('takes --compose v2 as said, and refuses any other flavour', async () => {
    const run = await envPatch(['--compose', 'v2', "PROMO=it's $5 off"], { FLOTILLA_COMPOSE: '/usr/bin/docker-compose' });
    expect(run).toMatchObject({ code: 0, text: '# Added by fleet env-patch\nPROMO="it\'s \\$5 off"\n' });
    const bad = await envPatch(['--compose', 'v3', 'A=1'], {});
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('--compose: must be v1 or v2');
  });
});
