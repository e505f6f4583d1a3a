// The fleet checkout as the commands read it: revisions spelled as git spells them
// (checked against `git rev-parse` itself), and the fleet files at a revision.
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { GitError } from './core/errors.js';
import { readFleetFilesAtRef, readFleetFilesFromDir, resolveCommit } from './repo.js';

describe('reading fleet inputs', () => {
  const dirs: string[] = [];
  afterEach(async () => {
    await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  });

  async function repoWith(files: Record<string, string>): Promise<{ dir: string; git: (...args: string[]) => string }> {
    const dir = await mkdtemp(join(tmpdir(), 'flotilla-plan-'));
    dirs.push(dir);
    const git = (...args: string[]) =>
      execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], { cwd: dir, encoding: 'utf8' }).trim();
    git('init', '-q', '-b', 'main');
    await writeFiles(dir, files);
    return { dir, git };
  }

  async function writeFiles(dir: string, files: Record<string, string>) {
    for (const [path, content] of Object.entries(files)) {
      await mkdir(dirname(join(dir, path)), { recursive: true });
      await writeFile(join(dir, path), content);
    }
  }

  it('reads fleet/ and templates/ at a branch, a commit id (full or short) and HEAD, ignoring other folders', async () => {
    const { dir, git } = await repoWith({
      'fleet/fleet.yaml': 'v: 1\n',
      'fleet/tenants/a.yaml': 'mode: managed\n',
      'templates/nginx/site.conf.hbs': 'server {}\n',
      'README.md': 'not an input\n',
    });
    git('add', '-A');
    git('commit', '-q', '-m', 'first');
    const first = git('rev-parse', 'HEAD');
    git('checkout', '-q', '-b', 'feature');
    await writeFiles(dir, { 'fleet/fleet.yaml': 'v: 2\n' });
    git('commit', '-q', '-am', 'second');

    const atMain = await readFleetFilesAtRef(dir, 'main');
    expect(atMain.commit).toBe(first);
    expect([...atMain.files]).toEqual([
      ['fleet/fleet.yaml', 'v: 1\n'],
      ['fleet/tenants/a.yaml', 'mode: managed\n'],
      ['templates/nginx/site.conf.hbs', 'server {}\n'],
    ]);
    expect((await readFleetFilesAtRef(dir, first.slice(0, 8))).commit).toBe(first);
    expect((await readFleetFilesAtRef(dir, first)).files.get('fleet/fleet.yaml')).toBe('v: 1\n');
    expect((await readFleetFilesAtRef(dir, 'HEAD')).files.get('fleet/fleet.yaml')).toBe('v: 2\n');
  });

  it('finds remote-tracking branches by their short name (origin/main)', async () => {
    const { dir, git } = await repoWith({ 'fleet/fleet.yaml': 'v: 1\n' });
    git('add', '-A');
    git('commit', '-q', '-m', 'first');
    git('update-ref', 'refs/remotes/origin/main', 'HEAD');
    expect((await readFleetFilesAtRef(dir, 'origin/main')).files.get('fleet/fleet.yaml')).toBe('v: 1\n');
  });

  it('names the revision it cannot find, and says to fetch history only in a shallow clone', async () => {
    const { dir, git } = await repoWith({ 'fleet/fleet.yaml': 'v: 1\n' });
    git('add', '-A');
    git('commit', '-q', '-m', 'first');
    const err = await readFleetFilesAtRef(dir, 'origin/nope').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GitError);
    expect((err as Error).message).toMatch(/unknown revision "origin\/nope": no branch, tag or commit "origin\/nope"/);
    expect((err as Error).message).not.toContain('fetch');

    const past = await readFleetFilesAtRef(dir, 'HEAD~1').catch((e: unknown) => e);
    expect(past).toBeInstanceOf(GitError);
    expect((past as Error).message).toMatch(/unknown revision "HEAD~1": commit [0-9a-f]{12} has no parent$/);

    const shallow = await mkdtemp(join(tmpdir(), 'flotilla-shallow-'));
    dirs.push(shallow);
    git('commit', '-q', '--allow-empty', '-m', 'second');
    execFileSync('git', ['clone', '-q', '--depth', '1', `file://${dir}`, shallow]);
    const cut = await readFleetFilesAtRef(shallow, 'HEAD~1').catch((e: unknown) => e);
    expect((cut as Error).message).toMatch(/unknown revision "HEAD~1": .*shallow clone, fetch the history first/);
  });

  it('reads the working tree including uncommitted edits', async () => {
    const { dir } = await repoWith({ 'fleet/fleet.yaml': 'v: 3\n', 'templates/env.hbs': 'A=1\n', 'agent/x.ts': '' });
    expect([...(await readFleetFilesFromDir(dir)).files.keys()]).toEqual(['fleet/fleet.yaml', 'templates/env.hbs']);
  });

  it('resolves every revision form people type to the commit `git rev-parse` names', async () => {
    const { dir, git } = await repoWith({ 'fleet/fleet.yaml': 'v: 1\n' });
    git('add', '-A');
    git('commit', '-q', '-m', 'one');
    git('tag', 'v1');
    git('tag', '-a', 'v1-annotated', '-m', 'release 1');
    git('commit', '-q', '--allow-empty', '-m', 'two');
    git('checkout', '-q', '-b', 'side', 'HEAD~1');
    git('commit', '-q', '--allow-empty', '-m', 'side one');
    git('commit', '-q', '--allow-empty', '-m', 'side two');
    git('checkout', '-q', 'main');
    git('merge', '-q', '--no-ff', '-m', 'merge side', 'side');
    git('commit', '-q', '--allow-empty', '-m', 'three');
    git('update-ref', 'refs/remotes/origin/main', 'HEAD');
    const short = git('rev-parse', 'HEAD~2').slice(0, 7);
    const revisions = [
      'HEAD', 'HEAD~1', 'HEAD~', 'HEAD^', 'HEAD^1', 'HEAD~1^2', 'HEAD~1^2~1', 'HEAD~1^^', 'HEAD~^2',
      'main', 'main^', 'main~3', 'origin/main', 'origin/main~3', 'side', 'side~2', 'v1', 'v1-annotated', 'v1-annotated~0',
      short, `${short}^`, 'HEAD^0',
    ];
    for (const revision of revisions) {
      expect({ revision, commit: await resolveCommit(dir, revision) }).toEqual({ revision, commit: git('rev-parse', '--verify', `${revision}^{commit}`) });
    }
    for (const revision of ['HEAD~9', 'HEAD~1^3', 'nope', 'nope~1', '~1']) {
      expect(() => git('rev-parse', '--verify', '-q', `${revision}^{commit}`)).toThrow();
      await expect(resolveCommit(dir, revision)).rejects.toThrow(GitError);
    }
  });
});
