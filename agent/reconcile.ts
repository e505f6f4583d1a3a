// One reconcile pass, as the list of steps DESIGN.md gives (POLL_STEPS, then APPLY_STEPS):
//   recover -> detect -> drift -> attempt? -> fetch -> verify -> window -> plan -> stage
//   -> config -> pull -> pre-swap hooks -> swap -> env patch -> up -> health
//   -> post-up hooks -> record -> report.
// Each step is a function of the pass that goes on or ends it with an outcome. Every step
// before the swap changes nothing on the host; every failure after it restores the backup
// and brings the old stack back up. The outcome a pass returns is the one it records.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { access, rm } from 'node:fs/promises';
import {
  AgeIdentityError,
  ApplyRefusedError,
  ComposeStepError,
  FlotillaError,
  GitError,
  HookFailedError,
  ManifestError,
  SecretDecryptError,
  SettingError,
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
import { readDecisions, readState, writeState, type AgentState, type AttemptRecord, type DriftReport, type HostDecisions } from './state.js';
import type { HostSecrets } from './redact.js';
import { ageIdentityPath, decryptManifestSecrets } from './secrets.js';

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
  /**
   * Tests only: told at each of CRASH_POINTS as the apply passes it.
   * test/support/agent-with-crash-point.ts kills the process there, as a power cut would,
   * so recovery can be shown on the real CLI. Never set in production.
   */
  crashAfter?: (point: CrashPoint) => void;
}

/** What a `waiting` outcome waits for: a maintenance window to open, or a fault of the host's (agent/host-fault.ts) to pass. */
export type WaitReason = 'window' | 'host-fault';

export type ReconcileOutcome =
  | { kind: 'noop'; commit: string | null; drift: DriftedFile[] }
  /** Nothing changed on the host; the commit is tried again on the next poll. */
  | { kind: 'waiting'; commit: string; reason: WaitReason; description: string }
  | { kind: 'applied'; commit: string; description: string }
  /**
   * Nothing changed on the host. What the host can fix makes the commit planned again on
   * the next poll: `missing` variables (`.env`), `undecided` files (`adopt`/`accept`), a
   * failed pre-swap `hook` (a dump that found no space, say).
   */
  | { kind: 'refused'; commit: string; description: string; missing: string[]; undecided?: string[]; hook?: string }
  /**
   * `afterSwap`: the host was changed and is rolled back; the commit is not tried again
   * until the branch moves. A failure before the swap is retried on the next poll.
   */
  | { kind: 'failed'; commit: string; step: string; description: string; afterSwap: boolean }
  /** The pass could not run. With `commit`: on that commit (git on this host), retried on the next poll. */
  | { kind: 'error'; description: string; commit?: string };

/** Exit codes of `flotilla-agent once`, one per outcome; a `waiting` one exits by what it waits for (WAITING_EXIT_CODES). */
export const OUTCOME_EXIT_CODES: Record<Exclude<ReconcileOutcome['kind'], 'waiting'>, number> = {
  noop: 0,
  applied: 0,
  refused: 3,
  failed: 1,
  error: 2,
};

/**
 * A closed window is nothing to do yet (0, as `noop`); a fault of the host's is a pass
 * that could not run (2, as `error`), and the daemon backs off before the next one.
 */
export const WAITING_EXIT_CODES: Record<WaitReason, number> = {
  window: 0,
  'host-fault': 2,
};

export function exitCodeOf(outcome: ReconcileOutcome): number {
  return outcome.kind === 'waiting' ? WAITING_EXIT_CODES[outcome.reason] : OUTCOME_EXIT_CODES[outcome.kind];
}

/** A poll that did not get through: git unreachable, or a fault of the host's. The daemon backs off; metrics count it. */
export function isFailedPoll(outcome: ReconcileOutcome): boolean {
  return outcome.kind === 'error' || (outcome.kind === 'waiting' && outcome.reason === 'host-fault');
}

/**
 * Every point of an apply at which ReconcileDeps.crashAfter is told, in apply order:
 * after each step named so; `mid-swap` after each file of the install dir the swap
 * replaces; `health` once the stack is verified (post-up hooks included) but before the
 * state is recorded.
 */
export const CRASH_POINTS = ['stage', 'pull', 'mid-swap', 'swap', 'env-patch', 'up', 'health', 'record'] as const;
export type CrashPoint = (typeof CRASH_POINTS)[number];

/** What one pass knows, filled in step by step. */
interface Pass {
  readonly deps: ReconcileDeps;
  readonly now: () => Date;
  state: AgentState;
  /** The branch head (detect); the commit the attempt is on. */
  head: string;
  /** A heal of drift on the applied commit: it does not wait for a window. */
  heal: boolean;
  /** A retry of a commit whose last attempt did not apply: it shows a status already, so `pending` waits until the retry gets past pull. */
  retry: boolean;
  /** What the last attempt on this commit said: a retry that says the same again posts no status. */
  lastDescription?: string;
  /** The step running; a failure is described by it. */
  step: string;
  fetched?: FetchedCommit;
  /** The values of the manifest's encryptedSecrets, decrypted with the host's age identity; they join the env patch. */
  decrypted?: Record<string, string>;
  plan?: ApplyPlan;
  staged?: ComposeTarget;
  stagedServices?: string[];
  replacedSet?: ReplacedSet;
  /** Set by the swap: from then on the host is changed, and a failure rolls it back. */
  journal?: Journal;
  healthDetail?: string;
  applied?: Extract<ReconcileOutcome, { kind: 'applied' }>;
  /** A fault of the host's holding this commit up, and since when (agent/host-fault.ts); recorded with the attempt. */
  hostFault?: AgentState['hostFault'];
}

const CONTINUE = 'continue';
/** A step goes on to the next, or ends the pass with its outcome. */
type StepResult = typeof CONTINUE | ReconcileOutcome;

/** The steps of a pass before the attempt on a commit: each returns the outcome of what goes wrong itself. */
const POLL_STEPS: ReadonlyArray<(pass: Pass) => Promise<StepResult>> = [recoverInterrupted, detect, checkDrift, decideAttempt];

interface ApplyStep {
  name: string;
  run: (pass: Pass) => Promise<StepResult>;
  /** Before the swap: a shutdown request stops the pass here, nothing changed; the step is logged as it starts. */
  checkpoint?: true;
  /** ReconcileDeps.crashAfter is told this once the step is done. */
  crashAfter?: CrashPoint;
}

/**
 * The attempt on the commit, in order. A step throws what goes wrong, and concludeFailure
 * says what it means: refused, waiting, failed (rolled back once the swap has begun).
 */
const APPLY_STEPS: readonly ApplyStep[] = [
  { name: 'fetch', run: fetchCommit, checkpoint: true },
  { name: 'verify', run: verifyCommit, checkpoint: true },
  // No checkpoint: a pass without secrets logs nothing more than before.
  { name: 'secrets', run: decryptSecrets },
  { name: 'window', run: waitForWindow },
  { name: 'pending', run: reportApplying },
  { name: 'plan', run: planOnHost, checkpoint: true },
  { name: 'stage', run: stage, checkpoint: true, crashAfter: 'stage' },
  { name: 'config', run: checkConfig, checkpoint: true },
  { name: 'pull', run: pull, checkpoint: true, crashAfter: 'pull' },
  { name: 'pre-swap hooks', run: runPreSwapHooks },
  { name: 'pending', run: reportApplyingOnRetry },
  // From here on the host changes; a shutdown request waits until the apply is finished or rolled back.
  { name: 'swap', run: swap, crashAfter: 'swap' },
  { name: 'env patch', run: patchEnv, crashAfter: 'env-patch' },
  { name: 'up', run: up, crashAfter: 'up' },
  { name: 'health', run: checkHealth },
  { name: 'post-up hooks', run: runPostUpHooks, crashAfter: 'health' },
  { name: 'record', run: recordApplied, crashAfter: 'record' },
  { name: 'report', run: reportApplied },
];

/** One poll -> plan -> apply cycle. Never throws for a problem it can report; the outcome says what happened. */
export async function reconcileOnce(deps: ReconcileDeps): Promise<ReconcileOutcome> {
  const pass: Pass = { deps, now: deps.now ?? (() => new Date()), state: {}, head: '', heal: false, retry: false, step: 'recover' };
  for (const step of POLL_STEPS) {
    const result = await step(pass);
    if (result !== CONTINUE) return result;
  }
  try {
    for (const step of APPLY_STEPS) {
      pass.step = step.name;
      if (step.checkpoint) checkpoint(pass);
      const result = await step.run(pass);
      if (result !== CONTINUE) return result;
      if (step.crashAfter) deps.crashAfter?.(step.crashAfter);
    }
  } catch (err) {
    return concludeFailure(pass, err);
  }
  throw new Error('the apply steps ended without an outcome');
}

function checkpoint(pass: Pass): void {
  if (pass.deps.signal?.aborted) throw new AbandonedError(pass.step);
  pass.deps.log(`${pass.step}: ${pass.head.slice(0, 12)}`);
}

// ---- the steps before the attempt

/** Finishes or rolls back an apply a crash interrupted, before anything else happens. */
async function recoverInterrupted(pass: Pass): Promise<StepResult> {
  try {
    pass.state = await recover(pass.deps, await readState(pass.deps.config.stateDir));
  } catch (e) {
    return { kind: 'error', description: `recovery failed: ${(e as Error).message}` };
  }
  return CONTINUE;
}

/** One protocol v2 ls-refs for the branch. */
async function detect(pass: Pass): Promise<StepResult> {
  const { config, log } = pass.deps;
  let head: string | null;
  try {
    head = await remoteBranchHead(config.repo, config.branch, gitAuth(config), gitDepsOf(config));
  } catch (e) {
    log(`detect: ${(e as Error).message}`);
    return { kind: 'error', description: `git unreachable: ${(e as Error).message}` };
  }
  pass.state.lastSuccessfulPoll = pass.now().toISOString();
  if (head === null) {
    await writeState(config.stateDir, pass.state);
    log(`detect: branch ${config.branch} does not exist yet`);
    return { kind: 'noop', commit: null, drift: [] };
  }
  pass.head = head;
  return CONTINUE;
}

/** The head is applied already: its drift is reported, or healed (`FLOTILLA_DRIFT=heal`) by applying it again. */
async function checkDrift(pass: Pass): Promise<StepResult> {
  const { deps, state, head } = pass;
  const { config, log } = deps;
  if (head !== state.lastApplied?.commit) return CONTINUE;
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
      pass.heal = true;
      return CONTINUE;
    }
  }
  await reportDrift(deps, state, head, unaccepted, accepted.map((d) => d.path));
  await writeState(config.stateDir, state);
  return { kind: 'noop', commit: head, drift };
}

/**
 * Whether the last attempt on this commit lets it be tried (again).
 * A commit that failed after the swap is not retried until the branch moves: retrying
 * would take the stack down and up again every poll. Pre-swap failures (a registry
 * down, a tag not pushed yet) and waits are retried. A refusal is re-planned when the
 * host can fix it: missing variables (the operator edits `.env`), files nobody decided
 * about (`flotilla-agent adopt` / `accept`, or the file put back by hand), a failed
 * pre-swap hook; a history rewrite once the operator allows non-fast-forwards. Retries
 * are quiet: the commit already shows the failure, and a status every poll would flap
 * the PR and run into GitHub's cap of 1,000 statuses per commit and context.
 */
async function decideAttempt(pass: Pass): Promise<StepResult> {
  if (pass.heal) return CONTINUE;
  const { state, head } = pass;
  const { config } = pass.deps;
  const attempt = state.lastAttempt?.commit === head ? state.lastAttempt : undefined;
  const retry =
    attempt?.outcome === 'failed' ||
    attempt?.outcome === 'waiting' ||
    (attempt?.outcome === 'refused' && (attempt.missing?.length || attempt.undecided?.length || attempt.hook || config.allowNonFastForward));
  await writeState(config.stateDir, state);
  if (attempt && attempt.outcome !== 'applied' && !retry) return { kind: 'noop', commit: head, drift: [] };
  if (retry) {
    pass.retry = true;
    pass.lastDescription = attempt.description;
  }
  return CONTINUE;
}

// ---- the attempt on the commit: nothing changes on the host until the swap

/** A commit fetched by an earlier pass (a retry, a heal) is not fetched again. */
async function fetchCommit({ deps: { config }, head }: Pass): Promise<StepResult> {
  if (!(await hasObject(gitdirOf(config), head).catch(() => false)))
    await fetchBranch(gitdirOf(config), config.repo, config.branch, { depth: 1, auth: gitAuth(config) }, gitDepsOf(config));
  return CONTINUE;
}

/** Fast-forward, signature (when keys are configured), then the commit's tree and manifest. */
async function verifyCommit(pass: Pass): Promise<StepResult> {
  const { deps, head } = pass;
  const { config, log } = deps;
  const from = pass.state.lastApplied?.commit;
  if (from && from !== head && !config.allowNonFastForward && !(await checkFastForward(deps, from, head))) {
    throw new ApplyRefusedError(`${head.slice(0, 12)} does not descend from the applied ${from.slice(0, 12)} (history rewritten)`);
  }
  if (config.trustedKeysFile) log(`verify: ${await checkCommitSigned(gitdirOf(config), head, config.trustedKeysFile)}`);
  pass.fetched = await readTenantCommit(config, head);
  deps.secrets?.noteManifest(pass.fetched.manifest);
  return CONTINUE;
}

/**
 * The manifest's encryptedSecrets, decrypted with the host's age identity before anything
 * changes (agent/secrets.ts); each value is registered with the redaction. One that does
 * not decrypt refuses the commit, naming the key (never a value); an identity file that
 * is missing or others can read is the host's to fix: waited on, like a setting.
 */
async function decryptSecrets(pass: Pass): Promise<StepResult> {
  const { deps } = pass;
  const manifest = pass.fetched!.manifest;
  if (Object.keys(manifest.encryptedSecrets ?? {}).length === 0) return CONTINUE;
  try {
    pass.decrypted = await decryptManifestSecrets(manifest, ageIdentityPath(deps.config.stateDir), deps.secrets);
  } catch (e) {
    if (e instanceof SecretDecryptError) throw new ApplyRefusedError(e.message);
    if (e instanceof AgeIdentityError) throw new SettingError(`age identity ${e.path}`, e.detail);
    throw e;
  }
  deps.log(`secrets: decrypted ${Object.keys(pass.decrypted).join(', ')}`);
  return CONTINUE;
}

/**
 * Outside every maintenance window the commit waits, fetched and verified; each poll
 * checks again. A heal restores what was already applied, so it does not wait. The
 * host's own FLOTILLA_WINDOW wins over the windows the fleet declares for the tenant.
 */
async function waitForWindow(pass: Pass): Promise<StepResult> {
  const { deps, head } = pass;
  if (pass.heal || deps.ignoreWindow) return CONTINUE;
  const windows = deps.config.windows ?? parseWindows(pass.fetched!.manifest.windows ?? []);
  if (anyWindowOpen(windows, pass.now())) return CONTINUE;
  const description = waitingForWindowDescription(windows, pass.now());
  return conclude(pass, { kind: 'waiting', commit: head, reason: 'window', description }, 'pending');
}

const applying = (pass: Pass) => `applying ${pass.fetched!.manifest.imageTag}`;

/** `pending` on a first try, as soon as the commit is known to be tried. */
async function reportApplying(pass: Pass): Promise<StepResult> {
  if (!pass.retry) await report(pass, 'pending', applying(pass));
  return CONTINUE;
}

/** `pending` on a retry only once it got past what failed before (pull, the pre-swap hooks). */
async function reportApplyingOnRetry(pass: Pass): Promise<StepResult> {
  if (pass.retry) await report(pass, 'pending', applying(pass));
  return CONTINUE;
}

/** The commit's tree against the install dir: what changes, env coverage, files nobody decided about. */
async function planOnHost(pass: Pass): Promise<StepResult> {
  const { deps, state } = pass;
  const { config, log } = deps;
  const fetched = pass.fetched!;
  const envFile = await localFiles.readManaged(config.installDir, '.env');
  const envText = envFile?.content.toString('utf8');
  const generate = deps.generateSecret ?? defaultSecret;
  const decrypted = pass.decrypted ?? {};
  // A secret set centrally is never generated (secretsToGenerate): its decrypted value joins the patch instead.
  const generated = Object.fromEntries(secretsToGenerate(fetched.manifest, envText).map((name) => [name, generate()]));
  deps.secrets?.remember(Object.values(generated));
  const generatedSecrets = { ...generated, ...decrypted };
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
  const plan = await planApplyOnHost(input, deps.composeCommand ?? config.compose, deps.hookEnv ?? process.env);
  pass.plan = plan;
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
  return CONTINUE;
}

/** The new tree, `.env` patched, beside the install dir. */
async function stage(pass: Pass): Promise<StepResult> {
  const staging = await stageApply(pass.plan!, stagingDirFor(pass.deps.config.installDir));
  pass.staged = { dir: staging, project: pass.deps.config.composeProject };
  return CONTINUE;
}

/** `compose config` on the staged tree, and the services it declares. */
async function checkConfig(pass: Pass): Promise<StepResult> {
  const { compose } = pass.deps;
  await compose.config(pass.staged!);
  const services = await compose.declaredServices?.(pass.staged!);
  if (services) pass.stagedServices = services;
  return CONTINUE;
}

async function pull(pass: Pass): Promise<StepResult> {
  await pass.deps.compose.pull(pass.staged!);
  return CONTINUE;
}

/** Pre-swap hooks see the stack as it is now (a dump captures the data before the change). */
async function runPreSwapHooks(pass: Pass): Promise<StepResult> {
  const { deps } = pass;
  const manifest = pass.fetched!.manifest;
  const preSwap = manifest.hooks?.preSwap ?? [];
  if (preSwap.length === 0) return CONTINUE;
  if (await hasComposeFile(deps.config.installDir)) {
    checkpoint(pass);
    await runManifestHooks(deps, 'preSwap', manifest);
  } else {
    deps.log(`pre-swap hooks: skipped ${preSwap.map((h) => h.name).join(', ')}: no stack installed yet, nothing to run them against`);
  }
  return CONTINUE;
}

// ---- the host changes: a failure from here on is rolled back

/** Copies of replaced files not Flotilla's, the journal and backup, then the files swapped in. */
async function swap(pass: Pass): Promise<StepResult> {
  const { deps, head, state } = pass;
  const { config, log } = deps;
  const plan = pass.plan!;
  log(`swap: ${head.slice(0, 12)}`);
  pass.replacedSet = await keepReplacedFiles(plan, { stateDir: config.stateDir, commit: head, at: pass.now() });
  if (pass.replacedSet) log(`keep: ${pass.replacedSet.files.map((f) => f.path).join(', ')} copied to ${pass.replacedSet.dir} before the swap replaces them`);
  const journal = await startApplyJournal(plan, {
    stateDir: config.stateDir,
    targetCommit: head,
    ...(state.lastApplied ? { fromCommit: state.lastApplied.commit } : {}),
    stagingDir: pass.staged!.dir,
  });
  pass.journal = journal;
  if (pass.stagedServices) journal.record.services = pass.stagedServices;
  await backupAndSwap(plan, journal, swapFiles(deps, journal.record.installDir));
  return CONTINUE;
}

async function patchEnv(pass: Pass): Promise<StepResult> {
  const env = await patchInstalledEnv(pass.plan!, pass.journal!);
  // Names only: the values may be host secrets.
  pass.deps.log(`env patch: changed ${env.changed.join(', ') || 'none'}; added ${env.added.join(', ') || 'none'}`);
  return CONTINUE;
}

/** `compose up -d`, then the containers of services an earlier Flotilla apply brought up that the files now drop. */
async function up(pass: Pass): Promise<StepResult> {
  const { deps, head, state } = pass;
  const { compose, config, log } = deps;
  const target = installTarget(config);
  log(`up: ${head.slice(0, 12)}`);
  await compose.up(target);
  const stagedServices = pass.stagedServices;
  const dropped = stagedServices ? (state.services ?? []).filter((s) => !stagedServices.includes(s)) : [];
  if (dropped.length > 0 && compose.removeServiceContainers) {
    const removed = await compose.removeServiceContainers(target, dropped);
    log(`up: removed ${removed.join(', ') || 'no containers'} of ${dropped.join(', ')}, which this release no longer declares`);
  }
  await setPhase(pass.journal!, 'up');
  return CONTINUE;
}

async function checkHealth(pass: Pass): Promise<StepResult> {
  const { compose, config } = pass.deps;
  const target = installTarget(config);
  const health = await waitHealthy(compose, target, { timeoutMs: config.healthTimeoutSeconds * 1000, pollMs: pass.deps.healthPollMs ?? 1000, expectedServices: await compose.expectedServices?.(target) });
  if (!health.ok) throw new ComposeStepError('health', health.detail);
  pass.healthDetail = health.detail;
  return CONTINUE;
}

/** Before `verified`: a crash during a post-up hook finishes the apply on restart, hooks included. */
async function runPostUpHooks(pass: Pass): Promise<StepResult> {
  await runManifestHooks(pass.deps, 'postUp', pass.fetched!.manifest);
  await setPhase(pass.journal!, 'verified');
  return CONTINUE;
}

/** The commit as applied in the state, with the drift status of the local changes it kept. */
async function recordApplied(pass: Pass): Promise<StepResult> {
  const { deps, head, state } = pass;
  const fetched = pass.fetched!;
  const description = `${fetched.manifest.imageTag} up, ${pass.healthDetail}${pass.heal ? ' (drift healed)' : ''}`;
  const applied: NonNullable<AgentState['lastApplied']> = { commit: head, manifest: fetched.manifest, appliedAt: pass.now().toISOString() };
  if (fetched.sourceCommit) applied.sourceCommit = fetched.sourceCommit;
  state.lastApplied = applied;
  if (pass.stagedServices) state.services = pass.stagedServices;
  const kept = foreignKept(pass.plan!).map((f) => f.path);
  if (kept.length > 0) deps.log(`kept local changes (accepted on this host): ${kept.join(', ')}`);
  await reportDrift(deps, state, head, [], kept);
  pass.applied = { kind: 'applied', commit: head, description };
  await recordAttempt(pass, pass.applied);
  return CONTINUE;
}

/** The journal closed, then `success`. */
async function reportApplied(pass: Pass): Promise<StepResult> {
  const applied = pass.applied!;
  await finishJournal(pass.journal!);
  pass.deps.log(`verified: ${applied.description}`);
  await report(pass, 'success', applied.description);
  return applied;
}

// ---- how an attempt ends

/** The outcomes an attempt on the commit ends with; each is recorded as the commit's last attempt. */
type AttemptOutcome = Extract<ReconcileOutcome, { kind: 'waiting' | 'applied' | 'refused' | 'failed' | 'error' }>;

/** How the state keeps an outcome: a failure after the swap is `held` (not retried until the branch moves). */
function attemptKind(outcome: AttemptOutcome): AttemptRecord['outcome'] {
  if (outcome.kind === 'failed') return outcome.afterSwap ? 'held' : 'failed';
  // An error on the commit (git on this host) is retried as a failure before the swap is.
  if (outcome.kind === 'error') return 'failed';
  return outcome.kind;
}

/** Writes the outcome as the commit's last attempt; a fault of the host's is kept only while it lasts. */
async function recordAttempt(pass: Pass, outcome: AttemptOutcome): Promise<void> {
  const { state } = pass;
  state.hostFault = pass.hostFault;
  state.lastAttempt = {
    commit: pass.head,
    outcome: attemptKind(outcome),
    description: outcome.description,
    at: pass.now().toISOString(),
    ...(outcome.kind === 'refused' && outcome.missing.length ? { missing: outcome.missing } : {}),
    ...(outcome.kind === 'refused' && outcome.undecided?.length ? { undecided: outcome.undecided } : {}),
    ...(outcome.kind === 'refused' && outcome.hook ? { hook: outcome.hook } : {}),
  };
  await writeState(pass.deps.config.stateDir, state);
}

async function report(pass: Pass, state: CommitState, description: string): Promise<void> {
  const update: StatusUpdate = { tenantCommit: pass.head, state, description };
  if (pass.fetched?.sourceCommit) update.sourceCommit = pass.fetched.sourceCommit;
  await pass.deps.report(update);
}

/**
 * Ends the attempt with `outcome`, the one value both recorded and returned: recorded,
 * logged, and posted as `status` unless a retry says what the last attempt said (the
 * commit shows it already). A rollback is always posted. No status: logged only.
 */
async function conclude<O extends AttemptOutcome>(pass: Pass, outcome: O, status: CommitState | undefined): Promise<O> {
  await recordAttempt(pass, outcome);
  const { description } = outcome;
  const rolledBack = outcome.kind === 'failed' && outcome.afterSwap;
  if (status !== undefined && pass.retry && !rolledBack && description === pass.lastDescription) {
    pass.deps.log(`${description} (unchanged since the last poll)`);
    return outcome;
  }
  pass.deps.log(description);
  if (status !== undefined) await report(pass, status, description);
  return outcome;
}

async function removeStaging(pass: Pass): Promise<void> {
  await rm(stagingDirFor(pass.deps.config.installDir), { recursive: true, force: true }).catch(() => undefined);
}

/** What a step's failure means for the commit, and its status. */
async function concludeFailure(pass: Pass, err: unknown): Promise<ReconcileOutcome> {
  const { deps, head } = pass;
  if (err instanceof AbandonedError) {
    await removeStaging(pass);
    deps.log(err.message);
    return { kind: 'error', description: err.message };
  }
  if (err instanceof HookFailedError && err.phase === 'pre-swap') {
    // Nothing changed, and retried next poll: the operator fixes a failing dump on the host, not in the fleet repo.
    await removeStaging(pass);
    return conclude(pass, { kind: 'refused', commit: head, description: `refused: ${err.message}`, missing: [], hook: err.hook }, 'failure');
  }
  if (err instanceof ApplyRefusedError) {
    await removeStaging(pass);
    const undecided = err instanceof ForeignFilesRefusedError ? err.paths : [];
    return conclude(pass, { kind: 'refused', commit: head, description: err.message, missing: err.missing, ...(undecided.length ? { undecided } : {}) }, 'failure');
  }
  // The commit's own content cannot be read safely (a hostile tree or manifest): refused, not retried.
  if (!pass.journal && (err instanceof ManifestError || err instanceof UnsafePathError || (err instanceof GitError && err.operation.startsWith('read ')))) {
    const description = redactIfAble(deps, `refused: ${(err as Error).message}`);
    return conclude(pass, { kind: 'refused', commit: head, description, missing: [] }, 'failure');
  }
  const hostFault = pass.journal ? undefined : hostFaultOf(pass.step, err);
  if (hostFault) return waitOnHost(pass, hostFault, err);
  return fail(pass, err);
}

/**
 * A fault of the host's before the swap: `waiting` (posted `pending`) and retried with
 * the daemon's backoff, until FLOTILLA_HOST_FAULT_TIMEOUT on this commit makes it a
 * failure that names the host.
 */
async function waitOnHost(pass: Pass, hostFault: string, err: unknown): Promise<ReconcileOutcome> {
  const { deps, head, state } = pass;
  await removeStaging(pass);
  const since = state.hostFault?.commit === head ? state.hostFault.since : pass.now().toISOString();
  pass.hostFault = { commit: head, since };
  const detail = redactIfAble(deps, describeFailure(pass.step, err));
  const timeout = deps.config.hostFaultTimeoutSeconds;
  const overdue = pass.now().getTime() - Date.parse(since) >= timeout * 1000;
  // What the fault is and whose comes first: GitHub keeps 140 characters of a status.
  if (overdue) {
    const description = `${hostFault} for over ${formatSeconds(timeout)}, a problem on this host, not in the commit: ${detail}`;
    return conclude(pass, { kind: 'failed', commit: head, step: pass.step, description, afterSwap: false }, 'failure');
  }
  const description = `waiting: ${hostFault}, a problem on this host, not in the commit; retrying: ${detail}`;
  return conclude(pass, { kind: 'waiting', commit: head, reason: 'host-fault', description }, 'pending');
}

/**
 * Any other failure. After the swap the backup is restored and the previous stack brought
 * back, and the commit is not tried again until the branch moves; before it, the commit
 * is retried next poll (fetch, pull...).
 */
async function fail(pass: Pass, err: unknown): Promise<ReconcileOutcome> {
  const { deps, head, journal, step } = pass;
  let description = describeFailure(step, err);
  if (journal) {
    try {
      description = `${description}; ${await rollBack(deps, journal)}`;
      // The replaced files are back in place: the copies would claim a replacement that did not happen.
      if (pass.replacedSet) await discardReplacedSet(deps.config.stateDir, pass.replacedSet);
    } catch (rollbackErr) {
      description = `${describeFailure(step, err)}; ROLLBACK FAILED: ${(rollbackErr as Error).message}`;
    }
  } else {
    await removeStaging(pass);
  }
  // Compose quotes values it cannot use; the state keeps the text too, so retries compare like with like.
  description = redactIfAble(deps, description);
  // Git on this host before the commit could be read: the pass could not run; no status.
  if (err instanceof GitError && !pass.fetched) return conclude(pass, { kind: 'error', commit: head, description }, undefined);
  return conclude(pass, { kind: 'failed', commit: head, step, description, afterSwap: journal !== undefined }, 'failure');
}

// ---- helpers

class AbandonedError extends FlotillaError {
  readonly code = 'ABANDONED';
  constructor(readonly step: string) {
    super(`stopped before ${step} (agent shutting down); nothing was changed`);
  }
}

export function defaultSecret(): string {
  return randomBytes(32).toString('base64url');
}

/** The file access of the swap; tells the crash hook, when there is one, after each file of the install dir. */
function swapFiles(deps: ReconcileDeps, installDir: string): LocalFiles {
  const crashAfter = deps.crashAfter;
  if (!crashAfter) return localFiles;
  return {
    ...localFiles,
    async writeManaged(root, relPath, content, mode) {
      await localFiles.writeManaged(root, relPath, content, mode);
      if (root === installDir) crashAfter('mid-swap');
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
