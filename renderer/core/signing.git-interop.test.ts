// Flotilla's commit signatures against the real git 2.39 and OpenSSH's ssh-keygen, both
// ways: commits `git commit -S` signs (UTF-8, ISO-8859-1, a merge carrying a signed tag)
// pass Flotilla's check, commits Flotilla signs the way `flotilla publish --signing-key`
// does pass `git verify-commit` with the principal the README documents, and a commit
// with one byte changed fails both. git's verdict is the oracle, and so is the payload:
// gpg.ssh.program is a wrapper that records the bytes git hands `ssh-keygen -Y verify`,
// which must be the bytes Flotilla hashes. RSA signatures, which git accepts, are refused
// by name: Flotilla verifies Ed25519 only.
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCommit, DEFAULT_AUTHOR, tenantCommitMessage } from '../publish/git-objects.js';
import { readRawCommit } from './git.js';
import { parseSigningKey, parseTrustedKeys, signCommitPayload, splitCommitSignature, verifyCommitSignature, type TrustedKey } from './signing.js';

const EMPTY_TREE = '4b825dc642cb6eb9a060e54bf8d69288fbee4904';
const PRINCIPAL = DEFAULT_AUTHOR.email;

let work: string;
let env: NodeJS.ProcessEnv;
let keyFile: string;
let signingKey: KeyObject;
let trusted: TrustedKey[];
let otherTrusted: TrustedKey[];
let allowedSigners: string;
let recorder: string;
let repo: string;

interface Ran {
  code: number;
  stdout: Buffer;
  stderr: string;
}

function run(cmd: string, args: string[], input?: Buffer): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { env, encoding: 'buffer', maxBuffer: 1 << 24 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      if (err && code === -1) reject(err);
      else resolve({ code, stdout, stderr: stderr.toString() });
    });
    // A command that exits without reading all its input says so by its exit code; the pipe's EPIPE adds nothing.
    child.stdin!.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE') reject(e);
    });
    if (input) child.stdin!.end(input);
    else child.stdin!.end();
  });
}

async function git(args: string[], input?: Buffer): Promise<Buffer> {
  const r = await run('git', ['-C', repo, ...args], input);
  if (r.code !== 0) throw new Error(`git ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

const signingGit = ['-c', 'user.name=Publisher', '-c', `user.email=${PRINCIPAL}`, '-c', 'gpg.format=ssh'];

/** `git verify-commit` with the allowed-signers file, and what git handed ssh-keygen to verify. */
async function gitVerify(oid: string): Promise<{ ok: boolean; stderr: string; payload: Buffer; signature: string }> {
  await rm(`${recorder}.payload`, { force: true });
  await rm(`${recorder}.sig`, { force: true });
  const r = await run('git', ['-C', repo, '-c', `gpg.ssh.allowedSignersFile=${allowedSigners}`, '-c', `gpg.ssh.program=${recorder}`, 'verify-commit', oid]);
  return {
    ok: r.code === 0,
    stderr: r.stderr,
    payload: await readFile(`${recorder}.payload`),
    signature: await readFile(`${recorder}.sig`, 'latin1'),
  };
}

/** Writes `content` as a commit object without git's format checks, as a forger would. */
async function writeCommit(content: Buffer): Promise<string> {
  return (await git(['hash-object', '-t', 'commit', '-w', '--literally', '--stdin'], content)).toString().trim();
}

/** Git's verdict and Flotilla's on the same object, and the payload each of them checks. */
async function bothVerdicts(oid: string) {
  const raw = await readRawCommit(join(repo, '.git'), oid);
  expect(raw).toEqual(await git(['cat-file', 'commit', oid]));
  const byGit = await gitVerify(oid);
  const split = splitCommitSignature(raw);
  expect(split.payload).toEqual(byGit.payload);
  expect(split.signature).toBe(byGit.signature);
  return { raw, byGit, byFlotilla: verifyCommitSignature(raw, trusted) };
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'flotilla-signing-interop-'));
  env = { ...process.env, HOME: work, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', GIT_MERGE_AUTOEDIT: 'no', LC_ALL: 'C' };
  keyFile = join(work, 'publisher');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'publisher', '-f', keyFile]);
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'other', '-f', join(work, 'other')]);
  signingKey = parseSigningKey(await readFile(keyFile, 'utf8'));
  const pub = (await readFile(`${keyFile}.pub`, 'utf8')).trim();
  trusted = parseTrustedKeys(pub);
  otherTrusted = parseTrustedKeys(await readFile(join(work, 'other.pub'), 'utf8'));
  // The README's allowed_signers line.
  allowedSigners = join(work, 'allowed_signers');
  await writeFile(allowedSigners, `${PRINCIPAL} namespaces="git" ${pub}\n`);
  recorder = join(work, 'ssh-keygen-recorder');
  await writeFile(
    recorder,
    [
      '#!/bin/sh',
      '# git runs "-Y find-principals" then "-Y verify ... -s FILE" with the payload on stdin.',
      'if [ "$2" = verify ]; then',
      '  prev=; for a in "$@"; do [ "$prev" = -s ] && cp "$a" "$0.sig"; prev=$a; done',
      '  tee "$0.payload" | ssh-keygen "$@"',
      '  exit $?',
      'fi',
      'exec ssh-keygen "$@"',
      '',
    ].join('\n'),
  );
  await chmod(recorder, 0o755);
  repo = join(work, 'repo');
  await run('git', ['init', '-q', repo]);
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('commits git signs, checked by Flotilla', () => {
  async function gitCommit(args: string[], message: Buffer): Promise<string> {
    const file = join(work, 'message');
    await writeFile(file, message);
    await git([...signingGit, '-c', `user.signingkey=${keyFile}`, ...args, 'commit', '-q', '--allow-empty', '-S', '--cleanup=verbatim', '-F', file]);
    return (await git(['rev-parse', 'HEAD'])).toString().trim();
  }

  it('an ISO-8859-1 commit (encoding header, Latin-1 message) verifies in git and in Flotilla, over the same bytes', async () => {
    const message = Buffer.from('Grüße aus Köln\n\nÄnderung für café\n', 'latin1');
    const oid = await gitCommit(['-c', 'i18n.commitEncoding=ISO-8859-1'], message);
    const { raw, byGit, byFlotilla } = await bothVerdicts(oid);

    expect(raw.includes('\nencoding ISO-8859-1\n')).toBe(true);
    expect(raw.subarray(raw.length - message.length)).toEqual(message);
    expect(byGit.ok).toBe(true);
    expect(byGit.stderr).toContain(`Good "git" signature for ${PRINCIPAL} with ED25519 key ${trusted[0]!.fingerprint}`);
    expect(byFlotilla).toEqual({ ok: true, fingerprint: trusted[0]!.fingerprint, comment: 'publisher' });
    // What the agent did before: decode as UTF-8, then hash. The Latin-1 bytes do not survive it.
    expect(verifyCommitSignature(Buffer.from(raw.toString('utf8')), trusted)).toMatchObject({ ok: false, reason: 'bad signature' });
    expect(verifyCommitSignature(raw, otherTrusted)).toMatchObject({ ok: false, reason: 'untrusted key' });
  });

  it('a UTF-8 commit whose message has header-like lines and no final newline verifies in both', async () => {
    const message = Buffer.from('Ünïcödé ✓\n\ngpgsig not a header\n continuation-looking line\n\n\nno final newline');
    const oid = await gitCommit([], message);
    const { raw, byGit, byFlotilla } = await bothVerdicts(oid);
    expect(raw.subarray(raw.length - message.length)).toEqual(message);
    expect(byGit.ok).toBe(true);
    expect(byFlotilla).toMatchObject({ ok: true });
  });

  it('a signed merge of a signed tag (a mergetag header whose continuation lines hold an SSH signature) verifies in both', async () => {
    const base = (await git(['rev-parse', 'HEAD'])).toString().trim();
    const withKey = [...signingGit, '-c', `user.signingkey=${keyFile}`];
    await git(['checkout', '-q', '-b', 'side']);
    await git([...withKey, 'commit', '-q', '--allow-empty', '-m', 'side']);
    await git([...withKey, 'tag', '-s', '-m', 'release', 'v1']);
    await git(['checkout', '-q', base]);
    await git([...withKey, 'merge', '-q', '-S', '--no-ff', '-m', 'merge v1', 'v1']);
    const oid = (await git(['rev-parse', 'HEAD'])).toString().trim();
    const { raw, byGit, byFlotilla } = await bothVerdicts(oid);
    expect(raw.toString()).toMatch(/\nmergetag object [0-9a-f]{40}\n type commit\n[\s\S]* -----BEGIN SSH SIGNATURE-----\n/);
    expect(byGit.ok).toBe(true);
    expect(byFlotilla).toMatchObject({ ok: true });
  });

  it('an RSA-signed commit, which git accepts, is refused as unsupported (Flotilla verifies Ed25519 only), never misjudged', async () => {
    const rsaKey = join(work, 'rsa');
    await run('ssh-keygen', ['-q', '-t', 'rsa', '-b', '2048', '-N', '', '-C', 'rsa', '-f', rsaKey]);
    const rsaAllowed = join(work, 'rsa_allowed_signers');
    await writeFile(rsaAllowed, `${PRINCIPAL} namespaces="git" ${(await readFile(`${rsaKey}.pub`, 'utf8')).trim()}\n`);
    const file = join(work, 'message');
    await writeFile(file, 'signed with rsa\n');
    await git([...signingGit, '-c', `user.signingkey=${rsaKey}`, 'commit', '-q', '--allow-empty', '-S', '-F', file]);
    const oid = (await git(['rev-parse', 'HEAD'])).toString().trim();
    expect((await run('git', ['-C', repo, '-c', `gpg.ssh.allowedSignersFile=${rsaAllowed}`, 'verify-commit', oid])).code).toBe(0);
    expect(verifyCommitSignature(await readRawCommit(join(repo, '.git'), oid), trusted)).toEqual({
      ok: false,
      reason: 'unsupported signature',
      detail: 'signature type rsa-sha2-512 is not supported (only ssh-ed25519)',
    });
  });

  it("another hash's gpgsig-sha256 header is left out of the payload, as git leaves it out", async () => {
    const oid = await gitCommit([], Buffer.from('two signature headers\n'));
    const raw = await git(['cat-file', 'commit', oid]);
    const at = raw.indexOf('\ngpgsig ') + 1;
    const extra = Buffer.from('gpgsig-sha256 -----BEGIN SSH SIGNATURE-----\n U1NIU0lH\n -----END SSH SIGNATURE-----\n');
    const both = await writeCommit(Buffer.concat([raw.subarray(0, at), extra, raw.subarray(at)]));
    const { byGit, byFlotilla } = await bothVerdicts(both);
    expect(byGit.ok).toBe(true);
    expect(byFlotilla).toMatchObject({ ok: true });
  });
});

describe('commits Flotilla signs, checked by git verify-commit', () => {
  async function flotillaCommit(message: string): Promise<{ oid: string; content: Buffer }> {
    // As `flotilla publish --signing-key` builds and signs each tenant commit.
    const commit = buildCommit({
      tree: EMPTY_TREE,
      parents: [],
      author: { ...DEFAULT_AUTHOR, timestamp: 1_790_000_000 },
      message,
      sign: (payload) => signCommitPayload(payload, signingKey),
    });
    await git(['hash-object', '-t', 'tree', '-w', '--stdin']);
    // Written by git's own checks (no --literally): the object is well formed, and its id is Flotilla's.
    expect((await git(['hash-object', '-t', 'commit', '-w', '--stdin'], commit.content)).toString().trim()).toBe(commit.oid);
    return { oid: commit.oid, content: commit.content };
  }

  it("pass with an allowed_signers line for the committer's email, flotilla@localhost, and only with the publisher's key", async () => {
    for (const message of [tenantCommitMessage('acme', { repo: 'org/fleet', commit: 'a'.repeat(40) }), 'Grüße ✓\n\nnon-ASCII UTF-8 message\n']) {
      const { oid, content } = await flotillaCommit(message);
      expect(content.includes(`\ncommitter Flotilla <${PRINCIPAL}> `)).toBe(true);
      const { byGit, byFlotilla } = await bothVerdicts(oid);
      expect(byGit.ok).toBe(true);
      expect(byGit.stderr).toContain(`Good "git" signature for ${PRINCIPAL} with ED25519 key ${trusted[0]!.fingerprint}`);
      expect(byFlotilla).toMatchObject({ ok: true, fingerprint: trusted[0]!.fingerprint });
    }
    const { oid } = await flotillaCommit('signed, but git knows another key\n');
    const strangers = join(work, 'strangers');
    await writeFile(strangers, `${PRINCIPAL} namespaces="git" ${(await readFile(join(work, 'other.pub'), 'utf8')).trim()}\n`);
    const r = await run('git', ['-C', repo, '-c', `gpg.ssh.allowedSignersFile=${strangers}`, 'verify-commit', oid]);
    expect(r.code).not.toBe(0);
  });
});

describe('a commit with one byte changed', () => {
  /** The commit with the byte at `at` replaced, written as a new object. */
  async function tamper(oid: string, at: (raw: Buffer) => number, to: number): Promise<string> {
    const raw = Buffer.from(await git(['cat-file', 'commit', oid]));
    raw[at(raw)] = to;
    return writeCommit(raw);
  }

  it('fails git verify-commit and Flotilla alike, signed by git or by Flotilla', async () => {
    const file = join(work, 'latin1');
    await writeFile(file, Buffer.from('Grüße\n', 'latin1'));
    await git([...signingGit, '-c', `user.signingkey=${keyFile}`, '-c', 'i18n.commitEncoding=ISO-8859-1', 'commit', '-q', '--allow-empty', '-S', '-F', file]);
    const byGitOid = (await git(['rev-parse', 'HEAD'])).toString().trim();
    const flotilla = buildCommit({
      tree: EMPTY_TREE,
      parents: [],
      author: { ...DEFAULT_AUTHOR, timestamp: 1_790_000_000 },
      message: 'deploy v1\n',
      sign: (payload) => signCommitPayload(payload, signingKey),
    });
    const byFlotillaOid = await writeCommit(flotilla.content);

    const cases = [
      // ü (0xFC) to ý (0xFD): both decode to U+FFFD as UTF-8, so only the bytes tell them apart.
      await tamper(byGitOid, (raw) => raw.indexOf(0xfc), 0xfd),
      await tamper(byGitOid, (raw) => raw.indexOf('committer ') + 'committer '.length, 'Q'.charCodeAt(0)),
      await tamper(byFlotillaOid, (raw) => raw.lastIndexOf('v1'), '2'.charCodeAt(0)),
      await tamper(byFlotillaOid, (raw) => raw.indexOf(EMPTY_TREE) + 39, '5'.charCodeAt(0)),
    ];
    for (const oid of [byGitOid, byFlotillaOid]) {
      const { byGit, byFlotilla } = await bothVerdicts(oid);
      expect([byGit.ok, byFlotilla.ok]).toEqual([true, true]);
    }
    for (const oid of cases) {
      const { byGit, byFlotilla } = await bothVerdicts(oid);
      expect(byGit.ok, oid).toBe(false);
      expect(byGit.stderr).not.toContain('Good');
      expect(byFlotilla, oid).toMatchObject({ ok: false, reason: 'bad signature' });
    }
  });
});
