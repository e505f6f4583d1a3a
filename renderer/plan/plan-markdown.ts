// A PlanReport as the one sticky PR comment (and as JSON for scripts).
//
// GitHub refuses comments over 65,536 characters, so the markdown is assembled
// against a budget: pre-flight first (it is what stops a bad merge), then every
// changed tenant's file table, then diffs while room remains; what does not fit
// is folded to one line per tenant, and the comment says what it left out.
import type { FileChange } from '../core/diff.js';
import type { EnvChange, HostSettingChange, PlanReport, TagCheck, TenantPlan } from './plan.js';

/** Hidden marker the sticky comment is found again by. */
export const PLAN_COMMENT_MARKER = '<!-- flotilla-plan -->';
/** GitHub's limit on an issue comment body, in characters. */
export const GITHUB_COMMENT_LIMIT = 65_536;

export interface PlanMarkdownOptions {
  /** Longest comment produced (default GitHub's limit). */
  limit?: number;
  /** Longest diff shown per file, in characters (default 6,000); longer ones are cut at a line end. */
  maxDiffChars?: number;
  /** Command a reader runs for the full plan, shown when something was left out. */
  fullPlanCommand?: string;
}

const DEFAULT_MAX_DIFF_CHARS = 6_000;
/** Tables longer than this show changed files only, plus one row for the unchanged ones. */
const MAX_UNCHANGED_ROWS = 20;
// Room kept for the parts written after the tenant sections.
const REST_LIST_BUDGET = 4_000;
const UNCHANGED_LINE_BUDGET = 2_000;
const FOOTER_BUDGET = 1_500;
/** Room kept per detailed tenant for a "diffs omitted" line. */
const SECTION_NOTE_RESERVE = 160;
/** Largest share of the room the per-tenant tables may take; the rest is for diffs. */
const TABLE_SHARE = 0.6;
/** Safety margin under the limit (line endings GitHub may normalise, a trailing newline). */
const MARGIN = 256;

// ---- small markdown helpers ---------------------------------------------

/** Inline code that survives backticks, pipes (inside tables) and newlines in the value. */
export function code(value: string): string {
  const flat = value.replace(/\r?\n/g, '↵').replace(/\|/g, '\\|');
  const longest = Math.max(0, ...[...flat.matchAll(/`+/g)].map((m) => m[0].length));
  const fence = '`'.repeat(longest + 1);
  const pad = flat.startsWith('`') || flat.endsWith('`') || flat === '' ? ' ' : '';
  return `${fence}${pad}${flat}${pad}${fence}`;
}

function fenceFor(text: string): string {
  // Any run of backticks counts, not only ones that could close a fence: cheap and always safe.
  const longest = Math.max(0, ...[...text.matchAll(/`{3,}/g)].map((m) => m[0].length));
  return '`'.repeat(Math.max(3, longest + 1));
}

function bytes(n: number): string {
  return n.toLocaleString('en-US');
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n.toLocaleString('en-US')} ${n === 1 ? one : many}`;
}

/** `a`, `b`, `c` and 7 more — never longer than `budget` characters. */
function nameList(names: string[], budget = 600, max = 20): string {
  const parts: string[] = [];
  let length = 0;
  for (const name of names) {
    const piece = code(name);
    if (parts.length >= max || length + piece.length + 2 > budget - 20) break;
    parts.push(piece);
    length += piece.length + 2;
  }
  const rest = names.length - parts.length;
  return rest > 0 ? `${parts.join(', ')} and ${rest} more` : parts.join(', ');
}

function sizeCell(f: FileChange): string {
  switch (f.status) {
    case 'created':
      return `— → ${bytes(f.sizeAfter ?? 0)}`;
    case 'deleted':
      return `${bytes(f.sizeBefore ?? 0)} → —`;
    case 'unchanged':
      return bytes(f.sizeAfter ?? 0);
    case 'modified': {
      const delta = (f.sizeAfter ?? 0) - (f.sizeBefore ?? 0);
      const sign = delta > 0 ? '+' : delta < 0 ? '−' : '±';
      return `${bytes(f.sizeBefore ?? 0)} → ${bytes(f.sizeAfter ?? 0)} (${sign}${bytes(Math.abs(delta))})`;
    }
  }
}

const STATUS_LABEL: Record<FileChange['status'], string> = {
  unchanged: 'unchanged',
  modified: '**modified**',
  created: '**created**',
  deleted: '**deleted**',
};

function tagMove(t: TenantPlan): string {
  const { before, after } = t.imageTag;
  if (before === after) return before ? code(before) : '';
  return `${before ? code(before) : '—'} → ${after ? code(after) : '—'}`;
}

function changedFiles(t: TenantPlan): FileChange[] {
  return t.files.filter((f) => f.status !== 'unchanged');
}

function fileSummary(t: TenantPlan): string {
  const counts = new Map<string, number>();
  for (const f of changedFiles(t)) counts.set(f.status, (counts.get(f.status) ?? 0) + 1);
  const parts = [...counts].map(([status, n]) => `${n} ${status}`);
  if (t.env.length > 0) parts.push(`${plural(t.env.length, 'env key')}`);
  if (t.hostSettings.length > 0) parts.push(`${plural(t.hostSettings.length, 'host setting')}`);
  if (t.centralSecrets.length > 0) parts.push(`${plural(t.centralSecrets.length, 'secret')} set centrally`);
  return parts.join(', ') || 'manifest only';
}

// ---- pre-flight -----------------------------------------------------------

function preflight(report: PlanReport): string[] {
  const out: string[] = ['### Pre-flight', ''];
  const br = report.blastRadius;
  out.push(
    `**Blast radius:** ${plural(br.tenantsChanged, 'tenant')} of ${br.tenantsTotal} and ${plural(br.filesChanged, 'file')} change.`,
  );
  if (br.waves.length > 0) {
    out.push('');
    for (const w of br.waves.slice(0, 20)) {
      out.push(`- ${w.wave === null ? 'no wave' : `wave ${code(w.wave)}`}: ${nameList(w.tenants, 500, 15)}`);
    }
    if (br.waves.length > 20) out.push(`- and ${br.waves.length - 20} more waves`);
  }
  if (br.pausedChanged.length > 0) {
    out.push('', `⏸ **Paused** (changes wait until unpaused): ${nameList(br.pausedChanged, 600, 20)}`);
  }
  out.push('');

  const failed = report.tagChecks.filter((c) => c.result !== 'present');
  if (failed.length > 0) {
    out.push('> [!CAUTION]', `> **Image tag check failed** — do not merge until these tags exist in their registry:`, '>');
    for (const c of failed.slice(0, 15)) out.push(`> - ${tagCheckLine(c)}`);
    if (failed.length > 15) out.push(`> - and ${failed.length - 15} more failed checks`);
    out.push('');
  } else if (report.tagChecks.length > 0) {
    const checked = report.tagChecks.slice(0, 10).map((c) => code(`${c.image}:${c.tag}`));
    const more = report.tagChecks.length > 10 ? ` and ${report.tagChecks.length - 10} more` : '';
    out.push(`✅ Image tags present in the registry: ${checked.join(', ')}${more}`, '');
  }

  const uncovered = report.tenants.filter((t) => t.envCoverage.missing.length > 0);
  if (uncovered.length > 0) {
    out.push(
      '> [!CAUTION]',
      `> **Env coverage:** in ${plural(uncovered.length, 'tenant')}, compose would leave variables blank or stop on them, given the env patch and the keys the host holds (the tenant's secrets and \`hostEnv\`). The agent will refuse to apply until they have values.`,
      '>',
    );
    for (const t of uncovered.slice(0, 20)) {
      const fresh = t.envCoverage.newlyMissing.length;
      out.push(
        `> - ${code(t.slug)}: ${nameList(t.envCoverage.missing, 400, 10)}${fresh > 0 ? ` (${fresh} new in this change)` : ''}`,
      );
    }
    if (uncovered.length > 20) out.push(`> - and ${uncovered.length - 20} more tenants`);
    out.push('');
  }
  for (const note of report.notes.slice(0, 5)) out.push(`> [!NOTE]`, `> ${note.slice(0, 500).replace(/\n/g, ' ')}`, '');
  return out;
}

function tagCheckLine(c: TagCheck): string {
  const what = c.result === 'missing' ? 'not found' : `could not be checked: ${c.error?.slice(0, 200) ?? 'unknown error'}`;
  return `${code(`${c.image}:${c.tag}`)} ${what} (for ${nameList(c.tenants, 300, 8)})`;
}

// ---- one tenant -----------------------------------------------------------

function envRows(env: EnvChange[]): string[] {
  const rows = ['| Key | Before | After |', '|---|---|---|'];
  const value = (v: string | undefined, secret: boolean, present: boolean) =>
    !present ? '—' : secret ? '*secret, not shown*' : code(v ?? '');
  for (const e of env) {
    rows.push(
      `| ${code(e.key)} | ${value(e.before, e.secret, e.status !== 'added')} | ${value(e.after, e.secret, e.status !== 'removed')} |`,
    );
  }
  return rows;
}

function hostSettingRows(changes: HostSettingChange[]): string[] {
  const rows = ['| Setting | Before | After |', '|---|---|---|'];
  const cell = (items: string[], empty: string) => (items.length ? items.map(code).join('<br>') : empty);
  for (const c of changes) {
    const empty = c.setting === 'maintenance windows' ? '*any time*' : c.setting === 'files Flotilla did not write' ? '*refuse until decided*' : '—';
    rows.push(`| ${c.setting} | ${cell(c.before, empty)} | ${cell(c.after, empty)} |`);
  }
  return rows;
}

/** `KEY: secret changed` per key: a name and what happened, never a value or ciphertext. */
function centralSecretLines(t: TenantPlan): string[] {
  return t.centralSecrets.map((s) => `- ${code(s.key)}: secret ${s.change}`);
}

function sectionBase(t: TenantPlan): string {
  const meta: string[] = [];
  if (t.change === 'added') meta.push('new tenant');
  if (t.change === 'removed') meta.push('tenant removed');
  meta.push(t.wave ? `wave ${code(t.wave)}` : 'no wave');
  if (t.mode) meta.push(t.mode);
  if (t.mode === 'adopted') meta.push(t.adopt === 'replace' ? '`adopt: replace`: host files Flotilla did not write are replaced, copies kept' : 'host files Flotilla did not write: refused until decided (`adopt: replace`)');
  if (t.paused) meta.push('⏸ paused: not published until unpaused');
  const move = tagMove(t);
  const out = [`#### ${code(t.slug)}${move ? ` · ${move}` : ''}`, '', meta.join(' · '), ''];

  const changed = changedFiles(t);
  const unchanged = t.files.length - changed.length;
  const showAll = t.files.length <= MAX_UNCHANGED_ROWS;
  if (t.files.length > 0) {
    out.push('| File | Status | Bytes |', '|---|---|---:|');
    for (const f of showAll ? t.files : changed) out.push(`| ${code(f.path)} | ${STATUS_LABEL[f.status]} | ${sizeCell(f)} |`);
    if (!showAll && unchanged > 0) out.push(`| *${plural(unchanged, 'other file')}* | unchanged | |`);
    out.push('');
  }
  if (t.env.length > 0) out.push('**Env patch**', '', ...envRows(t.env), '');
  if (t.hostSettings.length > 0) out.push('**Host settings**', '', ...hostSettingRows(t.hostSettings), '');
  if (t.centralSecrets.length > 0) out.push('**Secrets set centrally** (encrypted to the host; values never shown)', '', ...centralSecretLines(t), '');
  if (t.envCoverage.missing.length > 0) {
    out.push(`> [!CAUTION]`, `> Missing for compose: ${nameList(t.envCoverage.missing, 800, 30)}`, '');
  }
  return out.join('\n');
}

function countLines(diff: string): { added: number; removed: number; lines: number } {
  let added = 0;
  let removed = 0;
  let inHunk = false;
  const lines = diff.split('\n');
  for (const line of lines) {
    if (line.startsWith('@@')) inHunk = true;
    else if (!inHunk) continue;
    else if (line.startsWith('+')) added++;
    else if (line.startsWith('-')) removed++;
  }
  return { added, removed, lines: lines.length - (diff.endsWith('\n') ? 1 : 0) };
}

/** Diff body without the `---`/`+++` header: identical bodies across tenants are shown once. */
function diffKey(f: FileChange): string {
  const diff = f.diff ?? '';
  const hunk = diff.indexOf('\n@@');
  return `${f.path}\0${f.status}\0${hunk === -1 ? diff : diff.slice(hunk)}`;
}

interface DiffBlock {
  path: string;
  key: string;
  markdown: string;
  /** Set when the diff had to be cut for this comment. */
  cut: boolean;
}

function diffBlock(f: FileChange, maxChars: number): DiffBlock | undefined {
  if (f.status === 'unchanged') return undefined;
  const summaryPath = `<code>${escapeHtml(f.path)}</code>`;
  if (f.diff === undefined) {
    const why = f.truncated ? 'change too large to diff; sizes only' : 'no textual diff';
    return { path: f.path, key: diffKey(f), cut: false, markdown: `- ${code(f.path)}: ${why}` };
  }
  const { added, removed, lines } = countLines(f.diff);
  let text = f.diff;
  let cutNote = '';
  if (text.length > maxChars) {
    const at = text.lastIndexOf('\n', maxChars - 1);
    text = text.slice(0, at > 0 ? at + 1 : maxChars);
    const kept = countLines(text).lines;
    cutNote = `✂ Diff cut after ${plural(kept, 'line')} of ${lines} (${bytes(f.diff.length - text.length)} characters not shown).`;
  } else if (f.truncated) {
    cutNote = '✂ Diff cut by the planner at its per-file limit.';
  }
  const fence = fenceFor(text);
  const body = [
    '<details>',
    `<summary>${summaryPath} — ${f.status}, +${added} −${removed}${cutNote ? ' (cut)' : ''}</summary>`,
    '',
    `${fence}diff`,
    text.endsWith('\n') ? text.slice(0, -1) : text,
    fence,
    cutNote ? `\n${cutNote}` : '',
    '</details>',
  ];
  return { path: f.path, key: diffKey(f), cut: cutNote !== '', markdown: body.filter((l, i) => l !== '' || i === 2).join('\n') };
}

function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

// ---- assembly -----------------------------------------------------------

interface Section {
  tenant: TenantPlan;
  base: string;
  diffs: string[];
  omitted: number;
}

/** The sticky PR comment: always at most `limit` characters, saying what it left out. */
export function renderPlanMarkdown(report: PlanReport, opts: PlanMarkdownOptions = {}): string {
  const limit = opts.limit ?? GITHUB_COMMENT_LIMIT;
  const maxDiffChars = opts.maxDiffChars ?? DEFAULT_MAX_DIFF_CHARS;
  const fullPlan = opts.fullPlanCommand ?? `flotilla plan --base ${report.base.commit ?? report.base.ref}`;
  const budget = limit - MARGIN;

  const changed = report.tenants.filter((t) => t.change !== 'unchanged');
  const unchanged = report.tenants.filter((t) => t.change === 'unchanged');
  const sides = `${code(report.base.ref)}${report.base.commit ? ` (${report.base.commit.slice(0, 7)})` : ''} → ${code(report.head.ref)}${report.head.commit ? ` (${report.head.commit.slice(0, 7)})` : ''}`;
  const verdict = !report.ok ? '❌' : report.tenants.some((t) => t.envCoverage.missing.length > 0) ? '⚠️' : '✅';
  const header = [
    PLAN_COMMENT_MARKER,
    `## ${verdict} Flotilla plan: ${plural(report.blastRadius.tenantsChanged, 'tenant')} and ${plural(report.blastRadius.filesChanged, 'file')} change`,
    '',
    sides,
    '',
    ...preflight(report),
  ].join('\n');

  let remaining = budget - header.length - REST_LIST_BUDGET - UNCHANGED_LINE_BUDGET - FOOTER_BUDGET;

  // Pass 1: every changed tenant's table, in order, while it fits. Tables may take at most
  // TABLE_SHARE of the room so that a large fleet still shows some diffs.
  const sections: Section[] = [];
  const folded: TenantPlan[] = [];
  let tableRoom = Math.floor(remaining * TABLE_SHARE);
  for (const t of changed) {
    const base = sectionBase(t);
    const cost = base.length + SECTION_NOTE_RESERVE + 2;
    if (folded.length === 0 && cost <= tableRoom) {
      sections.push({ tenant: t, base, diffs: [], omitted: 0 });
      tableRoom -= cost;
      remaining -= cost;
    } else {
      folded.push(t);
    }
  }

  // Pass 2: diffs, in the same order, while room remains; a diff already shown for another tenant is referenced.
  let diffsOmitted = 0;
  let diffsCut = 0;
  let diffsShared = 0;
  const shown = new Map<string, string>();
  for (const s of sections) {
    for (const f of changedFiles(s.tenant)) {
      const block = diffBlock(f, maxDiffChars);
      if (!block) continue;
      const first = shown.get(block.key);
      if (first !== undefined) {
        const line = `- ${code(f.path)}: same diff as ${code(first)}`;
        if (line.length + 1 <= remaining) {
          s.diffs.push(line);
          remaining -= line.length + 1;
          diffsShared++;
          continue;
        }
      }
      if (first === undefined && block.markdown.length + 2 <= remaining) {
        s.diffs.push(block.markdown);
        remaining -= block.markdown.length + 2;
        shown.set(block.key, s.tenant.slug);
        if (block.cut) diffsCut++;
      } else {
        s.omitted++;
        diffsOmitted++;
      }
    }
  }

  const parts: string[] = [header];
  if (sections.length > 0) parts.push('### Changes by tenant', '');
  for (const s of sections) {
    parts.push(s.base);
    if (s.diffs.length > 0) parts.push(s.diffs.join('\n\n'), '');
    if (s.omitted > 0) parts.push(`*Diffs of ${plural(s.omitted, 'file')} left out to keep this comment under GitHub's size limit.*`, '');
  }

  if (folded.length > 0) {
    const head = `**${plural(folded.length, 'more tenant')} change** (one line each to fit the comment):`;
    const lines: string[] = [];
    let length = head.length;
    for (const t of folded) {
      const line = `- ${code(t.slug)}${t.wave ? ` (${t.wave})` : ''}: ${fileSummary(t)}${t.imageTag.before !== t.imageTag.after ? ` · ${tagMove(t)}` : ''}`;
      if (length + line.length + 1 > REST_LIST_BUDGET - 80) break;
      lines.push(line);
      length += line.length + 1;
    }
    const unlisted = folded.length - lines.length;
    parts.push(head, '', ...lines);
    if (unlisted > 0) parts.push(`- and ${plural(unlisted, 'more tenant')}, listed in the full plan`);
    parts.push('');
  }

  if (unchanged.length > 0) {
    parts.push(`**Unchanged (${unchanged.length}):** ${nameList(unchanged.map((t) => t.slug), UNCHANGED_LINE_BUDGET - 60, 200)}`, '');
  }

  const shortened: string[] = [];
  if (folded.length > 0) shortened.push(`${plural(folded.length, 'tenant')} summarised in one line`);
  if (diffsOmitted > 0) shortened.push(`${plural(diffsOmitted, 'diff')} left out`);
  if (diffsCut > 0) shortened.push(`${plural(diffsCut, 'diff')} cut at ${bytes(maxDiffChars)} characters`);
  const footer: string[] = ['---'];
  if (diffsShared > 0) footer.push(`${plural(diffsShared, 'diff')} identical to one shown above ${diffsShared === 1 ? 'is' : 'are'} referenced instead of repeated.`);
  if (shortened.length > 0) {
    footer.push(
      `**This comment was shortened** to stay under GitHub's ${bytes(GITHUB_COMMENT_LIMIT)}-character limit: ${shortened.join('; ')}. Run ${code(fullPlan)} for the full plan.`,
    );
  }
  footer.push('<sub>Posted by `flotilla comment`; updated in place on every push.</sub>');
  parts.push(footer.join('\n\n'));

  let markdown = `${parts.join('\n')}\n`;
  if (markdown.length > limit) {
    // Only reachable with a pathological pre-flight; cut rather than be refused by GitHub.
    const note = `\n\n**Comment cut at ${bytes(limit)} characters.** Run ${code(fullPlan)} for the full plan.\n`;
    const at = markdown.lastIndexOf('\n', limit - note.length - 1);
    markdown = markdown.slice(0, Math.max(0, at)) + note;
  }
  return markdown;
}

/** The report as JSON for scripts (no secret values: a PlanReport never holds them). */
export function renderPlanJson(report: PlanReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}
