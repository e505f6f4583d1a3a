// `flotilla bump` end to end: a local checkout whose origin is the loopback git
// server (real `git http-backend`, token required), and the OpenAPI-checked GitHub and
// Gitea stand-ins for the pull request (the tests that open none run once).
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Command } from 'commander';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FORGE_KINDS, startForgeStandIn, type ForgeStandIn } from '../../test/support/forge-standin.js';
import { startGitServer, type GitServer } from '../../test/support/git-server.js';
import { GitError, SettingError } from '../core/errors.js';
import type { CliIo } from '../cli.js';
import { registerBump } from './bump.js';

const execFileAsync = promisify(execFile);
const TOKEN = 'ghs_bump_test_token_0123456789abcdef';

const LINDA = `# Pinned to the previous release until her campaign ends.
domain: linda.cmlite.org
imageTag: v2.9.7   # remove to follow the fleet
mode: adopted
`;

const FILES: Record<string, string> = {
  'fleet/fleet.yaml': `defaults:
  # The release every tenant runs unless its own file pins another tag.
  imageTag: v2.10.3
  registry: 127.0.0.1:5000/flotilla
  images:
    api: changemaker-api
  domainSuffix: fleet.example.net
`,
  'fleet/tenants/linda.yaml': LINDA,
  'fleet/tenants/pia.yaml': 'mode: adopted\n',
  'templates/env.hbs': 'IMAGE_TAG={{imageTag}}\n',
};

describe.each(FORGE_KINDS)('flotilla bump (%s stand-in)', (kind) => {
  let server: GitServer;
  let standIn: ForgeStandIn;
  let bare: string;
  let work: string;

  const git = (cwd: string, ...args: string[]) =>
    execFileSync('git', ['-c', 'user.name=Ada', '-c', 'user.email=ada@example.com', ...args], {
      cwd,
      encoding: 'utf8',
      env: { ...process.env, GIT_TERMINAL_PROMPT: '0' },
    }).trim();

  beforeAll(async () => {
    server = await startGitServer({ token: TOKEN });
  });
  afterAll(async () => {
    await server.stop();
  });

  beforeEach(async () => {
    bare = await server.createBareRepo(`fleet-${Date.now()}-${Math.random().toString(36).slice(2)}.git`);
    work = await mkdtemp(join(tmpdir(), 'flotilla-bump-'));
    git(work, 'init', '-q', '-b', 'main');
    git(work, 'config', 'user.name', 'Ada');
    git(work, 'config', 'user.email', 'ada@example.com');
    for (const [path, content] of Object.entries(FILES)) {
      await mkdir(dirname(join(work, path)), { recursive: true });
      await writeFile(join(work, path), content);
    }
    git(work, 'add', '-A');
    git(work, 'commit', '-q', '-m', 'fleet');
    const url = server.url(bare.split('/').pop()!);
    // The remote URL carries no credentials; the token comes from the environment.
    git(work, 'remote', 'add', 'origin', url);
    // Async: the git server runs in this process, a sync child would block it.
    await execFileAsync('git', ['-c', `http.extraHeader=Authorization: Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}`, 'push', '-q', 'origin', 'main'], {
      cwd: work,
      env: { ...process.env, GIT_TERMINAL_PROMPT: '0' },
    });
    standIn = await startForgeStandIn(kind, {
      token: TOKEN,
      repos: ['acme/fleet'],
      resolveBranch: (branch) => {
        try {
          return execFileSync('git', ['--git-dir', bare, 'rev-parse', '--verify', '-q', `refs/heads/${branch}`], { encoding: 'utf8' }).trim();
        } catch {
          return undefined;
        }
      },
    });
  });
  afterEach(async () => {
    expect(standIn.violations()).toEqual([]);
    await standIn.close();
    await rm(work, { recursive: true, force: true });
  });

  function cli(env: Record<string, string> = { GITHUB_TOKEN: TOKEN, GITHUB_API_URL: standIn.url }) {
    const out: string[] = [];
    const io: CliIo = { stdout: (s) => out.push(s), stderr: (s) => out.push(s), cwd: work, env };
    const program = new Command('flotilla').option('--root <dir>', '', '.').exitOverride();
    registerBump(program, io);
    return { run: (args: string[]) => program.parseAsync(args, { from: 'user' }), out };
  }

  it('commits the edit on bump/<slug>-<tag>, pushes it and opens a PR listing old -> new', async () => {
    const { run, out } = cli();
    await run(['bump', 'linda', 'pia', '--tag', 'v2.10.4', '--open-pr', '--repo', 'acme/fleet']);

    const branch = 'bump/linda-pia-v2.10.4';
    const pushed = execFileSync('git', ['--git-dir', bare, 'rev-parse', `refs/heads/${branch}`], { encoding: 'utf8' }).trim();
    expect(pushed).toBe(git(work, 'rev-parse', branch));
    // The comment and the odd spacing before it survive; only the value changed.
    expect(execFileSync('git', ['--git-dir', bare, 'show', `${branch}:fleet/tenants/linda.yaml`], { encoding: 'utf8' })).toBe(
      LINDA.replace('v2.9.7', 'v2.10.4'),
    );
    expect(execFileSync('git', ['--git-dir', bare, 'show', `${branch}:fleet/tenants/pia.yaml`], { encoding: 'utf8' })).toBe(
      'mode: adopted\nimageTag: v2.10.4\n',
    );
    expect(git(work, 'log', '-1', '--format=%an <%ae>%n%P', branch)).toBe(`Ada <ada@example.com>\n${git(work, 'rev-parse', 'main')}`);

    // The working tree and the checked-out branch are untouched.
    expect(git(work, 'rev-parse', '--abbrev-ref', 'HEAD')).toBe('main');
    expect(await readFile(join(work, 'fleet/tenants/linda.yaml'), 'utf8')).toBe(LINDA);
    expect(git(work, 'status', '--porcelain')).toBe('');

    const [pr] = standIn.pulls('acme/fleet');
    expect(pr).toMatchObject({ head: branch, base: 'main', headSha: pushed, title: 'Bump linda, pia to v2.10.4' });
    expect(pr?.body).toContain('| `linda` | `v2.9.7` → `v2.10.4` |');
    expect(pr?.body).toContain('| `pia` | `v2.10.3` → `v2.10.4` |');
    expect(out.join('')).toContain('linda: v2.9.7 -> v2.10.4\npia: v2.10.3 -> v2.10.4\n');
    expect(out.join('')).toMatch(/opened pull request #1: http/);
    expect(out.join('')).not.toContain(TOKEN);
  });

  it('bumps the fleet default with --all', async () => {
    const { run, out } = cli();
    await run(['bump', '--all', '--tag', 'v2.11.0']);
    const text = execFileSync('git', ['--git-dir', bare, 'show', 'bump/all-v2.11.0:fleet/fleet.yaml'], { encoding: 'utf8' });
    expect(text).toBe(FILES['fleet/fleet.yaml']!.replace('imageTag: v2.10.3', 'imageTag: v2.11.0'));
    expect(out.join('')).toBe('pia: v2.10.3 -> v2.11.0\n' + `committed ${git(work, 'rev-parse', 'bump/all-v2.11.0').slice(0, 12)} on bump/all-v2.11.0 and pushed it to origin\n`);
    expect(standIn.pulls('acme/fleet')).toEqual([]);
  });

  it('says so and creates nothing when the tenant already runs the tag', async () => {
    const { run, out } = cli();
    await run(['bump', 'pia', '--tag', 'v2.10.3', '--open-pr', '--repo', 'acme/fleet']);
    expect(out.join('')).toBe('nothing to bump: already on v2.10.3: pia; no branch or pull request created\n');
    expect(git(work, 'branch', '--list', 'bump/*')).toBe('');
    expect(execFileSync('git', ['--git-dir', bare, 'for-each-ref', 'refs/heads/bump/'], { encoding: 'utf8' })).toBe('');
    expect(standIn.pulls('acme/fleet')).toEqual([]);
  });

  it('refuses --open-pr without a token before committing anything', async () => {
    const { run } = cli({});
    await expect(run(['bump', 'pia', '--tag', 'v9', '--open-pr', '--repo', 'acme/fleet'])).rejects.toThrow(SettingError);
    expect(git(work, 'branch', '--list', 'bump/*')).toBe('');
  });

  it('fails with a git error naming the remote when the push is refused, token not shown', async () => {
    const { run } = cli({ GITHUB_TOKEN: 'ghs_wrong_token_000000000000000000' });
    const err = await run(['bump', 'pia', '--tag', 'v9']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GitError);
    expect((err as Error).message).toContain(server.url(bare.split('/').pop()!));
    expect((err as Error).message).not.toContain('ghs_wrong_token');
  });

  it('leaves no local branch behind when the push fails, so the same bump runs again', async () => {
    const err = await cli({ GITHUB_TOKEN: 'ghs_wrong_token_000000000000000000' }).run(['bump', 'pia', '--tag', 'v9']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GitError);
    expect(git(work, 'branch', '--list', 'bump/*')).toBe('');

    const { run, out } = cli();
    await run(['bump', 'pia', '--tag', 'v9']);
    expect(out.join('')).toContain('on bump/pia-v9 and pushed it to origin\n');
    expect(execFileSync('git', ['--git-dir', bare, 'rev-parse', 'refs/heads/bump/pia-v9'], { encoding: 'utf8' }).trim()).toBe(git(work, 'rev-parse', 'bump/pia-v9'));
  });

  it('commits without pushing with --no-push, and refuses --open-pr with it', async () => {
    const { run, out } = cli();
    await run(['bump', 'pia', '--tag', 'v9', '--no-push']);
    const commit = git(work, 'rev-parse', 'bump/pia-v9');
    expect(out.join('')).toBe(`pia: v2.10.3 -> v9\ncommitted ${commit.slice(0, 12)} on bump/pia-v9 in this checkout (not pushed); push it with: git push origin bump/pia-v9\n`);
    expect(execFileSync('git', ['--git-dir', bare, 'for-each-ref', 'refs/heads/bump/'], { encoding: 'utf8' })).toBe('');
    await expect(cli().run(['bump', 'linda', '--tag', 'v9', '--no-push', '--open-pr'])).rejects.toThrow(/--open-pr: a pull request needs the branch pushed/);
  });

  it('commits without pushing by default when the checkout has no origin remote', async () => {
    git(work, 'remote', 'remove', 'origin');
    const { run, out } = cli({});
    await run(['bump', '--all', '--tag', 'v3']);
    expect(git(work, 'show', 'bump/all-v3:fleet/fleet.yaml')).toContain('imageTag: v3');
    expect(out.join('')).toContain('in this checkout (not pushed: no origin remote); push it with: git push origin bump/all-v3\n');
  });
});

