// `flotilla status --html FILE`: the fleet on one self-contained page. Pure: a
// FleetStatus (and the last rollout, when known) in, one HTML string out. No
// script, no external asset (a Content-Security-Policy forbids loading any), every
// value escaped: tenant descriptions come from agents and are not trusted markup.
import { driftCell, formatAge, summaryLine, type FleetStatus, type TenantStatusRow, type TenantVerdict } from './status.js';
import type { RolloutReport, WaveState } from '../rollout/rollout.js';

export interface DashboardOptions {
  generatedAt: Date;
  /** The fleet's waves in rollout order (effectiveWaves(fleet)); each is shown with its tenants' current verdicts. */
  waves?: Array<{ name: string; tenants: string[] }>;
  /** A wave-by-wave decision from decideRollout, when the caller has one; shown instead of `waves`. */
  rollout?: RolloutReport;
  title?: string;
}

/** A wave's state from its tenants' verdicts: any failure halts it, any tenant in flight keeps it going. */
export function waveStateOf(verdicts: TenantVerdict[]): WaveState {
  if (verdicts.includes('failed')) return 'halted';
  if (verdicts.some((v) => v === 'pending' || v === 'never reported' || v === 'unknown')) return 'in progress';
  return 'done';
}

/** What needs a person first: failures, then work in flight, then the quiet rest. */
const VERDICT_ORDER: TenantVerdict[] = ['failed', 'pending', 'unknown', 'never reported', 'paused', 'converged'];

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

export function dashboardOrder(tenants: readonly TenantStatusRow[]): TenantStatusRow[] {
  return [...tenants].sort(
    (a, b) => VERDICT_ORDER.indexOf(a.verdict) - VERDICT_ORDER.indexOf(b.verdict) || a.slug.localeCompare(b.slug),
  );
}

const VERDICT_COLOURS: Record<TenantVerdict, string> = {
  failed: '#b42318',
  pending: '#b54708',
  'never reported': '#475467',
  unknown: '#475467',
  paused: '#6941c6',
  converged: '#067647',
};

const WAVE_COLOURS: Record<WaveState, string> = {
  done: '#067647',
  soaking: '#0e7090',
  'in progress': '#b54708',
  halted: '#b42318',
  next: '#175cd3',
  waiting: '#475467',
};

const e = escapeHtml;
const cls = (s: string) => s.replace(/[^a-z]+/g, '-');

function tenantRow(row: TenantStatusRow): string {
  const state = row.verdict === 'paused' && row.state ? `paused (${row.state})` : row.held ? 'held (window)' : row.verdict;
  const tagCell =
    row.publishedTag !== undefined && row.publishedTag !== row.desiredTag
      ? `${e(row.desiredTag)} <span class="muted">(published ${e(row.publishedTag)})</span>`
      : e(row.desiredTag);
  return `<tr class="tenant verdict-${cls(row.verdict)}" data-tenant="${e(row.slug)}" data-verdict="${e(row.verdict)}">
<td class="slug">${e(row.slug)}</td>
<td><span class="badge verdict-${cls(row.verdict)}">${e(state)}</span>${driftCell(row) === 'local changes' ? ` <span class="badge drift" title="${e(row.drift!.description ?? '')}">local changes</span>` : ''}</td>
<td class="tag">${tagCell}</td>
<td class="commit" title="${e(row.head ?? '')}">${row.head ? e(row.head.slice(0, 7)) : '-'}</td>
<td class="commit" title="${e(row.source ?? '')}">${row.source ? e(row.source.slice(0, 7)) : '-'}</td>
<td class="age" title="${e(row.reportedAt ?? '')}">${e(formatAge(row.ageSeconds))}</td>
<td class="description">${e((row.description ?? '').replace(/\s+/g, ' ')) || '-'}</td>
</tr>`;
}

function waveList(label: string, slugs: string[]): string {
  return slugs.length ? `<div><span class="muted">${e(label)}:</span> ${slugs.map(e).join(', ')}</div>` : '';
}

function rolloutStatusLine(status: FleetStatus): string {
  const r = status.rollout;
  if (!r) return '';
  const word = r.state === 'failure' || r.state === 'error' ? 'halted' : r.state === 'pending' ? 'in progress' : r.state;
  return `<p class="decision decision-${cls(word)}">Rollout of ${e(r.source.slice(0, 7))}: ${e(word)}${r.description ? ` — ${e(r.description)}` : ''}</p>`;
}

function wavesFromStatus(status: FleetStatus, waves: Array<{ name: string; tenants: string[] }>): string {
  const bySlug = new Map(status.tenants.map((t) => [t.slug, t]));
  const items = waves.map((w, i) => {
    const rows = w.tenants.map((slug) => bySlug.get(slug)).filter((t): t is TenantStatusRow => t !== undefined);
    const state = waveStateOf(rows.filter((t) => !t.paused).map((t) => t.verdict));
    const of = (v: TenantVerdict) => rows.filter((t) => t.verdict === v).map((t) => t.slug);
    return `<li class="wave wave-${cls(state)}" data-wave="${e(w.name)}" data-state="${e(state)}">
<div class="wave-head"><span class="muted">${i + 1}.</span> <strong>${e(w.name)}</strong> <span class="badge wave-${cls(state)}">${e(state)}</span></div>
<div class="muted">${rows.length} tenant(s)</div>
${VERDICT_ORDER.map((v) => waveList(v, of(v))).join('')}
</li>`;
  });
  return `<section class="rollout"><h2>Rollout waves</h2>
${rolloutStatusLine(status)}
<ol class="waves">
${items.join('\n')}
</ol>
</section>`;
}

function rolloutSection(status: FleetStatus, opts: DashboardOptions): string {
  const rollout = opts.rollout;
  if (!rollout && opts.waves && opts.waves.length > 0) return wavesFromStatus(status, opts.waves);
  if (!rollout) return `<section class="rollout"><h2>Last rollout</h2>${rolloutStatusLine(status) || '<p class="muted">No rollout information.</p>'}</section>`;
  const d = rollout.decision;
  const decision =
    d.kind === 'halted'
      ? `Halted at wave ${e(d.wave)}: ${e(d.reason)}`
      : d.kind === 'wait'
        ? `Waiting: ${e(d.reason)}`
        : d.kind === 'publish'
          ? `Next: publish wave ${e(d.wave)} (${d.tenants.map(e).join(', ')})`
          : 'Complete: every wave done';
  const waves = rollout.waves
    .map(
      (w, i) => `<li class="wave wave-${cls(w.state)}" data-wave="${e(w.name)}" data-state="${e(w.state)}">
<div class="wave-head"><span class="muted">${i + 1}.</span> <strong>${e(w.name)}</strong> <span class="badge wave-${cls(w.state)}">${e(w.state)}</span></div>
<div class="muted">${w.tenants.length} tenant(s)${w.soakUntil ? `, soaking until ${e(w.soakUntil.toISOString().slice(0, 16))}Z` : ''}</div>
${waveList('failed', w.failed)}${waveList('succeeded', w.succeeded)}${waveList('reporting', w.reporting)}${waveList('not yet published', w.behind)}
</li>`,
    )
    .join('\n');
  return `<section class="rollout"><h2>Last rollout <span class="muted">source ${e(rollout.source.slice(0, 7))}</span></h2>
<p class="decision decision-${cls(d.kind)}">${decision}</p>
<ol class="waves">
${waves}
</ol>${rollout.paused.length ? `\n<p class="muted">Paused (not rolled out): ${rollout.paused.map(e).join(', ')}</p>` : ''}
</section>`;
}

export function renderDashboardHtml(status: FleetStatus, opts: DashboardOptions): string {
  const title = opts.title ?? 'Flotilla fleet status';
  const verdictCss = Object.entries(VERDICT_COLOURS)
    .map(([v, c]) => `.badge.verdict-${cls(v)}{background:${c}} tr.verdict-${cls(v)} td.slug{border-left:4px solid ${c}}`)
    .join('\n');
  const waveCss = Object.entries(WAVE_COLOURS)
    .map(([v, c]) => `.badge.wave-${cls(v)}{background:${c}} li.wave-${cls(v)}{border-top:4px solid ${c}}`)
    .join('\n');
  const counts = VERDICT_ORDER.map(
    (v) => `<span class="count"><span class="badge verdict-${cls(v)}">${e(v)}</span> ${status.counts[v]}</span>`,
  ).join(' ');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${e(title)}</title>
<style>
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#101828;background:#f9fafb}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:24px 0 8px}
.muted{color:#667085;font-weight:normal}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px;white-space:nowrap}
.counts{margin:12px 0}.count{margin-right:12px}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #eaecf0;vertical-align:top}
th{background:#f2f4f7;font-weight:600}
td.commit,td.tag{font-family:ui-monospace,Menlo,monospace}
td.description{max-width:40em;overflow-wrap:anywhere}
.badge.drift{background:#b45309}
ol.waves{display:flex;flex-wrap:wrap;gap:12px;list-style:none;padding:0}
li.wave{background:#fff;padding:8px 12px;min-width:180px;box-shadow:0 1px 2px #1018280d}
${verdictCss}
${waveCss}
</style>
</head>
<body>
<header>
<h1>${e(title)}</h1>
<div class="muted">Generated ${e(opts.generatedAt.toISOString().replace(/\.\d{3}Z$/, 'Z'))} — ${status.tenants.length} tenant(s)</div>
<div class="counts" aria-label="${e(summaryLine(status))}">${counts}</div>
</header>
<main>
<table class="tenants">
<thead><tr><th>Tenant</th><th>Status</th><th>Tag</th><th>Commit</th><th>Source</th><th>Age</th><th>Description</th></tr></thead>
<tbody>
${dashboardOrder(status.tenants).map(tenantRow).join('\n')}
</tbody>
</table>
${rolloutSection(status, opts)}
</main>
</body>
</html>
`;
}
