// The one way Flotilla talks to GitHub (or GitHub Enterprise, or Gitea's
// GitHub-compatible statuses API): an Octokit with the retry and throttling plugins,
// a request timeout, and errors turned into GitHubError with the token scrubbed.
// Both the renderer (PRs, comments, status) and the agent (commit statuses) use it.
// Gitea and Forgejo differ in places (statuses read back as `status`, page/limit paging,
// no head filter on PR lists): `forge.ts` holds one interface over both, with the GitHub
// side built on the functions here; new callers should take a `Forge`.

import { Octokit } from 'octokit';
import { GitHubError, SettingError } from './errors.js';

export type GitHubClient = Octokit;

export interface GitHubLog {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export interface RetryOptions {
  /** Retries of a request that failed with 5xx or a network error (default 3). */
  retries?: number;
  /** Backoff unit in ms; the n-th retry waits n² units (default 1000). */
  baseDelayMs?: number;
}

export interface ThrottleOptions {
  /** Retries after a primary or secondary rate limit (default 2). */
  maxRetries?: number;
  /** A wait longer than this is not done in-process; the call fails and the caller retries later (default 60). */
  maxWaitSeconds?: number;
  /** Milliseconds per second of `retry-after`; tests make it small (default 1000). */
  msPerRetryAfterSecond?: number;
  /** GitHub asks for one mutating request at a time, a second apart (default 1000). */
  minWriteIntervalMs?: number;
}

export interface GitHubClientOptions {
  token: string;
  /** REST API root; `https://api.github.com`, `https://ghe.example/api/v3`, a Gitea `/api/v1`. */
  baseUrl?: string;
  fetch?: typeof globalThis.fetch;
  retry?: boolean | RetryOptions;
  throttle?: boolean | ThrottleOptions;
  userAgent?: string;
  /** Per request, including reading the answer (default 30 s). */
  timeoutMs?: number;
  log?: GitHubLog;
}

const secretsByClient = new WeakMap<object, string[]>();

const quietLog: GitHubLog = {
  debug: () => undefined,
  info: () => undefined,
  warn: (m) => console.warn(m),
  error: (m) => console.error(m),
};

/** Creates the Octokit every Flotilla GitHub call goes through. */
export function createGitHubClient(options: GitHubClientOptions): GitHubClient {
  const { token } = options;
  const baseUrl = (options.baseUrl ?? 'https://api.github.com').replace(/\/+$/, '');
  const log = options.log ?? quietLog;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const baseFetch = options.fetch ?? globalThis.fetch;
  const timedFetch: typeof globalThis.fetch = (input, init) => {
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = init?.signal ? AbortSignal.any([init.signal, timeout]) : timeout;
    return baseFetch(input, { ...init, signal });
  };

  const retry = options.retry === false ? { enabled: false } : {
    enabled: true,
    retries: (typeof options.retry === 'object' ? options.retry.retries : undefined) ?? 3,
    retryAfterBaseValue: (typeof options.retry === 'object' ? options.retry.baseDelayMs : undefined) ?? 1000,
    // 429 is a rate limit: the throttling plugin retries it honouring retry-after, or gives up.
    doNotRetry: [400, 401, 403, 404, 410, 422, 429, 451],
  };

  const t: ThrottleOptions = typeof options.throttle === 'object' ? options.throttle : {};
  const maxRetries = t.maxRetries ?? 2;
  const maxWait = t.maxWaitSeconds ?? 60;
  // The plugin's callbacks get the route template (`POST /repos/{owner}/{repo}/statuses/{sha}`), never the token.
  const onLimit = (kind: string) => (retryAfter: number, request: { method: string; url: string }, _o: unknown, retryCount: number): boolean => {
    const again = retryCount < maxRetries && retryAfter <= maxWait;
    log.warn(
      `GitHub ${kind} rate limit on ${request.method} ${request.url}: ${again ? `retrying in ${retryAfter}s (retry ${retryCount + 1} of ${maxRetries})` : `giving up after ${retryCount} retries (retry-after ${retryAfter}s)`}`,
    );
    return again;
  };
  const throttle =
    options.throttle === false
      ? { enabled: false as const }
      : {
          enabled: true,
          onRateLimit: onLimit('primary'),
          onSecondaryRateLimit: onLimit('secondary'),
          retryAfterBaseValue: t.msPerRetryAfterSecond ?? 1000,
          // With no retry-after header, GitHub's advice for secondary limits is to wait at least a minute.
          fallbackSecondaryRateRetryAfter: 60,
          ...(t.minWriteIntervalMs !== undefined ? { write: spacedQueue(t.minWriteIntervalMs) } : {}),
        };

  const octokitOptions = {
    auth: token,
    baseUrl,
    userAgent: options.userAgent ?? 'flotilla',
    request: { fetch: timedFetch },
    retry,
    throttle,
    log: {
      debug: (m: string) => log.debug(redact(m, [token])),
      info: (m: string) => log.info(redact(m, [token])),
      warn: (m: string) => log.warn(redact(m, [token])),
      error: (m: string) => log.error(redact(m, [token])),
    },
  };
  // The plugin's types want a Bottleneck.Group for `write`; spacedQueue has the one method it calls.
  const octokit = new Octokit(octokitOptions as unknown as ConstructorParameters<typeof Octokit>[0]);
  secretsByClient.set(octokit, token ? [token] : []);
  return octokit;
}

/**
 * Stands in for the throttling plugin's Bottleneck group of writes: one mutating request
 * starts at most every `minTimeMs`. Only `key(id).schedule(options, fn, ...args)` is used.
 */
function spacedQueue(minTimeMs: number) {
  let next = 0;
  return {
    key: () => ({
      async schedule<A extends unknown[], R>(_jobOptions: unknown, fn: (...args: A) => R | Promise<R>, ...args: A): Promise<R> {
        const start = Math.max(Date.now(), next);
        next = start + minTimeMs;
        const wait = start - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        return fn(...args);
      },
    }),
  };
}

/** Replaces every secret, and anything shaped like a GitHub token or URL credentials, with `***`. */
export function redact(text: string, secrets: readonly string[] = []): string {
  let out = text;
  for (const s of secrets) if (s) out = out.split(s).join('***');
  return out
    .replace(/\b(gh[pousr]_[A-Za-z0-9]{16,}|github_pat_[A-Za-z0-9_]{20,})\b/g, '***')
    .replace(/\b(token|bearer)\s+[A-Za-z0-9_.\-]{20,}/gi, '$1 ***')
    .replace(/(\w+:\/\/)[^/@\s:]+(:[^/@\s]*)?@/g, '$1***@');
}

/** Turns whatever a GitHub call threw into a GitHubError naming the operation, without secrets. */
export function toGitHubError(err: unknown, operation: string, secrets: readonly string[] = [], now: number = Date.now()): GitHubError {
  if (err instanceof GitHubError) return err;
  const e = err as { status?: unknown; message?: unknown; name?: unknown; response?: { headers?: Record<string, string> } };
  const status = typeof e.status === 'number' ? e.status : undefined;
  let detail = typeof e.message === 'string' ? e.message : String(err);
  // A timed-out fetch says only "aborted"; say what happened.
  if (e.name === 'TimeoutError' || /aborted due to timeout/i.test(detail)) detail = `no answer in time (${detail})`;
  const retryAfter = e.response?.headers?.['retry-after'];
  if (retryAfter !== undefined) detail += ` (retry-after ${retryAfter}s)`;
  // A 5xx from a network error is Octokit's convention, not GitHub's answer.
  const reported = status === 500 && !e.response ? undefined : status;
  const retryAt = retryAtOf(e.response?.headers ?? {}, now);
  return new GitHubError(operation, reported, redact(detail, secrets), retryAt === undefined ? {} : { retryAt });
}

/**
 * When GitHub asks a client to come back, in ms since the epoch: `retry-after` seconds
 * from now, else the `x-ratelimit-reset` second when `x-ratelimit-remaining` is 0 (the
 * token's primary limit, which every host sharing the token spends).
 */
export function retryAtOf(headers: Record<string, string | number | undefined>, now: number = Date.now()): number | undefined {
  const after = Number(headers['retry-after']);
  if (headers['retry-after'] !== undefined && Number.isFinite(after) && after >= 0) return now + after * 1000;
  const reset = Number(headers['x-ratelimit-reset']);
  if (String(headers['x-ratelimit-remaining']) === '0' && Number.isFinite(reset)) return Math.max(now, reset * 1000);
  return undefined;
}

/** Runs one GitHub call, turning failures into GitHubError for `operation`. */
export async function githubCall<T>(client: GitHubClient, operation: string, call: (octokit: GitHubClient) => Promise<T>): Promise<T> {
  try {
    return await call(client);
  } catch (err) {
    throw toGitHubError(err, operation, secretsByClient.get(client) ?? []);
  }
}

// ---------------------------------------------------------------------------
// Repositories

export interface RepoRef {
  owner: string;
  repo: string;
}

const NAME = /^[A-Za-z0-9_.-]+$/;

/** Parses `owner/name`; `setting` names where the value came from, for the error. */
export function parseRepoSlug(slug: string, setting = 'repository'): RepoRef {
  const parts = slug.trim().replace(/\.git$/, '').split('/');
  const [owner, repo] = parts;
  if (parts.length !== 2 || !owner || !repo || !NAME.test(owner) || !NAME.test(repo) || repo === '.' || repo === '..') {
    throw new SettingError(setting, `must be owner/name, got ${JSON.stringify(slug)}`);
  }
  return { owner, repo };
}

/**
 * Owner and name from a clone URL (`https://github.com/o/n.git`, `git@github.com:o/n.git`,
 * `ssh://git@host/o/n`), or undefined when the path is not exactly owner/name.
 * Works for GitHub Enterprise and Gitea hosts too; credentials in the URL are ignored.
 */
export function repoSlugFromUrl(url: string): RepoRef | undefined {
  let path: string;
  const scp = /^[^/@\s]+@[^/:\s]+:(.+)$/.exec(url.trim()); // git@github.com:o/n.git
  if (scp && !url.includes('://')) {
    path = scp[1]!;
  } else {
    try {
      path = new URL(url.trim()).pathname;
    } catch {
      return undefined;
    }
  }
  const parts = path.replace(/^\/+|\/+$/g, '').replace(/\.git$/, '').split('/');
  if (parts.length !== 2) return undefined;
  try {
    return parseRepoSlug(parts.join('/'));
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------
// Commit statuses

export type CommitState = 'pending' | 'success' | 'failure' | 'error';

export const MAX_STATUS_DESCRIPTION = 140;

export interface CommitStatusInput extends RepoRef {
  sha: string;
  state: CommitState;
  context: string;
  description: string;
  targetUrl?: string;
}

export interface CommitStatus {
  id: number;
  state: CommitState;
  context: string;
  description: string | null;
  targetUrl: string | null;
  createdAt: string;
}

export interface CombinedStatus {
  /** `failure` if any context failed or errored, `pending` if any is pending (or none reported), else `success`. */
  state: CommitState;
  sha: string;
  totalCount: number;
  /** The latest status per context. */
  statuses: CommitStatus[];
}

/** GitHub refuses descriptions over 140 characters; cut at a code point and mark the cut. */
export function truncateDescription(description: string): string {
  const chars = Array.from(description.replace(/\s+/g, ' ').trim());
  return chars.length <= MAX_STATUS_DESCRIPTION ? chars.join('') : `${chars.slice(0, MAX_STATUS_DESCRIPTION - 1).join('')}…`;
}

function toCommitStatus(s: { id: number; state: string; context: string; description?: string | null; target_url?: string | null; created_at: string }): CommitStatus {
  return {
    id: s.id,
    state: s.state as CommitState,
    context: s.context,
    description: s.description ?? null,
    targetUrl: s.target_url ?? null,
    createdAt: s.created_at,
  };
}

/**
 * Posts a commit status. `retryAt` is set when GitHub said the token has no writes left
 * (`x-ratelimit-remaining: 0`): the next write must wait until then.
 */
export async function createCommitStatus(client: GitHubClient, input: CommitStatusInput): Promise<CommitStatus & { retryAt?: number }> {
  const operation = `create commit status ${input.context}=${input.state} on ${input.owner}/${input.repo}@${input.sha.slice(0, 12)}`;
  const { data, headers } = await githubCall(client, operation, (o) =>
    o.rest.repos.createCommitStatus({
      owner: input.owner,
      repo: input.repo,
      sha: input.sha,
      state: input.state,
      context: input.context,
      description: truncateDescription(input.description),
      ...(input.targetUrl ? { target_url: input.targetUrl } : {}),
    }),
  );
  const retryAt = String(headers['x-ratelimit-remaining']) === '0' ? retryAtOf({ ...headers, 'retry-after': undefined }) : undefined;
  return { ...toCommitStatus(data), ...(retryAt === undefined ? {} : { retryAt }) };
}

/** Statuses of a ref (sha, branch or tag), newest first; one page of at most `perPage` (max 100). */
export async function listStatuses(client: GitHubClient, ref: RepoRef & { ref: string; perPage?: number }): Promise<CommitStatus[]> {
  const { data } = await githubCall(client, `list commit statuses of ${ref.owner}/${ref.repo}@${ref.ref}`, (o) =>
    o.rest.repos.listCommitStatusesForRef({ owner: ref.owner, repo: ref.repo, ref: ref.ref, per_page: Math.min(ref.perPage ?? 100, 100) }),
  );
  return data.map(toCommitStatus);
}

export async function getCombinedStatus(client: GitHubClient, ref: RepoRef & { ref: string }): Promise<CombinedStatus> {
  const { data } = await githubCall(client, `get combined status of ${ref.owner}/${ref.repo}@${ref.ref}`, (o) =>
    o.rest.repos.getCombinedStatusForRef({ owner: ref.owner, repo: ref.repo, ref: ref.ref, per_page: 100 }),
  );
  return {
    state: data.state as CommitState,
    sha: data.sha,
    totalCount: data.total_count,
    statuses: data.statuses.map(toCommitStatus),
  };
}
