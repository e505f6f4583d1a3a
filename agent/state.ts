// What the agent remembers between runs: the last commit it applied (with its
// manifest, so a file that later leaves the manifest can be deleted safely) and
// the outcome of the last attempt. Written atomically; no secret is ever stored.
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
  outcome: 'applied' | 'refused' | 'failed' | 'held';
  description: string;
  at: string;
  /** Required variables a refusal named: the host can fix those, so the commit is re-planned. */
  missing?: string[];
}

export interface AgentState {
  lastApplied?: AppliedCommit;
  lastAttempt?: AttemptRecord;
  lastSuccessfulPoll?: string;
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
  if (raw.lastApplied) raw.lastApplied.manifest = parseManifest(JSON.stringify(raw.lastApplied.manifest));
  return raw;
}

export async function writeState(stateDir: string, state: AgentState): Promise<void> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(stateFile(stateDir), `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
}
