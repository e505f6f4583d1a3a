// Secrets set centrally, readable only on their host (issue 17), in the age format
// (age-encryption.org/v1) through the `age-encryption` package: no cryptography is
// written here, only the shapes around it, and all of it interoperates with the `age` CLI.
//
// Where each part lives:
//
//   fleet/fleet.yaml
//     defaults:
//       adminAgeRecipients: [age1…]      optional: every secret is also encrypted to these, so
//                                        an operator can re-encrypt (rotate-recipients) without a host
//   fleet/tenants/<slug>.yaml
//     ageRecipients: [age1…]             the tenant's host(s): what `flotilla-agent keygen` printed
//     encryptedSecrets:                  written by `flotilla secret set`, one entry per env key
//       SMTP_PASSWORD:
//         recipients: [age1…, age1…]     what `ciphertext` was encrypted to, sorted (see below)
//         setAt: "2026-12-03T14:05:00.000Z"
//         ciphertext: |
//           -----BEGIN AGE ENCRYPTED FILE-----
//           …
//           -----END AGE ENCRYPTED FILE-----
//   the manifest (.flotilla/manifest.json)
//     encryptedSecrets: { "SMTP_PASSWORD": "-----BEGIN AGE ENCRYPTED FILE-----\n…" }
//   the host
//     <state dir>/age-identity.txt       mode 0600, age-keygen's format (agent/secrets.ts)
//
// Why `recipients` is stored beside the ciphertext: an X25519 stanza is anonymous (an
// ephemeral share and a wrapped key), so nothing but the identity can tell whom a file
// is for. `flotilla check` compares the stored list with the tenant's current recipients
// (checkTenantSecrets); the number of stanzas in the header is checked against it too, so
// a hand-edited list that no longer matches the ciphertext is caught.
//
// The age package is loaded on first use (a dynamic import): it costs ~17 MB and ~190 ms,
// which neither an idle agent nor a render without secrets should pay. Every function that
// needs it is async; the synchronous ones here only look at shapes.
import {
  AgeIdentityError,
  AgeRecipientError,
  SecretDecryptError,
  SecretValueError,
} from './errors.js';

type AgeModule = typeof import('age-encryption');
let ageModule: Promise<AgeModule> | undefined;
const loadAge = (): Promise<AgeModule> => (ageModule ??= import('age-encryption'));

/** First line of an armored age file (age -a, and encryptSecret's output). */
export const AGE_ARMOR_HEADER = '-----BEGIN AGE ENCRYPTED FILE-----';
/** Last line of an armored age file. */
export const AGE_ARMOR_FOOTER = '-----END AGE ENCRYPTED FILE-----';
/** Largest secret value, in UTF-8 bytes: an `.env` value, not a file. */
export const MAX_SECRET_VALUE_BYTES = 16 * 1024;
/** Largest armored ciphertext the manifest and the tenant file accept (a 16 KiB value to a few dozen recipients fits). */
export const MAX_ENCRYPTED_SECRET_CHARS = 256 * 1024;

const BECH32 = '[qpzry9x8gf2tvdw0s3jn54khce6mua7l]';
/** A native X25519 recipient as age-keygen prints it (`age1` + 58 bech32 characters); the checksum is checked by checkAgeRecipients. */
export const X25519_RECIPIENT_PATTERN = new RegExp(`^age1${BECH32}{58}$`);
/** A post-quantum hybrid recipient (`age1pq1…`, age ≥ 1.3); accepted, but Debian's age 1.1 cannot decrypt to it. */
export const HYBRID_RECIPIENT_PATTERN = new RegExp(`^age1pq1${BECH32}{1000,3000}$`);
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Synchronous shape check of one recipient (for a schema pattern or a quick filter); checkAgeRecipients also checks its checksum. */
export function looksLikeAgeRecipient(s: unknown): s is string {
  return typeof s === 'string' && (X25519_RECIPIENT_PATTERN.test(s) || HYBRID_RECIPIENT_PATTERN.test(s));
}

/** A recipient as an error shows it: shortened; a private key given by mistake is never echoed. */
export function showRecipient(s: unknown): string {
  if (typeof s !== 'string') return `(${s === null ? 'null' : typeof s})`;
  if (/SECRET-KEY/i.test(s)) return '(an age private key)';
  const t = s.trim();
  if (!/^[\x21-\x7e]*$/.test(t)) return '(not printable text)';
  return t.length > 24 ? `${t.slice(0, 12)}…${t.slice(-8)}` : JSON.stringify(t);
}

/**
 * Validates recipients with the age library (prefix, bech32 checksum, key length) and
 * returns them trimmed, deduplicated and sorted: the canonical order `recipients` is stored
 * in. Throws AgeRecipientError naming `where[i]`; an empty list is returned as is.
 */
export async function checkAgeRecipients(list: readonly unknown[], where = 'recipients'): Promise<string[]> {
  const age = await loadAge();
  const out = new Set<string>();
  for (let i = 0; i < list.length; i++) {
    const raw = list[i];
    const at = `${where}[${i}]`;
    if (typeof raw !== 'string') throw new AgeRecipientError(showRecipient(raw), 'is not a string', at);
    const s = raw.trim();
    if (/^AGE-SECRET-KEY-/i.test(s))
      throw new AgeRecipientError(showRecipient(s), 'is a private key: give its public recipient (age1…, printed by flotilla-agent keygen or age-keygen -y)', at);
    if (!looksLikeAgeRecipient(s)) throw new AgeRecipientError(showRecipient(s), 'is not an age recipient (age1… or age1pq1…)', at);
    try {
      new age.Encrypter().addRecipient(s);
    } catch {
      throw new AgeRecipientError(showRecipient(s), 'is not a valid age recipient (bad checksum or key)', at);
    }
    out.add(s);
  }
  return [...out].sort();
}

/** The same set of recipients, whatever the order and duplicates. */
export function sameRecipients(a: readonly string[], b: readonly string[]): boolean {
  const x = [...new Set(a.map((s) => s.trim()))].sort();
  const y = [...new Set(b.map((s) => s.trim()))].sort();
  return x.length === y.length && x.every((s, i) => s === y[i]);
}

/**
 * What `flotilla secret set` reads from standard input, as the value: one final line
 * break (echo's) is not part of it. decryptSecret applies the same rule, so a value
 * encrypted with `echo … | age -r … -a` reads the same.
 */
export function secretValueFromInput(text: string): string {
  return text.replace(/\r?\n$/, '');
}

/** Refuses (SecretValueError naming the key, never the value) what `.env` cannot hold: empty, a line break, NUL, a lone surrogate, too long. */
export function checkSecretValue(key: string, value: unknown): string {
  if (typeof value !== 'string') throw new SecretValueError(key, `the value must be text, got ${typeof value}`);
  if (value.length === 0) throw new SecretValueError(key, 'the value is empty');
  if (/[\r\n]/.test(value)) throw new SecretValueError(key, 'the value holds a line break; an .env value is one line');
  if (value.includes('\0')) throw new SecretValueError(key, 'the value holds a NUL character');
  if (LONE_SURROGATE.test(value)) throw new SecretValueError(key, 'the value holds a lone UTF-16 surrogate, which is not UTF-8 text');
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes > MAX_SECRET_VALUE_BYTES) throw new SecretValueError(key, `the value is ${bytes} bytes, over the ${MAX_SECRET_VALUE_BYTES}-byte limit`);
  return value;
}

function checkKey(key: string): void {
  if (typeof key !== 'string' || !ENV_KEY.test(key))
    throw new SecretValueError(JSON.stringify(String(key).slice(0, 64)), 'is not a variable name (letters, digits and _, not starting with a digit)');
}

/**
 * Encrypts one value to recipients (at least one; checked with checkAgeRecipients):
 * armored age, a string of 64-character lines that fits a YAML block scalar and that
 * `age -d -i KEY` decrypts. The value is checked first (checkSecretValue).
 */
export async function encryptSecret(key: string, value: string, recipients: readonly string[]): Promise<string> {
  checkKey(key);
  checkSecretValue(key, value);
  const list = await checkAgeRecipients(recipients);
  if (list.length === 0) throw new SecretValueError(key, 'no recipients to encrypt to (the tenant has no ageRecipients?)');
  const age = await loadAge();
  const encrypter = new age.Encrypter();
  for (const r of list) encrypter.addRecipient(r);
  return age.armor.encode(await encrypter.encrypt(value));
}

/** One secret as the tenant file keeps it (`encryptedSecrets.<KEY>`). */
export interface EncryptedSecret {
  /** The recipients `ciphertext` was encrypted to: trimmed, deduplicated, sorted. */
  recipients: string[];
  /** When the value was set or last re-encrypted, ISO 8601 UTC (`flotilla secret list` shows its age). */
  setAt: string;
  /** Armored age ciphertext (AGE_ARMOR_HEADER … AGE_ARMOR_FOOTER, with a final newline). */
  ciphertext: string;
}

/**
 * encryptSecret plus the record the tenant file keeps: what `flotilla secret set` writes
 * (to the tenant's ageRecipients plus defaults.adminAgeRecipients).
 */
export async function sealSecret(key: string, value: string, recipients: readonly string[], now: Date = new Date()): Promise<EncryptedSecret> {
  const list = await checkAgeRecipients(recipients);
  return { recipients: list, setAt: now.toISOString(), ciphertext: await encryptSecret(key, value, list) };
}

// Library messages that say what is wrong and hold nothing of the input (others, such as
// "invalid version <line>", may quote it and are replaced by a generic phrase).
const DAMAGE_PHRASES: Record<string, string> = {
  'invalid header': 'not age armor (no BEGIN line)',
  'invalid footer': 'not age armor (no END line: truncated?)',
  'invalid line length': 'armor lines of the wrong length (truncated or edited)',
  'invalid base64': 'armor that is not base64',
  'invalid header HMAC': 'the header was altered',
  'invalid stanza': 'a malformed recipient stanza',
  'invalid X25519 stanza': 'a malformed X25519 stanza',
  'invalid mlkem768x25519 stanza': 'a malformed post-quantum stanza',
  'invalid non-ASCII byte in header': 'a header that is not text',
  'final chunk is empty': 'a malformed payload',
  'ciphertext is too small': 'the payload is cut short (truncated)',
  'ciphertext size is invalid': 'the payload is cut short (truncated)',
};

/**
 * Decrypts armored age with one or more identities (`AGE-SECRET-KEY-1…`, `AGE-SECRET-KEY-PQ-1…`).
 * One final line break of the plaintext is dropped (secretValueFromInput), and the value
 * must then pass checkSecretValue. Throws SecretDecryptError naming `key` and why
 * (`not-for-this-host`, `damaged`, `bad-value`); the message never holds the value or the
 * ciphertext. `hostRecipients`, when given, are named in a not-for-this-host message.
 */
export async function decryptSecret(
  key: string,
  ciphertext: string,
  identities: readonly string[],
  hostRecipients: readonly string[] = [],
): Promise<string> {
  if (typeof ciphertext !== 'string' || ciphertext.length > MAX_ENCRYPTED_SECRET_CHARS)
    throw new SecretDecryptError(key, 'damaged', `the ciphertext is not age armor of at most ${MAX_ENCRYPTED_SECRET_CHARS} characters`);
  const age = await loadAge();
  let bytes: Uint8Array;
  try {
    bytes = age.armor.decode(ciphertext);
  } catch (e) {
    const phrase = DAMAGE_PHRASES[(e as Error).message] ?? 'not age armor';
    throw new SecretDecryptError(key, 'damaged', `the ciphertext is damaged: ${phrase}`);
  }
  const decrypter = new age.Decrypter();
  for (const id of identities) decrypter.addIdentity(id);
  let plain: Uint8Array;
  try {
    plain = await decrypter.decrypt(bytes);
  } catch (e) {
    const message = (e as Error).message;
    if (message === "no identity matched any of the file's recipients") {
      const mine = hostRecipients.length ? ` (${hostRecipients.join(', ')})` : '';
      throw new SecretDecryptError(
        key,
        'not-for-this-host',
        `it is not encrypted to this host's age identity${mine}; add the host's recipient to the tenant's ageRecipients and re-encrypt (flotilla secret rotate-recipients)`,
      );
    }
    throw new SecretDecryptError(key, 'damaged', `the ciphertext is damaged: ${DAMAGE_PHRASES[message] ?? 'it does not decrypt (truncated or altered)'}`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(plain);
  } catch {
    throw new SecretDecryptError(key, 'bad-value', 'the decrypted value is not UTF-8 text');
  }
  try {
    return checkSecretValue(key, secretValueFromInput(text));
  } catch (e) {
    if (!(e instanceof SecretValueError)) throw e;
    throw new SecretDecryptError(key, 'bad-value', `it decrypts, but ${e.detail}`);
  }
}

/** An age identity and the recipient it decrypts for. */
export interface AgeKeyPair {
  /** `AGE-SECRET-KEY-1…`: private, never leaves the host. */
  identity: string;
  /** `age1…`: public, goes into the fleet. */
  recipient: string;
}

/** A new X25519 identity (what age-keygen makes, and what Debian's age 1.1 reads). */
export async function generateAgeIdentity(): Promise<AgeKeyPair> {
  const age = await loadAge();
  const identity = await age.generateX25519Identity();
  return { identity, recipient: await age.identityToRecipient(identity) };
}

/** age-keygen's file format: `# created:` and `# public key:` comments, then the key on its own line. */
export function formatIdentityFile(pair: AgeKeyPair, createdAt: Date = new Date()): string {
  return `# created: ${createdAt.toISOString().replace(/\.\d{3}Z$/, 'Z')}\n# public key: ${pair.recipient}\n${pair.identity}\n`;
}

/**
 * The identities of an identity file's text (age-keygen's format: `#` comments, blank
 * lines, one key a line), each with its recipient. Throws AgeIdentityError naming `file`
 * and the line (never a key) for a line that is not an age identity, or a file with none.
 */
export async function parseIdentityFile(text: string, file: string): Promise<AgeKeyPair[]> {
  const age = await loadAge();
  const pairs: AgeKeyPair[] = [];
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (!/^AGE-SECRET-KEY-(PQ-)?1[A-Z0-9]+$/.test(line)) throw new AgeIdentityError(file, `line ${i + 1} is not an age identity (AGE-SECRET-KEY-1…)`);
    try {
      pairs.push({ identity: line, recipient: await age.identityToRecipient(line) });
    } catch {
      throw new AgeIdentityError(file, `line ${i + 1} is not a valid age identity (bad checksum or key)`);
    }
  }
  if (pairs.length === 0) throw new AgeIdentityError(file, 'holds no age identity (AGE-SECRET-KEY-1…)');
  return pairs;
}

/**
 * Why `text` is not armored age, or undefined when it looks like it: the header and
 * footer lines, base64 lines of 64 characters (the last one shorter), and a body that
 * starts `age-encryption.org/v1`. A shape check, synchronous and without the library
 * (parseManifest and checkTenantSecrets use it); decryption checks everything else.
 * The answer never quotes the text.
 */
export function ageArmorProblem(text: unknown): string | undefined {
  if (typeof text !== 'string') return `is ${text === null ? 'null' : typeof text}, not age armor`;
  if (text.length > MAX_ENCRYPTED_SECRET_CHARS) return `is ${text.length} characters, over the ${MAX_ENCRYPTED_SECRET_CHARS}-character limit`;
  const lines = text.trim().split(/\r?\n/);
  if (lines[0] !== AGE_ARMOR_HEADER) return `is not age armor (it does not start with ${AGE_ARMOR_HEADER}; a plaintext value?)`;
  if (lines.length < 3 || lines[lines.length - 1] !== AGE_ARMOR_FOOTER) return `is not complete age armor (no ${AGE_ARMOR_FOOTER} line: truncated?)`;
  const body = lines.slice(1, -1);
  for (let i = 0; i < body.length; i++) {
    const line = body[i]!;
    const last = i === body.length - 1;
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(line) || line.length === 0 || line.length > 64 || (!last && line.length !== 64))
      return 'is not age armor (its lines are not 64-character base64: truncated or edited?)';
  }
  if (!Buffer.from(body.join(''), 'base64').subarray(0, 22).equals(Buffer.from('age-encryption.org/v1\n')))
    return 'is not age armor (the body is not an age-encryption.org/v1 file)';
  return undefined;
}

/**
 * The recipient stanza types in an armored file's header, in order (`X25519`,
 * `mlkem768x25519`, `scrypt`, or another plugin's name): a count, not an identification;
 * X25519 stanzas name nobody. Undefined when the text is not armored age.
 */
export function ageStanzaTypes(ciphertext: string): string[] | undefined {
  if (ageArmorProblem(ciphertext) !== undefined) return undefined;
  const lines = ciphertext.trim().split(/\r?\n/).slice(1, -1);
  const bytes = Buffer.from(lines.join(''), 'base64');
  const end = bytes.indexOf('\n---');
  if (end < 0) return undefined;
  const header = bytes.subarray(0, end + 1).toString('latin1');
  return header
    .split('\n')
    .filter((l) => l.startsWith('-> '))
    .map((l) => l.slice(3).split(' ')[0] ?? '');
}

const KNOWN_STANZAS = new Set(['X25519', 'mlkem768x25519']);

/** One problem with a tenant's secrets: `keyPath` is inside the tenant file, e.g. `encryptedSecrets.SMTP_PASSWORD.ciphertext`. */
export interface SecretProblem {
  keyPath: string;
  /** The key the problem is about, when it is about one. */
  key?: string;
  message: string;
}

export interface TenantSecretsInput {
  /** Env keys the tenant may hold secrets for: fleet.yaml `defaults.secrets` plus the tenant's own `secrets`. */
  declared: Iterable<string>;
  /** The tenant's `ageRecipients`. */
  recipients: readonly string[];
  /** fleet.yaml `defaults.adminAgeRecipients`. */
  adminRecipients?: readonly string[];
  /** The tenant file's `encryptedSecrets`, as its YAML parsed (checked here, any shape). */
  encryptedSecrets: unknown;
}

/**
 * What `flotilla check` says about a tenant's secrets (synchronous; shapes and sets only,
 * the recipients' checksums are checkAgeRecipients'): an entry for a key the tenant does
 * not declare; a plaintext value (a string where the entry belongs, or a `ciphertext` that
 * is not age armor; a secret under `env` is loadFleet's refusal already); a malformed entry; a ciphertext
 * not encrypted to the tenant's current recipients (ageRecipients + adminAgeRecipients,
 * compared with the entry's stored `recipients`); and a `recipients` list that does not
 * match the number of stanzas in the ciphertext. Messages never hold a value.
 */
export function checkTenantSecrets(input: TenantSecretsInput): SecretProblem[] {
  const problems: SecretProblem[] = [];
  const declared = new Set(input.declared);
  const raw = input.encryptedSecrets;
  if (raw === undefined || raw === null) return problems;
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    problems.push({ keyPath: 'encryptedSecrets', message: 'must be a mapping of KEY: { recipients, setAt, ciphertext }' });
    return problems;
  }
  const current = [...new Set([...input.recipients, ...(input.adminRecipients ?? [])].map((r) => r.trim()))].sort();
  for (const [key, entry] of Object.entries(raw as Record<string, unknown>)) {
    const at = `encryptedSecrets.${key}`;
    const problem = (message: string, path = at) => problems.push({ keyPath: path, key, message });
    if (!ENV_KEY.test(key)) {
      problem('is not a variable name (letters, digits and _, not starting with a digit)');
      continue;
    }
    if (!declared.has(key)) problem(`${key} is not a secret this tenant declares (fleet.yaml defaults.secrets or the tenant's secrets)`);
    if (typeof entry === 'string' || typeof entry === 'number' || typeof entry === 'boolean') {
      const armor = typeof entry === 'string' && ageArmorProblem(entry) === undefined;
      problem(
        armor
          ? 'holds bare ciphertext: an entry is { recipients, setAt, ciphertext } (written by `flotilla secret set`)'
          : 'holds a plaintext value: secrets are stored encrypted, set them with `flotilla secret set`',
      );
      continue;
    }
    if (!entry || typeof entry !== 'object' || Array.isArray(entry)) {
      problem('must be { recipients, setAt, ciphertext }');
      continue;
    }
    const e = entry as Record<string, unknown>;
    for (const k of Object.keys(e)) if (!['recipients', 'setAt', 'ciphertext'].includes(k)) problem(`${k} is not a secret field (recipients, setAt, ciphertext)`, `${at}.${k}`);
    const armorProblem = ageArmorProblem(e.ciphertext);
    if (armorProblem) problem(`ciphertext ${armorProblem}`, `${at}.ciphertext`);
    const setAt = e.setAt instanceof Date ? e.setAt.toISOString() : e.setAt;
    if (typeof setAt !== 'string' || Number.isNaN(Date.parse(setAt)) || !/^\d{4}-\d\d-\d\dT/.test(setAt))
      problem('setAt must be an ISO 8601 time (e.g. "2026-12-03T14:05:00.000Z")', `${at}.setAt`);
    if (!Array.isArray(e.recipients) || e.recipients.length === 0 || !e.recipients.every(looksLikeAgeRecipient)) {
      problem('recipients must be the non-empty list of age1… recipients the ciphertext was encrypted to', `${at}.recipients`);
      continue;
    }
    const stored = [...new Set((e.recipients as string[]).map((r) => r.trim()))].sort();
    if (!sameRecipients(stored, current)) {
      const missing = current.filter((r) => !stored.includes(r));
      const extra = stored.filter((r) => !current.includes(r));
      const parts = [
        missing.length ? `not encrypted to ${missing.map(showRecipient).join(', ')}` : '',
        extra.length ? `still encrypted to ${extra.map(showRecipient).join(', ')}, no longer a recipient` : '',
        current.length === 0 ? 'the tenant has no ageRecipients' : '',
      ].filter(Boolean);
      problem(`${key} is not encrypted to the tenant's current recipients: ${parts.join('; ')}; run \`flotilla secret rotate-recipients\``, `${at}.recipients`);
    }
    if (!armorProblem) {
      const stanzas = (ageStanzaTypes(e.ciphertext as string) ?? []).filter((t) => KNOWN_STANZAS.has(t));
      if (stanzas.length !== stored.length)
        problem(`the ciphertext has ${stanzas.length} recipient stanza(s) but recipients lists ${stored.length}: the list does not describe this ciphertext (edited by hand?)`, `${at}.recipients`);
    }
  }
  return problems;
}

/** How one key's secret moved between two manifests (the PR comment's `KEY: secret changed`), by ciphertext: a re-encryption counts as changed. */
export interface SecretChange {
  key: string;
  change: 'added' | 'changed' | 'removed';
}

/** The secrets that differ between two manifests' `encryptedSecrets` (either may be absent), sorted by key. Never looks inside. */
export function encryptedSecretChanges(before: Record<string, string> | undefined, after: Record<string, string> | undefined): SecretChange[] {
  const a = before ?? {};
  const b = after ?? {};
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  const out: SecretChange[] = [];
  for (const key of keys) {
    if (!(key in a)) out.push({ key, change: 'added' });
    else if (!(key in b)) out.push({ key, change: 'removed' });
    else if (a[key]!.trim() !== b[key]!.trim()) out.push({ key, change: 'changed' });
  }
  return out;
}
