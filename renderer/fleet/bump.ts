// The edits of `flotilla bump`: move tenants (or the fleet default) to a new image
// tag. Pure: file text in, file text out, through the yaml Document API so comments
// and layout stay; rollout/bump-branch.ts commits them.
import { isMap, isScalar, parseDocument } from 'yaml';
import { FleetConfigError, SettingError } from '../core/errors.js';
import { FLEET_FILE, IMAGE_TAG_PATTERN, TENANTS_DIR, loadFleetFromFiles, type Fleet } from './fleet.js';

export interface TagMove {
  slug: string;
  from: string;
  to: string;
}

export interface BumpRequest {
  /** Tenants to move; ignored with `all`. */
  slugs: string[];
  /** Move the fleet default (fleet.yaml) instead of named tenants. */
  all: boolean;
  tag: string;
}

export interface BumpPlan {
  tag: string;
  all: boolean;
  /** Files to write, repo-relative path -> new text. Empty when nothing moves. */
  edits: Map<string, string>;
  /** Tenants whose resolved tag changes. */
  moves: TagMove[];
  /** Tenants named (or, with --all, following the default) that already run the tag. */
  alreadyThere: string[];
  /** With --all: tenants that pin another tag and therefore do not move. */
  pinned: Array<{ slug: string; tag: string }>;
  /** With --all: the fleet default before the bump. */
  defaultFrom?: string;
}

/** Throws a SettingError unless `tag` is a valid Docker tag. */
export function checkTag(tag: string): void {
  if (!IMAGE_TAG_PATTERN.test(tag))
    throw new SettingError(
      '--tag',
      `${JSON.stringify(tag)} is not a valid image tag: 1 to 128 characters of letters, digits, _ . - not starting with . or -`,
    );
}

/**
 * Sets `path` to `value` in a YAML text, keeping comments, key order and layout.
 * A missing key is appended to its mapping.
 */
export function setYamlScalar(text: string, path: string[], value: string, file: string): string {
  const doc = parseDocument(text);
  if (doc.errors.length > 0)
    throw new FleetConfigError([{ file, keyPath: '', message: `invalid YAML: ${doc.errors[0]!.message.split('\n')[0]}` }]);
  if (!isMap(doc.contents)) throw new FleetConfigError([{ file, keyPath: '', message: 'expected a mapping of keys' }]);
  const existing = doc.getIn(path, true);
  if (isScalar(existing) && existing.range) {
    // Splice the new value into the original text at the node's range: every other
    // byte (comments, spacing before them, quotes style) stays as the author wrote it.
    const [start, end] = existing.range;
    const source =
      existing.type === 'QUOTE_DOUBLE'
        ? JSON.stringify(value)
        : existing.type === 'QUOTE_SINGLE'
          ? `'${value.replace(/'/g, "''")}'`
          : plainOrQuoted(value);
    return text.slice(0, start) + source + text.slice(end);
  }
  doc.setIn(path, value);
  return doc.toString();
}

/** A plain scalar when YAML reads it back as the same string (not `1.10` -> 1.1), else double-quoted. */
function plainOrQuoted(value: string): string {
  const back = parseDocument(`k: ${value}`).get('k');
  return back === value ? value : JSON.stringify(value);
}

/** Computes the edits a bump makes; the result is validated by loading the edited fleet. */
export function planBump(files: Map<string, string>, fleet: Fleet, request: BumpRequest): BumpPlan {
  checkTag(request.tag);
  const plan: BumpPlan = { tag: request.tag, all: request.all, edits: new Map(), moves: [], alreadyThere: [], pinned: [] };
  if (request.all) {
    plan.defaultFrom = fleet.defaults.imageTag;
    for (const t of fleet.tenants) {
      if (t.imageTagPinned) plan.pinned.push({ slug: t.slug, tag: t.imageTag });
      else if (t.imageTag === request.tag) plan.alreadyThere.push(t.slug);
      else plan.moves.push({ slug: t.slug, from: t.imageTag, to: request.tag });
    }
    if (fleet.defaults.imageTag !== request.tag) {
      plan.edits.set(FLEET_FILE, setYamlScalar(files.get(FLEET_FILE)!, ['defaults', 'imageTag'], request.tag, FLEET_FILE));
    }
  } else {
    if (request.slugs.length === 0) throw new SettingError('SLUG', 'name at least one tenant, or pass --all for the fleet default');
    const unknown = request.slugs.filter((s) => !fleet.tenants.some((t) => t.slug === s));
    if (unknown.length > 0)
      throw new SettingError('SLUG', `no tenant ${unknown.map((s) => `"${s}"`).join(', ')} (no file ${TENANTS_DIR}/<slug>.yaml)`);
    for (const slug of [...new Set(request.slugs)]) {
      const tenant = fleet.tenants.find((t) => t.slug === slug)!;
      if (tenant.imageTag === request.tag) {
        plan.alreadyThere.push(slug);
        continue;
      }
      plan.moves.push({ slug, from: tenant.imageTag, to: request.tag });
      plan.edits.set(tenant.file, setYamlScalar(files.get(tenant.file)!, ['imageTag'], request.tag, tenant.file));
    }
  }
  if (plan.edits.size > 0) loadFleetFromFiles(new Map([...files, ...plan.edits]));
  return plan;
}

/** `bump/linda-pia-v2.10.3`, `bump/all-v2.11.0`; long lists shortened, always a valid ref name. */
export function bumpBranchName(plan: BumpPlan): string {
  const slugs = plan.moves.map((m) => m.slug);
  const who = plan.all ? 'all' : slugs.length <= 3 ? slugs.join('-') : `${slugs.slice(0, 2).join('-')}-and-${slugs.length - 2}-more`;
  const tag = plan.tag.replace(/\.{2,}/g, '.').replace(/\.$/, '_');
  return `bump/${who}-${tag}`.replace(/\.lock$/, '_lock');
}

export function bumpTitle(plan: BumpPlan): string {
  if (plan.all) return `Bump fleet default image tag to ${plan.tag}`;
  const slugs = plan.moves.map((m) => m.slug);
  const who = slugs.length <= 3 ? slugs.join(', ') : `${slugs.slice(0, 2).join(', ')} and ${slugs.length - 2} more`;
  return `Bump ${who} to ${plan.tag}`;
}

/** The PR body and commit message body: each tenant old -> new tag. */
export function bumpBody(plan: BumpPlan): string {
  const lines: string[] = [];
  if (plan.all) lines.push(`Fleet default \`imageTag\`: \`${plan.defaultFrom}\` → \`${plan.tag}\``, '');
  lines.push('| Tenant | Image tag |', '|---|---|');
  for (const m of plan.moves) lines.push(`| \`${m.slug}\` | \`${m.from}\` → \`${m.to}\` |`);
  if (plan.alreadyThere.length > 0) lines.push('', `Already on \`${plan.tag}\`: ${plan.alreadyThere.map((s) => `\`${s}\``).join(', ')}.`);
  if (plan.pinned.length > 0)
    lines.push('', `Pinned to their own tag, not moved: ${plan.pinned.map((p) => `\`${p.slug}\` (\`${p.tag}\`)`).join(', ')}.`);
  lines.push('', 'The `preview` workflow comments the rendered diff for every tenant; merging rolls it out.');
  return lines.join('\n');
}

/** What `bump` prints when nothing would move. */
export function noOpMessage(plan: BumpPlan): string {
  const parts: string[] = [];
  if (plan.all) parts.push(`the fleet default is already ${plan.tag}`);
  if (plan.alreadyThere.length > 0) parts.push(`already on ${plan.tag}: ${plan.alreadyThere.join(', ')}`);
  if (plan.pinned.length > 0) parts.push(`pinned to their own tag: ${plan.pinned.map((p) => `${p.slug} (${p.tag})`).join(', ')}`);
  return `nothing to bump: ${parts.join('; ')}; no branch or pull request created`;
}
