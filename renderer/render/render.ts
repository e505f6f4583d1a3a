// Pure rendering: (fleet, tenant, templates, source commit) -> the tenant's file
// tree plus its manifest. No clock, no randomness, no I/O apart from
// `loadTemplates`, so the same inputs always give the same bytes.
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import Handlebars from 'handlebars';
import { scanComposeText, type VariableScan } from '../core/compose-vars.js';
import { encodeEnvValue } from '../core/env-file.js';
import {
  ComposeFileError,
  EnvFileError,
  FlotillaError,
  ManifestError,
  RenderedOutputError,
  SettingError,
  TemplateCompileError,
  TemplateError,
} from '../core/errors.js';
import {
  byCodeUnits,
  COMPOSE_SETTING_PATTERN,
  MANIFEST_PATH,
  MANIFEST_SCHEMA_VERSION,
  checkManagedPath,
  serializeManifest,
  sha256,
  type ManagedFile,
  type Manifest,
  type RenderedFile,
} from '../core/manifest.js';
import { findBlockProblem, isBlockParseError } from './template-blocks.js';
import type { Fleet, Tenant } from '../fleet/fleet.js';
import { canRenderTogether, renderTogether, type RenderTogether } from './render-together.js';

/** The template whose output is the env patch (manifest.envPatch), never a file. */
export const ENV_TEMPLATE = 'env.hbs';
/**
 * Every rendered file that allows `#` comments starts with this (then tenant and template).
 * The source commit is not in it: it lives in the manifest and the commit trailer, so a
 * file's bytes change only when what it renders from changes, and the host rewrites only those.
 */
export const HEADER_PREFIX = '# flotilla tenant=';

const COMPOSE_OUTPUT = /^(docker-)?compose\.ya?ml$/;
const COMMENTABLE_OUTPUT = /\.(ya?ml|conf)$/;
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

export interface RenderSource {
  repo: string;
  commit: string;
}

export interface RenderedTenant {
  slug: string;
  paused: boolean;
  manifest: Manifest;
  /** Sorted by path; includes `.flotilla/manifest.json`. */
  files: RenderedFile[];
}

interface FeatureRef {
  flag: string;
  line: number;
}

export interface CompiledTemplate {
  /** Path relative to templates/, e.g. `nginx/conf.d/api.conf.hbs`. */
  source: string;
  /** Path in the tenant tree: `source` minus `.hbs`. */
  output: string;
  mode: number;
  /** The template text (copied as is when `render` is undefined). */
  text: string;
  render?: Handlebars.TemplateDelegate;
  /** sha256 of `text`, for files copied as is (the same for every tenant). */
  copyHash?: string;
  /** `features.<flag>` paths the template reads; checked against the fleet's declared flags. */
  featureRefs: FeatureRef[];
  /** Whether it can be rendered with the tenant's other templates in one call (render-together.ts). */
  together: boolean;
}

export interface TemplateSet {
  /** Templates producing files, sorted by output path (env.hbs excluded). */
  files: CompiledTemplate[];
  /** env.hbs, when present. */
  env?: CompiledTemplate;
  /** Every template: `files`, then `env` when present (the order renderBodies returns outputs in). */
  all: CompiledTemplate[];
  renderTogether: RenderTogether;
  /**
   * Compose scans by rendered body (the file minus its header line), bucketed by the
   * body's length. Most tenants' compose files differ only in that header, so
   * scanning each distinct body once keeps a 1,000-tenant render near the cost of
   * the templates alone. Not a Map keyed by the body: that hashes every 4 KB body
   * character by character, where `===` against the few same-length bodies is a memcmp.
   */
  composeScans: Map<number, ComposeScanMemo[]>;
}

export interface ComposeScanMemo {
  body: string;
  scan: VariableScan;
}

const COMPOSE_SCAN_MEMO_LIMIT = 1024;
const COMPOSE_SCAN_BUCKET_LIMIT = 16;
/** Thrown by a helper used wrongly; carries the mustache's location so the TemplateError names the line. */
class HelperUsageError extends Error {
  constructor(
    message: string,
    readonly line: number | undefined,
  ) {
    super(message);
  }
}

interface HelperOptions {
  loc?: { start: { line: number; column: number } };
  hash?: Record<string, unknown>;
}

function helperLine(args: unknown[]): number | undefined {
  const options = args[args.length - 1] as HelperOptions | undefined;
  return options?.loc?.start.line;
}

/**
 * `{{composeVar "IMAGE_TAG" imageTag}}` -> `${IMAGE_TAG:-v2.10.3}`; with no value, `${IMAGE_TAG}`.
 * Exists because `${IMAGE_TAG:-{{imageTag}}}` does not parse: `}}}` closes a triple-stash.
 */
export function composeVar(name: unknown, value?: unknown): string {
  if (typeof name !== 'string' || !ENV_KEY.test(name))
    throw new Error(`composeVar: ${JSON.stringify(name)} is not a variable name`);
  if (value === undefined) throw new Error(`composeVar "${name}": the default value is undefined (a variable it names is missing)`);
  const text = String(value);
  // Compose ends the default at the first `}` and reads `$` as interpolation.
  if (/[}\n\r$]/.test(text))
    throw new Error(`composeVar "${name}": the default ${JSON.stringify(text)} cannot hold }, $ or a line break`);
  return `\${${name}:-${text}}`;
}

/** Registers the helpers every template may call; returns their names. */
export function registerHelpers(hb: typeof Handlebars): string[] {
  const helpers: Record<string, (...args: unknown[]) => unknown> = {
    composeVar: (...args) => {
      const params = args.slice(0, -1);
      try {
        return params.length === 1 ? `\${${String(params[0])}}` : composeVar(params[0], params[1]);
      } catch (e) {
        throw new HelperUsageError((e as Error).message, helperLine(args));
      }
    },
    // `{{default env.LOG_LEVEL "info"}}`: strict mode makes a missing plain
    // {{value}} an error; this is the one way to say a value is optional.
    default: (...args) => {
      const [value, fallback] = args;
      if (args.length !== 3) throw new HelperUsageError('default takes a value and a fallback', helperLine(args));
      return value === undefined || value === null || value === '' ? fallback : value;
    },
    eq: (...args) => {
      if (args.length !== 3) throw new HelperUsageError('eq takes two values', helperLine(args));
      return args[0] === args[1];
    },
    join: (...args) => {
      const [list, sep] = args;
      if (!Array.isArray(list)) throw new HelperUsageError(`join needs a list, got ${typeof list}`, helperLine(args));
      return list.join(typeof sep === 'string' ? sep : ', ');
    },
    // JSON strings are valid YAML scalars: the safe way to put any value into YAML.
    json: (...args) => {
      if (args.length !== 2 || args[0] === undefined)
        throw new HelperUsageError('json takes one defined value', helperLine(args));
      return JSON.stringify(args[0]);
    },
    concat: (...args) => args.slice(0, -1).map(String).join(''),
  };
  for (const [name, fn] of Object.entries(helpers)) hb.registerHelper(name, fn);
  return Object.keys(helpers);
}

function compileOptions(helperNames: string[]): CompileOptions {
  return {
    strict: true,
    noEscape: true, // config files, not HTML
    knownHelpers: Object.fromEntries(helperNames.map((n) => [n, true])),
    knownHelpersOnly: true, // a misspelt helper fails at compile time, not per tenant
  };
}

type CompileOptions = Parameters<typeof Handlebars.compile>[1];

function featureRefsOf(ast: hbs.AST.Program): FeatureRef[] {
  const refs: FeatureRef[] = [];
  const visitor = new Handlebars.Visitor();
  visitor.PathExpression = (path: hbs.AST.PathExpression) => {
    if (path.parts[0] === 'features' && path.parts.length === 2 && path.depth === 0 && !path.data)
      refs.push({ flag: path.parts[1]!, line: path.loc.start.line });
  };
  visitor.accept(ast);
  return refs;
}

function parseErrorLine(e: { message: string; lineNumber?: number }): number | undefined {
  if (typeof e.lineNumber === 'number') return e.lineNumber;
  const m = /on line (\d+)/.exec(e.message) ?? / - (\d+):\d+$/.exec(e.message);
  return m ? Number(m[1]) : undefined;
}

/**
 * Compiles every template (paths relative to templates/). A path ending in `.hbs`
 * is a Handlebars template; any other file is copied byte for byte. `modes` holds
 * the template files' permission bits (0755 makes an executable output).
 * @throws TemplateCompileError naming the template and line of a syntax error.
 */
export function compileTemplates(files: Map<string, string>, modes: Map<string, number> = new Map()): TemplateSet {
  const hb = Handlebars.create();
  const options = compileOptions(registerHelpers(hb));
  const compiled: CompiledTemplate[] = [];
  let env: CompiledTemplate | undefined;
  const outputs = new Map<string, string>();
  for (const source of [...files.keys()].sort(byCodeUnits)) {
    const text = files.get(source)!;
    const isTemplate = source.endsWith('.hbs');
    const output = isTemplate ? source.slice(0, -'.hbs'.length) : source;
    const mode = ((modes.get(source) ?? 0o644) & 0o111) !== 0 ? 0o755 : 0o644;
    const template: CompiledTemplate = { source, output, mode, text, featureRefs: [], together: false };
    if (isTemplate) {
      let ast: hbs.AST.Program;
      try {
        ast = hb.parse(text);
        // compile() is lazy; precompile runs the code generator now so a bad helper name fails here.
        hb.precompile(ast, options);
      } catch (e) {
        const err = e as Error & { lineNumber?: number };
        // A block left open is reported at the end of the file, a wrong close at the open
        // only: name where the block opens, and the close that does not match it.
        const block = isBlockParseError(err.message) ? findBlockProblem(text) : undefined;
        if (block) throw new TemplateCompileError(`templates/${source}`, block.detail, block.line);
        const detail = err.message.replace(/ - \d+:\d+$/, '').replace(/\n/g, ' ').replace(/\s+/g, ' ');
        throw new TemplateCompileError(`templates/${source}`, `syntax error: ${detail}`, parseErrorLine(err));
      }
      template.render = hb.compile(ast, options);
      template.together = canRenderTogether(ast);
      template.featureRefs = featureRefsOf(ast);
    } else {
      template.copyHash = sha256(text);
    }
    if (source === ENV_TEMPLATE) {
      env = template;
      continue;
    }
    try {
      checkManagedPath(output);
    } catch (e) {
      if (e instanceof ManifestError) throw new TemplateCompileError(`templates/${source}`, `output path not allowed: ${e.message}`);
      throw e;
    }
    const clash = outputs.get(output);
    if (clash) throw new TemplateCompileError(`templates/${source}`, `renders ${output}, as templates/${clash} does`);
    outputs.set(output, source);
    compiled.push(template);
  }
  compiled.sort((a, b) => byCodeUnits(a.output, b.output));
  const set: TemplateSet = {
    files: compiled,
    all: env ? [...compiled, env] : compiled,
    renderTogether: renderTogether(registerHelpers, options),
    composeScans: new Map(),
  };
  if (env) set.env = env;
  return set;
}

/** Reads every file under `dir` (the templates/ folder) and compiles it. */
export async function loadTemplates(dir: string): Promise<TemplateSet> {
  const files = new Map<string, string>();
  const modes = new Map<string, number>();
  let entries;
  try {
    entries = await readdir(dir, { recursive: true, withFileTypes: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR')
      throw new TemplateCompileError('templates/', `no templates folder at ${dir}; is this a fleet checkout (--fleet-dir)?`);
    throw e;
  }
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    const full = join(entry.parentPath, entry.name);
    const rel = full.slice(dir.length).replace(/^[/\\]+/, '').split(/[/\\]/).join('/');
    const bytes = await readFile(full);
    const text = bytes.toString('utf8');
    // Rendered files travel as text; a file that does not survive that round trip would be corrupted.
    if (!Buffer.from(text, 'utf8').equals(bytes))
      throw new TemplateCompileError(`templates/${rel}`, 'not UTF-8 text; only text files can be templates');
    files.set(rel, text);
    modes.set(rel, (await stat(full)).mode);
  }
  return compileTemplates(files, modes);
}

/** What every template sees. */
export interface TemplateContext {
  slug: string;
  domain: string;
  imageTag: string;
  mode: string;
  managed: boolean;
  adopted: boolean;
  paused: boolean;
  env: Record<string, string>;
  secrets: string[];
  hostEnv: string[];
  features: Record<string, boolean>;
  labels: Record<string, string>;
  /** Service -> image reference: `registry/name` for images that follow IMAGE_TAG, `registry/name:tag` for pinned ones. */
  images: Record<string, string>;
  registry: string;
  serverNames: string[];
}

/**
 * The values a tenant's templates render from. Not the source commit: a file that
 * wrote it would change on every fleet commit, for every tenant.
 */
export function templateContext(fleet: Fleet, tenant: Tenant): TemplateContext {
  const registry = fleet.defaults.registry.replace(/\/+$/, '');
  const images: Record<string, string> = {};
  for (const [service, name] of Object.entries(fleet.defaults.images)) images[service] = `${registry}/${name}`;
  return {
    slug: tenant.slug,
    domain: tenant.domain,
    imageTag: tenant.imageTag,
    mode: tenant.mode,
    managed: tenant.mode === 'managed',
    adopted: tenant.mode === 'adopted',
    paused: tenant.paused,
    env: tenant.env,
    secrets: tenant.secrets,
    hostEnv: tenant.hostEnv,
    features: tenant.features,
    labels: tenant.labels,
    images,
    registry,
    serverNames: [tenant.domain, `www.${tenant.domain}`],
  };
}

/** The full path expression (`env.SMTP_HOST`) at a line/column of the template text. */
function pathAt(text: string, line: number | undefined, column: number | undefined): string | undefined {
  if (line === undefined || column === undefined) return undefined;
  const lineText = text.split('\n')[line - 1] ?? '';
  return /^[@A-Za-z0-9_.\/\[\]-]+/.exec(lineText.slice(column))?.[0];
}

function runTemplate(template: CompiledTemplate, context: TemplateContext, tenant: string): string {
  const where = `templates/${template.source}`;
  try {
    return template.render!(context);
  } catch (e) {
    if (e instanceof HelperUsageError) throw new TemplateError(where, tenant, e.message, e.line, undefined, { cause: e });
    const err = e as Error & { lineNumber?: number; column?: number };
    const missing = /^"([^"]+)" not defined in /.exec(err.message ?? '');
    if (missing) {
      const variable = pathAt(template.text, err.lineNumber, err.column) ?? missing[1]!;
      throw new TemplateError(
        where,
        tenant,
        `variable "${variable}" is not defined (templates are strict: a missing value fails instead of rendering empty)`,
        err.lineNumber,
        variable,
        { cause: e },
      );
    }
    throw new TemplateError(where, tenant, err.message ?? String(e), parseErrorLine(err), undefined, { cause: e });
  }
}

/** The same string, made flat now (Handlebars builds its output as a rope of pieces). */
function flat(text: string): string {
  text.charCodeAt(0);
  return text;
}

/**
 * Every template's output for one tenant, in `templates.all` order (undefined for
 * files copied as is). The templates render in one call when they can
 * (render-together.ts), else one by one, in order, so the first failing template is the
 * one an error names.
 */
function renderBodies(templates: TemplateSet, context: TemplateContext, tenant: string): (string | undefined)[] {
  const all = templates.all;
  const together: CompiledTemplate[] = [];
  for (const t of all) if (t.render && t.together) together.push(t);
  const outputs = together.length > 1 ? templates.renderTogether(together, context) : undefined;
  const bodies: (string | undefined)[] = new Array(all.length);
  for (let i = 0, j = 0; i < all.length; i++) {
    const t = all[i]!;
    if (!t.render) continue;
    if (outputs && t === together[j]) bodies[i] = outputs[j++];
    else bodies[i] = runTemplate(t, context, tenant);
  }
  return bodies;
}

/** Forgets every compose scan, as a fresh process starts (the benchmark's rounds). */
export function forgetComposeScans(templates: TemplateSet): void {
  templates.composeScans.clear();
}

function checkFeatureRefs(templates: TemplateSet, tenant: Tenant): void {
  for (const t of templates.all) {
    for (const ref of t.featureRefs) {
      if (!(ref.flag in tenant.features))
        throw new TemplateError(
          `templates/${t.source}`,
          tenant.slug,
          `unknown feature flag "${ref.flag}" (declare it under defaults.features in fleet/fleet.yaml)`,
          ref.line,
          `features.${ref.flag}`,
        );
    }
  }
}

/**
 * Parses env.hbs output: KEY=value lines; blank lines and `#` comments are skipped.
 * `composeSettings`: the COMPOSE_* / DOCKER_* names the fleet declares; any other is refused.
 */
function parseEnvPatch(text: string, tenant: Tenant, composeSettings: readonly string[] = []): Record<string, string> {
  const patch: Record<string, string> = {};
  const fail = (line: number, detail: string): never => {
    throw new RenderedOutputError(`templates/${ENV_TEMPLATE}`, tenant.slug, `output line ${line}: ${detail}`);
  };
  // An indexOf walk rather than split/replace/trim per line: it runs once per tenant.
  for (let start = 0, lineNo = 1; start <= text.length; lineNo++) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    const line = text.charCodeAt(end - 1) === 13 && end > start ? text.slice(start, end - 1) : text.slice(start, end);
    start = end + 1;
    // A line starting with a name character is neither blank nor a comment: skip the trims.
    if (!startsLikeKey(line.charCodeAt(0)) && (line.trim() === '' || line.trimStart().startsWith('#'))) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) fail(lineNo, `expected KEY=value, got ${JSON.stringify(line)}`);
    const key = line.slice(0, eq);
    if (!ENV_KEY.test(key)) fail(lineNo, `${JSON.stringify(key)} is not a valid variable name`);
    if (Object.hasOwn(patch, key)) fail(lineNo, `${key} is set twice`);
    if (tenant.secrets.includes(key)) fail(lineNo, `${key} is a secret; secret values are never rendered or committed`);
    // The install dir's .env is also what a person's hand-run compose reads: COMPOSE_PROJECT_NAME there
    // would point it at another project. Only names the fleet declares on purpose pass.
    if (COMPOSE_SETTING_PATTERN.test(key) && !composeSettings.includes(key))
      fail(lineNo, `${key} is compose's own setting (COMPOSE_* / DOCKER_*); declare it in fleet/fleet.yaml defaults.composeSettings to set it on purpose`);
    const value = line.slice(eq + 1);
    // What every agent's patcher would refuse stops here, in check and render, not on the hosts.
    // The fleet does not say which compose its hosts run, so compose v2's reading decides:
    // v2 holds every value v1 holds (v1 refuses `${...}` besides), so this refuses only what no host can write.
    try {
      encodeEnvValue(value, '', '.env', key, undefined, 'v2');
    } catch (e) {
      if (!(e instanceof EnvFileError)) throw e;
      fail(lineNo, `${key}: ${e.detail}`);
    }
    patch[key] = value;
  }
  return patch;
}

/** A-Z, a-z or _. */
const startsLikeKey = (c: number): boolean => (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;

function headerLine(tenant: Tenant, template: CompiledTemplate): string {
  return `${HEADER_PREFIX}${tenant.slug} template=templates/${template.source} (generated: edit the template, not this file)\n`;
}

function scanCompose(templates: TemplateSet, file: string, content: string, body: string, tenant: string): VariableScan {
  const sameLength = templates.composeScans.get(body.length);
  if (sameLength) for (const memo of sameLength) if (memo.body === body) return memo.scan;
  let scan: VariableScan;
  try {
    scan = scanComposeText(content, file);
  } catch (e) {
    if (e instanceof ComposeFileError)
      throw new RenderedOutputError(file, tenant, `${e.yamlPath ? `${e.yamlPath}: ` : ''}${e.detail}`);
    throw e;
  }
  if (templates.composeScans.size >= COMPOSE_SCAN_MEMO_LIMIT) templates.composeScans.clear();
  const bucket = templates.composeScans.get(body.length) ?? [];
  // Bounded too: a fleet of many distinct same-length bodies rescans rather than growing.
  if (bucket.length >= COMPOSE_SCAN_BUCKET_LIMIT) bucket.length = 0;
  bucket.push({ body, scan });
  templates.composeScans.set(body.length, bucket);
  return scan;
}

/** Renders one tenant: every template, the env patch, and the manifest. */
export function renderTenant(fleet: Fleet, tenant: Tenant, templates: TemplateSet, source: RenderSource): RenderedTenant {
  checkFeatureRefs(templates, tenant);
  const context = templateContext(fleet, tenant);
  const files: RenderedFile[] = [];
  const managed: ManagedFile[] = [];
  let requiredVariables: string[] = [];
  const bodies = renderBodies(templates, context, tenant.slug);
  templates.files.forEach((template, i) => {
    if (!template.render) {
      files.push({ path: template.output, content: template.text, mode: template.mode });
      managed.push({ path: template.output, sha256: template.copyHash!, mode: template.mode });
      return;
    }
    const body = bodies[i]!;
    const header = COMMENTABLE_OUTPUT.test(template.output) ? headerLine(tenant, template) : '';
    const content = header + body;
    // Hashing first flattens `content` (Handlebars builds it from many pieces) once;
    // the scan memo's key is then a slice of that flat string, not a second copy.
    const hash = sha256(content);
    if (COMPOSE_OUTPUT.test(template.output))
      requiredVariables = scanCompose(templates, template.output, content, content.slice(header.length), tenant.slug).required;
    files.push({ path: template.output, content, mode: template.mode });
    managed.push({ path: template.output, sha256: hash, mode: template.mode });
  });
  const envPatch = templates.env ? parseEnvPatch(bodies[templates.files.length]!, tenant, fleet.defaults.composeSettings) : {};
  const manifest: Manifest = {
    schemaVersion: MANIFEST_SCHEMA_VERSION,
    tenant: tenant.slug,
    mode: tenant.mode,
    imageTag: tenant.imageTag,
    source: { repo: source.repo, commit: source.commit },
    files: managed,
    envPatch,
    requiredVariables: requiredVariables.slice(),
    secrets: tenant.secrets.slice().sort(byCodeUnits),
  };
  if (tenant.windows.length > 0) manifest.windows = tenant.windows.slice();
  if (tenant.hooks && (tenant.hooks.preSwap?.length || tenant.hooks.postUp?.length)) manifest.hooks = tenant.hooks;
  if (tenant.adopt) manifest.adopt = tenant.adopt;
  if (fleet.defaults.composeSettings?.length) manifest.composeSettings = fleet.defaults.composeSettings.slice();
  // Secrets set centrally travel as their ciphertext only (loadFleet checked each is age
  // armor); the host decrypts them with its own identity. Never a value.
  const sealed = Object.entries(tenant.encryptedSecrets ?? {});
  if (sealed.length > 0) manifest.encryptedSecrets = Object.fromEntries(sealed.map(([key, s]) => [key, s.ciphertext]));
  // `files` is already in path order (templates.files is sorted by output, and the
  // manifest path is reserved), so insert the manifest where a sort would put it.
  let at = files.length;
  while (at > 0 && byCodeUnits(files[at - 1]!.path, MANIFEST_PATH) > 0) at--;
  files.splice(at, 0, { path: MANIFEST_PATH, content: flat(serializeManifest(manifest)), mode: 0o644 });
  return { slug: tenant.slug, paused: tenant.paused, manifest, files };
}

/**
 * Renders every tenant (or those in `opts.tenants`), paused ones included
 * (`paused` tells publish to skip them). Throws the first error.
 */
export function renderFleet(
  fleet: Fleet,
  templates: TemplateSet,
  source: RenderSource,
  opts: { tenants?: string[]; onTenant?: (done: number, total: number, slug: string) => void } = {},
): RenderedTenant[] {
  const tenants = selectTenants(fleet, opts.tenants);
  return tenants.map((t, i) => {
    const rendered = renderTenant(fleet, t, templates, source);
    opts.onTenant?.(i + 1, tenants.length, t.slug);
    return rendered;
  });
}

/** The tenants named by `slugs` (all when undefined), in fleet order; unknown slugs are a SettingError. */
export function selectTenants(fleet: Fleet, slugs?: string[]): Tenant[] {
  if (!slugs) return fleet.tenants;
  const wanted = new Set(slugs);
  const unknown = [...wanted].filter((s) => !fleet.tenants.some((t) => t.slug === s));
  if (unknown.length > 0)
    throw new SettingError('--tenant', `no tenant ${unknown.map((s) => `"${s}"`).join(', ')} in fleet/tenants/`);
  return fleet.tenants.filter((t) => wanted.has(t.slug));
}

/**
 * Renders every tenant and collects each tenant's error instead of stopping at the
 * first, for `flotilla check`.
 */
export function renderFleetCollecting(
  fleet: Fleet,
  templates: TemplateSet,
  source: RenderSource,
): { rendered: RenderedTenant[]; errors: FlotillaError[] } {
  const rendered: RenderedTenant[] = [];
  const errors: FlotillaError[] = [];
  for (const tenant of fleet.tenants) {
    try {
      rendered.push(renderTenant(fleet, tenant, templates, source));
    } catch (e) {
      if (e instanceof FlotillaError) errors.push(e);
      else throw e;
    }
  }
  return { rendered, errors };
}
