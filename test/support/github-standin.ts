// A loopback stand-in for the parts of GitHub's REST API Flotilla calls (commit
// statuses, pull requests, issue comments, repos, git refs). GitHub is not reachable
// from the test machines, and a hand-written fake drifts from the real API, so every
// request and every response here is checked against GitHub's own OpenAPI description
// (the `@octokit/openapi` package): a request the real API would reject gets a 422 and
// is recorded; a response the stand-in builds wrongly is recorded too (and answered
// with a 500), so a test asserting `violations()` is empty proves both sides.

import http from 'node:http';
import { createRequire } from 'node:module';
import { randomUUID } from 'node:crypto';
import { checkRequest, checkResponseBody, closeServer, COMMON_FORMATS, compileRoutes, HttpProblem, listenOnLoopback, loadOpenApiSpec, matchRoute, OpenApiSchemas, repoStore, standInJournal, takeMatching } from './openapi-validation.js';
import type { Fault, HandlerInput as StandInHandlerInput, HandlerResult, Json, JsonObject, OpenApiSchemasConfig, OpenApiSpec, Route, StandInControls, StandInOptions } from './openapi-validation.js';

// ---------------------------------------------------------------------------
// The OpenAPI description, loaded once per process and compiled lazily.

let sharedSchemas: OpenApiSchemas | undefined;

function loadSpec(): OpenApiSpec {
  return loadOpenApiSpec(createRequire(import.meta.url).resolve('@octokit/openapi/generated/api.github.com.json'));
}

const SCHEMA_CONFIG: OpenApiSchemasConfig = {
  schemaBase: 'https://openapi.flotilla.invalid/github/schemas/',
  formats: {
    ...COMMON_FORMATS,
    date: /^\d{4}-\d{2}-\d{2}$/,
    'uri-template': true,
    'repo.nwo': /^[^/\s]+\/[^/\s]+$/,
  },
};

// ---------------------------------------------------------------------------
// Public types.

export type { Fault };

export interface DelayOptions {
  count?: number;
  /** `before`: the request is not handled if the client gave up; `after`: handled, the answer is late (accepted but timed out). */
  phase?: 'before' | 'after';
  match?: { method?: string; path?: RegExp };
}

export interface RequestRecord {
  method: string;
  path: string;
  operation?: string;
  status: number;
  body?: unknown;
  fault?: boolean;
  clientGaveUp?: boolean;
}

export interface Violation {
  kind: 'request' | 'response' | 'unknown-route' | 'unimplemented';
  method: string;
  path: string;
  operation?: string;
  message: string;
}

export interface StoredStatus {
  id: number;
  sha: string;
  state: 'error' | 'failure' | 'pending' | 'success';
  context: string;
  description: string | null;
  target_url: string | null;
  created_at: string;
}

export interface StoredPull {
  number: number;
  id: number;
  title: string;
  body: string | null;
  head: string;
  headSha: string;
  base: string;
  baseSha: string;
  state: 'open' | 'closed';
  draft: boolean;
  maintainer_can_modify: boolean;
  created_at: string;
  updated_at: string;
  closed_at: string | null;
}

export interface StoredComment {
  id: number;
  issueNumber: number;
  body: string;
  created_at: string;
  updated_at: string;
}

interface StoredRepo {
  id: number;
  owner: string;
  name: string;
  defaultBranch: string;
  private: boolean;
  created_at: string;
  refs: Map<string, string>; // "refs/heads/main" -> sha
  statuses: StoredStatus[]; // chronological
  pulls: StoredPull[];
  comments: StoredComment[];
}

/** `resolveRef` is asked for the ref as given and as `heads/x`, `tags/x`. */
export type GitHubStandInOptions = StandInOptions;

export interface GitHubStandIn extends StandInControls<StoredStatus, StoredPull, StoredComment, RequestRecord, Violation> {
  /** Base URL for Octokit (`baseUrl`), e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  setRef(fullName: string, ref: string, sha: string): void;
  /** Delays the answer to the next request(s) by `ms`. */
  delayNext(ms: number, options?: DelayOptions): void;
  /** Resolves once no request is being handled (late answers included). */
  idle(): Promise<void>;
}

// ---------------------------------------------------------------------------
// The operations implemented, by method and OpenAPI path.

const OPERATIONS = [
  'GET /repos/{owner}/{repo}',
  'POST /repos/{owner}/{repo}/statuses/{sha}',
  'GET /repos/{owner}/{repo}/commits/{ref}/statuses',
  'GET /repos/{owner}/{repo}/commits/{ref}/status',
  'GET /repos/{owner}/{repo}/pulls',
  'POST /repos/{owner}/{repo}/pulls',
  'GET /repos/{owner}/{repo}/pulls/{pull_number}',
  'PATCH /repos/{owner}/{repo}/pulls/{pull_number}',
  'GET /repos/{owner}/{repo}/issues/{issue_number}/comments',
  'POST /repos/{owner}/{repo}/issues/{issue_number}/comments',
  'PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}',
  'GET /repos/{owner}/{repo}/git/ref/{ref}',
  'POST /repos/{owner}/{repo}/git/refs',
  'PATCH /repos/{owner}/{repo}/git/refs/{ref}',
] as const;

type OperationKey = (typeof OPERATIONS)[number];

type HandlerInput = StandInHandlerInput<StoredRepo>;

const DOCS = 'https://docs.github.com/rest';
const SHA = /^[0-9a-f]{40}$/;

function now(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function nodeId(prefix: string, id: number): string {
  return `${prefix}_${Buffer.from(String(id)).toString('base64url')}`;
}

export async function startGitHubStandIn(options: GitHubStandInOptions = {}): Promise<GitHubStandIn> {
  const spec = loadSpec();
  // Compiled validators are stateless; every stand-in in a process shares them.
  sharedSchemas ??= new OpenApiSchemas(spec, SCHEMA_CONFIG);
  const schemas = sharedSchemas;
  const token = options.token ?? 'ghs_standin_token_0123456789';
  const login = options.login ?? 'flotilla-bot';
  const routes = compileRoutes(schemas, OPERATIONS);
  let allRoutes: Route[] | undefined; // every spec path, built only to explain a miss

  const journal = standInJournal<RequestRecord, Violation>();
  const { log, violationList } = journal;
  const delays: Array<{ ms: number; phase: 'before' | 'after'; match?: DelayOptions['match'] }> = [];
  let nextId = 1000;
  let base = '';
  const repos = repoStore<StoredStatus, StoredPull, StoredComment, StoredRepo>((repo) => ({
    id: nextId++,
    ...repo,
    created_at: now(),
    refs: new Map(),
    statuses: [],
    pulls: [],
    comments: [],
  }));
  for (const r of options.repos ?? []) repos.add(r);

  // ---- object builders, shaped as GitHub answers --------------------------------

  function userObject(): JsonObject {
    const api = `${base}/users/${login}`;
    return {
      login,
      id: 1,
      node_id: nodeId('U', 1),
      avatar_url: 'https://avatars.githubusercontent.com/u/1?v=4',
      gravatar_id: '',
      url: api,
      html_url: `https://github.com/${login}`,
      followers_url: `${api}/followers`,
      following_url: `${api}/following{/other_user}`,
      gists_url: `${api}/gists{/gist_id}`,
      starred_url: `${api}/starred{/owner}{/repo}`,
      subscriptions_url: `${api}/subscriptions`,
      organizations_url: `${api}/orgs`,
      repos_url: `${api}/repos`,
      events_url: `${api}/events{/privacy}`,
      received_events_url: `${api}/received_events`,
      type: 'Bot',
      site_admin: false,
    };
  }

  function ownerObject(repo: StoredRepo): JsonObject {
    const api = `${base}/users/${repo.owner}`;
    return { ...userObject(), login: repo.owner, id: 2, node_id: nodeId('O', 2), url: api, html_url: `https://github.com/${repo.owner}`, type: 'Organization' };
  }

  function repoObject(repo: StoredRepo, full: boolean): JsonObject {
    const api = `${base}/repos/${repo.owner}/${repo.name}`;
    const minimal: JsonObject = {
      id: repo.id,
      node_id: nodeId('R', repo.id),
      name: repo.name,
      full_name: `${repo.owner}/${repo.name}`,
      owner: ownerObject(repo),
      private: repo.private,
      html_url: `https://github.com/${repo.owner}/${repo.name}`,
      description: null,
      fork: false,
      url: api,
      archive_url: `${api}/{archive_format}{/ref}`,
      assignees_url: `${api}/assignees{/user}`,
      blobs_url: `${api}/git/blobs{/sha}`,
      branches_url: `${api}/branches{/branch}`,
      collaborators_url: `${api}/collaborators{/collaborator}`,
      comments_url: `${api}/comments{/number}`,
      commits_url: `${api}/commits{/sha}`,
      compare_url: `${api}/compare/{base}...{head}`,
      contents_url: `${api}/contents/{+path}`,
      contributors_url: `${api}/contributors`,
      deployments_url: `${api}/deployments`,
      downloads_url: `${api}/downloads`,
      events_url: `${api}/events`,
      forks_url: `${api}/forks`,
      git_commits_url: `${api}/git/commits{/sha}`,
      git_refs_url: `${api}/git/refs{/sha}`,
      git_tags_url: `${api}/git/tags{/sha}`,
      hooks_url: `${api}/hooks`,
      issue_comment_url: `${api}/issues/comments{/number}`,
      issue_events_url: `${api}/issues/events{/number}`,
      issues_url: `${api}/issues{/number}`,
      keys_url: `${api}/keys{/key_id}`,
      labels_url: `${api}/labels{/name}`,
      languages_url: `${api}/languages`,
      merges_url: `${api}/merges`,
      milestones_url: `${api}/milestones{/number}`,
      notifications_url: `${api}/notifications{?since,all,participating}`,
      pulls_url: `${api}/pulls{/number}`,
      releases_url: `${api}/releases{/id}`,
      stargazers_url: `${api}/stargazers`,
      statuses_url: `${api}/statuses/{sha}`,
      subscribers_url: `${api}/subscribers`,
      subscription_url: `${api}/subscription`,
      tags_url: `${api}/tags`,
      teams_url: `${api}/teams`,
      trees_url: `${api}/git/trees{/sha}`,
    };
    if (!full) return minimal;
    return {
      ...minimal,
      clone_url: `https://github.com/${repo.owner}/${repo.name}.git`,
      git_url: `git://github.com/${repo.owner}/${repo.name}.git`,
      ssh_url: `git@github.com:${repo.owner}/${repo.name}.git`,
      svn_url: `https://github.com/${repo.owner}/${repo.name}`,
      mirror_url: null,
      homepage: null,
      language: null,
      default_branch: repo.defaultBranch,
      forks: 0,
      forks_count: 0,
      stargazers_count: 0,
      watchers: 0,
      watchers_count: 0,
      size: 0,
      open_issues: repo.pulls.filter((p) => p.state === 'open').length,
      open_issues_count: repo.pulls.filter((p) => p.state === 'open').length,
      has_issues: true,
      has_projects: false,
      has_wiki: false,
      has_pages: false,
      has_downloads: false,
      has_discussions: false,
      archived: false,
      disabled: false,
      visibility: repo.private ? 'private' : 'public',
      license: null,
      pushed_at: repo.created_at,
      created_at: repo.created_at,
      updated_at: repo.created_at,
      network_count: 0,
      subscribers_count: 0,
      permissions: { admin: false, maintain: false, push: true, triage: true, pull: true },
    };
  }

  function statusObject(repo: StoredRepo, s: StoredStatus): JsonObject {
    return {
      url: `${base}/repos/${repo.owner}/${repo.name}/statuses/${s.sha}`,
      avatar_url: 'https://avatars.githubusercontent.com/u/1?v=4',
      id: s.id,
      node_id: nodeId('SC', s.id),
      state: s.state,
      description: s.description,
      target_url: s.target_url,
      context: s.context,
      created_at: s.created_at,
      updated_at: s.created_at,
      creator: userObject(),
    };
  }

  function pullObject(repo: StoredRepo, p: StoredPull, detailed: boolean): JsonObject {
    const api = `${base}/repos/${repo.owner}/${repo.name}`;
    const html = `https://github.com/${repo.owner}/${repo.name}/pull/${p.number}`;
    const link = (href: string) => ({ href });
    const side = (ref: string, sha: string) => ({ label: `${repo.owner}:${ref}`, ref, sha, user: ownerObject(repo), repo: repoObject(repo, true) });
    const comments = repo.comments.filter((c) => c.issueNumber === p.number).length;
    const simple: JsonObject = {
      url: `${api}/pulls/${p.number}`,
      id: p.id,
      node_id: nodeId('PR', p.id),
      html_url: html,
      diff_url: `${html}.diff`,
      patch_url: `${html}.patch`,
      issue_url: `${api}/issues/${p.number}`,
      commits_url: `${api}/pulls/${p.number}/commits`,
      review_comments_url: `${api}/pulls/${p.number}/comments`,
      review_comment_url: `${api}/pulls/comments{/number}`,
      comments_url: `${api}/issues/${p.number}/comments`,
      statuses_url: `${api}/statuses/${p.headSha}`,
      number: p.number,
      state: p.state,
      locked: false,
      title: p.title,
      user: userObject(),
      body: p.body,
      labels: [],
      milestone: null,
      active_lock_reason: null,
      created_at: p.created_at,
      updated_at: p.updated_at,
      closed_at: p.closed_at,
      merged_at: null,
      merge_commit_sha: null,
      assignee: null,
      assignees: [],
      requested_reviewers: [],
      requested_teams: [],
      head: side(p.head, p.headSha),
      base: side(p.base, p.baseSha),
      _links: {
        self: link(`${api}/pulls/${p.number}`),
        html: link(html),
        issue: link(`${api}/issues/${p.number}`),
        comments: link(`${api}/issues/${p.number}/comments`),
        review_comments: link(`${api}/pulls/${p.number}/comments`),
        review_comment: link(`${api}/pulls/comments{/number}`),
        commits: link(`${api}/pulls/${p.number}/commits`),
        statuses: link(`${api}/statuses/${p.headSha}`),
      },
      author_association: 'MEMBER',
      auto_merge: null,
      draft: p.draft,
    };
    if (!detailed) return simple;
    return {
      ...simple,
      merged: false,
      mergeable: true,
      rebaseable: true,
      mergeable_state: 'clean',
      merged_by: null,
      comments,
      review_comments: 0,
      maintainer_can_modify: p.maintainer_can_modify,
      commits: 1,
      additions: 0,
      deletions: 0,
      changed_files: 0,
    };
  }

  function commentObject(repo: StoredRepo, c: StoredComment): JsonObject {
    const api = `${base}/repos/${repo.owner}/${repo.name}`;
    return {
      id: c.id,
      node_id: nodeId('IC', c.id),
      url: `${api}/issues/comments/${c.id}`,
      html_url: `https://github.com/${repo.owner}/${repo.name}/pull/${c.issueNumber}#issuecomment-${c.id}`,
      body: c.body,
      user: userObject(),
      created_at: c.created_at,
      updated_at: c.updated_at,
      issue_url: `${api}/issues/${c.issueNumber}`,
      author_association: 'MEMBER',
    };
  }

  function refObject(repo: StoredRepo, ref: string, sha: string): JsonObject {
    const api = `${base}/repos/${repo.owner}/${repo.name}`;
    return {
      ref,
      node_id: nodeId('REF', repo.id),
      url: `${api}/git/${ref}`,
      object: { type: 'commit', sha, url: `${api}/git/commits/${sha}` },
    };
  }

  // ---- behaviour ------------------------------------------------------------

  async function resolveRef(repo: StoredRepo, ref: string): Promise<string | undefined> {
    if (SHA.test(ref)) return ref;
    const short = ref.replace(/^refs\//, '');
    for (const candidate of [`refs/${short}`, `refs/heads/${short}`, `refs/tags/${short}`]) {
      const sha = repo.refs.get(candidate);
      if (sha) return sha;
    }
    if (options.resolveRef) {
      for (const candidate of [ref, `heads/${short}`, `tags/${short}`]) {
        const sha = await options.resolveRef(repo.owner, repo.name, candidate);
        if (sha) return sha;
      }
    }
    return undefined;
  }

  function paginate<T>(items: T[], query: Record<string, string | number>, path: string): { page: T[]; link?: string } {
    const perPage = Math.min(Number(query['per_page'] ?? 30), 100);
    const pageNo = Math.max(Number(query['page'] ?? 1), 1);
    const last = Math.max(Math.ceil(items.length / perPage), 1);
    const page = items.slice((pageNo - 1) * perPage, pageNo * perPage);
    const rel: string[] = [];
    const at = (n: number) => `<${base}${path}?per_page=${perPage}&page=${n}>`;
    if (pageNo < last) rel.push(`${at(pageNo + 1)}; rel="next"`, `${at(last)}; rel="last"`);
    if (pageNo > 1) rel.push(`${at(pageNo - 1)}; rel="prev"`, `${at(1)}; rel="first"`);
    return rel.length ? { page, link: rel.join(', ') } : { page };
  }

  const handlers: Record<OperationKey, (input: HandlerInput, path: string) => Promise<HandlerResult> | HandlerResult> = {
    'GET /repos/{owner}/{repo}': ({ repo }) => ({ status: 200, body: repoObject(repo, true) }),

    'POST /repos/{owner}/{repo}/statuses/{sha}': ({ repo, params, body }) => {
      const sha = String(params['sha']);
      // GitHub checks these beyond the schema: the commit must exist (we can only check
      // it is a full sha) and the description is capped at 140 characters.
      if (!SHA.test(sha)) throw new HttpProblem(422, `No commit found for SHA: ${sha}`);
      const description = (body['description'] as string | null | undefined) ?? null;
      if (description !== null && description.length > 140) {
        throw new HttpProblem(422, 'Validation Failed', [{ resource: 'Status', field: 'description', code: 'custom', message: 'description is too long (maximum is 140 characters)' }]);
      }
      const stored: StoredStatus = {
        id: nextId++,
        sha,
        state: body['state'] as StoredStatus['state'],
        context: (body['context'] as string | undefined) ?? 'default',
        description,
        target_url: (body['target_url'] as string | null | undefined) ?? null,
        created_at: now(),
      };
      repo.statuses.push(stored);
      return {
        status: 201,
        body: statusObject(repo, stored),
        headers: { location: `${base}/repos/${repo.owner}/${repo.name}/statuses/${sha}` },
      };
    },

    'GET /repos/{owner}/{repo}/commits/{ref}/statuses': async ({ repo, params, query }, path) => {
      const sha = await resolveRef(repo, String(params['ref']));
      if (!sha) throw new HttpProblem(404, 'No commit found for the ref');
      const newestFirst = repo.statuses.filter((s) => s.sha === sha).reverse();
      const { page, link } = paginate(newestFirst, query, path);
      return { status: 200, body: page.map((s) => statusObject(repo, s)), headers: link ? { link } : undefined };
    },

    'GET /repos/{owner}/{repo}/commits/{ref}/status': async ({ repo, params, query }, path) => {
      const sha = await resolveRef(repo, String(params['ref']));
      if (!sha) throw new HttpProblem(404, 'No commit found for the ref');
      const latest = new Map<string, StoredStatus>();
      for (const s of repo.statuses.filter((x) => x.sha === sha).reverse()) {
        const key = s.context.toLowerCase(); // contexts are case-insensitive
        if (!latest.has(key)) latest.set(key, s);
      }
      const all = [...latest.values()];
      const state = all.some((s) => s.state === 'error' || s.state === 'failure')
        ? 'failure'
        : all.length === 0 || all.some((s) => s.state === 'pending')
          ? 'pending'
          : 'success';
      const { page, link } = paginate(all, query, path);
      const api = `${base}/repos/${repo.owner}/${repo.name}`;
      return {
        status: 200,
        body: {
          state,
          statuses: page.map((s) => {
            const { creator: _creator, ...simple } = statusObject(repo, s);
            return simple;
          }),
          sha,
          total_count: all.length,
          repository: repoObject(repo, false),
          commit_url: `${api}/commits/${sha}`,
          url: `${api}/commits/${sha}/status`,
        },
        headers: link ? { link } : undefined,
      };
    },

    'GET /repos/{owner}/{repo}/pulls': ({ repo, query }, path) => {
      const state = String(query['state'] ?? 'open');
      const head = query['head'] !== undefined ? String(query['head']) : undefined;
      const baseRef = query['base'] !== undefined ? String(query['base']) : undefined;
      const matching = repo.pulls
        .filter((p) => state === 'all' || p.state === state)
        .filter((p) => head === undefined || `${repo.owner}:${p.head}`.toLowerCase() === head.toLowerCase() || p.head === head)
        .filter((p) => baseRef === undefined || p.base === baseRef);
      const ordered = query['direction'] === 'asc' ? matching : [...matching].reverse();
      const { page, link } = paginate(ordered, query, path);
      return { status: 200, body: page.map((p) => pullObject(repo, p, false)), headers: link ? { link } : undefined };
    },

    'POST /repos/{owner}/{repo}/pulls': async ({ repo, body }) => {
      const head = String(body['head'] ?? '').replace(new RegExp(`^${repo.owner}:`, 'i'), '');
      const baseRef = String(body['base'] ?? '');
      if (typeof body['title'] !== 'string' || body['title'] === '') {
        throw new HttpProblem(422, 'Validation Failed', [{ resource: 'PullRequest', field: 'title', code: 'missing_field' }]);
      }
      const headSha = await resolveRef(repo, `heads/${head}`);
      const baseSha = await resolveRef(repo, `heads/${baseRef}`);
      if (!headSha) throw new HttpProblem(422, 'Validation Failed', [{ resource: 'PullRequest', field: 'head', code: 'invalid' }]);
      if (!baseSha) throw new HttpProblem(422, 'Validation Failed', [{ resource: 'PullRequest', field: 'base', code: 'invalid' }]);
      if (repo.pulls.some((p) => p.state === 'open' && p.head === head && p.base === baseRef)) {
        throw new HttpProblem(422, 'Validation Failed', [{ resource: 'PullRequest', code: 'custom', message: `A pull request already exists for ${repo.owner}:${head}.` }]);
      }
      const created = now();
      const pull: StoredPull = {
        number: repo.pulls.length + 1,
        id: nextId++,
        title: body['title'],
        body: typeof body['body'] === 'string' ? body['body'] : null,
        head,
        headSha,
        base: baseRef,
        baseSha,
        state: 'open',
        draft: body['draft'] === true,
        maintainer_can_modify: body['maintainer_can_modify'] === true,
        created_at: created,
        updated_at: created,
        closed_at: null,
      };
      repo.pulls.push(pull);
      return {
        status: 201,
        body: pullObject(repo, pull, true),
        headers: { location: `${base}/repos/${repo.owner}/${repo.name}/pulls/${pull.number}` },
      };
    },

    'GET /repos/{owner}/{repo}/pulls/{pull_number}': ({ repo, params }) => {
      const pull = repo.pulls.find((p) => p.number === Number(params['pull_number']));
      if (!pull) throw new HttpProblem(404, 'Not Found');
      return { status: 200, body: pullObject(repo, pull, true) };
    },

    'PATCH /repos/{owner}/{repo}/pulls/{pull_number}': ({ repo, params, body }) => {
      const pull = repo.pulls.find((p) => p.number === Number(params['pull_number']));
      if (!pull) throw new HttpProblem(404, 'Not Found');
      if (typeof body['title'] === 'string') pull.title = body['title'];
      if (typeof body['body'] === 'string') pull.body = body['body'];
      if (typeof body['base'] === 'string') pull.base = body['base'];
      if (typeof body['maintainer_can_modify'] === 'boolean') pull.maintainer_can_modify = body['maintainer_can_modify'];
      if (body['state'] === 'open' || body['state'] === 'closed') {
        pull.closed_at = body['state'] === 'closed' ? now() : null;
        pull.state = body['state'];
      }
      pull.updated_at = now();
      return { status: 200, body: pullObject(repo, pull, true) };
    },

    'GET /repos/{owner}/{repo}/issues/{issue_number}/comments': ({ repo, params, query }, path) => {
      const number = Number(params['issue_number']);
      if (!repo.pulls.some((p) => p.number === number)) throw new HttpProblem(404, 'Not Found');
      const since = query['since'] !== undefined ? Date.parse(String(query['since'])) : undefined;
      const comments = repo.comments.filter((c) => c.issueNumber === number && (since === undefined || Date.parse(c.updated_at) >= since));
      const { page, link } = paginate(comments, query, path);
      return { status: 200, body: page.map((c) => commentObject(repo, c)), headers: link ? { link } : undefined };
    },

    'POST /repos/{owner}/{repo}/issues/{issue_number}/comments': ({ repo, params, body }) => {
      const number = Number(params['issue_number']);
      if (!repo.pulls.some((p) => p.number === number)) throw new HttpProblem(404, 'Not Found');
      const text = String(body['body']);
      if (text.length > 65536) {
        throw new HttpProblem(422, 'Validation Failed', [{ resource: 'IssueComment', field: 'body', code: 'custom', message: 'body is too long (maximum is 65536 characters)' }]);
      }
      const created = now();
      const comment: StoredComment = { id: nextId++, issueNumber: number, body: text, created_at: created, updated_at: created };
      repo.comments.push(comment);
      return {
        status: 201,
        body: commentObject(repo, comment),
        headers: { location: `${base}/repos/${repo.owner}/${repo.name}/issues/comments/${comment.id}` },
      };
    },

    'PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}': ({ repo, params, body }) => {
      const comment = repo.comments.find((c) => c.id === Number(params['comment_id']));
      if (!comment) throw new HttpProblem(404, 'Not Found');
      const text = String(body['body']);
      if (text.length > 65536) {
        throw new HttpProblem(422, 'Validation Failed', [{ resource: 'IssueComment', field: 'body', code: 'custom', message: 'body is too long (maximum is 65536 characters)' }]);
      }
      comment.body = text;
      comment.updated_at = now();
      return { status: 200, body: commentObject(repo, comment) };
    },

    'GET /repos/{owner}/{repo}/git/ref/{ref}': async ({ repo, params }) => {
      const ref = `refs/${String(params['ref']).replace(/^refs\//, '')}`;
      const sha = repo.refs.get(ref) ?? (options.resolveRef ? await options.resolveRef(repo.owner, repo.name, ref.slice(5)) : undefined);
      if (!sha) throw new HttpProblem(404, 'Not Found');
      return { status: 200, body: refObject(repo, ref, sha) };
    },

    'POST /repos/{owner}/{repo}/git/refs': ({ repo, body }) => {
      const ref = String(body['ref']);
      const sha = String(body['sha']);
      if (!/^refs\/[^/]+\/.+/.test(ref)) throw new HttpProblem(422, 'Reference name must start with refs/ and have at least two slashes');
      if (!SHA.test(sha)) throw new HttpProblem(422, 'Object does not exist');
      if (repo.refs.has(ref)) throw new HttpProblem(422, 'Reference already exists');
      repo.refs.set(ref, sha);
      return { status: 201, body: refObject(repo, ref, sha), headers: { location: `${base}/repos/${repo.owner}/${repo.name}/git/${ref}` } };
    },

    // Without git objects the stand-in cannot tell a fast-forward from a rewrite; it accepts both.
    'PATCH /repos/{owner}/{repo}/git/refs/{ref}': ({ repo, params, body }) => {
      const ref = `refs/${String(params['ref']).replace(/^refs\//, '')}`;
      if (!repo.refs.has(ref)) throw new HttpProblem(422, 'Reference does not exist');
      const sha = String(body['sha']);
      if (!SHA.test(sha)) throw new HttpProblem(422, 'Object does not exist');
      repo.refs.set(ref, sha);
      return { status: 200, body: refObject(repo, ref, sha) };
    },
  };

  // ---- request pipeline -------------------------------------------------------

  function inSpec(method: string, path: string): string | undefined {
    allRoutes ??= Object.entries(spec.paths).flatMap(([p, ops]) =>
      Object.keys(ops)
        .filter((m) => ['get', 'post', 'put', 'patch', 'delete'].includes(m))
        .map((m) => {
          const names: string[] = [];
          const regex = new RegExp(`^${p.replace(/\{(\w+)\}/g, (_x, n: string) => (names.push(n), '(.+)'))}$`);
          return { key: `${m.toUpperCase()} ${p}`, method: m.toUpperCase(), regex, names, operation: ops[m]! };
        }),
    );
    return allRoutes.find((r) => r.method === method && r.regex.test(path))?.key;
  }

  function errorBody(status: number, message: string, errors?: HttpProblem['errors']): JsonObject {
    const body: JsonObject = { message, documentation_url: DOCS, status: String(status) };
    if (errors) body['errors'] = errors as unknown as Json;
    return body;
  }

  async function handle(req: http.IncomingMessage, raw: string): Promise<{ record: Omit<RequestRecord, 'method' | 'path' | 'status'>; result: HandlerResult }> {
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', 'http://stand-in');
    const path = url.pathname;
    const violation = (kind: Violation['kind'], message: string, operation?: string) => {
      violationList.push({ kind, method, path, ...(operation ? { operation } : {}), message });
    };

    // Authentication comes first, as on GitHub: a bad token never reaches validation.
    const auth = req.headers.authorization ?? '';
    const m = /^(?:token|bearer)\s+(\S+)$/i.exec(auth);
    if (!m) return { record: {}, result: { status: 401, body: errorBody(401, 'Requires authentication') } };
    if (m[1] !== token) return { record: {}, result: { status: 401, body: errorBody(401, 'Bad credentials') } };

    const match = matchRoute(routes, method, path);
    if (!match) {
      const known = inSpec(method, path);
      if (known) {
        violation('unimplemented', `the stand-in does not implement ${known}`);
        return { record: {}, result: { status: 501, body: errorBody(501, `stand-in does not implement ${known}`) } };
      }
      violation('unknown-route', 'no such operation in the OpenAPI description');
      return { record: {}, result: { status: 404, body: errorBody(404, 'Not Found') } };
    }
    const { route, params } = match;
    const opId = route.operation.operationId;

    // Parameters (path and query, typed by the spec) and body.
    const checked = checkRequest(schemas, match, url, raw);
    if (checked.notJson) {
      violation('request', 'body is not JSON', opId);
      return { record: { operation: opId }, result: { status: 400, body: errorBody(400, 'Problems parsing JSON') } };
    }
    const { body, problems } = checked;
    const record = { operation: opId, ...(raw.length > 0 ? { body } : {}) };
    if (problems.length > 0) {
      const message = problems.join('; ');
      violation('request', message, opId);
      return { record, result: { status: 422, body: errorBody(422, `Invalid request: ${message}`, [{ code: 'invalid', message }]) } };
    }

    // Injected faults take effect on valid requests only, so a fault never hides a bad one.
    const fault = journal.takeFault(method, path);
    if (fault) {
      const headers: Record<string, string> = { ...(fault.headers ?? {}) };
      const primary = headers['x-ratelimit-remaining'] === '0';
      if (primary && headers['x-ratelimit-reset'] === undefined) headers['x-ratelimit-reset'] = String(Math.floor(Date.now() / 1000));
      const message =
        fault.message ??
        (fault.status === 403 || fault.status === 429
          ? primary
            ? 'API rate limit exceeded for user ID 1.'
            : 'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.'
          : 'Server Error');
      return { record: { ...record, fault: true }, result: { status: fault.status, body: errorBody(fault.status, message), headers } };
    }

    const [owner = '', name = ''] = [params['owner'], params['repo']];
    const repo = repos.get(owner, name);
    if (!repo) return { record, result: { status: 404, body: errorBody(404, 'Not Found') } };
    try {
      const result = await handlers[route.key as OperationKey]({ params: checked.params, query: checked.query, body, repo }, path);
      return { record, result };
    } catch (err) {
      if (err instanceof HttpProblem) return { record, result: { status: err.status, body: errorBody(err.status, err.message, err.errors) } };
      throw err;
    }
  }

  function checkResponse(req: http.IncomingMessage, result: HandlerResult, opId: string | undefined): HandlerResult {
    const method = req.method ?? 'GET';
    const path = new URL(req.url ?? '/', 'http://stand-in').pathname;
    const match = matchRoute(routes, method, path);
    if (!match) return result;
    const checked = checkResponseBody(schemas, match.route, result.status, result.body);
    if (checked.kind === 'valid') return result;
    if (checked.kind === 'undocumented') {
      // Error answers the spec does not list (401, injected 500s) still take GitHub's error shape.
      if (result.status < 400) {
        violationList.push({ kind: 'response', method, path, ...(opId ? { operation: opId } : {}), message: `status ${result.status} is not a documented response` });
      }
      return result;
    }
    violationList.push({ kind: 'response', method, path, ...(opId ? { operation: opId } : {}), message: checked.message });
    return { status: 500, body: errorBody(500, `stand-in response violates the OpenAPI description: ${checked.message}`) };
  }

  let inProgress = 0;
  const server = http.createServer((req, res) => {
    inProgress++;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        try {
          await respond();
        } finally {
          inProgress--;
        }
      })();
      async function respond(): Promise<void> {
        const method = req.method ?? 'GET';
        const path = req.url ?? '/';
        const pathname = new URL(path, 'http://stand-in').pathname;
        const delay = takeMatching(delays, method, pathname);
        let clientGaveUp = false;
        res.on('close', () => {
          if (!res.writableFinished) clientGaveUp = true;
        });
        if (delay?.phase === 'before') {
          await new Promise((r) => setTimeout(r, delay.ms));
          if (clientGaveUp) {
            log.push({ method, path, status: 0, clientGaveUp: true });
            return;
          }
        }
        let outcome: Awaited<ReturnType<typeof handle>>;
        try {
          outcome = await handle(req, Buffer.concat(chunks).toString('utf8'));
          const opId = outcome.record.operation;
          if (options.tamperResponse && opId && outcome.result.status < 300) {
            outcome.result = { ...outcome.result, body: options.tamperResponse(opId, outcome.result.body) };
          }
          outcome.result = checkResponse(req, outcome.result, outcome.record.operation);
        } catch (err) {
          violationList.push({ kind: 'response', method, path, message: `stand-in crashed: ${(err as Error).stack ?? String(err)}` });
          outcome = { record: {}, result: { status: 500, body: errorBody(500, 'stand-in crashed') } };
        }
        if (delay?.phase === 'after') await new Promise((r) => setTimeout(r, delay.ms));
        log.push({ method, path, ...outcome.record, status: outcome.result.status, ...(clientGaveUp ? { clientGaveUp: true } : {}) });
        if (res.destroyed) return;
        const reset = String(Math.floor(Date.now() / 1000) + 3600);
        res.writeHead(outcome.result.status, {
          'content-type': 'application/json; charset=utf-8',
          'x-github-media-type': 'github.v3; format=json',
          'x-github-request-id': randomUUID(),
          'x-ratelimit-limit': '5000',
          'x-ratelimit-remaining': '4999',
          'x-ratelimit-reset': reset,
          'x-ratelimit-used': '1',
          'x-ratelimit-resource': 'core',
          ...(outcome.result.headers ?? {}),
        });
        res.end(JSON.stringify(outcome.result.body));
      }
    });
  });

  base = await listenOnLoopback(server);

  return {
    url: base,
    token,
    addRepo: repos.add,
    setRef(fullName, ref, sha) {
      repos.of(fullName).refs.set(`refs/${ref.replace(/^refs\//, '')}`, sha);
    },
    statuses: repos.statuses,
    pulls: repos.pulls,
    comments: repos.comments,
    ...journal.controls,
    delayNext(ms, opts = {}) {
      for (let i = 0; i < (opts.count ?? 1); i++) delays.push({ ms, phase: opts.phase ?? 'before', ...(opts.match ? { match: opts.match } : {}) });
    },
    async idle() {
      while (inProgress > 0) await new Promise((r) => setTimeout(r, 10));
    },
    close: () => closeServer(server),
  };
}
