// Secrets against the real `age` (Debian's age 1.1, /usr/bin/age and age-keygen), both
// ways: what Flotilla encrypts (the renderer's encryptSecret) `age -d -i` decrypts, with the
// identity `flotilla-agent keygen` wrote; what `age -r … -a` encrypts the agent decrypts
// (decryptManifestSecrets), with its own identity or one age-keygen made. The CLI's verdict
// is the oracle for the format, and its armor passes the manifest's shape check unchanged.
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { manifestOf } from '../test/support/tenant-fixture.js';
import { SecretDecryptError } from '../renderer/core/errors.js';
import { parseManifest, serializeManifest, type Manifest } from '../renderer/core/manifest.js';
import { ageStanzaTypes, encryptSecret, generateAgeIdentity, sealSecret } from '../renderer/core/secrets.js';
import { ageIdentityPath, createHostIdentity, decryptManifestSecrets, hostRecipients } from './secrets.js';

const VALUE = 'Sm7p-pässword with spaces $and #hash';

let work: string;

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], input?: string): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1) : 0;
      if (err && code === -1) reject(err);
      else resolve({ code, stdout, stderr });
    });
    child.stdin?.end(input ?? '');
  });
}

const manifestWith = (encryptedSecrets: Record<string, string>): Manifest => manifestOf({ encryptedSecrets });

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'flotilla-age-interop-'));
  const version = await run('age', ['--version']).catch(() => undefined);
  if (!version || version.code !== 0) throw new Error('the age CLI is not installed (Debian package age; scripts/test.sh installs it)');
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('Flotilla -> age', () => {
  it('age -d -i <the identity flotilla-agent keygen wrote> decrypts what encryptSecret wrote', async () => {
    const identity = ageIdentityPath(join(work, 'host1'));
    const recipient = await createHostIdentity(identity);
    const admin = await generateAgeIdentity();
    const armored = await encryptSecret('SMTP_PASSWORD', VALUE, [recipient, admin.recipient]);
    const file = join(work, 'secret1.age');
    await writeFile(file, armored);
    const out = await run('age', ['-d', '-i', identity, file]);
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    expect(out.stdout).toBe(VALUE);
    // From standard input too, as a pipe from the manifest would.
    expect((await run('age', ['--decrypt', '--identity', identity], armored)).stdout).toBe(VALUE);
  });

  it('age-keygen -y reads the identity file keygen wrote and prints the same recipient', async () => {
    const identity = ageIdentityPath(join(work, 'host2'));
    const recipient = await createHostIdentity(identity);
    const out = await run('age-keygen', ['-y', identity]);
    expect(out.code).toBe(0);
    expect(out.stdout.trim()).toBe(recipient);
  });

  it('age refuses, as Flotilla does, a ciphertext for another host', async () => {
    const identity = ageIdentityPath(join(work, 'host3'));
    await createHostIdentity(identity);
    const other = await generateAgeIdentity();
    const armored = (await sealSecret('SMTP_PASSWORD', VALUE, [other.recipient])).ciphertext;
    const out = await run('age', ['-d', '-i', identity], armored);
    expect(out.code).not.toBe(0);
    expect(out.stderr).toMatch(/no identity matched any of the recipients/);
  });
});

describe('age -> Flotilla', () => {
  it('decryptManifestSecrets decrypts what `age -r <host recipient> -a` wrote (echo adds the line break it drops)', async () => {
    const stateDir = join(work, 'host4');
    const identity = ageIdentityPath(stateDir);
    const recipient = await createHostIdentity(identity);
    const admin = await generateAgeIdentity();
    const withNewline = await run('age', ['-e', '-a', '-r', recipient, '-r', admin.recipient], `${VALUE}\n`);
    expect(withNewline.code).toBe(0);
    const printf = await run('age', ['--encrypt', '--armor', '--recipient', recipient], 'api-key-0f3c9b');
    expect(ageStanzaTypes(withNewline.stdout)).toEqual(['X25519', 'X25519']);

    // The CLI's armor passes the manifest's own check, byte for byte.
    const manifest = parseManifest(serializeManifest(manifestWith({ SMTP_PASSWORD: withNewline.stdout, API_KEY: printf.stdout })));
    expect(manifest.encryptedSecrets!.SMTP_PASSWORD).toBe(withNewline.stdout);
    const remembered: string[] = [];
    expect(await decryptManifestSecrets(manifest, identity, { remember: (v) => remembered.push(...v) })).toEqual({
      API_KEY: 'api-key-0f3c9b',
      SMTP_PASSWORD: VALUE,
    });
    expect(remembered.sort()).toEqual(['api-key-0f3c9b', VALUE].sort());
  });

  it('an identity age-keygen made (chmod 600) works as the host identity; a recipients file (-R) too', async () => {
    const identity = join(work, 'keygen-made.txt');
    const made = await run('age-keygen', ['-o', identity]);
    expect(made.code).toBe(0);
    // age-keygen writes 0600 itself; made sure here, whatever the umask.
    await chmod(identity, 0o600);
    const [recipient] = await hostRecipients(identity);
    expect((await readFile(identity, 'utf8')).includes(`# public key: ${recipient}`)).toBe(true);
    const recipients = join(work, 'recipients.txt');
    await writeFile(recipients, `# the tenant's hosts\n${recipient}\n`);
    const enc = await run('age', ['-e', '-a', '-R', recipients], 'from-a-recipients-file');
    expect(await decryptManifestSecrets(manifestWith({ NEWT_SECRET: enc.stdout }), identity)).toEqual({ NEWT_SECRET: 'from-a-recipients-file' });
  });

  it('what age encrypted to another key is refused, naming the key, not the value', async () => {
    const identity = ageIdentityPath(join(work, 'host5'));
    await createHostIdentity(identity);
    const other = await generateAgeIdentity();
    const enc = await run('age', ['-e', '-a', '-r', other.recipient], 'not-for-this-host-value');
    const error = (await decryptManifestSecrets(manifestWith({ SMTP_PASSWORD: enc.stdout }), identity).catch((e: unknown) => e)) as SecretDecryptError;
    expect(error).toBeInstanceOf(SecretDecryptError);
    expect(error.key).toBe('SMTP_PASSWORD');
    expect(error.reason).toBe('not-for-this-host');
    expect(error.message).not.toContain('not-for-this-host-value');
  });
});
