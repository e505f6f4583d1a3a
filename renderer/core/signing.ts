// Commit signatures in git's SSH format (`gpg.format=ssh`, the SSHSIG protocol of
// OpenSSH's PROTOCOL.sshsig), Ed25519 keys only, on node:crypto: the publisher signs
// tenant commits, the agent applies only commits signed by a key it trusts. Real
// `git verify-commit` accepts what signCommitPayload makes, and verifyCommitSignature
// accepts what `git commit -S` makes, over the payload bytes git itself hands ssh-keygen
// (signing.git-interop.test.ts, test/hardening/signing.test.ts).
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { SigningKeyError } from './errors.js';

const MAGIC = Buffer.from('SSHSIG');
const NAMESPACE = 'git';
const HASH = 'sha512';
const KEY_TYPE = 'ssh-ed25519';
const ARMOR_BEGIN = '-----BEGIN SSH SIGNATURE-----';
const ARMOR_END = '-----END SSH SIGNATURE-----';

/** A public key the agent trusts, from a line `ssh-ed25519 AAAA... comment`. */
export interface TrustedKey {
  /** The SSH wire blob (string "ssh-ed25519", string key). */
  blob: Buffer;
  /** `SHA256:...`, as `ssh-keygen -l` prints it. */
  fingerprint: string;
  comment: string;
}

export type SignatureCheck =
  | { ok: true; fingerprint: string; comment: string }
  | { ok: false; reason: 'unsigned' | 'untrusted key' | 'bad signature' | 'unsupported signature'; detail: string };

function sshString(data: Buffer | string): Buffer {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(bytes.length);
  return Buffer.concat([len, bytes]);
}

/** Reads SSH wire strings off a buffer; throws on a truncated one. */
class WireReader {
  private at = 0;
  constructor(private readonly buf: Buffer) {}
  bytes(n: number): Buffer {
    if (this.at + n > this.buf.length) throw new Error('truncated');
    const out = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }
  uint32(): number {
    return this.bytes(4).readUInt32BE(0);
  }
  string(): Buffer {
    return this.bytes(this.uint32());
  }
  get done(): boolean {
    return this.at === this.buf.length;
  }
}

function fingerprintOf(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

function ed25519PublicKey(raw: Buffer): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' });
}

/** The raw 32-byte key of an `ssh-ed25519` wire blob. */
function rawKeyOfBlob(blob: Buffer): Buffer {
  const r = new WireReader(blob);
  const type = r.string().toString();
  if (type !== KEY_TYPE) throw new Error(`key type ${type} is not supported (only ${KEY_TYPE})`);
  const key = r.string();
  if (key.length !== 32 || !r.done) throw new Error('malformed ssh-ed25519 key');
  return key;
}

/**
 * Parses trusted keys, one per line in OpenSSH public key format (`ssh-ed25519 AAAA... comment`,
 * as in a `.pub` file or allowed_signers without the principal). Blank lines and `#` comments
 * are skipped; anything else that is not an Ed25519 key is an error naming its line.
 */
export function parseTrustedKeys(text: string, file = 'trusted keys'): TrustedKey[] {
  const keys: TrustedKey[] = [];
  text.split(/\r?\n/).forEach((line, index) => {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const [type, data, ...comment] = trimmed.split(/\s+/);
    if (type !== KEY_TYPE || !data) throw new Error(`${file}:${index + 1}: expected "${KEY_TYPE} <base64> [comment]", got ${JSON.stringify(trimmed.slice(0, 40))}`);
    const blob = Buffer.from(data, 'base64');
    try {
      rawKeyOfBlob(blob);
    } catch (e) {
      throw new Error(`${file}:${index + 1}: ${(e as Error).message}`);
    }
    keys.push({ blob, fingerprint: fingerprintOf(blob), comment: comment.join(' ') });
  });
  if (keys.length === 0) throw new Error(`${file}: no ${KEY_TYPE} key in it`);
  return keys;
}

/**
 * An Ed25519 private key from an unencrypted OpenSSH key file (`ssh-keygen -t ed25519 -N ''`)
 * or a PKCS#8 PEM file (`openssl genpkey -algorithm ed25519`).
 */
export function parseSigningKey(text: string): KeyObject {
  const openssh = /-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]*?)-----END OPENSSH PRIVATE KEY-----/.exec(text);
  if (!openssh) {
    const key = createPrivateKey(text);
    if (key.asymmetricKeyType !== 'ed25519') throw new Error(`signing key is ${key.asymmetricKeyType}; only ed25519 is supported`);
    return key;
  }
  const r = new WireReader(Buffer.from(openssh[1]!.replace(/\s+/g, ''), 'base64'));
  if (!r.bytes(15).equals(Buffer.from('openssh-key-v1\0'))) throw new Error('not an openssh-key-v1 private key');
  const cipher = r.string().toString();
  r.string(); // kdf name
  r.string(); // kdf options
  if (cipher !== 'none') throw new Error('the signing key is passphrase-protected; give an unencrypted key');
  if (r.uint32() !== 1) throw new Error('the key file must hold exactly one key');
  r.string(); // public key blob
  const priv = new WireReader(r.string());
  if (priv.uint32() !== priv.uint32()) throw new Error('corrupt private key (check bytes differ)');
  const type = priv.string().toString();
  if (type !== KEY_TYPE) throw new Error(`signing key is ${type}; only ${KEY_TYPE} is supported`);
  const pub = priv.string();
  const secret = priv.string();
  if (pub.length !== 32 || secret.length !== 64) throw new Error('malformed ssh-ed25519 private key');
  return createPrivateKey({
    key: { kty: 'OKP', crv: 'Ed25519', d: secret.subarray(0, 32).toString('base64url'), x: pub.toString('base64url') },
    format: 'jwk',
  });
}

/**
 * Reads and parses the signing key at `path` (`--signing-key`, resolved by the caller).
 * @throws SigningKeyError naming the file and what is wrong: missing, not readable, a
 * folder, passphrase-protected, a public key, not Ed25519, or not a key at all.
 */
export async function readSigningKey(path: string): Promise<KeyObject> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const detail =
      code === 'ENOENT' || code === 'ENOTDIR'
        ? 'no such file'
        : code === 'EISDIR'
          ? 'is a folder, not a key file'
          : code === 'EACCES' || code === 'EPERM'
            ? 'cannot be read (permission denied)'
            : `cannot be read (${code ?? (e as Error).message})`;
    throw new SigningKeyError(path, detail);
  }
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type:\s*4,ENCRYPTED/.test(text))
    throw new SigningKeyError(path, 'the key is passphrase-protected; give an unencrypted Ed25519 key (ssh-keygen -t ed25519 -N "")');
  if (/^\s*(ssh-[a-z0-9-]+|ecdsa-[a-z0-9-]+) AAAA/.test(text) || /-----BEGIN (PUBLIC KEY|SSH2 PUBLIC KEY)-----/.test(text))
    throw new SigningKeyError(path, 'this is a public key; give the private key (the file without .pub)');
  try {
    return parseSigningKey(text);
  } catch (e) {
    const message = (e as Error).message;
    if (/passphrase-protected/.test(message))
      throw new SigningKeyError(path, 'the key is passphrase-protected; give an unencrypted Ed25519 key (ssh-keygen -t ed25519 -N "")');
    if (/only (ssh-)?ed25519 is supported/.test(message)) throw new SigningKeyError(path, `${message.replace(/^signing key is/, 'the key is')}`);
    // node's own errors (ERR_OSSL_...) and our wire-format ones say little to a user; name the formats taken.
    const why = (e as NodeJS.ErrnoException).code?.startsWith('ERR_') ? '' : ` (${message})`;
    throw new SigningKeyError(path, `not an Ed25519 private key in OpenSSH or PKCS#8 PEM format${why}`);
  }
}

/** The `ssh-ed25519 AAAA...` line of a private key's public half (for the agent's trusted keys file). */
export function publicKeyLine(privateKey: KeyObject, comment = ''): string {
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' });
  const blob = Buffer.concat([sshString(KEY_TYPE), sshString(Buffer.from(jwk.x!, 'base64url'))]);
  return `${KEY_TYPE} ${blob.toString('base64')}${comment ? ` ${comment}` : ''}`;
}

function signedData(message: Buffer | string, hash: string): Buffer {
  const digest = createHash(hash).update(message).digest();
  return Buffer.concat([MAGIC, sshString(NAMESPACE), sshString(''), sshString(hash), sshString(digest)]);
}

/**
 * An armored SSH signature of `payload` in the `git` namespace, as `git commit -S` with gpg.format=ssh
 * writes it. A string payload is signed as its UTF-8 bytes, which is what a commit built from it holds.
 */
export function signCommitPayload(payload: Buffer | string, privateKey: KeyObject): string {
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' });
  const publicBlob = Buffer.concat([sshString(KEY_TYPE), sshString(Buffer.from(jwk.x!, 'base64url'))]);
  const raw = sign(null, signedData(payload, HASH), privateKey);
  const sigBlob = Buffer.concat([sshString(KEY_TYPE), sshString(raw)]);
  const version = Buffer.alloc(4);
  version.writeUInt32BE(1);
  const body = Buffer.concat([MAGIC, version, sshString(publicBlob), sshString(NAMESPACE), sshString(''), sshString(HASH), sshString(sigBlob)]);
  const lines = body.toString('base64').match(/.{1,70}/g) ?? [];
  return `${ARMOR_BEGIN}\n${lines.join('\n')}\n${ARMOR_END}\n`;
}

const NEWLINE = 0x0a;
const SPACE = 0x20;
/** The signature header of a SHA-1 repository; any other `gpgsig...` header is another hash's signature. */
const SIG_HEADER = Buffer.from('gpgsig ');
const OTHER_SIG_PREFIX = Buffer.from('gpgsig');

/**
 * Splits a raw commit object into the signed payload and the signature exactly as git's
 * parse_buffer_signed_by_header (commit.c) does, on bytes: `gpgsig ` lines and the
 * continuation lines after them (a leading space) are the signature; another hash's
 * `gpgsig-sha256` header and its continuation lines are in neither; every other header
 * line, and everything from the first blank line on, is the payload. Bytes, not text: a
 * commit may say `encoding ISO-8859-1` and carry a message that is not UTF-8, and a
 * decoded message is other bytes than the signed ones. The armored signature is ASCII;
 * latin1 keeps any stray byte in it as one character.
 */
export function splitCommitSignature(rawCommit: Buffer): { payload: Buffer; signature?: string } {
  const payload: Buffer[] = [];
  const signature: Buffer[] = [];
  let inSignature = false;
  let otherSignature = false;
  let line = 0;
  while (line < rawCommit.length) {
    const newline = rawCommit.indexOf(NEWLINE, line);
    let next = newline === -1 ? rawCommit.length : newline + 1;
    const text = rawCommit.subarray(line, next);
    let sig: Buffer | undefined;
    if (inSignature && text[0] === SPACE) sig = text.subarray(1);
    else if (startsWith(text, SIG_HEADER)) {
      sig = text.subarray(SIG_HEADER.length);
      otherSignature = false;
    } else if (startsWith(text, OTHER_SIG_PREFIX)) otherSignature = true;
    else if (otherSignature && text[0] !== SPACE) otherSignature = false;
    if (sig) {
      signature.push(sig);
      inSignature = true;
    } else {
      // The blank line ends the headers: the message is payload whatever its lines look like.
      if (text[0] === NEWLINE) next = rawCommit.length;
      if (!otherSignature) payload.push(rawCommit.subarray(line, next));
      inSignature = false;
    }
    line = next;
  }
  const split = { payload: Buffer.concat(payload) };
  return signature.length > 0 ? { ...split, signature: Buffer.concat(signature).toString('latin1') } : split;
}

function startsWith(line: Buffer, prefix: Buffer): boolean {
  return line.length >= prefix.length && line.subarray(0, prefix.length).equals(prefix);
}

/**
 * Checks a raw commit object's SSH signature against the trusted keys. Never throws for bad
 * input. The object's bytes as git stores them (readRawCommit, `git cat-file commit`), not a
 * string: the signature covers bytes, and a decoded and re-encoded message is other bytes.
 */
export function verifyCommitSignature(rawCommit: Buffer, trusted: TrustedKey[]): SignatureCheck {
  const { payload, signature } = splitCommitSignature(rawCommit);
  if (!signature) return { ok: false, reason: 'unsigned', detail: 'the commit carries no signature' };
  const armored = new RegExp(`^${ARMOR_BEGIN}\\n([\\s\\S]*?)\\n?${ARMOR_END}\\s*$`).exec(signature.trim());
  if (!armored) return { ok: false, reason: 'unsupported signature', detail: 'not an SSH signature (OpenPGP signatures are not supported)' };
  let publicBlob: Buffer;
  let hash: string;
  let rawSig: Buffer;
  try {
    const r = new WireReader(Buffer.from(armored[1]!.replace(/\s+/g, ''), 'base64'));
    if (!r.bytes(6).equals(MAGIC) || r.uint32() !== 1) throw new Error('not SSHSIG version 1');
    publicBlob = r.string();
    const namespace = r.string().toString();
    if (namespace !== NAMESPACE) throw new Error(`namespace ${JSON.stringify(namespace)}, expected "git"`);
    r.string(); // reserved
    hash = r.string().toString();
    if (hash !== 'sha512' && hash !== 'sha256') throw new Error(`hash ${hash} is not supported`);
    const sigBlob = new WireReader(r.string());
    const sigType = sigBlob.string().toString();
    if (sigType !== KEY_TYPE) throw new Error(`signature type ${sigType} is not supported (only ${KEY_TYPE})`);
    rawSig = sigBlob.string();
    if (!r.done || !sigBlob.done) throw new Error('trailing bytes');
  } catch (e) {
    return { ok: false, reason: 'unsupported signature', detail: (e as Error).message };
  }
  const key = trusted.find((k) => k.blob.equals(publicBlob));
  if (!key) return { ok: false, reason: 'untrusted key', detail: `signed by ${fingerprintOf(publicBlob)}, which is not a trusted key` };
  const good = verify(null, signedData(payload, hash), ed25519PublicKey(rawKeyOfBlob(key.blob)), rawSig);
  if (!good) return { ok: false, reason: 'bad signature', detail: `the signature by ${key.fingerprint} does not match the commit (tampered?)` };
  return { ok: true, fingerprint: key.fingerprint, comment: key.comment };
}
