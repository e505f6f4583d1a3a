// Agent settings: an env file (default /etc/flotilla/agent.env) overlaid by the
// process environment. Every setting is checked at start so a bad install fails
// loudly with the setting's name instead of half-working for hours.
import { readFile, access, constants } from 'node:fs/promises';
import { parse as parseDotenv } from 'dotenv';
import { SettingError } from '../renderer/core/errors.js';
import { repoSlugFromUrl, type RepoRef } from '../renderer/core/github.js';
import { SLUG_PATTERN } from '../renderer/core/manifest.js';
import { parseWindows, type MaintenanceWindow } from '../renderer/core/window.js';
import { parseTrustedKeys, type TrustedKey } from '../renderer/core/signing.js';

const slugOf = (ref: RepoRef | undefined): string | undefined => (ref ? `${ref.owner}/${ref.repo}` : undefined);

export const DEFAULT_ENV_FILE = '/etc/flotilla/agent.env';

export type DriftPolicy = 'report' | 'heal';

export interface AgentConfig {
  repo: string;
  tenant: string;
  branch: string;
  installDir: string;
  stateDir: string;
  gitToken?: string;
  githubToken?: string;
  githubApi: string;
  /** `owner/name` for commit statuses; undefined when it cannot be derived and was not set. */
  githubRepo?: string;
  schedule: string;
  /** Upper bound of the random delay added to each scheduled poll, so a fleet does not poll in lockstep. */
  jitterSeconds: number;
  /** undefined: detect (`docker compose` when the v2 plugin exists, else `docker-compose`). */
  compose?: string[];
  composeProject: string;
  healthTimeoutSeconds: number;
  drift: DriftPolicy;
  allowNonFastForward: boolean;
  /** Seconds of silence after which a git request is abandoned (a hung host must not hang the agent). */
  gitTimeoutSeconds: number;
  /** After consecutive failed polls the daemon waits backoff * 2^(n-1) (capped, jittered) before polling again. */
  backoffSeconds: number;
  backoffMaxSeconds: number;
  /** File of trusted signing keys; when set, only commits signed by one of them are applied. */
  trustedKeysFile?: string;
  /** Maintenance windows (FLOTILLA_WINDOW, `;`-separated): a new commit waits until one is open. Empty: any time. */
  windows?: MaintenanceWindow[];
}

/** Reads the env file if present; a missing default file is fine, a missing explicit one is not. */
export async function readAgentEnvFile(path: string, explicit: boolean): Promise<Record<string, string>> {
  try {
    return parseDotenv(await readFile(path, 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' && !explicit) return {};
    throw new SettingError('--env-file', `cannot read ${path}: ${(e as Error).message}`);
  }
}

function positiveNumber(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new SettingError(name, `must be a positive number of seconds, got ${JSON.stringify(raw)}`);
  return n;
}

/** Pure: turns the merged settings into a checked AgentConfig. */
export function parseAgentConfig(vars: Record<string, string | undefined>): AgentConfig {
  const need = (name: string): string => {
    const v = vars[name];
    if (v === undefined || v.trim() === '') throw new SettingError(name, 'is required but not set');
    return v.trim();
  };
  const repo = need('FLOTILLA_REPO');
  if (!/^https?:\/\//.test(repo)) throw new SettingError('FLOTILLA_REPO', `must be an http(s) git URL, got ${JSON.stringify(repo.replace(/\/\/[^@/]*@/, '//***@'))}`);
  const tenant = need('FLOTILLA_TENANT');
  if (!SLUG_PATTERN.test(tenant)) throw new SettingError('FLOTILLA_TENANT', `${JSON.stringify(tenant)} is not a tenant slug (a DNS label)`);
  const installDir = need('FLOTILLA_DIR');
  if (!installDir.startsWith('/')) throw new SettingError('FLOTILLA_DIR', 'must be an absolute path');
  const drift = (vars.FLOTILLA_DRIFT ?? 'report') as DriftPolicy;
  if (drift !== 'report' && drift !== 'heal') throw new SettingError('FLOTILLA_DRIFT', `must be report or heal, got ${JSON.stringify(drift)}`);
  const compose = vars.FLOTILLA_COMPOSE?.trim();
  const githubRepo = vars.FLOTILLA_GITHUB_REPO?.trim() || slugOf(repoSlugFromUrl(repo));
  if (githubRepo !== undefined && !/^[\w.-]+\/[\w.-]+$/.test(githubRepo))
    throw new SettingError('FLOTILLA_GITHUB_REPO', `must be owner/name, got ${JSON.stringify(githubRepo)}`);
  const nonFF = vars.FLOTILLA_ALLOW_NON_FAST_FORWARD ?? 'false';
  if (nonFF !== 'true' && nonFF !== 'false') throw new SettingError('FLOTILLA_ALLOW_NON_FAST_FORWARD', 'must be true or false');
  return {
    repo,
    tenant,
    branch: vars.FLOTILLA_BRANCH?.trim() || `tenants/${tenant}`,
    installDir,
    stateDir: vars.FLOTILLA_STATE_DIR?.trim() || `/var/lib/flotilla/${tenant}`,
    gitToken: vars.FLOTILLA_GIT_TOKEN || undefined,
    githubToken: vars.FLOTILLA_GITHUB_TOKEN || undefined,
    githubApi: vars.FLOTILLA_GITHUB_API?.trim() || 'https://api.github.com',
    githubRepo,
    schedule: vars.FLOTILLA_SCHEDULE?.trim() || '* * * * *',
    jitterSeconds: positiveNumber('FLOTILLA_JITTER', vars.FLOTILLA_JITTER, 15),
    compose: compose ? compose.split(/\s+/) : undefined,
    composeProject: vars.FLOTILLA_PROJECT?.trim() || tenant,
    healthTimeoutSeconds: positiveNumber('FLOTILLA_HEALTH_TIMEOUT', vars.FLOTILLA_HEALTH_TIMEOUT, 120),
    drift,
    allowNonFastForward: nonFF === 'true',
    gitTimeoutSeconds: positiveNumber('FLOTILLA_GIT_TIMEOUT', vars.FLOTILLA_GIT_TIMEOUT, 60),
    backoffSeconds: positiveNumber('FLOTILLA_BACKOFF', vars.FLOTILLA_BACKOFF, 30),
    backoffMaxSeconds: positiveNumber('FLOTILLA_BACKOFF_MAX', vars.FLOTILLA_BACKOFF_MAX, 900),
    ...(vars.FLOTILLA_TRUSTED_KEYS?.trim() ? { trustedKeysFile: vars.FLOTILLA_TRUSTED_KEYS.trim() } : {}),
    ...(vars.FLOTILLA_WINDOW?.trim() ? { windows: windowSetting(vars.FLOTILLA_WINDOW) } : {}),
  };
}

function windowSetting(raw: string): MaintenanceWindow[] {
  try {
    return parseWindows(raw);
  } catch (e) {
    throw new SettingError('FLOTILLA_WINDOW', e instanceof SettingError ? e.detail : (e as Error).message);
  }
}

/** Checks what can be checked without side effects beyond reading: the install dir exists and is writable. */
export async function checkInstallDir(config: AgentConfig): Promise<void> {
  try {
    await access(config.installDir, constants.W_OK | constants.R_OK | constants.X_OK);
  } catch (e) {
    throw new SettingError('FLOTILLA_DIR', `${config.installDir} is not a writable directory (${(e as NodeJS.ErrnoException).code})`);
  }
}

/** The signing keys the agent trusts (FLOTILLA_TRUSTED_KEYS: `ssh-ed25519 AAAA... comment` lines). */
export async function readTrustedKeys(file: string): Promise<TrustedKey[]> {
  try {
    return parseTrustedKeys(await readFile(file, 'utf8'), file);
  } catch (e) {
    throw new SettingError('FLOTILLA_TRUSTED_KEYS', (e as Error).message);
  }
}

export async function loadAgentConfig(envFile: string | undefined, env: NodeJS.ProcessEnv): Promise<AgentConfig> {
  const fromFile = await readAgentEnvFile(envFile ?? DEFAULT_ENV_FILE, envFile !== undefined);
  const config = parseAgentConfig({ ...fromFile, ...env });
  await checkInstallDir(config);
  if (config.trustedKeysFile) await readTrustedKeys(config.trustedKeysFile);
  return config;
}
