// What `flotilla-agent plan` prints. Values from the host's `.env` are never
// shown (an adopted host keeps its secrets there): only the env patch's own
// non-secret values, and generated secrets by name.
import type { FileChange } from '../renderer/core/diff.js';
import { describeHook } from '../renderer/core/manifest.js';
import { sizeChange, type ApplyPlan, type PlannedFile } from './apply.js';

export interface PlanTextOptions {
  /** Print unified diffs after the summary (default true). */
  diffs?: boolean;
}

export function renderPlanText(plan: ApplyPlan, opts: PlanTextOptions = {}): string {
  const m = plan.manifest;
  const out: string[] = [];
  out.push(`plan for ${m.tenant} (${m.mode}, image tag ${m.imageTag}, source ${m.source.commit.slice(0, 12)}) in ${plan.installDir}`);
  out.push('');
  out.push(...renderFileSummary(plan.files));
  out.push(...renderForeign(plan.files));
  if (plan.kept.length > 0) {
    out.push('', 'kept (not deleted):');
    for (const k of plan.kept) out.push(`  ${k.path}: ${k.reason}`);
  }

  out.push('', '.env:');
  const env = plan.env;
  const generated = new Set(env.generated);
  const lines: string[] = [];
  for (const key of env.changed) lines.push(`  changed   ${key}=${showValue(plan, key, generated)}`);
  for (const key of env.added) lines.push(`  added     ${key}=${showValue(plan, key, generated)}`);
  out.push(...(lines.length > 0 ? lines : ['  unchanged']));

  out.push('', 'env coverage:');
  if (plan.coverage.missing.length > 0) {
    out.push(
      `  missing ${plan.coverage.missing.join(', ')}: compose would substitute them blank or stop on them with .env as patched; the apply will be refused`,
    );
  } else {
    out.push(`  all ${plan.coverage.required.length} required variables are defined`);
  }

  out.push('', 'around the swap:');
  const hooks = [
    ...(m.hooks?.preSwap ?? []).map((h) => `  pre-swap  ${describeHook(h)}`),
    ...(m.hooks?.postUp ?? []).map((h) => `  post-up   ${describeHook(h)}`),
  ];
  out.push(...(hooks.length > 0 ? hooks : ['  no hooks']));
  out.push(
    '',
    m.windows?.length
      ? `applies: within ${m.windows.join(', ')} (the fleet's windows; a host's FLOTILLA_WINDOW replaces them)`
      : "applies: any time (no window in the manifest; a host's FLOTILLA_WINDOW would limit it)",
  );

  if (opts.diffs ?? true) {
    const diffs = renderDiffs(plan.files);
    if (diffs) out.push('', diffs.trimEnd());
  }
  return `${out.join('\n')}\n`;
}

/**
 * Managed paths whose file on disk is not what Flotilla last wrote, and what the apply
 * does with each: the operator's "Phase 0" list, to make the templates match first.
 */
export function renderForeign(files: PlannedFile[]): string[] {
  const foreign = files.filter((f) => f.foreign);
  if (foreign.length === 0) return [];
  const width = Math.max(...foreign.map((f) => f.path.length));
  const out = ['', 'files Flotilla did not write (or that changed on this host since it did):'];
  for (const f of foreign) {
    const d = f.foreign!;
    const what = d.kind === 'unowned' ? 'not written by Flotilla' : 'local change';
    const decision =
      d.decision === 'undecided'
        ? `refused until decided${d.note ? `: ${d.note}` : ''}`
        : d.decision === 'keep'
          ? `kept as it is (accepted on this host)`
          : `replaced, a copy kept (decided by ${d.by === 'fleet' ? 'the fleet: adopt: replace' : d.by === 'heal' ? 'FLOTILLA_DRIFT=heal' : 'this host: flotilla-agent adopt'})`;
    out.push(`  ${f.path.padEnd(width)}  ${what}, ${sizeChange(f)}: ${decision}`);
  }
  if (foreign.some((f) => f.foreign!.decision === 'undecided'))
    out.push(
      '  decide: make the templates match (the diffs below) and publish; or let Flotilla replace them:',
      "    `adopt: replace` in the tenant's fleet file, or `flotilla-agent adopt` on this host (copies kept);",
      '    or keep a local change: `flotilla-agent accept PATH`',
    );
  return out;
}

/** One line per file: status, path, sizes; then a count per status. */
export function renderFileSummary(changes: (FileChange | PlannedFile)[]): string[] {
  const counts = { modified: 0, created: 0, deleted: 0, unchanged: 0 };
  const width = Math.max(0, ...changes.map((c) => c.path.length));
  const lines = changes.map((c) => {
    counts[c.status]++;
    const sizes = `${formatSize(c.sizeBefore)} -> ${formatSize(c.sizeAfter)}`;
    const mode = modeNote(c);
    return `  ${c.status.padEnd(9)} ${c.path.padEnd(width)}  ${sizes}${mode}`.trimEnd();
  });
  return [
    `files: ${counts.modified} modified, ${counts.created} created, ${counts.deleted} deleted, ${counts.unchanged} unchanged`,
    ...lines,
  ];
}

/** The unified diffs of every changed file, a note where a diff was cut or not computed. */
export function renderDiffs(changes: FileChange[]): string {
  const parts: string[] = [];
  for (const c of changes) {
    if (c.status === 'unchanged') continue;
    if (c.diff) parts.push(c.diff.endsWith('\n') ? c.diff : `${c.diff}\n`);
    if (c.truncated)
      parts.push(
        c.diff ? `... diff of ${c.path} truncated\n` : `... ${c.path}: too many changed lines to diff (${formatSize(c.sizeBefore)} -> ${formatSize(c.sizeAfter)})\n`,
      );
  }
  return parts.join('');
}

function showValue(plan: ApplyPlan, key: string, generated: Set<string>): string {
  if (generated.has(key)) return '(generated secret, not shown)';
  return JSON.stringify(plan.manifest.envPatch[key] ?? '');
}

function modeNote(c: FileChange | PlannedFile): string {
  if (!('mode' in c) || c.mode === undefined || c.modeBefore === undefined || c.mode === c.modeBefore) return '';
  return `  mode 0${c.modeBefore.toString(8)} -> 0${c.mode.toString(8)}`;
}

function formatSize(bytes: number | undefined): string {
  if (bytes === undefined) return '-';
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
