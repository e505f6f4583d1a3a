// What the forge stand-ins (github-standin.ts, gitea-standin.ts) share to hold every
// request and every response to the forge's own OpenAPI 3.0 description: the OpenAPI
// types, the conversion of its schemas to JSON Schema for Ajv, route compiling and
// matching, parameter and body checks, response checks, the stand-ins' common state
// (repositories, request log, violations, injected faults) and a few server helpers. What
// differs per forge (the spec, the schema id base, the formats, the route prefix, how
// strict the query and body checks are) is passed in.

import type http from 'node:http';
import fs from 'node:fs';
import { Ajv, type ValidateFunction, type ErrorObject, type Format } from 'ajv';

// ---------------------------------------------------------------------------
// The OpenAPI description.

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export interface OpenApiParameter {
  name: string;
  in: 'path' | 'query' | 'header' | 'cookie';
  required?: boolean;
  schema?: JsonObject;
}

export interface OpenApiOperation {
  operationId: string;
  parameters?: Array<OpenApiParameter | { $ref: string }>;
  requestBody?: { required?: boolean; content: Record<string, { schema: JsonObject }> };
  responses: Record<string, { $ref: string } | { content?: Record<string, { schema: JsonObject }> }>;
}

export interface OpenApiSpec {
  paths: Record<string, Record<string, OpenApiOperation>>;
  components: {
    schemas: Record<string, JsonObject>;
    parameters?: Record<string, OpenApiParameter>;
    responses: Record<string, { content?: Record<string, { schema: JsonObject }> }>;
  };
}

const specCache = new Map<string, unknown>();

/** Reads a JSON OpenAPI description once per process. */
export function loadOpenApiSpec<T extends OpenApiSpec = OpenApiSpec>(file: string): T {
  let spec = specCache.get(file) as T | undefined;
  if (!spec) {
    spec = JSON.parse(fs.readFileSync(file, 'utf8')) as T;
    specCache.set(file, spec);
  }
  return spec;
}

// Keys that annotate a schema but do not validate; `nullable` is rewritten below.
const DROPPED_KEYS = new Set(['example', 'examples', 'discriminator', 'xml', 'externalDocs', 'deprecated', 'nullable']);

/** The formats both forges' descriptions use, checked the same way; each stand-in adds its own. */
export const COMMON_FORMATS: Record<string, Format> = {
  'date-time': /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/,
  email: /^[^\s@]+@[^\s@]+$/,
  uri: (s: string) => URL.canParse(s),
  int64: { type: 'number' as const, validate: (n: number) => Number.isInteger(n) },
};

export interface OpenApiSchemasConfig {
  /** `$id` prefix of the component schemas, e.g. `https://openapi.flotilla.invalid/github/schemas/`. */
  schemaBase: string;
  formats: Record<string, Format>;
  /** How errors name the description, e.g. `Gitea OpenAPI excerpt`. */
  label?: string;
}

/**
 * Turns OpenAPI 3.0 schemas into JSON Schema Ajv understands: `nullable: true` becomes
 * `anyOf [schema, null]` (Ajv's own `nullable` cannot combine with enum or allOf), component
 * `$ref`s point at separately added schemas so only what an operation reaches is compiled.
 * Compiled validators are stateless, so one instance per description serves every stand-in.
 */
export class OpenApiSchemas {
  readonly label: string;
  private readonly ajv: Ajv;
  private readonly paramAjv: Ajv;
  private readonly added = new Set<string>();
  private readonly compiled = new Map<string, ValidateFunction>();

  constructor(
    readonly spec: OpenApiSpec,
    private readonly config: OpenApiSchemasConfig,
  ) {
    this.label = config.label ?? 'OpenAPI description';
    const common = { strict: false, allErrors: true, logger: false as const, formats: config.formats };
    this.ajv = new Ajv(common);
    // Path and query parameters arrive as strings; the spec types them (integer, enum).
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
    if (!raw) throw new Error(`${this.label} has no schema ${name}`);
    this.added.add(name);
    const converted = { ...(this.convert(raw) as JsonObject), $id: this.config.schemaBase + name };
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
      return { $ref: this.config.schemaBase + name };
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

export function formatAjvErrors(errors: ErrorObject[] | null | undefined, where: string): string {
  return (errors ?? [])
    .slice(0, 8)
    .map((e) => `${where}${e.instancePath || ''} ${e.message ?? 'is invalid'}${e.params && 'allowedValues' in e.params ? ` (${(e.params['allowedValues'] as unknown[]).join(', ')})` : ''}`)
    .join('; ');
}

// ---------------------------------------------------------------------------
// Routing: the operations a stand-in implements, by method and OpenAPI path.

export interface Route {
  key: string; // "POST /repos/{owner}/{repo}/statuses/{sha}"
  method: string;
  regex: RegExp;
  names: string[];
  operation: OpenApiOperation;
}

export interface RouteMatch {
  route: Route;
  params: Record<string, string>;
}

export function resolveParameters(schemas: OpenApiSchemas, op: OpenApiOperation): OpenApiParameter[] {
  return (op.parameters ?? []).map((p) => {
    if ('$ref' in p) {
      const resolved = schemas.spec.components.parameters?.[p.$ref.replace('#/components/parameters/', '')];
      if (!resolved) throw new Error(`${schemas.label} has no parameter ${p.$ref}`);
      return resolved;
    }
    return p;
  });
}

export interface RouteOptions {
  /** Where the API lives under the server root, e.g. `/api/v1`. */
  prefix?: string;
  /** Whether a path parameter may span segments (a ref with slashes); by default the spec's `x-multi-segment`. */
  multiSegment?: (name: string, parameters: OpenApiParameter[]) => boolean;
}

const specMultiSegment = (name: string, parameters: OpenApiParameter[]) =>
  parameters.some((p) => p.name === name && (p as unknown as JsonObject)['x-multi-segment'] === true);

/** Compiles `'GET /repos/{owner}/{repo}'`-style keys to routes, failing on one the description lacks. */
export function compileRoutes(schemas: OpenApiSchemas, keys: readonly string[], options: RouteOptions = {}): Route[] {
  const multiSegment = options.multiSegment ?? specMultiSegment;
  return keys.map((key) => {
    const [method, path] = key.split(' ') as [string, string];
    const operation = schemas.spec.paths[path]?.[method.toLowerCase()];
    if (!operation) throw new Error(`${schemas.label} has no operation ${method} ${path}`);
    const parameters = resolveParameters(schemas, operation);
    const names: string[] = [];
    const pattern = path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{(\w+)\}/g, (_m, name: string) => {
      names.push(name);
      // Refs like `heads/tenants/linda` may arrive with literal slashes or as %2F.
      return multiSegment(name, parameters) ? '(.+)' : '([^/]+)';
    });
    return { key: `${method} ${path}`, method, regex: new RegExp(`^${options.prefix ?? ''}${pattern}$`), names, operation };
  });
}

export function matchRoute(routes: readonly Route[], method: string, path: string): RouteMatch | undefined {
  for (const route of routes) {
    if (route.method !== method) continue;
    const m = route.regex.exec(path);
    if (!m) continue;
    return { route, params: Object.fromEntries(route.names.map((name, i) => [name, decodeURIComponent(m[i + 1] ?? '')])) };
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// Requests and responses.

export interface RequestCheckOptions {
  /** Query parameters the operation does not declare are a problem. */
  closedQuery?: boolean;
  /** A body is required whenever the operation takes one, not only when `requestBody.required` says so. */
  bodyAlwaysRequired?: boolean;
  /** A body sent to an operation that takes none is a problem. */
  rejectUndeclaredBody?: boolean;
}

export type RequestCheck =
  | { notJson: true }
  | {
      notJson: false;
      params: Record<string, string | number>;
      query: Record<string, string | number>;
      body: JsonObject;
      /** Empty when the request is as the description allows. */
      problems: string[];
    };

/** Checks path and query parameters (typing them as the spec does) and the JSON body of a matched request. */
export function checkRequest(schemas: OpenApiSchemas, match: RouteMatch, url: URL, raw: string, options: RequestCheckOptions = {}): RequestCheck {
  const { route } = match;
  const parameters = resolveParameters(schemas, route.operation);
  const query: Record<string, string> = {};
  for (const [k, v] of url.searchParams) query[k] = v;
  const typedParams: Record<string, string | number> = { ...match.params };
  const typedQuery: Record<string, string | number> = { ...query };
  const problems: string[] = [];
  for (const where of ['path', 'query'] as const) {
    const declared = parameters.filter((p) => p.in === where);
    const schema: JsonObject = {
      type: 'object',
      properties: Object.fromEntries(declared.map((p) => [p.name, (p.schema ?? {}) as Json])),
      required: declared.filter((p) => p.required).map((p) => p.name),
      ...(where === 'query' && options.closedQuery ? { additionalProperties: false } : {}),
    };
    const validate = schemas.validator(`${route.key}#${where}`, schema, true);
    if (!validate(where === 'path' ? typedParams : typedQuery)) problems.push(formatAjvErrors(validate.errors, where));
  }

  let body: JsonObject = {};
  if (raw.length > 0) {
    try {
      body = JSON.parse(raw) as JsonObject;
    } catch {
      return { notJson: true };
    }
  }
  const bodySpec = route.operation.requestBody?.content['application/json'];
  if (bodySpec) {
    if (raw.length === 0) {
      if (options.bodyAlwaysRequired || route.operation.requestBody?.required) problems.push('body is required');
    } else {
      const validate = schemas.validator(`${route.key}#body`, bodySpec.schema);
      if (!validate(body)) problems.push(formatAjvErrors(validate.errors, 'body'));
    }
  } else if (raw.length > 0 && options.rejectUndeclaredBody) {
    problems.push('the operation takes no body');
  }
  return { notJson: false, params: typedParams, query: typedQuery, body, problems };
}

export function responseSchema(spec: OpenApiSpec, operation: OpenApiOperation, status: number): JsonObject | undefined {
  let response = operation.responses[String(status)];
  if (response && '$ref' in response) response = spec.components.responses[response.$ref.replace('#/components/responses/', '')];
  return response && 'content' in response ? response.content?.['application/json']?.schema : undefined;
}

export type ResponseCheck = { kind: 'valid' } | { kind: 'undocumented' } | { kind: 'invalid'; message: string };

/** Holds an answer to the description: its status must be documented with a JSON schema the body meets. */
export function checkResponseBody(schemas: OpenApiSchemas, route: Route, status: number, body: unknown): ResponseCheck {
  const schema = responseSchema(schemas.spec, route.operation, status);
  if (!schema) return { kind: 'undocumented' };
  const validate = schemas.validator(`${route.key}#${status}`, schema);
  if (validate(JSON.parse(JSON.stringify(body)))) return { kind: 'valid' };
  return { kind: 'invalid', message: formatAjvErrors(validate.errors, `response ${status}`) };
}

/** A handler's error answer: the stand-in turns it into the forge's error body. */
export class HttpProblem extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly errors?: Array<{ resource?: string; field?: string; code: string; message?: string }>,
  ) {
    super(message);
  }
}

/** Removes and returns the first entry (an injected fault, a delay) whose `match` fits the request. */
export function takeMatching<T extends { match?: { method?: string; path?: RegExp } | undefined }>(list: T[], method: string, path: string): T | undefined {
  const index = list.findIndex((f) => (!f.match?.method || f.match.method === method) && (!f.match?.path || f.match.path.test(path)));
  return index >= 0 ? list.splice(index, 1)[0] : undefined;
}

// ---------------------------------------------------------------------------
// The server.

/** Listens on a free loopback port and returns `http://127.0.0.1:PORT`. */
export async function listenOnLoopback(server: http.Server): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('stand-in has no TCP address');
  return `http://127.0.0.1:${address.port}`;
}

export function closeServer(server: http.Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

// ---------------------------------------------------------------------------
// The stand-in's own state: repositories, the request log, violations and faults.

export interface HandlerInput<Repo> {
  params: Record<string, string | number>;
  query: Record<string, string | number>;
  body: JsonObject;
  repo: Repo;
}

export interface HandlerResult {
  status: number;
  body: unknown;
  headers?: Record<string, string> | undefined;
}

/** What starting either stand-in takes. */
export interface StandInOptions {
  /** The token clients must send (`authorization: token X` or `Bearer X`). */
  token?: string;
  /** The login the token belongs to; appears as creator/user. */
  login?: string;
  /** Repositories to create up front, as `owner/name`. */
  repos?: string[];
  /**
   * Resolves ref names the stand-in has not been told about, e.g. from the loopback git
   * server's bare repository, so PR heads and `commits/{ref}` see real commits.
   */
  resolveRef?: (owner: string, repo: string, ref: string) => string | undefined | Promise<string | undefined>;
  /** Rewrites a successful answer before it is checked; only the stand-ins' own tests use it, to prove the check. */
  tamperResponse?: (operationId: string, body: unknown) => unknown;
}

export interface Fault {
  status: number;
  headers?: Record<string, string>;
  message?: string;
  /** Only requests this matches consume the fault, e.g. `{ method: 'POST', path: /statuses/ }`. */
  match?: { method?: string; path?: RegExp };
}

/** What a test does with either stand-in: its repositories, its log, its faults. */
export interface StandInControls<Status, Pull, Comment, Entry, Violation> {
  readonly url: string;
  readonly token: string;
  addRepo(fullName: string, options?: RepoOptions): void;
  /** Statuses posted for a commit, oldest first. */
  statuses(fullName: string, sha?: string): Status[];
  pulls(fullName: string): Pull[];
  comments(fullName: string, issueNumber?: number): Comment[];
  /** The next `count` requests (matching `fault.match`) get this error answer instead. */
  failNext(count: number, fault: Fault): void;
  /** Drops every fault not yet consumed (the outage is over). */
  clearFaults(): void;
  requests(): Entry[];
  violations(): Violation[];
  clearLog(): void;
  close(): Promise<void>;
}

export interface RepoOptions {
  defaultBranch?: string;
  private?: boolean;
}

interface StoredLists<Status, Pull, Comment> {
  statuses: Status[];
  pulls: Pull[];
  comments: Comment[];
}

/**
 * Repositories by `owner/name` (case-insensitive, as the forges match them), created by
 * `create`, with copies of what was stored for a test to read back.
 */
export function repoStore<Status extends { sha: string }, Pull, Comment extends { issueNumber: number }, Repo extends StoredLists<Status, Pull, Comment>>(
  create: (base: { owner: string; name: string; defaultBranch: string; private: boolean }) => Repo,
) {
  const repos = new Map<string, Repo>();
  const key = (owner: string, name: string) => `${owner}/${name}`.toLowerCase();
  const of = (fullName: string): Repo => {
    const [owner = '', name = ''] = fullName.split('/');
    const repo = repos.get(key(owner, name));
    if (!repo) throw new Error(`stand-in has no repo ${fullName}`);
    return repo;
  };
  return {
    get: (owner: string, name: string): Repo | undefined => repos.get(key(owner, name)),
    of,
    add(fullName: string, options: RepoOptions = {}): void {
      const [owner, name] = fullName.split('/');
      if (!owner || !name) throw new Error(`repo must be owner/name: ${fullName}`);
      if (repos.has(key(owner, name))) return;
      repos.set(key(owner, name), create({ owner, name, defaultBranch: options.defaultBranch ?? 'main', private: options.private ?? true }));
    },
    statuses: (fullName: string, sha?: string): Status[] => of(fullName).statuses.filter((s) => sha === undefined || s.sha === sha).map((s) => ({ ...s })),
    pulls: (fullName: string): Pull[] => of(fullName).pulls.map((p) => ({ ...p })),
    comments: (fullName: string, issueNumber?: number): Comment[] =>
      of(fullName).comments.filter((c) => issueNumber === undefined || c.issueNumber === issueNumber).map((c) => ({ ...c })),
  };
}

/** The requests a stand-in answered, the violations it found and the faults a test injected. */
export function standInJournal<Entry extends object, Violation extends object>() {
  const faults: Fault[] = [];
  const log: Entry[] = [];
  const violations: Violation[] = [];
  return {
    log,
    violationList: violations,
    /** The first injected fault that fits the request, consumed. */
    takeFault: (method: string, path: string): Fault | undefined => takeMatching(faults, method, path),
    controls: {
      failNext(count: number, fault: Fault): void {
        for (let i = 0; i < count; i++) faults.push(fault);
      },
      clearFaults(): void {
        faults.length = 0;
      },
      requests: (): Entry[] => log.map((r) => ({ ...r })),
      violations: (): Violation[] => violations.map((v) => ({ ...v })),
      clearLog(): void {
        log.length = 0;
        violations.length = 0;
      },
    },
  };
}
