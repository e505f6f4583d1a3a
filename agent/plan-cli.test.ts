// `flotilla-agent plan` says what `once` will do: on a fresh managed host the secrets
// `once` generates count as set, so the plan does not announce a refusal that never
// comes. Real git over HTTP, real files; compose is recorded.
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { MANIFEST_PATH, serializeManifest } from '../renderer/core/manifest.js';
import { encryptSecret } from '../renderer/core/secrets.js';
import { publishTenants } from '../renderer/publish/publish.js';
import { startGitServer, type GitServer } from '../test/support/git-server.js';
import { RecordingCompose } from '../test/support/recording-compose.js';
import { fakeSourceCommit, FIXTURE_SOURCE_REPO, tenantFixture } from '../test/support/tenant-fixture.js';
import type { ServiceState } from './compose-runner.js';
import { runAgentCli } from './main.js';
import { ageIdentityPath, createHostIdentity } from './secrets.js';

const HEALTHY: ServiceState[] = [{ service: 'app', container: 'acme_app_1', state: 'running', health: 'healthy', image: 'app:v1' }];

let git: GitServer;
let work: string;

beforeAll(async () => {
  git = await startGitServer();
});
afterAll(async () => {
  await git.stop();
});
beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'flotilla-plan-cli-'));
  await mkdir(join(work, 'install'));
  await git.createBareRepo('fleet.git');
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

async function cli(argv: string[]) {
  let out = '';
  let err = '';
  const env = {
    FLOTILLA_REPO: git.url('fleet.git'),
    FLOTILLA_TENANT: 'acme',
    FLOTILLA_DIR: join(work, 'install'),
    FLOTILLA_STATE_DIR: join(work, 'state'),
    FLOTILLA_HEALTH_TIMEOUT: '1',
  };
  const code = await runAgentCli(argv, { env, stdout: (s) => void (out += s), stderr: (s) => void (err += s), compose: new RecordingCompose({ services: HEALTHY }) });
  return { code, out, err };
}

it('counts the secrets once will generate as set on a fresh managed host, and once applies as planned', async () => {
  const sourceCommit = fakeSourceCommit('plan accuracy');
  const fixture = tenantFixture({
    tenant: 'acme',
    mode: 'managed',
    imageTag: 'v1',
    registry: '127.0.0.1:5000',
    repository: 'flotilla-test/app',
    sourceCommit,
    secrets: ['JWT_SECRET'],
  });
  expect(fixture.composeText).toContain('JWT_SECRET');
  await publishTenants({
    repoUrl: git.url('fleet.git'),
    workDir: join(work, 'publish.git'),
    tenants: [{ slug: 'acme', files: fixture.files }],
    source: { repo: FIXTURE_SOURCE_REPO, commit: sourceCommit },
  });

  const plan = await cli(['plan']);
  expect(plan.err).toBe('');
  expect(plan.out).toContain('JWT_SECRET=(generated secret, not shown)');
  expect(plan.out).not.toMatch(/missing .*JWT_SECRET/);
  expect(plan.out).not.toContain('will be refused');

  const once = await cli(['once']);
  expect(once.code).toBe(0);
  expect(await readFile(join(work, 'install', '.env'), 'utf8')).toMatch(/^JWT_SECRET=\S{16,}$/m);
});

it('decrypts a centrally set secret as once does: it counts as set, and its value is never shown', async () => {
  const recipient = await createHostIdentity(ageIdentityPath(join(work, 'state')));
  const sourceCommit = fakeSourceCommit('plan central secret');
  const fixture = tenantFixture({
    tenant: 'acme',
    imageTag: 'v1',
    registry: '127.0.0.1:5000',
    repository: 'flotilla-test/app',
    requires: ['SMTP_PASSWORD'],
    sourceCommit,
  });
  const value = 'smtp-password-set-centrally-7731';
  const manifest = { ...fixture.manifest, encryptedSecrets: { SMTP_PASSWORD: await encryptSecret('SMTP_PASSWORD', value, [recipient]) } };
  const files = fixture.files.map((f) => (f.path === MANIFEST_PATH ? { ...f, content: serializeManifest(manifest) } : f));
  await publishTenants({ repoUrl: git.url('fleet.git'), workDir: join(work, 'publish.git'), tenants: [{ slug: 'acme', files }], source: manifest.source });

  const plan = await cli(['plan']);
  expect(plan.err).toBe('');
  expect(plan.out).not.toMatch(/missing .*SMTP_PASSWORD/);
  expect(plan.out).not.toContain('will be refused');
  expect(plan.out).toContain('SMTP_PASSWORD');
  expect(plan.out).not.toContain(value);
});
