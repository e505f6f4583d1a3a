// The apply journal: a small JSON file in the agent's state dir, rewritten
// atomically at every phase change, that says how far an apply got and where the
// previous version of every touched file is backed up. After a crash (kill -9,
// power loss) the next start reads it and either rolls back to the old commit or
// lets the caller roll forward, so a host is never left half on each.
//
// Phases, in order; each one is recorded once the step it names is complete,
// except `swapping`, recorded before the first install-dir write:
//   staged       new tree written beside the install dir; install dir untouched
//   backed-up    every file the apply will replace or delete is copied to the backup dir
//   swapping     install-dir files are being replaced (some may be new, some old)
//   swapped      every managed file is the target commit's; `.env` may be patched already
//   env-patched  `.env` holds the patch
//   up           `compose up -d` returned
//   verified     every service running / healthy
//   rolling-back restoring the backup (after a failure, or recovering a crash)
//   rolled-back  install dir and `.env` are the old commit's again
import { mkdir, readFile, rm, unlink } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { writeFileAtomic } from '../renderer/core/atomic-write.js';
import { JournalError, UnsafePathError } from '../renderer/core/errors.js';
import { sha256 } from '../renderer/core/manifest.js';
import { localFiles, type LocalFiles } from './local-files.js';
import { agentRunId, settleLeftovers, type MarkedProcess } from './exec.js';

export const APPLY_PHASES = [
  'staged',
  'backed-up',
  'swapping',
  'swapped',
  'env-patched',
  'up',
  'verified',
  'rolling-back',
  'rolled-back',
] as const;
export type ApplyPhase = (typeof APPLY_PHASES)[number];

export const ENV_FILE = '.env';

export interface JournalFileEntry {
  /** Path relative to the install dir. */
  path: string;
  /** `create`: absent before; `replace`: overwritten; `delete`: removed. */
  action: 'create' | 'replace' | 'delete';
  /** sha256 and mode the apply writes (create, replace). */
  sha256?: string;
  mode?: number;
  /** Backup path relative to the backup dir (replace, delete), set once it is written. */
  backup?: string;
  previousSha256?: string;
  previousMode?: number;
}

export interface JournalEnvEntry {
  existed: boolean;
  /** Backup path relative to the backup dir, when `.env` existed. */
  backup?: string;
  previousSha256?: string;
  previousMode?: number;
  /** sha256 of the patched `.env`, so a rollback removes only a file it created. */
  sha256: string;
}

export interface JournalRecord {
  version: 1;
  phase: ApplyPhase;
  /** The phase an apply had reached when its rollback began. */
  rollbackFrom?: ApplyPhase;
  installDir: string;
  backupDir: string;
  stagingDir?: string;
  /** Tenant-branch commit being applied, and the one it replaces. */
  targetCommit: string;
  fromCommit?: string;
  files: JournalFileEntry[];
  /** Present once the `.env` backup is taken (just before the patch). */
  env?: JournalEnvEntry;
  /**
   * Compose services the new files declare: a rollback removes the containers of those
   * the old files do not, as no `--remove-orphans` does it any more (it would remove an
   * operator's own services too).
   */
  services?: string[];
  /**
   * The run marks (exec.ts agentRunId) of every agent process that worked on this apply:
   * the one that started it and each that recovered it. Their children may outlive them.
   */
  agentRuns?: string[];
  startedAt: string;
  updatedAt: string;
}

/** A journal on disk and its current content; every change goes through writeJournal. */
export interface Journal {
  stateDir: string;
  record: JournalRecord;
}

export function journalPath(stateDir: string): string {
  return join(stateDir, 'apply-journal.json');
}

export function backupDirFor(stateDir: string): string {
  return join(stateDir, 'apply-backup');
}

export function phaseIndex(phase: ApplyPhase): number {
  return APPLY_PHASES.indexOf(phase);
}

/** Starts a journal at phase `staged`, clearing any backup left by an earlier apply. */
export async function createJournal(
  stateDir: string,
  init: Pick<JournalRecord, 'installDir' | 'targetCommit' | 'fromCommit' | 'stagingDir' | 'files'>,
  now: () => Date = () => new Date(),
): Promise<Journal> {
  const existing = await readJournal(stateDir);
  if (existing)
    throw new JournalError(journalPath(stateDir), `an unfinished apply of ${existing.record.targetCommit} must be recovered first`);
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const backupDir = backupDirFor(stateDir);
  await rm(backupDir, { recursive: true, force: true });
  await mkdir(backupDir, { mode: 0o700 });
  const at = now().toISOString();
  const record: JournalRecord = {
    version: 1,
    phase: 'staged',
    installDir: init.installDir,
    backupDir,
    targetCommit: init.targetCommit,
    files: init.files.map((f) => ({ ...f })),
    agentRuns: [agentRunId()],
    startedAt: at,
    updatedAt: at,
  };
  if (init.fromCommit !== undefined) record.fromCommit = init.fromCommit;
  if (init.stagingDir !== undefined) record.stagingDir = init.stagingDir;
  const journal = { stateDir, record };
  await writeJournal(journal);
  return journal;
}

export async function writeJournal(journal: Journal): Promise<void> {
  journal.record.updatedAt = new Date().toISOString();
  await writeFileAtomic(journalPath(journal.stateDir), `${JSON.stringify(journal.record, null, 2)}\n`, { mode: 0o600 });
}

export async function setPhase(journal: Journal, phase: ApplyPhase): Promise<void> {
  journal.record.phase = phase;
  await writeJournal(journal);
}

export async function readJournal(stateDir: string): Promise<Journal | undefined> {
  const file = journalPath(stateDir);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new JournalError(file, `not JSON: ${(e as Error).message}`);
  }
  return { stateDir, record: checkRecord(file, raw) };
}

/** Removes the journal, then the backups and staging tree it names (in that order, so a crash in between leaves no journal pointing at missing backups). */
export async function finishJournal(journal: Journal): Promise<void> {
  await unlink(journalPath(journal.stateDir)).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOENT') throw e;
  });
  await rm(journal.record.backupDir, { recursive: true, force: true });
  if (journal.record.stagingDir) await rm(journal.record.stagingDir, { recursive: true, force: true });
}

export interface RestoreResult {
  /** Files written back from the backup (including `.env`). */
  restored: string[];
  /** Files the apply had created, removed again. */
  removed: string[];
  /** Files the apply created that have since changed on the host: left in place. */
  kept: string[];
}

/**
 * Puts the install dir back on the old commit: every replaced or deleted file is
 * written back from its backup, every created file removed (only while it still
 * holds what the apply wrote), `.env` restored. Idempotent, so a crash during a
 * rollback is finished by running it again. Ends at phase `rolled-back`.
 */
export async function restoreFromJournal(journal: Journal, files: LocalFiles = localFiles): Promise<RestoreResult> {
  const record = journal.record;
  const result: RestoreResult = { restored: [], removed: [], kept: [] };
  if (record.phase === 'rolled-back') return result;
  if (record.phase !== 'rolling-back') {
    record.rollbackFrom = record.phase;
    await setPhase(journal, 'rolling-back');
  }
  // Before `swapping` the install dir was never written: nothing to put back.
  if (phaseIndex(record.rollbackFrom ?? 'rolling-back') >= phaseIndex('swapping')) {
    for (const entry of record.files) {
      if (entry.backup !== undefined) {
        if (await restoreOne(journal, files, entry.path, entry.backup, entry.previousSha256, entry.previousMode))
          result.restored.push(entry.path);
      } else if (entry.action === 'create') {
        const current = await files.hashManaged(record.installDir, entry.path);
        if (current === undefined) continue;
        if (current === entry.sha256) {
          await files.removeManaged(record.installDir, entry.path);
          result.removed.push(entry.path);
        } else {
          result.kept.push(entry.path);
        }
      }
    }
    const env = record.env;
    if (env?.existed && env.backup !== undefined) {
      if (await restoreOne(journal, files, ENV_FILE, env.backup, env.previousSha256, env.previousMode))
        result.restored.push(ENV_FILE);
    } else if (env && !env.existed) {
      const current = await files.hashManaged(record.installDir, ENV_FILE);
      if (current !== undefined && current === env.sha256) {
        await files.removeManaged(record.installDir, ENV_FILE);
        result.removed.push(ENV_FILE);
      }
    }
  }
  await setPhase(journal, 'rolled-back');
  return result;
}

/** Writes one backup back unless the file already holds it; returns whether it wrote. */
async function restoreOne(
  journal: Journal,
  files: LocalFiles,
  path: string,
  backup: string,
  previousSha256: string | undefined,
  previousMode: number | undefined,
): Promise<boolean> {
  const { installDir, backupDir } = journal.record;
  const current = await files.readManaged(installDir, path);
  if (current && previousSha256 !== undefined && sha256(current.content) === previousSha256) {
    if (previousMode === undefined || current.mode === previousMode) return false;
  }
  const saved = await files.readManaged(backupDir, backup);
  if (!saved) throw new JournalError(journalPath(journal.stateDir), `backup of ${path} (${backup}) is missing`);
  if (previousSha256 !== undefined && sha256(saved.content) !== previousSha256)
    throw new JournalError(journalPath(journal.stateDir), `backup of ${path} does not match its recorded sha256`);
  await files.writeManaged(installDir, path, saved.content, previousMode ?? saved.mode);
  return true;
}

/**
 * What a start does with a journal it finds. `rolled-back`: the install dir is
 * the old commit's again; the caller brings the old stack up (needed when
 * `restartOldStack`, harmless otherwise), then calls finishJournal.
 * `roll-forward`: files and `.env` are the target commit's; the caller runs
 * compose up + verify, then records state and calls finishJournal, or on
 * failure restoreFromJournal and brings the old stack up. `finish`: the apply
 * was verified; the caller records state and calls finishJournal.
 */
export type RecoveryDecision =
  | { action: 'none' }
  | {
      action: 'rolled-back';
      journal: Journal;
      interruptedAt: ApplyPhase;
      restartOldStack: boolean;
      restore: RestoreResult;
    }
  | { action: 'roll-forward'; journal: Journal; interruptedAt: ApplyPhase }
  | { action: 'finish'; journal: Journal };

export type RecoveryAction = 'roll-back' | 'roll-forward' | 'finish';

/**
 * Pure: a crash before `.env` was patched rolls back (compose never saw the new
 * files, the old stack still runs as it was); once `.env` is patched the new
 * tree is complete, so re-running `up` + verify is allowed to finish the job.
 */
export function decideRecovery(record: JournalRecord): RecoveryAction {
  switch (record.phase) {
    case 'staged':
    case 'backed-up':
    case 'swapping':
    case 'swapped':
    case 'rolling-back':
    case 'rolled-back':
      return 'roll-back';
    case 'env-patched':
    case 'up':
      return 'roll-forward';
    case 'verified':
      return 'finish';
  }
}

/** Compose's own `up` limit (compose.ts): a leftover `up` may take as long before it is stopped. */
export const LEFTOVER_WAIT_MS = 10 * 60_000;

export interface RecoverOptions {
  log?: (line: string) => void;
  /** How long processes of the interrupted run may go on before they are stopped (default LEFTOVER_WAIT_MS). */
  leftoverWaitMs?: number;
}

/**
 * Run at start, before anything else: finishes or rolls back an interrupted apply.
 * First the processes the interrupted agent left behind (a `compose up` outlives a
 * `kill -9` of the agent alone) are waited for, or stopped: deciding while one still
 * runs would race it, and a recovery's own `up` would collide with it.
 */
export async function recoverFromJournal(stateDir: string, files: LocalFiles = localFiles, opts: RecoverOptions = {}): Promise<RecoveryDecision> {
  const journal = await readJournal(stateDir);
  if (!journal) return { action: 'none' };
  const runs = journal.record.agentRuns ?? [];
  const leftovers: MarkedProcess[] = await settleLeftovers(runs, {
    waitMs: opts.leftoverWaitMs ?? LEFTOVER_WAIT_MS,
    log: (line) => opts.log?.(`recover: ${line}`),
  });
  if (leftovers.length > 0) opts.log?.(`recover: the interrupted run's processes have ended`);
  // This process works on the apply now; a kill during the recovery leaves its children to the next start.
  if (!runs.includes(agentRunId())) {
    journal.record.agentRuns = [...runs, agentRunId()];
    await writeJournal(journal);
  }
  const interruptedAt = journal.record.phase;
  // A process killed inside writeFileAtomic leaves its temp file beside the target.
  for (const path of [...journal.record.files.map((f) => f.path), ENV_FILE]) {
    await files.removeWriteLeftovers(journal.record.installDir, path).catch((e: unknown) => {
      if (!(e instanceof UnsafePathError)) throw e;
    });
  }
  const action = decideRecovery(journal.record);
  if (action === 'finish') return { action, journal };
  if (action === 'roll-forward') return { action, journal, interruptedAt };
  const restore = await restoreFromJournal(journal, files);
  const from = journal.record.rollbackFrom ?? interruptedAt;
  // compose may have run against the new files only once `.env` was patched.
  const restartOldStack = phaseIndex(from) >= phaseIndex('env-patched') && phaseIndex(from) <= phaseIndex('verified');
  return { action: 'rolled-back', journal, interruptedAt, restartOldStack, restore };
}

function checkRecord(file: string, raw: unknown): JournalRecord {
  const bad = (why: string): never => {
    throw new JournalError(file, why);
  };
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) bad('not a JSON object');
  const r = raw as Record<string, unknown>;
  if (r.version !== 1) bad(`unsupported version ${JSON.stringify(r.version)}`);
  if (!APPLY_PHASES.includes(r.phase as ApplyPhase)) bad(`unknown phase ${JSON.stringify(r.phase)}`);
  if (r.rollbackFrom !== undefined && !APPLY_PHASES.includes(r.rollbackFrom as ApplyPhase)) bad('unknown rollbackFrom');
  for (const key of ['installDir', 'backupDir'] as const) {
    if (typeof r[key] !== 'string' || !isAbsolute(r[key] as string)) bad(`${key} must be an absolute path`);
  }
  if (typeof r.targetCommit !== 'string') bad('targetCommit missing');
  if (!Array.isArray(r.files)) bad('files must be a list');
  for (const [i, f] of (r.files as unknown[]).entries()) {
    const e = f as Record<string, unknown>;
    if (!e || typeof e.path !== 'string') bad(`files[${i}].path missing`);
    if (e.action !== 'create' && e.action !== 'replace' && e.action !== 'delete') bad(`files[${i}].action is invalid`);
  }
  return raw as JournalRecord;
}
