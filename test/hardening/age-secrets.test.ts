// The bad inputs of secrets set centrally (issue 17): a ciphertext for another host, a
// truncated or altered ciphertext, a secret for a key the tenant does not declare, a
// plaintext where ciphertext belongs, and a host key file others can read. Each is refused
// with a typed error naming the key (or the key file), and no message carries the value,
// the ciphertext or the private key.
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { manifestOf } from '../support/tenant-fixture.js';
import { runAgentCli } from '../../agent/main.js';
import { ageIdentityPath, createHostIdentity, decryptManifestSecrets } from '../../agent/secrets.js';
import { AgeIdentityError, ManifestError, SecretDecryptError } from '../../renderer/core/errors.js';
import { parseManifest, serializeManifest, type Manifest } from '../../renderer/core/manifest.js';
import { AGE_ARMOR_FOOTER, AGE_ARMOR_HEADER, checkTenantSecrets, encryptSecret, generateAgeIdentity, sealSecret } from '../../renderer/core/secrets.js';

const VALUE = 'hardening-secret-value-91d2c7';

let work: string;
let identity: string;
let recipient: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'flotilla-age-hardening-'));
  identity = ageIdentityPath(join(work, 'state'));
  recipient = await createHostIdentity(identity);
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

const manifest = (encryptedSecrets: Record<string, string>): Manifest => manifestOf({ encryptedSecrets });

/** Every string a message must not hold: the value, any 16 characters of the ciphertext, the private key. */
async function expectNoLeak(message: string, ciphertext?: string): Promise<void> {
  expect(message).not.toContain(VALUE);
  expect(message).not.toContain(VALUE.slice(0, 10));
  for (const line of (ciphertext ?? '').split('\n').filter((l) => !l.startsWith('-----') && l.length >= 16)) {
    for (let i = 0; i + 16 <= line.length; i += 16) expect(message).not.toContain(line.slice(i, i + 16));
  }
  const key = (await readFile(identity, 'utf8')).split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-'))!;
  expect(message).not.toContain(key.slice(16, 40));
}

/** Decrypts through the agent's path; returns the error it must throw. */
async function refusal(encryptedSecrets: Record<string, string>): Promise<Error> {
  const parsed = parseManifest(serializeManifest(manifest(encryptedSecrets)));
  const remembered: string[] = [];
  const error = await decryptManifestSecrets(parsed, identity, { remember: (v) => remembered.push(...v) }).then(
    () => new Error('decrypted'),
    (e: Error) => e,
  );
  expect(remembered).not.toContain(VALUE);
  return error;
}

describe('a ciphertext the host cannot use', () => {
  it('one encrypted to another host: refused (exit 3), naming the key and this host recipient', async () => {
    const other = await generateAgeIdentity();
    const ciphertext = await encryptSecret('SMTP_PASSWORD', VALUE, [other.recipient]);
    const error = (await refusal({ SMTP_PASSWORD: ciphertext })) as SecretDecryptError;
    expect(error).toBeInstanceOf(SecretDecryptError);
    expect(error.exitCode).toBe(3);
    expect(error.message).toBe(
      `secret SMTP_PASSWORD cannot be decrypted: it is not encrypted to this host's age identity (${recipient}); add the host's recipient to the tenant's ageRecipients and re-encrypt (flotilla secret rotate-recipients)`,
    );
    await expectNoLeak(error.message, ciphertext);
  });

  it('one truncated at the END line: refused by the manifest check before any decryption', async () => {
    const ciphertext = await encryptSecret('SMTP_PASSWORD', VALUE, [recipient]);
    const cut = ciphertext.slice(0, ciphertext.indexOf(AGE_ARMOR_FOOTER) - 10);
    const text = serializeManifest(manifest({ SMTP_PASSWORD: cut }));
    expect(() => parseManifest(text)).toThrow(ManifestError);
    expect(() => parseManifest(text)).toThrow(`manifest: encryptedSecrets.SMTP_PASSWORD is not complete age armor (no ${AGE_ARMOR_FOOTER} line: truncated?)`);
    try {
      parseManifest(text);
    } catch (e) {
      await expectNoLeak((e as Error).message, ciphertext);
    }
  });

  it('one whose payload was cut short (armor still well-formed): refused (exit 3) as damaged', async () => {
    const ciphertext = await encryptSecret('SMTP_PASSWORD', VALUE, [recipient]);
    const body = Buffer.from(ciphertext.trim().split('\n').slice(1, -1).join(''), 'base64');
    const rearmored = [AGE_ARMOR_HEADER, ...body.subarray(0, body.length - 17).toString('base64').match(/.{1,64}/g)!, AGE_ARMOR_FOOTER, ''].join('\n');
    const error = (await refusal({ SMTP_PASSWORD: rearmored })) as SecretDecryptError;
    expect(error).toBeInstanceOf(SecretDecryptError);
    expect(error.reason).toBe('damaged');
    expect(error.exitCode).toBe(3);
    expect(error.message).toMatch(/^secret SMTP_PASSWORD cannot be decrypted: the ciphertext is damaged: /);
    await expectNoLeak(error.message, rearmored);
  });

  it('one whose header MAC was altered: refused (exit 3) as damaged', async () => {
    const ciphertext = await encryptSecret('SMTP_PASSWORD', VALUE, [recipient]);
    const body = Buffer.from(ciphertext.trim().split('\n').slice(1, -1).join(''), 'base64');
    // One character of the MAC line (`--- <base64 MAC>`): the header still parses, its MAC no longer matches.
    const at = body.indexOf('\n--- ') + 6;
    body[at] = body[at] === 0x41 ? 0x42 : 0x41;
    const altered = [AGE_ARMOR_HEADER, ...body.toString('base64').match(/.{1,64}/g)!, AGE_ARMOR_FOOTER, ''].join('\n');
    const error = (await refusal({ SMTP_PASSWORD: altered })) as SecretDecryptError;
    expect(error).toBeInstanceOf(SecretDecryptError);
    expect(error.reason).toBe('damaged');
    await expectNoLeak(error.message, altered);
  });
});

describe('what the fleet must not hold', () => {
  it('a secret for a key the tenant does not declare', async () => {
    const sealed = await sealSecret('STRIPE_KEY', VALUE, [recipient]);
    const problems = checkTenantSecrets({ declared: ['SMTP_PASSWORD'], recipients: [recipient], encryptedSecrets: { STRIPE_KEY: sealed } });
    expect(problems).toEqual([
      { keyPath: 'encryptedSecrets.STRIPE_KEY', key: 'STRIPE_KEY', message: "STRIPE_KEY is not a secret this tenant declares (fleet.yaml defaults.secrets or the tenant's secrets)" },
    ]);
  });

  it('a plaintext secret: in the tenant file, and in a manifest', async () => {
    const sealed = await sealSecret('SMTP_PASSWORD', VALUE, [recipient]);
    const problems = checkTenantSecrets({
      declared: ['SMTP_PASSWORD', 'API_KEY'],
      recipients: [recipient],
      encryptedSecrets: { SMTP_PASSWORD: VALUE, API_KEY: { ...sealed, ciphertext: VALUE } },
    });
    expect(problems.map((p) => `${p.keyPath}: ${p.message}`)).toEqual([
      'encryptedSecrets.SMTP_PASSWORD: holds a plaintext value: secrets are stored encrypted, set them with `flotilla secret set`',
      expect.stringMatching(/^encryptedSecrets.API_KEY.ciphertext: ciphertext is not age armor \(it does not start with -----BEGIN AGE ENCRYPTED FILE-----; a plaintext value\?\)$/),
    ]);
    for (const p of problems) await expectNoLeak(p.message);
    const text = JSON.stringify({ ...manifest({}), encryptedSecrets: { SMTP_PASSWORD: VALUE } });
    expect(() => parseManifest(text)).toThrow(/encryptedSecrets.SMTP_PASSWORD is not age armor/);
    expect(() => parseManifest(text)).not.toThrow(VALUE);
  });

  it('a ciphertext not encrypted to the tenant current recipients (a host re-keyed)', async () => {
    const oldKey = await generateAgeIdentity();
    const sealed = await sealSecret('SMTP_PASSWORD', VALUE, [oldKey.recipient]);
    const [problem] = checkTenantSecrets({ declared: ['SMTP_PASSWORD'], recipients: [recipient], encryptedSecrets: { SMTP_PASSWORD: sealed } });
    expect(problem!.keyPath).toBe('encryptedSecrets.SMTP_PASSWORD.recipients');
    expect(problem!.message).toMatch(/^SMTP_PASSWORD is not encrypted to the tenant's current recipients: not encrypted to age1.*; still encrypted to age1.*, no longer a recipient; run `flotilla secret rotate-recipients`$/);
  });
});

describe('a host key file with the wrong permissions', () => {
  it('is refused (exit 2, naming the path) by the agent and by keygen --show, and left as it is', async () => {
    const stateDir = join(work, 'loose');
    const path = ageIdentityPath(stateDir);
    const hostRecipient = await createHostIdentity(path);
    await chmod(path, 0o644);
    const before = await readFile(path, 'utf8');
    const ciphertext = await encryptSecret('SMTP_PASSWORD', VALUE, [hostRecipient]);
    const error = (await decryptManifestSecrets(parseManifest(serializeManifest(manifest({ SMTP_PASSWORD: ciphertext }))), path).catch((e: unknown) => e)) as AgeIdentityError;
    expect(error).toBeInstanceOf(AgeIdentityError);
    expect(error.exitCode).toBe(2);
    expect(error.message).toBe(`age identity ${path}: is mode 0644: group or others can read it, so it is not used; run chmod 600 ${path}`);

    let out = '';
    let err = '';
    const code = await runAgentCli(['keygen', '--state-dir', stateDir, '--show'], { env: {}, stdout: (s) => void (out += s), stderr: (s) => void (err += s) });
    expect(code).toBe(2);
    expect(err).toBe(`flotilla-agent: ${error.message}\n`);
    expect(out).toBe('');
    // keygen does not "fix" it by writing a new key either.
    expect(await runAgentCli(['keygen', '--state-dir', stateDir], { env: {}, stdout: () => undefined, stderr: () => undefined })).toBe(2);
    expect(await readFile(path, 'utf8')).toBe(before);
  });
});
