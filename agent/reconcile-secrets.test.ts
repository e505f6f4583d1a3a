// Secrets set centrally, through a reconcile pass: real git over HTTP, real files, the
// host's real age identity; only compose is recorded. A manifest's encryptedSecrets are
// decrypted before anything changes and join the env patch; one that does not decrypt
// refuses the apply (exit 3) with a status naming the key, and changes nothing.
import { chmod, mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { remoteBranchHead } from '../renderer/core/git.js';
import { MANIFEST_PATH, serializeManifest } from '../renderer/core/manifest.js';
import { encryptSecret, generateAgeIdentity } from '../renderer/core/secrets.js';
import { publishTenants } from '../renderer/publish/publish.js';
import { startGitServer, type GitServer } from '../test/support/git-server.js';
import { RecordingCompose } from '../test/support/recording-compose.js';
import { recordedPass } from '../test/support/reconcile-pass.js';
import { fakeSourceCommit, tenantFixture } from '../test/support/tenant-fixture.js';
import { snapshotTree } from '../test/support/tree-snapshot.js';
import type { ServiceState } from './compose-runner.js';
import { parseAgentConfig } from './config.js';
import { HostSecrets } from './redact.js';
import { exitCodeOf } from './reconcile.js';
import { ageIdentityPath, createHostIdentity } from './secrets.js';

const HEALTHY: ServiceState[] = [{ service: 'app', container: 'acme_app_1', state: 'running', health: 'healthy', image: 'app:v1' }];
const SMTP = 'smtp-secret-6f1d0c93ab';
const API = 'api-secret-2e8b47d5c1';

let git: GitServer;
let work: string;
let installDir: string;
let stateDir: string;
let recipient: string;
let releases = 0;

beforeAll(async () => {
  git = await startGitServer();
});
afterAll(async () => {
  await git.stop();
});
beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'flotilla-reconcile-secrets-'));
  installDir = join(work, 'install');
  stateDir = join(work, 'state');
  await mkdir(installDir);
  await git.createBareRepo(`fleet-secrets-${++releases}.git`);
  recipient = await createHostIdentity(ageIdentityPath(stateDir));
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

const repoUrl = () => git.url(`fleet-secrets-${releases}.git`);

/** Publishes the fixture (compose needs API_KEY and SMTP_PASSWORD; SMTP_PASSWORD is also a generated secret) with these ciphertexts. */
async function publish(encryptedSecrets: Record<string, string>, label: string): Promise<string> {
  const sourceCommit = fakeSourceCommit(`secrets ${releases} ${label}`);
  const fixture = tenantFixture({
    tenant: 'acme',
    imageTag: 'v1',
    registry: '127.0.0.1:5000',
    repository: 'flotilla-test/app',
    requires: ['API_KEY'],
    secrets: ['SMTP_PASSWORD'],
    sourceCommit,
  });
  const manifest = { ...fixture.manifest, encryptedSecrets };
  const files = fixture.files.map((f) => (f.path === MANIFEST_PATH ? { ...f, content: serializeManifest(manifest) } : f));
  await publishTenants({ repoUrl: repoUrl(), workDir: join(work, 'publish.git'), tenants: [{ slug: 'acme', files }], source: manifest.source });
  return (await remoteBranchHead(repoUrl(), 'tenants/acme'))!;
}

async function pass(compose: RecordingCompose) {
  const secrets = new HostSecrets({ installDir });
  const recorded = await recordedPass({
    config: parseAgentConfig({ FLOTILLA_REPO: repoUrl(), FLOTILLA_TENANT: 'acme', FLOTILLA_DIR: installDir, FLOTILLA_STATE_DIR: stateDir, FLOTILLA_HEALTH_TIMEOUT: '1' }),
    compose,
    secrets,
  });
  return { ...recorded, secrets };
}

/** Every file of the state dir but the identity, as text. */
async function stateText(): Promise<string> {
  const entries = await readdir(stateDir, { recursive: true, withFileTypes: true });
  const texts = await Promise.all(
    entries.filter((e) => e.isFile() && e.name !== 'age-identity.txt').map((e) => readFile(join(e.parentPath, e.name), 'utf8').catch(() => '')),
  );
  return texts.join('\n');
}

describe('reconcileOnce with encryptedSecrets', () => {
  it('decrypts them before the plan: the values join the env patch (a set secret is not generated), and appear in no status, log or state', async () => {
    const commit = await publish(
      { API_KEY: await encryptSecret('API_KEY', API, [recipient]), SMTP_PASSWORD: await encryptSecret('SMTP_PASSWORD', SMTP, [recipient]) },
      'first',
    );
    const compose = new RecordingCompose({ services: HEALTHY });
    const { outcome, statuses, log, secrets } = await pass(compose);

    expect(outcome).toMatchObject({ kind: 'applied', commit });
    const env = await readFile(join(installDir, '.env'), 'utf8');
    expect(env).toContain(`API_KEY=${API}\n`);
    expect(env).toContain(`SMTP_PASSWORD=${SMTP}\n`);
    for (const text of [statuses.join('\n'), log.join('\n'), await stateText()]) {
      expect(text).not.toContain(API);
      expect(text).not.toContain(SMTP);
    }
    // Registered with the redaction: masked in any text leaving the agent.
    expect(secrets.redact(`x ${API} y ${SMTP}`)).toBe('x *** y ***');

    // A new value set centrally replaces the old one on the next release.
    await publish({ API_KEY: await encryptSecret('API_KEY', 'api-secret-rotated-99', [recipient]), SMTP_PASSWORD: await encryptSecret('SMTP_PASSWORD', SMTP, [recipient]) }, 'second');
    expect((await pass(compose)).outcome).toMatchObject({ kind: 'applied' });
    expect(await readFile(join(installDir, '.env'), 'utf8')).toContain('API_KEY=api-secret-rotated-99\n');
  });

  it('refuses a secret not encrypted to this host (exit 3), naming the key in the status, and changes nothing', async () => {
    const compose = new RecordingCompose({ services: HEALTHY });
    await publish({ API_KEY: await encryptSecret('API_KEY', API, [recipient]), SMTP_PASSWORD: await encryptSecret('SMTP_PASSWORD', SMTP, [recipient]) }, 'good');
    await pass(compose);
    const before = await snapshotTree(installDir, { dirs: false });
    const calls = compose.calls.length;

    const other = await generateAgeIdentity();
    const commit = await publish(
      { API_KEY: await encryptSecret('API_KEY', 'never-applied-value', [recipient]), SMTP_PASSWORD: await encryptSecret('SMTP_PASSWORD', SMTP, [other.recipient]) },
      'foreign',
    );
    const { outcome, statuses, log } = await pass(compose);

    expect(outcome).toMatchObject({ kind: 'refused', commit });
    expect(exitCodeOf(outcome)).toBe(3);
    const description = (outcome as { description: string }).description;
    expect(description).toMatch(/^refused: secret SMTP_PASSWORD cannot be decrypted: it is not encrypted to this host's age identity/);
    // Decrypted before the window and the `pending` status: the only status is the refusal.
    expect(statuses).toEqual([`failure: ${description}`]);
    expect(compose.calls).toHaveLength(calls);
    expect(await snapshotTree(installDir, { dirs: false })).toEqual(before);
    expect(await readFile(join(installDir, '.env'), 'utf8')).not.toContain('never-applied-value');
    for (const text of [statuses.join('\n'), log.join('\n'), await stateText()]) {
      expect(text).not.toContain(SMTP);
      expect(text).not.toContain('never-applied-value');
    }
  });

  it('waits (exit 2) on an identity file others can read, naming its path, and changes nothing', async () => {
    const compose = new RecordingCompose({ services: HEALTHY });
    await publish({ API_KEY: await encryptSecret('API_KEY', API, [recipient]), SMTP_PASSWORD: await encryptSecret('SMTP_PASSWORD', SMTP, [recipient]) }, 'loose key');
    await chmod(ageIdentityPath(stateDir), 0o644);
    const { outcome } = await pass(compose);
    expect(exitCodeOf(outcome)).toBe(2);
    expect((outcome as { description: string }).description).toContain(`${ageIdentityPath(stateDir)}: is mode 0644`);
    expect(compose.calls).toEqual([]);
    expect(await readdir(installDir)).toEqual([]);

    // Fixed on the host: the next poll applies.
    await chmod(ageIdentityPath(stateDir), 0o600);
    expect((await pass(compose)).outcome).toMatchObject({ kind: 'applied' });
  });
});
