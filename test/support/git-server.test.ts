import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { startGitServer, type GitServer } from './git-server.js';

const execFileAsync = promisify(execFile);
const gitEnv = { ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_CONFIG_NOSYSTEM: '1', HOME: tmpdir() };

async function git(args: string[], cwd?: string): Promise<string> {
  const { stdout } = await execFileAsync('git', args, { cwd, env: gitEnv });
  return stdout;
}

async function pushOneCommit(url: string, branch: string): Promise<{ dir: string; oid: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-git-client-'));
  await git(['init', '--quiet', '--initial-branch', branch, dir]);
  await writeFile(join(dir, 'hello.txt'), 'hello\n');
  await git(['add', 'hello.txt'], dir);
  await git(['-c', 'user.name=t', '-c', 'user.email=t@example.invalid', 'commit', '--quiet', '-m', 'first'], dir);
  await git(['push', '--quiet', url, `HEAD:refs/heads/${branch}`], dir);
  return { dir, oid: (await git(['rev-parse', 'HEAD'], dir)).trim() };
}

describe('loopback git server', () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });
  const start = async (options: Parameters<typeof startGitServer>[0] = {}): Promise<GitServer> => {
    const server = await startGitServer(options);
    cleanup.push(() => server.stop());
    return server;
  };

  it('accepts a push from the git CLI and serves it back to ls-remote and clone', async () => {
    const server = await start();
    await server.createBareRepo('fleet.git');
    const { dir, oid } = await pushOneCommit(server.url('fleet.git'), 'tenants/linda');
    cleanup.push(() => rm(dir, { recursive: true, force: true }));

    const listed = await git(['ls-remote', server.url('fleet.git')]);
    expect(listed).toContain(`${oid}\trefs/heads/tenants/linda`);

    const clone = await mkdtemp(join(tmpdir(), 'flotilla-git-clone-'));
    cleanup.push(() => rm(clone, { recursive: true, force: true }));
    await git(['clone', '--quiet', '--branch', 'tenants/linda', server.url('fleet.git'), clone]);
    expect(await git(['show', 'HEAD:hello.txt'], clone)).toBe('hello\n');
  });

  it('speaks protocol v2 when the client asks for it', async () => {
    const server = await start();
    await server.createBareRepo('fleet.git');
    const { dir } = await pushOneCommit(server.url('fleet.git'), 'main');
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const { stderr } = await execFileAsync(
      'git',
      ['-c', 'protocol.version=2', 'ls-remote', server.url('fleet.git'), 'refs/heads/main'],
      { env: { ...gitEnv, GIT_TRACE_PACKET: '1' } },
    );
    expect(stderr).toMatch(/version 2/);
    expect(stderr).toMatch(/ls-remote> command=ls-refs/);
  });

  it('counts requests and bytes per path, and resets the counts', async () => {
    const server = await start();
    await server.createBareRepo('fleet.git');
    await git(['ls-remote', server.url('fleet.git')]);
    const stats = server.stats();
    const discovery = stats.byPath['GET /fleet.git/info/refs?service=git-upload-pack'];
    expect(discovery?.requests).toBe(1);
    expect(discovery?.bytesOut).toBeGreaterThan(0);
    expect(discovery?.bytesIn).toBeGreaterThan(0);
    expect(stats.requests).toBe(Object.values(stats.byPath).reduce((n, p) => n + p.requests, 0));
    server.resetStats();
    expect(server.stats()).toEqual({ requests: 0, bytesIn: 0, bytesOut: 0, byPath: {} });
  });

  it('answers 401 without the token and serves with it', async () => {
    const server = await start({ token: 's3cret-token' });
    await server.createBareRepo('fleet.git');
    const plain = server.url('fleet.git');
    await expect(git(['ls-remote', plain])).rejects.toThrow(/Authentication failed|401|could not read Username/);
    expect(server.stats().byPath['GET /fleet.git/info/refs?service=git-upload-pack']?.requests).toBeGreaterThan(0);

    const withToken = plain.replace('http://', 'http://x-access-token:s3cret-token@');
    const { dir } = await pushOneCommit(withToken, 'main');
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    expect(await git(['ls-remote', withToken, 'refs/heads/main'])).toMatch(/refs\/heads\/main/);
  });

  it('runs standalone: prints its URL and stops on SIGTERM', async () => {
    const root = await mkdtemp(join(tmpdir(), 'flotilla-git-root-'));
    cleanup.push(() => rm(root, { recursive: true, force: true }));
    // node with the tsx loader (not npx) so the PID we signal is the server itself.
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'scripts/git-server.ts', '--root', root, '--repo', 'fleet.git'],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    cleanup.push(async () => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    const firstLine = await new Promise<string>((resolve) => {
      createInterface({ input: child.stdout }).once('line', resolve);
    });
    expect(firstLine).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const { dir } = await pushOneCommit(`${firstLine}fleet.git`, 'main');
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    expect(await git(['--git-dir', join(root, 'fleet.git'), 'log', '--format=%s', 'main'])).toBe('first\n');
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
