// The host's side of secrets set centrally (renderer/core/secrets.ts has the format):
// its age identity, and the decryption of a manifest's `encryptedSecrets` with it.
//
// The identity is `<state dir>/age-identity.txt`, in age-keygen's format (so `age -d -i`
// reads it), mode 0600, created by `flotilla-agent keygen` or `install` and never
// overwritten: the fleet has its recipient, and a new key would make every secret set
// for this host unreadable. The private key never leaves the host: it is never printed,
// logged or sent; only its recipient (`age1…`) is. A file group or others can reach is
// refused (AgeIdentityError, exit 2), as ssh refuses such a key.
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { link, lstat, mkdir, open, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { AgeIdentityError, FlotillaError } from '../renderer/core/errors.js';
import type { Manifest } from '../renderer/core/manifest.js';
import { decryptSecret, formatIdentityFile, generateAgeIdentity, parseIdentityFile, type AgeKeyPair } from '../renderer/core/secrets.js';

/** The identity's file name in the agent's state dir. */
export const AGE_IDENTITY_FILE = 'age-identity.txt';
/** An identity file is a few lines; anything larger is not one. */
const MAX_IDENTITY_FILE_BYTES = 64 * 1024;

/** Where the host's age identity lives: `<state dir>/age-identity.txt`. */
export function ageIdentityPath(stateDir: string): string {
  return join(stateDir, AGE_IDENTITY_FILE);
}

const octal = (mode: number) => `0${(mode & 0o777).toString(8).padStart(3, '0')}`;

/**
 * Reads the host's identities (usually one), each with its recipient. Throws
 * AgeIdentityError naming the path when the file is missing, not a regular file,
 * reachable by group or others (mode & 077), too large or not an age identity file.
 * The mode is read from the open file, so what is checked is what is read.
 */
export async function readHostIdentity(path: string): Promise<AgeKeyPair[]> {
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOCTTY);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      throw new AgeIdentityError(path, "does not exist: run `flotilla-agent keygen` and add the recipient it prints to the tenant's ageRecipients");
    throw new AgeIdentityError(path, `cannot be opened (${code ?? (e as Error).message})`);
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new AgeIdentityError(path, 'is not a regular file');
    if ((st.mode & 0o077) !== 0)
      throw new AgeIdentityError(path, `is mode ${octal(st.mode)}: group or others can read it, so it is not used; run chmod 600 ${path}`);
    if (st.size > MAX_IDENTITY_FILE_BYTES) throw new AgeIdentityError(path, `is ${st.size} bytes: not an age identity file`);
    const text = await handle.readFile('utf8');
    return await parseIdentityFile(text, path);
  } finally {
    await handle.close();
  }
}

/** The recipient(s) of the host's identity, for `keygen --show` and install's report. */
export async function hostRecipients(path: string): Promise<string[]> {
  return (await readHostIdentity(path)).map((p) => p.recipient);
}

/**
 * Creates the host's identity at `path` (mode 0600; its folder 0700 when created) and
 * returns its recipient. Never overwrites: an existing file (even a broken one) is an
 * AgeIdentityError. Written to a temporary file and linked into place, so a crash leaves
 * either no identity or a whole one, and two racing keygens cannot both win.
 */
export async function createHostIdentity(path: string, now: Date = new Date()): Promise<AgeKeyPair['recipient']> {
  const exists = await lstat(path).then(
    () => true,
    (e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? false : Promise.reject(new AgeIdentityError(path, `cannot be checked (${e.code})`))),
  );
  if (exists) throw new AgeIdentityError(path, 'exists already and is never overwritten (secrets set for this host need it); `flotilla-agent keygen --show` prints its recipient');
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const pair = await generateAgeIdentity();
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const handle = await open(temp, 'wx', 0o600);
  try {
    await handle.chmod(0o600); // whatever the umask
    await handle.writeFile(formatIdentityFile(pair, now));
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await link(temp, path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new AgeIdentityError(path, 'exists already and is never overwritten (created by another keygen just now)');
    throw e;
  } finally {
    await unlink(temp).catch(() => undefined);
  }
  const dirHandle = await open(dir, 'r').catch(() => undefined);
  await dirHandle?.sync().catch(() => undefined);
  await dirHandle?.close();
  return pair.recipient;
}

/** Where decrypted values are registered so no text leaving the agent carries them (HostSecrets). */
export interface SecretRedaction {
  remember(values: Iterable<string>): void;
}

/**
 * The values of a manifest's `encryptedSecrets`, decrypted with the host's identity at
 * `identityPath`: env key -> value, for the env patch. A manifest without any returns {}
 * without reading the identity (a host without one keeps working). Each value is handed
 * to `redaction` as soon as it is decrypted, so it is masked in every log line, status,
 * metric and plan from then on.
 *
 * Throws, naming the key and never a value or ciphertext: SecretDecryptError (exit 3:
 * not encrypted to this host, truncated or altered, or a value `.env` cannot hold);
 * AgeIdentityError (exit 2: the host's identity is missing, or readable by others).
 */
export async function decryptManifestSecrets(
  manifest: Pick<Manifest, 'encryptedSecrets'>,
  identityPath: string,
  redaction?: SecretRedaction,
): Promise<Record<string, string>> {
  const entries = Object.entries(manifest.encryptedSecrets ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  if (entries.length === 0) return {};
  const pairs = await readHostIdentity(identityPath);
  const identities = pairs.map((p) => p.identity);
  const recipients = pairs.map((p) => p.recipient);
  const out: Record<string, string> = {};
  for (const [key, ciphertext] of entries) {
    const value = await decryptSecret(key, ciphertext, identities, recipients);
    redaction?.remember([value]);
    out[key] = value;
  }
  return out;
}

/** True for the errors decryptManifestSecrets throws on purpose (anything else is a bug). */
export function isSecretsError(e: unknown): e is FlotillaError {
  return e instanceof FlotillaError && (e.code === 'SECRET_DECRYPT' || e.code === 'AGE_IDENTITY');
}
