// The agent CLI against bad settings and files, two agents on one host, and a check that
// the git and GitHub tokens never leave the process: after a run of failures (git 500,
// GitHub 500 and 403 rate limits, a failed pull) every byte the agent wrote (stdout,
// stderr, the state dir with its outbox, journal and git cache, the install dir) and every
// status GitHub received is searched for both tokens.
import { spawn } from 'node:child_process';
import { access, lstat, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { remoteBranchHead } from '../../renderer/core/git.js';
import { publishTenants } from '../../renderer/publish/publish.js';
import { runAgentCli, type AgentIo } from '../../agent/main.js';
import type { ServiceState } from '../../agent/compose-runner.js';
import { startGitHubStandIn, type GitHubStandIn } from '../support/github-standin.js';
import { startGitServer, type GitServer } from '../support/git-server.js';
import { RecordingCompose } from '../support/recording-compose.js';
import { fakeSourceCommit, FIXTURE_SOURCE_REPO, tenantFixture } from '../support/tenant-fixture.js';

const REPO_ROOT = join(import.meta.dirname, '..', '..');
const HEALTHY: ServiceState[] = [{ service: 'app', container: 'acme_app_1', state: 'running', health: 'healthy', image: 'app:v1' }];
const exists = (path: string) => access(path).then(() => true, () => false);

let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'flotilla-agent-cli-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

async function cli(argv: string[], env: Record<string, string>, extra: Partial<AgentIo> = {}): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runAgentCli(argv, { env, stdout: (s) => void (out += s), stderr: (s) => void (err += s), ...extra });
  return { code, out, err };
}

/** The real entry point as its own process; resolves when it exits. */
function agentProcess(argv: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'agent/main.ts', ...argv], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<{ code: number | null; log: string }>((resolve) => child.on('close', (code) => resolve({ code, log })));
  return { child, exited, log: () => log };
}

describe('bad agent settings, through the CLI: exit 2, the setting named, nothing created', () => {
  const base = () => ({ FLOTILLA_REPO: 'http://127.0.0.1:9/fleet.git', FLOTILLA_TENANT: 'acme', FLOTILLA_DIR: join(work, 'install-ok'), FLOTILLA_STATE_DIR: join(work, 'state-bad') });
  beforeAll(async () => {
    await mkdir(join(work, 'install-ok'), { recursive: true });
    await writeFile(join(work, 'a-file'), 'not a directory\n');
  });

  it.each<{ name: string; over: Record<string, string>; message: string; command?: string }>([
    { name: 'repo URL missing', over: { FLOTILLA_REPO: '' }, message: 'FLOTILLA_REPO: is required but not set' },
    { name: 'repo URL not http(s)', over: { FLOTILLA_REPO: 'git@github.com:acme/fleet.git' }, message: 'FLOTILLA_REPO: must be an http(s) git URL, got "git@github.com:acme/fleet.git"' },
    { name: 'tenant not a slug', over: { FLOTILLA_TENANT: 'Acme_1' }, message: 'FLOTILLA_TENANT: "Acme_1" is not a tenant slug (a DNS label)' },
    { name: 'install dir relative', over: { FLOTILLA_DIR: 'srv/acme' }, message: 'FLOTILLA_DIR: must be an absolute path' },
    { name: 'install dir missing', over: { FLOTILLA_DIR: '/nonexistent/acme' }, message: 'FLOTILLA_DIR: /nonexistent/acme is not a writable directory (ENOENT)' },
    { name: 'install dir a file', over: { FLOTILLA_DIR: '<a-file>' }, message: 'FLOTILLA_DIR: <a-file> is not a writable directory (EACCES)' },
    { name: 'git timeout zero', over: { FLOTILLA_GIT_TIMEOUT: '0' }, message: 'FLOTILLA_GIT_TIMEOUT: must be a positive number of seconds, got "0"' },
    { name: 'backoff not a number', over: { FLOTILLA_BACKOFF: 'soon' }, message: 'FLOTILLA_BACKOFF: must be a positive number of seconds, got "soon"' },
    { name: 'drift policy unknown', over: { FLOTILLA_DRIFT: 'fix' }, message: 'FLOTILLA_DRIFT: must be report or heal, got "fix"' },
    { name: 'non-fast-forward flag not boolean', over: { FLOTILLA_ALLOW_NON_FAST_FORWARD: 'yes' }, message: 'FLOTILLA_ALLOW_NON_FAST_FORWARD: must be true or false' },
    // The daemon used to throw these from node-cron after its first poll ("internal error", exit 70).
    { name: 'schedule in words, under run', command: 'run', over: { FLOTILLA_SCHEDULE: 'every minute' }, message: 'FLOTILLA_SCHEDULE: "every minute" is not a cron expression (5 fields, minute hour day month weekday, or 6 with seconds first)' },
    { name: 'schedule minute 61, under run', command: 'run', over: { FLOTILLA_SCHEDULE: '61 * * * *' }, message: 'FLOTILLA_SCHEDULE: "61 * * * *" is not a cron expression (5 fields, minute hour day month weekday, or 6 with seconds first)' },
    { name: 'state dir under a regular file', over: { FLOTILLA_STATE_DIR: '<a-file>/state' }, message: 'FLOTILLA_STATE_DIR: <a-file>/state cannot be created: <a-file> is not a directory' },
    { name: 'state dir relative', over: { FLOTILLA_STATE_DIR: 'state' }, message: 'FLOTILLA_STATE_DIR: must be an absolute path, got "state"' },
    {
      name: 'plain http repo URL with a token, not loopback',
      over: { FLOTILLA_REPO: 'http://git.example.com/acme/fleet.git', FLOTILLA_GIT_TOKEN: 'gittok_NotForTheWire_0123' },
      message: 'FLOTILLA_REPO: "http://git.example.com/acme/fleet.git" is plain http and FLOTILLA_GIT_TOKEN is set: the token would cross the network in cleartext; use https (http is allowed only to a loopback address)',
    },
    {
      name: 'plain http repo URL holding a token',
      over: { FLOTILLA_REPO: 'http://x-access-token:gittok_NotForTheWire_0123@10.1.2.3/acme/fleet.git' },
      message: 'FLOTILLA_REPO: "http://***@10.1.2.3/acme/fleet.git" is plain http and holds credentials: the token would cross the network in cleartext; use https (http is allowed only to a loopback address)',
    },
    { name: 'repo URL with a space', over: { FLOTILLA_REPO: 'https://github.com/acme/my fleet.git' }, message: 'FLOTILLA_REPO: must be a URL without spaces or control characters, got "https://github.com/acme/my fleet.git"' },
    { name: 'health timeout 1e300', over: { FLOTILLA_HEALTH_TIMEOUT: '1e300' }, message: 'FLOTILLA_HEALTH_TIMEOUT: must be at most 86400 seconds (a day), got "1e300"' },
    { name: 'GitHub API not a URL', over: { FLOTILLA_GITHUB_API: 'not-a-url' }, message: 'FLOTILLA_GITHUB_API: must be an http(s) URL, got "not-a-url"' },
    { name: 'compose program that does not exist', over: { FLOTILLA_COMPOSE: '/nonexistent/docker-compose' }, message: 'FLOTILLA_COMPOSE: /nonexistent/docker-compose is not an executable file' },
    { name: 'compose program not in PATH', over: { FLOTILLA_COMPOSE: 'docker-compoze', PATH: '/usr/bin:/bin' }, message: 'FLOTILLA_COMPOSE: docker-compoze is not found in PATH (/usr/bin:/bin)' },
    { name: 'backoff cap below the first wait', over: { FLOTILLA_BACKOFF: '600', FLOTILLA_BACKOFF_MAX: '60' }, message: 'FLOTILLA_BACKOFF_MAX: 60 is below FLOTILLA_BACKOFF (600): the cap must be at least the first wait' },
    { name: 'project name compose rejects', over: { FLOTILLA_PROJECT: 'Acme.Prod' }, message: 'FLOTILLA_PROJECT: "Acme.Prod" is not a compose project name (lowercase letters, digits, dashes and underscores, starting with a letter or digit)' },
    { name: 'branch ../../etc', over: { FLOTILLA_BRANCH: '../../etc' }, message: 'FLOTILLA_BRANCH: "../../etc" is not a valid branch name: it holds ".."' },
    { name: 'misspelled setting in the environment', over: { FLOTILLA_SCHEDUEL: '*/5 * * * *' }, message: 'FLOTILLA_SCHEDUEL: is not a flotilla-agent setting (in the environment); did you mean FLOTILLA_SCHEDULE?' },
  ])('$name', async ({ over, message, command }) => {
    const aFile = join(work, 'a-file');
    const env = Object.fromEntries(Object.entries({ ...base(), ...over }).map(([k, v]) => [k, v.replaceAll('<a-file>', aFile)]));
    const run = await cli([command ?? 'once'], env);
    expect(run.code).toBe(2);
    expect(run.err).toBe(`flotilla-agent: ${message.replaceAll('<a-file>', aFile)}\n`);
    expect(await exists(join(work, 'state-bad'))).toBe(false);
  });

  it('the settings file: a misspelled name (with the closest one), a line without "=", a name that is not a setting', async () => {
    const file = join(work, 'typo.env');
    const good = `FLOTILLA_REPO=http://127.0.0.1:9/fleet.git\nFLOTILLA_TENANT=acme\nFLOTILLA_DIR=${join(work, 'install-ok')}\nFLOTILLA_STATE_DIR=${join(work, 'state-bad')}\n`;
    const cases: Array<[string, string]> = [
      [`${good}# the daemon\nFLOTILLA_SHEDULE=*/5 * * * *\n`, `FLOTILLA_SHEDULE: is not a flotilla-agent setting (in ${file}:6); did you mean FLOTILLA_SCHEDULE?`],
      [`${good}FLOTILLA_GIT_TOKEN\n`, `--settings: ${file}:5: expected NAME=value (a line without "=" or with a name that is not one)`],
      [`${good}HEALTH_TIMEOUT=30\n`, `HEALTH_TIMEOUT: is not a flotilla-agent setting (in ${file}:5); did you mean FLOTILLA_HEALTH_TIMEOUT?`],
    ];
    for (const [text, message] of cases) {
      await writeFile(file, text);
      const run = await cli(['--settings', file, 'once'], {});
      expect(run.err).toBe(`flotilla-agent: ${message}\n`);
      expect(run.code).toBe(2);
    }
    expect(await exists(join(work, 'state-bad'))).toBe(false);
    // A value quoted over several lines is one setting, not lines without "=".
    await writeFile(file, `${good}FLOTILLA_WINDOW="Sat 02:00-04:00;\nSun 02:00-04:00"\nFLOTILLA_JITTER=0\n`);
    const run = await cli(['--settings', file, 'once'], {});
    expect(run.err).toMatch(/outcome: error: git unreachable/);
  });

  it('FLOTILLA_JITTER=0 is accepted', async () => {
    const run = await cli(['once'], { ...base(), FLOTILLA_STATE_DIR: join(work, 'state-jitter'), FLOTILLA_JITTER: '0' });
    expect(run.err).toMatch(/outcome: error: git unreachable/);
    expect(run.code).toBe(2);
  });

  it('a --settings file that does not exist, as the real process reports it (Node leaves this name to the agent)', async () => {
    const { exited } = agentProcess(['--settings', join(work, 'none.env'), 'once'], {});
    const { code, log } = await exited;
    expect(log).toMatch(/^flotilla-agent: --settings: cannot read .*none\.env: ENOENT/);
    expect(code).toBe(2);
  });

  it('the older --env-file still names itself when the agent gets to read it', async () => {
    const run = await cli(['--env-file', join(work, 'none.env'), 'once'], {});
    expect(run.code).toBe(2);
    expect(run.err).toMatch(/^flotilla-agent: --env-file: cannot read .*none\.env: ENOENT/);
  });

  it('the repo URL missing, as the real process reports it', async () => {
    const { exited } = agentProcess(['once'], { FLOTILLA_TENANT: 'acme', FLOTILLA_DIR: join(work, 'install-ok') });
    const { code, log } = await exited;
    expect(code).toBe(2);
    expect(log).toBe('flotilla-agent: FLOTILLA_REPO: is required but not set\n');
  });
});

describe('bad files given to env-check and env-patch', () => {
  it('env-check: a compose file that is not YAML is named with its line, exit 1', async () => {
    const compose = join(work, 'broken-compose.yml');
    await writeFile(compose, 'services:\n  app: [unclosed\n');
    await writeFile(join(work, 'check.env'), 'A=1\n');
    const run = await cli(['env-check', '--compose', compose, '--env', join(work, 'check.env')], {});
    expect(run.code).toBe(1);
    expect(run.err).toMatch(new RegExp(`^flotilla-agent: ${compose}: not valid YAML \\(line 3, column 1\\)`));
  });

  it('env-check judges the frappe line by the installed compose: v1 reads the default literally, v2 needs ERPNEXT_VERSION', async () => {
    const compose = join(work, 'frappe-compose.yml');
    await writeFile(compose, 'services:\n  app:\n    image: ${CUSTOM_IMAGE:-frappe/erpnext}:${CUSTOM_TAG:-$ERPNEXT_VERSION}\n');
    await writeFile(join(work, 'frappe.env'), '');
    const args = ['env-check', '--compose', compose, '--env', join(work, 'frappe.env'), '--json'];
    const onV1 = await cli(args, { PATH: process.env.PATH ?? '/usr/bin:/bin', FLOTILLA_COMPOSE: '/usr/bin/docker-compose' });
    expect(onV1.out).toContain('"missing": []');
    expect(onV1.code).toBe(0);
    const asV2 = await cli([...args, '--flavour', 'v2'], {});
    expect(asV2.out).toContain('"missing": ["ERPNEXT_VERSION"]');
    expect(asV2.code).toBe(1);
  });

  it('env-patch: a .env with a BOM, CRLF, a 1 MB line and quoted values holding # and = keeps every other byte', async () => {
    const file = join(work, 'hostile.env');
    const big = 'x'.repeat(1024 * 1024);
    const before = `\uFEFF# host file\r\nURL="postgres://u:p@db/x?a=b#frag" # inline\r\nBIG=${big}\r\nTAG='v1#not-a-comment'\r\nexport IMAGE_TAG=v1\r\nIMAGE_TAG=v1 # last one wins`;
    await writeFile(file, before);

    const run = await cli(['env-patch', '--file', file, 'IMAGE_TAG=v2', 'NEW=a=b#c'], {});

    expect(run.code).toBe(0);
    expect(run.out).toBe(`${file}: changed IMAGE_TAG; added NEW\n`);
    expect(await readFile(file, 'utf8')).toBe(
      `${before.replace('IMAGE_TAG=v1 # last one wins', 'IMAGE_TAG=v2 # last one wins')}\r\n# Added by fleet env-patch\r\nNEW="a=b#c"\r\n`,
    );
  });

  it('env-patch: a key that is not a variable name, and a pair without "=", change nothing', async () => {
    const file = join(work, 'plain.env');
    await writeFile(file, 'A=1\n');
    const badKey = await cli(['env-patch', '--file', file, '1A=b'], {});
    expect(badKey.code).toBe(1);
    expect(badKey.err).toBe(`flotilla-agent: ${file}: 1A: not a valid variable name (letters, digits and _, not starting with a digit)\n`);
    const noEquals = await cli(['env-patch', '--file', file, 'novalue'], {});
    expect(noEquals.code).toBe(2);
    expect(noEquals.err).toBe('flotilla-agent: novalue: expected KEY=VALUE\n');
    expect(await readFile(file, 'utf8')).toBe('A=1\n');
  });
});

describe('two agents on one host', () => {
  it('the second refuses with a message naming the lock and the PID holding it; once the first stops it runs', async () => {
    const installDir = join(work, 'install-lock');
    const stateDir = join(work, 'state-lock');
    await mkdir(installDir, { recursive: true });
    const env = {
      // Nothing listens there: the daemon's passes fail and it keeps running.
      FLOTILLA_REPO: 'http://127.0.0.1:9/fleet.git',
      FLOTILLA_TENANT: 'acme',
      FLOTILLA_DIR: installDir,
      FLOTILLA_STATE_DIR: stateDir,
      FLOTILLA_SCHEDULE: '0 0 1 1 *',
    };
    const daemon = agentProcess(['run'], env);
    try {
      while (!/started: /.test(daemon.log())) await new Promise((r) => setTimeout(r, 100));

      const second = await agentProcess(['once'], env).exited;

      expect(second.code).toBe(4);
      expect(second.log).toBe(`flotilla-agent: another flotilla-agent (pid ${daemon.child.pid}) holds ${join(stateDir, 'agent.lock')}; wait for it or stop it\n`);
    } finally {
      daemon.child.kill('SIGTERM');
    }
    expect((await daemon.exited).code).toBe(0);
    const after = await agentProcess(['once'], env).exited;
    expect(after.code).toBe(2);
    expect(after.log).toMatch(/outcome: error: git unreachable/);
  });
});

describe('two agents with different state dirs on one install dir', () => {
  it('the second refuses, naming the first by PID and state dir; the first keeps its staging dir', async () => {
    const installDir = join(work, 'install-shared');
    await mkdir(installDir, { recursive: true });
    const env = (state: string) => ({
      FLOTILLA_REPO: 'http://127.0.0.1:9/fleet.git',
      FLOTILLA_TENANT: 'acme',
      FLOTILLA_DIR: installDir,
      FLOTILLA_STATE_DIR: join(work, state),
      FLOTILLA_SCHEDULE: '0 0 1 1 *',
    });
    const daemon = agentProcess(['run'], env('state-shared-a'));
    try {
      while (!/started: /.test(daemon.log())) await new Promise((r) => setTimeout(r, 100));

      const second = await agentProcess(['once'], env('state-shared-b')).exited;

      expect(second.log).toBe(
        `flotilla-agent: another flotilla-agent (pid ${daemon.child.pid}, state dir ${join(work, 'state-shared-a')}) holds ${join(installDir, '.flotilla-agent.lock')}; wait for it or stop it\n`,
      );
      expect(second.code).toBe(4);
    } finally {
      daemon.child.kill('SIGTERM');
    }
    expect((await daemon.exited).code).toBe(0);
    const after = await agentProcess(['once'], env('state-shared-b')).exited;
    expect(after.log).toMatch(/outcome: error: git unreachable/);
    expect(await exists(join(installDir, '.flotilla-agent.lock'))).toBe(false);
  });
});

describe('tokens never leave the agent', () => {
  const GIT_TOKEN = 'gittok_S3cr3tGitT0kenValue_0123456789';
  const GITHUB_TOKEN = 'ghp_S3cr3tGitHubT0kenValue_0123456789';
  let git: GitServer;
  let github: GitHubStandIn;
  let failGit = false;

  beforeAll(async () => {
    git = await startGitServer({
      token: GIT_TOKEN,
      beforeRequest: () => {
        if (failGit) throw new Error('injected failure');
      },
    });
    await git.createBareRepo('fleet.git');
    github = await startGitHubStandIn({ token: GITHUB_TOKEN, repos: ['acme/fleet'] });
  });
  afterAll(async () => {
    await github?.close();
    await git?.stop();
  });

  async function allBytes(dir: string): Promise<string> {
    const parts: string[] = [];
    const walk = async (path: string): Promise<void> => {
      for (const name of await readdir(path)) {
        const full = join(path, name);
        const st = await lstat(full);
        parts.push(name);
        if (st.isDirectory()) await walk(full);
        else if (st.isFile()) parts.push(await readFile(full, 'latin1'));
      }
    };
    await walk(dir);
    return parts.join('\n');
  }

  it('are in no output, file, URL or status after git 500s, GitHub 500s and 403s and a failed pull', async () => {
    const installDir = join(work, 'install-tokens');
    const stateDir = join(work, 'state-tokens');
    await mkdir(installDir, { recursive: true });
    const authedUrl = git.url('fleet.git').replace('http://', `http://x-access-token:${GIT_TOKEN}@`);
    const env = {
      FLOTILLA_REPO: git.url('fleet.git'),
      FLOTILLA_GIT_TOKEN: GIT_TOKEN,
      FLOTILLA_TENANT: 'acme',
      FLOTILLA_DIR: installDir,
      FLOTILLA_STATE_DIR: stateDir,
      FLOTILLA_GITHUB_TOKEN: GITHUB_TOKEN,
      FLOTILLA_GITHUB_API: github.url,
      FLOTILLA_GITHUB_REPO: 'acme/fleet',
      FLOTILLA_HEALTH_TIMEOUT: '1',
    };
    const compose = new RecordingCompose({ services: HEALTHY, fail: { pull: `pull access denied for ${'registry'}` } });
    const io: Partial<AgentIo> = { compose, statusClient: { retry: { retries: 0, baseDelayMs: 1 }, throttle: { minWriteIntervalMs: 1 } } };
    const written: string[] = [];
    const once = async (over: Record<string, string> = {}) => {
      const run = await cli(['once'], { ...env, ...over }, io);
      written.push(run.out, run.err);
      return run;
    };
    let n = 0;
    const publish = async () => {
      const sourceCommit = fakeSourceCommit(`tokens ${++n}`);
      const fixture = tenantFixture({ tenant: 'acme', imageTag: `v${n}`, registry: '127.0.0.1:5000', repository: 'flotilla-test/app', sourceCommit });
      await publishTenants({
        repoUrl: git.url('fleet.git'),
        auth: { token: GIT_TOKEN },
        workDir: join(work, 'publish-tokens.git'),
        tenants: [{ slug: 'acme', files: fixture.files }],
        source: { repo: FIXTURE_SOURCE_REPO, commit: sourceCommit },
      });
      return (await remoteBranchHead(git.url('fleet.git'), 'tenants/acme', { token: GIT_TOKEN }))!;
    };

    const v1 = await publish();
    failGit = true;
    expect((await once()).code).toBe(2);
    // The token inside the URL, the way some hosts are set up: the error shows the URL without it.
    const inUrl = await once({ FLOTILLA_REPO: authedUrl, FLOTILLA_GIT_TOKEN: '' });
    expect(inUrl.code).toBe(2);
    expect(inUrl.err).toContain(git.url('fleet.git').replace('http://', 'http://'));
    failGit = false;
    // A wrong token: refused by the server, and the wrong one is not shown either.
    expect((await once({ FLOTILLA_GIT_TOKEN: `${GIT_TOKEN}-wrong` })).code).toBe(2);

    github.failNext(1000, { status: 500, match: { method: 'POST', path: /\/statuses\// } });
    expect((await once()).code).toBe(1); // pull fails; the failure status waits in the outbox
    expect((await readdir(join(stateDir, 'outbox'))).some((f) => f.endsWith('.json'))).toBe(true);
    github.clearFaults();
    github.failNext(2, { status: 403, headers: { 'retry-after': '1', 'x-ratelimit-remaining': '0' }, message: 'You have exceeded a secondary rate limit', match: { method: 'POST' } });
    compose.fail = {};
    const v2 = await publish();
    await once();
    await once({ FLOTILLA_REPO: authedUrl, FLOTILLA_GIT_TOKEN: '' });
    github.clearFaults();
    expect((await once()).code).toBe(0);

    expect(compose.ops).toContain('up');
    expect(github.statuses('acme/fleet', v2).map((s) => s.state)).toContain('success');
    expect(github.statuses('acme/fleet', v1).map((s) => s.state)).toContain('failure');
    const everything = [
      written.join('\n'),
      await allBytes(stateDir),
      await allBytes(installDir),
      JSON.stringify(github.statuses('acme/fleet')),
    ].join('\n');
    for (const token of [GIT_TOKEN, GITHUB_TOKEN, Buffer.from(`x-access-token:${GIT_TOKEN}`).toString('base64')]) {
      expect(everything).not.toContain(token);
    }
    // The git cache stores no remote URL at all (the URL is passed per call).
    expect(await readFile(join(stateDir, 'repo.git', 'config'), 'utf8')).not.toMatch(/url\s*=/);
  });
});
