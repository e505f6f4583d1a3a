// A plan of a change on a fleet checkout: both revisions read from git (or the head
// from the working tree), rendered with the same source, and compared by plan.ts.
// Reuses the head's render for a base tenant whose inputs are deeply equal.
import { isDeepStrictEqual } from 'node:util';
import { FlotillaError } from '../core/errors.js';
import { FLEET_FILE, loadFleetFromFiles, type Fleet, type Tenant, type YamlParses } from '../fleet/fleet.js';
import { compileTemplates, renderTenant, type RenderSource, type TemplateSet } from '../render/render.js';
import { readFleetFilesAtRef, readFleetFilesFromDir, resolveSource, type BlobTexts, type FleetFiles } from '../repo.js';
import { buildPlan, type PlanReport, type RegistryCheck, type RenderedSide } from './plan.js';

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

