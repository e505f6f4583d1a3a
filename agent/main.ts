#!/usr/bin/env node
// The `flotilla-agent` CLI and its poll loop. Commands build their dependencies
// here; errors become a message and an exit code in one place (runAgentCli).
import { realpathSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, Option } from 'commander';
import cron from 'node-cron';
import { ManifestError, SettingError } from '../renderer/core/errors.js';
import { patchEnvFile } from '../renderer/core/env-file.js';
import { fetchBranch, remoteBranchHead } from '../renderer/core/git.js';
import { MANIFEST_PATH, parseManifest } from '../renderer/core/manifest.js';
import { planApply, secretsToGenerate, sizeChange, undecidedFiles } from './apply.js';
import { listReplaced, renderReplaced } from './replaced.js';
import { composeEnv, createComposeRunner } from './compose.js';
import { flavourForPatch, hostComposeFlavour, planApplyOnHost } from './compose-flavour.js';
import { localFiles } from './local-files.js';
import { defaultAgentCommand } from './daemon-node-flags.js';
import type { ComposeRunner } from './compose-runner.js';
import { loadAgentConfig, type AgentConfig } from './config.js';
import { acquireAgentLocks } from './lock.js';
import { checkCommitSigned } from './signature-check.js';
import { exitCodeOf, isFailedPoll, reconcileOnce, type ReconcileDeps, type ReconcileOutcome } from './reconcile.js';
import { createStatusReporter, type StatusClientOptions } from './report.js';
import { createAgentLog, parseLogFormat, type LogFormat } from './log.js';
import { loadHostSecrets, type HostSecrets } from './redact.js';
// Commands and options a daemon rarely uses load their modules when used: the idle agent's memory
// is the sum of what it imports (prom-client, yaml and the installer are not needed to poll).
import type { AgentMetrics, MetricsServer } from './metrics.js';
import { readDecisions, readState, writeDecisions } from './state.js';
import { SendBudget, STATUS_BUDGET_FILE, StatusOutbox } from './status-outbox.js';
import { readCommitFiles } from '../renderer/core/git.js';
import { isEntryPoint } from '../renderer/core/entry-point.js';
import { reportCliError } from '../renderer/core/exit.js';
import { ageIdentityPath, decryptManifestSecrets } from './secrets.js';

/** What stands for a secret `once` would generate, in a plan (printed by name only). */
const GENERATED_ON_APPLY = 'generated-on-apply';

export interface AgentIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: Record<string, string | undefined>;
  /** Tests inject a recording compose runner and a fetch pointed at the GitHub stand-in. */
  compose?: ComposeRunner;
  fetch?: typeof globalThis.fetch;
  /** Retry and throttle settings of the status client (tests shorten the waits). */
  statusClient?: StatusClientOptions;
  /** Resolved when the daemon should stop (SIGTERM/SIGINT in the real process). */
  stopSignal?: AbortSignal;
  /** `--log-format` (text when unset); set by the program before an action runs. */
  logFormat?: LogFormat;
  /** Colour the text log (stderr is a TTY). */
  color?: boolean;
  /** Hides host values in an error message; set once a command has its settings. */
  redact?: (text: string) => string;
  /** Tests only: the crash hook of every pass (test/support/agent-with-crash-point.ts). */
  crashAfter?: ReconcileDeps['crashAfter'];
}


/**
 * How long the daemon waits before polling again after `failures` failed polls in a
 * row: base * 2^(failures-1), capped at max, of which a random half is kept ("equal
 * jitter") so a fleet that lost its git host does not come back in lockstep.
 */
export function pollBackoffMs(failures: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  if (failures <= 0) return 0;
  const full = Math.min(maxMs, baseMs * 2 ** Math.min(failures - 1, 30));
  return full / 2 + random() * (full / 2);
}

function logger(io: AgentIo, config: Pick<AgentConfig, 'tenant' | 'gitToken' | 'githubToken'>, host?: HostSecrets): (line: string) => void {
  const secrets = [config.gitToken, config.githubToken].filter((s): s is string => !!s);
  return createAgentLog({
    format: io.logFormat ?? 'text',
    tenant: config.tenant,
    write: io.stderr,
    color: io.color === true,
    secrets,
    ...(host ? { redact: (text: string) => host.redact(text) } : {}),
  });
}

async function configFrom(io: AgentIo, envFile: SettingsFile): Promise<AgentConfig> {
  return loadAgentConfig(envFile.path, io.env as NodeJS.ProcessEnv, { flag: envFile.flag, checkCompose: !io.compose });
}

interface SettingsFile {
  path: string | undefined;
  flag: string;
}

/** The host's redaction for this command; errors that end the command pass through it too. */
async function hostSecretsFor(io: AgentIo, config: AgentConfig): Promise<HostSecrets> {
  const host = await loadHostSecrets(config);
  io.redact = (text) => host.redact(text);
  return host;
}

function composeFor(io: AgentIo, config: AgentConfig): ComposeRunner {
  if (io.compose) return io.compose;
  return createComposeRunner({ ...(config.compose ? { command: config.compose } : {}), env: io.env });
}

/** One pass with everything wired: lock held by the caller. */
async function pass(io: AgentIo, config: AgentConfig, signal?: AbortSignal, ignoreWindow = false): Promise<ReconcileOutcome> {
  const secrets = await hostSecretsFor(io, config);
  const log = logger(io, config, secrets);
  const outbox = new StatusOutbox(join(config.stateDir, 'outbox'), {
    budget: new SendBudget({ file: join(config.stateDir, STATUS_BUDGET_FILE) }),
    log,
    redact: (text) => secrets.redact(text),
  });
  const reporter = createStatusReporter(config, outbox, log, { ...io.statusClient, ...(io.fetch ? { fetch: io.fetch } : {}) });
  await reporter.flush();
  const outcome = await reconcileOnce({
    config,
    compose: composeFor(io, config),
    report: (u) => reporter.report(u),
    log,
    ...(signal ? { signal } : {}),
    ...(ignoreWindow ? { ignoreWindow } : {}),
    hookEnv: io.env,
    secrets,
    ...(io.crashAfter ? { crashAfter: io.crashAfter } : {}),
  });
  log(`outcome: ${outcome.kind}${'description' in outcome ? `: ${outcome.description}` : ''}`);
  return outcome;
}

function parseAssignments(pairs: string[]): Record<string, string> {
  const patch: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new SettingError(pair, 'expected KEY=VALUE');
    patch[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return patch;
}

export function buildAgentProgram(io: AgentIo, setExit: (code: number) => void): Command {
  const program = new Command('flotilla-agent')
    .description('Apply a Flotilla tenant branch to this host: poll, plan, apply, run compose, report')
    .option('--settings <path>', 'agent settings file (default /etc/flotilla/agent.env)')
    // The older name: Node 20 reads `--env-file` anywhere in argv itself (and exits 9 on a missing file before the agent runs).
    .addOption(new Option('--env-file <path>').hideHelp().conflicts('settings'))
    .option('--log-format <format>', 'text (default; one line per step) or json (JSON lines)')
    .hook('preAction', () => {
      io.logFormat = parseLogFormat(program.opts<{ logFormat?: string }>().logFormat);
    })
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout(s), writeErr: (s) => io.stderr(s) });
  const envFile = (): SettingsFile => {
    const opts = program.opts<{ settings?: string; envFile?: string }>();
    return opts.envFile !== undefined ? { path: opts.envFile, flag: '--env-file' } : { path: opts.settings, flag: '--settings' };
  };

  program
    .command('once')
    .description('one poll -> plan -> apply cycle; exit 0 nothing to do, applied or waiting for a window, 3 refused, 1 failed, 2 could not run or waiting on a fault of the host')
    .option('--now', 'apply even outside the maintenance window (emergencies)')
    .action(async (opts: { now?: boolean }) => {
      const config = await configFrom(io, envFile());
      const lock = await acquireAgentLocks(config);
      try {
        setExit(exitCodeOf(await pass(io, config, io.stopSignal, opts.now === true)));
      } finally {
        await lock.release();
      }
    });

  program
    .command('run')
    .description('the daemon: poll on FLOTILLA_SCHEDULE (with jitter), one apply at a time')
    .option('--metrics <ip:port>', 'serve Prometheus metrics on http://IP:PORT/metrics (e.g. 127.0.0.1:9464)')
    .action(async (opts: { metrics?: string }) => {
      const config = await configFrom(io, envFile());
      const secrets = await hostSecretsFor(io, config);
      const log = logger(io, config, secrets);
      let metrics: AgentMetrics | undefined;
      let metricsServer: MetricsServer | undefined;
      if (opts.metrics) {
        const state = await readState(config.stateDir);
        const outbox = new StatusOutbox(join(config.stateDir, 'outbox'), { log });
        const { createAgentMetrics, serveMetrics } = await import('./metrics.js');
        metrics = createAgentMetrics({
          tenant: config.tenant,
          redact: (text) => secrets.redact(text),
          outboxLength: async () => (await outbox.pending()).length,
          ...(state.lastApplied ? { lastApplied: state.lastApplied.commit } : {}),
          ...(state.lastSuccessfulPoll ? { lastSuccessfulPoll: new Date(state.lastSuccessfulPoll) } : {}),
        });
        metricsServer = await serveMetrics(metrics, opts.metrics);
        log(`metrics: serving ${metricsServer.url}`);
      }
      const lock = await acquireAgentLocks(config);
      const stop = io.stopSignal ?? new AbortController().signal;
      let running: Promise<unknown> = Promise.resolve();
      let busy = false;
      // Consecutive passes that could not reach git (or threw): scheduled polls are
      // skipped until notBefore, so an outage costs the git host a few requests, not one a minute per host.
      let failures = 0;
      let notBefore = 0;
      const tick = async () => {
        if (busy || stop.aborted) return;
        if (Date.now() < notBefore) {
          log(`backoff: poll skipped, next one after ${new Date(notBefore).toISOString()}`);
          return;
        }
        busy = true;
        let ok = false;
        try {
          const started = performance.now();
          const outcome = await pass(io, config, stop);
          metrics?.recordPass(outcome, (performance.now() - started) / 1000);
          ok = !isFailedPoll(outcome);
        } catch (e) {
          metrics?.recordPassError();
          log(`pass failed: ${(e as Error).message}`);
        } finally {
          busy = false;
        }
        if (stop.aborted) return;
        if (ok) {
          if (failures > 0) log(`backoff: poll succeeded after ${failures} failed in a row; polling on schedule again`);
          failures = 0;
          notBefore = 0;
          return;
        }
        failures += 1;
        const delay = pollBackoffMs(failures, config.backoffSeconds * 1000, config.backoffMaxSeconds * 1000);
        notBefore = Date.now() + delay;
        log(`backoff: ${failures} failed poll(s) in a row; waiting ${(delay / 1000).toFixed(2)} s before the next`);
      };
      log(`started: ${config.branch} -> ${config.installDir}, schedule "${config.schedule}"`);
      running = tick();
      // Jittered polls not started yet; cleared on stop so the process can exit at once.
      const waiting = new Set<NodeJS.Timeout>();
      const task = cron.schedule(config.schedule, () => {
        const jitter = Math.random() * config.jitterSeconds * 1000;
        const timer = setTimeout(() => {
          waiting.delete(timer);
          running = tick();
        }, jitter);
        waiting.add(timer);
      });
      await new Promise<void>((resolve) => {
        if (stop.aborted) resolve();
        stop.addEventListener('abort', () => resolve(), { once: true });
      });
      log('stopping: finishing the current step');
      await task.stop();
      for (const timer of waiting) clearTimeout(timer);
      await running;
      await metricsServer?.close();
      await lock.release();
      log('stopped');
    });

  /** Fetches the branch head and plans it against the install dir, as `once` would; writes nothing to the install dir. */
  const planHead = async (config: AgentConfig) => {
    const secrets = await hostSecretsFor(io, config);
    const auth = config.gitToken ? { token: config.gitToken } : undefined;
    const head = await remoteBranchHead(config.repo, config.branch, auth);
    if (!head) return { secrets, head: null } as const;
    const gitdir = join(config.stateDir, 'repo.git');
    await fetchBranch(gitdir, config.repo, config.branch, { depth: 1, ...(auth ? { auth } : {}) });
    // The commit `once` would refuse is refused here too, before any of its files is read.
    const signed = config.trustedKeysFile ? await checkCommitSigned(gitdir, head, config.trustedKeysFile) : undefined;
    const commit = await readCommitFiles(gitdir, head);
    const files = new Map(commit.files.map((f) => [f.path, f.content]));
    const manifestFile = files.get(MANIFEST_PATH);
    if (!manifestFile) throw new SettingError('FLOTILLA_BRANCH', `commit ${head} has no ${MANIFEST_PATH}`);
    files.delete(MANIFEST_PATH);
    const manifest = parseManifest(manifestFile.toString('utf8'));
    secrets.noteManifest(manifest);
    const state = await readState(config.stateDir);
    // Written for the host's compose, as `once` writes it (asked only when v1 and v2 need different bytes).
    const envText = (await localFiles.readManaged(config.installDir, '.env'))?.content.toString('utf8');
    // The secrets `once` would generate count as set, as they will be; their values are never shown.
    // Centrally set secrets are decrypted as `once` decrypts them (a key that does not
    // decrypt fails the plan as it refuses the apply); their values join the patch, never the output.
    const decrypted = await decryptManifestSecrets(manifest, ageIdentityPath(config.stateDir), secrets);
    const generatedSecrets = {
      ...Object.fromEntries(secretsToGenerate(manifest, envText).map((name) => [name, GENERATED_ON_APPLY])),
      ...decrypted,
    };
    const flavour = await flavourForPatch(envText, { ...manifest.envPatch, ...generatedSecrets }, config.compose, io.env);
    const input: Parameters<typeof planApply>[0] = {
      installDir: config.installDir,
      manifest,
      files,
      generatedSecrets,
      ...(flavour ? { composeFlavour: flavour } : {}),
      ...(state.lastApplied ? { previousManifest: state.lastApplied.manifest } : {}),
      composeEnv: composeEnv(io.env),
      decisions: await readDecisions(config.stateDir),
      drift: config.drift,
    };
    // Coverage as `once` judges it: on a compose v1 host by v1's rules.
    const plan = await planApplyOnHost(input, config.compose, io.env);
    return { secrets, head, signed, state, plan } as const;
  };

  program
    .command('plan')
    .description('fetch the branch and print what would change, files Flotilla did not write with their diffs, and kept copies of replaced files; changes nothing on the host')
    .action(async () => {
      const config = await configFrom(io, envFile());
      const planned = await planHead(config);
      if (!planned.head) {
        io.stdout(`branch ${config.branch} does not exist yet\n`);
        return;
      }
      const { secrets, head, signed, state, plan } = planned;
      // The diffs show files as they are on disk, which may hold host values.
      const stdout = (text: string) => io.stdout(secrets.redact(text));
      stdout(`commit ${head}${state.lastApplied ? ` (applied: ${state.lastApplied.commit})` : ' (nothing applied yet)'}\n`);
      if (signed) stdout(`signature: ${signed}\n`);
      const { renderPlanText } = await import('./plan-text.js');
      stdout(renderPlanText(plan));
      const kept = renderReplaced(await listReplaced(config.stateDir), config.installDir);
      if (kept.length > 0) stdout(`\n${kept.join('\n')}\n`);
    });

  program
    .command('adopt')
    .description("let the next apply replace the files at managed paths that Flotilla did not write (or that changed since it did), as they are now; a copy of each is kept in the state dir")
    .action(async () => {
      const config = await configFrom(io, envFile());
      const planned = await planHead(config);
      if (!planned.head) throw new SettingError('FLOTILLA_BRANCH', `branch ${config.branch} does not exist yet: nothing to adopt`);
      const { head, plan } = planned;
      const files = undecidedFiles(plan);
      if (files.length === 0) {
        io.stdout(`nothing to decide: commit ${head.slice(0, 12)} replaces no file Flotilla did not write\n`);
        return;
      }
      const decisions = await readDecisions(config.stateDir);
      // Bound to each file's hash now: a file edited after this decision is refused again.
      decisions.adoption = { commit: head, files: Object.fromEntries(files.map((f) => [f.path, f.sha256Before!])), at: new Date().toISOString() };
      await writeDecisions(config.stateDir, decisions);
      io.stdout(
        `adopted for commit ${head.slice(0, 12)}: the next apply replaces\n${files.map((f) => `  ${f.path} (${sizeChange(f)})\n`).join('')}` +
          `and keeps a copy of each under ${join(config.stateDir, 'replaced')}/\n`,
      );
    });

  program
    .command('accept')
    .description('keep local changes to managed files: applies leave them as they are and report them, until a release changes their template')
    .argument('<paths...>', 'managed paths relative to the install dir, e.g. nginx/conf.d/api.conf')
    .action(async (paths: string[]) => {
      const config = await configFrom(io, envFile());
      const planned = await planHead(config);
      if (!planned.head) throw new SettingError('FLOTILLA_BRANCH', `branch ${config.branch} does not exist yet: nothing to accept`);
      const { head, plan } = planned;
      const decisions = await readDecisions(config.stateDir);
      const accepted = { ...decisions.accepted };
      const lines: string[] = [];
      for (const path of paths) {
        const file = plan.files.find((f) => f.path === path && f.action !== 'delete');
        if (!file) throw new ManifestError(`not a managed file of commit ${head.slice(0, 12)}`, path);
        if (file.sha256Before === undefined) throw new ManifestError('is not on this host: there is nothing to keep', path);
        if (!file.foreign) {
          lines.push(`  ${path}: what Flotilla wrote or writes; nothing to accept`);
          continue;
        }
        // The template it is accepted against: a release that changes it is refused again.
        accepted[path] = { sha256: file.sha256Before, template: file.sha256!, at: new Date().toISOString() };
        lines.push(`  ${path}: kept as it is (sha256 ${file.sha256Before.slice(0, 12)}) while releases write what commit ${head.slice(0, 12)} writes`);
      }
      decisions.accepted = accepted;
      await writeDecisions(config.stateDir, decisions);
      io.stdout(`accepted local changes:\n${lines.join('\n')}\n`);
    });

  program
    .command('env-patch')
    .description('patch KEY=VALUE pairs into an .env file in place, keeping every other byte')
    .requiredOption('--file <path>', 'the .env file')
    .option('--compose <flavour>', 'v1 (docker-compose 1.x) or v2: the compose that reads the file; default: ask the installed one when it matters')
    .argument('<pairs...>', 'KEY=VALUE')
    .action(async (pairs: string[], opts: { file: string; compose?: string }) => {
      if (opts.compose !== undefined && opts.compose !== 'v1' && opts.compose !== 'v2') {
        throw new SettingError('--compose', 'must be v1 or v2');
      }
      const compose = io.env.FLOTILLA_COMPOSE?.trim();
      const flavour = opts.compose ?? (() => hostComposeFlavour(compose ? compose.split(/\s+/) : undefined, io.env));
      const result = await patchEnvFile(opts.file, parseAssignments(pairs), flavour);
      io.stdout(
        result.written
          ? `${opts.file}: changed ${result.changed.join(', ') || 'nothing'}; added ${result.added.join(', ') || 'nothing'}\n`
          : `${opts.file}: already up to date\n`,
      );
    });

  program
    .command('env-check')
    .description('variables a compose file references and requires, and those compose would find missing with the env file (exit 1 if any)')
    .requiredOption('--compose <path>', 'compose file')
    .requiredOption('--env <path>', '.env file')
    .option('--json', 'print {"references","required","missing"}')
    .option('--flavour <flavour>', 'v1 (docker-compose 1.x) or v2: whose rules judge; default: the installed compose, asked only when v2 finds something missing')
    .action(async (opts: { compose: string; env: string; json?: boolean; flavour?: string }) => {
      if (opts.flavour !== undefined && opts.flavour !== 'v1' && opts.flavour !== 'v2') throw new SettingError('--flavour', 'must be v1 or v2');
      const { envCheck, formatEnvCheck } = await import('./env-check.js');
      let result = await envCheck(opts.compose, opts.env, io.env, opts.flavour ?? 'v2');
      if (opts.flavour === undefined && result.missing.length > 0) {
        const command = io.env.FLOTILLA_COMPOSE?.trim();
        if ((await hostComposeFlavour(command ? command.split(/\s+/) : undefined, io.env)) === 'v1') result = await envCheck(opts.compose, opts.env, io.env, 'v1');
      }
      io.stdout(`${formatEnvCheck(result, opts.json === true)}\n`);
      if (result.missing.length > 0) setExit(1);
    });

  program
    .command('keygen')
    .description(
      "create this host's age identity for secrets set with `flotilla secret set` (<state dir>/age-identity.txt, mode 0600; the private key never leaves the host) and print its public recipient; never overwrites one",
    )
    .option('--state-dir <dir>', 'the agent state dir (default: FLOTILLA_STATE_DIR from the settings, or /var/lib/flotilla/<tenant>)')
    .option('--show', 'print the recipient of the existing identity instead of creating one')
    .action(async (opts: { stateDir?: string; show?: boolean }) => {
      const { ageIdentityPath, createHostIdentity, hostRecipients } = await import('./secrets.js');
      const settings = envFile();
      const stateDir = opts.stateDir !== undefined
        ? resolve(opts.stateDir)
        : (await loadAgentConfig(settings.path, io.env as NodeJS.ProcessEnv, { flag: settings.flag, checkCompose: false })).stateDir;
      const path = ageIdentityPath(stateDir);
      if (opts.show) {
        io.stdout(`${(await hostRecipients(path)).join('\n')}\n`);
        return;
      }
      io.stdout(`${await createHostIdentity(path)}\n`);
      io.stderr(`flotilla-agent keygen: created ${path} (mode 0600; the private key never leaves this host); add the recipient above to ageRecipients in fleet/tenants/<tenant>.yaml\n`);
    });

  program
    .command('install')
    .description('set this host up: env file (0600) + systemd unit, then check git, tokens, docker, compose and the install dir; tokens come from FLOTILLA_GIT_TOKEN / FLOTILLA_GITHUB_TOKEN')
    .requiredOption('--repo <url>', 'fleet git repository (http/https)')
    .requiredOption('--tenant <slug>', 'the tenant this host runs')
    .requiredOption('--dir <path>', 'install directory (FLOTILLA_DIR)')
    .option('--root <dir>', 'prefix for every path written (tests, image builds)', '/')
    .option('--set <KEY=VALUE...>', 'another FLOTILLA_* setting for the env file, e.g. FLOTILLA_SCHEDULE=*/5 * * * *')
    .option('--agent-command <command>', 'how systemd starts the agent (default: this node and this script)')
    .option('--metrics <ip:port>', 'have the daemon serve Prometheus metrics there')
    .option('--json-logs', 'have the daemon log JSON lines')
    .option('--force', 'overwrite an env file or unit that install did not write')
    .action(async (opts: { repo: string; tenant: string; dir: string; root: string; set?: string[]; agentCommand?: string; metrics?: string; jsonLogs?: boolean; force?: boolean }) => {
      const runArgs = [...(opts.metrics ? ['--metrics', opts.metrics] : []), ...(opts.jsonLogs ? ['--log-format', 'json'] : [])];
      const { formatInstallReport, installAgent, runInstallChecks } = await import('./install.js');
      const result = await installAgent({
        repo: opts.repo,
        tenant: opts.tenant,
        dir: opts.dir,
        root: resolve(opts.root),
        settings: parseAssignments(opts.set ?? []),
        agentCommand: opts.agentCommand
          ? opts.agentCommand.trim().split(/\s+/)
          : defaultAgentCommand(process.execPath, realpathSync(process.argv[1] ?? 'flotilla-agent')),
        ...(runArgs.length ? { runArgs } : {}),
        ...(io.env.FLOTILLA_GIT_TOKEN ? { gitToken: io.env.FLOTILLA_GIT_TOKEN } : {}),
        ...(io.env.FLOTILLA_GITHUB_TOKEN ? { githubToken: io.env.FLOTILLA_GITHUB_TOKEN } : {}),
        ...(opts.force ? { force: true } : {}),
      });
      const checks = await runInstallChecks(result.config, resolve(opts.root), { env: io.env, ...(io.fetch ? { fetch: io.fetch } : {}) });
      io.stdout(formatInstallReport({ ...result, checks }));
      if (checks.some((c) => c.status === 'fail')) setExit(1);
    });

  program
    .command('uninstall')
    .description('remove what `install` wrote (env file, unit, record) and nothing else; stop the unit first (systemctl disable --now)')
    .requiredOption('--tenant <slug>', 'the tenant given to install')
    .option('--root <dir>', 'the prefix given to install', '/')
    .option('--force', 'remove files even when they changed since install')
    .action(async (opts: { tenant: string; root: string; force?: boolean }) => {
      const { formatUninstallReport, uninstallAgent } = await import('./install.js');
      io.stdout(formatUninstallReport(await uninstallAgent({ tenant: opts.tenant, root: resolve(opts.root), ...(opts.force ? { force: true } : {}) })));
    });

  return program;
}

/** Runs the agent CLI with arguments (without node and script); returns the exit code. */
export async function runAgentCli(argv: string[], io: AgentIo): Promise<number> {
  let code = 0;
  try {
    await buildAgentProgram(io, (c) => (code = c)).parseAsync(argv, { from: 'user' });
    return code;
  } catch (error) {
    return reportCliError('flotilla-agent', error, io.stderr, io.redact);
  }
}

/**
 * The agent as a process: stdout, stderr, the environment, SIGTERM/SIGINT as the stop
 * signal; sets the exit code. `extra` is for test entry points (a crash hook).
 */
export async function runAgentProcess(argv: string[], extra: Pick<AgentIo, 'crashAfter'> = {}): Promise<void> {
  const stop = new AbortController();
  process.on('SIGTERM', () => stop.abort());
  process.on('SIGINT', () => stop.abort());
  const code = await runAgentCli(argv, {
    stdout: (s) => void process.stdout.write(s),
    stderr: (s) => void process.stderr.write(s),
    env: process.env,
    stopSignal: stop.signal,
    color: process.stderr.isTTY === true,
    ...extra,
  });
  process.exitCode = code;
}

if (isEntryPoint(import.meta.url)) await runAgentProcess(process.argv.slice(2));
