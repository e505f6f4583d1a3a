// The forge Flotilla talks to: GitHub (github.com or Enterprise Server at /api/v3), or
// Gitea and Forgejo (/api/v1). Everything the renderer and the agent need from a forge
// goes through this one interface, so the API differences stay here (as release-please
// keeps its SCM interface):
//
//                   GitHub                              Gitea / Forgejo
//   API root        https://api.github.com, .../api/v3  https://host/api/v1
//   status states   pending success failure error       + warning, skipped (read only)
//   status field    `state`                             `state` to create, `status` to read
//   PR comments     issues API                          issues API (a PR's number is its index)
//   pagination      per_page (≤100), Link               page + limit (≤50, default 30), X-Total-Count
//   PR for a head   ?head=owner:branch                  no head filter: list and match head.ref
//   rate limits     x-ratelimit-*, retry-after          retry-after only (when configured)
//
// The forge is chosen by a setting (FLOTILLA_FORGE=github|gitea; `forgejo` is Gitea's API)
// or, without one, from the API URL: a path ending in /api/v1 is Gitea, anything else
// GitHub (GHES's /api/v3 included).

import { GitHubError, SettingError } from './errors.js';
import {
  createCommitStatus as githubCreateCommitStatus,
  createGitHubClient,
  getCombinedStatus as githubGetCombinedStatus,
  githubCall,
  listStatuses as githubListStatuses,
  redact,
  retryAtOf,
  truncateDescription,
  type CombinedStatus,
  type CommitState,
  type CommitStatus,
  type CommitStatusInput,
  type GitHubClient,
  type GitHubClientOptions,
  type GitHubLog,
  type RepoRef,
} from './github.js';

export type ForgeKind = 'github' | 'gitea';

/** A state as the forge reported it: Flotilla's four, or Gitea's `warning` / `skipped`. */
export type ForgeState = CommitState | 'warning' | 'skipped';

export interface ForgeCommitStatus extends CommitStatus {
  /** What the forge said, before mapping to Flotilla's four states (Gitea: warning, skipped). */
  forgeState: ForgeState;
}

export interface ForgeCombinedStatus extends CombinedStatus {
  forgeState: ForgeState;
  statuses: ForgeCommitStatus[];
}

export interface IssueComment {
  id: number;
  body: string;
  url: string;
}

export interface StickyCommentInput extends RepoRef {
  issueNumber: number;
  /** Hidden text that finds the comment again, e.g. `<!-- flotilla-plan -->`. */
  marker: string;
  body: string;
}

export interface StickyCommentResult {
  action: 'created' | 'updated' | 'unchanged';
  id: number;
  url: string;
}

export interface PullRequest {
  number: number;
  url: string;
  state: 'open' | 'closed';
  head: string;
  base: string;
  title: string;
}

export interface OpenPullRequestInput extends RepoRef {
  head: string;
  /** Default: the repository's default branch. */
  base?: string;
  title: string;
  body: string;
}

export interface Forge {
  readonly kind: ForgeKind;
  /** The REST API root in use. */
  readonly apiUrl: string;
  /** Posts a commit status; `retryAt` when the forge said no writes are left until then. */
  createCommitStatus(input: CommitStatusInput): Promise<ForgeCommitStatus & { retryAt?: number }>;
  /** Statuses of a sha, branch or tag, newest first (one page of at most `perPage`). */
  listStatuses(ref: RepoRef & { ref: string; perPage?: number }): Promise<ForgeCommitStatus[]>;
  /** The newest status per context and their combination, for a sha, branch or tag. */
  getCombinedStatus(ref: RepoRef & { ref: string }): Promise<ForgeCombinedStatus>;
  /** Every comment on an issue or pull request, oldest first. */
  listComments(issue: RepoRef & { issueNumber: number }): Promise<IssueComment[]>;
  /** The one comment carrying `marker`: created, updated in place, or left alone when identical. */
  upsertStickyComment(input: StickyCommentInput): Promise<StickyCommentResult>;
  /** Pull requests whose head is `head` (a branch of the same repository), newest first. */
  findPullRequests(query: RepoRef & { head: string; state?: 'open' | 'closed' | 'all' }): Promise<PullRequest[]>;
  openPullRequest(input: OpenPullRequestInput): Promise<PullRequest>;
  getDefaultBranch(repo: RepoRef): Promise<string>;
}

export interface ForgeOptions extends GitHubClientOptions {
  /** github or gitea (forgejo is accepted as gitea); default: detected from `baseUrl`. */
  kind?: string;
}

// ---------------------------------------------------------------------------
// Choosing the forge

/** `FLOTILLA_FORGE` (github, gitea, forgejo) if set, else by the API URL: `/api/v1` is Gitea. */
export function detectForgeKind(apiUrl: string | undefined, setting?: string, settingName = 'FLOTILLA_FORGE'): ForgeKind {
  const s = setting?.trim().toLowerCase();
  if (s) {
    if (s === 'github' || s === 'ghes' || s === 'github-enterprise') return 'github';
    if (s === 'gitea' || s === 'forgejo') return 'gitea';
    throw new SettingError(settingName, `must be github or gitea (forgejo), got ${JSON.stringify(setting)}`);
  }
  if (!apiUrl) return 'github';
  let path: string;
  try {
    path = new URL(apiUrl).pathname;
  } catch {
    throw new SettingError('API URL', `is not a URL: ${JSON.stringify(apiUrl)}`);
  }
  return /\/api\/v1\/*$/.test(path) ? 'gitea' : 'github';
}

/** The forge for these options: GitHub through Octokit, Gitea through fetch. */
export function createForge(options: ForgeOptions): Forge {
  const kind = detectForgeKind(options.baseUrl, options.kind);
  return kind === 'gitea' ? new GiteaForge(options) : new GitHubForge(createGitHubClient(options), options.baseUrl ?? 'https://api.github.com');
}

/** Forge settings from the environment the CLI and the agent already read. */
export function forgeOptionsFromEnv(env: NodeJS.ProcessEnv): Pick<ForgeOptions, 'baseUrl' | 'kind'> {
  const baseUrl = env.FLOTILLA_GITHUB_API || env.FLOTILLA_GITHUB_API_URL || env.GITHUB_API_URL || 'https://api.github.com';
  return { baseUrl, ...(env.FLOTILLA_FORGE ? { kind: env.FLOTILLA_FORGE } : {}) };
}

function toFlotillaState(state: string): CommitState {
  // warning and skipped do not block in Gitea; Flotilla's own contexts never post them.
  if (state === 'warning' || state === 'skipped') return 'success';
  if (state === 'pending' || state === 'success' || state === 'failure' || state === 'error') return state;
  return 'error';
}

// ---------------------------------------------------------------------------
// GitHub

/** GitHub and GitHub Enterprise Server, through the Octokit client of github.ts. */
export class GitHubForge implements Forge {
  readonly kind = 'github' as const;
  constructor(
    readonly client: GitHubClient,
    readonly apiUrl: string,
  ) {}

  async createCommitStatus(input: CommitStatusInput) {
    const s = await githubCreateCommitStatus(this.client, input);
    return { ...s, forgeState: s.state };
  }

  async listStatuses(ref: RepoRef & { ref: string; perPage?: number }) {
    return (await githubListStatuses(this.client, ref)).map((s) => ({ ...s, forgeState: s.state }));
  }

  async getCombinedStatus(ref: RepoRef & { ref: string }) {
    const c = await githubGetCombinedStatus(this.client, ref);
    return { ...c, forgeState: c.state, statuses: c.statuses.map((s) => ({ ...s, forgeState: s.state })) };
  }

  async listComments({ owner, repo, issueNumber }: RepoRef & { issueNumber: number }) {
    const comments = await githubCall(this.client, `list comments of ${owner}/${repo}#${issueNumber}`, (o) =>
      o.paginate(o.rest.issues.listComments, { owner, repo, issue_number: issueNumber, per_page: 100 }),
    );
    return comments.map((c) => ({ id: c.id, body: c.body ?? '', url: c.html_url }));
  }

  async upsertStickyComment(input: StickyCommentInput): Promise<StickyCommentResult> {
    const { owner, repo, issueNumber } = input;
    const where = `${owner}/${repo}#${issueNumber}`;
    return upsertSticky(this, input, {
      update: async (id, body) => {
        const { data } = await githubCall(this.client, `update comment on ${where}`, (o) => o.rest.issues.updateComment({ owner, repo, comment_id: id, body }));
        return { id: data.id, body: data.body ?? '', url: data.html_url };
      },
      create: async (body) => {
        const { data } = await githubCall(this.client, `comment on ${where}`, (o) => o.rest.issues.createComment({ owner, repo, issue_number: issueNumber, body }));
        return { id: data.id, body: data.body ?? '', url: data.html_url };
      },
    });
  }

  async findPullRequests({ owner, repo, head, state = 'all' }: RepoRef & { head: string; state?: 'open' | 'closed' | 'all' }) {
    const { data } = await githubCall(this.client, `list pull requests for ${head} on ${owner}/${repo}`, (o) =>
      o.rest.pulls.list({ owner, repo, head: `${owner}:${head}`, state, per_page: 100 }),
    );
    return data.filter((p) => p.head.ref === head).map((p) => ({ number: p.number, url: p.html_url, state: p.state as 'open' | 'closed', head: p.head.ref, base: p.base.ref, title: p.title }));
  }

  async openPullRequest(input: OpenPullRequestInput) {
    const { owner, repo } = input;
    const base = input.base ?? (await this.getDefaultBranch(input));
    const { data } = await githubCall(this.client, `open pull request ${input.head} -> ${base} on ${owner}/${repo}`, (o) =>
      o.rest.pulls.create({ owner, repo, head: input.head, base, title: input.title, body: input.body }),
    );
    return { number: data.number, url: data.html_url, state: data.state as 'open' | 'closed', head: data.head.ref, base: data.base.ref, title: data.title };
  }

  async getDefaultBranch({ owner, repo }: RepoRef) {
    return (await githubCall(this.client, `get ${owner}/${repo}`, (o) => o.rest.repos.get({ owner, repo }))).data.default_branch;
  }
}

async function upsertSticky(
  forge: Forge,
  input: StickyCommentInput,
  write: { update(id: number, body: string): Promise<IssueComment>; create(body: string): Promise<IssueComment> },
): Promise<StickyCommentResult> {
  const body = input.body.includes(input.marker) ? input.body : `${input.marker}\n${input.body}`;
  const existing = (await forge.listComments(input)).find((c) => c.body.includes(input.marker));
  if (existing) {
    if (existing.body === body) return { action: 'unchanged', id: existing.id, url: existing.url };
    const c = await write.update(existing.id, body);
    return { action: 'updated', id: c.id, url: c.url };
  }
  const c = await write.create(body);
  return { action: 'created', id: c.id, url: c.url };
}

// ---------------------------------------------------------------------------
// Gitea and Forgejo

interface GiteaStatus {
  id: number;
  status: string;
  context: string;
  description?: string;
  target_url?: string;
  created_at: string;
}

interface GiteaPull {
  number: number;
  html_url: string;
  state: string;
  title: string;
  head: { ref: string };
  base: { ref: string };
}

/** Gitea's largest page (MAX_RESPONSE_ITEMS, default 50). */
const GITEA_PAGE = 50;

/** Gitea and Forgejo, through fetch with the same timeout, retries and token scrubbing as the GitHub client. */
export class GiteaForge implements Forge {
  readonly kind = 'gitea' as const;
  readonly apiUrl: string;
  private readonly token: string;
  private readonly fetchFn: typeof globalThis.fetch;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly baseDelayMs: number;
  private readonly userAgent: string;
  private readonly log: GitHubLog | undefined;

  constructor(options: GitHubClientOptions) {
    if (!options.baseUrl) throw new SettingError('FLOTILLA_GITHUB_API', 'must be the Gitea API root (https://host/api/v1)');
    this.apiUrl = options.baseUrl.replace(/\/+$/, '');
    this.token = options.token;
    this.fetchFn = options.fetch ?? globalThis.fetch;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    const retry = options.retry === false ? { retries: 0 } : typeof options.retry === 'object' ? options.retry : {};
    this.retries = retry.retries ?? 3;
    this.baseDelayMs = retry.baseDelayMs ?? 1000;
    this.userAgent = options.userAgent ?? 'flotilla';
    this.log = options.log;
  }

  /** One API call; 5xx and network failures retried (n² backoff), 429 after its retry-after. */
  private async request<T>(
    operation: string,
    method: string,
    path: string,
    options: { query?: Record<string, string | number | undefined>; body?: unknown } = {},
  ): Promise<{ data: T; headers: Headers }> {
    const url = new URL(`${this.apiUrl}${path}`);
    for (const [k, v] of Object.entries(options.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const op = `${operation} (Gitea)`;
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        res = await this.fetchFn(url, {
          method,
          headers: {
            authorization: `token ${this.token}`,
            accept: 'application/json',
            'user-agent': this.userAgent,
            ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
          },
          ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
          signal: AbortSignal.timeout(this.timeoutMs),
        });
      } catch (err) {
        const e = err as Error;
        const detail = e.name === 'TimeoutError' ? `no answer in time (${e.message})` : e.message;
        if (attempt < this.retries) {
          await this.wait(attempt, `${method} ${path}: ${detail}`);
          continue;
        }
        throw new GitHubError(op, undefined, redact(detail, [this.token]), { cause: err });
      }
      if (res.ok) {
        const text = await res.text();
        return { data: (text ? JSON.parse(text) : undefined) as T, headers: res.headers };
      }
      const headers = Object.fromEntries(res.headers);
      let message = `${res.status} ${res.statusText}`;
      try {
        const body = (await res.json()) as { message?: unknown };
        if (typeof body.message === 'string' && body.message) message = body.message;
      } catch {
        // not JSON: keep the status line
      }
      if (res.status >= 500 && attempt < this.retries) {
        await this.wait(attempt, `${method} ${path}: ${res.status}`);
        continue;
      }
      const retryAt = retryAtOf(headers);
      const retryAfter = headers['retry-after'];
      throw new GitHubError(op, res.status, redact(`${message}${retryAfter !== undefined ? ` (retry-after ${retryAfter}s)` : ''}`, [this.token]), retryAt === undefined ? {} : { retryAt });
    }
  }

  private async wait(attempt: number, why: string): Promise<void> {
    const ms = (attempt + 1) ** 2 * this.baseDelayMs;
    this.log?.warn(redact(`Gitea ${why}; retrying in ${ms} ms`, [this.token]));
    await new Promise((r) => setTimeout(r, ms));
  }

  private repoPath({ owner, repo }: RepoRef): string {
    return `/repos/${encodeURIComponent(owner)}/${encodeURIComponent(repo)}`;
  }

  private toStatus(s: GiteaStatus): ForgeCommitStatus {
    return {
      id: s.id,
      state: toFlotillaState(s.status),
      forgeState: s.status as ForgeState,
      context: s.context,
      description: s.description ? s.description : null,
      targetUrl: s.target_url ? s.target_url : null,
      createdAt: s.created_at,
    };
  }

  async createCommitStatus(input: CommitStatusInput) {
    const { data } = await this.request<GiteaStatus>(
      `create commit status ${input.context}=${input.state} on ${input.owner}/${input.repo}@${input.sha.slice(0, 12)}`,
      'POST',
      `${this.repoPath(input)}/statuses/${encodeURIComponent(input.sha)}`,
      { body: { state: input.state, context: input.context, description: truncateDescription(input.description), ...(input.targetUrl ? { target_url: input.targetUrl } : {}) } },
    );
    return this.toStatus(data);
  }

  async listStatuses(ref: RepoRef & { ref: string; perPage?: number }) {
    const { data } = await this.request<GiteaStatus[]>(
      `list commit statuses of ${ref.owner}/${ref.repo}@${ref.ref}`,
      'GET',
      `${this.repoPath(ref)}/commits/${encodeURIComponent(ref.ref)}/statuses`,
      { query: { limit: Math.min(ref.perPage ?? GITEA_PAGE, GITEA_PAGE) } },
    );
    return data.map((s) => this.toStatus(s));
  }

  async getCombinedStatus(ref: RepoRef & { ref: string }) {
    const operation = `get combined status of ${ref.owner}/${ref.repo}@${ref.ref}`;
    const path = `${this.repoPath(ref)}/commits/${encodeURIComponent(ref.ref)}/status`;
    const first = await this.request<{ state: string; sha: string; total_count: number; statuses: GiteaStatus[] | null }>(operation, 'GET', path, { query: { page: 1, limit: GITEA_PAGE } });
    const statuses = [...(first.data.statuses ?? [])];
    // More contexts than one page holds: page on (Gitea pages the combined status too).
    for (let page = 2; statuses.length < first.data.total_count && page <= 20; page++) {
      const next = await this.request<{ statuses: GiteaStatus[] | null }>(operation, 'GET', path, { query: { page, limit: GITEA_PAGE } });
      if (!next.data.statuses?.length) break;
      statuses.push(...next.data.statuses);
    }
    const forgeState = (first.data.state || 'pending') as ForgeState;
    return {
      state: toFlotillaState(forgeState),
      forgeState,
      sha: first.data.sha,
      totalCount: first.data.total_count,
      statuses: statuses.map((s) => this.toStatus(s)),
    };
  }

  async listComments(issue: RepoRef & { issueNumber: number }) {
    // Gitea answers every comment of an issue at once (no page or limit on this endpoint).
    const { data } = await this.request<Array<{ id: number; body: string; html_url: string }>>(
      `list comments of ${issue.owner}/${issue.repo}#${issue.issueNumber}`,
      'GET',
      `${this.repoPath(issue)}/issues/${issue.issueNumber}/comments`,
    );
    return data.map((c) => ({ id: c.id, body: c.body ?? '', url: c.html_url }));
  }

  async upsertStickyComment(input: StickyCommentInput): Promise<StickyCommentResult> {
    const where = `${input.owner}/${input.repo}#${input.issueNumber}`;
    type C = { id: number; body: string; html_url: string };
    return upsertSticky(this, input, {
      update: async (id, body) => {
        const { data } = await this.request<C>(`update comment on ${where}`, 'PATCH', `${this.repoPath(input)}/issues/comments/${id}`, { body: { body } });
        return { id: data.id, body: data.body, url: data.html_url };
      },
      create: async (body) => {
        const { data } = await this.request<C>(`comment on ${where}`, 'POST', `${this.repoPath(input)}/issues/${input.issueNumber}/comments`, { body: { body } });
        return { id: data.id, body: data.body, url: data.html_url };
      },
    });
  }

  async findPullRequests({ owner, repo, head, state = 'all' }: RepoRef & { head: string; state?: 'open' | 'closed' | 'all' }) {
    // Gitea's list has no head filter: page through and match the head branch.
    const found: PullRequest[] = [];
    for (let page = 1; page <= 20; page++) {
      const { data, headers } = await this.request<GiteaPull[]>(`list pull requests for ${head} on ${owner}/${repo}`, 'GET', `${this.repoPath({ owner, repo })}/pulls`, {
        query: { state, page, limit: GITEA_PAGE },
      });
      for (const p of data) if (p.head.ref === head) found.push(this.toPull(p));
      const total = Number(headers.get('x-total-count'));
      if (data.length < GITEA_PAGE || (Number.isFinite(total) && page * GITEA_PAGE >= total)) break;
    }
    return found;
  }

  async openPullRequest(input: OpenPullRequestInput) {
    const base = input.base ?? (await this.getDefaultBranch(input));
    const { data } = await this.request<GiteaPull>(`open pull request ${input.head} -> ${base} on ${input.owner}/${input.repo}`, 'POST', `${this.repoPath(input)}/pulls`, {
      body: { head: input.head, base, title: input.title, body: input.body },
    });
    return this.toPull(data);
  }

  async getDefaultBranch(ref: RepoRef) {
    const { data } = await this.request<{ default_branch: string }>(`get ${ref.owner}/${ref.repo}`, 'GET', this.repoPath(ref));
    return data.default_branch;
  }

  private toPull(p: GiteaPull): PullRequest {
    return { number: p.number, url: p.html_url, state: p.state === 'closed' ? 'closed' : 'open', head: p.head.ref, base: p.base.ref, title: p.title };
  }
}
