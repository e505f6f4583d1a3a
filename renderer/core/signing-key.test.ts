// `--signing-key` files a user gets wrong: each is a SigningKeyError (exit 2) naming the
// file and what is wrong with it, never an internal error. Keys come from the real ssh-keygen.
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reportCliError } from './exit.js';
import { SigningKeyError } from './errors.js';
import { readSigningKey } from './signing.js';

const run = promisify(execFile);
let work: string;

async function sshKeygen(name: string, ...args: string[]): Promise<string> {
  const path = join(work, name);
  await run('ssh-keygen', ['-q', '-C', name, '-f', path, ...args]);
  return path;
}

async function refusal(path: string): Promise<SigningKeyError> {
  const e = await readSigningKey(path).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(SigningKeyError);
  return e as SigningKeyError;
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'flotilla-signing-key-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('readSigningKey', () => {
  it('reads an unencrypted ssh-keygen Ed25519 key, and a PKCS#8 PEM one', async () => {
    const key = await readSigningKey(await sshKeygen('plain', '-t', 'ed25519', '-N', ''));
    expect(key.asymmetricKeyType).toBe('ed25519');
    const pem = join(work, 'pkcs8.pem');
    await writeFile(pem, generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }));
    expect((await readSigningKey(pem)).asymmetricKeyType).toBe('ed25519');
  });

  it('refuses a missing file naming it, exit 2 through the CLI error mapping', async () => {
    const path = join(work, 'no-such-key');
    const e = await refusal(path);
    expect(e.message).toBe(`signing key ${path}: no such file`);
    let stderr = '';
    expect(reportCliError('flotilla', e, (s) => void (stderr += s))).toBe(2);
    expect(stderr).toBe(`flotilla: signing key ${path}: no such file\n`);
  });

  it('refuses a passphrase-protected ssh-keygen key', async () => {
    const path = await sshKeygen('protected', '-t', 'ed25519', '-N', 'correct horse');
    expect((await refusal(path)).message).toBe(
      `signing key ${path}: the key is passphrase-protected; give an unencrypted Ed25519 key (ssh-keygen -t ed25519 -N "")`,
    );
  });

  it('refuses a passphrase-protected PEM key', async () => {
    const pem = join(work, 'protected.pem');
    const { privateKey } = generateKeyPairSync('ed25519');
    await writeFile(pem, privateKey.export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: 'x' }));
    expect((await refusal(pem)).detail).toMatch(/^the key is passphrase-protected/);
  });

  it('refuses an RSA key, a public key, a folder and a file that is no key, each saying so', async () => {
    const rsa = await sshKeygen('rsa', '-t', 'rsa', '-b', '2048', '-N', '');
    expect((await refusal(rsa)).detail).toBe('the key is ssh-rsa; only ssh-ed25519 is supported');
    expect((await refusal(`${rsa}.pub`)).detail).toBe('this is a public key; give the private key (the file without .pub)');
    expect((await refusal(work)).detail).toBe('is a folder, not a key file');
    const junk = join(work, 'junk');
    await writeFile(junk, 'not a key\n');
    expect((await refusal(junk)).detail).toBe('not an Ed25519 private key in OpenSSH or PKCS#8 PEM format');
    const truncated = join(work, 'truncated');
    await writeFile(truncated, '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n');
    expect((await refusal(truncated)).detail).toBe('not an Ed25519 private key in OpenSSH or PKCS#8 PEM format (truncated)');
  });

  it('refuses a key it may not read', async () => {
    const path = await sshKeygen('unreadable', '-t', 'ed25519', '-N', '');
    await chmod(path, 0o000);
    if (process.getuid?.() !== 0) {
      expect((await refusal(path)).detail).toBe('cannot be read (permission denied)');
      return;
    }
    // Root reads any file: the refusal is shown by the same code run as nobody.
    await chmod(work, 0o755);
    const script = `import { readSigningKey } from ${JSON.stringify(join(import.meta.dirname, 'signing.ts'))};
readSigningKey(${JSON.stringify(path)}).then(() => console.log('read'), (e) => console.log(e.detail));`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      uid: 65534,
      gid: 65534,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/tmp' },
      cwd: join(import.meta.dirname, '..', '..'),
    });
    expect(stdout.trim()).toBe('cannot be read (permission denied)');
  });
});
