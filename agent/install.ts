// `flotilla-agent install` / `uninstall`: put an agent on a host in one command.
// Install writes the env file (0600, it holds tokens), a systemd unit, and a small
// install record naming every file and folder it created, so uninstall removes
// exactly those and nothing else. Then it checks what it can from here (git,
// token, docker, compose, install dir) and says what to do next. `root` prefixes
// every path written, so tests install into a temp folder.
import { access, constants, lstat, mkdir, readFile, rm, rmdir, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { SettingError } from '../renderer/core/errors.js';
import { nodeGitDepsWithTimeout, remoteBranchHead, sanitizeUrl } from '../renderer/core/git.js';
import { writeFileAtomic } from '../renderer/core/atomic-write.js';
import { sha256 } from '../renderer/core/manifest.js';
import { composeEnv, detectComposeCommand } from './compose.js';
import { parseAgentConfig, type AgentConfig } from './config.js';
import { runCommand } from './exec.js';
import { ageIdentityPath, createHostIdentity, hostRecipients } from './secrets.js';

export const INSTALL_RECORD_VERSION = 1;

export interface InstallPaths {
  envFile: string;
  unitFile: string;
  record: string;
}

/** Where install writes, as the agent will see them (without `root`). One set per tenant, so one host can run several. */
export function installPaths(tenant: string): InstallPaths {
  return {
    envFile: `/etc/flotilla/${tenant}.env`,
    unitFile: `/etc/systemd/system/${unitName(tenant)}`,
    record: `/etc/flotilla/${tenant}.install.json`,
  };
}

export function unitName(tenant: string): string {
  return `flotilla-agent-${tenant}.service`;
}

export interface InstallOptions {
  repo: string;
  tenant: string;
  /** The install directory on the host (FLOTILLA_DIR). */
  dir: string;
  /** Prefix for every path written; '/' on a real host. */
  root?: string;
  gitToken?: string;
  githubToken?: string;
  /** Any other FLOTILLA_* setting (FLOTILLA_SCHEDULE, FLOTILLA_STATE_DIR...). */
  settings?: Record<string, string>;
  /** How systemd starts the agent, e.g. ['/usr/bin/node', '/opt/flotilla/dist/agent/main.js']. */
  agentCommand: string[];
  /** Extra arguments of `run`: `--metrics 127.0.0.1:9464`, `--log-format json`. */
  runArgs?: string[];
  /** Overwrite an env file or unit that install did not write. */
  force?: boolean;
  now?: () => Date;
}

export interface InstallRecord {
  version: number;
  tenant: string;
  installedAt: string;
  /** Files install wrote, with the hash of what it wrote. */
  files: Array<{ path: string; sha256: string }>;
  /** Folders install created (they did not exist before), outermost first. */
  dirs: string[];
}

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface InstallCheck {
  name: string;
  status: CheckStatus;
  detail: string;
}

export interface InstallReport {
  paths: InstallPaths;
  written: string[];
  createdDirs: string[];
  checks: InstallCheck[];
  nextSteps: string[];
  /** The host's age identity (agent/secrets.ts): created by this install, or found. */
  ageIdentity?: AgeIdentityReport;
}

export interface AgeIdentityReport {
  /** As the agent sees it (without `root`). */
  path: string;
  created: boolean;
  /** Its public recipient, for the tenant's `ageRecipients`; absent when the file found is unusable (see the check). */
  recipient?: string;
}

export interface InstallCheckDeps {
  /** Environment for docker/compose (DOCKER_HOST...). */
  env: Record<string, string | undefined>;
  fetch?: typeof globalThis.fetch;
  /** Tests shorten this; a host with no route to git should not hang install for long. */
  timeoutMs?: number;
}

function hostPath(root: string, path: string): string {
  return root === '/' ? path : join(root, path);
}

const BARE_VALUE = /^[A-Za-z0-9_./:@%+,=-]*$/;

/** `KEY=value` as dotenv reads it back byte for byte; refuses what it cannot quote. */
export function envLine(key: string, value: string): string {
  if (!/^[A-Z][A-Z0-9_]*$/.test(key)) throw new SettingError(key, 'is not an environment variable name');
  if (BARE_VALUE.test(value)) return `${key}=${value}`;
  if (/[\n\r']/.test(value)) throw new SettingError(key, 'value may not contain a newline or a single quote');
  return `${key}='${value}'`;
}

export function renderEnvFile(vars: Record<string, string>, header: string): string {
  const lines = [`# ${header}`, '# Holds tokens: keep it mode 0600, owned by root.'];
  for (const [key, value] of Object.entries(vars)) lines.push(envLine(key, value));
  return `${lines.join('\n')}\n`;
}

/** One ExecStart word: quoted when it holds spaces or quotes; `%` doubled (systemd specifiers). */
export function systemdWord(word: string): string {
  const escaped = word.replace(/%/g, '%%');
  if (/^[A-Za-z0-9_./:@+,=-]+$/.test(escaped)) return escaped;
  return `"${escaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

export function renderUnit(opts: { tenant: string; command: string[]; envFile: string; runArgs?: string[] }): string {
  const exec = [...opts.command, 'run', '--settings', opts.envFile, ...(opts.runArgs ?? [])].map(systemdWord).join(' ');
  return `[Unit]
Description=Flotilla agent for tenant ${opts.tenant}
Wants=network-online.target
After=network-online.target docker.service

[Service]
Type=simple
ExecStart=${exec}
# A failed pass is reported and retried by the agent itself; this restarts the process after a crash.
Restart=on-failure
RestartSec=10s
# SIGTERM lets the agent finish the current step (an apply never stops half-way).
KillSignal=SIGTERM
TimeoutStopSec=300

[Install]
WantedBy=multi-user.target
`;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Creates `dir` and its missing parents; returns those it created, outermost first. */
async function mkdirRecording(dir: string, mode?: number): Promise<string[]> {
  const missing: string[] = [];
  for (let d = dir; !(await exists(d)); d = dirname(d)) missing.unshift(d);
  for (const d of missing) await mkdir(d, mode === undefined ? {} : { mode });
  return missing;
}

async function readRecord(path: string): Promise<InstallRecord | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as InstallRecord;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SettingError('install record', `cannot read ${path}: ${(e as Error).message}`);
  }
}

/** The env-file variables of an install, checked with the same parser the agent runs. */
export function installSettings(opts: InstallOptions): { vars: Record<string, string>; config: AgentConfig } {
  const vars: Record<string, string> = {
    FLOTILLA_REPO: opts.repo,
    FLOTILLA_TENANT: opts.tenant,
    FLOTILLA_DIR: opts.dir,
    ...(opts.gitToken ? { FLOTILLA_GIT_TOKEN: opts.gitToken } : {}),
    ...(opts.githubToken ? { FLOTILLA_GITHUB_TOKEN: opts.githubToken } : {}),
  };
  for (const [key, value] of Object.entries(opts.settings ?? {})) {
    if (!key.startsWith('FLOTILLA_')) throw new SettingError(key, 'only FLOTILLA_* settings belong in the agent env file');
    vars[key] = value;
  }
  return { vars, config: parseAgentConfig(vars) };
}

/** Writes the env file, the unit and the record; refuses to overwrite files it did not write unless forced. */
export async function installAgent(opts: InstallOptions): Promise<Omit<InstallReport, 'checks'> & { config: AgentConfig }> {
  const root = opts.root ?? '/';
  const { vars, config } = installSettings(opts);
  if (opts.agentCommand.length === 0) throw new SettingError('--agent-command', 'is empty');
  const paths = installPaths(config.tenant);
  const previous = await readRecord(hostPath(root, paths.record));
  const ours = new Map((previous?.files ?? []).map((f) => [f.path, f.sha256]));

  const envText = renderEnvFile(vars, `flotilla-agent settings for tenant ${config.tenant}, written by flotilla-agent install`);
  const unitText = renderUnit({ tenant: config.tenant, command: opts.agentCommand, envFile: paths.envFile, ...(opts.runArgs ? { runArgs: opts.runArgs } : {}) });
  const files: Array<{ path: string; text: string; mode: number }> = [
    { path: paths.envFile, text: envText, mode: 0o600 },
    { path: paths.unitFile, text: unitText, mode: 0o644 },
  ];
  for (const f of files) {
    const target = hostPath(root, f.path);
    if (!(await exists(target)) || opts.force) continue;
    const current = sha256(await readFile(target, 'utf8'));
    if (ours.get(f.path) !== current)
      throw new SettingError('--force', `${target} exists and was not written by flotilla-agent install; move it away or pass --force`);
  }

  const createdDirs = [...(previous?.dirs ?? [])];
  const addDirs = (dirs: string[]) => {
    for (const d of dirs) if (!createdDirs.includes(d)) createdDirs.push(d);
  };
  const strip = (p: string) => (root === '/' ? p : `/${p.slice(root.length).replace(/^\/+/, '')}`);
  addDirs((await mkdirRecording(hostPath(root, '/etc/flotilla'), 0o755)).map(strip));
  addDirs((await mkdirRecording(hostPath(root, dirname(paths.unitFile)), 0o755)).map(strip));
  addDirs((await mkdirRecording(hostPath(root, config.installDir), 0o755)).map(strip));

  for (const f of files) {
    await writeFileAtomic(hostPath(root, f.path), f.text, { mode: f.mode });
  }
  const record: InstallRecord = {
    version: INSTALL_RECORD_VERSION,
    tenant: config.tenant,
    installedAt: (opts.now?.() ?? new Date()).toISOString(),
    files: files.map((f) => ({ path: f.path, sha256: sha256(f.text) })),
    dirs: createdDirs,
  };
  await writeFileAtomic(hostPath(root, paths.record), `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
  const ageIdentity = await ensureAgeIdentity(hostPath(root, ageIdentityPath(config.stateDir)), ageIdentityPath(config.stateDir), opts.now?.() ?? new Date());

  const unit = unitName(config.tenant);
  return {
    config,
    paths,
    written: [...files.map((f) => f.path), paths.record],
    createdDirs: createdDirs.filter((d) => !(previous?.dirs ?? []).includes(d)),
    ageIdentity,
    nextSteps: [
      `flotilla-agent --settings ${paths.envFile} plan        # see what the first apply would do`,
      `systemctl daemon-reload && systemctl enable --now ${unit}`,
      `journalctl -u ${unit} -f        # one line per step`,
      ...(ageIdentity.recipient ? [`add ${ageIdentity.recipient} to ageRecipients in fleet/tenants/${config.tenant}.yaml        # for secrets set with flotilla secret set`] : []),
    ],
  };
}

/**
 * The host's age identity, created when absent. It lives in the state dir and is not in
 * the install record: uninstall keeps it, since the fleet's secrets for this host are
 * encrypted to it, and a reinstall finds it again. An existing file is never replaced.
 */
async function ensureAgeIdentity(target: string, shown: string, now: Date): Promise<AgeIdentityReport> {
  if (!(await lstatExists(target))) return { path: shown, created: true, recipient: await createHostIdentity(target, now) };
  const recipient = await hostRecipients(target).then(
    (r) => r[0],
    () => undefined, // named by the age identity check
  );
  return { path: shown, created: false, ...(recipient ? { recipient } : {}) };
}

async function lstatExists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

async function checkGit(config: AgentConfig, deps: InstallCheckDeps): Promise<InstallCheck> {
  const auth = config.gitToken ? { token: config.gitToken } : undefined;
  try {
    const head = await remoteBranchHead(config.repo, config.branch, auth, nodeGitDepsWithTimeout(deps.timeoutMs ?? 30_000));
    if (head === null)
      return { name: 'git', status: 'warn', detail: `${sanitizeUrl(config.repo)} answers ls-refs, but ${config.branch} is not published yet (run \`flotilla publish\`)` };
    return { name: 'git', status: 'ok', detail: `${config.branch} is at ${head.slice(0, 12)} on ${sanitizeUrl(config.repo)}${auth ? ' (token accepted)' : ''}` };
  } catch (e) {
    return { name: 'git', status: 'fail', detail: (e as Error).message };
  }
}

async function checkGitHubToken(config: AgentConfig, deps: InstallCheckDeps): Promise<InstallCheck> {
  const name = 'github token';
  if (!config.githubToken) return { name, status: 'warn', detail: 'FLOTILLA_GITHUB_TOKEN not set: the agent will apply but post no commit statuses' };
  if (!config.githubRepo) return { name, status: 'fail', detail: 'FLOTILLA_GITHUB_REPO not set and not derivable from FLOTILLA_REPO' };
  const fetchFn = deps.fetch ?? globalThis.fetch;
  const url = `${config.githubApi.replace(/\/+$/, '')}/repos/${config.githubRepo}`;
  try {
    const res = await fetchFn(url, {
      headers: { authorization: `Bearer ${config.githubToken}`, accept: 'application/vnd.github+json', 'user-agent': 'flotilla-agent-install' },
      signal: AbortSignal.timeout(deps.timeoutMs ?? 15_000),
    });
    if (res.status === 401) return { name, status: 'fail', detail: `${config.githubApi} rejected the token (401)` };
    if (res.status === 404 || res.status === 403)
      return { name, status: 'fail', detail: `the token cannot see ${config.githubRepo} (${res.status}); it needs read access and "Commit statuses: write"` };
    if (!res.ok) return { name, status: 'fail', detail: `GET ${url} answered ${res.status}` };
    await res.body?.cancel();
    return { name, status: 'ok', detail: `token can read ${config.githubRepo} (write access to commit statuses shows on the first status)` };
  } catch (e) {
    return { name, status: 'fail', detail: `cannot reach ${config.githubApi}: ${(e as Error).message}` };
  }
}

async function checkDocker(deps: InstallCheckDeps): Promise<InstallCheck> {
  const r = await runCommand(['docker', 'version', '--format', '{{.Server.Version}}'], { env: composeEnv(deps.env), timeoutMs: deps.timeoutMs ?? 30_000 });
  if (r.code === 0) return { name: 'docker', status: 'ok', detail: `engine ${r.stdout.trim()}` };
  const why = (r.stderr.trim().split('\n').pop() ?? '') || `exit ${r.code}`;
  return { name: 'docker', status: 'fail', detail: r.code === 127 ? 'docker is not installed' : `docker engine not reachable: ${why}` };
}

async function checkCompose(config: AgentConfig, deps: InstallCheckDeps): Promise<InstallCheck> {
  try {
    const command = config.compose ?? (await detectComposeCommand({ env: deps.env }));
    const r = await runCommand([...command, 'version'], { env: composeEnv(deps.env), timeoutMs: deps.timeoutMs ?? 30_000 });
    if (r.code !== 0) return { name: 'compose', status: 'fail', detail: `\`${command.join(' ')} version\` failed (exit ${r.code})` };
    return { name: 'compose', status: 'ok', detail: `${command.join(' ')}: ${r.stdout.trim().split('\n')[0]}` };
  } catch (e) {
    return { name: 'compose', status: 'fail', detail: (e as Error).message };
  }
}

/** Writes and removes a probe file: `access()` says yes to root even on a read-only mount. */
async function checkInstallDirWritable(config: AgentConfig, root: string): Promise<InstallCheck> {
  const dir = hostPath(root, config.installDir);
  const probe = join(dir, `.flotilla-install-probe-${process.pid}`);
  try {
    await access(dir, constants.W_OK);
    await writeFile(probe, '');
    await unlink(probe);
    return { name: 'install dir', status: 'ok', detail: `${config.installDir} is writable` };
  } catch (e) {
    return { name: 'install dir', status: 'fail', detail: `${config.installDir} is not writable (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})` };
  }
}

/** The identity the agent decrypts secrets with: there, 0600, an age identity (what the agent itself will refuse otherwise). */
async function checkAgeIdentity(config: AgentConfig, root: string): Promise<InstallCheck> {
  const name = 'age identity';
  try {
    const [recipient] = await hostRecipients(hostPath(root, ageIdentityPath(config.stateDir)));
    return { name, status: 'ok', detail: `${ageIdentityPath(config.stateDir)} (mode 0600), recipient ${recipient}` };
  } catch (e) {
    return { name, status: 'fail', detail: (e as Error).message.replace(hostPath(root, ageIdentityPath(config.stateDir)), ageIdentityPath(config.stateDir)) };
  }
}

export async function runInstallChecks(config: AgentConfig, root: string, deps: InstallCheckDeps): Promise<InstallCheck[]> {
  return Promise.all([
    checkGit(config, deps),
    checkGitHubToken(config, deps),
    checkDocker(deps),
    checkCompose(config, deps),
    checkInstallDirWritable(config, root),
    checkAgeIdentity(config, root),
  ]);
}

export function formatInstallReport(report: InstallReport): string {
  const lines = ['wrote:'];
  for (const p of report.written) lines.push(`  ${p}`);
  if (report.createdDirs.length > 0) lines.push('created:', ...report.createdDirs.map((d) => `  ${d}/`));
  if (report.ageIdentity) {
    const id = report.ageIdentity;
    lines.push(`age identity: ${id.path} (${id.created ? 'created, mode 0600' : 'already there, kept'}; the private key never leaves this host)`);
    if (id.recipient) lines.push(`  recipient: ${id.recipient}`);
  }
  lines.push('checks:');
  for (const c of report.checks) lines.push(`  ${c.status.padEnd(4)} ${c.name}: ${c.detail}`);
  const failed = report.checks.filter((c) => c.status === 'fail');
  lines.push(failed.length > 0 ? `next: fix ${failed.map((c) => c.name).join(', ')}, run install again, then:` : 'next:');
  for (const s of report.nextSteps) lines.push(`  ${s}`);
  return `${lines.join('\n')}\n`;
}

export interface UninstallReport {
  removed: string[];
  /** Files and folders left in place, with why. */
  kept: Array<{ path: string; reason: string }>;
  nextSteps: string[];
}

/**
 * Removes the files the install record names (only if unchanged, unless forced),
 * the folders install created (only if empty), and the record. The install dir's
 * contents and the agent's state dir were written by the agent, not by install: kept.
 */
export async function uninstallAgent(opts: { tenant: string; root?: string; force?: boolean }): Promise<UninstallReport> {
  const root = opts.root ?? '/';
  const paths = installPaths(opts.tenant);
  const record = await readRecord(hostPath(root, paths.record));
  if (!record) throw new SettingError('--tenant', `no install record at ${paths.record}: nothing was installed for ${opts.tenant} by flotilla-agent install`);
  const report: UninstallReport = { removed: [], kept: [], nextSteps: [] };
  for (const f of record.files) {
    const target = hostPath(root, f.path);
    let text: string;
    try {
      text = await readFile(target, 'utf8');
    } catch {
      continue; // already gone
    }
    if (sha256(text) !== f.sha256 && !opts.force) {
      report.kept.push({ path: f.path, reason: 'changed since install (pass --force to remove it anyway)' });
      continue;
    }
    await rm(target, { force: true });
    report.removed.push(f.path);
  }
  for (const d of [...record.dirs].reverse()) {
    try {
      await rmdir(hostPath(root, d));
      report.removed.push(`${d}/`);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') continue;
      report.kept.push({ path: `${d}/`, reason: code === 'ENOTEMPTY' || code === 'EEXIST' ? 'not empty' : String(code) });
    }
  }
  await rm(hostPath(root, paths.record), { force: true });
  report.removed.push(paths.record);
  report.nextSteps.push('systemctl daemon-reload', `the install dir and /var/lib/flotilla/${opts.tenant} (agent state, with the host's age identity) are left as they are`);
  return report;
}

export function formatUninstallReport(report: UninstallReport): string {
  const lines = ['removed:', ...report.removed.map((p) => `  ${p}`)];
  if (report.kept.length > 0) lines.push('kept:', ...report.kept.map((k) => `  ${k.path}: ${k.reason}`));
  lines.push('next:', ...report.nextSteps.map((s) => `  ${s}`));
  return `${lines.join('\n')}\n`;
}
