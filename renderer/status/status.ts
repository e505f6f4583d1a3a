// `flotilla status`: where every tenant is. Pure apart from the injected reads
// (tenant branch heads, what a tenant commit says, the latest commit status), so
// the same code runs against GitHub, the stand-in, or a test's table.
import type { CommitState, CommitStatus } from '../core/github.js';
import { WAITING_FOR_WINDOW } from '../core/window.js';
import type { Fleet } from '../fleet/fleet.js';

/** `unknown`: published, but the statuses could not be read (no token), so nobody can say how the host is. */
export type TenantVerdict = 'converged' | 'pending' | 'failed' | 'paused' | 'never reported' | 'unknown';

export interface TenantCommitInfo {
  /** The `Flotilla-Source:` trailer: the fleet commit this tenant commit was rendered from. */
  source: string | null;
  /** imageTag of the manifest on the tenant branch, when readable. */
  imageTag?: string;
}

export interface TenantStatusRow {
  slug: string;
  desiredTag: string;
  paused: boolean;
  branch: string;
  /** Head commit of the tenant branch; undefined when never published. */
  head?: string;
  source?: string | null;
  publishedTag?: string;
  state?: CommitState;
  description?: string | null;
  reportedAt?: string;
  ageSeconds?: number;
  verdict: TenantVerdict;
  /** The agent holds the commit until its maintenance window opens (description says when). */
  held?: boolean;
  /**
   * The agent's `<context>/drift` status on the branch head: `failure` names local changes
   * on the host nobody accepted, `success` says none are left (or which were accepted).
   * It never changes the verdict: a hand edit on one host must not halt a rollout.
   */
  drift?: { state: CommitState; description: string | null };
  /** The statuses could not be read, so the state is not known (see FleetStatus.statusesUnavailable). */
  statusUnknown?: boolean;
}

export interface FleetStatus {
  tenants: TenantStatusRow[];
  counts: Record<TenantVerdict, number>;
  /** Tenants whose agent waits for a maintenance window. */
  held: string[];
  /** The `flotilla/rollout` status promote posts: halted (and why) or in progress; absent when complete or unknown. */
  rollout?: { state: CommitState; description: string | null; source: string; targetUrl: string | null };
  /** Why no agent state is shown: the statuses could not be read. */
  statusesUnavailable?: string;
}

export interface StatusReads {
  /** Heads of the branches under `prefix`, branch name (without refs/heads/) -> commit id. */
  listBranches(prefix: string): Promise<Map<string, string>>;
  readTenantCommit(oid: string, branch: string): Promise<TenantCommitInfo>;
  /** Newest status with this context on the commit, if any; absent when statuses cannot be read. */
  latestStatus?(sha: string, context: string): Promise<CommitStatus | undefined>;
  /** Why the statuses cannot be read (e.g. no token): shown instead of them. */
  statusesUnavailable?: string;
  now?(): Date;
  /** The fleet commit being rolled out; without it the commits tenant branches name are checked for a halt. */
  sourceCommit?: string;
}

/** What the row means: paused first, then the state the agent last reported on the branch head. */
export function verdictOf(row: Omit<TenantStatusRow, 'verdict'>): TenantVerdict {
  if (row.paused) return 'paused';
  if (row.head && row.statusUnknown) return 'unknown';
  if (!row.head || !row.state) return 'never reported';
  if (row.state === 'failure' || row.state === 'error') return 'failed';
  if (row.state === 'pending') return 'pending';
  // Success on a head that does not carry the desired tag yet: publish has not run.
  if (row.publishedTag !== undefined && row.publishedTag !== row.desiredTag) return 'pending';
  return 'converged';
}

async function mapLimited<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Where an agent reports local changes on its host (agent/reconcile.ts posts it). */
export const driftContext = (tenantContext: string): string => `${tenantContext}/drift`;

export async function collectFleetStatus(fleet: Fleet, reads: StatusReads, concurrency = 8): Promise<FleetStatus> {
  const prefix = fleet.defaults.tenantBranchPrefix;
  const heads = await reads.listBranches(prefix);
  const now = (reads.now?.() ?? new Date()).getTime();
  const tenants = await mapLimited(fleet.tenants, concurrency, async (t) => {
    const branch = `${prefix}${t.slug}`;
    const row: Omit<TenantStatusRow, 'verdict'> = { slug: t.slug, desiredTag: t.imageTag, paused: t.paused, branch };
    const head = heads.get(branch);
    if (head) {
      row.head = head;
      const context = `${fleet.defaults.statusContextPrefix}${t.slug}`;
      const latest = reads.latestStatus?.bind(reads);
      const [info, status, drift] = await Promise.all([
        reads.readTenantCommit(head, branch),
        latest?.(head, context),
        latest?.(head, driftContext(context)),
      ]);
      if (!latest) row.statusUnknown = true;
      if (drift) row.drift = { state: drift.state, description: drift.description };
      row.source = info.source;
      if (info.imageTag !== undefined) row.publishedTag = info.imageTag;
      if (status) {
        row.state = status.state;
        row.description = status.description;
        row.reportedAt = status.createdAt;
        row.ageSeconds = Math.max(0, Math.round((now - Date.parse(status.createdAt)) / 1000));
      }
    }
    const verdict = verdictOf(row);
    return { ...row, verdict, ...(verdict === 'pending' && row.description?.startsWith(WAITING_FOR_WINDOW) ? { held: true } : {}) };
  });
  const counts: Record<TenantVerdict, number> = { converged: 0, pending: 0, failed: 0, paused: 0, 'never reported': 0, unknown: 0 };
  for (const t of tenants) counts[t.verdict]++;
  const status: FleetStatus = { tenants, counts, held: tenants.filter((t) => t.held).map((t) => t.slug) };
  if (!reads.latestStatus) {
    status.statusesUnavailable = reads.statusesUnavailable ?? 'the commit statuses could not be read';
    return status;
  }
  const rollout = await rolloutOf(fleet, reads, tenants);
  if (rollout) status.rollout = rollout;
  return status;
}

/** A halted rollout wins over one in progress; a complete one is not worth a line. */
async function rolloutOf(fleet: Fleet, reads: StatusReads, rows: TenantStatusRow[]): Promise<FleetStatus['rollout']> {
  const shas = reads.sourceCommit ? [reads.sourceCommit] : [...new Set(rows.map((r) => r.source).filter((s): s is string => !!s))];
  const found = await mapLimited(shas, 4, async (sha) => ({ sha, status: await reads.latestStatus?.(sha, `${fleet.defaults.statusContextPrefix}rollout`) }));
  const pick = found.find((f) => f.status?.state === 'failure' || f.status?.state === 'error') ?? found.find((f) => f.status?.state === 'pending');
  if (!pick?.status) return undefined;
  return { state: pick.status.state, description: pick.status.description, source: pick.sha, targetUrl: pick.status.targetUrl };
}

export function formatAge(seconds: number | undefined): string {
  if (seconds === undefined) return '-';
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86400)}d`;
}

export function summaryLine(status: FleetStatus): string {
  const c = status.counts;
  const line = `${c.converged} converged, ${c.pending} pending, ${c.failed} failed, ${c.paused} paused, ${c['never reported']} never reported`;
  return status.statusesUnavailable ? `${line}, ${c.unknown} unknown (statuses unavailable: ${status.statusesUnavailable})` : line;
}

const COLUMNS = ['TENANT', 'DESIRED', 'PUBLISHED', 'HEAD', 'SOURCE', 'STATE', 'DRIFT', 'AGE', 'DESCRIPTION'] as const;

/** `local changes` while the host reports files changed by hand that nobody accepted. */
export function driftCell(row: TenantStatusRow): string {
  if (!row.drift) return '-';
  return row.drift.state === 'failure' || row.drift.state === 'error' ? 'local changes' : 'none';
}

function cells(row: TenantStatusRow): string[] {
  return [
    row.slug,
    row.desiredTag,
    row.publishedTag ?? '-',
    row.head ? row.head.slice(0, 7) : '-',
    row.source ? row.source.slice(0, 7) : '-',
    row.verdict === 'paused' && row.state ? `paused (${row.state})` : row.held ? 'held (window)' : row.verdict,
    driftCell(row),
    formatAge(row.ageSeconds),
    (row.description ?? '').replace(/\s+/g, ' ') || '-',
  ];
}

/** An aligned table for a terminal, or tab-separated lines (with the same header) for pipes. */
export function formatStatus(status: FleetStatus, opts: { tty: boolean }): string {
  const rows = [COLUMNS as readonly string[], ...status.tenants.map(cells)];
  let body: string;
  if (opts.tty) {
    const widths = COLUMNS.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
    body = rows
      .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd())
      .join('\n');
  } else {
    body = rows.map((r) => r.join('\t')).join('\n');
  }
  return `${body}\n\n${summaryLine(status)}\n${rolloutLines(status)}`;
}

function rolloutLines(status: FleetStatus): string {
  let out = '';
  const drifted = status.tenants.filter((t) => driftCell(t) === 'local changes');
  for (const t of drifted) out += `local changes on ${t.slug}: ${(t.drift!.description ?? '').replace(/\s+/g, ' ')}\n`;
  if (status.held.length) out += `held until their maintenance window opens: ${status.held.join(', ')}\n`;
  const r = status.rollout;
  if (r) {
    const halted = r.state === 'failure' || r.state === 'error';
    out += `rollout of ${r.source.slice(0, 12)}: ${halted ? 'HALTED' : 'in progress'}${r.description ? `: ${r.description.replace(/^halted: /, '')}` : ''}\n`;
    if (r.targetUrl) out += `  rollback: ${r.targetUrl}\n`;
  }
  return out;
}

export function formatStatusJson(status: FleetStatus): string {
  const extra = {
    held: status.held,
    ...(status.rollout ? { rollout: status.rollout } : {}),
    ...(status.statusesUnavailable ? { statusesUnavailable: status.statusesUnavailable } : {}),
  };
  return `${JSON.stringify({ summary: status.counts, tenants: status.tenants, ...extra }, null, 2)}\n`;
}
