// `flotilla-agent install` / `uninstall` through the real CLI, into a temp root:
// real git over HTTP with a token, the GitHub stand-in for the token check, real
// docker/compose binaries (the engine is deliberately unreachable, so that check fails).
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { parse as parseDotenv } from 'dotenv';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { remoteBranchHead } from '../renderer/core/git.js';
import { publishTenants } from '../renderer/publish/publish.js';
import { startGitServer, type GitServer } from '../test/support/git-server.js';
import { startGitHubStandIn, type GitHubStandIn } from '../test/support/github-standin.js';
import { fakeSourceCommit, FIXTURE_SOURCE_REPO, tenantFixture } from '../test/support/tenant-fixture.js';
import { parseAgentConfig } from './config.js';
import { envLine, renderUnit, systemdWord } from './install.js';
import { runAgentCli } from './main.js';

const execFileAsync = promisify(execFile);
const GIT_TOKEN = 'git-token-for-install-test-0123';

let git: GitServer;
let github: GitHubStandIn;
let head: string;
let root: string;

beforeAll(async () => {
  git = await startGitServer({ token: GIT_TOKEN });
  github = await startGitHubStandIn({ repos: ['acme/fleet'] });
  await git.createBareRepo('fleet.git');
  const work = await mkdtemp(join(tmpdir(), 'flotilla-install-publish-'));
  const sourceCommit = fakeSourceCommit('install test');
  const fixture = tenantFixture({ tenant: 'acme', imageTag: 'v1', registry: '127.0.0.1:5000', repository: 'flotilla-test/app', sourceCommit });
  await publishTenants({
    repoUrl: git.url('fleet.git'),
    auth: { token: GIT_TOKEN },
    workDir: join(work, 'publish.git'),
    tenants: [{ slug: 'acme', files: fixture.files }],
    source: { repo: FIXTURE_SOURCE_REPO, commit: sourceCommit },
  });
  head = (await remoteBranchHead(git.url('fleet.git'), 'tenants/acme', { token: GIT_TOKEN }))!;
  await rm(work, { recursive: true, force: true });
});
afterAll(async () => {
  await github.close();
  await git.stop();
});
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'flotilla-install-root-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runAgentCli(args, {
    stdout: (s) => void (out += s),
    stderr: (s) => void (err += s),
    env: { PATH: process.env.PATH, DOCKER_HOST: `unix://${join(root, 'no-docker.sock')}`, ...env },
  });
  return { code, out, err };
}

function installArgs(extra: string[] = []): string[] {
  return [
    'install',
    '--repo', git.url('fleet.git'),
    '--tenant', 'acme',
    '--dir', '/srv/acme',
    '--root', root,
    '--agent-command', `${process.execPath} /opt/flotilla/dist/agent/main.js`,
    '--metrics', '127.0.0.1:9464',
    '--set', 'FLOTILLA_GITHUB_REPO=acme/fleet', `FLOTILLA_GITHUB_API=${github.url}`, 'FLOTILLA_STATE_DIR=/var/lib/flotilla/acme',
    ...extra,
  ];
}

const tokens = () => ({ FLOTILLA_GIT_TOKEN: GIT_TOKEN, FLOTILLA_GITHUB_TOKEN: github.token });

async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      out.push(`${relative(dir, p)}${e.isDirectory() ? '/' : ''}`);
      if (e.isDirectory()) await walk(p);
    }
  };
  await walk(dir);
  return out.sort();
}

/** [Section] -> key -> values, as systemd reads a unit (repeated keys accumulate). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const section = /^\[(\w+)\]$/.exec(line);
    if (section) {
      current = new Map();
      sections.set(section[1]!, current);
      continue;
    }
    const eq = line.indexOf('=');
    expect(eq, `unit line outside key=value: ${line}`).toBeGreaterThan(0);
    const key = line.slice(0, eq);
    current!.set(key, [...(current!.get(key) ?? []), line.slice(eq + 1)]);
  }
  return sections;
}

async function systemdAnalyze(): Promise<boolean> {
  try {
    await execFileAsync('systemd-analyze', ['--version']);
    return true;
  } catch {
    return false;
  }
}

describe('flotilla-agent install', () => {
  it('writes a 0600 env file the agent reads back, a valid unit, and reports every check', async () => {
    const { code, out } = await cli(installArgs(), tokens());

    const envPath = join(root, 'etc/flotilla/acme.env');
    expect((await stat(envPath)).mode & 0o777).toBe(0o600);
    const vars = parseDotenv(await readFile(envPath, 'utf8'));
    const config = parseAgentConfig(vars);
    expect(config).toMatchObject({
      repo: git.url('fleet.git'),
      tenant: 'acme',
      installDir: '/srv/acme',
      stateDir: '/var/lib/flotilla/acme',
      gitToken: GIT_TOKEN,
      githubToken: github.token,
      githubRepo: 'acme/fleet',
    });

    const unitPath = join(root, 'etc/systemd/system/flotilla-agent-acme.service');
    const unit = parseUnit(await readFile(unitPath, 'utf8'));
    expect(unit.get('Service')!.get('Restart')).toEqual(['on-failure']);
    expect(unit.get('Service')!.get('ExecStart')).toEqual([
      `${process.execPath} /opt/flotilla/dist/agent/main.js run --settings /etc/flotilla/acme.env --metrics 127.0.0.1:9464`,
    ]);
    expect(unit.get('Install')!.get('WantedBy')).toEqual(['multi-user.target']);
    if (await systemdAnalyze()) {
      const verified = await execFileAsync('systemd-analyze', ['verify', unitPath]);
      expect(verified.stderr).toBe('');
    }

    // The install dir was created under the root and is writable.
    expect((await stat(join(root, 'srv/acme'))).isDirectory()).toBe(true);

    expect(out).toContain('/etc/flotilla/acme.env');
    expect(out).toMatch(new RegExp(`ok +git: tenants/acme is at ${head.slice(0, 12)}.*token accepted`));
    expect(out).toMatch(/ok +github token: token can read acme\/fleet/);
    expect(out).toMatch(/ok +compose: /);
    expect(out).toMatch(/ok +install dir: \/srv\/acme is writable/);
    // No engine at DOCKER_HOST: the one failing check, named, and the exit code says so.
    expect(out).toMatch(/fail docker: docker engine not reachable/);
    expect(out).toContain('next: fix docker, run install again');
    expect(out).toContain('systemctl daemon-reload && systemctl enable --now flotilla-agent-acme.service');
    expect(code).toBe(1);
    expect(out).not.toContain(GIT_TOKEN);
    expect(out).not.toContain(github.token);
  });

  it('names a rejected git token and a rejected GitHub token without printing either', async () => {
    const { code, out } = await cli(installArgs(), { FLOTILLA_GIT_TOKEN: 'wrong-git-token-abcdef', FLOTILLA_GITHUB_TOKEN: 'ghs_wrong_token_abcdefgh' });
    expect(code).toBe(1);
    expect(out).toMatch(/fail git: .*(401|auth)/i);
    expect(out).toMatch(/fail github token: .*rejected the token \(401\)/);
    expect(out).not.toContain('wrong-git-token-abcdef');
    expect(out).not.toContain('ghs_wrong_token_abcdefgh');
  });

  it('refuses a bad setting before writing anything', async () => {
    const { code, err } = await cli(['install', '--repo', 'git@github.com:acme/fleet.git', '--tenant', 'acme', '--dir', '/srv/acme', '--root', root, '--agent-command', 'x']);
    expect(code).toBe(2);
    expect(err).toContain('FLOTILLA_REPO: must be an http(s) git URL');
    expect(await tree(root)).toEqual([]);
  });

  it('does not overwrite an env file it did not write, unless forced; re-running its own install is fine', async () => {
    await mkdir(join(root, 'etc/flotilla'), { recursive: true });
    await writeFile(join(root, 'etc/flotilla/acme.env'), 'FLOTILLA_TENANT=acme\n# hand-written\n');
    const refused = await cli(installArgs(), tokens());
    expect(refused.code).toBe(2);
    expect(refused.err).toContain('acme.env exists and was not written by flotilla-agent install');
    expect(await readFile(join(root, 'etc/flotilla/acme.env'), 'utf8')).toContain('# hand-written');

    await cli(installArgs(['--force']), tokens());
    expect(await readFile(join(root, 'etc/flotilla/acme.env'), 'utf8')).not.toContain('# hand-written');
    const again = await cli(installArgs(), tokens());
    expect(again.err).toBe('');
    expect(again.out).toContain('wrote:');
  });
});

describe('flotilla-agent uninstall', () => {
  it('removes exactly what install wrote and keeps everything else', async () => {
    await mkdir(join(root, 'etc/flotilla'), { recursive: true });
    await writeFile(join(root, 'etc/flotilla/other-tenant.env'), 'FLOTILLA_TENANT=other\n');
    const before = await tree(root);

    await cli(installArgs(), tokens());
    // Written by the agent later, not by install: uninstall must leave it.
    await writeFile(join(root, 'srv/acme/docker-compose.yml'), 'services: {}\n');
    const installed = await tree(root);
    expect(installed).toEqual(
      expect.arrayContaining(['etc/flotilla/acme.env', 'etc/flotilla/acme.install.json', 'etc/systemd/system/flotilla-agent-acme.service']),
    );

    const { code, out } = await cli(['uninstall', '--tenant', 'acme', '--root', root]);
    expect(code).toBe(0);
    // The host's age identity stays with the agent's state: the fleet's secrets for this host are encrypted to it.
    const kept = ['var/', 'var/lib/', 'var/lib/flotilla/', 'var/lib/flotilla/acme/', 'var/lib/flotilla/acme/age-identity.txt'];
    expect(await tree(root)).toEqual([...before, 'srv/', 'srv/acme/', 'srv/acme/docker-compose.yml', ...kept].sort());
    expect(out).toContain('/etc/flotilla/acme.env');
    expect(out).toMatch(/kept:\n {2}\/srv\/acme\/: not empty/);
  });

  it('keeps an env file edited since install unless forced', async () => {
    await cli(installArgs(), tokens());
    await writeFile(join(root, 'etc/flotilla/acme.env'), 'FLOTILLA_TENANT=acme\nFLOTILLA_SCHEDULE=*/5\n', { flag: 'a' });
    const first = await cli(['uninstall', '--tenant', 'acme', '--root', root]);
    expect(first.out).toContain('/etc/flotilla/acme.env: changed since install');
    expect((await tree(root)).includes('etc/flotilla/acme.env')).toBe(true);
    expect((await tree(root)).includes('etc/systemd/system/flotilla-agent-acme.service')).toBe(false);
  });

  it('says so when there is nothing to uninstall', async () => {
    const { code, err } = await cli(['uninstall', '--tenant', 'acme', '--root', root]);
    expect(code).toBe(2);
    expect(err).toContain('no install record');
  });
});

describe('what install writes', () => {
  it('quotes env values dotenv would otherwise cut, and refuses ones it cannot keep intact', () => {
    const line = envLine('FLOTILLA_SCHEDULE', '*/5 * * * * # every five');
    expect(parseDotenv(line).FLOTILLA_SCHEDULE).toBe('*/5 * * * * # every five');
    expect(() => envLine('FLOTILLA_X', "it's")).toThrow(/single quote/);
    expect(() => envLine('FLOTILLA_X', 'a\nb')).toThrow(/newline/);
  });

  it('quotes ExecStart words systemd would split or expand', () => {
    expect(systemdWord('/opt/my agent/main.js')).toBe('"/opt/my agent/main.js"');
    expect(systemdWord('100%')).toBe('"100%%"');
    const unit = renderUnit({ tenant: 'acme', command: ['/usr/bin/node', '/opt/a b/main.js'], envFile: '/etc/flotilla/acme.env' });
    expect(unit).toContain('ExecStart=/usr/bin/node "/opt/a b/main.js" run --settings /etc/flotilla/acme.env\n');
  });
});
