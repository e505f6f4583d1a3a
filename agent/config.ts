// Agent settings: an env file (default /etc/flotilla/agent.env) overlaid by the
// process environment. Every setting is checked at start so a bad install fails
// loudly with the setting's name instead of half-working for hours.
import { readFile, access, constants, stat } from 'node:fs/promises';
import { delimiter, dirname, isAbsolute, join } from 'node:path';
import { isIP } from 'node:net';
import { parse as parseDotenv } from 'dotenv';
import cron from 'node-cron';
import { SettingError } from '../renderer/core/errors.js';
import { detectForgeKind, type ForgeKind } from '../renderer/core/forge.js';
import { repoSlugFromUrl, type RepoRef } from '../renderer/core/github.js';
import { SLUG_PATTERN } from '../renderer/core/manifest.js';
import { parseWindows, type MaintenanceWindow } from '../renderer/core/window.js';
import { parseTrustedKeys, type TrustedKey } from '../renderer/core/signing.js';

const slugOf = (ref: RepoRef | undefined): string | undefined => (ref ? `${ref.owner}/${ref.repo}` : undefined);

export const DEFAULT_ENV_FILE = '/etc/flotilla/agent.env';

/** Every setting the agent reads; any other FLOTILLA_* name is a typo until proven otherwise. */
export const AGENT_SETTINGS: readonly string[] = [
  'FLOTILLA_REPO',
  'FLOTILLA_TENANT',
  'FLOTILLA_BRANCH',
  'FLOTILLA_DIR',
  'FLOTILLA_STATE_DIR',
  'FLOTILLA_GIT_TOKEN',
  'FLOTILLA_GITHUB_TOKEN',
  'FLOTILLA_GITHUB_API',
  'FLOTILLA_FORGE',
  'FLOTILLA_GITHUB_REPO',
  'FLOTILLA_SCHEDULE',
  'FLOTILLA_JITTER',
  'FLOTILLA_COMPOSE',
  'FLOTILLA_PROJECT',
  'FLOTILLA_HEALTH_TIMEOUT',
  'FLOTILLA_HOST_FAULT_TIMEOUT',
  'FLOTILLA_DRIFT',
  'FLOTILLA_ALLOW_NON_FAST_FORWARD',
  'FLOTILLA_GIT_TIMEOUT',
  'FLOTILLA_BACKOFF',
  'FLOTILLA_BACKOFF_MAX',
  'FLOTILLA_TRUSTED_KEYS',
  'FLOTILLA_WINDOW',
];

/**
 * FLOTILLA_* names other programs of the project read (the renderer on a CI machine,
 * the test and demo scripts, hooks): a host environment may hold them, the agent
 * ignores them. They are not accepted in the agent's env file.
 */
const OTHER_FLOTILLA_NAMES = new Set([
  'FLOTILLA_PUBLISH_TOKEN',
  'FLOTILLA_REGISTRY_USERNAME',
  'FLOTILLA_REGISTRY_PASSWORD',
  'FLOTILLA_GITHUB_API_URL',
  'FLOTILLA_FLEET_URL',
  'FLOTILLA_TEST_RUN_DIR',
  'FLOTILLA_SKIP_DOCKER',
  'FLOTILLA_SKIP_BROWSER',
  'FLOTILLA_PROPERTY_RUNS',
  // exec.ts marks every child with it, so a hook may run flotilla-agent with it set.
  'FLOTILLA_AGENT_RUN',
  'FLOTILLA_EXEC_TEST_SECRET',
]);
const OTHER_FLOTILLA_PREFIXES = ['FLOTILLA_HOOK_', 'FLOTILLA_DEMO_'];

/** Longest wait a setting may ask for: Node's timers wrap past 2^31-1 ms (~24.8 days) and fire at once. */
export const MAX_SECONDS = 86_400;

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
  /**
   * Which API FLOTILLA_GITHUB_API speaks: FLOTILLA_FORGE (github, gitea; forgejo is
   * gitea), else detected from the URL (a path ending in /api/v1 is Gitea).
   */
  forge: ForgeKind;
  /** `owner/name` for commit statuses; undefined when it cannot be derived and was not set. */
  githubRepo?: string;
  schedule: string;
  /** Upper bound of the random delay added to each scheduled poll, so a fleet does not poll in lockstep. */
  jitterSeconds: number;
  /** undefined: detect (`docker compose` when the v2 plugin exists, else `docker-compose`). */
  compose?: string[];
  composeProject: string;
  healthTimeoutSeconds: number;
  /**
   * How long a fault of the host's (a registry or git host down, a full disk) is reported
   * as `pending` and retried before it becomes a `failure` naming the host (agent/host-fault.ts).
   */
  hostFaultTimeoutSeconds: number;
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

/** Edit distance, for "did you mean" on a misspelled setting. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length]!;
}

export function closestSetting(name: string): string {
  const upper = name.toUpperCase();
  return AGENT_SETTINGS.reduce((best, s) => (distance(upper, s) < distance(upper, best) ? s : best), AGENT_SETTINGS[0]!);
}

function unknownSetting(name: string, where: string): SettingError {
  return new SettingError(name, `is not a flotilla-agent setting (${where}); did you mean ${closestSetting(name)}?`);
}

/** Refuses FLOTILLA_* names the agent does not know (a typo would be ignored otherwise). */
export function checkSettingNames(vars: Record<string, string | undefined>, where: string): void {
  for (const name of Object.keys(vars).sort()) {
    if (!name.startsWith('FLOTILLA_') || AGENT_SETTINGS.includes(name) || OTHER_FLOTILLA_NAMES.has(name)) continue;
    if (OTHER_FLOTILLA_PREFIXES.some((p) => name.startsWith(p))) continue;
    throw unknownSetting(name, where);
  }
}

/**
 * The names an env file sets, with their lines; a line that is neither a comment nor
 * NAME=value is refused (dotenv skips it, and the setting it meant to give with it).
 * The line itself is not shown: a pasted token may be all it holds.
 */
export function envFileNames(text: string, file: string, flag: string): Array<{ name: string; line: number }> {
  const names: Array<{ name: string; line: number }> = [];
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(?:export\s+)?([\w.-]+)\s*=\s*(.*)$/.exec(line);
    if (!m) throw new SettingError(flag, `${file}:${i + 1}: expected NAME=value (a line without "=" or with a name that is not one)`);
    names.push({ name: m[1]!, line: i + 1 });
    // A quoted value may run over several lines (dotenv reads it so): skip to its closing quote.
    const value = m[2]!;
    const quote = value[0];
    if ((quote === '"' || quote === "'" || quote === '`') && value.indexOf(quote, 1) === -1) {
      while (i + 1 < lines.length && !lines[i + 1]!.includes(quote)) i++;
      i++;
    }
  }
  return names;
}

/**
 * Reads the env file if present; a missing default file is fine, a missing explicit one is not.
 * Every name in it must be an agent setting. `flag` is how the file was given, for messages.
 */
export async function readAgentEnvFile(path: string, explicit: boolean, flag = '--settings'): Promise<Record<string, string>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' && !explicit) return {};
    throw new SettingError(flag, `cannot read ${path}: ${(e as Error).message}`);
  }
  for (const { name, line } of envFileNames(text, path, flag)) {
    if (AGENT_SETTINGS.includes(name)) continue;
    // A pasted token with `=` padding reads as NAME=: echo only what looks like a variable name.
    if (/^[A-Z_][A-Z0-9_]{0,63}$/.test(name)) throw unknownSetting(name, `in ${path}:${line}`);
    throw new SettingError(flag, `${path}:${line}: the name is not a flotilla-agent setting (settings are FLOTILLA_* names in capitals)`);
  }
  return parseDotenv(text);
}

function seconds(name: string, raw: string | undefined, fallback: number, opts: { zero?: boolean } = {}): number {
  if (raw === undefined || raw.trim() === '') return fallback;
  const n = Number(raw);
  const low = opts.zero ? n >= 0 : n > 0;
  if (!Number.isFinite(n) || !low)
    throw new SettingError(name, `must be a ${opts.zero ? 'non-negative' : 'positive'} number of seconds, got ${JSON.stringify(raw)}`);
  if (n > MAX_SECONDS) throw new SettingError(name, `must be at most ${MAX_SECONDS} seconds (a day), got ${JSON.stringify(raw)}`);
  return n;
}

const LOOPBACK_NAMES = new Set(['localhost', 'localhost.']);
/** 127.0.0.0/8, ::1 and localhost: traffic that never leaves the host may go unencrypted. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (LOOPBACK_NAMES.has(host)) return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  // WHATWG URLs write an IPv4-mapped 127.x.y.z as ::ffff:7fxx:yyzz.
  if (isIP(host) === 6) return host === '::1' || /^::ffff:(127\.|7f[0-9a-f]{2}:)/.test(host);
  return false;
}

const masked = (url: string): string => url.replace(/\/\/[^@/]*@/, '//***@');

/**
 * An http(s) URL the agent can use; a token over plain http is refused unless the
 * host is loopback (a token sent in cleartext is a token given away).
 */
function httpUrl(name: string, raw: string, token: { sent: boolean; name: string }): URL {
  const shown = JSON.stringify(masked(raw));
  // WHATWG parsing quietly percent-encodes spaces and drops tabs and newlines: refuse them first.
  if (/[\s\x00-\x1f\x7f]/.test(raw)) throw new SettingError(name, `must be a URL without spaces or control characters, got ${shown}`);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new SettingError(name, `must be an http(s) URL, got ${shown}`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '') throw new SettingError(name, `must be an http(s) URL, got ${shown}`);
  const userinfo = url.username !== '' || url.password !== '';
  if (url.protocol === 'http:' && (token.sent || userinfo) && !isLoopbackHost(url.hostname))
    throw new SettingError(
      name,
      `${shown} is plain http and ${userinfo ? 'holds credentials' : `${token.name} is set`}: the token would cross the network in cleartext; use https (http is allowed only to a loopback address)`,
    );
  return url;
}

/** git check-ref-format's rules for refs/heads/<branch>, and no leading dash (git refuses it as a branch name). */
export function branchProblem(branch: string): string | undefined {
  if (branch.startsWith('-')) return 'starts with "-"';
  if (branch === '@') return 'is "@"';
  if (/[\x00-\x20\x7f~^:?*[\\]/.test(branch)) return 'holds a space, a control character or one of ~ ^ : ? * [ \\';
  if (branch.includes('..')) return 'holds ".."';
  if (branch.includes('@{')) return 'holds "@{"';
  if (branch.startsWith('/') || branch.endsWith('/') || branch.includes('//')) return 'has an empty path component';
  if (branch.endsWith('.')) return 'ends with "."';
  for (const part of branch.split('/')) {
    if (part.startsWith('.')) return `has a component starting with "." (${JSON.stringify(part)})`;
    if (part.endsWith('.lock')) return `has a component ending with ".lock" (${JSON.stringify(part)})`;
  }
  return undefined;
}

/** Compose's own rule for a project name (compose v2 refuses others; v1 quietly rewrites them). */
export const COMPOSE_PROJECT_PATTERN = /^[a-z0-9][a-z0-9_-]*$/;

/** Pure: turns the merged settings into a checked AgentConfig. */
export function parseAgentConfig(vars: Record<string, string | undefined>): AgentConfig {
  checkSettingNames(vars, 'among the settings given');
  const need = (name: string): string => {
    const v = vars[name];
    if (v === undefined || v.trim() === '') throw new SettingError(name, 'is required but not set');
    return v.trim();
  };
  const repo = need('FLOTILLA_REPO');
  if (!/^https?:\/\//.test(repo)) throw new SettingError('FLOTILLA_REPO', `must be an http(s) git URL, got ${JSON.stringify(masked(repo))}`);
  const gitToken = vars.FLOTILLA_GIT_TOKEN || undefined;
  httpUrl('FLOTILLA_REPO', repo, { sent: gitToken !== undefined, name: 'FLOTILLA_GIT_TOKEN' });
  const tenant = need('FLOTILLA_TENANT');
  if (!SLUG_PATTERN.test(tenant)) throw new SettingError('FLOTILLA_TENANT', `${JSON.stringify(tenant)} is not a tenant slug (a DNS label)`);
  const installDir = need('FLOTILLA_DIR');
  if (!installDir.startsWith('/')) throw new SettingError('FLOTILLA_DIR', 'must be an absolute path');
  const stateDir = vars.FLOTILLA_STATE_DIR?.trim() || `/var/lib/flotilla/${tenant}`;
  if (!isAbsolute(stateDir)) throw new SettingError('FLOTILLA_STATE_DIR', `must be an absolute path, got ${JSON.stringify(stateDir)}`);
  const branch = vars.FLOTILLA_BRANCH?.trim() || `tenants/${tenant}`;
  const badBranch = branchProblem(branch);
  if (badBranch) throw new SettingError('FLOTILLA_BRANCH', `${JSON.stringify(branch)} is not a valid branch name: it ${badBranch}`);
  const drift = (vars.FLOTILLA_DRIFT ?? 'report') as DriftPolicy;
  if (drift !== 'report' && drift !== 'heal') throw new SettingError('FLOTILLA_DRIFT', `must be report or heal, got ${JSON.stringify(drift)}`);
  const compose = vars.FLOTILLA_COMPOSE?.trim();
  const githubToken = vars.FLOTILLA_GITHUB_TOKEN || undefined;
  const githubApi = vars.FLOTILLA_GITHUB_API?.trim() || 'https://api.github.com';
  httpUrl('FLOTILLA_GITHUB_API', githubApi, { sent: githubToken !== undefined, name: 'FLOTILLA_GITHUB_TOKEN' });
  const forge = detectForgeKind(githubApi, vars.FLOTILLA_FORGE, 'FLOTILLA_FORGE');
  const githubRepo = vars.FLOTILLA_GITHUB_REPO?.trim() || slugOf(repoSlugFromUrl(repo));
  if (githubRepo !== undefined && !/^[\w.-]+\/[\w.-]+$/.test(githubRepo))
    throw new SettingError('FLOTILLA_GITHUB_REPO', `must be owner/name, got ${JSON.stringify(githubRepo)}`);
  const nonFF = vars.FLOTILLA_ALLOW_NON_FAST_FORWARD ?? 'false';
  if (nonFF !== 'true' && nonFF !== 'false') throw new SettingError('FLOTILLA_ALLOW_NON_FAST_FORWARD', 'must be true or false');
  // Checked here with node-cron's own validator: `run` would otherwise throw it after its first poll.
  const schedule = vars.FLOTILLA_SCHEDULE?.trim() || '* * * * *';
  if (!cron.validate(schedule))
    throw new SettingError('FLOTILLA_SCHEDULE', `${JSON.stringify(schedule)} is not a cron expression (5 fields, minute hour day month weekday, or 6 with seconds first)`);
  const composeProject = vars.FLOTILLA_PROJECT?.trim() || tenant;
  if (!COMPOSE_PROJECT_PATTERN.test(composeProject))
    throw new SettingError('FLOTILLA_PROJECT', `${JSON.stringify(composeProject)} is not a compose project name (lowercase letters, digits, dashes and underscores, starting with a letter or digit)`);
  const backoffSeconds = seconds('FLOTILLA_BACKOFF', vars.FLOTILLA_BACKOFF, 30);
  const backoffMaxSeconds = seconds('FLOTILLA_BACKOFF_MAX', vars.FLOTILLA_BACKOFF_MAX, Math.max(900, backoffSeconds));
  if (backoffMaxSeconds < backoffSeconds)
    throw new SettingError('FLOTILLA_BACKOFF_MAX', `${backoffMaxSeconds} is below FLOTILLA_BACKOFF (${backoffSeconds}): the cap must be at least the first wait`);
  return {
    repo,
    tenant,
    branch,
    installDir,
    stateDir,
    gitToken,
    githubToken,
    githubApi,
    forge,
    githubRepo,
    schedule,
    jitterSeconds: seconds('FLOTILLA_JITTER', vars.FLOTILLA_JITTER, 15, { zero: true }),
    compose: compose ? compose.split(/\s+/) : undefined,
    composeProject,
    healthTimeoutSeconds: seconds('FLOTILLA_HEALTH_TIMEOUT', vars.FLOTILLA_HEALTH_TIMEOUT, 120),
    hostFaultTimeoutSeconds: seconds('FLOTILLA_HOST_FAULT_TIMEOUT', vars.FLOTILLA_HOST_FAULT_TIMEOUT, 1800),
    drift,
    allowNonFastForward: nonFF === 'true',
    gitTimeoutSeconds: seconds('FLOTILLA_GIT_TIMEOUT', vars.FLOTILLA_GIT_TIMEOUT, 60),
    backoffSeconds,
    backoffMaxSeconds,
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

/**
 * The state dir is created at the first lock: here only what would make that fail is
 * refused (a path under a regular file, a folder the agent cannot write), nothing is created.
 */
export async function checkStateDir(config: AgentConfig): Promise<void> {
  let path = config.stateDir;
  for (;;) {
    try {
      const st = await stat(path);
      if (!st.isDirectory())
        throw new SettingError('FLOTILLA_STATE_DIR', path === config.stateDir ? `${path} is not a directory` : `${config.stateDir} cannot be created: ${path} is not a directory`);
      await access(path, constants.W_OK | constants.X_OK).catch((e: NodeJS.ErrnoException) => {
        throw new SettingError('FLOTILLA_STATE_DIR', `${path} is not writable (${e.code})`);
      });
      return;
    } catch (e) {
      if (e instanceof SettingError) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOTDIR') {
        path = dirname(path);
        continue;
      }
      if (code !== 'ENOENT') throw new SettingError('FLOTILLA_STATE_DIR', `${path}: ${code}`);
      if (dirname(path) === path) return;
      path = dirname(path);
    }
  }
}

/** The compose program named by FLOTILLA_COMPOSE exists and can be run (its first word, looked up in PATH). */
export async function checkComposeCommand(config: AgentConfig, env: Record<string, string | undefined>): Promise<void> {
  const program = config.compose?.[0];
  if (!program) return;
  const executable = (path: string) => access(path, constants.X_OK).then(() => stat(path)).then((st) => st.isFile(), () => false);
  if (program.includes('/')) {
    if (await executable(program)) return;
    throw new SettingError('FLOTILLA_COMPOSE', `${program} is not an executable file`);
  }
  const path = env.PATH ?? process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin';
  for (const dir of path.split(delimiter)) {
    if (dir && (await executable(join(dir, program)))) return;
  }
  throw new SettingError('FLOTILLA_COMPOSE', `${program} is not found in PATH (${path})`);
}

export interface LoadOptions {
  /** How the env file was given (`--settings` or the older `--env-file`), for messages. */
  flag?: string;
  /** Check that FLOTILLA_COMPOSE names a program (false when a test injects its own compose). */
  checkCompose?: boolean;
}

export async function loadAgentConfig(envFile: string | undefined, env: NodeJS.ProcessEnv, opts: LoadOptions = {}): Promise<AgentConfig> {
  checkSettingNames(env, 'in the environment');
  const fromFile = await readAgentEnvFile(envFile ?? DEFAULT_ENV_FILE, envFile !== undefined, opts.flag);
  const config = parseAgentConfig({ ...fromFile, ...env });
  await checkInstallDir(config);
  await checkStateDir(config);
  if (opts.checkCompose !== false) await checkComposeCommand(config, env);
  if (config.trustedKeysFile) await readTrustedKeys(config.trustedKeysFile);
  return config;
}
