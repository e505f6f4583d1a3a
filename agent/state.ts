// What the agent remembers between runs: the last commit it applied (with its
// manifest: the hash of every file Flotilla wrote, the only proof a file is
// Flotilla's) and the outcome of the last attempt. The operator's decisions about
// files Flotilla did not write live in a file of their own (decisions.json): the
// daemon rewrites state.json every poll while it holds the lock, so a command run
// beside it must never write that file. Both written atomically; no secret is stored.
import { readFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../renderer/core/atomic-write.js';
import { parseManifest, type Manifest } from '../renderer/core/manifest.js';

export interface AppliedCommit {
  commit: string;
  sourceCommit?: string;
  manifest: Manifest;
  appliedAt: string;
}

export interface AttemptRecord {
  commit: string;
  /**
   * `failed`: before the swap, retried; `held`: failed after the swap and rolled back, not
   * retried until the branch moves; `waiting`: for a window or a fault of the host's, retried.
   */
  outcome: 'applied' | 'refused' | 'failed' | 'held' | 'waiting';
  description: string;
  at: string;
  /** Required variables a refusal named: the host can fix those, so the commit is re-planned. */
  missing?: string[];
  /**
   * Files a refusal would have replaced without a decision (not Flotilla's, or changed on
   * the host): the decision is taken on the host or in the fleet, so the commit is re-planned.
   */
  undecided?: string[];
  /** A pre-swap hook a refusal names: it is fixed on the host, so the commit is tried again. */
  hook?: string;
}

/**
 * A local change to a managed file that the operator keeps (`flotilla-agent accept`).
 * It holds only while the release would write what it would have written when accepted:
 * a template change for that file is refused again, because the hotfix may be what the
 * new template fixes, or what it breaks.
 */
export interface AcceptedChange {
  /** sha256 of the file as accepted; another edit is a local change again. */
  sha256: string;
  /** sha256 of what Flotilla would have written when it was accepted. */
  template: string;
  at: string;
}

/**
 * The host's decision to let Flotilla replace files at managed paths it did not write
 * (`flotilla-agent adopt`), bound to the content the operator saw: a file that changes
 * after the decision is refused again.
 */
export interface HostAdoption {
  /** The tenant commit whose plan the operator accepted. */
  commit: string;
  /** path -> sha256 of the file on disk that may be replaced. */
  files: Record<string, string>;
  at: string;
}

/** The last drift status posted on an applied commit, so it is posted once, not every poll. */
export interface DriftReport {
  commit: string;
  state: 'success' | 'failure';
  description: string;
}

export interface AgentState {
  lastApplied?: AppliedCommit;
  lastAttempt?: AttemptRecord;
  lastSuccessfulPoll?: string;
  /**
   * Compose services the files Flotilla last applied declare. Only these are Flotilla's
   * to remove once a release drops them: a service an operator added by hand is not.
   */
  services?: string[];
  driftReport?: DriftReport;
  /** Since when the commit has been held up by a fault of the host's (agent/host-fault.ts). */
  hostFault?: { commit: string; since: string };
}

export function stateFile(stateDir: string): string {
  return join(stateDir, 'state.json');
}

export async function readState(stateDir: string): Promise<AgentState> {
  let text: string;
  try {
    text = await readFile(stateFile(stateDir), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw e;
  }
  const raw = JSON.parse(text) as AgentState;
  // Re-validate the stored manifest: the state file is as untrusted as any other file on disk.
  if (raw.lastApplied) raw.lastApplied.manifest = parseManifest(JSON.stringify(raw.lastApplied.manifest), { applied: true });
  return raw;
}

export async function writeState(stateDir: string, state: AgentState): Promise<void> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(stateFile(stateDir), `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
}

/** What the operator decided on this host; written only by `adopt` and `accept`, read by every apply. */
export interface HostDecisions {
  /** Local changes kept, by path. */
  accepted?: Record<string, AcceptedChange>;
  adoption?: HostAdoption;
}

export function decisionsFile(stateDir: string): string {
  return join(stateDir, 'decisions.json');
}

export async function readDecisions(stateDir: string): Promise<HostDecisions> {
  let text: string;
  try {
    text = await readFile(decisionsFile(stateDir), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw e;
  }
  const raw = JSON.parse(text) as HostDecisions;
  const hex = /^[0-9a-f]{64}$/;
  // A decision only ever lets a file stay or go when its hash matches: drop any entry without a well-formed one.
  const accepted = Object.fromEntries(
    Object.entries(raw.accepted ?? {}).filter(([, a]) => hex.test(a?.sha256 ?? '') && hex.test(a?.template ?? '')),
  );
  const decisions: HostDecisions = {};
  if (Object.keys(accepted).length > 0) decisions.accepted = accepted;
  if (raw.adoption && typeof raw.adoption.commit === 'string') {
    const files = Object.fromEntries(Object.entries(raw.adoption.files ?? {}).filter(([, sha]) => hex.test(sha)));
    decisions.adoption = { commit: raw.adoption.commit, files, at: String(raw.adoption.at ?? '') };
  }
  return decisions;
}

export async function writeDecisions(stateDir: string, decisions: HostDecisions): Promise<void> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(decisionsFile(stateDir), `${JSON.stringify(decisions, null, 2)}\n`, { mode: 0o600 });
}
