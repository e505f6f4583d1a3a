// `flotilla secret set | rm | list | rotate-recipients`: secrets set centrally (issue 17),
// stored encrypted in fleet/tenants/<slug>.yaml under `encryptedSecrets` (the format and
// the cryptography are core/secrets.ts'; the age library does all of it).
//
// A key is a secret when the fleet declares it one: in fleet.yaml `defaults.secrets` or
// the tenant's `secrets` (the same list that names the secrets a host generates). Setting
// it centrally makes the host use that value instead of generating one.
//
// The edits keep the tenant file as its author wrote it: only the `encryptedSecrets`
// block is rewritten (through the yaml Document API, its comments kept); every byte
// before and after it stays. The edited fleet is loaded again before anything is written.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Document, isMap, isScalar, parseDocument, YAMLMap, type Pair } from 'yaml';
import { FleetConfigError, SecretDecryptError, SettingError } from '../core/errors.js';
import {
  checkAgeRecipients,
  decryptSecret,
  parseIdentityFile,
  sameRecipients,
  sealSecret,
  showRecipient,
  type EncryptedSecret,
} from '../core/secrets.js';
import { FLEET_FILE, TENANTS_DIR, loadFleetFromFiles, readFleetFiles, type Fleet, type Tenant } from './fleet.js';

const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SECTION = 'encryptedSecrets';

function parseTenantText(text: string, file: string): Document.Parsed {
  const doc = parseDocument(text);
  if (doc.errors.length > 0)
    throw new FleetConfigError([{ file, keyPath: '', message: `invalid YAML: ${doc.errors[0]!.message.split('\n')[0]}` }]);
  if (!isMap(doc.contents)) throw new FleetConfigError([{ file, keyPath: '', message: 'expected a mapping of keys' }]);
  return doc;
}

function sectionPair(doc: Document.Parsed): Pair | undefined {
  return (doc.contents as YAMLMap).items.find((p) => isScalar(p.key) && p.key.value === SECTION) as Pair | undefined;
}

/** The `encryptedSecrets:` block as YAML text (a fresh key, so a comment above it is not written twice). */
function renderSection(value: YAMLMap): string {
  const out = new Document();
  const map = new YAMLMap();
  map.set(SECTION, value);
  out.contents = map;
  return out.toString({ lineWidth: 0 });
}

/** Replaces the `encryptedSecrets` pair's text (or appends one) with `value`; everything else stays byte for byte. */
function spliceSection(text: string, doc: Document.Parsed, value: YAMLMap | undefined): string {
  const pair = sectionPair(doc);
  const rendered = value ? renderSection(value) : '';
  if (!pair) {
    if (!value) return text;
    return `${text}${text === '' || text.endsWith('\n') ? '' : '\n'}${rendered}`;
  }
  const key = pair.key as { range?: [number, number, number] };
  const node = pair.value as { range?: [number, number, number] } | null;
  const start = key.range![0];
  let end = node?.range?.[2] ?? key.range![2];
  // A section that ends the file without a newline, or a null value: take its line's end too.
  if (rendered.endsWith('\n') && text[end] === '\n' && !text.slice(start, end).endsWith('\n')) end++;
  return text.slice(0, start) + rendered + text.slice(end);
}

function entryNode(doc: Document, entry: EncryptedSecret): YAMLMap {
  const node = doc.createNode({ recipients: entry.recipients, setAt: entry.setAt, ciphertext: entry.ciphertext.endsWith('\n') ? entry.ciphertext : `${entry.ciphertext}\n` }) as YAMLMap;
  const setAt = node.get('setAt', true);
  if (isScalar(setAt)) setAt.type = 'QUOTE_DOUBLE';
  const ciphertext = node.get('ciphertext', true);
  if (isScalar(ciphertext)) ciphertext.type = 'BLOCK_LITERAL';
  return node;
}

/** The tenant file's text with `encryptedSecrets.<key>` set to `entry` (replaced, or added at the end of the block). */
export function setSecretInText(text: string, file: string, key: string, entry: EncryptedSecret): string {
  const doc = parseTenantText(text, file);
  const pair = sectionPair(doc);
  let section: YAMLMap;
  if (pair && isMap(pair.value)) {
    section = pair.value;
    section.flow = false;
  } else section = new YAMLMap();
  section.set(key, entryNode(doc, entry));
  return spliceSection(text, doc, section);
}

/** The tenant file's text without `encryptedSecrets.<key>` (and without the block once it is empty). */
export function removeSecretFromText(text: string, file: string, key: string): string {
  const doc = parseTenantText(text, file);
  const pair = sectionPair(doc);
  if (!pair || !isMap(pair.value) || !pair.value.has(key)) return text;
  const section = pair.value;
  section.delete(key);
  return spliceSection(text, doc, section.items.length > 0 ? section : undefined);
}

/** Keys under the tenant file's `encryptedSecrets`, whatever their shape (for `rm` of a broken entry). */
function keysInText(text: string, file: string): string[] {
  const pair = sectionPair(parseTenantText(text, file));
  return pair && isMap(pair.value) ? pair.value.items.map((p) => String(isScalar(p.key) ? p.key.value : p.key)) : [];
}

// ---- the commands' work ----------------------------------------------------

interface FleetCheckout {
  root: string;
  files: Map<string, string>;
  fleet: Fleet;
}

async function openCheckout(root: string): Promise<FleetCheckout> {
  const files = await readFleetFiles(root);
  // Lenient: a broken entry must not stop `secret set` or `rm` from replacing or removing it.
  return { root, files, fleet: loadFleetFromFiles(files, undefined, { secretEntries: 'lenient' }) };
}

function tenantOf(fleet: Fleet, slug: string): Tenant {
  const tenant = fleet.tenants.find((t) => t.slug === slug);
  if (!tenant) throw new SettingError('TENANT', `no tenant ${JSON.stringify(slug)} (no file ${TENANTS_DIR}/<slug>.yaml)`);
  return tenant;
}

function checkKeyName(key: string): void {
  if (!ENV_KEY.test(key)) throw new SettingError('KEY', `${JSON.stringify(key.slice(0, 64))} is not a variable name (letters, digits and _, not starting with a digit)`);
}

/** The recipients a tenant's secrets are encrypted to: its hosts plus the fleet's admins, validated by the age library. */
export async function secretRecipients(fleet: Fleet, tenant: Tenant): Promise<string[]> {
  if (tenant.ageRecipients.length === 0)
    throw new SettingError(
      'TENANT',
      `${tenant.slug} has no ageRecipients: run \`flotilla-agent keygen\` on its host and add the recipient it prints to ${tenant.file} (ageRecipients: [age1…])`,
    );
  const hosts = await checkAgeRecipients(tenant.ageRecipients, `${tenant.file} ageRecipients`);
  const admins = await checkAgeRecipients(fleet.defaults.adminAgeRecipients, `${FLEET_FILE} defaults.adminAgeRecipients`);
  return [...new Set([...hosts, ...admins])].sort();
}

/** Writes edited tenant files after loading the edited fleet (a strict load: what is written must pass `flotilla check`'s load). */
async function writeEdits(checkout: FleetCheckout, edits: Map<string, string>): Promise<void> {
  loadFleetFromFiles(new Map([...checkout.files, ...edits]), undefined, { secretEntries: 'lenient' });
  for (const [path, text] of edits) await writeFile(join(checkout.root, path), text);
}

export interface SetSecretResult {
  tenant: string;
  key: string;
  file: string;
  /** Whether the key held a secret before (replaced) or not (added). */
  replaced: boolean;
  entry: EncryptedSecret;
}

/**
 * `flotilla secret set`: encrypts `value` to the tenant's recipients plus the admin
 * recipients and writes it into the tenant file. The key must be one the fleet declares
 * secret (defaults.secrets or the tenant's secrets). Never prints or stores the value.
 */
export async function setSecret(opts: { root: string; slug: string; key: string; value: string; now?: Date }): Promise<SetSecretResult> {
  checkKeyName(opts.key);
  const checkout = await openCheckout(opts.root);
  const tenant = tenantOf(checkout.fleet, opts.slug);
  if (!tenant.secrets.includes(opts.key))
    throw new SettingError(
      'KEY',
      `${opts.key} is not a secret ${tenant.slug} declares; add it to fleet.yaml defaults.secrets or to ${tenant.file} secrets first (declared: ${tenant.secrets.join(', ') || 'none'})`,
    );
  const recipients = await secretRecipients(checkout.fleet, tenant);
  const entry = await sealSecret(opts.key, opts.value, recipients, opts.now);
  const text = checkout.files.get(tenant.file)!;
  const replaced = keysInText(text, tenant.file).includes(opts.key);
  await writeEdits(checkout, new Map([[tenant.file, setSecretInText(text, tenant.file, opts.key, entry)]]));
  return { tenant: tenant.slug, key: opts.key, file: tenant.file, replaced, entry };
}

/** `flotilla secret rm`: removes the key's secret from the tenant file (the host keeps the value it has). */
export async function removeSecret(opts: { root: string; slug: string; key: string }): Promise<{ file: string }> {
  checkKeyName(opts.key);
  const checkout = await openCheckout(opts.root);
  const tenant = tenantOf(checkout.fleet, opts.slug);
  const text = checkout.files.get(tenant.file)!;
  const keys = keysInText(text, tenant.file);
  if (!keys.includes(opts.key))
    throw new SettingError('KEY', `${tenant.slug} has no secret ${opts.key} set centrally (set: ${keys.join(', ') || 'none'})`);
  await writeEdits(checkout, new Map([[tenant.file, removeSecretFromText(text, tenant.file, opts.key)]]));
  return { file: tenant.file };
}

export interface SecretListRow {
  tenant: string;
  key: string;
  recipients: string[];
  setAt: string;
  /** False when the ciphertext is not encrypted to the tenant's current recipients plus admins (rotate-recipients). */
  current: boolean;
}

/** `flotilla secret list`: names, recipients and when each was set; never a value or ciphertext. */
export function listSecrets(fleet: Fleet, slug?: string): SecretListRow[] {
  const tenants = slug === undefined ? fleet.tenants : [tenantOf(fleet, slug)];
  const rows: SecretListRow[] = [];
  for (const t of tenants) {
    const current = [...t.ageRecipients, ...fleet.defaults.adminAgeRecipients];
    for (const [key, s] of Object.entries(t.encryptedSecrets))
      rows.push({ tenant: t.slug, key, recipients: s.recipients, setAt: s.setAt, current: sameRecipients(s.recipients, current) });
  }
  return rows;
}

/** `3 days`, `5 hours`, `12 minutes`, `just now`: how long ago `iso` was. */
export function ageOf(iso: string, now: Date = new Date()): string {
  const ms = now.getTime() - Date.parse(iso);
  if (Number.isNaN(ms)) return 'unknown';
  if (ms < 60_000) return 'just now';
  const units: [number, string][] = [
    [86_400_000 * 365, 'year'],
    [86_400_000 * 30, 'month'],
    [86_400_000, 'day'],
    [3_600_000, 'hour'],
    [60_000, 'minute'],
  ];
  for (const [size, name] of units) {
    const n = Math.floor(ms / size);
    if (n >= 1) return `${n} ${name}${n === 1 ? '' : 's'} ago`;
  }
  return 'just now';
}

/** The list as a table: recipients shortened (showRecipient), the age of each value. */
export function formatSecretList(rows: SecretListRow[], now: Date = new Date()): string {
  if (rows.length === 0) return 'no secrets set centrally\n';
  const table = [
    ['TENANT', 'KEY', 'RECIPIENTS', 'SET'],
    ...rows.map((r) => [
      r.tenant,
      r.key,
      r.recipients.map(showRecipient).join(', ') + (r.current ? '' : ' (not the current recipients: run flotilla secret rotate-recipients)'),
      `${r.setAt.slice(0, 10)} (${ageOf(r.setAt, now)})`,
    ]),
  ];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  return `${table.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n')}\n`;
}

export interface RotateResult {
  file: string;
  /** Keys re-encrypted to the current recipients. */
  rotated: string[];
  /** Keys already encrypted to them, left as they are. */
  current: string[];
}

/**
 * `flotilla secret rotate-recipients`: decrypts each of the tenant's secrets whose
 * recipients are not the current ones (the tenant's ageRecipients plus the admins) with
 * an admin identity, and encrypts it again to the current ones. With `all`, every secret.
 * A secret the identity cannot decrypt stops the command naming the key; nothing is written.
 */
export async function rotateRecipients(opts: {
  root: string;
  slug: string;
  identityText: string;
  identityFile: string;
  all?: boolean;
  now?: Date;
}): Promise<RotateResult> {
  const identities = (await parseIdentityFile(opts.identityText, opts.identityFile)).map((p) => p.identity);
  const checkout = await openCheckout(opts.root);
  const tenant = tenantOf(checkout.fleet, opts.slug);
  const recipients = await secretRecipients(checkout.fleet, tenant);
  let text = checkout.files.get(tenant.file)!;
  const result: RotateResult = { file: tenant.file, rotated: [], current: [] };
  for (const [key, s] of Object.entries(tenant.encryptedSecrets)) {
    if (!opts.all && sameRecipients(s.recipients, recipients)) {
      result.current.push(key);
      continue;
    }
    let value: string;
    try {
      value = await decryptSecret(key, s.ciphertext, identities);
    } catch (e) {
      if (e instanceof SecretDecryptError && e.reason === 'not-for-this-host')
        throw new SecretDecryptError(
          key,
          'not-for-this-host',
          `${opts.identityFile} cannot decrypt it: it was not encrypted to that identity (an admin recipient in fleet.yaml defaults.adminAgeRecipients when it was set?); set it again with flotilla secret set`,
        );
      throw e;
    }
    text = setSecretInText(text, tenant.file, key, await sealSecret(key, value, recipients, opts.now));
    result.rotated.push(key);
  }
  if (result.rotated.length > 0) await writeEdits(checkout, new Map([[tenant.file, text]]));
  return result;
}
