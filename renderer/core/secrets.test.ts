import { describe, expect, it } from 'vitest';
import { manifestOf } from '../../test/support/tenant-fixture.js';
import { AgeIdentityError, AgeRecipientError, ManifestError, SecretDecryptError, SecretValueError } from './errors.js';
import { parseManifest, serializeManifest, type Manifest } from './manifest.js';
import {
  AGE_ARMOR_FOOTER,
  AGE_ARMOR_HEADER,
  ageArmorProblem,
  ageStanzaTypes,
  checkAgeRecipients,
  checkSecretValue,
  checkTenantSecrets,
  decryptSecret,
  encryptedSecretChanges,
  encryptSecret,
  formatIdentityFile,
  generateAgeIdentity,
  looksLikeAgeRecipient,
  MAX_SECRET_VALUE_BYTES,
  parseIdentityFile,
  sameRecipients,
  sealSecret,
  secretValueFromInput,
  showRecipient,
} from './secrets.js';

const VALUE = 'correct-horse-battery-staple-4471';

/** Flips one base64 character of the armored body's line `line` (1-based after the header). */
function tamper(armored: string, line: number, at = 10): string {
  const lines = armored.trimEnd().split('\n');
  const l = lines[line]!;
  const c = l[at] === 'A' ? 'B' : 'A';
  lines[line] = l.slice(0, at) + c + l.slice(at + 1);
  return `${lines.join('\n')}\n`;
}

describe('encryptSecret / decryptSecret', () => {
  it('round-trips a value through armored age to several recipients, each of which decrypts it', async () => {
    const host = await generateAgeIdentity();
    const admin = await generateAgeIdentity();
    const armored = await encryptSecret('SMTP_PASSWORD', VALUE, [host.recipient, admin.recipient]);
    expect(armored.startsWith(`${AGE_ARMOR_HEADER}\n`)).toBe(true);
    expect(armored.trimEnd().endsWith(AGE_ARMOR_FOOTER)).toBe(true);
    expect(armored).not.toContain(VALUE);
    expect(ageArmorProblem(armored)).toBeUndefined();
    expect(ageStanzaTypes(armored)).toEqual(['X25519', 'X25519']);
    expect(await decryptSecret('SMTP_PASSWORD', armored, [host.identity])).toBe(VALUE);
    expect(await decryptSecret('SMTP_PASSWORD', armored, [admin.identity])).toBe(VALUE);
    // Each encryption is fresh: the same value twice is two different ciphertexts.
    expect(await encryptSecret('SMTP_PASSWORD', VALUE, [host.recipient])).not.toBe(await encryptSecret('SMTP_PASSWORD', VALUE, [host.recipient]));
  });

  it('keeps UTF-8 beyond ASCII, quotes, $ and # as they are', async () => {
    const host = await generateAgeIdentity();
    const value = `pässwörd "q" 'x' $HOME #not-a-comment 🔑`;
    expect(await decryptSecret('K', await encryptSecret('K', value, [host.recipient]), [host.identity])).toBe(value);
  });

  it('refuses a wrong recipient with not-for-this-host, naming the key and the host recipient, never the value or ciphertext', async () => {
    const tenant = await generateAgeIdentity();
    const other = await generateAgeIdentity();
    const armored = await encryptSecret('SMTP_PASSWORD', VALUE, [tenant.recipient]);
    const error = await decryptSecret('SMTP_PASSWORD', armored, [other.identity], [other.recipient]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SecretDecryptError);
    const e = error as SecretDecryptError;
    expect(e.key).toBe('SMTP_PASSWORD');
    expect(e.reason).toBe('not-for-this-host');
    expect(e.exitCode).toBe(3);
    expect(e.message).toContain('secret SMTP_PASSWORD cannot be decrypted');
    expect(e.message).toContain(other.recipient);
    expect(e.message).not.toContain(VALUE);
    expect(e.message).not.toContain(armored.split('\n')[1]!.slice(0, 16));
    expect(e.message).not.toContain(other.identity);
  });

  it.each([
    ['truncated (the END line cut off)', (a: string) => a.split('\n').slice(0, 3).join('\n'), /no END line/],
    ['truncated (the payload cut short, the armor repaired)', (a: string) => {
      const lines = a.trimEnd().split('\n');
      const body = Buffer.from(lines.slice(1, -1).join(''), 'base64');
      const cut = body.subarray(0, body.length - 20).toString('base64').match(/.{1,64}/g)!;
      return [AGE_ARMOR_HEADER, ...cut, AGE_ARMOR_FOOTER, ''].join('\n');
    }, /damaged/],
    ['a header byte altered', (a: string) => tamper(a, 1, 30), /damaged/],
    ['a payload byte altered', (a: string) => tamper(a, a.trimEnd().split('\n').length - 2, 2), /damaged/],
    ['a plaintext value', () => VALUE, /not age armor/],
    ['armor with a short line in the middle', (a: string) => a.replace(/\n(.{10})/, '\n'), /damaged/],
  ])('refuses %s as damaged, naming the key only', async (_name, mangle, message) => {
    const host = await generateAgeIdentity();
    const armored = await encryptSecret('NEWT_SECRET', VALUE, [host.recipient]);
    const bad = mangle(armored);
    const error = (await decryptSecret('NEWT_SECRET', bad, [host.identity]).catch((e: unknown) => e)) as SecretDecryptError;
    expect(error).toBeInstanceOf(SecretDecryptError);
    expect(error.reason).toBe('damaged');
    expect(error.key).toBe('NEWT_SECRET');
    expect(error.message).toMatch(message);
    expect(error.message).not.toContain(VALUE.slice(0, 8));
    for (const line of bad.split('\n').filter((l) => l.length > 12 && !l.startsWith('-----'))) expect(error.message).not.toContain(line.slice(0, 12));
  });

  it('drops one final line break of the plaintext (echo | age), and refuses a value .env cannot hold as bad-value', async () => {
    const host = await generateAgeIdentity();
    const age = await import('age-encryption');
    const raw = async (text: string) => {
      const e = new age.Encrypter();
      e.addRecipient(host.recipient);
      return age.armor.encode(await e.encrypt(text));
    };
    expect(await decryptSecret('K', await raw(`${VALUE}\n`), [host.identity])).toBe(VALUE);
    expect(await decryptSecret('K', await raw(`${VALUE}\r\n`), [host.identity])).toBe(VALUE);
    for (const bad of [`two\nlines`, '', '\n']) {
      const e = (await decryptSecret('K', await raw(bad), [host.identity]).catch((x: unknown) => x)) as SecretDecryptError;
      expect(e).toBeInstanceOf(SecretDecryptError);
      expect(e.reason).toBe('bad-value');
      expect(e.message).not.toContain('two');
    }
  });

  it('refuses to encrypt what .env cannot hold, naming the key and never the value', async () => {
    const host = await generateAgeIdentity();
    for (const [value, why] of [
      ['', /empty/],
      ['a\nb-secret-text', /line break/],
      ['a\0b', /NUL/],
      ['x\ud800y', /surrogate/],
      ['x'.repeat(MAX_SECRET_VALUE_BYTES + 1), /over the 16384-byte limit/],
    ] as const) {
      const e = (await encryptSecret('API_KEY', value, [host.recipient]).catch((x: unknown) => x)) as SecretValueError;
      expect(e).toBeInstanceOf(SecretValueError);
      expect(e.message).toMatch(why);
      expect(e.message).toContain('API_KEY');
      expect(e.message).not.toContain('secret-text');
    }
    await expect(encryptSecret('1BAD', 'v', [host.recipient])).rejects.toThrow(/not a variable name/);
    await expect(encryptSecret('K', 'value', [])).rejects.toThrow(/no recipients/);
    expect(checkSecretValue('K', 'x'.repeat(MAX_SECRET_VALUE_BYTES))).toHaveLength(MAX_SECRET_VALUE_BYTES);
  });

  it('sealSecret records the sorted recipients and the time beside the ciphertext', async () => {
    const a = await generateAgeIdentity();
    const b = await generateAgeIdentity();
    const sealed = await sealSecret('SMTP_PASSWORD', VALUE, [b.recipient, a.recipient, ` ${a.recipient} `], new Date('2026-12-03T14:05:00Z'));
    expect(sealed.recipients).toEqual([a.recipient, b.recipient].sort());
    expect(sealed.setAt).toBe('2026-12-03T14:05:00.000Z');
    expect(await decryptSecret('SMTP_PASSWORD', sealed.ciphertext, [b.identity])).toBe(VALUE);
    expect(ageStanzaTypes(sealed.ciphertext)).toHaveLength(2);
  });
});

describe('recipients', () => {
  it('accepts recipients the library accepts, sorted and deduplicated', async () => {
    const a = await generateAgeIdentity();
    const b = await generateAgeIdentity();
    expect(looksLikeAgeRecipient(a.recipient)).toBe(true);
    expect(await checkAgeRecipients([b.recipient, a.recipient, b.recipient])).toEqual([a.recipient, b.recipient].sort());
    expect(sameRecipients([a.recipient, b.recipient], [b.recipient, a.recipient, a.recipient])).toBe(true);
    expect(sameRecipients([a.recipient], [b.recipient])).toBe(false);
  });

  it('refuses a bad checksum, a wrong prefix and a non-string, naming where', async () => {
    const a = await generateAgeIdentity();
    const last = a.recipient.at(-1) === 'q' ? 'p' : 'q';
    const broken = a.recipient.slice(0, -1) + last;
    expect(looksLikeAgeRecipient(broken)).toBe(true);
    await expect(checkAgeRecipients([a.recipient, broken], 'ageRecipients')).rejects.toThrow(/ageRecipients\[1\]: .*bad checksum/);
    await expect(checkAgeRecipients(['ssh-ed25519 AAAA'], 'ageRecipients')).rejects.toThrow(AgeRecipientError);
    await expect(checkAgeRecipients([42], 'x')).rejects.toThrow(/x\[0\]: \(number\): is not a string/);
  });

  it('never echoes a private key given as a recipient', async () => {
    const a = await generateAgeIdentity();
    const e = (await checkAgeRecipients([a.identity], 'ageRecipients').catch((x: unknown) => x)) as AgeRecipientError;
    expect(e).toBeInstanceOf(AgeRecipientError);
    expect(e.message).toContain('is a private key');
    expect(e.message).not.toContain(a.identity.slice(16, 30));
    expect(showRecipient(a.identity)).toBe('(an age private key)');
    expect(showRecipient(a.recipient)).toMatch(/^age1.{8}….{8}$/);
  });
});

describe('identity files', () => {
  it("writes age-keygen's format and reads it back, with the recipient", async () => {
    const pair = await generateAgeIdentity();
    const text = formatIdentityFile(pair, new Date('2026-12-03T14:05:06.789Z'));
    expect(text).toBe(`# created: 2026-12-03T14:05:06Z\n# public key: ${pair.recipient}\n${pair.identity}\n`);
    expect(await parseIdentityFile(text, '/s/age-identity.txt')).toEqual([pair]);
    expect(await parseIdentityFile(`\r\n# c\r\n${pair.identity}\r\n`, 'f')).toEqual([pair]);
  });

  it('names the file and the line, never a key', async () => {
    const pair = await generateAgeIdentity();
    const broken = pair.identity.slice(0, -1) + (pair.identity.at(-1) === 'Q' ? 'P' : 'Q');
    const e = (await parseIdentityFile(`# x\n${broken}\n`, '/s/id.txt').catch((x: unknown) => x)) as AgeIdentityError;
    expect(e).toBeInstanceOf(AgeIdentityError);
    expect(e.message).toBe('age identity /s/id.txt: line 2 is not a valid age identity (bad checksum or key)');
    await expect(parseIdentityFile('hello\n', '/s/id.txt')).rejects.toThrow('line 1 is not an age identity');
    await expect(parseIdentityFile('# only comments\n', '/s/id.txt')).rejects.toThrow('holds no age identity');
  });
});

describe('ageArmorProblem', () => {
  it('says what is wrong without quoting the text', async () => {
    const host = await generateAgeIdentity();
    const armored = await encryptSecret('K', VALUE, [host.recipient]);
    expect(ageArmorProblem(armored)).toBeUndefined();
    expect(ageArmorProblem(`\n  ${armored}\n\n`)).toBeUndefined();
    expect(ageArmorProblem(armored.replace(/\n/g, '\r\n'))).toBeUndefined();
    expect(ageArmorProblem(VALUE)).toMatch(/a plaintext value\?/);
    expect(ageArmorProblem(VALUE)).not.toContain(VALUE);
    expect(ageArmorProblem(armored.split('\n').slice(0, 2).join('\n'))).toMatch(/truncated/);
    expect(ageArmorProblem(`${AGE_ARMOR_HEADER}\n${Buffer.from('not an age file at all').toString('base64')}\n${AGE_ARMOR_FOOTER}`)).toMatch(/not an age-encryption.org\/v1 file/);
    expect(ageArmorProblem(42)).toBe('is number, not age armor');
    expect(ageArmorProblem(null)).toBe('is null, not age armor');
  });
});

describe('checkTenantSecrets', () => {
  it('accepts secrets encrypted to the tenant and admin recipients', async () => {
    const host = await generateAgeIdentity();
    const admin = await generateAgeIdentity();
    const sealed = await sealSecret('SMTP_PASSWORD', VALUE, [host.recipient, admin.recipient]);
    expect(
      checkTenantSecrets({ declared: ['SMTP_PASSWORD'], recipients: [host.recipient], adminRecipients: [admin.recipient], encryptedSecrets: { SMTP_PASSWORD: sealed } }),
    ).toEqual([]);
    expect(checkTenantSecrets({ declared: [], recipients: [], encryptedSecrets: undefined })).toEqual([]);
    // A YAML timestamp (js-yaml reads an unquoted one as a Date) is a time too.
    expect(
      checkTenantSecrets({ declared: ['SMTP_PASSWORD'], recipients: [host.recipient, admin.recipient], encryptedSecrets: { SMTP_PASSWORD: { ...sealed, setAt: new Date(sealed.setAt) } } }),
    ).toEqual([]);
  });

  it('names a ciphertext not encrypted to the current recipients, both ways', async () => {
    const oldHost = await generateAgeIdentity();
    const newHost = await generateAgeIdentity();
    const sealed = await sealSecret('SMTP_PASSWORD', VALUE, [oldHost.recipient]);
    const problems = checkTenantSecrets({ declared: ['SMTP_PASSWORD'], recipients: [newHost.recipient], encryptedSecrets: { SMTP_PASSWORD: sealed } });
    expect(problems).toHaveLength(1);
    expect(problems[0]!.keyPath).toBe('encryptedSecrets.SMTP_PASSWORD.recipients');
    expect(problems[0]!.key).toBe('SMTP_PASSWORD');
    expect(problems[0]!.message).toContain("SMTP_PASSWORD is not encrypted to the tenant's current recipients");
    expect(problems[0]!.message).toContain(`not encrypted to ${showRecipient(newHost.recipient)}`);
    expect(problems[0]!.message).toContain(`still encrypted to ${showRecipient(oldHost.recipient)}`);
    expect(problems[0]!.message).toContain('rotate-recipients');
  });

  it('catches a recipients list edited by hand without re-encrypting (stanza count)', async () => {
    const host = await generateAgeIdentity();
    const added = await generateAgeIdentity();
    const sealed = await sealSecret('SMTP_PASSWORD', VALUE, [host.recipient]);
    const edited = { ...sealed, recipients: [host.recipient, added.recipient] };
    const problems = checkTenantSecrets({ declared: ['SMTP_PASSWORD'], recipients: [host.recipient, added.recipient], encryptedSecrets: { SMTP_PASSWORD: edited } });
    expect(problems.map((p) => p.message)).toEqual([expect.stringContaining('the ciphertext has 1 recipient stanza(s) but recipients lists 2')]);
  });

  it('refuses an undeclared key, a plaintext value, bare ciphertext and a malformed entry, never quoting a value', async () => {
    const host = await generateAgeIdentity();
    const sealed = await sealSecret('SMTP_PASSWORD', VALUE, [host.recipient]);
    const problems = checkTenantSecrets({
      declared: ['SMTP_PASSWORD', 'API_KEY', 'NEWT_SECRET', 'OTHER'],
      recipients: [host.recipient],
      encryptedSecrets: {
        UNDECLARED: sealed,
        SMTP_PASSWORD: VALUE,
        API_KEY: sealed.ciphertext,
        NEWT_SECRET: { ...sealed, ciphertext: VALUE, extra: 1 },
        OTHER: { recipients: [], setAt: 'yesterday', ciphertext: sealed.ciphertext },
      },
    });
    const byPath = Object.fromEntries(problems.map((p) => [p.keyPath, p.message]));
    expect(byPath['encryptedSecrets.UNDECLARED']).toContain('UNDECLARED is not a secret this tenant declares');
    expect(byPath['encryptedSecrets.SMTP_PASSWORD']).toContain('holds a plaintext value');
    expect(byPath['encryptedSecrets.API_KEY']).toContain('holds bare ciphertext');
    expect(byPath['encryptedSecrets.NEWT_SECRET.extra']).toContain('is not a secret field');
    expect(byPath['encryptedSecrets.NEWT_SECRET.ciphertext']).toContain('is not age armor');
    expect(byPath['encryptedSecrets.OTHER.setAt']).toContain('ISO 8601');
    expect(byPath['encryptedSecrets.OTHER.recipients']).toContain('non-empty list');
    for (const p of problems) expect(p.message).not.toContain(VALUE);
    expect(checkTenantSecrets({ declared: [], recipients: [], encryptedSecrets: ['x'] })).toEqual([
      { keyPath: 'encryptedSecrets', message: expect.stringContaining('must be a mapping') },
    ]);
  });
});

describe('small helpers', () => {
  it('secretValueFromInput drops one final line break only', () => {
    expect(secretValueFromInput('pw\n')).toBe('pw');
    expect(secretValueFromInput('pw\r\n')).toBe('pw');
    expect(secretValueFromInput('pw\n\n')).toBe('pw\n');
    expect(secretValueFromInput('pw')).toBe('pw');
  });

  it('encryptedSecretChanges: added, changed, removed, by key', () => {
    expect(encryptedSecretChanges({ A: 'x', B: 'y', C: 'z' }, { B: 'y2', C: 'z\n', D: 'w' })).toEqual([
      { key: 'A', change: 'removed' },
      { key: 'B', change: 'changed' },
      { key: 'D', change: 'added' },
    ]);
    expect(encryptedSecretChanges(undefined, undefined)).toEqual([]);
  });
});

describe('the manifest carries encryptedSecrets', () => {
  const base = (extra: Partial<Manifest> = {}): Manifest =>
    manifestOf({ envPatch: { SMTP_HOST: 'smtp.example.org' }, secrets: ['POSTGRES_PASSWORD'], ...extra });

  it('parses and serialises it (keys sorted, stable bytes); a manifest without it is unchanged', async () => {
    const host = await generateAgeIdentity();
    const z = await encryptSecret('Z_KEY', VALUE, [host.recipient]);
    const a = await encryptSecret('A_KEY', VALUE, [host.recipient]);
    const m = base({ encryptedSecrets: { Z_KEY: z, A_KEY: a } });
    const text = serializeManifest(m);
    expect(text.indexOf('"A_KEY"')).toBeLessThan(text.indexOf('"Z_KEY"'));
    const parsed = parseManifest(text);
    expect(parsed.encryptedSecrets).toEqual({ A_KEY: a, Z_KEY: z });
    expect(serializeManifest(parsed)).toBe(text);
    const old = serializeManifest(base());
    expect(old).not.toContain('encryptedSecrets');
    expect(parseManifest(old)).not.toHaveProperty('encryptedSecrets');
  });

  it.each([
    ['not an object', ['x'], /encryptedSecrets must be an object/],
    ['a bad key', { '1X': 'armor' }, /encryptedSecrets key "1X" is not a valid variable name/],
    ['a compose setting', { COMPOSE_FILE: 'armor' }, /COMPOSE_FILE is compose's own setting/],
    ['a key also in envPatch', { SMTP_HOST: 'armor' }, /SMTP_HOST is also in envPatch/],
    ['a plaintext value', { SMTP_PASSWORD: VALUE }, /encryptedSecrets.SMTP_PASSWORD is not age armor/],
    ['a number', { SMTP_PASSWORD: 5 }, /encryptedSecrets.SMTP_PASSWORD is number/],
  ])('refuses %s, never quoting a value', (_name, encryptedSecrets, message) => {
    const text = JSON.stringify({ ...base(), encryptedSecrets });
    expect(() => parseManifest(text)).toThrow(ManifestError);
    expect(() => parseManifest(text)).toThrow(message);
    try {
      parseManifest(text);
    } catch (e) {
      expect((e as Error).message).not.toContain(VALUE);
    }
  });
});
