// What a change to fleet/ or templates/ does, tenant by tenant: `buildPlan`
// compares the base render with the head render and is pure apart from the
// injected registry check; plan-revisions.ts reads and renders both sides
// (through repo.ts). plan-markdown.ts turns the report into the PR comment.
import { fileChanges, type FileChange } from '../core/diff.js';
import { COMPOSE_FILE_NAMES, evaluateComposeText } from '../core/compose-vars.js';
import { ComposeFileError, RegistryError } from '../core/errors.js';
import { byCodeUnits, describeHook, MANIFEST_PATH, type Manifest, type RenderedFile, type TenantMode } from '../core/manifest.js';
import { encryptedSecretChanges, type SecretChange } from '../core/secrets.js';
import type { Fleet, Tenant } from '../fleet/fleet.js';

/** One tenant's render, as render.ts produces it (only what a plan reads). */
export interface RenderedSide {
  slug: string;
  paused: boolean;
  manifest: Manifest;
  files: RenderedFile[];
}

export type RegistryCheckResult = 'present' | 'missing' | { error: string };
export type RegistryCheck = (image: string, tag: string) => Promise<RegistryCheckResult>;

export interface EnvChange {
  key: string;
  status: 'added' | 'changed' | 'removed';
  /** Absent when the key is a secret (values of secrets are never put in a plan). */
  before?: string;
  after?: string;
  secret: boolean;
}

export interface EnvCoverage {
  /** Variables the head compose file requires. */
  required: string[];
  /**
   * Names compose would substitute blank (with its warning) or stop on, given the env
   * patch and the keys the host holds (the tenant's secrets and hostEnv, taken as set).
   */
  missing: string[];
  /** Of `missing`, those that were not missing in the base render (the change introduces them). */
  newlyMissing: string[];
}

export interface TagCheck {
  /** Full image name, `registry/name`. */
  image: string;
  tag: string;
  result: 'present' | 'missing' | 'error';
  error?: string;
  /** Tenants that move to this tag. */
  tenants: string[];
}

/**
 * What the agent takes from the manifest besides files and env: when it may apply,
 * what it runs around the swap, which secrets it generates. Each item as a person reads it.
 */
export interface HostSettingChange {
  setting: 'maintenance windows' | 'pre-swap hooks' | 'post-up hooks' | 'secrets generated on the host' | 'files Flotilla did not write';
  before: string[];
  after: string[];
}

export type TenantChange = 'added' | 'removed' | 'changed' | 'unchanged';

export interface TenantPlan {
  slug: string;
  change: TenantChange;
  paused: boolean;
  mode?: TenantMode;
  /** The fleet's decision for files at managed paths the host holds and Flotilla did not write. */
  adopt?: 'replace';
  /** Rollout wave of the tenant in the head fleet; undefined when no wave names it. */
  wave?: string;
  imageTag: { before?: string; after?: string };
  /** Every rendered file of either side, unchanged ones included, sorted by path. */
  files: FileChange[];
  env: EnvChange[];
  /** Changes in maintenance windows, hooks and generated secrets (they live only in the manifest). */
  hostSettings: HostSettingChange[];
  /**
   * Secrets set centrally (`flotilla secret set`) added, changed (a new value or a
   * re-encryption) or removed: names only, never a value or ciphertext.
   */
  centralSecrets: SecretChange[];
  envCoverage: EnvCoverage;
}

export interface WaveImpact {
  /** Wave name; null for tenants no wave names. */
  wave: string | null;
  tenants: string[];
}

export interface BlastRadius {
  tenantsTotal: number;
  tenantsChanged: number;
  /** Files created, modified or deleted, summed over tenants. */
  filesChanged: number;
  /** Changed tenants grouped by rollout wave, in rollout order. */
  waves: WaveImpact[];
  /** Changed tenants that are paused: their branch is not published until unpaused. */
  pausedChanged: string[];
  /** Every paused tenant of the head fleet. */
  paused: string[];
}

export interface PlanSide {
  /** The ref as the user named it (`origin/main`, a sha, `working tree`). */
  ref: string;
  commit?: string;
}

export interface PlanReport {
  base: PlanSide;
  head: PlanSide;
  tenants: TenantPlan[];
  blastRadius: BlastRadius;
  tagChecks: TagCheck[];
  /** Things the reader must know that are not per-file (e.g. the base could not be rendered). */
  notes: string[];
  /** False when an image tag is missing from its registry or could not be checked. */
  ok: boolean;
}

export interface BuildPlanInput {
  base: RenderedSide[];
  head: RenderedSide[];
  /** The head fleet: waves, secrets, hostEnv, registry and images. */
  fleet: Fleet;
  registryCheck?: RegistryCheck;
  baseSide?: PlanSide;
  headSide?: PlanSide;
  notes?: string[];
  /** Longest diff kept per file (default: diff.ts's default). */
  maxDiffChars?: number;
}

/**
 * A side's files minus the manifest (it names the source commit, and what it says
 * is shown as env and coverage instead). The header line of a rendered file names
 * the source commit too; base headers are rewritten to the head's commit so a
 * file differs only where the render does.
 */
/**
 * A file whose mode alone changed is rewritten on the host (chmod), so it is modified
 * here too, with git's `old mode` / `new mode` lines heading its diff.
 */
function markModeChanges(files: FileChange[], base: RenderedSide | undefined, head: RenderedSide | undefined): FileChange[] {
  if (!base || !head) return files;
  const modeOf = (side: RenderedSide) => new Map(side.manifest.files.map((f) => [f.path, f.mode]));
  const before = modeOf(base);
  const after = modeOf(head);
  const octal = (mode: number) => (mode === 0o755 ? '100755' : '100644');
  for (const f of files) {
    const a = before.get(f.path);
    const b = after.get(f.path);
    if (a === undefined || b === undefined || a === b) continue;
    const modeLines = `old mode ${octal(a)}\nnew mode ${octal(b)}\n`;
    if (f.status === 'unchanged') {
      f.status = 'modified';
      f.diff = modeLines;
    } else if (f.diff !== undefined) f.diff = modeLines + f.diff;
  }
  return files;
}

/** A side's files by path, without the manifest: it names the source commit, which every change moves (what else it carries is compared on its own). */
function filesMap(side: RenderedSide | undefined): Map<string, string | undefined> {
  const files = new Map<string, string | undefined>();
  for (const f of side?.files ?? []) if (f.path !== MANIFEST_PATH) files.set(f.path, f.content);
  return files;
}

/** Env patch differences; a key named as a secret on either side never carries its value. */
export function envChanges(
  before: Record<string, string>,
  after: Record<string, string>,
  secrets: ReadonlySet<string>,
): EnvChange[] {
  const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort(byCodeUnits);
  const out: EnvChange[] = [];
  for (const key of keys) {
    const b = Object.hasOwn(before, key) ? before[key] : undefined;
    const a = Object.hasOwn(after, key) ? after[key] : undefined;
    if (b === a) continue;
    const status = b === undefined ? 'added' : a === undefined ? 'removed' : 'changed';
    const secret = secrets.has(key);
    const change: EnvChange = { key, status, secret };
    if (!secret) {
      if (b !== undefined) change.before = b;
      if (a !== undefined) change.after = a;
    }
    out.push(change);
  }
  return out;
}

/** Host settings that differ between two renders of a tenant (either may be absent). */
export function hostSettingChanges(before: Manifest | undefined, after: Manifest | undefined): HostSettingChange[] {
  const read = (m: Manifest | undefined): [HostSettingChange['setting'], string[]][] => [
    ['maintenance windows', m?.windows ?? []],
    ['pre-swap hooks', (m?.hooks?.preSwap ?? []).map(describeHook)],
    ['post-up hooks', (m?.hooks?.postUp ?? []).map(describeHook)],
    // A secret set centrally is not generated: its own line says `KEY: secret added`.
    ['secrets generated on the host', (m?.secrets ?? []).filter((k) => !Object.hasOwn(m?.encryptedSecrets ?? {}, k)).sort(byCodeUnits)],
    ['files Flotilla did not write', m?.adopt === 'replace' ? ['replace (the host keeps a copy)'] : []],
  ];
  const was = read(before);
  return read(after).flatMap(([setting, items], i) => {
    const old = was[i]![1];
    return JSON.stringify(old) === JSON.stringify(items) ? [] : [{ setting, before: old, after: items }];
  });
}

// Stands for the value of a key the host holds (a generated secret, a `hostEnv` name):
// unknown here, but set and not empty, which is all interpolation asks of it.
const HOST_HELD_VALUE = '(held on the host)';

/**
 * What compose would substitute blank with its warning, or stop on, in the side's
 * compose file with the values the PR knows: the env patch (written into the host's
 * `.env`, so it wins) over the keys the host holds. Without a compose file compose
 * can read, the manifest's required names that none of those define.
 */
function missingVariables(side: RenderedSide | undefined, tenant: Tenant | undefined): string[] {
  if (!side) return [];
  const { manifest } = side;
  const hostHeld = [...manifest.secrets, ...Object.keys(manifest.encryptedSecrets ?? {}), ...(tenant?.secrets ?? []), ...(tenant?.hostEnv ?? [])];
  const env: Record<string, string> = Object.fromEntries([
    ...hostHeld.map((name) => [name, HOST_HELD_VALUE] as const),
    ...Object.entries(manifest.envPatch),
  ]);
  const composeFile = COMPOSE_FILE_NAMES.map((name) => side.files.find((f) => f.path === name)).find((f) => f);
  if (composeFile) {
    // A first-line comment (the header naming the tenant) holds no value; without it most
    // tenants share one text, which is loaded once.
    const text = composeFile.content.replace(/^#[^\n]*\n/, '');
    try {
      return evaluateComposeText(text, composeFile.path, env).missing.sort(byCodeUnits);
    } catch (e) {
      // Render rejects such a file with its path; the plan does not stop for it.
      if (!(e instanceof ComposeFileError)) throw e;
    }
  }
  return [...new Set(manifest.requiredVariables)].filter((v) => !Object.prototype.hasOwnProperty.call(env, v)).sort(byCodeUnits);
}

/** The first wave that names the tenant, as publish rolls out. */
export function waveOf(fleet: Fleet, slug: string): string | undefined {
  return fleet.waves.find((w) => w.tenants.includes(slug))?.name;
}

/** Images that follow the tenant's IMAGE_TAG (those without a pinned `:tag`), as `registry/name`. */
export function taggedImages(fleet: Fleet): string[] {
  const registry = fleet.defaults.registry.replace(/\/+$/, '');
  return [...new Set(Object.values(fleet.defaults.images))]
    .filter((name) => !name.includes(':'))
    .sort(byCodeUnits)
    .map((name) => `${registry}/${name}`);
}

async function runTagChecks(
  moves: Map<string, string[]>,
  images: string[],
  check: RegistryCheck,
): Promise<TagCheck[]> {
  const jobs: TagCheck[] = [];
  for (const [tag, tenants] of [...moves].sort(([a], [b]) => byCodeUnits(a, b))) {
    for (const image of images) jobs.push({ image, tag, result: 'present', tenants: [...tenants].sort(byCodeUnits) });
  }
  // A few at a time: a fleet-wide bump is one check per image, a mixed one stays polite to the registry.
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const job = jobs[next++]!;
      let result: RegistryCheckResult;
      try {
        result = await check(job.image, job.tag);
      } catch (e) {
        result = { error: (e as Error).message };
      }
      if (typeof result === 'object') {
        job.result = 'error';
        job.error = result.error;
      } else {
        job.result = result;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(4, jobs.length) }, worker));
  return jobs;
}

/** Compares base and head renders tenant by tenant; the registry check is the only I/O. */
export async function buildPlan(input: BuildPlanInput): Promise<PlanReport> {
  const { fleet } = input;
  const baseBySlug = new Map(input.base.map((t) => [t.slug, t]));
  const headBySlug = new Map(input.head.map((t) => [t.slug, t]));
  const tenantBySlug = new Map(fleet.tenants.map((t) => [t.slug, t]));
  const slugs = [...new Set([...baseBySlug.keys(), ...headBySlug.keys()])].sort(byCodeUnits);

  const tenants: TenantPlan[] = [];
  const tagMoves = new Map<string, string[]>();
  for (const slug of slugs) {
    const base = baseBySlug.get(slug);
    const head = headBySlug.get(slug);
    const tenant = tenantBySlug.get(slug);
    const files = markModeChanges(
      fileChanges(filesMap(base), filesMap(head), input.maxDiffChars ? { maxDiffChars: input.maxDiffChars } : {}),
      base,
      head,
    );
    const secrets = new Set<string>([
      ...(base?.manifest.secrets ?? []),
      ...(head?.manifest.secrets ?? []),
      ...(tenant?.secrets ?? []),
      ...fleet.defaults.secrets,
    ]);
    const env = envChanges(base?.manifest.envPatch ?? {}, head?.manifest.envPatch ?? {}, secrets);
    const missing = missingVariables(head, tenant);
    const missingBefore = new Set(missingVariables(base, tenant));
    const imageTag: TenantPlan['imageTag'] = {};
    if (base) imageTag.before = base.manifest.imageTag;
    if (head) imageTag.after = head.manifest.imageTag;
    const fileChanged = files.some((f) => f.status !== 'unchanged');
    const hostSettings = hostSettingChanges(base?.manifest, head?.manifest);
    const centralSecrets = encryptedSecretChanges(base?.manifest.encryptedSecrets, head?.manifest.encryptedSecrets);
    const change: TenantChange = !base
      ? 'added'
      : !head
        ? 'removed'
        : fileChanged || env.length > 0 || hostSettings.length > 0 || centralSecrets.length > 0 || imageTag.before !== imageTag.after
          ? 'changed'
          : 'unchanged';
    const plan: TenantPlan = {
      slug,
      change,
      paused: head?.paused ?? tenant?.paused ?? base?.paused ?? false,
      imageTag,
      files,
      env,
      hostSettings,
      centralSecrets,
      envCoverage: {
        required: [...(head?.manifest.requiredVariables ?? [])].sort(byCodeUnits),
        missing,
        newlyMissing: missing.filter((v) => !missingBefore.has(v)),
      },
    };
    const mode = head?.manifest.mode ?? base?.manifest.mode;
    if (mode) plan.mode = mode;
    if (head?.manifest.adopt) plan.adopt = head.manifest.adopt;
    const wave = waveOf(fleet, slug);
    if (wave) plan.wave = wave;
    tenants.push(plan);
    if (head && imageTag.after !== imageTag.before) {
      const list = tagMoves.get(head.manifest.imageTag) ?? [];
      list.push(slug);
      tagMoves.set(head.manifest.imageTag, list);
    }
  }

  const tagChecks = input.registryCheck ? await runTagChecks(tagMoves, taggedImages(fleet), input.registryCheck) : [];
  const changed = tenants.filter((t) => t.change !== 'unchanged');
  const waveOrder = new Map(fleet.waves.map((w, i) => [w.name, i]));
  const waves = new Map<string | null, string[]>();
  for (const t of changed) {
    const key = t.wave ?? null;
    waves.set(key, [...(waves.get(key) ?? []), t.slug]);
  }
  const blastRadius: BlastRadius = {
    tenantsTotal: headBySlug.size,
    tenantsChanged: changed.length,
    filesChanged: changed.reduce((n, t) => n + t.files.filter((f) => f.status !== 'unchanged').length, 0),
    waves: [...waves]
      .map(([wave, list]) => ({ wave, tenants: list }))
      .sort((a, b) => (a.wave === null ? Infinity : waveOrder.get(a.wave)!) - (b.wave === null ? Infinity : waveOrder.get(b.wave)!)),
    pausedChanged: changed.filter((t) => t.paused).map((t) => t.slug),
    paused: tenants.filter((t) => t.paused && t.change !== 'removed').map((t) => t.slug),
  };
  return {
    base: input.baseSide ?? { ref: 'base' },
    head: input.headSide ?? { ref: 'head' },
    tenants,
    blastRadius,
    tagChecks,
    notes: [...(input.notes ?? [])],
    ok: tagChecks.every((c) => c.result === 'present'),
  };
}

/** Exit code of `flotilla plan`: 1 when a tag is missing or could not be checked. */
export function planExitCode(report: PlanReport): number {
  return report.ok ? 0 : 1;
}

// ---- reading the inputs -------------------------------------------------

/** The error `plan` exits with after printing a plan whose tag check failed. */
export function tagCheckFailure(report: PlanReport): RegistryError | undefined {
  const failed = report.tagChecks.filter((c) => c.result !== 'present');
  if (failed.length === 0) return undefined;
  const first = failed[0]!;
  const what = failed.map((c) => `${c.image}:${c.tag} ${c.result === 'missing' ? 'is missing' : 'could not be checked'}`);
  return new RegistryError(`${first.image}:${first.tag}`, `image tag check failed: ${what.join('; ')}`);
}
