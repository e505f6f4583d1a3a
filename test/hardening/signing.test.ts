// Signed tenant commits (SSH signatures, Ed25519; renderer/core/signing.ts). Keys come
// from the real `ssh-keygen`; the publisher's signatures are checked by the real
// `git verify-commit`, and a commit signed by the real `git commit -S` is checked by
// ours, so the format is git's and not a private one. Then the agent, configured with
// FLOTILLA_TRUSTED_KEYS, against a loopback git server: it applies a signed commit and
// refuses (reporting why) an unsigned one, one signed by another key, and a commit
// whose tree was swapped under a valid signature; `flotilla-agent plan` refuses the
// same commits with the same words. Interop over unusual commits (ISO-8859-1,
// mergetag, a second signature header) is in renderer/core/signing.git-interop.test.ts.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { KeyObject } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { remoteBranchHead } from '../../renderer/core/git.js';
import { parseSigningKey, parseTrustedKeys, publicKeyLine, signCommitPayload, verifyCommitSignature } from '../../renderer/core/signing.js';
import { publishTenants } from '../../renderer/publish/publish.js';
import { loadAgentConfig, parseAgentConfig } from '../../agent/config.js';
import { OUTCOME_EXIT_CODES, reconcileOnce, type ReconcileOutcome } from '../../agent/reconcile.js';
import { runAgentCli } from '../../agent/main.js';
import { readState } from '../../agent/state.js';
import type { ServiceState } from '../../agent/compose-runner.js';
import { SettingError } from '../../renderer/core/errors.js';
import { startGitServer, type GitServer } from '../support/git-server.js';
import { RecordingCompose } from '../support/recording-compose.js';
import { fakeSourceCommit, FIXTURE_SOURCE_REPO, tenantFixture } from '../support/tenant-fixture.js';

const run = promisify(execFile);
const HEALTHY: ServiceState[] = [{ service: 'app', container: 'acme_app_1', state: 'running', health: 'healthy', image: 'app:v1' }];
const GIT_ENV = { ...process.env, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null' };

let work: string;
let git: GitServer;
let bare: string;
let publisherKey: KeyObject;
let otherKey: KeyObject;
let publisherPub: string;
let trustedFile: string;

async function sshKeygen(name: string): Promise<string> {
  const path = join(work, name);
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', path]);
  return path;
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'flotilla-signing-'));
  const publisher = await sshKeygen('publisher');
  const other = await sshKeygen('other');
  publisherKey = parseSigningKey(await readFile(publisher, 'utf8'));
  otherKey = parseSigningKey(await readFile(other, 'utf8'));
  publisherPub = (await readFile(`${publisher}.pub`, 'utf8')).trim();
  trustedFile = join(work, 'trusted-keys');
  await writeFile(trustedFile, `# the fleet's publisher\n${publisherPub}\n`);
  git = await startGitServer();
  bare = await git.createBareRepo('fleet.git');
});

afterAll(async () => {
  await git?.stop();
  await rm(work, { recursive: true, force: true });
});

let count = 0;
async function publish(signingKey?: KeyObject): Promise<string> {
  const sourceCommit = fakeSourceCommit(`signing ${++count}`);
  const fixture = tenantFixture({ tenant: 'acme', imageTag: 'v1', registry: '127.0.0.1:5000', repository: 'flotilla-test/app', sourceCommit, configText: `release ${count}\n` });
  await publishTenants({
    repoUrl: git.url('fleet.git'),
    workDir: join(work, 'publish.git'),
    tenants: [{ slug: 'acme', files: fixture.files }],
    source: { repo: FIXTURE_SOURCE_REPO, commit: sourceCommit },
    ...(signingKey ? { signingKey } : {}),
  });
  return (await remoteBranchHead(git.url('fleet.git'), 'tenants/acme'))!;
}

describe('SSH commit signatures, against the real git and ssh-keygen', () => {
  it('reads the key files ssh-keygen writes: the public line we derive is the .pub file', () => {
    expect(publicKeyLine(publisherKey, 'publisher')).toBe(publisherPub);
    expect(parseTrustedKeys(`${publisherPub}\n`)[0]!.comment).toBe('publisher');
  });

  it('signs published commits so that `git verify-commit` accepts them with the publisher key only', async () => {
    const commit = await publish(publisherKey);
    const allowed = join(work, 'allowed_signers');
    await writeFile(allowed, `publisher@fleet ${publisherPub}\n`);
    const verifyWith = (file: string) =>
      run('git', ['--git-dir', bare, '-c', 'gpg.format=ssh', '-c', `gpg.ssh.allowedSignersFile=${file}`, 'verify-commit', commit], { env: GIT_ENV });

    await expect(verifyWith(allowed)).resolves.toBeDefined();
    const otherAllowed = join(work, 'other_allowed');
    await writeFile(otherAllowed, `other@fleet ${publicKeyLine(otherKey)}\n`);
    await expect(verifyWith(otherAllowed)).rejects.toThrow();
  });

  it('verifies a commit signed by `git commit -S` (gpg.format=ssh), and rejects it once a byte changes', async () => {
    const repo = join(work, 'real-git');
    await mkdir(repo);
    const g = (...args: string[]) => run('git', ['-C', repo, '-c', 'user.name=Pub', '-c', 'user.email=pub@fleet', ...args], { env: GIT_ENV });
    await g('init', '-q');
    await writeFile(join(repo, 'a.txt'), 'hello\n');
    await g('add', 'a.txt');
    await g('-c', 'gpg.format=ssh', '-c', `user.signingkey=${join(work, 'publisher')}`, 'commit', '-q', '-S', '-m', 'signed by git');
    const raw = (await g('cat-file', 'commit', 'HEAD')).stdout;
    const keys = parseTrustedKeys(publisherPub);

    expect(verifyCommitSignature(Buffer.from(raw), keys)).toMatchObject({ ok: true, comment: 'publisher' });
    expect(verifyCommitSignature(Buffer.from(raw.replace('signed by git', 'signed by gIt')), keys)).toMatchObject({ ok: false, reason: 'bad signature' });
    expect(verifyCommitSignature(Buffer.from(raw), parseTrustedKeys(publicKeyLine(otherKey)))).toMatchObject({ ok: false, reason: 'untrusted key' });
  });

  it('never throws on garbage in place of a signature', () => {
    const keys = parseTrustedKeys(publisherPub);
    const payload = 'tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor a <a> 1 +0000\ncommitter a <a> 1 +0000\n\nmsg\n';
    const signed = signCommitPayload(payload, publisherKey);
    const withSig = (sig: string) => Buffer.from(payload.replace('\n\n', `\ngpgsig ${sig.trim().split('\n').join('\n ')}\n\n`));
    expect(verifyCommitSignature(withSig(signed), keys)).toMatchObject({ ok: true });
    expect(verifyCommitSignature(withSig('-----BEGIN PGP SIGNATURE-----\nabc\n-----END PGP SIGNATURE-----'), keys)).toMatchObject({ reason: 'unsupported signature' });
    expect(verifyCommitSignature(withSig('-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----'), keys)).toMatchObject({ reason: 'unsupported signature' });
    expect(verifyCommitSignature(Buffer.from(payload), keys)).toMatchObject({ ok: false, reason: 'unsigned' });
  });
});

describe('the agent with FLOTILLA_TRUSTED_KEYS', () => {
  const installDir = () => join(work, 'install');
  const stateDir = () => join(work, 'state');

  async function pass(compose: RecordingCompose, dirs = { install: installDir(), state: stateDir() }): Promise<{ outcome: ReconcileOutcome; statuses: string[] }> {
    const statuses: string[] = [];
    const outcome = await reconcileOnce({
      config: parseAgentConfig({
        FLOTILLA_REPO: git.url('fleet.git'),
        FLOTILLA_TENANT: 'acme',
        FLOTILLA_DIR: dirs.install,
        FLOTILLA_STATE_DIR: dirs.state,
        FLOTILLA_HEALTH_TIMEOUT: '1',
        FLOTILLA_TRUSTED_KEYS: trustedFile,
      }),
      compose,
      report: async (u) => void statuses.push(`${u.state}: ${u.description}`),
      log: () => undefined,
      healthPollMs: 1,
    });
    return { outcome, statuses };
  }

  it('applies signed commits and refuses unsigned, foreign-signed and tampered ones, changing nothing', async () => {
    await mkdir(installDir(), { recursive: true });
    const compose = new RecordingCompose({ services: HEALTHY });
    const signed = await publish(publisherKey);
    expect((await pass(compose)).outcome).toMatchObject({ kind: 'applied', commit: signed });
    const applied = await readFile(join(installDir(), 'config/app.conf'), 'utf8');
    const calls = compose.calls.length;

    const unsigned = await publish();
    const u = await pass(compose);
    expect(u.outcome).toMatchObject({ kind: 'refused', commit: unsigned });
    expect(u.statuses).toEqual([`failure: refused: ${unsigned.slice(0, 12)}: unsigned: the commit carries no signature`]);

    const foreign = await publish(otherKey);
    const f = await pass(compose);
    expect(f.outcome).toMatchObject({ kind: 'refused', commit: foreign });
    expect(f.statuses[0]).toMatch(/^failure: refused: .*: untrusted key: signed by SHA256:\S+, which is not a trusted key$/);

    // A valid signed commit whose tree line is swapped for another tree, signature kept.
    const good = await publish(publisherKey);
    const raw = (await run('git', ['--git-dir', bare, 'cat-file', 'commit', good], { env: GIT_ENV })).stdout;
    const otherTree = (await run('git', ['--git-dir', bare, 'rev-parse', `${signed}^{tree}`], { env: GIT_ENV })).stdout.trim();
    const tampered = await new Promise<string>((resolve, reject) => {
      const child = execFile('git', ['--git-dir', bare, 'hash-object', '-t', 'commit', '-w', '--stdin'], { env: GIT_ENV }, (err, stdout) =>
        err ? reject(err) : resolve(stdout.trim()),
      );
      child.stdin!.end(raw.replace(/^tree [0-9a-f]{40}$/m, `tree ${otherTree}`));
    });
    await run('git', ['--git-dir', bare, 'update-ref', 'refs/heads/tenants/acme', tampered], { env: GIT_ENV });
    const t = await pass(compose);
    expect(t.outcome).toMatchObject({ kind: 'refused', commit: tampered });
    expect(t.statuses[0]).toMatch(/: bad signature: the signature by SHA256:\S+ does not match the commit \(tampered\?\)$/);

    expect(compose.calls).toHaveLength(calls);
    expect(await readFile(join(installDir(), 'config/app.conf'), 'utf8')).toBe(applied);
    expect((await readState(stateDir())).lastApplied?.commit).toBe(signed);

    // The branch goes back to the genuine signed commit: applied.
    await run('git', ['--git-dir', bare, 'update-ref', 'refs/heads/tenants/acme', good], { env: GIT_ENV });
    expect((await pass(compose)).outcome).toMatchObject({ kind: 'applied', commit: good });
  });

  it('`flotilla-agent plan` runs the check `once` runs: it refuses the same commits in the same words, and names the signer', async () => {
    const dirs = { install: join(work, 'plan-install'), state: join(work, 'plan-state') };
    await mkdir(dirs.install, { recursive: true });
    const env = { FLOTILLA_REPO: git.url('fleet.git'), FLOTILLA_TENANT: 'acme', FLOTILLA_DIR: dirs.install, FLOTILLA_STATE_DIR: dirs.state, FLOTILLA_TRUSTED_KEYS: trustedFile };
    const plan = async () => {
      let stdout = '';
      let stderr = '';
      const code = await runAgentCli(['plan'], { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s), env });
      return { code, stdout, stderr };
    };

    for (const key of [undefined, otherKey]) {
      const commit = await publish(key);
      const planned = await plan();
      const once = await pass(new RecordingCompose({ services: HEALTHY }), dirs);
      expect(once.outcome).toMatchObject({ kind: 'refused', commit });
      const refusal = once.outcome.kind === 'refused' ? once.outcome.description : '';
      expect(planned).toEqual({ code: OUTCOME_EXIT_CODES.refused, stdout: '', stderr: `flotilla-agent: ${refusal}\n` });
    }

    const signed = await publish(publisherKey);
    const planned = await plan();
    expect(planned.stderr).toBe('');
    expect(planned.code).toBe(0);
    const fingerprint = parseTrustedKeys(publisherPub)[0]!.fingerprint;
    expect(planned.stdout).toMatch(new RegExp(`^commit ${signed} \\(nothing applied yet\\)\nsignature: ${signed.slice(0, 12)} signed by ${fingerprint.replace(/[+/]/g, '\\$&')} \\(publisher\\)\nplan for acme `));
  });

  it('refuses to start with an unreadable or malformed trusted keys file, naming the setting and the line', async () => {
    await mkdir(installDir(), { recursive: true });
    const env = { FLOTILLA_REPO: git.url('fleet.git'), FLOTILLA_TENANT: 'acme', FLOTILLA_DIR: installDir(), FLOTILLA_STATE_DIR: stateDir() };
    await expect(loadAgentConfig(undefined, { ...env, FLOTILLA_TRUSTED_KEYS: join(work, 'missing') })).rejects.toThrow(
      /^FLOTILLA_TRUSTED_KEYS: .*ENOENT/,
    );
    const bad = join(work, 'bad-keys');
    await writeFile(bad, `${publisherPub}\nssh-rsa AAAAB3NzaC1yc2E rsa-key\n`);
    const err = await loadAgentConfig(undefined, { ...env, FLOTILLA_TRUSTED_KEYS: bad }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SettingError);
    expect((err as Error).message).toBe(`FLOTILLA_TRUSTED_KEYS: ${bad}:2: expected "ssh-ed25519 <base64> [comment]", got "ssh-rsa AAAAB3NzaC1yc2E rsa-key"`);
  });
});
