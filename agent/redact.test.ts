// Host values stay on the host: the masking rules on their own, the values a host
// holds (read from `.env` when text leaves), and then `flotilla-agent once` and
// `plan` through the real CLI wiring, with real git over HTTP, the OpenAPI-checked
// GitHub stand-in and a compose runner that fails the way compose does, quoting the
// value. The same on the real engine: test/hardening/secret-leak.docker.test.ts.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ComposeStepError } from '../renderer/core/errors.js';
import { remoteBranchHead } from '../renderer/core/git.js';
import { MANIFEST_PATH, serializeManifest } from '../renderer/core/manifest.js';
import { publishTenants } from '../renderer/publish/publish.js';
import { startGitHubStandIn, type GitHubStandIn } from '../test/support/github-standin.js';
import { startGitServer, type GitServer } from '../test/support/git-server.js';
import { RecordingCompose } from '../test/support/recording-compose.js';
import { snapshotTree } from '../test/support/tree-snapshot.js';
import { fakeSourceCommit, FIXTURE_SOURCE_REPO, tenantFixture } from '../test/support/tenant-fixture.js';
import type { ComposeTarget, ServiceState } from './compose-runner.js';
import { runAgentCli } from './main.js';
import { HostSecrets, MASK, redactValues, SecretMatcher } from './redact.js';

// 43 characters, as a generated secret (32 random bytes, base64url).
const SECRET = 'Qm9vdHN0cmFwLWtleS0xOTg0LWRvLW5vdC1sZWFrLXg';
const HOST_PASSWORD = 'correct-horse-battery-staple';

/** Every run of `n` consecutive characters of `value`. */
function fragments(value: string, n = 8): string[] {
  const out: string[] = [];
  for (let i = 0; i + n <= value.length; i++) out.push(value.slice(i, i + n));
  return out;
}

/** The fragments of any value found in text (empty: nothing of 8 characters or more survived). */
function leaks(text: string, values: string[]): string[] {
  const joined = text.replace(/\r?\n/g, '');
  return values.flatMap((v) => fragments(v).filter((f) => joined.includes(f)));
}

describe('masking', () => {
  it('masks a value whole, as a prefix cut by a length limit, as a suffix and as any 8-character run', () => {
    expect(redactValues(`cpus: ${SECRET} is not a number`, [SECRET])).toBe(`cpus: ${MASK} is not a number`);
    // The hook line of the incident: cut at 80 characters, 34 of the 43 characters left.
    const cut = `migrate: could not connect: password ${SECRET}`.slice(0, 71);
    expect(cut.endsWith(SECRET.slice(0, 34))).toBe(true);
    expect(redactValues(cut, [SECRET])).toBe(`migrate: could not connect: password ${MASK}`);
    expect(redactValues(`…${SECRET.slice(20)} rejected`, [SECRET])).toBe(`…${MASK} rejected`);
    expect(redactValues(`key [${SECRET.slice(10, 18)}]`, [SECRET])).toBe(`key [${MASK}]`);
    // Seven characters are not a run of the value: the documented limit.
    expect(redactValues(`key [${SECRET.slice(10, 17)}]`, [SECRET])).toBe(`key [${SECRET.slice(10, 17)}]`);
  });

  it('masks a value split over two lines', () => {
    const wrapped = `error: ${SECRET.slice(0, 5)}\n${SECRET.slice(5, 11)} bad`;
    const out = redactValues(wrapped, [SECRET]);
    expect(leaks(out, [SECRET])).toEqual([]);
    expect(out).toBe(`error: ${MASK}\n${MASK} bad`);
  });

  it('masks values of 4 to 7 characters only whole, and leaves shorter ones (the floor)', () => {
    const m = new SecretMatcher(['pa55w0', 'abc']);
    expect(m.redact('user abc, password pa55w0, prefix pa55')).toBe('user abc, password ***, prefix pa55');
  });

  it('masks several values, overlapping or adjacent, as one run', () => {
    expect(redactValues(`${SECRET}${HOST_PASSWORD} end`, [SECRET, HOST_PASSWORD])).toBe(`${MASK} end`);
  });
});

describe('HostSecrets: what the host holds, read when text leaves', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flotilla-redact-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('hides host-held keys and manifest secrets, shows the env patch’s own values, and follows .env as it changes', async () => {
    const installDir = join(dir, 'install');
    await mkdir(installDir);
    const host = new HostSecrets({ installDir, fixed: ['token-of-the-agent-123'] });
    host.noteManifest({ tenant: 'acme', envPatch: { IMAGE_TAG: 'v2.10.3', SMTP_HOST: 'smtp.example.org' }, secrets: ['APP_SECRET'] });
    await writeFile(join(installDir, '.env'), `IMAGE_TAG=v2.10.3\nSMTP_HOST=smtp.example.org\nDB_PASSWORD="${HOST_PASSWORD}"\n`);
    const line = `applying v2.10.3 via smtp.example.org: auth ${HOST_PASSWORD} token-of-the-agent-123`;
    expect(host.redact(line)).toBe(`applying v2.10.3 via smtp.example.org: auth ${MASK} ${MASK}`);
    // A secret that appears in .env later (generated, or set by the operator) is hidden from then on.
    expect(host.redact(`x ${SECRET}`)).toBe(`x ${SECRET}`);
    await writeFile(join(installDir, '.env'), `IMAGE_TAG=v2.10.3\nAPP_SECRET=${SECRET}\n`, { flag: 'a' });
    expect(host.redact(`x ${SECRET}`)).toBe(`x ${MASK}`);
  });

  it('reads the staging dir’s .env (a new secret before the swap) and remembers generated values after both are gone', async () => {
    const installDir = join(dir, 'fresh');
    const staging = join(dir, '.fresh.flotilla-staging');
    await mkdir(staging, { recursive: true });
    const host = new HostSecrets({ installDir });
    host.noteManifest({ tenant: 'acme', envPatch: { IMAGE_TAG: 'v1' }, secrets: ['APP_SECRET'] });
    await writeFile(join(staging, '.env'), `IMAGE_TAG=v1\nAPP_SECRET=${SECRET}\n`);
    expect(host.redact(SECRET)).toBe(MASK);
    await rm(staging, { recursive: true });
    expect(host.redact(SECRET)).toBe(SECRET);
    host.remember([SECRET]);
    expect(host.redact(SECRET)).toBe(MASK);
  });

  it('hides the values of a .env compose cannot parse', async () => {
    const installDir = join(dir, 'broken');
    await mkdir(installDir);
    await writeFile(join(installDir, '.env'), `DB_PASSWORD=${HOST_PASSWORD}\nBROKEN="unterminated\n`);
    expect(new HostSecrets({ installDir }).redact(`pw ${HOST_PASSWORD}`)).toBe(`pw ${MASK}`);
  });
});

// ---- through the agent's CLI ----

/**
 * Compose as it fails on `cpus: ${APP_SECRET}`: the error quotes the value it read
 * from the `.env` beside the compose file (the staged one, before the swap).
 */
class QuotingCompose extends RecordingCompose {
  quoted: string[] = [];
  constructor(services: ServiceState[]) {
    super({ services });
  }
  override async config(target: ComposeTarget): Promise<void> {
    await super.config(target);
    const env = await readFile(join(target.dir, '.env'), 'utf8');
    const value = /^APP_SECRET=(.*)$/m.exec(env)?.[1];
    if (value && this.cpusTypo) {
      this.quoted.push(value);
      throw new ComposeStepError('config', `ERROR: The Compose file './docker-compose.yml' is invalid because:\nservices.app.cpus contains an invalid type: '${value}' could not be converted to float`);
    }
  }
  cpusTypo = true;
}

describe('flotilla-agent once and plan never send a host value', () => {
  let git: GitServer;
  let github: GitHubStandIn;
  let work: string;
  let installDir: string;
  let stateDir: string;
  let repoUrl: string;
  const output: string[] = [];

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'flotilla-redact-agent-'));
    installDir = join(work, 'install');
    stateDir = join(work, 'state');
    await mkdir(installDir);
    git = await startGitServer();
    await git.createBareRepo('fleet.git');
    repoUrl = git.url('fleet.git');
    github = await startGitHubStandIn({ repos: ['acme/fleet'] });
  });
  afterAll(async () => {
    await github.close();
    await git.stop();
    await rm(work, { recursive: true, force: true });
  });

  async function publish(label: string, hooks?: object): Promise<string> {
    const sourceCommit = fakeSourceCommit(`redact ${label}`);
    const fixture = tenantFixture({ tenant: 'acme', imageTag: 'v1', registry: '127.0.0.1:5000', repository: 'flotilla-test/app', secrets: ['APP_SECRET'], sourceCommit });
    if (hooks) fixture.manifest.hooks = hooks;
    const files = fixture.files.map((f) => (f.path === MANIFEST_PATH ? { ...f, content: serializeManifest(fixture.manifest) } : f));
    await publishTenants({ repoUrl, workDir: join(work, 'publish.git'), tenants: [{ slug: 'acme', files }], source: { repo: FIXTURE_SOURCE_REPO, commit: sourceCommit } });
    return (await remoteBranchHead(repoUrl, 'tenants/acme'))!;
  }

  async function cli(args: string[], compose: RecordingCompose): Promise<number> {
    return runAgentCli(args, {
      env: {
        PATH: process.env.PATH,
        HOME: work,
        FLOTILLA_REPO: repoUrl,
        FLOTILLA_TENANT: 'acme',
        FLOTILLA_DIR: installDir,
        FLOTILLA_STATE_DIR: stateDir,
        FLOTILLA_HEALTH_TIMEOUT: '1',
        FLOTILLA_GITHUB_TOKEN: github.token,
        FLOTILLA_GITHUB_API: github.url,
        FLOTILLA_GITHUB_REPO: 'acme/fleet',
        FLOTILLA_COMPOSE: 'true',
      },
      stdout: (s) => void output.push(s),
      stderr: (s) => void output.push(s),
      compose,
      statusClient: { retry: { retries: 0, baseDelayMs: 1 }, throttle: { minWriteIntervalMs: 1 } },
    });
  }

  async function everything(): Promise<string> {
    const statuses = github.statuses('acme/fleet').map((s) => s.description ?? '');
    const files = await snapshotTree(stateDir, { dirs: false });
    const state = await Promise.all(Object.keys(files).map((p) => readFile(join(stateDir, p), 'latin1')));
    return [...statuses, ...output, ...state].join('\n');
  }

  const HEALTHY: ServiceState[] = [{ service: 'app', container: 'acme_app_1', state: 'running', health: 'healthy', image: 'app:v1' }];

  it('a first apply whose compose error quotes the secret just generated: failure status, log and state carry none of it', async () => {
    const compose = new QuotingCompose(HEALTHY);
    const head = await publish('typo');
    expect(await cli(['once'], compose)).toBe(1);
    expect(compose.quoted).toHaveLength(1);
    const generated = compose.quoted[0]!;
    const failure = github.statuses('acme/fleet', head).at(-1);
    expect(failure?.state).toBe('failure');
    expect(failure?.description).toContain(`could not be converted to float`);
    expect(failure?.description).toContain(`'${MASK}'`);
    expect(leaks(await everything(), [generated])).toEqual([]);
  });

  it('a post-up hook that prints a host password past the status’s length limit: nothing of it leaves, not even a prefix', async () => {
    const compose = new QuotingCompose(HEALTHY);
    compose.cpusTypo = false;
    await writeFile(join(installDir, '.env'), `DB_PASSWORD=${HOST_PASSWORD}\nAPP_SECRET=${SECRET}\n`);
    // The hook line is cut at 80 characters with 20 of the password's 28 left; the status then says more and is cut at 140.
    const line = `migrate: could not log in as app with ${HOST_PASSWORD} and key ${SECRET}`;
    const head = await publish('hook', { postUp: [{ name: 'migrate', run: ['sh', '-c', `echo '${line}' >&2; exit 1`] }] });
    expect(await cli(['once'], compose)).toBe(1);
    const failure = github.statuses('acme/fleet', head).at(-1);
    expect(failure?.description).toMatch(/^post-up hook migrate failed: migrate: could not log in as app with \*\*\*/);
    expect(leaks(await everything(), [HOST_PASSWORD, SECRET])).toEqual([]);
    // The .env itself is the host's, untouched.
    expect(await readFile(join(installDir, '.env'), 'utf8')).toContain(`DB_PASSWORD=${HOST_PASSWORD}\n`);
  });

  it('`plan` shows on-disk files with host values masked', async () => {
    await mkdir(join(installDir, 'config'), { recursive: true });
    await writeFile(join(installDir, 'config', 'app.conf'), `# hand edit\npassword = ${HOST_PASSWORD}\n`);
    const before = output.length;
    expect(await cli(['plan'], new QuotingCompose(HEALTHY))).toBe(0);
    const printed = output.slice(before).join('');
    expect(printed).toContain('password = ***');
    expect(leaks(printed, [HOST_PASSWORD, SECRET])).toEqual([]);
  });
});
