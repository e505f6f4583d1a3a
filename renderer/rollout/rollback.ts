// `flotilla rollback`: the edits that give named tenants back the render they had at
// an earlier commit, scoped to those tenants, as a reviewable change. Pure: file
// maps in, edits out; rollback-branch.ts commits them and opens the PR.
//
// Restoring a tenant file alone is not enough when the change was a fleet default
// (a `defaults.imageTag` bump reaches every tenant without touching its file), so
// the restored file also pins every resolved setting that differs from the earlier
// one (imageTag, domain, env values, feature flags). What a tenant file cannot undo
// (a template edit, a new default secret) is reported, never hidden: the result is
// checked by rendering both sides.
import { isMap, parseDocument } from 'yaml';
import { FleetConfigError, SettingError } from '../core/errors.js';
import type { RenderedFile } from '../core/manifest.js';
import { setYamlScalar } from '../fleet/bump.js';
import { loadFleetFromFiles, TENANTS_DIR, type Fleet, type Tenant } from '../fleet/fleet.js';
import type { FleetFiles } from '../repo.js';
import { compileTemplates, renderTenant, type TemplateSet } from '../render/render.js';

export interface RollbackPlan {
  slugs: string[];
  /** Repo-relative path -> new text. */
  edits: Map<string, string>;
  /** Per tenant, the settings pinned beyond restoring its file. */
  pinned: Array<{ slug: string; key: string; value: string | boolean }>;
  /** Tenants whose render still differs from the earlier one, with the files that differ. */
  inexact: Array<{ slug: string; files: string[] }>;
}

const TEMPLATES_PREFIX = 'templates/';

function templatesOf(inputs: FleetFiles): TemplateSet {
  const files = new Map<string, string>();
  const modes = new Map<string, number>();
  for (const [path, content] of inputs.files) {
    if (!path.startsWith(TEMPLATES_PREFIX)) continue;
    files.set(path.slice(TEMPLATES_PREFIX.length), content);
    modes.set(path.slice(TEMPLATES_PREFIX.length), inputs.modes.get(path) ?? 0o644);
  }
  return compileTemplates(files, modes);
}

/** Sets a value at `path`, keeping comments; strings go through bump's splice so layout stays byte-exact. */
function pinValue(text: string, path: string[], value: string | boolean, file: string): string {
  if (typeof value === 'string') return setYamlScalar(text, path, value, file);
  const doc = parseDocument(text);
  if (!isMap(doc.contents)) throw new FleetConfigError([{ file, keyPath: '', message: 'expected a mapping of keys' }]);
  doc.setIn(path, value);
  return doc.toString();
}

// The source a render names is the same on both sides, so only settings and templates differ.
const SAME_SOURCE = { repo: 'rollback-check', commit: '0'.repeat(40) };

function differingFiles(a: RenderedFile[], b: RenderedFile[]): string[] {
  const byPath = new Map(b.map((f) => [f.path, f]));
  const out = new Set<string>();
  for (const f of a) {
    const other = byPath.get(f.path);
    if (!other || other.content !== f.content || other.mode !== f.mode) out.add(f.path);
  }
  for (const f of b) if (!a.some((x) => x.path === f.path)) out.add(f.path);
  return [...out].sort();
}

function tenantOf(fleet: Fleet, slug: string): Tenant | undefined {
  return fleet.tenants.find((t) => t.slug === slug);
}

/**
 * Edits on top of `current` that give each of `slugs` the render it had at `previous`.
 * Throws a SettingError for a tenant that did not exist at `previous` (nothing to return to).
 */
export function planRollback(current: FleetFiles, previous: FleetFiles, slugs: string[]): RollbackPlan {
  const unique = [...new Set(slugs)];
  if (unique.length === 0) throw new SettingError('SLUG', 'name at least one tenant to roll back');
  const before = loadFleetFromFiles(previous.files);
  const now = loadFleetFromFiles(current.files);
  const missingNow = unique.filter((s) => !tenantOf(now, s));
  if (missingNow.length) throw new SettingError('SLUG', `no tenant ${missingNow.join(', ')} (no file ${TENANTS_DIR}/<slug>.yaml)`);
  const missingBefore = unique.filter((s) => !tenantOf(before, s));
  if (missingBefore.length)
    throw new SettingError('--to', `${missingBefore.join(', ')} did not exist at that commit; there is nothing to roll back to (pause the tenant instead)`);

  const plan: RollbackPlan = { slugs: unique, edits: new Map(), pinned: [], inexact: [] };
  for (const slug of unique) {
    const old = tenantOf(before, slug)!;
    const file = `${TENANTS_DIR}/${slug}.yaml`;
    let text = previous.files.get(old.file)!;
    const resolve = () => tenantOf(loadFleetFromFiles(new Map([...current.files, ...plan.edits, [file, text]])), slug)!;
    let restored = resolve();
    const pin = (path: string[], value: string | boolean) => {
      text = pinValue(text, path, value, file);
      plan.pinned.push({ slug, key: path.join('.'), value });
    };
    if (restored.imageTag !== old.imageTag) pin(['imageTag'], old.imageTag);
    if (restored.domain !== old.domain) pin(['domain'], old.domain);
    for (const [key, value] of Object.entries(old.env)) if (restored.env[key] !== value) pin(['env', key], value);
    for (const [flag, value] of Object.entries(old.features))
      if (flag in restored.features && restored.features[flag] !== value) pin(['features', flag], value);
    restored = resolve();
    if (text !== current.files.get(file)) plan.edits.set(file, text);

    const withEdits: FleetFiles = { files: new Map([...current.files, ...plan.edits]), modes: current.modes };
    const want = renderTenant(before, old, templatesOf(previous), SAME_SOURCE).files;
    const got = renderTenant(loadFleetFromFiles(withEdits.files), restored, templatesOf(withEdits), SAME_SOURCE).files;
    const differ = differingFiles(want, got);
    if (differ.length) plan.inexact.push({ slug, files: differ });
  }
  return plan;
}

/** `rollback/linda-pia-1a2b3c4d5e6f`; the commit is the one rolled back to, so a rerun finds the same branch. */
export function rollbackBranchName(slugs: string[], to: string): string {
  const sorted = [...new Set(slugs)].sort();
  const who = sorted.length <= 3 ? sorted.join('-') : `${sorted.slice(0, 2).join('-')}-and-${sorted.length - 2}-more`;
  return `rollback/${who}-${to.slice(0, 12)}`;
}

export function rollbackTitle(plan: RollbackPlan, to: string): string {
  const who = plan.slugs.length <= 3 ? plan.slugs.join(', ') : `${plan.slugs.slice(0, 2).join(', ')} and ${plan.slugs.length - 2} more`;
  return `Roll back ${who} to ${to.slice(0, 12)}`;
}

/** Marker line in the PR body: promote finds its own PR by it (and by branch name). */
export function rollbackMarker(to: string, slugs: string[]): string {
  return `<!-- flotilla-rollback to=${to} tenants=${[...new Set(slugs)].sort().join(',')} -->`;
}

export function rollbackBody(plan: RollbackPlan, to: string, reason?: string): string {
  const lines = [rollbackMarker(to, plan.slugs), ''];
  if (reason) lines.push(reason, '');
  lines.push(
    `Restores the settings ${plan.slugs.map((s) => `\`${s}\``).join(', ')} had at ${to}; no other tenant changes.`,
    '',
  );
  if (plan.pinned.length) {
    lines.push('Pinned in the tenant file because a fleet default changed:', '', '| Tenant | Setting | Value |', '|---|---|---|');
    for (const p of plan.pinned) lines.push(`| \`${p.slug}\` | \`${p.key}\` | \`${String(p.value)}\` |`);
    lines.push('');
  }
  if (plan.inexact.length) {
    lines.push('**Not an exact rollback**: a tenant file cannot undo these (templates or fleet-wide settings changed):', '');
    for (const i of plan.inexact) lines.push(`- \`${i.slug}\`: ${i.files.map((f) => `\`${f}\``).join(', ')}`);
    lines.push('');
  }
  lines.push('The `preview` workflow comments the rendered diff; merging publishes it like any change. Remove the pins afterwards to follow the fleet again.');
  return lines.join('\n');
}
