// `flotilla plan --base REF [--head REF]`: render both sides of a change on a local
// checkout and report, per tenant and per file, what it does; exit 1 when an image
// tag the change moves to is missing from its registry.
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { Option, type Command } from 'commander';
import { FlotillaError, RegistryError, SettingError } from '../core/errors.js';
import { FLEET_FILE, loadFleetFromFiles, type Fleet, type Tenant, type YamlParses } from '../fleet/fleet.js';
import { fleetRoot, type CliIo } from '../cli.js';
import {
  buildPlan,
  readFleetFilesAtRef,
  readFleetFilesFromDir,
  type BlobTexts,
  type FleetFiles,
  type PlanReport,
  type RegistryCheck,
  type RenderedSide,
} from '../plan/plan.js';
import { renderPlanJson, renderPlanMarkdown } from '../plan/plan-markdown.js';
import { tagExists, type RegistryCredentials } from '../plan/registry.js';
import { compileTemplates, renderTenant, type RenderSource, type TemplateSet } from '../render/render.js';
import { resolveSource } from './render.js';
import { createProgress } from '../progress.js';

export interface PlanRepoOptions {
  /** Repository root (a git checkout). */
  root: string;
  base: string;
  /** A ref; the working tree when undefined. */
  head?: string;
  registryCheck?: RegistryCheck;
  onProgress?: PlanProgress;
}

const TEMPLATES_PREFIX = 'templates/';

/** Templates keyed by path under templates/, as compileTemplates takes them. */
function templateInputs(inputs: FleetFiles): { files: Map<string, string>; modes: Map<string, number> } {
  const files = new Map<string, string>();
  const modes = new Map<string, number>();
  for (const [path, content] of inputs.files) {
    if (!path.startsWith(TEMPLATES_PREFIX)) continue;
    const rel = path.slice(TEMPLATES_PREFIX.length);
    files.set(rel, content);
    modes.set(rel, inputs.modes.get(path) ?? 0o644);
  }
  return { files, modes };
}

/** Reports rendering progress per side (`base`, `head`), one tenant at a time. */
export type PlanProgress = (phase: 'render base' | 'render head', done: number, total: number, slug: string) => void;

interface RenderedFleetSide {
  fleet: Fleet;
  templates: TemplateSet;
  rendered: RenderedSide[];
}

/** Whether both sides hold the same templates, byte for byte and mode for mode. */
function sameTemplates(a: FleetFiles, b: FleetFiles): boolean {
  const paths = (f: FleetFiles) => [...f.files.keys()].filter((p) => p.startsWith(TEMPLATES_PREFIX));
  const pa = paths(a);
  const pb = paths(b);
  return pa.length === pb.length && pa.every((p) => b.files.get(p) === a.files.get(p) && (b.modes.get(p) ?? 0o644) === (a.modes.get(p) ?? 0o644));
}

/**
 * Renders one side. A render is a pure function of the fleet defaults, the tenant and
 * the templates, so where `other` (the side rendered first) had all three deeply equal,
 * its render of that tenant is that tenant's render here too: a one-tenant change in a
 * large fleet renders the unchanged tenants once, not twice. `parses` shares the
 * parsed YAML of files both sides hold byte for byte.
 */
function renderSide(
  inputs: FleetFiles,
  source: RenderSource,
  parses: YamlParses,
  onTenant: ((done: number, total: number, slug: string) => void) | undefined,
  other?: { inputs: FleetFiles; side: RenderedFleetSide },
): RenderedFleetSide {
  const fleet = loadFleetFromFiles(inputs.files, parses);
  let templates: TemplateSet;
  if (other && sameTemplates(inputs, other.inputs)) templates = other.side.templates;
  else {
    const { files, modes } = templateInputs(inputs);
    templates = compileTemplates(files, modes);
  }
  const known = new Map<string, { tenant: Tenant; rendered: RenderedSide }>();
  if (other && templates === other.side.templates && isDeepStrictEqual(fleet.defaults, other.side.fleet.defaults))
    other.side.fleet.tenants.forEach((tenant, i) => known.set(tenant.slug, { tenant, rendered: other.side.rendered[i]! }));
  const rendered = fleet.tenants.map((tenant, i) => {
    const same = known.get(tenant.slug);
    const result = same && isDeepStrictEqual(same.tenant, tenant) ? same.rendered : renderTenant(fleet, tenant, templates, source);
    onTenant?.(i + 1, fleet.tenants.length, tenant.slug);
    return result;
  });
  return { fleet, templates, rendered };
}

/**
 * Renders base and head with the same source (so headers naming the source commit
 * match) and builds the plan. A head that does not load is an error; a base that
 * does not (a first PR, or one fixing a broken main) is a note, every file then new.
 */
export async function planRepo(opts: PlanRepoOptions): Promise<PlanReport> {
  const blobs: BlobTexts = new Map();
  const headInputs = opts.head ? await readFleetFilesAtRef(opts.root, opts.head, undefined, blobs) : await readFleetFilesFromDir(opts.root);
  const baseInputs = await readFleetFilesAtRef(opts.root, opts.base, undefined, blobs);
  const headCommit = 'commit' in headInputs ? (headInputs.commit as string) : undefined;
  const source = await resolveSource(opts.root, headCommit ? { commit: headCommit } : {});

  const progress = opts.onProgress;
  const parses: YamlParses = new Map();
  const head = renderSide(headInputs, source, parses, progress && ((d, t, slug) => progress('render head', d, t, slug)));
  const notes: string[] = [];
  let base: RenderedSide[] = [];
  if (!baseInputs.files.has(FLEET_FILE)) {
    notes.push(`The base (${opts.base}) has no ${FLEET_FILE}: every tenant shows as new.`);
  } else {
    try {
      const onTenant = progress && ((d: number, t: number, slug: string) => progress('render base', d, t, slug));
      base = renderSide(baseInputs, source, parses, onTenant, { inputs: headInputs, side: head }).rendered;
    } catch (e) {
      if (!(e instanceof FlotillaError)) throw e;
      notes.push(`The base (${opts.base}) could not be rendered, so every file shows as new: ${e.message.split('\n')[0]}`);
    }
  }
  const planInput: Parameters<typeof buildPlan>[0] = {
    base,
    head: head.rendered,
    fleet: head.fleet,
    baseSide: { ref: opts.base, commit: baseInputs.commit },
    headSide: headCommit ? { ref: opts.head ?? 'HEAD', commit: headCommit } : { ref: 'working tree' },
    notes,
  };
  if (opts.registryCheck) planInput.registryCheck = opts.registryCheck;
  return buildPlan(planInput);
}

/** Registry credentials from FLOTILLA_REGISTRY_USERNAME / FLOTILLA_REGISTRY_PASSWORD, when both are set. */
export function registryCredentials(env: Record<string, string | undefined>): RegistryCredentials | undefined {
  const username = env.FLOTILLA_REGISTRY_USERNAME;
  const password = env.FLOTILLA_REGISTRY_PASSWORD;
  return username && password ? { username, password } : undefined;
}

/** The registry check plan uses: tagExists, with any failure reported as an error result. */
export function registryCheckFor(env: Record<string, string | undefined>, doFetch?: typeof fetch): RegistryCheck {
  const credentials = registryCredentials(env);
  return async (image, tag) => {
    try {
      const opts: Parameters<typeof tagExists>[2] = {};
      if (credentials) opts.credentials = credentials;
      if (doFetch) opts.fetch = doFetch;
      return (await tagExists(image, tag, opts)) ? 'present' : 'missing';
    } catch (e) {
      return { error: e instanceof FlotillaError ? e.message : String(e) };
    }
  };
}

/** The error `plan` exits with after printing a plan whose tag check failed. */
export function tagCheckFailure(report: PlanReport): RegistryError | undefined {
  const failed = report.tagChecks.filter((c) => c.result !== 'present');
  if (failed.length === 0) return undefined;
  const first = failed[0]!;
  const what = failed.map((c) => `${c.image}:${c.tag} ${c.result === 'missing' ? 'is missing' : 'could not be checked'}`);
  return new RegistryError(`${first.image}:${first.tag}`, `image tag check failed: ${what.join('; ')}`);
}

export interface PlanCliOptions {
  base?: string;
  head?: string;
  format: 'markdown' | 'json';
  out?: string;
  registryCheck: boolean;
}

/** Adds --base/--head/--no-registry-check, shared by `plan` and `comment`. */
export function addPlanOptions(command: Command, baseRequired: boolean): Command {
  const base = new Option('--base <ref>', 'ref the change is compared against (e.g. origin/main or a commit id)');
  if (baseRequired) base.makeOptionMandatory();
  return command
    .addOption(base)
    .option('--head <ref>', 'ref holding the change (default: the working tree)')
    .option('--no-registry-check', 'do not ask the registry whether moved image tags exist');
}

export function registerPlan(program: Command, io: CliIo): void {
  addPlanOptions(
    program.command('plan').description('show what a change does to every tenant: files, env, coverage, blast radius, tag check'),
    true,
  )
    .addOption(new Option('--format <format>', 'output format').choices(['markdown', 'json']).default('markdown'))
    .option('--out <file>', 'write the plan to this file instead of stdout')
    .action(async (opts: PlanCliOptions) => {
      const root = fleetRoot(program, io);
      if (!opts.base) throw new SettingError('--base', 'is required');
      const planOpts: PlanRepoOptions = { root, base: opts.base };
      if (opts.head) planOpts.head = opts.head;
      if (opts.registryCheck) planOpts.registryCheck = registryCheckFor(io.env);
      // A bar on a person's terminal only (never in CI logs or when piped), on stderr.
      const progress = createProgress(process.stderr, io.env);
      planOpts.onProgress = (phase, done, total, slug) => progress.update(phase, done, total, slug);
      let report: PlanReport;
      try {
        report = await planRepo(planOpts);
      } finally {
        progress.stop();
      }
      const text = opts.format === 'json' ? renderPlanJson(report) : renderPlanMarkdown(report);
      if (opts.out) await writeFile(resolve(io.cwd, opts.out), text);
      else io.stdout(text);
      const failure = tagCheckFailure(report);
      if (failure) throw failure;
    });
}
