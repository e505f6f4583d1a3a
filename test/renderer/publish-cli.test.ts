// `flotilla publish` on the example fleet, through the CLI, against the loopback
// git http-backend server; branches are read back with the real git CLI.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runCli } from '../../renderer/main.js';
import type { CliIo } from '../../renderer/cli.js';
import { startGitServer, type GitServer } from '../support/git-server.js';
import { fetchBranch, readRawCommit } from '../../renderer/core/git.js';
import { parseSigningKey, parseTrustedKeys, publicKeyLine, verifyCommitSignature } from '../../renderer/core/signing.js';

const repoRoot = resolve(import.meta.dirname, '../..');
let server: GitServer;
let work: string;
let fleetCopy: string;
let remote: string;

function git(args: string[], cwd?: string): string {
  return execFileSync('git', args, { cwd, encoding: 'utf8' }).trim();
}

async function flotilla(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: CliIo = { stdout: (s) => void (out += s), stderr: (s) => void (err += s), cwd: fleetCopy, env: {} };
  const code = await runCli(args, io);
  return { code, out, err };
}

// The server runs in this process: talking to it must not block the event loop.
async function tenantBranches(): Promise<Map<string, string>> {
  const { stdout } = await promisify(execFile)('git', ['ls-remote', remote, 'refs/heads/tenants/*']);
  const lines = stdout.trim().split('\n').filter(Boolean);
  return new Map(lines.map((l) => { const [sha, ref] = l.split('\t'); return [ref!.replace('refs/heads/', ''), sha!]; }));
}

beforeAll(async () => {
  server = await startGitServer();
  await server.createBareRepo('fleet.git');
  remote = server.url('fleet.git');
  work = await mkdtemp(join(tmpdir(), 'flotilla-publish-cli-'));
  fleetCopy = join(work, 'source');
  await cp(join(repoRoot, 'fleet'), join(fleetCopy, 'fleet'), { recursive: true });
  await cp(join(repoRoot, 'templates'), join(fleetCopy, 'templates'), { recursive: true });
  git(['init', '-q', '-b', 'main', fleetCopy]);
  git(['-c', 'user.name=t', '-c', 'user.email=t@x', 'add', '-A'], fleetCopy);
  git(['-c', 'user.name=t', '-c', 'user.email=t@x', 'commit', '-qm', 'fleet'], fleetCopy);
});

afterAll(async () => {
  await server?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('flotilla publish (example fleet, loopback git server)', () => {
  const cache = () => join(work, 'cache');

  it('makes one branch per unpaused tenant and lists the paused one', async () => {
    const r = await flotilla(['publish', '--repo', remote, '--cache', cache(), '--all-waves']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const branches = await tenantBranches();
    expect([...branches.keys()].sort()).toEqual(
      ['tenants/bnkops', 'tenants/linda', 'tenants/marcelle', 'tenants/pia', 'tenants/soroush'],
    );
    expect(r.out).toMatch(/paused \(skipped\): trbh/);
    const head = git(['rev-parse', 'HEAD'], fleetCopy);
    const message = git(['--git-dir', join(server.root, 'fleet.git'), 'log', '-1', '--format=%B', 'tenants/linda']);
    expect(message).toContain('linda');
    expect(message.trim().split('\n').pop()).toBe(`Flotilla-Source: ${head}`);
    const manifest = JSON.parse(git(['--git-dir', join(server.root, 'fleet.git'), 'show', 'tenants/linda:.flotilla/manifest.json']));
    expect(manifest.tenant).toBe('linda');
    expect(manifest.imageTag).toBe('v2.9.7');
  });

  it('a second run adds nothing and pushes nothing', async () => {
    const before = await tenantBranches();
    server.resetStats();
    const r = await flotilla(['publish', '--repo', remote, '--cache', cache(), '--all-waves']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/0 committed, 5 unchanged/);
    expect(await tenantBranches()).toEqual(before);
    const pushes = Object.keys(server.stats().byPath).filter((p) => p.includes('git-receive-pack') && p.startsWith('POST'));
    expect(pushes).toEqual([]);
  });

  it("bumping one tenant's imageTag adds exactly one commit on one branch, whose compose diff shows the new tag", async () => {
    const before = await tenantBranches();
    const file = join(fleetCopy, 'fleet/tenants/pia.yaml');
    const text = await readFile(file, 'utf8');
    await writeFile(file, `${text.replace(/^imageTag:.*\n/m, '')}imageTag: v2.11.0\n`);
    git(['-c', 'user.name=t', '-c', 'user.email=t@x', 'commit', '-qam', 'bump pia'], fleetCopy);
    const r = await flotilla(['publish', '--repo', remote, '--cache', cache(), '--all-waves']);
    expect(r.code).toBe(0);
    const after = await tenantBranches();
    const moved = [...after.keys()].filter((b) => after.get(b) !== before.get(b));
    expect(moved).toEqual(['tenants/pia']);
    const gitdir = join(server.root, 'fleet.git');
    expect(git(['--git-dir', gitdir, 'rev-list', '--count', `${before.get('tenants/pia')}..tenants/pia`])).toBe('1');
    const diff = git(['--git-dir', gitdir, 'diff', before.get('tenants/pia')!, 'tenants/pia', '--', '.flotilla/manifest.json', 'docker-compose.yml']);
    expect(diff).toMatch(/^\+.*v2\.11\.0/m);
  });

  it('signs tenant commits with --signing-key, on the wave path and with --all-waves', async () => {
    const keyFile = join(work, 'publisher_ed25519');
    await promisify(execFile)('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'publisher', '-f', keyFile]);
    const trusted = parseTrustedKeys(publicKeyLine(parseSigningKey(await readFile(keyFile, 'utf8')), 'publisher'));
    const file = join(fleetCopy, 'fleet/fleet.yaml');
    await writeFile(file, (await readFile(file, 'utf8')).replace(/^  imageTag: .*$/m, '  imageTag: v2.12.0'));
    git(['-c', 'user.name=t', '-c', 'user.email=t@x', 'commit', '-qam', 'fleet default v2.12.0'], fleetCopy);
    const before = await tenantBranches();
    // Without --all-waves only the canary wave goes out; its commit is signed too.
    expect((await flotilla(['publish', '--repo', remote, '--cache', cache(), '--signing-key', keyFile])).code).toBe(0);
    expect((await flotilla(['publish', '--repo', remote, '--cache', cache(), '--signing-key', keyFile, '--all-waves'])).code).toBe(0);
    const after = await tenantBranches();
    const moved = [...after.keys()].filter((b) => after.get(b) !== before.get(b));
    expect(moved.length).toBeGreaterThan(1);
    const gitdir = join(work, 'verify.git');
    for (const branch of moved) {
      const head = await fetchBranch(gitdir, remote, branch);
      expect(verifyCommitSignature(await readRawCommit(gitdir, head), trusted), branch).toMatchObject({ ok: true, comment: 'publisher' });
    }
  });
});
