import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AgeIdentityError, SecretDecryptError } from '../renderer/core/errors.js';
import { encryptSecret, generateAgeIdentity, parseIdentityFile } from '../renderer/core/secrets.js';
import { runAgentCli } from './main.js';
import { HostSecrets } from './redact.js';
import { ageIdentityPath, createHostIdentity, decryptManifestSecrets, hostRecipients, readHostIdentity } from './secrets.js';

const SMTP = 'smtp-password-8c1f0e77d2';
const API = 'api-key-4b2e9a0d61c3';

let work: string;
beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'flotilla-agent-secrets-'));
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

async function cli(argv: string[], env: Record<string, string> = {}) {
  let out = '';
  let err = '';
  const code = await runAgentCli(argv, { env, stdout: (s) => void (out += s), stderr: (s) => void (err += s) });
  return { code, out, err };
}

describe('the host identity', () => {
  it("createHostIdentity writes age-keygen's format, mode 0600, in a new 0700 state dir, and returns the recipient", async () => {
    const stateDir = join(work, 'var/lib/flotilla/acme');
    const path = ageIdentityPath(stateDir);
    expect(path).toBe(join(stateDir, 'age-identity.txt'));
    const recipient = await createHostIdentity(path, new Date('2026-12-03T14:00:00Z'));
    expect(recipient).toMatch(/^age1[a-z0-9]{58}$/);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(stateDir)).mode & 0o777).toBe(0o700);
    const text = await readFile(path, 'utf8');
    expect(text).toMatch(new RegExp(`^# created: 2026-12-03T14:00:00Z\\n# public key: ${recipient}\\nAGE-SECRET-KEY-1[A-Z0-9]+\\n$`));
    expect(await hostRecipients(path)).toEqual([recipient]);
    // No temporary file is left beside it.
    const { readdir } = await import('node:fs/promises');
    expect(await readdir(stateDir)).toEqual(['age-identity.txt']);
  });

  it('never overwrites an existing identity, even a broken one', async () => {
    const path = ageIdentityPath(work);
    await createHostIdentity(path);
    const before = await readFile(path, 'utf8');
    await expect(createHostIdentity(path)).rejects.toThrow(AgeIdentityError);
    await expect(createHostIdentity(path)).rejects.toThrow(`age identity ${path}: exists already and is never overwritten`);
    expect(await readFile(path, 'utf8')).toBe(before);
    const broken = join(work, 'broken.txt');
    await writeFile(broken, '');
    await expect(createHostIdentity(broken)).rejects.toThrow('exists already');
    expect(await readFile(broken, 'utf8')).toBe('');
  });

  it('two keygens at once: one identity, one refusal', async () => {
    const path = ageIdentityPath(work);
    const results = await Promise.allSettled([createHostIdentity(path), createHostIdentity(path), createHostIdentity(path)]);
    const won = results.filter((r) => r.status === 'fulfilled');
    expect(won).toHaveLength(1);
    expect(await hostRecipients(path)).toEqual([(won[0] as PromiseFulfilledResult<string>).value]);
  });

  it.each([0o644, 0o640, 0o604, 0o660, 0o610])('refuses an identity file of mode %o (exit 2, naming the path)', async (mode) => {
    const path = ageIdentityPath(work);
    await createHostIdentity(path);
    await chmod(path, mode);
    const error = (await readHostIdentity(path).catch((e: unknown) => e)) as AgeIdentityError;
    expect(error).toBeInstanceOf(AgeIdentityError);
    expect(error.exitCode).toBe(2);
    expect(error.path).toBe(path);
    expect(error.message).toBe(`age identity ${path}: is mode 0${mode.toString(8)}: group or others can read it, so it is not used; run chmod 600 ${path}`);
  });

  it('accepts 0400 (read-only for the owner), and names a missing file, a folder and a file that is not an identity', async () => {
    const path = ageIdentityPath(work);
    const recipient = await createHostIdentity(path);
    await chmod(path, 0o400);
    expect(await hostRecipients(path)).toEqual([recipient]);
    await expect(readHostIdentity(join(work, 'none.txt'))).rejects.toThrow(/none.txt: does not exist: run `flotilla-agent keygen`/);
    await mkdir(join(work, 'dir'), { mode: 0o700 });
    await expect(readHostIdentity(join(work, 'dir'))).rejects.toThrow('is not a regular file');
    await writeFile(join(work, 'text.txt'), 'hello\n', { mode: 0o600 });
    await expect(readHostIdentity(join(work, 'text.txt'))).rejects.toThrow('line 1 is not an age identity');
  });
});

describe('decryptManifestSecrets', () => {
  it('decrypts every key with the host identity and registers each value with the redaction', async () => {
    const path = ageIdentityPath(work);
    const recipient = await createHostIdentity(path);
    const admin = await generateAgeIdentity();
    const manifest = {
      encryptedSecrets: {
        SMTP_PASSWORD: await encryptSecret('SMTP_PASSWORD', SMTP, [recipient, admin.recipient]),
        API_KEY: await encryptSecret('API_KEY', API, [recipient]),
      },
    };
    const remembered: string[] = [];
    const values = await decryptManifestSecrets(manifest, path, { remember: (v) => remembered.push(...v) });
    expect(values).toEqual({ API_KEY: API, SMTP_PASSWORD: SMTP });
    expect(Object.keys(values)).toEqual(['API_KEY', 'SMTP_PASSWORD']);
    expect(remembered.sort()).toEqual([API, SMTP].sort());

    // With the agent's own redaction: masked in any text from then on.
    const host = new HostSecrets({ installDir: join(work, 'install') });
    await decryptManifestSecrets(manifest, path, host);
    expect(host.redact(`compose said: bad value ${SMTP} for cpus; key=${API}`)).toBe('compose said: bad value *** for cpus; key=***');
  });

  it('reads no identity when the manifest has no secrets (a host without one keeps working)', async () => {
    expect(await decryptManifestSecrets({}, join(work, 'missing.txt'))).toEqual({});
    expect(await decryptManifestSecrets({ encryptedSecrets: {} }, join(work, 'missing.txt'))).toEqual({});
  });

  it('refuses a secret not encrypted to this host, naming the key and the host recipient, never a value or ciphertext', async () => {
    const path = ageIdentityPath(work);
    const recipient = await createHostIdentity(path);
    const other = await generateAgeIdentity();
    const good = await encryptSecret('API_KEY', API, [recipient]);
    const foreign = await encryptSecret('SMTP_PASSWORD', SMTP, [other.recipient]);
    const error = (await decryptManifestSecrets({ encryptedSecrets: { API_KEY: good, SMTP_PASSWORD: foreign } }, path).catch((e: unknown) => e)) as SecretDecryptError;
    expect(error).toBeInstanceOf(SecretDecryptError);
    expect(error.exitCode).toBe(3);
    expect(error.key).toBe('SMTP_PASSWORD');
    expect(error.reason).toBe('not-for-this-host');
    expect(error.message).toContain(recipient);
    for (const leaked of [SMTP, API, foreign.split('\n')[1]!.slice(0, 20), good.split('\n')[1]!.slice(0, 20)]) expect(error.message).not.toContain(leaked);
  });

  it('refuses a truncated ciphertext as damaged, naming the key', async () => {
    const path = ageIdentityPath(work);
    const recipient = await createHostIdentity(path);
    const armored = await encryptSecret('SMTP_PASSWORD', SMTP, [recipient]);
    const lines = armored.trimEnd().split('\n');
    const truncated = [...lines.slice(0, -2), lines.at(-2)!.slice(0, 8), lines.at(-1)!].join('\n');
    const error = (await decryptManifestSecrets({ encryptedSecrets: { SMTP_PASSWORD: truncated } }, path).catch((e: unknown) => e)) as SecretDecryptError;
    expect(error).toBeInstanceOf(SecretDecryptError);
    expect(error.reason).toBe('damaged');
    expect(error.message).toMatch(/^secret SMTP_PASSWORD cannot be decrypted: the ciphertext is damaged/);
  });

  it('refuses an identity file others can read before decrypting anything (exit 2)', async () => {
    const path = ageIdentityPath(work);
    const recipient = await createHostIdentity(path);
    await chmod(path, 0o644);
    const remembered: string[] = [];
    const error = (await decryptManifestSecrets(
      { encryptedSecrets: { API_KEY: await encryptSecret('API_KEY', API, [recipient]) } },
      path,
      { remember: (v) => remembered.push(...v) },
    ).catch((e: unknown) => e)) as AgeIdentityError;
    expect(error).toBeInstanceOf(AgeIdentityError);
    expect(error.exitCode).toBe(2);
    expect(error.message).toContain(path);
    expect(remembered).toEqual([]);
  });
});

describe('flotilla-agent keygen', () => {
  it('creates the identity, prints only the recipient on stdout, and refuses a second time (exit 2, naming the path)', async () => {
    const stateDir = join(work, 'state');
    const first = await cli(['keygen', '--state-dir', stateDir]);
    expect(first.code).toBe(0);
    const recipient = first.out.trim();
    expect(recipient).toMatch(/^age1[a-z0-9]{58}$/);
    expect(first.err).toContain(`created ${join(stateDir, 'age-identity.txt')} (mode 0600`);
    const identity = (await parseIdentityFile(await readFile(join(stateDir, 'age-identity.txt'), 'utf8'), 'f'))[0]!;
    expect(identity.recipient).toBe(recipient);
    expect(first.out + first.err).not.toContain(identity.identity);

    const again = await cli(['keygen', '--state-dir', stateDir]);
    expect(again.code).toBe(2);
    expect(again.err).toContain(`age identity ${join(stateDir, 'age-identity.txt')}: exists already and is never overwritten`);
    expect((await parseIdentityFile(await readFile(join(stateDir, 'age-identity.txt'), 'utf8'), 'f'))[0]).toEqual(identity);

    const show = await cli(['keygen', '--state-dir', stateDir, '--show']);
    expect(show).toEqual({ code: 0, out: `${recipient}\n`, err: '' });
  });

  it('--show refuses an identity others can read (exit 2, naming the path)', async () => {
    const stateDir = join(work, 'state');
    await cli(['keygen', '--state-dir', stateDir]);
    await chmod(join(stateDir, 'age-identity.txt'), 0o640);
    const show = await cli(['keygen', '--state-dir', stateDir, '--show']);
    expect(show.code).toBe(2);
    expect(show.err).toContain(`age identity ${join(stateDir, 'age-identity.txt')}: is mode 0640: group or others can read it`);
    expect(show.out).toBe('');
  });

  it('finds the state dir from the settings file', async () => {
    const install = join(work, 'srv');
    await mkdir(install);
    const settings = join(work, 'agent.env');
    await writeFile(settings, `FLOTILLA_REPO=https://git.example.org/fleet.git\nFLOTILLA_TENANT=acme\nFLOTILLA_DIR=${install}\nFLOTILLA_STATE_DIR=${join(work, 'st')}\n`);
    const made = await cli(['--settings', settings, 'keygen']);
    expect(made.code).toBe(0);
    expect(await hostRecipients(join(work, 'st', 'age-identity.txt'))).toEqual([made.out.trim()]);
  });
});

describe('flotilla-agent install and the identity', () => {
  it('creates it when absent, keeps it on a second install, and says its recipient', async () => {
    const { formatInstallReport, installAgent } = await import('./install.js');
    const opts = { repo: 'https://git.example.org/fleet.git', tenant: 'acme', dir: '/srv/acme', root: work, agentCommand: ['/usr/bin/node', 'main.js'] };
    const first = await installAgent(opts);
    const path = join(work, 'var/lib/flotilla/acme/age-identity.txt');
    const [recipient] = await hostRecipients(path);
    expect(first.ageIdentity).toEqual({ path: '/var/lib/flotilla/acme/age-identity.txt', created: true, recipient });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const text = formatInstallReport({ ...first, checks: [] });
    expect(text).toContain('age identity: /var/lib/flotilla/acme/age-identity.txt (created, mode 0600; the private key never leaves this host)');
    expect(text).toContain(`  recipient: ${recipient}`);
    expect(text).toContain(`add ${recipient} to ageRecipients in fleet/tenants/acme.yaml`);
    expect(text).not.toContain('AGE-SECRET-KEY');
    // Not in the install record: uninstall keeps it.
    expect(await readFile(join(work, 'etc/flotilla/acme.install.json'), 'utf8')).not.toContain('age-identity');

    const before = await readFile(path, 'utf8');
    const second = await installAgent(opts);
    expect(second.ageIdentity).toEqual({ path: '/var/lib/flotilla/acme/age-identity.txt', created: false, recipient });
    expect(await readFile(path, 'utf8')).toBe(before);
    expect(formatInstallReport({ ...second, checks: [] })).toContain('(already there, kept;');

    // One others can read is kept as it is and reported without a recipient (the age identity check names it).
    await chmod(path, 0o644);
    const third = await installAgent(opts);
    expect(third.ageIdentity).toEqual({ path: '/var/lib/flotilla/acme/age-identity.txt', created: false });
    expect(await readFile(path, 'utf8')).toBe(before);
  });
});
