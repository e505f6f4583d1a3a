// The tenant manifest: the contract between the renderer (which writes it into
// every tenant branch as `.flotilla/manifest.json`) and the agent (which trusts
// nothing on disk that the manifest does not name).
import { createHash } from 'node:crypto';
import { ManifestError } from './errors.js';

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
}

/** One file of a rendered tenant tree. */
export interface RenderedFile {
  path: string;
  content: string;
  mode: number;
}

export function sha256(content: string | Uint8Array): string {
  return createHash('sha256').update(content).digest('hex');
}

/** Stable JSON: the same manifest always serialises to the same bytes. */
export function serializeManifest(manifest: Manifest): string {
  const sortedEnv = Object.fromEntries(
    Object.entries(manifest.envPatch).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
  );
  return `${JSON.stringify({ ...manifest, envPatch: sortedEnv }, null, 2)}\n`;
}

const SLUG = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
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

/** Parses and validates manifest JSON from a tenant branch; throws ManifestError naming what is wrong. */
export function parseManifest(text: string): Manifest {
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
  if (typeof m.tenant !== 'string' || !SLUG.test(m.tenant)) throw new ManifestError('tenant is not a DNS label');
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
  for (const [k, v] of Object.entries(envPatch)) {
    if (!ENV_KEY.test(k)) throw new ManifestError(`envPatch key ${JSON.stringify(k)} is not a valid variable name`);
    if (typeof v !== 'string') throw new ManifestError(`envPatch.${k} must be a string`);
  }
  const names = (key: string): string[] => {
    const list = m[key];
    if (!Array.isArray(list) || list.some((n) => typeof n !== 'string' || !ENV_KEY.test(n)))
      throw new ManifestError(`${key} must be a list of variable names`);
    return list as string[];
  };
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
  };
}
