// Progressive rollout: which wave of a source commit to publish next, or why not.
// `decideRollout` is pure; `flotilla publish` and `flotilla promote` feed it what they
// read (tenant branch heads, the agents' commit statuses) and act on its answer.
//
// A tenant counts as done for a source commit when its branch holds the render of
// that commit (or a render equal to it: a change that does not touch a tenant gives
// it no new commit, so its branch keeps naming an older source) and the agent's
// latest `flotilla/<slug>` status for the commit its branch names is `success`.
import type { CommitState } from '../core/github.js';
import type { Fleet, Wave } from '../fleet/fleet.js';

/** Tenants no wave names roll out last, in a wave of this name. */
export const UNASSIGNED_WAVE = 'unassigned';
export const ROLLOUT_CONTEXT_SUFFIX = 'rollout';

export interface TenantRolloutInput {
  slug: string;
  paused: boolean;
  /** The branch lacks this source commit's render: publishing would commit. */
  behind: boolean;
  /** `Flotilla-Source` of the branch head; null when the branch does not exist. */
  branchSource: string | null;
  /** Latest `flotilla/<slug>` status on `branchSource`. */
  status?: { state: CommitState; at: string; description?: string | null };
}

export interface RolloutInput {
  waves: Wave[];
  tenants: TenantRolloutInput[];
  source: string;
  now: Date;
}

export type WaveState = 'done' | 'soaking' | 'in progress' | 'halted' | 'next' | 'waiting';

export interface WaveProgress {
  name: string;
  tenants: string[];
  state: WaveState;
  succeeded: string[];
  failed: string[];
  /** Published, no success or failure reported yet. */
  reporting: string[];
  /** Not yet on this source commit's render. */
  behind: string[];
  /** When the soak of a wave that has succeeded ends. */
  soakUntil?: Date;
}

export type RolloutDecision =
  | { kind: 'publish'; wave: string; tenants: string[] }
  | { kind: 'wait'; wave: string; reason: string; until?: Date }
  | { kind: 'halted'; wave: string; failed: Array<{ slug: string; description?: string | null }>; reason: string }
  | { kind: 'complete' };

export interface RolloutReport {
  source: string;
  decision: RolloutDecision;
  waves: WaveProgress[];
  /** Never published, in any wave. */
  paused: string[];
}

/** Name of the one wave of a fleet that declares none. */
export const WHOLE_FLEET_WAVE = 'all';

/**
 * The fleet's waves, each tenant in the first wave naming it, plus `unassigned` for the
 * rest; a fleet that declares no waves is one wave of every tenant.
 */
export function effectiveWaves(fleet: Pick<Fleet, 'waves' | 'tenants'>): Wave[] {
  if (fleet.waves.length === 0) return [{ name: WHOLE_FLEET_WAVE, tenants: fleet.tenants.map((t) => t.slug) }];
  const seen = new Set<string>();
  const waves: Wave[] = fleet.waves.map((w) => {
    const tenants = w.tenants.filter((s) => !seen.has(s));
    for (const s of tenants) seen.add(s);
    return { ...w, tenants };
  });
  const rest = fleet.tenants.map((t) => t.slug).filter((s) => !seen.has(s));
  if (rest.length > 0 && waves.length > 0) waves.push({ name: UNASSIGNED_WAVE, tenants: rest });
  return waves;
}

const FAILED: ReadonlySet<CommitState> = new Set(['failure', 'error']);

/** Walks the waves in order; the first one that is not done says what happens next. */
export function decideRollout(input: RolloutInput): RolloutReport {
  const bySlug = new Map(input.tenants.map((t) => [t.slug, t]));
  const paused = input.tenants.filter((t) => t.paused).map((t) => t.slug);
  const waves: WaveProgress[] = [];
  let decision: RolloutDecision | undefined;

  for (const wave of input.waves) {
    const live = wave.tenants.filter((s) => bySlug.has(s) && !bySlug.get(s)!.paused);
    const progress: WaveProgress = { name: wave.name, tenants: live, state: 'waiting', succeeded: [], failed: [], reporting: [], behind: [] };
    waves.push(progress);

    let lastSuccess = 0;
    for (const slug of live) {
      const t = bySlug.get(slug)!;
      if (t.behind) progress.behind.push(slug);
      else if (t.status && FAILED.has(t.status.state)) progress.failed.push(slug);
      else if (t.status?.state === 'success') {
        progress.succeeded.push(slug);
        // Only a tenant this source commit changed has anything to soak: a wave the change
        // does not touch is done at once, whatever its tenants did for older commits.
        if (t.branchSource === input.source) lastSuccess = Math.max(lastSuccess, Date.parse(t.status.at));
      } else progress.reporting.push(slug);
    }
    // Later waves are listed with what they hold, but only the first open wave decides.
    if (decision) continue;

    const allowed = wave.maxFailures ?? 0;
    if (progress.failed.length > allowed) {
      progress.state = 'halted';
      const failed = progress.failed.map((slug) => ({ slug, description: bySlug.get(slug)!.status?.description ?? null }));
      const reason =
        `wave ${wave.name}: ${failed.map((f) => (f.description ? `${f.slug} failed (${f.description})` : `${f.slug} failed`)).join(', ')}` +
        (allowed > 0 ? `; more than maxFailures ${allowed}` : '');
      decision = { kind: 'halted', wave: wave.name, failed, reason };
      continue;
    }
    if (progress.behind.length > 0) {
      progress.state = 'next';
      decision = { kind: 'publish', wave: wave.name, tenants: [...progress.behind] };
      continue;
    }
    if (progress.reporting.length > 0) {
      progress.state = 'in progress';
      decision = { kind: 'wait', wave: wave.name, reason: `wave ${wave.name}: waiting for ${progress.reporting.join(', ')} to report success` };
      continue;
    }
    const soakMs = (wave.soakMinutes ?? 0) * 60_000;
    if (soakMs > 0 && lastSuccess > 0 && input.now.getTime() < lastSuccess + soakMs) {
      progress.state = 'soaking';
      progress.soakUntil = new Date(lastSuccess + soakMs);
      decision = {
        kind: 'wait',
        wave: wave.name,
        reason: `wave ${wave.name}: soaking until ${progress.soakUntil.toISOString().slice(0, 16)}Z`,
        until: progress.soakUntil,
      };
      continue;
    }
    progress.state = 'done';
  }
  return { source: input.source, decision: decision ?? { kind: 'complete' }, waves, paused };
}

/** The `flotilla/rollout` status a report maps to (description under GitHub's 140 characters is cut by the client). */
export function rolloutStatus(report: RolloutReport): { state: CommitState; description: string } {
  const d = report.decision;
  const done = report.waves.filter((w) => w.state === 'done').length;
  const of = `${done}/${report.waves.length} waves done`;
  switch (d.kind) {
    case 'complete':
      return { state: 'success', description: `rollout complete: ${of}` };
    case 'halted':
      return { state: 'failure', description: `halted: ${d.reason}` };
    case 'publish':
      return { state: 'pending', description: `${of}; publishing wave ${d.wave}` };
    case 'wait':
      return { state: 'pending', description: `${of}; ${d.reason}` };
  }
}

/** Lines for a terminal: the decision, then each wave. */
export function formatRollout(report: RolloutReport): string {
  const lines: string[] = [];
  const d = report.decision;
  const head = `rollout of ${report.source.slice(0, 12)}`;
  if (d.kind === 'complete') lines.push(`${head}: complete`);
  else if (d.kind === 'halted') lines.push(`${head}: HALTED: ${d.reason}`);
  else if (d.kind === 'publish') lines.push(`${head}: next wave ${d.wave} (${d.tenants.join(', ')})`);
  else lines.push(`${head}: ${d.reason}`);
  for (const w of report.waves) {
    const parts = [
      w.succeeded.length ? `ok ${w.succeeded.join(' ')}` : '',
      w.failed.length ? `failed ${w.failed.join(' ')}` : '',
      w.reporting.length ? `reporting ${w.reporting.join(' ')}` : '',
      w.behind.length ? `not published ${w.behind.join(' ')}` : '',
    ].filter(Boolean);
    lines.push(`  wave ${w.name}: ${w.state}${parts.length ? ` (${parts.join('; ')})` : ''}`);
  }
  if (report.paused.length) lines.push(`  paused (never published): ${report.paused.join(', ')}`);
  return `${lines.join('\n')}\n`;
}
