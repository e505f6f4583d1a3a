// One reconcile pass, as the list of steps DESIGN.md gives:
//   recover -> detect -> fetch -> verify -> plan -> stage -> config -> pull
//   -> journal + backup + swap -> env patch -> up -> verify health -> record -> report.
// Every step before the swap changes nothing on the host; every failure after it
// restores the backup and brings the old stack back up.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { access, rm } from 'node:fs/promises';
import {
  ApplyRefusedError,
  ComposeStepError,
  FlotillaError,
  GitError,
  HookFailedError,
  ManifestError,
  UnsafePathError,
} from '../renderer/core/errors.js';
import {
  fetchBranch,
  fetchHistory,
  hasObject,
  isAncestor,
  nodeGitDepsWithTimeout,
  readCommitFiles,
  remoteBranchHead,
  sourceTrailer,
  type GitAuth,
  type GitDeps,
} from '../renderer/core/git.js';
import { MANIFEST_PATH, parseManifest, type Manifest } from '../renderer/core/manifest.js';
import { checkCommitSigned } from './signature-check.js';
import { anyWindowOpen, parseWindows, waitingForWindowDescription } from '../renderer/core/window.js';
import type { CommitState } from '../renderer/core/github.js';
import {
  backupAndSwap,
  detectDrift,
  foreignKept,
  ForeignFilesRefusedError,
  patchInstalledEnv,
  planApply,
  restoreBackup,
  secretsToGenerate,
  stageApply,
  stagingDirFor,
  startApplyJournal,
  undecidedFiles,
  type ApplyPlan,
  type DriftedFile,
} from './apply.js';
import { discardReplacedSet, keepReplacedFiles, type ReplacedSet } from './replaced.js';
import type { ComposeRunner, ComposeTarget } from './compose-runner.js';
import { composeEnv, detectComposeCommand, waitHealthy } from './compose.js';
import { flavourForPatch, planApplyOnHost } from './compose-flavour.js';
import { hostFaultOf } from './host-fault.js';
import { runHooks, type HookPhase } from './hooks.js';
import type { AgentConfig } from './config.js';
import { finishJournal, recoverFromJournal, setPhase, type Journal } from './journal.js';
import { localFiles, type LocalFiles } from './local-files.js';
import { readDecisions, readState, writeState, type AgentState, type DriftReport, type HostDecisions } from './state.js';
import type { HostSecrets } from './redact.js';

/** Where a status goes: the tenant commit and, when known, the source commit it was rendered from. */
export interface StatusUpdate {
  tenantCommit: string;
  sourceCommit?: string;
  state: CommitState;
  description: string;
  /**
   * `drift`: the status goes to `<context>/drift` instead, which the rollout's wave
   * rules never read: a hand edit on one host is reported where people look without
   * halting a rollout that is otherwise healthy.
   */
  context?: 'drift';
}

export interface ReconcileDeps {
  config: AgentConfig;
  compose: ComposeRunner;
  /** Queues the status durably and tries to deliver it; never throws for delivery problems. */
  report: (update: StatusUpdate) => Promise<void>;
  log: (line: string) => void;
  /** Set by SIGTERM: steps before the swap are abandoned cleanly, steps after it run to the end. */
  signal?: AbortSignal;
  healthPollMs?: number;
  /** Generates a secret value; URL-safe, at least 32 bytes of randomness. */
  generateSecret?: () => string;
  now?: () => Date;
  /** `--now`: apply even outside the maintenance windows (emergencies). */
  ignoreWindow?: boolean;
  /** Where hooks take compose's allow-listed variables from (DOCKER_HOST...); default process.env. */
  hookEnv?: Record<string, string | undefined>;
  /** What `compose` in a hook stands for; default FLOTILLA_COMPOSE, else detected as the runner does. */
  composeCommand?: string[];
  /** Told each manifest read and each secret generated; hides host values in hook logs (main.ts wires it to the log and outbox too). */
  secrets?: Pick<HostSecrets, 'noteManifest' | 'remember' | 'redact'>;
}

export type ReconcileOutcome =
  | { kind: 'noop'; commit: string | null; drift: DriftedFile[] }
  | { kind: 'applied'; commit: string; description: string }
  | { kind: 'refused'; commit: string; description: string; missing: string[] }
  | { kind: 'failed'; commit: string; step: string; description: string }
  | { kind: 'error'; description: string };

/** Exit codes of `flotilla-agent once`, one per outcome. */
export const OUTCOME_EXIT_CODES: Record<ReconcileOutcome['kind'], number> = {
  noop: 0,
  applied: 0,
  refused: 3,
  failed: 1,
  error: 2,
};

class AbandonedError extends FlotillaError {
  readonly code = 'ABANDONED';
  constructor(readonly step: string) {
    super(`stopped before ${step} (agent shutting down); nothing was changed`);
  }
}

export function defaultSecret(): string {
  return randomBytes(32).toString('base64url');
}

/** The environment variable of the crash test hook; see crashPointForTests. */
export const TEST_CRASH_VARIABLE = 'FLOTILLA_TEST_CRASH_AFTER';

/** Every step after which the crash test hook can kill the agent, in apply order. */
export const CRASH_POINTS = ['stage', 'pull', 'mid-swap', 'swap', 'env-patch', 'up', 'health', 'record'] as const;
export type CrashPoint = (typeof CRASH_POINTS)[number];

/**
 * Test hook only: with FLOTILLA_TEST_CRASH_AFTER=<step> (one of CRASH_POINTS) the
 * process kills itself with SIGKILL right after that step, as a power cut would, so the
 * recovery path can be shown on the real CLI. `mid-swap` fires after the first file of
 * the install dir is replaced; `health` once the stack is verified but before the state
 * is recorded. Never set in production.
 */
function crashPointForTests(step: CrashPoint): void {
  if (process.env[TEST_CRASH_VARIABLE] === step) process.kill(process.pid, 'SIGKILL');
}

/** The file access of the swap, with the `mid-swap` crash hook when it is set. */
function swapFilesForTests(installDir: string): LocalFiles {
  if (process.env[TEST_CRASH_VARIABLE] !== 'mid-swap') return localFiles;
  return {
    ...localFiles,
    async writeManaged(root, relPath, content, mode) {
      await localFiles.writeManaged(root, relPath, content, mode);
      if (root === installDir) crashPointForTests('mid-swap');
    },
  };
}

/** Git over HTTP with every request bounded by the configured timeout. */
function gitDepsOf(config: AgentConfig): GitDeps {
  return nodeGitDepsWithTimeout(config.gitTimeoutSeconds * 1000);
}

const COMPOSE_FILE_NAMES = ['compose.yaml', 'compose.yml', 'docker-compose.yml', 'docker-compose.yaml'];

async function hasComposeFile(dir: string): Promise<boolean> {
  for (const name of COMPOSE_FILE_NAMES) {
    if (await access(join(dir, name)).then(() => true, () => false)) return true;
  }
  return false;
}

function gitdirOf(config: AgentConfig): string {
  return join(config.stateDir, 'repo.git');
}

function gitAuth(config: AgentConfig): GitAuth | undefined {
  return config.gitToken ? { token: config.gitToken } : undefined;
}

function installTarget(config: AgentConfig): ComposeTarget {
  return { dir: config.installDir, project: config.composeProject };
}

function lastLine(text: string): string {
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  return lines[lines.length - 1] ?? text;
}

/** A status description under GitHub's 140 characters that says what happened. */
function describeFailure(step: string, err: unknown): string {
  if (err instanceof HookFailedError) return err.message;
  if (err instanceof ComposeStepError) return `${step} failed: ${lastLine(err.outputTail) || 'compose exited non-zero'}`;
  return `${step} failed: ${err instanceof Error ? err.message : String(err)}`;
}

/** `1800` -> `30m`, `90` -> `90s`, `7200` -> `2h`. */
function formatSeconds(seconds: number): string {
  if (seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds % 60 === 0) return `${seconds / 60}m`;
  return `${seconds}s`;
}

function redactIfAble(deps: ReconcileDeps, text: string): string {
  return deps.secrets ? deps.secrets.redact(text) : text;
}

/** Runs one phase's hooks of a manifest in the install dir; throws HookFailedError. */
async function runManifestHooks(deps: ReconcileDeps, phase: HookPhase, manifest: Manifest): Promise<void> {
  const hooks = manifest.hooks?.[phase] ?? [];
  if (hooks.length === 0) return;
  const { config } = deps;
  const env = deps.hookEnv ?? process.env;
  await runHooks(phase, hooks, {
    stateDir: config.stateDir,
    dir: config.installDir,
    project: config.composeProject,
    env,
    log: deps.log,
    ...(deps.secrets ? { redact: (text: string) => deps.secrets!.redact(text) } : {}),
    composeCommand: async () => deps.composeCommand ?? config.compose ?? (await detectComposeCommand({ env })),
    ...(deps.now ? { now: deps.now } : {}),
  });
}

interface FetchedCommit {
  commit: string;
  sourceCommit?: string;
  manifest: Manifest;
  files: Map<string, Buffer>;
}

/** Reads a fetched tenant commit and its manifest; the tree is checked against the manifest later, in planApply. */
async function readTenantCommit(config: AgentConfig, commit: string): Promise<FetchedCommit> {
  const read = await readCommitFiles(gitdirOf(config), commit);
  const files = new Map(read.files.map((f) => [f.path, f.content]));
  const manifestText = files.get(MANIFEST_PATH);
  if (!manifestText) throw new ManifestError(`commit ${commit} has no ${MANIFEST_PATH}`);
  const manifest = parseManifest(manifestText.toString('utf8'));
  if (manifest.tenant !== config.tenant)
    throw new ManifestError(`commit ${commit} is for tenant ${manifest.tenant}, this host is ${config.tenant}`);
  files.delete(MANIFEST_PATH);
  const fetched: FetchedCommit = { commit, manifest, files };
  const source = sourceTrailer(read.message) ?? undefined;
  if (source) fetched.sourceCommit = source;
  return fetched;
}

/** Fast-forward check: the new commit must descend from the last applied one (deepening the shallow fetch as needed). */
async function checkFastForward(deps: ReconcileDeps, from: string, to: string): Promise<boolean> {
  const { config } = deps;
  for (const depth of [2, 20, 200]) {
    try {
      return await isAncestor(gitdirOf(config), from, to);
    } catch (e) {
      if (!(e instanceof GitError)) throw e;
      // Commits only: a blob refused in a skipped commit must not be fetched again here.
      await fetchHistory(gitdirOf(config), config.repo, config.branch, { depth, auth: gitAuth(config) }, gitDepsOf(config));
    }
  }
  try {
    return await isAncestor(gitdirOf(config), from, to);
  } catch (e) {
    if (e instanceof GitError) return false;
    throw e;
  }
}

/** Drifted files the operator accepted (`flotilla-agent accept`) for what this commit wrote, and the others. */
function splitAccepted(drift: DriftedFile[], decisions: HostDecisions): { accepted: DriftedFile[]; unaccepted: DriftedFile[] } {
  const isAccepted = (d: DriftedFile) => {
    const a = decisions.accepted?.[d.path];
    return d.state === 'modified' && a !== undefined && a.sha256 === d.actualSha256 && a.template === d.expectedSha256;
  };
  return { accepted: drift.filter(isAccepted), unaccepted: drift.filter((d) => !isAccepted(d)) };
}

const NO_DRIFT = 'no local changes';

/**
 * Posts the drift of an applied commit as `<context>/drift`, once per change of what
 * it says (a status every poll would run into GitHub's 1,000 per commit and context):
 * `failure` naming local changes nobody accepted, `success` naming the accepted ones,
 * `success` once they are gone. A commit that never drifted gets no drift status.
 */
async function reportDrift(deps: ReconcileDeps, state: AgentState, commit: string, unaccepted: DriftedFile[], accepted: string[]): Promise<void> {
  let next: DriftReport | undefined;
  if (unaccepted.length > 0) {
    const names = unaccepted.map((d) => `${d.path} (${d.state})`).join(', ');
    next = { commit, state: 'failure', description: `${unaccepted.length} local change${unaccepted.length === 1 ? '' : 's'}: ${names}; see \`flotilla-agent plan\`` };
  } else if (accepted.length > 0) {
    next = { commit, state: 'success', description: `kept local changes (accepted on the host): ${accepted.join(', ')}` };
  } else if (state.driftReport?.commit === commit) {
    next = { commit, state: 'success', description: NO_DRIFT };
  }
  const last = state.driftReport;
  if (!next || (last && last.commit === next.commit && last.state === next.state && last.description === next.description)) return;
  state.driftReport = next;
  deps.log(`drift status: ${next.state}: ${next.description}`);
  await deps.report({ tenantCommit: commit, state: next.state, description: next.description, context: 'drift' });
}

/** One poll -> plan -> apply cycle. Never throws for a problem it can report; the outcome says what happened. */
export async function reconcileOnce(deps: ReconcileDeps): Promise<ReconcileOutcome> {
  const { config, log } = deps;
  const now = deps.now ?? (() => new Date());
  let state: AgentState;
  try {
    state = await readState(config.stateDir);
    state = await recover(deps, state);
  } catch (e) {
    return { kind: 'error', description: `recovery failed: ${(e as Error).message}` };
  }

  // detect: one protocol v2 ls-refs for the branch.
  let head: string | null;
  try {
    head = await remoteBranchHead(config.repo, config.branch, gitAuth(config), gitDepsOf(config));
  } catch (e) {
    log(`detect: ${(e as Error).message}`);
    return { kind: 'error', description: `git unreachable: ${(e as Error).message}` };
  }
  state.lastSuccessfulPoll = now().toISOString();
  if (head === null) {
    await writeState(config.stateDir, state);
    log(`detect: branch ${config.branch} does not exist yet`);
    return { kind: 'noop', commit: null, drift: [] };
  }

  if (head === state.lastApplied?.commit) {
    let drift: DriftedFile[];
    let decisions: HostDecisions;
    try {
      drift = await detectDrift(config.installDir, state.lastApplied.manifest);
      decisions = await readDecisions(config.stateDir);
    } catch (e) {
      await writeState(config.stateDir, state);
      return { kind: 'error', description: `drift check failed: ${(e as Error).message}` };
    }
    const { accepted, unaccepted } = splitAccepted(drift, decisions);
    if (drift.length > 0) {
      log(`drift: ${drift.map((d) => `${d.path} ${d.state}${accepted.includes(d) ? ' (accepted on this host)' : ''}`).join(', ')}`);
      if (config.drift === 'heal' && unaccepted.length > 0) {
        await writeState(config.stateDir, state);
        return apply(deps, state, head, { heal: true });
      }
    }
    await reportDrift(deps, state, head, unaccepted, accepted.map((d) => d.path));
    await writeState(config.stateDir, state);
    return { kind: 'noop', commit: head, drift };
  }
  // A commit that failed after the swap is not retried until the branch moves: retrying
  // would take the stack down and up again every poll. Pre-swap failures (a registry
  // down, a tag not pushed yet) are retried. A refusal for missing variables is
  // re-planned, because the operator fixes it on the host by editing `.env`; a history
  // rewrite once the operator allows non-fast-forwards. Retries are quiet: the commit
  // already shows the failure, and a status every poll would flap the PR and run into
  // GitHub's cap of 1,000 statuses per commit and context.
  const attempt = state.lastAttempt?.commit === head ? state.lastAttempt : undefined;
  // So is a refusal to replace files nobody decided about: the decision is taken on the
  // host (`flotilla-agent adopt` / `accept`, or the file put back by hand) as well as in the fleet.
  const retry =
    attempt?.outcome === 'failed' ||
    (attempt?.outcome === 'refused' && (attempt.missing?.length || attempt.undecided?.length || config.allowNonFastForward));
  if (attempt && attempt.outcome !== 'applied' && !retry) {
    await writeState(config.stateDir, state);
    return { kind: 'noop', commit: head, drift: [] };
  }
  await writeState(config.stateDir, state);
  return apply(deps, state, head, { heal: false, ...(retry ? { quietUnless: attempt.description } : {}) });
}

async function apply(
  deps: ReconcileDeps,
  state: AgentState,
  head: string,
  /** quietUnless: a retry; no pending until it gets past pull, no status while it fails the same way. */
  opts: { heal: boolean; quietUnless?: string },
): Promise<ReconcileOutcome> {
  const { config, compose, log } = deps;
  const now = deps.now ?? (() => new Date());
  const target = installTarget(config);
  let fetched: FetchedCommit | undefined;
  let step = 'fetch';
  const checkpoint = (next: string) => {
    step = next;
    if (deps.signal?.aborted) throw new AbandonedError(next);
    log(`${next}: ${head.slice(0, 12)}`);
  };
  const record = async (
    outcome: 'applied' | 'refused' | 'failed' | 'held',
    description: string,
    missing?: string[],
    undecided?: string[],
    hostFault?: AgentState['hostFault'],
  ) => {
    // A fault of the host's is timed from its first poll on this commit; anything else ends it.
    state.hostFault = hostFault;
    state.lastAttempt = {
      commit: head,
      outcome,
      description,
      at: now().toISOString(),
      ...(missing?.length ? { missing } : {}),
      ...(undecided?.length ? { undecided } : {}),
    };
    await writeState(config.stateDir, state);
  };
  const report = async (stateName: CommitState, description: string) => {
    const update: StatusUpdate = { tenantCommit: head, state: stateName, description };
    if (fetched?.sourceCommit) update.sourceCommit = fetched.sourceCommit;
    await deps.report(update);
  };

  let journal: Journal | undefined;
  let plan: ApplyPlan | undefined;
  let replacedSet: ReplacedSet | undefined;
  try {
    checkpoint('fetch');
    // A commit fetched by an earlier pass (a retry, a heal) is not fetched again.
    if (!(await hasObject(gitdirOf(config), head).catch(() => false)))
      await fetchBranch(gitdirOf(config), config.repo, config.branch, { depth: 1, auth: gitAuth(config) }, gitDepsOf(config));
    checkpoint('verify');
    const from = state.lastApplied?.commit;
    if (from && from !== head && !config.allowNonFastForward && !(await checkFastForward(deps, from, head))) {
      throw new ApplyRefusedError(`${head.slice(0, 12)} does not descend from the applied ${from.slice(0, 12)} (history rewritten)`);
    }
    if (config.trustedKeysFile) log(`verify: ${await checkCommitSigned(gitdirOf(config), head, config.trustedKeysFile)}`);
    fetched = await readTenantCommit(config, head);
    deps.secrets?.noteManifest(fetched.manifest);
    // Outside every maintenance window the commit waits, fetched and verified; a heal restores
    // what was already applied, so it does not wait. Recorded as a pre-swap failure so each
    // poll checks again, quietly while the description stays the same.
    // The host's own FLOTILLA_WINDOW wins over the window the fleet declares for the tenant.
    const windows = config.windows ?? parseWindows(fetched.manifest.windows ?? []);
    if (!opts.heal && !deps.ignoreWindow && !anyWindowOpen(windows, now())) {
      const description = waitingForWindowDescription(windows, now());
      if (description !== opts.quietUnless) {
        log(description);
        await record('failed', description);
        await report('pending', description);
      }
      return { kind: 'noop', commit: head, drift: [] };
    }
    const pending = `applying ${fetched.manifest.imageTag}`;
    if (opts.quietUnless === undefined) await report('pending', pending);

    checkpoint('plan');
    const envFile = await localFiles.readManaged(config.installDir, '.env');
    const envText = envFile?.content.toString('utf8');
    const generate = deps.generateSecret ?? defaultSecret;
    const generatedSecrets = Object.fromEntries(secretsToGenerate(fetched.manifest, envText).map((name) => [name, generate()]));
    deps.secrets?.remember(Object.values(generatedSecrets));
    const input: Parameters<typeof planApply>[0] = {
      installDir: config.installDir,
      manifest: fetched.manifest,
      files: fetched.files,
      generatedSecrets,
      composeEnv: composeEnv(deps.hookEnv ?? process.env),
      decisions: await readDecisions(config.stateDir),
      drift: config.drift,
    };
    if (state.lastApplied) input.previousManifest = state.lastApplied.manifest;
    if (envText !== undefined) input.envText = envText;
    // Most patches are written the same for compose v1 and v2; only when this one is not is compose asked which it is.
    const flavour = await flavourForPatch(envText, { ...fetched.manifest.envPatch, ...generatedSecrets }, deps.composeCommand ?? config.compose, deps.hookEnv ?? process.env);
    if (flavour) input.composeFlavour = flavour;
    plan = await planApplyOnHost(input, deps.composeCommand ?? config.compose, deps.hookEnv ?? process.env);
    for (const kept of plan.kept) log(`plan: keeping ${kept.path}: ${kept.reason}`);
    for (const file of plan.files.filter((f) => f.foreign)) {
      const f = file.foreign!;
      const what = f.kind === 'unowned' ? 'not written by Flotilla' : 'changed on this host since Flotilla wrote it';
      const decided = f.decision === 'undecided' ? `no decision${f.note ? ` (${f.note})` : ''}` : `${f.decision === 'keep' ? 'kept' : 'replaced, a copy kept'} (decided by ${f.by})`;
      log(`plan: ${file.path}: ${what}; ${decided}`);
    }
    const undecided = undecidedFiles(plan);
    if (undecided.length > 0) throw new ForeignFilesRefusedError(undecided);
    if (plan.coverage.missing.length > 0) {
      throw new ApplyRefusedError(`missing ${plan.coverage.missing.join(', ')}`, plan.coverage.missing);
    }
    const changes = plan.files.filter((f) => f.action !== 'none').map((f) => `${f.status} ${f.path}`);
    log(`plan: ${changes.length ? changes.join(', ') : 'no file changes'}; env ${[...plan.env.changed, ...plan.env.added].join(', ') || 'unchanged'}`);

    checkpoint('stage');
    const staging = await stageApply(plan, stagingDirFor(config.installDir));
    crashPointForTests('stage');
    const staged: ComposeTarget = { dir: staging, project: config.composeProject };
    checkpoint('config');
    await compose.config(staged);
    const stagedServices = await compose.declaredServices?.(staged);
    checkpoint('pull');
    await compose.pull(staged);
    crashPointForTests('pull');
    // Pre-swap hooks see the stack as it is now (a dump captures the data before the change).
    const preSwap = fetched.manifest.hooks?.preSwap ?? [];
    if (preSwap.length > 0) {
      if (await hasComposeFile(config.installDir)) {
        checkpoint('pre-swap hooks');
        await runManifestHooks(deps, 'preSwap', fetched.manifest);
      } else {
        log(`pre-swap hooks: skipped ${preSwap.map((h) => h.name).join(', ')}: no stack installed yet, nothing to run them against`);
      }
    }

    if (opts.quietUnless !== undefined) await report('pending', pending);
    // From here on the host changes; a shutdown request waits until the apply is finished or rolled back.
    step = 'swap';
    log(`swap: ${head.slice(0, 12)}`);
    replacedSet = await keepReplacedFiles(plan, { stateDir: config.stateDir, commit: head, at: now() });
    if (replacedSet) log(`keep: ${replacedSet.files.map((f) => f.path).join(', ')} copied to ${replacedSet.dir} before the swap replaces them`);
    journal = await startApplyJournal(plan, { stateDir: config.stateDir, targetCommit: head, ...(state.lastApplied ? { fromCommit: state.lastApplied.commit } : {}), stagingDir: staging });
    if (stagedServices) journal.record.services = stagedServices;
    await backupAndSwap(plan, journal, swapFilesForTests(journal.record.installDir));
    crashPointForTests('swap');
    step = 'env patch';
    const env = await patchInstalledEnv(plan, journal);
    // Names only: the values may be host secrets.
    log(`env patch: changed ${env.changed.join(', ') || 'none'}; added ${env.added.join(', ') || 'none'}`);
    crashPointForTests('env-patch');
    step = 'up';
    log(`up: ${head.slice(0, 12)}`);
    await compose.up(target);
    // Only services an earlier Flotilla apply brought up are removed once the files drop them.
    const dropped = stagedServices ? (state.services ?? []).filter((s) => !stagedServices.includes(s)) : [];
    if (dropped.length > 0 && compose.removeServiceContainers) {
      const removed = await compose.removeServiceContainers(target, dropped);
      log(`up: removed ${removed.join(', ') || 'no containers'} of ${dropped.join(', ')}, which this release no longer declares`);
    }
    await setPhase(journal, 'up');
    crashPointForTests('up');
    step = 'health';
    const health = await waitHealthy(compose, target, { timeoutMs: config.healthTimeoutSeconds * 1000, pollMs: deps.healthPollMs ?? 1000, expectedServices: await compose.expectedServices?.(target) });
    if (!health.ok) throw new ComposeStepError('health', health.detail);
    // Before `verified`: a crash during a post-up hook finishes the apply on restart, hooks included.
    step = 'post-up hooks';
    await runManifestHooks(deps, 'postUp', fetched.manifest);
    await setPhase(journal, 'verified');
    crashPointForTests('health');

    const description = `${fetched.manifest.imageTag} up, ${health.detail}${opts.heal ? ' (drift healed)' : ''}`;
    const applied: NonNullable<AgentState['lastApplied']> = { commit: head, manifest: fetched.manifest, appliedAt: now().toISOString() };
    if (fetched.sourceCommit) applied.sourceCommit = fetched.sourceCommit;
    state.lastApplied = applied;
    if (stagedServices) state.services = stagedServices;
    const kept = foreignKept(plan).map((f) => f.path);
    if (kept.length > 0) log(`kept local changes (accepted on this host): ${kept.join(', ')}`);
    await reportDrift(deps, state, head, [], kept);
    await record('applied', description);
    crashPointForTests('record');
    await finishJournal(journal);
    log(`verified: ${description}`);
    await report('success', description);
    return { kind: 'applied', commit: head, description };
  } catch (err) {
    if (err instanceof AbandonedError) {
      await rm(stagingDirFor(config.installDir), { recursive: true, force: true });
      log(err.message);
      return { kind: 'error', description: err.message };
    }
    if (err instanceof HookFailedError && err.phase === 'pre-swap') {
      // Refused with nothing changed, but retried next poll (quietly while it fails the
      // same way): the operator fixes a failing dump on the host, not in the fleet repo.
      const description = `refused: ${err.message}`;
      await rm(stagingDirFor(config.installDir), { recursive: true, force: true }).catch(() => undefined);
      if (description === opts.quietUnless) {
        log(`${description} (unchanged since the last poll)`);
        return { kind: 'refused', commit: head, description, missing: [] };
      }
      log(description);
      await record('failed', description);
      await report('failure', description);
      return { kind: 'refused', commit: head, description, missing: [] };
    }
    if (err instanceof ApplyRefusedError) {
      const description = err.message;
      await rm(stagingDirFor(config.installDir), { recursive: true, force: true }).catch(() => undefined);
      if (description === opts.quietUnless) {
        log(`${description} (unchanged since the last poll)`);
        return { kind: 'refused', commit: head, description, missing: err.missing };
      }
      log(description);
      await record('refused', description, err.missing, err instanceof ForeignFilesRefusedError ? err.paths : undefined);
      await report('failure', description);
      return { kind: 'refused', commit: head, description, missing: err.missing };
    }
    // The commit's own content cannot be read safely (a hostile tree or manifest): refused, not retried.
    if (!journal && (err instanceof ManifestError || err instanceof UnsafePathError || (err instanceof GitError && err.operation.startsWith('read ')))) {
      const description = redactIfAble(deps, `refused: ${(err as Error).message}`);
      log(description);
      await record('refused', description);
      await report('failure', description);
      return { kind: 'refused', commit: head, description, missing: [] };
    }
    const hostFault = journal ? undefined : hostFaultOf(step, err);
    if (hostFault) {
      await rm(stagingDirFor(config.installDir), { recursive: true, force: true }).catch(() => undefined);
      const since = state.hostFault?.commit === head ? state.hostFault.since : now().toISOString();
      const detail = redactIfAble(deps, describeFailure(step, err));
      const timeout = config.hostFaultTimeoutSeconds;
      const overdue = now().getTime() - Date.parse(since) >= timeout * 1000;
      // What the fault is and whose comes first: GitHub keeps 140 characters of a status.
      const description = overdue
        ? `${hostFault} for over ${formatSeconds(timeout)}, a problem on this host, not in the commit: ${detail}`
        : `waiting: ${hostFault}, a problem on this host, not in the commit; retrying: ${detail}`;
      await record('failed', description, undefined, undefined, { commit: head, since });
      if (description === opts.quietUnless) log(`${description} (unchanged since the last poll)`);
      else {
        log(description);
        await report(overdue ? 'failure' : 'pending', description);
      }
      return overdue ? { kind: 'failed', commit: head, step, description } : { kind: 'error', description };
    }
    let description = describeFailure(step, err);
    if (journal) {
      try {
        description = `${description}; ${await rollBack(deps, journal)}`;
        // The replaced files are back in place: the copies would claim a replacement that did not happen.
        if (replacedSet) await discardReplacedSet(config.stateDir, replacedSet);
      } catch (rollbackErr) {
        description = `${describeFailure(step, err)}; ROLLBACK FAILED: ${(rollbackErr as Error).message}`;
      }
    } else {
      await rm(stagingDirFor(config.installDir), { recursive: true, force: true }).catch(() => undefined);
    }
    // Compose quotes values it cannot use; the state keeps the text too, so retries compare like with like.
    description = redactIfAble(deps, description);
    log(description);
    // Failures before the swap (fetch, pull...) are retried next poll; after it, only a new commit is tried.
    await record(journal ? 'held' : 'failed', description);
    if (err instanceof GitError && !fetched) return { kind: 'error', description };
    if (!journal && description === opts.quietUnless) {
      log('(the same failure as on the last poll; status unchanged)');
      return { kind: 'failed', commit: head, step, description };
    }
    await report('failure', description);
    return { kind: 'failed', commit: head, step, description };
  }
}

/**
 * Puts the previous files back and brings the previous stack up again, waiting for it
 * to be healthy so the status says what is running now. Returns that, for the status.
 */
async function rollBack(deps: ReconcileDeps, journal: Journal): Promise<string> {
  const restored = await restoreBackup(journal);
  deps.log(`rollback: restored ${restored.restored.join(', ') || 'nothing'}; removed ${restored.removed.join(', ') || 'nothing'}`);
  const result = await bringPreviousStackBack(deps, journal);
  await finishJournal(journal);
  deps.log(`rollback: ${result}`);
  return result;
}

/**
 * After the files are restored: `up` the previous stack, or, when this host had no
 * stack before (a first apply), take the new one down with the staged tree (the
 * journal's staging dir, still there until finishJournal) under the same project name.
 */
async function bringPreviousStackBack(deps: ReconcileDeps, journal: Journal): Promise<string> {
  const { config, compose } = deps;
  const target = installTarget(config);
  if (!(await hasComposeFile(config.installDir))) {
    const staging = journal.record.stagingDir;
    if (staging && (await hasComposeFile(staging))) await compose.down({ dir: staging, project: config.composeProject });
    return 'rolled back (no previous stack; the new one is down)';
  }
  await compose.up(target);
  // Services the failed release added are Flotilla's; the old files do not declare them, so they go.
  const added = journal.record.services ?? [];
  const old = added.length > 0 ? await compose.declaredServices?.(target) : undefined;
  const dropped = old ? added.filter((s) => !old.includes(s)) : [];
  if (dropped.length > 0 && compose.removeServiceContainers) {
    const removed = await compose.removeServiceContainers(target, dropped);
    deps.log(`rollback: removed ${removed.join(', ') || 'no containers'} of ${dropped.join(', ')}, which the failed release added`);
  }
  const health = await waitHealthy(compose, target, { timeoutMs: config.healthTimeoutSeconds * 1000, pollMs: deps.healthPollMs ?? 1000, expectedServices: await compose.expectedServices?.(target) });
  return health.ok ? `rolled back, previous stack ${health.detail}` : `rolled back, but the previous stack is not well: ${health.detail}`;
}

/** Finishes or rolls back an apply a crash interrupted, before anything else happens. */
async function recover(deps: ReconcileDeps, state: AgentState): Promise<AgentState> {
  const { config, compose, log } = deps;
  const decision = await recoverFromJournal(config.stateDir, undefined, { log });
  if (decision.action === 'none') return state;
  const commit = decision.journal.record.targetCommit;
  const target = installTarget(config);
  if (decision.action === 'rolled-back') {
    log(`recover: interrupted at ${decision.interruptedAt}; rolled back ${commit.slice(0, 12)}`);
    if (decision.restartOldStack) log(`recover: ${await bringPreviousStackBack(deps, decision.journal)}`);
    await finishJournal(decision.journal);
    return state;
  }
  const fetched = await readTenantCommit(config, commit);
  deps.secrets?.noteManifest(fetched.manifest);
  if (decision.action === 'roll-forward') {
    log(`recover: interrupted at ${decision.interruptedAt}; finishing ${commit.slice(0, 12)}`);
    try {
      await compose.up(target);
      const health = await waitHealthy(compose, target, { timeoutMs: config.healthTimeoutSeconds * 1000, pollMs: deps.healthPollMs ?? 1000, expectedServices: await compose.expectedServices?.(target) });
      if (!health.ok) throw new ComposeStepError('health', health.detail);
      await runManifestHooks(deps, 'postUp', fetched.manifest);
    } catch (e) {
      const description = redactIfAble(deps, `${describeFailure('recovery', e)}; ${await rollBack(deps, decision.journal)}`);
      state.lastAttempt = { commit, outcome: 'held', description, at: new Date().toISOString() };
      await writeState(config.stateDir, state);
      await deps.report({ tenantCommit: commit, ...(fetched.sourceCommit ? { sourceCommit: fetched.sourceCommit } : {}), state: 'failure', description });
      return state;
    }
  }
  const applied: NonNullable<AgentState['lastApplied']> = { commit, manifest: fetched.manifest, appliedAt: new Date().toISOString() };
  if (fetched.sourceCommit) applied.sourceCommit = fetched.sourceCommit;
  state.lastApplied = applied;
  // The services the finished apply's files declare are Flotilla's from now on.
  if (decision.journal.record.services) state.services = decision.journal.record.services;
  const description = `${fetched.manifest.imageTag} up (finished after restart)`;
  state.lastAttempt = { commit, outcome: 'applied', description, at: new Date().toISOString() };
  await writeState(config.stateDir, state);
  await finishJournal(decision.journal);
  await deps.report({ tenantCommit: commit, ...(fetched.sourceCommit ? { sourceCommit: fetched.sourceCommit } : {}), state: 'success', description });
  return state;
}
