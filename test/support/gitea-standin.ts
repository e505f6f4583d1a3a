// A loopback stand-in for the parts of Gitea's (and Forgejo's) REST API Flotilla calls:
// commit statuses, the combined status, issue comments (Gitea's PR comments), pull
// requests and the repository. Like the GitHub stand-in, every request and every response
// is checked against the API's own OpenAPI description, here the excerpt of Gitea's
// `v1-openapi3.generated.json` vendored in `gitea-openapi/` (its README names the source
// and commit): a request Gitea would reject gets a 422 and is recorded, a response built
// wrongly is recorded and answered with a 500, so `violations()` being empty proves both.
//
// What differs from GitHub, as Gitea does it: everything lives under `/api/v1`; statuses
// are created with `state` and read back with `status`, and may also be `warning` or
// `skipped`; PR comments are issue comments (a PR's number is its issue index); lists page
// with `page` and `limit` (default 30, at most 50) and say `X-Total-Count` and `Link`;
// a second open PR for the same head and base is a 409.

import http from 'node:http';
import fs from 'node:fs';
import { join } from 'node:path';
import { Ajv, type ValidateFunction, type ErrorObject, type Format } from 'ajv';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

interface OpenApiParameter {
  name: string;
  in: 'path' | 'query' | 'header';
  required?: boolean;
  schema?: JsonObject;
}
interface OpenApiOperation {
  operationId: string;
  parameters?: OpenApiParameter[];
  requestBody?: { required?: boolean; content: Record<string, { schema: JsonObject }> };
  responses: Record<string, { $ref: string } | { content?: Record<string, { schema: JsonObject }> }>;
}
interface OpenApiSpec {
  info: { 'x-vendored-from': { repository: string; path: string; commit: string } };
  paths: Record<string, Record<string, OpenApiOperation>>;
  components: {
    schemas: Record<string, JsonObject>;
    responses: Record<string, { content?: Record<string, { schema: JsonObject }> }>;
  };
}

export const GITEA_OPENAPI_FILE = join(import.meta.dirname, 'gitea-openapi', 'v1-openapi3.flotilla-excerpt.json');

let cachedSpec: OpenApiSpec | undefined;
export function loadGiteaSpec(): OpenApiSpec {
  cachedSpec ??= JSON.parse(fs.readFileSync(GITEA_OPENAPI_FILE, 'utf8')) as OpenApiSpec;
  return cachedSpec;
}

const SCHEMA_BASE = 'https://openapi.flotilla.invalid/gitea/schemas/';
const DROPPED_KEYS = new Set(['example', 'examples', 'discriminator', 'xml', 'externalDocs', 'deprecated', 'nullable']);
const FORMATS: Record<string, Format> = {
  'date-time': /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/,
  email: /^[^\s@]+@[^\s@]+$/,
  // Gitea's Go structs send "" for an unset URL (target_url, pull_request_url) under `format: uri`.
  uri: (s: string) => s === '' || URL.canParse(s),
  int64: { type: 'number' as const, validate: (n: number) => Number.isInteger(n) },
};

/** OpenAPI 3.0 schemas as JSON Schema for Ajv (`nullable`, component `$ref`s), compiled lazily. */
class Schemas {
  private readonly ajv: Ajv;
  private readonly paramAjv: Ajv;
  private readonly added = new Set<string>();
  private readonly compiled = new Map<string, ValidateFunction>();

  constructor(private readonly spec: OpenApiSpec) {
    const common = { strict: false, allErrors: true, logger: false as const, formats: FORMATS };
    this.ajv = new Ajv(common);
    this.paramAjv = new Ajv({ ...common, coerceTypes: true });
  }

  validator(key: string, schema: JsonObject, forParams = false): ValidateFunction {
    const cacheKey = `${forParams ? 'p' : 'b'}:${key}`;
    let fn = this.compiled.get(cacheKey);
    if (!fn) {
      fn = (forParams ? this.paramAjv : this.ajv).compile(this.convert(schema) as JsonObject);
      this.compiled.set(cacheKey, fn);
    }
    return fn;
  }

  private ensure(name: string): void {
    if (this.added.has(name)) return;
    const raw = this.spec.components.schemas[name];
    if (!raw) throw new Error(`Gitea OpenAPI excerpt has no schema ${name}`);
    this.added.add(name);
    const converted = { ...(this.convert(raw) as JsonObject), $id: SCHEMA_BASE + name };
    this.ajv.addSchema(converted);
    this.paramAjv.addSchema(converted);
  }

  private convert(node: Json): Json {
    if (Array.isArray(node)) return node.map((n) => this.convert(n));
    if (node === null || typeof node !== 'object') return node;
    const ref = node['$ref'];
    if (typeof ref === 'string') {
      const name = ref.replace('#/components/schemas/', '');
      this.ensure(name);
      return { $ref: SCHEMA_BASE + name };
    }
    const out: JsonObject = {};
    for (const [key, value] of Object.entries(node)) {
      if (DROPPED_KEYS.has(key) || key.startsWith('x-')) continue;
      if (key === 'properties' && value && typeof value === 'object' && !Array.isArray(value)) {
        out[key] = Object.fromEntries(Object.entries(value).map(([p, s]) => [p, this.convert(s)]));
      } else if (['items', 'additionalProperties', 'not', 'allOf', 'anyOf', 'oneOf'].includes(key)) {
        out[key] = this.convert(value);
      } else {
        out[key] = value;
      }
    }
    return node['nullable'] === true ? { anyOf: [out, { type: 'null' }] } : out;
  }
}

function formatAjvErrors(errors: ErrorObject[] | null | undefined, where: string): string {
  return (errors ?? [])
    .slice(0, 8)
    .map((e) => `${where}${e.instancePath || ''} ${e.message ?? 'is invalid'}${e.params && 'allowedValues' in e.params ? ` (${(e.params['allowedValues'] as unknown[]).join(', ')})` : ''}`)
    .join('; ');
}

// ---------------------------------------------------------------------------
// Public types.

export type GiteaStatusState = 'pending' | 'success' | 'error' | 'failure' | 'warning' | 'skipped';

export interface GiteaStoredStatus {
  id: number;
  sha: string;
  state: GiteaStatusState;
  context: string;
  description: string;
  target_url: string;
  created_at: string;
}

export interface GiteaStoredPull {
  number: number;
  id: number;
  title: string;
  body: string;
  head: string;
  headSha: string;
  base: string;
  baseSha: string;
  state: 'open' | 'closed';
  created_at: string;
}

export interface GiteaStoredComment {
  id: number;
  issueNumber: number;
  body: string;
  created_at: string;
  updated_at: string;
}

export interface GiteaFault {
  status: number;
  headers?: Record<string, string>;
  message?: string;
  match?: { method?: string; path?: RegExp };
}

export interface GiteaRequestRecord {
  method: string;
  path: string;
  query: Record<string, string>;
  operation?: string;
  status: number;
  body?: unknown;
  fault?: boolean;
}

export interface GiteaViolation {
  kind: 'request' | 'response' | 'unknown-route';
  method: string;
  path: string;
  operation?: string;
  message: string;
}

export interface GiteaStandInOptions {
  token?: string;
  login?: string;
  repos?: string[];
  /** Resolves branch names the stand-in was not told about (PR heads, `commits/{ref}`). */
  resolveRef?: (owner: string, repo: string, ref: string) => string | undefined | Promise<string | undefined>;
  /** Rewrites a successful answer before it is checked; only the stand-in's own tests use it. */
  tamperResponse?: (operationId: string, body: unknown) => unknown;
}

export interface GiteaStandIn {
  /** The API root clients use, ending in `/api/v1`. */
  readonly url: string;
  /** The server root (what Gitea Actions calls GITHUB_SERVER_URL). */
  readonly serverUrl: string;
  readonly token: string;
  addRepo(fullName: string, options?: { defaultBranch?: string; private?: boolean }): void;
  setRef(fullName: string, branch: string, sha: string): void;
  statuses(fullName: string, sha?: string): GiteaStoredStatus[];
  pulls(fullName: string): GiteaStoredPull[];
  comments(fullName: string, issueNumber?: number): GiteaStoredComment[];
  /** Adds a status as another system (a CI) would, e.g. with Gitea's own `warning`. */
  addStatus(fullName: string, status: Omit<GiteaStoredStatus, 'id' | 'created_at'>): void;
  failNext(count: number, fault: GiteaFault): void;
  clearFaults(): void;
  requests(): GiteaRequestRecord[];
  violations(): GiteaViolation[];
  clearLog(): void;
  close(): Promise<void>;
}

interface StoredRepo {
  id: number;
  owner: string;
  name: string;
  defaultBranch: string;
  private: boolean;
  refs: Map<string, string>; // branch name -> sha
  statuses: GiteaStoredStatus[]; // chronological
  pulls: GiteaStoredPull[];
  comments: GiteaStoredComment[];
  nextIndex: number; // issues and pulls share one index space
}

const OPERATIONS = [
  'GET /repos/{owner}/{repo}',
  'GET /repos/{owner}/{repo}/commits/{ref}/status',
  'GET /repos/{owner}/{repo}/commits/{ref}/statuses',
  'GET /repos/{owner}/{repo}/statuses/{sha}',
  'POST /repos/{owner}/{repo}/statuses/{sha}',
  'GET /repos/{owner}/{repo}/issues/{index}/comments',
  'POST /repos/{owner}/{repo}/issues/{index}/comments',
  'PATCH /repos/{owner}/{repo}/issues/comments/{id}',
  'GET /repos/{owner}/{repo}/pulls',
  'POST /repos/{owner}/{repo}/pulls',
] as const;
type OperationKey = (typeof OPERATIONS)[number];

interface Route {
  key: OperationKey;
  method: string;
  regex: RegExp;
  names: string[];
  operation: OpenApiOperation;
}

interface HandlerInput {
  params: Record<string, string | number>;
  query: Record<string, string | number>;
  body: JsonObject;
  repo: StoredRepo;
}
interface HandlerResult {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

class HttpProblem extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const SHA = /^[0-9a-f]{40}$/;
const DEFAULT_LIMIT = 30;
const MAX_LIMIT = 50;

function now(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Gitea's combined state over the newest status per context. */
export function giteaCombinedState(states: GiteaStatusState[]): GiteaStatusState {
  if (states.length === 0) return 'pending';
  if (states.some((s) => s === 'error' || s === 'failure')) return 'failure';
  if (states.some((s) => s === 'pending')) return 'pending';
  if (states.some((s) => s === 'warning')) return 'warning';
  return 'success';
}

let sharedSchemas: Schemas | undefined;

export async function startGiteaStandIn(options: GiteaStandInOptions = {}): Promise<GiteaStandIn> {
  const spec = loadGiteaSpec();
  sharedSchemas ??= new Schemas(spec);
  const schemas = sharedSchemas;
  const token = options.token ?? 'gitea_standin_token_0123456789abcdef';
  const login = options.login ?? 'flotilla-bot';
  const routes: Route[] = OPERATIONS.map((key) => {
    const [method, path] = key.split(' ') as [string, string];
    const operation = spec.paths[path]?.[method.toLowerCase()];
    if (!operation) throw new Error(`Gitea OpenAPI excerpt has no operation ${key}`);
    const names: string[] = [];
    const pattern = path.replace(/\{(\w+)\}/g, (_m, name: string) => {
      names.push(name);
      // A ref may be a branch with slashes (tenants/linda), sent encoded or not.
      return name === 'ref' ? '(.+)' : '([^/]+)';
    });
    return { key, method, regex: new RegExp(`^/api/v1${pattern}$`), names, operation };
  });

  const repos = new Map<string, StoredRepo>();
  const faults: GiteaFault[] = [];
  const log: GiteaRequestRecord[] = [];
  const violationList: GiteaViolation[] = [];
  let nextId = 1000;
  let server = '';
  const api = () => `${server}/api/v1`;
  const repoKey = (owner: string, name: string) => `${owner}/${name}`.toLowerCase();

  function addRepo(fullName: string, opts: { defaultBranch?: string; private?: boolean } = {}): void {
    const [owner, name] = fullName.split('/');
    if (!owner || !name) throw new Error(`repo must be owner/name: ${fullName}`);
    if (repos.has(repoKey(owner, name))) return;
    repos.set(repoKey(owner, name), {
      id: nextId++,
      owner,
      name,
      defaultBranch: opts.defaultBranch ?? 'main',
      private: opts.private ?? true,
      refs: new Map(),
      statuses: [],
      pulls: [],
      comments: [],
      nextIndex: 1,
    });
  }
  for (const r of options.repos ?? []) addRepo(r);

  function repoOf(fullName: string): StoredRepo {
    const [owner = '', name = ''] = fullName.split('/');
    const repo = repos.get(repoKey(owner, name));
    if (!repo) throw new Error(`stand-in has no repo ${fullName}`);
    return repo;
  }

  async function resolve(repo: StoredRepo, ref: string): Promise<string | undefined> {
    if (SHA.test(ref)) return ref;
    const branch = ref.replace(/^refs\/heads\//, '');
    return repo.refs.get(branch) ?? (options.resolveRef ? await options.resolveRef(repo.owner, repo.name, branch) : undefined);
  }

  // ---- objects shaped as Gitea answers ---------------------------------------

  function userObject(name = login, id = 1): JsonObject {
    return {
      id,
      login: name,
      login_name: '',
      full_name: '',
      email: `${name}@noreply.gitea.invalid`,
      avatar_url: `${server}/avatars/${id}`,
      html_url: `${server}/${name}`,
      is_admin: false,
      restricted: false,
      visibility: 'public',
      created: '2024-01-01T00:00:00Z',
    };
  }

  function repoObject(repo: StoredRepo): JsonObject {
    return {
      id: repo.id,
      name: repo.name,
      full_name: `${repo.owner}/${repo.name}`,
      owner: userObject(repo.owner, 2),
      private: repo.private,
      html_url: `${server}/${repo.owner}/${repo.name}`,
      clone_url: `${server}/${repo.owner}/${repo.name}.git`,
      url: `${api()}/repos/${repo.owner}/${repo.name}`,
      default_branch: repo.defaultBranch,
    };
  }

  function statusObject(repo: StoredRepo, s: GiteaStoredStatus): JsonObject {
    return {
      id: s.id,
      status: s.state,
      context: s.context,
      description: s.description,
      target_url: s.target_url,
      url: `${api()}/repos/${repo.owner}/${repo.name}/statuses/${s.sha}`,
      creator: userObject(),
      created_at: s.created_at,
      updated_at: s.created_at,
    };
  }

  function commentObject(repo: StoredRepo, c: GiteaStoredComment): JsonObject {
    const isPull = repo.pulls.some((p) => p.number === c.issueNumber);
    return {
      id: c.id,
      html_url: `${server}/${repo.owner}/${repo.name}/${isPull ? 'pulls' : 'issues'}/${c.issueNumber}#issuecomment-${c.id}`,
      pull_request_url: isPull ? `${server}/${repo.owner}/${repo.name}/pulls/${c.issueNumber}` : '',
      issue_url: `${server}/${repo.owner}/${repo.name}/issues/${c.issueNumber}`,
      user: userObject(),
      original_author: '',
      original_author_id: 0,
      body: c.body,
      assets: [],
      created_at: c.created_at,
      updated_at: c.updated_at,
    };
  }

  function pullObject(repo: StoredRepo, p: GiteaStoredPull): JsonObject {
    const branch = (ref: string, sha: string): JsonObject => ({ label: ref, ref, sha, repo_id: repo.id, repo: repoObject(repo) });
    return {
      id: p.id,
      number: p.number,
      url: `${server}/${repo.owner}/${repo.name}/pulls/${p.number}`,
      html_url: `${server}/${repo.owner}/${repo.name}/pulls/${p.number}`,
      diff_url: `${server}/${repo.owner}/${repo.name}/pulls/${p.number}.diff`,
      patch_url: `${server}/${repo.owner}/${repo.name}/pulls/${p.number}.patch`,
      user: userObject(),
      title: p.title,
      body: p.body,
      state: p.state,
      draft: false,
      mergeable: true,
      merged: false,
      head: branch(p.head, p.headSha),
      base: branch(p.base, p.baseSha),
      created_at: p.created_at,
      updated_at: p.created_at,
      ...(p.state === 'closed' ? { closed_at: p.created_at } : {}),
    };
  }

  /** One page of `items` by Gitea's `page`/`limit`, with X-Total-Count and a Link header. */
  function paged<T>(items: T[], query: Record<string, string | number>, path: string): { page: T[]; headers: Record<string, string> } {
    const limit = Math.min(Math.max(Number(query['limit'] ?? DEFAULT_LIMIT) || DEFAULT_LIMIT, 1), MAX_LIMIT);
    const page = Math.max(Number(query['page'] ?? 1) || 1, 1);
    const last = Math.max(Math.ceil(items.length / limit), 1);
    const links: string[] = [];
    const at = (n: number) => `<${server}${path}?page=${n}&limit=${limit}>`;
    if (page < last) links.push(`${at(page + 1)}; rel="next"`, `${at(last)}; rel="last"`);
    if (page > 1) links.push(`${at(1)}; rel="first"`, `${at(page - 1)}; rel="prev"`);
    return {
      page: items.slice((page - 1) * limit, page * limit),
      headers: { 'x-total-count': String(items.length), ...(links.length ? { link: links.join(',') } : {}) },
    };
  }

  function newestPerContext(list: GiteaStoredStatus[]): GiteaStoredStatus[] {
    const seen = new Set<string>();
    const out: GiteaStoredStatus[] = [];
    for (const s of [...list].reverse()) {
      if (seen.has(s.context)) continue;
      seen.add(s.context);
      out.push(s);
    }
    return out;
  }

  const handlers: Record<OperationKey, (input: HandlerInput, path: string) => HandlerResult | Promise<HandlerResult>> = {
    'GET /repos/{owner}/{repo}': ({ repo }) => ({ status: 200, body: repoObject(repo) }),

    'POST /repos/{owner}/{repo}/statuses/{sha}': ({ repo, params, body }) => {
      const sha = String(params['sha']);
      if (!SHA.test(sha)) throw new HttpProblem(404, 'Not Found');
      const state = body['state'];
      if (state === undefined || state === '') throw new HttpProblem(400, 'state is required');
      const status: GiteaStoredStatus = {
        id: nextId++,
        sha,
        state: state as GiteaStatusState,
        context: String(body['context'] ?? 'default'),
        description: String(body['description'] ?? ''),
        target_url: String(body['target_url'] ?? ''),
        created_at: now(),
      };
      repo.statuses.push(status);
      return { status: 201, body: statusObject(repo, status) };
    },

    'GET /repos/{owner}/{repo}/statuses/{sha}': ({ repo, params, query }, path) => {
      const list = repo.statuses.filter((s) => s.sha === String(params['sha'])).reverse();
      const { page, headers } = paged(list, query, path);
      return { status: 200, body: page.map((s) => statusObject(repo, s)), headers };
    },

    'GET /repos/{owner}/{repo}/commits/{ref}/statuses': async ({ repo, params, query }, path) => {
      const sha = await resolve(repo, String(params['ref']));
      if (!sha) throw new HttpProblem(404, 'Not Found');
      const list = repo.statuses.filter((s) => s.sha === sha).reverse();
      const { page, headers } = paged(list, query, path);
      return { status: 200, body: page.map((s) => statusObject(repo, s)), headers };
    },

    'GET /repos/{owner}/{repo}/commits/{ref}/status': async ({ repo, params, query }, path) => {
      const sha = await resolve(repo, String(params['ref']));
      if (!sha) throw new HttpProblem(404, 'Not Found');
      const latest = newestPerContext(repo.statuses.filter((s) => s.sha === sha));
      const { page, headers } = paged(latest, query, path);
      return {
        status: 200,
        headers,
        body: {
          state: giteaCombinedState(latest.map((s) => s.state)),
          sha,
          total_count: latest.length,
          statuses: page.map((s) => statusObject(repo, s)),
          repository: repoObject(repo),
          commit_url: `${api()}/repos/${repo.owner}/${repo.name}/commits/${sha}`,
          url: `${api()}/repos/${repo.owner}/${repo.name}/commits/${sha}/status`,
        },
      };
    },

    // Gitea lists every comment of an issue at once: no page or limit here.
    'GET /repos/{owner}/{repo}/issues/{index}/comments': ({ repo, params }) => {
      const index = Number(params['index']);
      if (!repo.pulls.some((p) => p.number === index)) throw new HttpProblem(404, 'Not Found');
      return { status: 200, body: repo.comments.filter((c) => c.issueNumber === index).map((c) => commentObject(repo, c)) };
    },

    'POST /repos/{owner}/{repo}/issues/{index}/comments': ({ repo, params, body }) => {
      const index = Number(params['index']);
      if (!repo.pulls.some((p) => p.number === index)) throw new HttpProblem(404, 'Not Found');
      const c: GiteaStoredComment = { id: nextId++, issueNumber: index, body: String(body['body']), created_at: now(), updated_at: now() };
      repo.comments.push(c);
      return { status: 201, body: commentObject(repo, c) };
    },

    'PATCH /repos/{owner}/{repo}/issues/comments/{id}': ({ repo, params, body }) => {
      const c = repo.comments.find((x) => x.id === Number(params['id']));
      if (!c) throw new HttpProblem(404, 'Not Found');
      c.body = String(body['body']);
      c.updated_at = now();
      return { status: 200, body: commentObject(repo, c) };
    },

    'GET /repos/{owner}/{repo}/pulls': ({ repo, query }, path) => {
      const state = String(query['state'] ?? 'open');
      const list = repo.pulls
        .filter((p) => state === 'all' || p.state === state)
        .filter((p) => query['base_branch'] === undefined || p.base === String(query['base_branch']))
        .reverse();
      const { page, headers } = paged(list, query, path);
      return { status: 200, body: page.map((p) => pullObject(repo, p)), headers };
    },

    'POST /repos/{owner}/{repo}/pulls': async ({ repo, body }) => {
      const head = String(body['head'] ?? '').replace(new RegExp(`^${repo.owner}:`, 'i'), '');
      const base = String(body['base'] ?? '');
      const title = String(body['title'] ?? '');
      if (!head || !base || !title) throw new HttpProblem(422, '[Head] [Base] [Title]: Required');
      const headSha = await resolve(repo, head);
      const baseSha = await resolve(repo, base);
      if (!headSha || !baseSha) throw new HttpProblem(404, `branch does not exist [name: ${headSha ? base : head}]`);
      if (repo.pulls.some((p) => p.state === 'open' && p.head === head && p.base === base)) {
        throw new HttpProblem(409, `pull request already exists for these targets [head: ${head}, base: ${base}]`);
      }
      const pull: GiteaStoredPull = { number: repo.nextIndex++, id: nextId++, title, body: String(body['body'] ?? ''), head, headSha, base, baseSha, state: 'open', created_at: now() };
      repo.pulls.push(pull);
      return { status: 201, body: pullObject(repo, pull) };
    },
  };

  // ---- request pipeline -------------------------------------------------------

  function errorBody(message: string): JsonObject {
    return { message, url: `${server}/api/swagger` };
  }

  function responseSchema(operation: OpenApiOperation, status: number): JsonObject | undefined {
    let response = operation.responses[String(status)];
    if (response && '$ref' in response) response = spec.components.responses[response.$ref.replace('#/components/responses/', '')];
    return response && 'content' in response ? response.content?.['application/json']?.schema : undefined;
  }

  async function handle(method: string, url: URL, raw: string, authorization: string): Promise<{ record: Partial<GiteaRequestRecord>; result: HandlerResult; route?: Route }> {
    const path = url.pathname;
    const violation = (kind: GiteaViolation['kind'], message: string, operation?: string) => {
      violationList.push({ kind, method, path, ...(operation ? { operation } : {}), message });
    };
    const m = /^(?:token|bearer)\s+(\S+)$/i.exec(authorization);
    if (!m || m[1] !== token) return { record: {}, result: { status: 401, body: errorBody('user does not exist') } };

    let route: Route | undefined;
    let params: Record<string, string> = {};
    for (const r of routes) {
      if (r.method !== method) continue;
      const match = r.regex.exec(path);
      if (!match) continue;
      route = r;
      params = Object.fromEntries(r.names.map((n, i) => [n, decodeURIComponent(match[i + 1] ?? '')]));
      break;
    }
    if (!route) {
      violation('unknown-route', 'no such operation in the vendored Gitea description');
      return { record: {}, result: { status: 404, body: errorBody('Not Found') } };
    }
    const { operation } = route;
    const opId = operation.operationId;

    const query: Record<string, string> = {};
    for (const [k, v] of url.searchParams) query[k] = v;
    const typedParams: Record<string, string | number> = { ...params };
    const typedQuery: Record<string, string | number> = { ...query };
    const problems: string[] = [];
    for (const where of ['path', 'query'] as const) {
      const declared = (operation.parameters ?? []).filter((p) => p.in === where);
      const schema: JsonObject = {
        type: 'object',
        properties: Object.fromEntries(declared.map((p) => [p.name, (p.schema ?? {}) as Json])),
        required: declared.filter((p) => p.required).map((p) => p.name),
        // Gitea ignores unknown query parameters, but a client sending GitHub's names
        // (per_page) would silently get Gitea's default page: that is a bug here.
        ...(where === 'query' ? { additionalProperties: false } : {}),
      };
      const validate = schemas.validator(`${route.key}#${where}`, schema, true);
      if (!validate(where === 'path' ? typedParams : typedQuery)) problems.push(formatAjvErrors(validate.errors, where));
    }
    let body: JsonObject = {};
    if (raw.length > 0) {
      try {
        body = JSON.parse(raw) as JsonObject;
      } catch {
        violation('request', 'body is not JSON', opId);
        return { record: { operation: opId }, result: { status: 422, body: errorBody('invalid JSON') } };
      }
    }
    const bodySpec = operation.requestBody?.content['application/json'];
    if (bodySpec) {
      if (raw.length === 0) problems.push('body is required');
      else {
        const validate = schemas.validator(`${route.key}#body`, bodySpec.schema);
        if (!validate(body)) problems.push(formatAjvErrors(validate.errors, 'body'));
      }
    } else if (raw.length > 0) {
      problems.push('the operation takes no body');
    }
    const record = { operation: opId, ...(raw.length > 0 ? { body } : {}) };
    if (problems.length > 0) {
      const message = problems.join('; ');
      violation('request', message, opId);
      return { record, result: { status: 422, body: errorBody(message) }, route };
    }

    const faultIndex = faults.findIndex((f) => (!f.match?.method || f.match.method === method) && (!f.match?.path || f.match.path.test(path)));
    if (faultIndex >= 0) {
      const fault = faults.splice(faultIndex, 1)[0]!;
      return { record: { ...record, fault: true }, result: { status: fault.status, body: errorBody(fault.message ?? 'Internal Server Error'), headers: fault.headers ?? {} }, route };
    }

    const repo = repos.get(repoKey(String(params['owner']), String(params['repo'])));
    if (!repo) return { record, result: { status: 404, body: errorBody('The target couldn\'t be found.') }, route };
    try {
      return { record, result: await handlers[route.key]({ params: typedParams, query: typedQuery, body, repo }, path), route };
    } catch (err) {
      if (err instanceof HttpProblem) return { record, result: { status: err.status, body: errorBody(err.message) }, route };
      throw err;
    }
  }

  function checkResponse(method: string, path: string, route: Route | undefined, result: HandlerResult): HandlerResult {
    if (!route) return result;
    const opId = route.operation.operationId;
    const schema = responseSchema(route.operation, result.status);
    if (!schema) {
      // 401 and 5xx are the server's, 422 answers a request already recorded as a violation.
      const documented = String(result.status) in route.operation.responses || result.status === 401 || result.status === 422 || result.status >= 500;
      if (!documented) violationList.push({ kind: 'response', method, path, operation: opId, message: `status ${result.status} is not a documented response` });
      return result;
    }
    const validate = schemas.validator(`${route.key}#${result.status}`, schema);
    if (validate(JSON.parse(JSON.stringify(result.body)))) return result;
    const message = formatAjvErrors(validate.errors, `response ${result.status}`);
    violationList.push({ kind: 'response', method, path, operation: opId, message });
    return { status: 500, body: errorBody(`stand-in response violates the Gitea description: ${message}`) };
  }

  const httpServer = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const method = req.method ?? 'GET';
        const url = new URL(req.url ?? '/', 'http://stand-in');
        let outcome: Awaited<ReturnType<typeof handle>>;
        try {
          outcome = await handle(method, url, Buffer.concat(chunks).toString('utf8'), req.headers.authorization ?? '');
          const opId = outcome.record.operation;
          if (options.tamperResponse && opId && outcome.result.status < 300) {
            outcome.result = { ...outcome.result, body: options.tamperResponse(opId, outcome.result.body) };
          }
          // An injected fault is the test's answer, not the stand-in's: it is not held to the description.
          if (!outcome.record.fault) outcome.result = checkResponse(method, url.pathname, outcome.route, outcome.result);
        } catch (err) {
          violationList.push({ kind: 'response', method, path: url.pathname, message: `stand-in crashed: ${(err as Error).stack ?? String(err)}` });
          outcome = { record: {}, result: { status: 500, body: errorBody('stand-in crashed') } };
        }
        log.push({ method, path: url.pathname, query: Object.fromEntries(url.searchParams), ...outcome.record, status: outcome.result.status });
        res.writeHead(outcome.result.status, { 'content-type': 'application/json;charset=utf-8', ...(outcome.result.headers ?? {}) });
        res.end(JSON.stringify(outcome.result.body));
      })();
    });
  });

  await new Promise<void>((resolveListen, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(0, '127.0.0.1', () => resolveListen());
  });
  const address = httpServer.address();
  if (!address || typeof address === 'string') throw new Error('stand-in has no TCP address');
  server = `http://127.0.0.1:${address.port}`;

  return {
    url: api(),
    serverUrl: server,
    token,
    addRepo,
    setRef(fullName, branch, sha) {
      repoOf(fullName).refs.set(branch.replace(/^(refs\/)?heads\//, ''), sha);
    },
    statuses(fullName, sha) {
      return repoOf(fullName).statuses.filter((s) => sha === undefined || s.sha === sha).map((s) => ({ ...s }));
    },
    pulls(fullName) {
      return repoOf(fullName).pulls.map((p) => ({ ...p }));
    },
    comments(fullName, issueNumber) {
      return repoOf(fullName).comments.filter((c) => issueNumber === undefined || c.issueNumber === issueNumber).map((c) => ({ ...c }));
    },
    addStatus(fullName, status) {
      repoOf(fullName).statuses.push({ ...status, id: nextId++, created_at: now() });
    },
    failNext(count, fault) {
      for (let i = 0; i < count; i++) faults.push(fault);
    },
    clearFaults() {
      faults.length = 0;
    },
    requests: () => log.map((r) => ({ ...r })),
    violations: () => violationList.map((v) => ({ ...v })),
    clearLog() {
      log.length = 0;
      violationList.length = 0;
    },
    close: () =>
      new Promise<void>((resolveClose) => {
        httpServer.close(() => resolveClose());
        httpServer.closeAllConnections();
      }),
  };
}
