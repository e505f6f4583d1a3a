// The tenant manifest: the contract between the renderer (which writes it into
// every tenant branch as `.flotilla/manifest.json`) and the agent (which trusts
// nothing on disk that the manifest does not name).
import crypto, { createHash } from 'node:crypto';
import { ManifestError } from './errors.js';
import { ageArmorProblem } from './secrets.js';
import { parseWindows } from './window.js';

export const MANIFEST_PATH = '.flotilla/manifest.json';
export const MANIFEST_SCHEMA_VERSION = 1;
/** Largest managed file the agent accepts (a rendered config, never a blob). */
export const MAX_MANAGED_FILE_BYTES = 4 * 1024 * 1024;

export type TenantMode = 'managed' | 'adopted';

export interface ManagedFile {
  /** POSIX path relative to the install dir, e.g. `nginx/conf.d/api.conf`. */
  path: string;
  sha256: string;
  /** Unix permission bits, 0o644 or 0o755. */
  mode: number;
}

export interface Manifest {
  schemaVersion: typeof MANIFEST_SCHEMA_VERSION;
  tenant: string;
  mode: TenantMode;
  imageTag: string;
  source: { repo: string; commit: string };
  /** Every managed file except the manifest itself, sorted by path. */
  files: ManagedFile[];
  /** Non-secret `.env` values the host must hold (rendered from `env.hbs`). */
  envPatch: Record<string, string>;
  /** Variables the rendered compose file requires (`$VAR`, `${VAR}`, `${VAR:?}`). */
  requiredVariables: string[];
  /** Names of secrets the host generates when missing; values never leave the host. */
  secrets: string[];
  /**
   * Secrets set centrally (`flotilla secret set`): env key -> armored age ciphertext,
   * encrypted to the tenant's hosts (and the fleet's admin recipients). The agent decrypts
   * them with its own identity (agent/secrets.ts) and patches the values into `.env` like
   * the env patch; a key here is never generated. Absent (older manifests, none set): none.
   */
  encryptedSecrets?: Record<string, string>;
  /** Maintenance windows (`Sun 02:00-05:00 Europe/Berlin`) the agent applies in; absent: any time. */
  windows?: string[];
  /** Commands the agent runs around the swap (a dump before, migrations or a smoke check after); absent: none. */
  hooks?: ManifestHooks;
  /**
   * The fleet's decision for files at managed paths that Flotilla never wrote on the host
   * (an adopted host's own nginx config): `replace` lets the agent replace them, keeping a
   * copy. Absent: the agent refuses until someone decides.
   */
  adopt?: 'replace';
  /**
   * COMPOSE_* / DOCKER_* names the fleet sets in the env patch on purpose (fleet.yaml
   * `defaults.composeSettings`, e.g. COMPOSE_PROFILES); absent: none may be set.
   */
  composeSettings?: string[];
}

/**
 * Names compose itself reads from the install dir's `.env` (project name, files, host):
 * set by a branch they would move a hand-run compose onto another project or engine.
 */
export const COMPOSE_SETTING_PATTERN = /^(COMPOSE|DOCKER)_/;

/** One hook: an argv list, never a shell line (`["sh", "-c", "..."]` when a shell is wanted). */
export interface HookCommand {
  /** Names the hook's output and log folders on the host: unique across both phases. */
  name: string;
  /** argv; a first word `compose` stands for the host's compose command. */
  run: string[];
  timeoutSeconds?: number;
  /** How many files the hook's output folder keeps (newest first), e.g. dumps. */
  keep?: number;
}

export interface ManifestHooks {
  /** Run in the current install dir (the old stack) after `pull`, before any file changes. */
  preSwap?: HookCommand[];
  /** Run in the install dir after `up` is healthy; a failure rolls the apply back. */
  postUp?: HookCommand[];
}

/** A hook as a person reads it: `migrate: compose exec -T api npm run migrate (timeout 600 s)`. */
export function describeHook(hook: HookCommand): string {
  const extras = [hook.timeoutSeconds !== undefined ? `timeout ${hook.timeoutSeconds} s` : '', hook.keep !== undefined ? `keeps ${hook.keep}` : ''].filter(Boolean);
  return `${hook.name}: ${hook.run.join(' ')}${extras.length ? ` (${extras.join(', ')})` : ''}`;
}

export const HOOK_NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
export const MAX_HOOK_TIMEOUT_SECONDS = 86_400;
export const MAX_HOOK_KEEP = 1_000;

/** One file of a rendered tenant tree. */
export interface RenderedFile {
  path: string;
  content: string;
  mode: number;
}

// One-shot hashing (Node >= 20.12) skips the Hash object per call: a 1,000-tenant
// render hashes ~8,000 small files, where that per-call cost is most of the time.
const oneShotHash = (crypto as { hash?: (algorithm: string, data: string | Uint8Array, encoding: 'hex') => string }).hash;

export function sha256(content: string | Uint8Array): string {
  return oneShotHash ? oneShotHash('sha256', content, 'hex') : createHash('sha256').update(content).digest('hex');
}

/** UTF-16 code-unit order (as `<`), the one order paths, keys and names are sorted in: no locale, no surprises. */
export const byCodeUnits = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Stable JSON: the same manifest always serialises to the same bytes. */
export function serializeManifest(manifest: Manifest): string {
  return manifestJsonFast(manifest) ?? manifestJsonGeneric(manifest);
}

/** The definition of the bytes: sorted envPatch (and encryptedSecrets), JSON.stringify with two-space indent. */
function manifestJsonGeneric(manifest: Manifest): string {
  const sorted = (o: Record<string, string>) => Object.fromEntries(Object.entries(o).sort(([a], [b]) => byCodeUnits(a, b)));
  return `${JSON.stringify(
    { ...manifest, envPatch: sorted(manifest.envPatch), ...(manifest.encryptedSecrets ? { encryptedSecrets: sorted(manifest.encryptedSecrets) } : {}) },
    null,
    2,
  )}\n`;
}

const MANIFEST_KEYS = ['schemaVersion', 'tenant', 'mode', 'imageTag', 'source', 'files', 'envPatch', 'requiredVariables', 'secrets'];
const SOURCE_KEYS = ['repo', 'commit'];
const FILE_KEYS = ['path', 'sha256', 'mode'];
const ARRAY_INDEX = /^(0|[1-9][0-9]*)$/;
const isPlain = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype;
function isStringList(v: unknown): v is string[] {
  if (!Array.isArray(v) || Object.getPrototypeOf(v) !== Array.prototype) return false;
  // An index loop, not every(): every() skips holes, which JSON writes as null.
  for (let i = 0; i < v.length; i++) if (typeof v[i] !== 'string') return false;
  return true;
}
function sameKeys(o: object, keys: readonly string[]): boolean {
  const own = Object.keys(o);
  if (own.length !== keys.length) return false;
  for (let i = 0; i < own.length; i++) if (own[i] !== keys[i]) return false;
  return true;
}
// Strings JSON.stringify would write as `"` + s + `"`: no quote, backslash, control
// character or surrogate (the common case: names, hashes, paths, tags).
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;
const q = (s: string): string => (NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`);

/**
 * The same bytes as manifestJsonGeneric, written directly: a render serialises one
 * manifest per tenant, and JSON.stringify's indentation walk dominated that. Only for
 * a manifest of exactly the canonical shape (keys in order, plain values); anything
 * else returns undefined and takes the generic path, so the output never differs.
 */
function manifestJsonFast(m: Manifest): string | undefined {
  if (!isPlain(m) || !sameKeys(m, MANIFEST_KEYS)) return undefined;
  const { source, files, envPatch, requiredVariables, secrets } = m;
  if (typeof m.schemaVersion !== 'number' || !Number.isSafeInteger(m.schemaVersion)) return undefined;
  if (typeof m.tenant !== 'string' || typeof m.mode !== 'string' || typeof m.imageTag !== 'string') return undefined;
  if (!isPlain(source) || !sameKeys(source, SOURCE_KEYS) || typeof source.repo !== 'string' || typeof source.commit !== 'string')
    return undefined;
  if (!Array.isArray(files) || Object.getPrototypeOf(files) !== Array.prototype) return undefined;
  if (!isPlain(envPatch) || !isStringList(requiredVariables) || !isStringList(secrets)) return undefined;
  let out = `{\n  "schemaVersion": ${m.schemaVersion},\n  "tenant": ${q(m.tenant)},\n  "mode": ${q(m.mode)},\n  "imageTag": ${q(m.imageTag)},\n  "source": {\n    "repo": ${q(source.repo)},\n    "commit": ${q(source.commit)}\n  },\n  "files": `;
  if (files.length === 0) out += '[]';
  else {
    out += '[';
    for (let i = 0; i < files.length; i++) {
      const f = files[i] as unknown;
      if (!isPlain(f) || !sameKeys(f, FILE_KEYS)) return undefined;
      if (typeof f.path !== 'string' || typeof f.sha256 !== 'string' || typeof f.mode !== 'number' || !Number.isSafeInteger(f.mode))
        return undefined;
      out += `${i ? ',' : ''}\n    {\n      "path": ${q(f.path)},\n      "sha256": ${q(f.sha256)},\n      "mode": ${f.mode}\n    }`;
    }
    out += '\n  ]';
  }
  const keys = Object.keys(envPatch).sort(byCodeUnits);
  if (keys.length === 0) out += ',\n  "envPatch": {}';
  else {
    out += ',\n  "envPatch": {';
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      const value = envPatch[key];
      // Index-like keys come first in any JS object, whatever order they were added in.
      if (typeof value !== 'string' || ARRAY_INDEX.test(key)) return undefined;
      out += `${i ? ',' : ''}\n    ${q(key)}: ${q(value)}`;
    }
    out += '\n  }';
  }
  out += `,\n  "requiredVariables": ${stringListJson(requiredVariables)},\n  "secrets": ${stringListJson(secrets)}\n}\n`;
  return out;
}

function stringListJson(list: string[]): string {
  if (list.length === 0) return '[]';
  let out = '[';
  for (let i = 0; i < list.length; i++) out += `${i ? ',' : ''}\n    ${q(list[i]!)}`;
  return `${out}\n  ]`;
}

/** A tenant slug: a DNS label (it names a branch, a compose project and a host's status context). */
export const SLUG_PATTERN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
const HEX64 = /^[0-9a-f]{64}$/;

/**
 * Checks that a manifest path is a plain relative POSIX path that stays inside
 * the install dir. Symlinks on disk are checked by the agent when it writes.
 */
export function checkManagedPath(path: string): void {
  const fail = (why: string) => {
    throw new ManifestError(why, path);
  };
  if (typeof path !== 'string' || path.length === 0) fail('empty path');
  if (path.length > 4096) fail('path longer than 4096 characters');
  if (path.includes('\0')) fail('NUL byte in path');
  if (path.includes('\\')) fail('backslash in path (paths are POSIX)');
  if (path.startsWith('/')) fail('absolute path');
  if (/[\u0000-\u001f\u007f]/.test(path)) fail('control character in path');
  if (Buffer.from(path, 'utf8').toString('utf8') !== path || /\uFFFD/.test(path)) fail('path is not valid UTF-8');
  for (const part of path.split('/')) {
    if (part === '' || part === '.' || part === '..') fail(`path segment ${JSON.stringify(part)} is not allowed`);
  }
  if (path === '.flotilla' || path.startsWith('.flotilla/')) fail('.flotilla/ is reserved for the manifest');
  if (path === '.env') fail('.env is patched, never replaced');
}

/**
 * Parses and validates manifest JSON from a tenant branch; throws ManifestError naming what is wrong.
 * `applied`: a manifest this host applied earlier (its state file). Its shape is checked as
 * strictly, but the env-patch policy of today (compose's own keys) is not applied to it again:
 * a host that applied such a key before the rule existed must still be able to move on.
 */
export function parseManifest(text: string, opts: { applied?: boolean } = {}): Manifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ManifestError(`not JSON: ${(e as Error).message}`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new ManifestError('not a JSON object');
  const m = raw as Record<string, unknown>;
  if (m.schemaVersion !== MANIFEST_SCHEMA_VERSION)
    throw new ManifestError(`unsupported schemaVersion ${JSON.stringify(m.schemaVersion)}`);
  if (typeof m.tenant !== 'string' || !SLUG_PATTERN.test(m.tenant)) throw new ManifestError('tenant is not a DNS label');
  if (m.mode !== 'managed' && m.mode !== 'adopted') throw new ManifestError('mode must be managed or adopted');
  if (typeof m.imageTag !== 'string') throw new ManifestError('imageTag missing');
  const source = m.source as Record<string, unknown> | undefined;
  if (!source || typeof source.repo !== 'string' || typeof source.commit !== 'string')
    throw new ManifestError('source.repo and source.commit are required');
  if (!Array.isArray(m.files)) throw new ManifestError('files must be a list');
  const seen = new Set<string>();
  const files: ManagedFile[] = m.files.map((f: unknown, i: number) => {
    const file = f as Record<string, unknown>;
    if (!file || typeof file.path !== 'string') throw new ManifestError(`files[${i}].path missing`);
    checkManagedPath(file.path);
    const folded = file.path.normalize('NFC');
    if (seen.has(folded)) throw new ManifestError('duplicate path', file.path);
    seen.add(folded);
    if (typeof file.sha256 !== 'string' || !HEX64.test(file.sha256))
      throw new ManifestError('sha256 is not 64 lowercase hex digits', file.path);
    if (file.mode !== 0o644 && file.mode !== 0o755)
      throw new ManifestError(`mode ${String(file.mode)} is not 0644 or 0755`, file.path);
    return { path: file.path, sha256: file.sha256, mode: file.mode };
  });
  const envPatch = m.envPatch as Record<string, unknown> | undefined;
  if (!envPatch || typeof envPatch !== 'object' || Array.isArray(envPatch))
    throw new ManifestError('envPatch must be an object');
  let composeSettings: string[] | undefined;
  if (m.composeSettings !== undefined) {
    if (!isStringList(m.composeSettings) || m.composeSettings.some((n) => !ENV_KEY.test(n) || !COMPOSE_SETTING_PATTERN.test(n)))
      throw new ManifestError('composeSettings must be a list of COMPOSE_* / DOCKER_* names');
    composeSettings = m.composeSettings.slice();
  }
  for (const [k, v] of Object.entries(envPatch)) {
    if (!ENV_KEY.test(k)) throw new ManifestError(`envPatch key ${JSON.stringify(k)} is not a valid variable name`);
    if (typeof v !== 'string') throw new ManifestError(`envPatch.${k} must be a string`);
    if (!opts.applied && COMPOSE_SETTING_PATTERN.test(k) && !composeSettings?.includes(k))
      throw new ManifestError(`envPatch key ${k} is compose's own setting and the fleet does not declare it (fleet.yaml defaults.composeSettings)`);
  }
  const names = (key: string): string[] => {
    const list = m[key];
    if (!Array.isArray(list) || list.some((n) => typeof n !== 'string' || !ENV_KEY.test(n)))
      throw new ManifestError(`${key} must be a list of variable names`);
    return list as string[];
  };
  let windows: string[] | undefined;
  if (m.windows !== undefined) {
    if (!Array.isArray(m.windows) || m.windows.some((w) => typeof w !== 'string'))
      throw new ManifestError('windows must be a list of maintenance windows');
    try {
      parseWindows(m.windows as string[]);
    } catch (e) {
      throw new ManifestError(`windows: ${(e as Error).message}`);
    }
    windows = m.windows as string[];
  }
  const hooks = m.hooks === undefined ? undefined : parseHooks(m.hooks);
  const encryptedSecrets = m.encryptedSecrets === undefined ? undefined : parseEncryptedSecrets(m.encryptedSecrets, envPatch);
  if (m.adopt !== undefined && m.adopt !== 'replace') throw new ManifestError(`adopt must be "replace", got ${JSON.stringify(m.adopt)}`);
  return {
    schemaVersion: MANIFEST_SCHEMA_VERSION,
    tenant: m.tenant,
    mode: m.mode,
    imageTag: m.imageTag,
    source: { repo: source.repo, commit: source.commit },
    files,
    envPatch: envPatch as Record<string, string>,
    requiredVariables: names('requiredVariables'),
    secrets: names('secrets'),
    ...(windows ? { windows } : {}),
    ...(hooks ? { hooks } : {}),
    ...(m.adopt === 'replace' ? { adopt: 'replace' as const } : {}),
    ...(composeSettings ? { composeSettings } : {}),
    ...(encryptedSecrets ? { encryptedSecrets } : {}),
  };
}

/**
 * The manifest's `encryptedSecrets`: env key -> armored age (shape only; the agent
 * decrypts). A key may not also be in the env patch (which value would win?) nor be one
 * of compose's own settings. Messages name keys, never ciphertext.
 */
function parseEncryptedSecrets(raw: unknown, envPatch: Record<string, unknown>): Record<string, string> {
  if (!isPlain(raw)) throw new ManifestError('encryptedSecrets must be an object of KEY: armored age ciphertext');
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (!ENV_KEY.test(key)) throw new ManifestError(`encryptedSecrets key ${JSON.stringify(key.slice(0, 64))} is not a valid variable name`);
    if (COMPOSE_SETTING_PATTERN.test(key)) throw new ManifestError(`encryptedSecrets key ${key} is compose's own setting, not a secret`);
    if (Object.prototype.hasOwnProperty.call(envPatch, key)) throw new ManifestError(`encryptedSecrets key ${key} is also in envPatch: a key is either a plain value or a secret`);
    const problem = ageArmorProblem(value);
    if (problem) throw new ManifestError(`encryptedSecrets.${key} ${problem}`);
    out[key] = value as string;
  }
  return out;
}

/** The manifest's `hooks`: each phase a list of {name, run, timeoutSeconds?, keep?}; names unique. */
function parseHooks(raw: unknown): ManifestHooks {
  if (!isPlain(raw)) throw new ManifestError('hooks must be an object with preSwap and/or postUp lists');
  const names = new Set<string>();
  const out: ManifestHooks = {};
  for (const key of Object.keys(raw)) {
    if (key !== 'preSwap' && key !== 'postUp') throw new ManifestError(`hooks.${key} is not a hook phase (preSwap, postUp)`);
    const list = raw[key];
    if (!Array.isArray(list)) throw new ManifestError(`hooks.${key} must be a list`);
    out[key] = list.map((h: unknown, i: number) => {
      const at = `hooks.${key}[${i}]`;
      if (!isPlain(h)) throw new ManifestError(`${at} must be an object`);
      for (const k of Object.keys(h))
        if (!['name', 'run', 'timeoutSeconds', 'keep'].includes(k)) throw new ManifestError(`${at}.${k} is not a hook setting`);
      if (typeof h.name !== 'string' || !HOOK_NAME_PATTERN.test(h.name))
        throw new ManifestError(`${at}.name must match ${HOOK_NAME_PATTERN.source}`);
      if (names.has(h.name)) throw new ManifestError(`${at}.name: hook name ${h.name} is used twice`);
      names.add(h.name);
      if (!isStringList(h.run) || h.run.length === 0 || h.run[0] === '' || h.run.some((a) => a.includes('\0')))
        throw new ManifestError(`${at}.run must be a non-empty argv list of strings`);
      const hook: HookCommand = { name: h.name, run: h.run.slice() };
      if (h.timeoutSeconds !== undefined) {
        if (!Number.isInteger(h.timeoutSeconds) || (h.timeoutSeconds as number) < 1 || (h.timeoutSeconds as number) > MAX_HOOK_TIMEOUT_SECONDS)
          throw new ManifestError(`${at}.timeoutSeconds must be an integer from 1 to ${MAX_HOOK_TIMEOUT_SECONDS}`);
        hook.timeoutSeconds = h.timeoutSeconds as number;
      }
      if (h.keep !== undefined) {
        if (!Number.isInteger(h.keep) || (h.keep as number) < 1 || (h.keep as number) > MAX_HOOK_KEEP)
          throw new ManifestError(`${at}.keep must be an integer from 1 to ${MAX_HOOK_KEEP}`);
        hook.keep = h.keep as number;
      }
      return hook;
    });
  }
  return out;
}
