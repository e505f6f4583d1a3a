// `flotilla status`: where every tenant is. Pure apart from the injected reads
// (tenant branch heads, what a tenant commit says, the latest commit status), so
// the same code runs against GitHub, the stand-in, or a test's table.
import type { CommitState, CommitStatus } from './core/github.js';
import type { Fleet } from './fleet.js';

export type TenantVerdict = 'converged' | 'pending' | 'failed' | 'paused' | 'never reported';

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
}

export interface FleetStatus {
  tenants: TenantStatusRow[];
  counts: Record<TenantVerdict, number>;
}

export interface StatusReads {
  /** Heads of the branches under `prefix`, branch name (without refs/heads/) -> commit id. */
  listBranches(prefix: string): Promise<Map<string, string>>;
  readTenantCommit(oid: string, branch: string): Promise<TenantCommitInfo>;
  /** Newest status with this context on the commit, if any. */
  latestStatus(sha: string, context: string): Promise<CommitStatus | undefined>;
  now?(): Date;
}

/** What the row means: paused first, then the state the agent last reported on the branch head. */
export function verdictOf(row: Omit<TenantStatusRow, 'verdict'>): TenantVerdict {
  if (row.paused) return 'paused';
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
      const [info, status] = await Promise.all([
        reads.readTenantCommit(head, branch),
        reads.latestStatus(head, `${fleet.defaults.statusContextPrefix}${t.slug}`),
      ]);
      row.source = info.source;
      if (info.imageTag !== undefined) row.publishedTag = info.imageTag;
      if (status) {
        row.state = status.state;
        row.description = status.description;
        row.reportedAt = status.createdAt;
        row.ageSeconds = Math.max(0, Math.round((now - Date.parse(status.createdAt)) / 1000));
      }
    }
    return { ...row, verdict: verdictOf(row) };
  });
  const counts: Record<TenantVerdict, number> = { converged: 0, pending: 0, failed: 0, paused: 0, 'never reported': 0 };
  for (const t of tenants) counts[t.verdict]++;
  return { tenants, counts };
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
  return `${c.converged} converged, ${c.pending} pending, ${c.failed} failed, ${c.paused} paused, ${c['never reported']} never reported`;
}

const COLUMNS = ['TENANT', 'DESIRED', 'PUBLISHED', 'HEAD', 'SOURCE', 'STATE', 'AGE', 'DESCRIPTION'] as const;

function cells(row: TenantStatusRow): string[] {
  return [
    row.slug,
    row.desiredTag,
    row.publishedTag ?? '-',
    row.head ? row.head.slice(0, 7) : '-',
    row.source ? row.source.slice(0, 7) : '-',
    row.verdict === 'paused' && row.state ? `paused (${row.state})` : row.verdict,
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
  return `${body}\n\n${summaryLine(status)}\n`;
}

export function formatStatusJson(status: FleetStatus): string {
  return `${JSON.stringify({ summary: status.counts, tenants: status.tenants }, null, 2)}\n`;
}
