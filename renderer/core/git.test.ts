// Integration: runs against the real `git http-backend` on 127.0.0.1.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as nodeFs from 'node:fs';
import type { HttpClient } from 'isomorphic-git';
import nodeHttp from 'isomorphic-git/http/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { raceBeforeNextPush, startGitServer, type GitServer } from '../../test/support/git-server.js';
import { GitError } from './errors.js';
import {
  fetchBranch,
  fetchHistory,
  FetchTooLargeError,
  hasObject,
  isAncestor,
  listRemoteBranches,
  readCommitFiles,
  remoteBranchHead,
  sanitizeUrl,
  sourceTrailer,
  ZERO_OID,
} from './git.js';
import { demultiplexSideBand, parsePktLines, parseReceivePackAdvertisement, parseReportStatus, pushBranches, storePack } from './receive-pack.js';

const execFileAsync = promisify(execFile);
const gitEnv = { ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_CONFIG_NOSYSTEM: '1', HOME: tmpdir() };
const git = async (args: string[], cwd?: string, input?: string): Promise<string> => {
  const child = execFileAsync('git', args, { cwd, env: gitEnv });
  if (input !== undefined) {
    child.child.stdin?.end(input);
  }
  return (await child).stdout.trim();
};
const commit = (dir: string, message: string) =>
  git(['-c', 'user.name=t', '-c', 'user.email=t@example.invalid', 'commit', '--quiet', '-a', '-m', message], dir);

describe('sanitizeUrl', () => {
  it('drops user name and password from URLs', () => {
    expect(sanitizeUrl('https://x-access-token:ghp_abc@github.com/acme/fleet.git')).toBe(
      'https://github.com/acme/fleet.git',
    );
    expect(sanitizeUrl('https://ghp_abc@github.com/acme/fleet.git')).toBe('https://github.com/acme/fleet.git');
  });
  it('leaves URLs without credentials exactly as given', () => {
    expect(sanitizeUrl('http://127.0.0.1:8080/fleet.git')).toBe('http://127.0.0.1:8080/fleet.git');
  });
});

describe('sourceTrailer', () => {
  it('reads Flotilla-Source from the last paragraph only', () => {
    const sha = 'ab'.repeat(20);
    expect(sourceTrailer(`Render tenant linda\n\nFlotilla-Source: ${sha}\n`)).toBe(sha);
    expect(sourceTrailer(`Flotilla-Source: ${sha}\n\nbody after it\n`)).toBeNull();
    expect(sourceTrailer('hand edit\n')).toBeNull();
  });
});

describe('git over the loopback server', () => {
  let server: GitServer;
  let work: string;
  let url: string;
  let first: string;
  let second: string;

  beforeAll(async () => {
    server = await startGitServer();
    const bare = await server.createBareRepo('fleet.git');
    url = server.url('fleet.git');
    work = await mkdtemp(join(tmpdir(), 'flotilla-git-test-'));
    const src = join(work, 'src');
    await git(['init', '--quiet', '--initial-branch', 'tenants/linda', src]);
    await mkdir(join(src, 'nginx/conf.d'), { recursive: true });
    await writeFile(join(src, 'docker-compose.yml'), 'services: {}\n');
    await writeFile(join(src, 'nginx/conf.d/api.conf'), 'server {}\n');
    await writeFile(join(src, 'run.sh'), '#!/bin/sh\necho hi\n');
    await chmod(join(src, 'run.sh'), 0o755);
    await git(['add', '.'], src);
    await commit(src, 'first');
    first = await git(['rev-parse', 'HEAD'], src);
    await writeFile(join(src, 'docker-compose.yml'), 'services: {api: {image: x}}\n');
    await commit(src, 'second\n\nFlotilla-Source: abc');
    second = await git(['rev-parse', 'HEAD'], src);
    await git(['push', '--quiet', url, 'HEAD:refs/heads/tenants/linda', 'HEAD:refs/heads/tenants/lindab'], src);
    // Many sibling branches: the change check must not grow with them.
    const creates = Array.from({ length: 300 }, (_, i) => `create refs/heads/tenants/t${i} ${first}\n`).join('');
    await git(['--git-dir', bare, 'update-ref', '--stdin'], undefined, creates);
  });
  afterAll(async () => {
    await server.stop();
    await rm(work, { recursive: true, force: true });
  });

  it('remoteBranchHead finds one branch with two small requests among hundreds', async () => {
    server.resetStats();
    expect(await remoteBranchHead(url, 'tenants/linda')).toBe(second);
    const stats = server.stats();
    expect(stats.requests).toBe(2);
    expect(stats.bytesIn + stats.bytesOut).toBeLessThan(2048);
  });

  it('remoteBranchHead does not confuse a branch with a longer name sharing its prefix', async () => {
    expect(await remoteBranchHead(url, 'tenants/t1')).toBe(first);
    expect(await remoteBranchHead(url, 'tenants/lind')).toBeNull();
    expect(await remoteBranchHead(url, 'tenants/nobody')).toBeNull();
  });

  it('listRemoteBranches lists every branch under a prefix', async () => {
    const branches = await listRemoteBranches(url, 'tenants/');
    expect(branches.size).toBe(302);
    expect(branches.get('tenants/linda')).toBe(second);
  });

  it('fetchBranch fetches the tip and readCommitFiles reads its files, modes, message and parents', async () => {
    const gitdir = join(work, 'cache.git');
    expect(await fetchBranch(gitdir, url, 'tenants/linda', { depth: 1 })).toBe(second);
    const read = await readCommitFiles(gitdir, second);
    expect(read.message).toBe('second\n\nFlotilla-Source: abc\n');
    expect(read.parents).toEqual([first]);
    expect(read.files.map((f) => [f.path, f.content.toString(), f.mode.toString(8)])).toEqual([
      ['docker-compose.yml', 'services: {api: {image: x}}\n', '644'],
      ['nginx/conf.d/api.conf', 'server {}\n', '644'],
      ['run.sh', '#!/bin/sh\necho hi\n', '755'],
    ]);
  });

  it('isAncestor answers from local history and refuses to guess past a shallow edge', async () => {
    const gitdir = join(work, 'ancestry.git');
    await fetchBranch(gitdir, url, 'tenants/t0', { depth: 1 });
    await fetchBranch(gitdir, url, 'tenants/linda', { depth: 1 });
    expect(await isAncestor(gitdir, first, second)).toBe(true);
    expect(await isAncestor(gitdir, second, second)).toBe(true);
    expect(await isAncestor(gitdir, second, first)).toBe(false);

    const shallow = join(work, 'shallow.git');
    await fetchBranch(shallow, url, 'tenants/linda', { depth: 1 });
    const unknown = '1111111111111111111111111111111111111111';
    await expect(isAncestor(shallow, unknown, second)).rejects.toThrow(/incomplete locally/);
  });

  it('fetchBranch of a missing branch is a GitError naming the branch', async () => {
    const err = await fetchBranch(join(work, 'missing.git'), url, 'tenants/nobody').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GitError);
    expect((err as GitError).message).toMatch(/tenants\/nobody/);
  });
});

describe('git against a token-protected server', () => {
  let server: GitServer;
  const token = 'ghp_TopSecretToken123';
  beforeAll(async () => {
    server = await startGitServer({ token });
    await server.createBareRepo('fleet.git');
  });
  afterAll(() => server.stop());

  it('works with the token', async () => {
    expect(await remoteBranchHead(server.url('fleet.git'), 'tenants/linda', { token })).toBeNull();
  });

  it('fails without it with a GitError that names the URL', async () => {
    const err = await remoteBranchHead(server.url('fleet.git'), 'tenants/linda').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GitError);
    expect((err as GitError).url).toBe(server.url('fleet.git'));
    expect((err as GitError).message).toMatch(/401/);
  });

  it('never shows a wrong token, in the URL or passed as auth', async () => {
    const wrong = 'ghp_WrongToken456';
    const withCreds = server.url('fleet.git').replace('http://', `http://x-access-token:${wrong}@`);
    for (const attempt of [
      () => remoteBranchHead(withCreds, 'tenants/linda'),
      () => remoteBranchHead(server.url('fleet.git'), 'tenants/linda', { token: wrong }),
      () => fetchBranch(join(tmpdir(), 'flotilla-never-created.git'), withCreds, 'main'),
    ]) {
      const err = await attempt().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GitError);
      expect(`${(err as GitError).message} ${(err as GitError).url}`).not.toContain(wrong);
      expect((err as GitError).url).toBe(server.url('fleet.git'));
    }
    await rm(join(tmpdir(), 'flotilla-never-created.git'), { recursive: true, force: true });
  });

  it('pushBranches fails without the token, or with a wrong one, without showing either', async () => {
    const wrong = 'ghp_WrongToken456';
    const update = { branch: 'tenants/linda', commit: 'a'.repeat(40), expected: null, objects: [] };
    for (const auth of [undefined, { token: wrong }]) {
      const err = await pushBranches(join(tmpdir(), 'flotilla-never-read.git'), server.url('fleet.git'), [update], auth).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(GitError);
      expect((err as GitError).message).toMatch(/401/);
      expect((err as GitError).message).not.toContain(wrong);
      expect((err as GitError).message).not.toContain(token);
    }
  });
});

describe('receive-pack wire format', () => {
  const pkt = (s: string | Buffer) => {
    const b = typeof s === 'string' ? Buffer.from(s) : s;
    return Buffer.concat([Buffer.from((b.length + 4).toString(16).padStart(4, '0')), b]);
  };
  it('reads per-ref results out of a side-band-64k report-status, and a fatal band-3 message', () => {
    const report = Buffer.concat([pkt('unpack ok\n'), pkt('ok refs/heads/tenants/a\n'), pkt('ng refs/heads/tenants/b failed to update ref\n'), Buffer.from('0000')]);
    const muxed = Buffer.concat([
      pkt(Buffer.concat([Buffer.from([2]), Buffer.from('Resolving deltas: 100%\n')])),
      pkt(Buffer.concat([Buffer.from([1]), report.subarray(0, 7)])),
      pkt(Buffer.concat([Buffer.from([1]), report.subarray(7)])),
      Buffer.from('0000'),
    ]);
    const status = parseReportStatus(demultiplexSideBand(muxed));
    expect(status.unpack).toBe('ok');
    expect([...status.refs]).toEqual([
      ['refs/heads/tenants/a', null],
      ['refs/heads/tenants/b', 'failed to update ref'],
    ]);
    expect(() => demultiplexSideBand(pkt(Buffer.concat([Buffer.from([3]), Buffer.from('disk full\n')])))).toThrow(/remote: disk full/);
  });
  it('reads the advertisement of an empty repository and of one with branches', () => {
    const caps = 'report-status delete-refs side-band-64k quiet ofs-delta agent=git/2.39';
    const empty = Buffer.concat([pkt('# service=git-receive-pack\n'), Buffer.from('0000'), pkt(`${ZERO_OID} capabilities^{}\0${caps}\n`), Buffer.from('0000')]);
    expect(parseReceivePackAdvertisement(empty).refs.size).toBe(0);
    expect(parseReceivePackAdvertisement(empty).capabilities.has('report-status')).toBe(true);
    const a = 'a'.repeat(40);
    const full = Buffer.concat([pkt(`${a} refs/heads/main\0${caps}\n`), pkt(`${'b'.repeat(40)} refs/heads/tenants/x\n`), Buffer.from('0000')]);
    expect([...parseReceivePackAdvertisement(full).refs]).toEqual([
      ['refs/heads/main', a],
      ['refs/heads/tenants/x', 'b'.repeat(40)],
    ]);
    expect(() => parseReportStatus(pkt('unpack o'))).not.toThrow();
    expect(() => parsePktLines(Buffer.from('00ffshort'))).toThrow(/truncated/);
  });
});

describe('pushBranches: many branches in one receive-pack request', () => {
  let server: GitServer;
  let work: string;
  let bare: string;
  let url: string;
  const race = raceBeforeNextPush();

  beforeAll(async () => {
    server = await startGitServer({ beforeRequest: race.beforeRequest });
    bare = await server.createBareRepo('fleet.git');
    url = server.url('fleet.git');
    work = await mkdtemp(join(tmpdir(), 'flotilla-push-test-'));
    // The server refuses one branch by hook, as branch protection would.
    await writeFile(
      join(bare, 'hooks/update'),
      '#!/bin/sh\nif [ "$1" = refs/heads/tenants/locked ]; then echo "tenants/locked is protected" >&2; exit 1; fi\n',
    );
    await chmod(join(bare, 'hooks/update'), 0o755);
  });
  afterAll(async () => {
    await server.stop();
    await rm(work, { recursive: true, force: true });
  });
  /** Writes, stages and commits one file in `src`; the new commit. */
  const commitFile = async (src: string, file: string, content: string, message: string) => {
    await writeFile(join(src, file), content);
    await git(['add', file], src);
    await commit(src, message);
    return git(['rev-parse', 'HEAD'], src);
  };
  /** A new repo at work/<name>, on main, with one file committed. */
  const newRepo = async (name: string, file: string, content: string, message: string) => {
    const src = join(work, name);
    await git(['init', '--quiet', '--initial-branch', 'main', src]);
    return { src, head: await commitFile(src, file, content, message) };
  };
  /** Every object id `revs` reach (`git rev-list --objects`): what a push of them sends. */
  const objectsOf = async (src: string, ...revs: string[]) =>
    (await git(['rev-list', '--objects', ...revs], src)).split('\n').map((l) => l.split(' ')[0]!);

  it('creates, updates, reports a moved and a refused branch, all in one POST, never forced', async () => {
    const { src, head: base } = await newRepo('src', 'docker-compose.yml', 'services: {}\n', 'base');
    await git(['push', '--quiet', url, 'HEAD:refs/heads/tenants/a', 'HEAD:refs/heads/tenants/c', 'HEAD:refs/heads/tenants/stale'], src);
    // A commit on top of base (for a, c and stale), and an unrelated root commit (for new branches).
    const next = await commitFile(src, 'docker-compose.yml', 'services: {api: {image: x}}\n', 'next');
    const nextObjects = await objectsOf(src, next, `^${base}`);
    await git(['checkout', '--quiet', '--orphan', 'fresh'], src);
    const fresh = await commitFile(src, 'README', 'fresh\n', 'fresh');
    const freshObjects = await objectsOf(src, fresh);
    // Someone moves tenants/c between our advertisement and our POST.
    race.arm(async () => {
      await git(['push', '--quiet', url, `${next}:refs/heads/tenants/c`], src);
    });
    server.resetStats();
    const gitdir = join(src, '.git');
    const results = await pushBranches(gitdir, url, [
      { branch: 'tenants/a', commit: next, expected: base, objects: nextObjects },
      { branch: 'tenants/new', commit: fresh, expected: null, objects: freshObjects },
      { branch: 'tenants/c', commit: fresh, expected: base, objects: freshObjects },
      { branch: 'tenants/stale', commit: next, expected: fresh, objects: nextObjects },
      { branch: 'tenants/locked', commit: fresh, expected: null, objects: freshObjects },
    ]);
    expect(race.raced()).toBe(true);
    expect(results.get('tenants/a')).toEqual({ status: 'pushed' });
    expect(results.get('tenants/new')).toEqual({ status: 'pushed' });
    expect(results.get('tenants/c')).toMatchObject({ status: 'rejected' });
    expect(results.get('tenants/stale')).toMatchObject({ status: 'rejected', reason: /expected/ });
    expect(results.get('tenants/locked')).toMatchObject({ status: 'refused', reason: /hook declined/ });
    // Ours and the racing push.
    expect(server.stats().byPath['POST /fleet.git/git-receive-pack']?.requests).toBe(2);

    const refs = await git(['--git-dir', bare, 'for-each-ref', '--format=%(refname) %(objectname)', 'refs/heads/tenants/']);
    expect(refs.split('\n')).toEqual([
      `refs/heads/tenants/a ${next}`,
      `refs/heads/tenants/c ${next}`, // theirs, not overwritten
      `refs/heads/tenants/new ${fresh}`,
      `refs/heads/tenants/stale ${base}`,
    ]);
    await git(['--git-dir', bare, 'fsck', '--strict']);
  });

  it('splits many branches into batches of batchSize refs', async () => {
    const { src, head } = await newRepo('batches', 'f', 'batch\n', 'batch');
    const objects = await objectsOf(src, head);
    server.resetStats();
    const updates = Array.from({ length: 5 }, (_, i) => ({ branch: `batch/b${i}`, commit: head, expected: null, objects }));
    const results = await pushBranches(join(src, '.git'), url, updates, undefined, undefined, { batchSize: 2 });
    expect([...results.values()].every((r) => r.status === 'pushed')).toBe(true);
    expect(server.stats().byPath['POST /fleet.git/git-receive-pack']?.requests).toBe(3);
    expect((await git(['ls-remote', url, 'refs/heads/batch/*'])).split('\n')).toHaveLength(5);
  });
});

describe('storePack: new objects as one pack with its index', () => {
  it('writes a pack git itself verifies and reads every object back from', async () => {
    const gitdir = await mkdtemp(join(tmpdir(), 'flotilla-pack-'));
    try {
      await execFileAsync('git', ['init', '-q', '--bare', gitdir]);
      const hash = (type: string, content: Buffer) => createHash('sha1').update(`${type} ${content.length}\0`).update(content).digest('hex');
      // Enough objects to fill many fan-out buckets, sizes across the size-varint's byte boundaries.
      const objects = Array.from({ length: 300 }, (_, i) => {
        const content = Buffer.from(`object ${i}\n${'x'.repeat((i * 37) % 5000)}`);
        return { oid: hash('blob', content), type: 'blob' as const, content };
      });
      await storePack(gitdir, objects);
      const packs = (await readdir(join(gitdir, 'objects', 'pack'))).sort();
      expect(packs).toHaveLength(2);
      expect(packs[0]).toMatch(/^pack-[0-9a-f]{40}\.idx$/);
      await execFileAsync('git', ['--git-dir', gitdir, 'verify-pack', join(gitdir, 'objects', 'pack', packs[0]!)]);
      for (const { oid, content } of [objects[0]!, objects[137]!, objects[299]!]) {
        const { stdout } = await execFileAsync('git', ['--git-dir', gitdir, 'cat-file', 'blob', oid], { encoding: 'buffer' });
        expect(Buffer.from(stdout).equals(content)).toBe(true);
      }
      const { stdout } = await execFileAsync('git', ['--git-dir', gitdir, 'count-objects', '-v']);
      expect(stdout).toMatch(/^in-pack: 300$/m);
      expect(stdout).toMatch(/^count: 0$/m);
    } finally {
      await rm(gitdir, { recursive: true, force: true });
    }
  });
});

describe('a commit holding a file over the size limit', () => {
  const MB200 = 200 * 1024 * 1024;
  let server: GitServer;
  let work: string;
  let url: string;
  let src: string;
  let a: string;
  let big: string;
  let d: string;
  // What the agent keeps between fetches: the shallow list and the remote-tracking ref.
  const record = async (gitdir: string) => ({
    shallow: await readFile(join(gitdir, 'shallow'), 'utf8').catch(() => null),
    ref: await readFile(join(gitdir, 'refs/remotes/origin/tenants/linda'), 'utf8').catch(() => null),
  });

  beforeAll(async () => {
    server = await startGitServer();
    await server.createBareRepo('fleet.git');
    url = server.url('fleet.git');
    work = await mkdtemp(join(tmpdir(), 'flotilla-git-big-'));
    src = join(work, 'src');
    await git(['init', '--quiet', '--initial-branch', 'tenants/linda', src]);
    await writeFile(join(src, 'docker-compose.yml'), 'services: {}\n');
    await git(['add', '.'], src);
    await commit(src, 'a');
    a = await git(['rev-parse', 'HEAD'], src);
    await git(['push', '--quiet', url, 'HEAD:refs/heads/tenants/linda'], src);
  });
  afterAll(async () => {
    await server.stop();
    await rm(work, { recursive: true, force: true });
  });

  it('refuses it from the pack header and keeps nothing of it; the commits after it are fetched, and ancestry is told past it', async () => {
    const gitdir = join(work, 'agent.git');
    expect(await fetchBranch(gitdir, url, 'tenants/linda')).toBe(a);
    const before = await record(gitdir);

    // 200 MB of zeros: a few hundred KB on the wire, 200 MB declared in the pack.
    await writeFile(join(src, 'big.bin'), '');
    await truncate(join(src, 'big.bin'), MB200);
    await git(['add', 'big.bin'], src);
    await commit(src, 'big');
    big = await git(['rev-parse', 'HEAD'], src);
    await git(['push', '--quiet', url, 'HEAD:refs/heads/tenants/linda'], src);

    const err = await fetchBranch(gitdir, url, 'tenants/linda').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FetchTooLargeError);
    expect((err as Error).message).toBe(
      `refused: ${big.slice(0, 12)} holds big.bin (${MB200} bytes, over the 4194304-byte limit); not fetched`,
    );
    expect(await hasObject(gitdir, big)).toBe(false);
    expect(await record(gitdir)).toEqual(before);

    await git(['rm', '--quiet', 'big.bin'], src);
    await commit(src, 'remove big.bin');
    await writeFile(join(src, 'docker-compose.yml'), 'services: {api: {image: x}}\n');
    await commit(src, 'd');
    d = await git(['rev-parse', 'HEAD'], src);
    await git(['push', '--quiet', url, 'HEAD:refs/heads/tenants/linda'], src);

    expect(await fetchBranch(gitdir, url, 'tenants/linda')).toBe(d);
    expect((await readCommitFiles(gitdir, d)).files.map((f) => f.path)).toEqual(['docker-compose.yml']);
    await expect(isAncestor(gitdir, a, d)).rejects.toThrow(/incomplete locally/);
    await fetchHistory(gitdir, url, 'tenants/linda', { depth: 2 });
    expect(await isAncestor(gitdir, a, d)).toBe(true);
  });

  it('repairs a repository an earlier version left naming the refused commit, and fetches past it', async () => {
    const gitdir = join(work, 'wedged.git');
    await git(['push', '--quiet', url, `${a}:refs/heads/tenants/old`], src);
    expect(await fetchBranch(gitdir, url, 'tenants/old')).toBe(a);
    // What a fetch that died in the refused pack left before this fix: both name the commit it never stored.
    await writeFile(join(gitdir, 'shallow'), `${a}\n${big}\n`);
    await mkdir(join(gitdir, 'refs/remotes/origin/tenants'), { recursive: true });
    await writeFile(join(gitdir, 'refs/remotes/origin/tenants/linda'), `${big}\n`);

    expect(await fetchBranch(gitdir, url, 'tenants/linda')).toBe(d);
    expect((await readCommitFiles(gitdir, d)).files.map((f) => f.path)).toEqual(['docker-compose.yml']);
    await fetchHistory(gitdir, url, 'tenants/linda', { depth: 20 });
    expect(await isAncestor(gitdir, a, d)).toBe(true);
  });

  it('fetchHistory reads the commits past a refused blob without downloading the blob or storing anything', async () => {
    const gitdir = join(work, 'late.git');
    await fetchBranch(gitdir, url, 'tenants/linda', { depth: 1 });
    const before = await record(gitdir);
    // Counts what the client reads of each response: the server may write ahead into socket buffers.
    let read = 0;
    const counting: HttpClient = {
      async request(req) {
        const res = await nodeHttp.request(req);
        const body = res.body;
        if (!body) return res;
        return {
          ...res,
          body: (async function* () {
            for await (const chunk of body) {
              read += chunk.length;
              yield chunk;
            }
          })(),
        };
      },
    };
    await fetchHistory(gitdir, url, 'tenants/linda', { depth: 20 }, { fs: nodeFs, http: counting });
    // The blob alone is ~200 KB compressed; reading stops within the first 64 KB socket read after the commits.
    expect(read).toBeLessThan(100 * 1024);
    expect(await isAncestor(gitdir, a, d)).toBe(true);
    expect(await isAncestor(gitdir, big, d)).toBe(true);
    expect(await hasObject(gitdir, big)).toBe(false);
    expect(await record(gitdir)).toEqual(before);
  });

  it('refuses a pack larger than the limit as it arrives', async () => {
    const err = await fetchBranch(join(work, 'small.git'), url, 'tenants/linda', { maxPackBytes: 100 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FetchTooLargeError);
    expect((err as Error).message).toBe(`refused: ${d.slice(0, 12)} holds a pack of more than 100 bytes; not fetched`);
  });
});

describe('readCommitFiles of a commit the repository already holds with a file over the size limit', () => {
  let work: string;
  let src: string;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'flotilla-git-held-'));
    src = join(work, 'src');
    await git(['init', '--quiet', '--initial-branch', 'tenants/linda', src]);
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  const commitAll = async (message: string) => {
    await git(['add', '-A'], src);
    await commit(src, message);
    return git(['rev-parse', 'HEAD'], src);
  };

  it('refuses it by the size its loose object or pack entry declares (a delta by the size it makes), and reads the rest', async () => {
    await writeFile(join(src, 'docker-compose.yml'), 'services: {}\n');
    const small = await commitAll('small');
    await writeFile(join(src, 'big.bin'), '');
    await truncate(join(src, 'big.bin'), 200 * 1024 * 1024);
    const zeros = await commitAll('200 MB of zeros');
    await rm(join(src, 'big.bin'));
    // Random bytes a few bytes apart: packed, one of them is a delta of the other.
    const random = createHash('sha256');
    const bytes = Buffer.concat(Array.from({ length: 5 * 1024 * 1024 / 32 }, (_, i) => random.update(String(i)).copy().digest()));
    await writeFile(join(src, 'random.bin'), bytes);
    const first = await commitAll('5 MB');
    bytes[100] = bytes[100]! ^ 0xff;
    await writeFile(join(src, 'random.bin'), bytes);
    const second = await commitAll('5 MB, one byte changed');
    const gitdir = join(src, '.git');
    const refusal = (c: string, path: string, size: number) =>
      `refused: ${c.slice(0, 12)} holds ${path} (${size} bytes, over the 4194304-byte limit)`;

    for (const stored of ['loose', 'packed']) {
      if (stored === 'packed') {
        await git(['repack', '-adq', '--depth=10', '--window=10'], src);
        expect((await readdir(join(gitdir, 'objects/pack'))).some((n) => n.endsWith('.pack'))).toBe(true);
      }
      await expect(readCommitFiles(gitdir, zeros), stored).rejects.toThrow(refusal(zeros, 'big.bin', 200 * 1024 * 1024));
      await expect(readCommitFiles(gitdir, first), stored).rejects.toThrow(refusal(first, 'random.bin', bytes.length));
      await expect(readCommitFiles(gitdir, second), stored).rejects.toThrow(refusal(second, 'random.bin', bytes.length));
      const read = await readCommitFiles(gitdir, small);
      expect(read.files.map((f) => [f.path, f.content.toString()])).toEqual([['docker-compose.yml', 'services: {}\n']]);
    }
    await expect(readCommitFiles(gitdir, zeros)).rejects.toBeInstanceOf(FetchTooLargeError);
  });
});
