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
import { join } from 'node:path';
import { checkRequest, checkResponseBody, closeServer, COMMON_FORMATS, compileRoutes, HttpProblem, listenOnLoopback, loadOpenApiSpec, matchRoute, OpenApiSchemas, repoStore, standInJournal } from './openapi-validation.js';
import type { Fault, HandlerInput as StandInHandlerInput, HandlerResult, JsonObject, OpenApiSchemasConfig, OpenApiSpec, Route, StandInControls, StandInOptions } from './openapi-validation.js';

interface GiteaSpec extends OpenApiSpec {
  info: { 'x-vendored-from': { repository: string; path: string; commit: string } };
}

export const GITEA_OPENAPI_FILE = join(import.meta.dirname, 'gitea-openapi', 'v1-openapi3.flotilla-excerpt.json');

export function loadGiteaSpec(): GiteaSpec {
  return loadOpenApiSpec<GiteaSpec>(GITEA_OPENAPI_FILE);
}

const SCHEMA_CONFIG: OpenApiSchemasConfig = {
  schemaBase: 'https://openapi.flotilla.invalid/gitea/schemas/',
  label: 'Gitea OpenAPI excerpt',
  formats: {
    ...COMMON_FORMATS,
    // Gitea's Go structs send "" for an unset URL (target_url, pull_request_url) under `format: uri`.
    uri: (s: string) => s === '' || URL.canParse(s),
  },
};

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

export type GiteaFault = Fault;

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

/** `resolveRef` is asked for branch names (PR heads, `commits/{ref}`). */
export type GiteaStandInOptions = StandInOptions;

export interface GiteaStandIn extends StandInControls<GiteaStoredStatus, GiteaStoredPull, GiteaStoredComment, GiteaRequestRecord, GiteaViolation> {
  /** The API root clients use, ending in `/api/v1`. */
  readonly url: string;
  /** The server root (what Gitea Actions calls GITHUB_SERVER_URL). */
  readonly serverUrl: string;
  setRef(fullName: string, branch: string, sha: string): void;
  /** Adds a status as another system (a CI) would, e.g. with Gitea's own `warning`. */
  addStatus(fullName: string, status: Omit<GiteaStoredStatus, 'id' | 'created_at'>): void;
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

type HandlerInput = StandInHandlerInput<StoredRepo>;

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

let sharedSchemas: OpenApiSchemas | undefined;

export async function startGiteaStandIn(options: GiteaStandInOptions = {}): Promise<GiteaStandIn> {
  const spec = loadGiteaSpec();
  sharedSchemas ??= new OpenApiSchemas(spec, SCHEMA_CONFIG);
  const schemas = sharedSchemas;
  const token = options.token ?? 'gitea_standin_token_0123456789abcdef';
  const login = options.login ?? 'flotilla-bot';
  // A ref may be a branch with slashes (tenants/linda), sent encoded or not.
  const routes = compileRoutes(schemas, OPERATIONS, { prefix: '/api/v1', multiSegment: (name) => name === 'ref' });

  const journal = standInJournal<GiteaRequestRecord, GiteaViolation>();
  const { log, violationList } = journal;
  let nextId = 1000;
  let server = '';
  const api = () => `${server}/api/v1`;
  const repos = repoStore<GiteaStoredStatus, GiteaStoredPull, GiteaStoredComment, StoredRepo>((base) => ({
    id: nextId++,
    ...base,
    refs: new Map(),
    statuses: [],
    pulls: [],
    comments: [],
    nextIndex: 1,
  }));
  for (const r of options.repos ?? []) repos.add(r);

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

  async function handle(method: string, url: URL, raw: string, authorization: string): Promise<{ record: Partial<GiteaRequestRecord>; result: HandlerResult; route?: Route }> {
    const path = url.pathname;
    const violation = (kind: GiteaViolation['kind'], message: string, operation?: string) => {
      violationList.push({ kind, method, path, ...(operation ? { operation } : {}), message });
    };
    const m = /^(?:token|bearer)\s+(\S+)$/i.exec(authorization);
    if (!m || m[1] !== token) return { record: {}, result: { status: 401, body: errorBody('user does not exist') } };

    const match = matchRoute(routes, method, path);
    if (!match) {
      violation('unknown-route', 'no such operation in the vendored Gitea description');
      return { record: {}, result: { status: 404, body: errorBody('Not Found') } };
    }
    const { route, params } = match;
    const opId = route.operation.operationId;

    const checked = checkRequest(schemas, match, url, raw, {
      // Gitea ignores unknown query parameters, but a client sending GitHub's names
      // (per_page) would silently get Gitea's default page: that is a bug here.
      closedQuery: true,
      bodyAlwaysRequired: true,
      rejectUndeclaredBody: true,
    });
    if (checked.notJson) {
      violation('request', 'body is not JSON', opId);
      return { record: { operation: opId }, result: { status: 422, body: errorBody('invalid JSON') } };
    }
    const { body, problems } = checked;
    const record = { operation: opId, ...(raw.length > 0 ? { body } : {}) };
    if (problems.length > 0) {
      const message = problems.join('; ');
      violation('request', message, opId);
      return { record, result: { status: 422, body: errorBody(message) }, route };
    }

    const fault = journal.takeFault(method, path);
    if (fault) {
      return { record: { ...record, fault: true }, result: { status: fault.status, body: errorBody(fault.message ?? 'Internal Server Error'), headers: fault.headers ?? {} }, route };
    }

    const repo = repos.get(String(params['owner']), String(params['repo']));
    if (!repo) return { record, result: { status: 404, body: errorBody('The target couldn\'t be found.') }, route };
    try {
      return { record, result: await handlers[route.key as OperationKey]({ params: checked.params, query: checked.query, body, repo }, path), route };
    } catch (err) {
      if (err instanceof HttpProblem) return { record, result: { status: err.status, body: errorBody(err.message) }, route };
      throw err;
    }
  }

  function checkResponse(method: string, path: string, route: Route | undefined, result: HandlerResult): HandlerResult {
    if (!route) return result;
    const opId = route.operation.operationId;
    const checked = checkResponseBody(schemas, route, result.status, result.body);
    if (checked.kind === 'valid') return result;
    if (checked.kind === 'undocumented') {
      // 401 and 5xx are the server's, 422 answers a request already recorded as a violation.
      const documented = String(result.status) in route.operation.responses || result.status === 401 || result.status === 422 || result.status >= 500;
      if (!documented) violationList.push({ kind: 'response', method, path, operation: opId, message: `status ${result.status} is not a documented response` });
      return result;
    }
    violationList.push({ kind: 'response', method, path, operation: opId, message: checked.message });
    return { status: 500, body: errorBody(`stand-in response violates the Gitea description: ${checked.message}`) };
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

  server = await listenOnLoopback(httpServer);

  return {
    url: api(),
    serverUrl: server,
    token,
    addRepo: repos.add,
    setRef(fullName, branch, sha) {
      repos.of(fullName).refs.set(branch.replace(/^(refs\/)?heads\//, ''), sha);
    },
    statuses: repos.statuses,
    pulls: repos.pulls,
    comments: repos.comments,
    addStatus(fullName, status) {
      repos.of(fullName).statuses.push({ ...status, id: nextId++, created_at: now() });
    },
    ...journal.controls,
    close: () => closeServer(httpServer),
  };
}
