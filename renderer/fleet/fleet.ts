// Loads and validates the fleet configuration: fleet/fleet.yaml and
// fleet/tenants/<slug>.yaml. `loadFleetFromFiles` is pure so `plan` can load a
// fleet straight from a git ref; `loadFleet` only adds reading the files.
//
// Validation never stops at the first problem: a user fixing a fleet wants the
// whole list, each naming file, key path and (where the YAML parser knows it) line.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { Document, LineCounter, isMap, isNode, isPair, isScalar, isSeq, parseDocument, visit, type Node } from 'yaml';
import { FleetConfigError, type ConfigProblem } from '../core/errors.js';
import { byCodeUnits, SLUG_PATTERN, type HookCommand, type ManifestHooks, type TenantMode } from '../core/manifest.js';
import { ageArmorProblem, checkTenantSecrets, looksLikeAgeRecipient, showRecipient, type EncryptedSecret, type SecretProblem } from '../core/secrets.js';
import { parseWindow } from '../core/window.js';
import schema from './fleet-schema.json' with { type: 'json' };

export const FLEET_FILE = 'fleet/fleet.yaml';
export const TENANTS_DIR = 'fleet/tenants';

export interface FleetDefaults {
  imageTag: string;
  /** Registry plus namespace images are pulled from, e.g. `127.0.0.1:5000/flotilla`. */
  registry: string;
  /** Service name -> image name under the registry; a name without `:tag` follows IMAGE_TAG. */
  images: Record<string, string>;
  domainSuffix: string;
  tenantBranchPrefix: string;
  statusContextPrefix: string;
  env: Record<string, string>;
  secrets: string[];
  /** Every feature flag templates may test, with its default value. */
  features: Record<string, boolean>;
  /** Maintenance windows of tenants that set none. */
  windows: string[];
  /** Hooks of tenants that declare none; absent: no hooks. */
  hooks?: ManifestHooks;
  /** COMPOSE_* / DOCKER_* names the env patch may set on purpose (e.g. COMPOSE_PROFILES); absent: none. */
  composeSettings?: string[];
  /** `defaults.adminAgeRecipients`: every secret set centrally is also encrypted to these (sorted, deduplicated). */
  adminAgeRecipients: string[];
}

export interface Wave {
  name: string;
  /** Slugs in this wave: listed explicitly, or every tenant whose labels match `selector`. */
  tenants: string[];
  selector?: Record<string, string>;
  soakMinutes?: number;
  maxFailures?: number;
}

export interface Tenant {
  slug: string;
  /** Path of the tenant's settings file relative to the repo root. */
  file: string;
  domain: string;
  /** Resolved: the tenant's own imageTag, else the fleet default. */
  imageTag: string;
  /** True when the tenant file sets imageTag itself (pinned away from the default). */
  imageTagPinned: boolean;
  mode: TenantMode;
  /** Non-secret env values: fleet defaults overlaid with the tenant's own. */
  env: Record<string, string>;
  /**
   * Secret names: fleet defaults plus the tenant's. The host generates each one it lacks,
   * unless the tenant file sets it centrally (`encryptedSecrets`, `flotilla secret set`).
   */
  secrets: string[];
  /** `ageRecipients`: the tenant's host(s), what secrets set centrally are encrypted to (sorted, deduplicated). */
  ageRecipients: string[];
  /** Secrets set centrally (`encryptedSecrets`), by key, sorted; the ciphertext goes into the manifest. */
  encryptedSecrets: Record<string, EncryptedSecret>;
  /** Names an adopted host's own .env is known to define (env coverage in plan). */
  hostEnv: string[];
  features: Record<string, boolean>;
  labels: Record<string, string>;
  paused: boolean;
  /** Maintenance windows (`Sun 02:00-05:00 Europe/Berlin`): the tenant's own, else the fleet default; empty = any time. */
  windows: string[];
  /** Commands the agent runs around the swap: the tenant's own `hooks` (replacing the defaults' whole), else the fleet default. */
  hooks?: ManifestHooks;
  /** `replace`: the agent may replace files at managed paths it never wrote on the host (the first contact with an adopted host). */
  adopt?: 'replace';
}

export interface Fleet {
  defaults: FleetDefaults;
  waves: Wave[];
  /** On a halted rollout, `flotilla promote` opens the rollback PR for the failed tenants. */
  autoRollback: boolean;
  /** Sorted by slug. */
  tenants: Tenant[];
}

export const IMAGE_TAG_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

// Raw shapes after the schema has accepted a file.
interface RawFleet {
  defaults: {
    imageTag: string;
    registry: string;
    images: Record<string, string>;
    domainSuffix: string;
    tenantBranchPrefix?: string;
    statusContextPrefix?: string;
    env?: Record<string, string | number | boolean>;
    secrets?: string[];
    adminAgeRecipients?: string[];
    features?: Record<string, boolean>;
    window?: string | string[];
    hooks?: ManifestHooks;
    composeSettings?: string[];
  };
  autoRollback?: boolean;
  waves?: Array<{
    name: string;
    tenants?: string[];
    selector?: Record<string, string>;
    soakMinutes?: number;
    maxFailures?: number;
  }>;
}

interface RawTenant {
  slug?: string;
  domain?: string;
  imageTag?: string;
  mode: TenantMode;
  env?: Record<string, string | number | boolean>;
  secrets?: string[];
  hostEnv?: string[];
  ageRecipients?: string[];
  encryptedSecrets?: unknown;
  features?: Record<string, boolean>;
  labels?: Record<string, string>;
  paused?: boolean;
  window?: string | string[];
  hooks?: ManifestHooks;
  adopt?: 'replace';
}

let validators: { fleet: ValidateFunction; tenant: ValidateFunction } | undefined;

function getValidators(): { fleet: ValidateFunction; tenant: ValidateFunction } {
  if (!validators) {
    const ajv = new Ajv({ allErrors: true, verbose: true, strict: true, allowUnionTypes: true });
    ajv.addSchema(schema);
    const get = (name: string): ValidateFunction => {
      const v = ajv.getSchema(`${schema.$id}#/definitions/${name}`);
      if (!v) throw new Error(`fleet-schema.json has no definition ${name}`);
      return v;
    };
    validators = { fleet: get('fleet'), tenant: get('tenant') };
  }
  return validators;
}

type PathSegment = string | number;

function formatKeyPath(segments: readonly PathSegment[]): string {
  let out = '';
  for (const s of segments) {
    if (typeof s === 'number') out += `[${s}]`;
    else out += out ? `.${s}` : s;
  }
  return out;
}

/** One parsed YAML file plus what is needed to point at its lines. */
export class YamlSource {
  readonly doc: Document.Parsed;
  private readonly lines = new LineCounter();

  constructor(
    readonly file: string,
    text: string,
  ) {
    this.doc = parseDocument(text, { lineCounter: this.lines, uniqueKeys: true, prettyErrors: false });
  }

  lineAt(offset: number): number {
    return this.lines.linePos(offset).line;
  }

  /** Line of the value at `segments` (or of its key, when `atKey`); the nearest existing parent otherwise. */
  lineOf(segments: readonly PathSegment[], atKey = false): number | undefined {
    for (let n = segments.length; n >= 0; n--) {
      const parentPath = segments.slice(0, Math.max(0, n - 1));
      const last = segments[n - 1];
      if (n === 0) {
        const root = this.doc.contents;
        return isNode(root) && root.range ? this.lineAt(root.range[0]) : 1;
      }
      const parent = parentPath.length === 0 ? this.doc.contents : this.doc.getIn(parentPath, true);
      if (isMap(parent) && typeof last === 'string') {
        const pair = parent.items.find((p) => isScalar(p.key) && String(p.key.value) === last);
        if (pair) {
          const node = (atKey || !isNode(pair.value) ? pair.key : pair.value) as Node | null;
          if (node?.range) return this.lineAt(node.range[0]);
        }
      } else if (parent && typeof last === 'number') {
        const node = this.doc.getIn([...parentPath, last], true);
        if (isNode(node) && node.range) return this.lineAt(node.range[0]);
      }
      atKey = false;
    }
    return undefined;
  }

  /** Key path of the map key that starts at `offset` (used for duplicate-key errors). */
  keyPathAt(offset: number): { path: PathSegment[]; key: string } | undefined {
    let found: { path: PathSegment[]; key: string } | undefined;
    visit(this.doc, {
      Pair: (_key, pair, ancestors) => {
        if (!isScalar(pair.key) || !pair.key.range || pair.key.range[0] !== offset) return undefined;
        const path: PathSegment[] = [];
        for (let i = 0; i < ancestors.length; i++) {
          const a = ancestors[i];
          if (isPair(a) && isScalar(a.key)) path.push(String(a.key.value));
          else if (isSeq(a)) path.push(a.items.indexOf((ancestors[i + 1] ?? pair) as never));
        }
        found = { path, key: String(pair.key.value) };
        return visit.BREAK;
      },
    });
    return found;
  }
}

/**
 * Files parsed once, by path and exact text. `plan` loads the fleet at base and at head,
 * which share all but a few files byte for byte; the same text parses to the same document.
 */
export type YamlParses = Map<string, YamlSource>;

function parseYaml(file: string, text: string, problems: ConfigProblem[], parses?: YamlParses): YamlSource | undefined {
  const key = `${file}\u0000${text}`;
  const known = parses?.get(key);
  if (known) return known;
  const src = new YamlSource(file, text);
  if (src.doc.errors.length === 0) {
    if (src.doc.contents === null || !isMap(src.doc.contents)) {
      problems.push({ file, keyPath: '', line: 1, message: 'expected a mapping of keys (the file is empty or not key: value pairs)' });
      return undefined;
    }
    parses?.set(key, src);
    return src;
  }
  for (const err of src.doc.errors) {
    const offset = err.pos[0];
    const line = src.lineAt(offset);
    if (err.code === 'DUPLICATE_KEY') {
      const at = src.keyPathAt(offset);
      problems.push({
        file,
        keyPath: at ? formatKeyPath([...at.path, at.key]) : '',
        line,
        message: `duplicate key${at ? ` "${at.key}"` : ''}: each key may appear once`,
      });
    } else {
      // The parser's own wording ("Implicit map keys need to be followed by map values", ...).
      const text = err.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
      problems.push({ file, keyPath: '', line, message: `invalid YAML: ${text}` });
    }
  }
  return undefined;
}

/** Quotes a value for a message, shortening long ones so the message stays one readable line. */
function quoteShort(v: unknown): string {
  const text = JSON.stringify(v) ?? String(v);
  return typeof v === 'string' && v.length > 40 ? `${JSON.stringify(v.slice(0, 32))}… (${v.length} characters)` : text;
}

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `${typeof v} ${JSON.stringify(v)}`;
}

/**
 * For a string key given a YAML number or boolean (`imageTag: 2.10`, read as 2.1): the
 * value as written, and how to quote it so YAML keeps it a string.
 */
function quoteHint(src: YamlSource, path: readonly PathSegment[], value: number | boolean): string {
  const node = src.doc.getIn(path, true);
  const written = isScalar(node) && typeof node.source === 'string' && node.source !== '' ? node.source : String(value);
  const last = path[path.length - 1];
  const quoted = JSON.stringify(written);
  const read = written === String(value) ? '' : ` (YAML reads ${written} as ${describeValue(value)})`;
  return `${read}; quote it to keep it text: ${typeof last === 'string' ? `${last}: ${quoted}` : `- ${quoted}`}`;
}

/**
 * A value none of a `oneOf`'s forms takes (`window: 5`: not a string, not a list) gives
 * one error per form and one for the `oneOf`: keep the deepest, which say the most
 * (`window[0]: must be string`), or else one line naming every form.
 */
function collapseOneOf(errors: ErrorObject[]): ErrorObject[] {
  let out = errors;
  for (const one of errors.filter((e) => e.keyword === 'oneOf')) {
    const prefix = one.schemaPath.replace(/oneOf$/, 'oneOf/');
    const branches = out.filter((e) => e !== one && e.schemaPath.startsWith(prefix) && (e.instancePath === one.instancePath || e.instancePath.startsWith(`${one.instancePath}/`)));
    const deeper = branches.filter((e) => e.instancePath !== one.instancePath);
    const forms = branches.filter((e) => e.keyword === 'type' && e.instancePath === one.instancePath);
    out = out.filter((e) => e !== one && !branches.includes(e));
    if (deeper.length > 0) out.push(...deeper);
    else if (forms.length === branches.length && forms.length > 0) {
      const types = forms.flatMap((e) => (e.params as { type: string | string[] }).type);
      out.push({ ...forms[0]!, params: { type: [...new Set(types)] } });
    } else out.push(one, ...branches);
  }
  return out;
}

function schemaProblems(src: YamlSource, allErrors: ErrorObject[]): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const seen = new Set<string>();
  const errors = collapseOneOf(allErrors);
  for (const e of errors) {
    const segments: PathSegment[] = e.instancePath
      .split('/')
      .slice(1)
      .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
    // ajv does not say whether a segment indexes a list; the YAML does.
    const typed: PathSegment[] = [];
    for (const s of segments) {
      const parent = typed.length === 0 ? src.doc.contents : src.doc.getIn(typed, true);
      typed.push(parent && !isMap(parent) && /^\d+$/.test(s as string) ? Number(s) : s);
    }
    const propertyName = (e as ErrorObject & { propertyName?: string }).propertyName;
    let path = typed;
    let atKey = false;
    let message: string;
    if (e.keyword === 'propertyNames') continue; // reported by its inner error, which names the key
    if (propertyName !== undefined) {
      path = [...typed, propertyName];
      atKey = true;
      message = `key "${propertyName}" is not allowed here: keys must match ${String((e.params as { pattern?: string }).pattern ?? 'the schema')}`;
    } else if (e.keyword === 'additionalProperties') {
      const key = (e.params as { additionalProperty: string }).additionalProperty;
      path = [...typed, key];
      atKey = true;
      const allowed = Object.keys((e.parentSchema as { properties?: object } | undefined)?.properties ?? {});
      message = `unknown key${allowed.length ? ` (allowed here: ${allowed.join(', ')})` : ''}`;
    } else if (e.keyword === 'required') {
      const key = (e.params as { missingProperty: string }).missingProperty;
      path = [...typed, key];
      message = 'is required but missing';
    } else if (e.keyword === 'pattern' && e.schemaPath.includes('/imageTag/')) {
      message = `${quoteShort(e.data)} is not a valid image tag: Docker tags are 1 to 128 characters of letters, digits, _ . - and do not start with . or -`;
    } else if (e.keyword === 'pattern' && e.schemaPath.includes('/slug/')) {
      message = `${JSON.stringify(e.data)} is not a DNS label (lowercase letters, digits and -, at most 63 characters, not starting or ending with -)`;
    } else if (e.keyword === 'pattern' && e.schemaPath.includes('/domain/')) {
      message = `${JSON.stringify(e.data)} is not a lowercase DNS name`;
    } else if (e.keyword === 'pattern') {
      message = `${JSON.stringify(e.data)} must match ${(e.params as { pattern: string }).pattern}`;
    } else if (e.keyword === 'type') {
      const expected = (e.params as { type: string | string[] }).type;
      message = `must be ${String(expected).replace(/,/g, ' or ')}, not ${describeValue(e.data)}`;
      if ((expected === 'string' || (Array.isArray(expected) && expected.includes('string'))) && (typeof e.data === 'number' || typeof e.data === 'boolean')) message += quoteHint(src, path, e.data);
    } else if (e.keyword === 'enum') {
      message = `must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.join(', ')}, not ${describeValue(e.data)}`;
    } else if (e.keyword === 'uniqueItems') {
      const { i, j } = e.params as { i: number; j: number };
      message = `items ${j} and ${i} are the same; list each name once`;
    } else {
      message = e.message ?? `fails ${e.keyword}`;
    }
    const keyPath = formatKeyPath(path);
    const dedupe = `${keyPath}\0${message}`;
    if (seen.has(dedupe)) continue;
    seen.add(dedupe);
    out.push({ file: src.file, keyPath, line: src.lineOf(path, atKey), message });
  }
  return out;
}

function stringifyEnv(env: Record<string, string | number | boolean> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env ?? {})) out[k] = String(v);
  return out;
}

function sortedRecord<T>(r: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(r).sort(([a], [b]) => byCodeUnits(a, b)));
}

function resolveDefaults(raw: RawFleet['defaults']): FleetDefaults {
  return {
    imageTag: raw.imageTag,
    registry: raw.registry,
    images: { ...raw.images },
    domainSuffix: raw.domainSuffix,
    tenantBranchPrefix: raw.tenantBranchPrefix ?? 'tenants/',
    statusContextPrefix: raw.statusContextPrefix ?? 'flotilla/',
    env: stringifyEnv(raw.env),
    secrets: [...(raw.secrets ?? [])],
    features: { ...(raw.features ?? {}) },
    windows: windowList(raw.window),
    ...(raw.hooks ? { hooks: copyHooks(raw.hooks) } : {}),
    ...(raw.composeSettings?.length ? { composeSettings: [...raw.composeSettings].sort(byCodeUnits) } : {}),
    adminAgeRecipients: recipientList(raw.adminAgeRecipients),
  };
}

function recipientList(raw: string[] | undefined): string[] {
  return [...new Set((raw ?? []).map((r) => r.trim()))].sort(byCodeUnits);
}

/**
 * Problems with a list of age recipients: each must look like one (its checksum is
 * `flotilla check`'s, through the age library). The message shows a recipient shortened
 * and never echoes a private key given by mistake.
 */
function recipientProblems(src: YamlSource, raw: string[] | undefined, keyPath: PathSegment[]): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  (raw ?? []).forEach((r, i) => {
    if (looksLikeAgeRecipient(r.trim())) return;
    const at = [...keyPath, i];
    const message = /SECRET-KEY/i.test(r)
      ? 'is an age private key: give its public recipient (age1…, printed by flotilla-agent keygen or age-keygen -y), and treat this key as leaked'
      : `${showRecipient(r)} is not an age recipient (age1…, printed by flotilla-agent keygen)`;
    problems.push({ file: src.file, keyPath: formatKeyPath(at), line: src.lineOf(at), message });
  });
  return problems;
}

/**
 * A problem checkTenantSecrets reports that `flotilla check` holds, not loadFleet: a
 * ciphertext not encrypted to the tenant's current recipients (a host re-keyed). Render
 * still carries it (the host refuses it, naming the key), so one tenant's stale secret
 * does not stop the fleet's publish; `check` in the PR refuses it.
 */
export function isRecipientDrift(p: SecretProblem): boolean {
  return p.message.includes("is not encrypted to the tenant's current recipients");
}

/** How loadFleet treats a tenant's `encryptedSecrets`. */
export interface LoadFleetOptions {
  /**
   * `check` (default): a plaintext, malformed or undeclared entry is a problem.
   * `lenient`: such entries are left out of Tenant.encryptedSecrets without a problem
   * (`flotilla secret` commands, which must be able to replace or remove them).
   */
  secretEntries?: 'check' | 'lenient';
}

/** The well-formed entries of a tenant file's `encryptedSecrets`, sorted by key. */
function encryptedSecretEntries(raw: unknown, declared: readonly string[]): Record<string, EncryptedSecret> {
  const out: Record<string, EncryptedSecret> = {};
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return out;
  for (const [key, entry] of Object.entries(raw as Record<string, unknown>).sort(([a], [b]) => byCodeUnits(a, b))) {
    if (!declared.includes(key) || !entry || typeof entry !== 'object' || Array.isArray(entry)) continue;
    const e = entry as Record<string, unknown>;
    const setAt = e.setAt instanceof Date ? e.setAt.toISOString() : e.setAt;
    if (typeof setAt !== 'string' || typeof e.ciphertext !== 'string' || ageArmorProblem(e.ciphertext) !== undefined) continue;
    if (!Array.isArray(e.recipients) || !e.recipients.every((r) => looksLikeAgeRecipient(typeof r === 'string' ? r.trim() : r))) continue;
    out[key] = { recipients: recipientList(e.recipients as string[]), setAt, ciphertext: e.ciphertext };
  }
  return out;
}

function copyHooks(raw: ManifestHooks): ManifestHooks {
  const copy = (list: HookCommand[]) => list.map((h) => ({ ...h, run: [...h.run] }));
  return { ...(raw.preSwap ? { preSwap: copy(raw.preSwap) } : {}), ...(raw.postUp ? { postUp: copy(raw.postUp) } : {}) };
}

/**
 * What the schema cannot say about hooks: a name is used once across both phases (it
 * names the hook's folders on the host), and the command is not an empty word.
 */
function hookProblems(src: YamlSource, raw: ManifestHooks | undefined, keyPath: PathSegment[]): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const seen = new Map<string, string>();
  for (const phase of ['preSwap', 'postUp'] as const) {
    (raw?.[phase] ?? []).forEach((hook, i) => {
      const at = [...keyPath, phase, i];
      const first = seen.get(hook.name);
      if (first !== undefined)
        problems.push({ file: src.file, keyPath: formatKeyPath([...at, 'name']), line: src.lineOf([...at, 'name']), message: `hook name "${hook.name}" is already used by ${first}; each hook needs its own name` });
      else seen.set(hook.name, formatKeyPath(at));
      if (hook.run[0]?.trim() === '')
        problems.push({ file: src.file, keyPath: formatKeyPath([...at, 'run', 0]), line: src.lineOf([...at, 'run', 0]), message: 'the command (first word of run) is empty' });
    });
  }
  return problems;
}

function windowList(raw: string | string[] | undefined): string[] {
  return raw === undefined ? [] : typeof raw === 'string' ? [raw] : [...raw];
}

/** Problems with maintenance windows at `keyPath` (a string or a list of them). */
function windowProblems(src: YamlSource, raw: string | string[] | undefined, keyPath: PathSegment[]): ConfigProblem[] {
  const list = windowList(raw);
  const problems: ConfigProblem[] = [];
  list.forEach((text, i) => {
    try {
      parseWindow(text);
    } catch (e) {
      const at = typeof raw === 'string' ? keyPath : [...keyPath, i];
      problems.push({ file: src.file, keyPath: formatKeyPath(at), line: src.lineOf(at), message: (e as Error).message.replace(/^window: /, '') });
    }
  });
  return problems;
}

/** Checks what a schema cannot say about one tenant file; pushes problems, returns the tenant. */
function resolveTenant(
  src: YamlSource,
  slug: string,
  raw: RawTenant,
  defaults: FleetDefaults | undefined,
  problems: ConfigProblem[],
  options: LoadFleetOptions = {},
): Tenant {
  const file = src.file;
  const env = { ...(defaults?.env ?? {}), ...stringifyEnv(raw.env) };
  const secrets = [...new Set([...(defaults?.secrets ?? []), ...(raw.secrets ?? [])])];
  const ageRecipients = recipientList(raw.ageRecipients);
  problems.push(...recipientProblems(src, raw.ageRecipients, ['ageRecipients']));
  if (options.secretEntries !== 'lenient') {
    const secretProblems = checkTenantSecrets({
      declared: secrets,
      recipients: ageRecipients,
      adminRecipients: defaults?.adminAgeRecipients ?? [],
      encryptedSecrets: raw.encryptedSecrets,
    });
    for (const p of secretProblems.filter((p) => !isRecipientDrift(p))) {
      const at = p.keyPath.split('.');
      problems.push({ file, keyPath: p.keyPath, line: src.lineOf(at, at.length === 2), message: p.message });
    }
  }
  const encryptedSecrets = encryptedSecretEntries(raw.encryptedSecrets, secrets);
  for (const [key, value] of Object.entries(stringifyEnv(raw.env))) {
    if (/[\r\n\0]/.test(value))
      problems.push({ file, keyPath: `env.${key}`, line: src.lineOf(['env', key]), message: 'a .env value cannot contain a line break or NUL' });
    if (secrets.includes(key))
      problems.push({
        file,
        keyPath: `env.${key}`,
        line: src.lineOf(['env', key], true),
        message: `${key} is a secret name; secret values are generated on the host or set encrypted (flotilla secret set), never committed in plain`,
      });
  }
  if (defaults) {
    for (const flag of Object.keys(raw.features ?? {})) {
      if (!(flag in defaults.features))
        problems.push({
          file,
          keyPath: `features.${flag}`,
          line: src.lineOf(['features', flag], true),
          message: `unknown feature flag (fleet.yaml declares: ${Object.keys(defaults.features).join(', ') || 'none'})`,
        });
    }
  }
  problems.push(...windowProblems(src, raw.window, ['window']));
  problems.push(...hookProblems(src, raw.hooks, ['hooks']));
  const hooks = raw.hooks !== undefined ? copyHooks(raw.hooks) : defaults?.hooks ? copyHooks(defaults.hooks) : undefined;
  const imageTag = raw.imageTag ?? defaults?.imageTag ?? '';
  return {
    slug,
    file,
    domain: raw.domain ?? `${slug}.${defaults?.domainSuffix ?? ''}`,
    imageTag,
    imageTagPinned: raw.imageTag !== undefined,
    mode: raw.mode,
    env: sortedRecord(env),
    secrets,
    hostEnv: [...(raw.hostEnv ?? [])],
    ageRecipients,
    encryptedSecrets,
    features: { ...(defaults?.features ?? {}), ...(raw.features ?? {}) },
    labels: { ...(raw.labels ?? {}) },
    paused: raw.paused ?? false,
    windows: raw.window !== undefined ? windowList(raw.window) : [...(defaults?.windows ?? [])],
    ...(hooks ? { hooks } : {}),
    ...(raw.adopt ? { adopt: raw.adopt } : {}),
  };
}

function resolveWaves(
  src: YamlSource,
  raw: RawFleet['waves'],
  tenants: Tenant[],
  known: Set<string>,
  problems: ConfigProblem[],
): Wave[] {
  const names = new Set<string>();
  /** Each tenant's wave so far, and how that wave took it in. */
  const placed = new Map<string, { wave: string; how: string }>();
  return (raw ?? []).map((w, i) => {
    if (names.has(w.name))
      problems.push({ file: src.file, keyPath: `waves[${i}].name`, line: src.lineOf(['waves', i, 'name']), message: `duplicate wave name "${w.name}"` });
    names.add(w.name);
    if ((w.tenants === undefined) === (w.selector === undefined))
      problems.push({
        file: src.file,
        keyPath: `waves[${i}]`,
        line: src.lineOf(['waves', i]),
        message: `wave "${w.name}" needs exactly one of tenants (a list of slugs) or selector (labels)`,
      });
    let slugs: string[] = [];
    if (w.tenants) {
      w.tenants.forEach((slug, j) => {
        if (!known.has(slug))
          problems.push({
            file: src.file,
            keyPath: `waves[${i}].tenants[${j}]`,
            line: src.lineOf(['waves', i, 'tenants', j]),
            message: `unknown tenant "${slug}" (no file ${TENANTS_DIR}/${slug}.yaml)`,
          });
      });
      const valid = new Set(tenants.map((t) => t.slug));
      slugs = w.tenants.filter((s) => valid.has(s));
    } else if (w.selector) {
      const selector = w.selector;
      slugs = tenants.filter((t) => Object.entries(selector).every(([k, v]) => t.labels[k] === v)).map((t) => t.slug);
      if (slugs.length === 0 && tenants.length > 0)
        problems.push({
          file: src.file,
          keyPath: `waves[${i}].selector`,
          line: src.lineOf(['waves', i, 'selector']),
          message: `selector matches no tenant's labels`,
        });
    }
    // A tenant rolls out in one wave: in two, which one it goes in would be an accident of order.
    for (const slug of slugs) {
      const j = w.tenants?.indexOf(slug) ?? -1;
      const at: PathSegment[] = j >= 0 ? ['waves', i, 'tenants', j] : ['waves', i, 'selector'];
      const how = j >= 0 ? `by name, line ${src.lineOf(at)}` : `its labels match the selector, line ${src.lineOf(at)}`;
      const first = placed.get(slug);
      if (first)
        problems.push({
          file: src.file,
          keyPath: formatKeyPath(at),
          line: src.lineOf(at),
          message: `tenant "${slug}" is in two waves: "${first.wave}" (${first.how}) and "${w.name}" (${how}); a tenant rolls out in one wave, so remove it from one`,
        });
      else placed.set(slug, { wave: w.name, how });
    }
    const wave: Wave = { name: w.name, tenants: slugs };
    if (w.selector) wave.selector = { ...w.selector };
    if (w.soakMinutes !== undefined) wave.soakMinutes = w.soakMinutes;
    if (w.maxFailures !== undefined) wave.maxFailures = w.maxFailures;
    return wave;
  });
}

const TENANT_FILE = /^fleet\/tenants\/([^/]+)\.(yaml|yml)$/;

/**
 * Builds the fleet from file contents keyed by repo-relative path
 * (`fleet/fleet.yaml`, `fleet/tenants/<slug>.yaml`). Files outside those are ignored.
 * Throws one FleetConfigError listing every problem found. `parses` keeps parsed files
 * for a later load of the same texts.
 */
export function loadFleetFromFiles(files: Map<string, string>, parses?: YamlParses, options: LoadFleetOptions = {}): Fleet {
  const problems: ConfigProblem[] = [];
  const { fleet: validateFleet, tenant: validateTenant } = getValidators();

  let fleetSrc: YamlSource | undefined;
  let rawFleet: RawFleet | undefined;
  const fleetText = files.get(FLEET_FILE);
  if (fleetText === undefined) {
    problems.push({ file: FLEET_FILE, keyPath: '', message: 'file is missing' });
  } else {
    fleetSrc = parseYaml(FLEET_FILE, fleetText, problems, parses);
    if (fleetSrc) {
      const value: unknown = fleetSrc.doc.toJS();
      if (validateFleet(value)) {
        rawFleet = value as RawFleet;
        problems.push(...windowProblems(fleetSrc, rawFleet.defaults.window, ['defaults', 'window']));
        problems.push(...hookProblems(fleetSrc, rawFleet.defaults.hooks, ['defaults', 'hooks']));
        problems.push(...recipientProblems(fleetSrc, rawFleet.defaults.adminAgeRecipients, ['defaults', 'adminAgeRecipients']));
      } else problems.push(...schemaProblems(fleetSrc, validateFleet.errors ?? []));
    }
  }
  const defaults = rawFleet ? resolveDefaults(rawFleet.defaults) : undefined;

  const tenants: Tenant[] = [];
  const domains = new Map<string, Tenant>();
  const tenantFiles = new Set<string>();
  const paths = [...files.keys()].filter((p) => p.startsWith(`${TENANTS_DIR}/`)).sort();
  for (const path of paths) {
    const m = TENANT_FILE.exec(path);
    if (!m) continue; // READMEs and the like beside the tenant files
    const slug = m[1]!;
    tenantFiles.add(slug);
    if (m[2] === 'yml') {
      problems.push({ file: path, keyPath: '', message: `tenant files end in .yaml; rename to ${TENANTS_DIR}/${slug}.yaml` });
      continue;
    }
    if (!SLUG_PATTERN.test(slug)) {
      problems.push({
        file: path,
        keyPath: '',
        message: `file name "${slug}" is not a valid tenant slug: it must be a DNS label (lowercase letters, digits and -, at most 63 characters, not starting or ending with -)`,
      });
    }
    const src = parseYaml(path, files.get(path)!, problems, parses);
    if (!src) continue;
    const value: unknown = src.doc.toJS();
    const declaredSlug = (value as { slug?: unknown }).slug;
    if (declaredSlug !== undefined && declaredSlug !== slug) {
      problems.push({
        file: path,
        keyPath: 'slug',
        line: src.lineOf(['slug']),
        message: `slug ${JSON.stringify(declaredSlug)} does not match the file name (expected "${slug}" for ${path})`,
      });
    }
    if (!validateTenant(value)) {
      problems.push(...schemaProblems(src, validateTenant.errors ?? []));
      continue;
    }
    const tenant = resolveTenant(src, slug, value as RawTenant, defaults, problems, options);
    const other = domains.get(tenant.domain);
    if (other)
      problems.push({
        file: path,
        keyPath: 'domain',
        line: src.lineOf(['domain']),
        message: `domain ${tenant.domain} is also ${other.slug}'s (${other.file})`,
      });
    domains.set(tenant.domain, tenant);
    tenants.push(tenant);
  }
  tenants.sort((a, b) => (a.slug < b.slug ? -1 : a.slug > b.slug ? 1 : 0));

  const waves = fleetSrc && rawFleet ? resolveWaves(fleetSrc, rawFleet.waves, tenants, tenantFiles, problems) : [];
  if (problems.length > 0 || !defaults) throw new FleetConfigError(problems);
  return { defaults, waves, autoRollback: rawFleet?.autoRollback ?? true, tenants };
}

/** Reads fleet/fleet.yaml and fleet/tenants/*.yaml under `repoRoot` and validates them. */
export async function loadFleet(repoRoot: string, options: LoadFleetOptions = {}): Promise<Fleet> {
  return loadFleetFromFiles(await readFleetFiles(repoRoot), undefined, options);
}

/** fleet/fleet.yaml and fleet/tenants/*.yaml under `repoRoot`, by repo-relative path (missing ones left out). */
export async function readFleetFiles(repoRoot: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  try {
    files.set(FLEET_FILE, await readFile(join(repoRoot, FLEET_FILE), 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  let names: string[] = [];
  try {
    names = await readdir(join(repoRoot, TENANTS_DIR));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  for (const name of names.sort()) {
    if (!/\.ya?ml$/.test(name)) continue;
    const path = `${TENANTS_DIR}/${name}`;
    files.set(path, await readFile(join(repoRoot, path), 'utf8'));
  }
  return files;
}

/** The tenant with this slug, or undefined. */
export function findTenant(fleet: Fleet, slug: string): Tenant | undefined {
  return fleet.tenants.find((t) => t.slug === slug);
}
