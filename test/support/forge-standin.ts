// One face over the two forge stand-ins, for tests that run the same scenario against
// GitHub (github-standin.ts, checked against @octokit/openapi) and Gitea/Forgejo
// (gitea-standin.ts, checked against Gitea's own OpenAPI description):
//
//   describe.each(FORGE_KINDS)('... (%s stand-in)', (kind) => { ... startForgeStandIn(kind, ...) ... })
//
// What differs is kept in here: GitHub names refs `refs/heads/x` and asks its resolver
// for `heads/x`, Gitea names branches; Gitea stores an unset description or target_url
// as "" where GitHub has null (read back as null here, as the forge clients read them).
import { startGitHubStandIn, type StoredComment, type StoredPull, type StoredStatus } from './github-standin.js';
import { startGiteaStandIn } from './gitea-standin.js';

export const FORGE_KINDS = ['github', 'gitea'] as const;
export type ForgeStandInKind = (typeof FORGE_KINDS)[number];

/** A status as GitHub's stand-in stores it, but with Flotilla's four states or Gitea's warning / skipped. */
export type ForgeStandInStatus = Omit<StoredStatus, 'state'> & { state: string };

/** What both stand-ins store of a pull request. */
export type ForgeStandInPull = Pick<StoredPull, 'number' | 'title' | 'body' | 'head' | 'headSha' | 'base' | 'baseSha' | 'state'>;

export type ForgeStandInComment = Pick<StoredComment, 'id' | 'issueNumber' | 'body'>;

export interface ForgeStandInOptions {
  token?: string;
  repos?: string[];
  /** Resolves a branch name (`main`, `bump/pia-v2`) the stand-in was not told about, e.g. from a bare repo. */
  resolveBranch?: (branch: string) => string | undefined | Promise<string | undefined>;
}

export interface ForgeStandIn {
  readonly kind: ForgeStandInKind;
  /** The API root: `http://127.0.0.1:N` (GitHub) or `http://127.0.0.1:N/api/v1` (Gitea). */
  readonly url: string;
  readonly token: string;
  /** Points a branch (`main`, not `refs/heads/main`) at a commit. */
  setRef(fullName: string, branch: string, sha: string): void;
  statuses(fullName: string, sha?: string): ForgeStandInStatus[];
  pulls(fullName: string): ForgeStandInPull[];
  comments(fullName: string, issueNumber?: number): ForgeStandInComment[];
  requests(): Array<{ method: string; path: string; status: number }>;
  violations(): unknown[];
  close(): Promise<void>;
}

export async function startForgeStandIn(kind: ForgeStandInKind, options: ForgeStandInOptions = {}): Promise<ForgeStandIn> {
  const resolveBranch = options.resolveBranch;
  const base = { ...(options.token ? { token: options.token } : {}), ...(options.repos ? { repos: options.repos } : {}) };
  if (kind === 'github') {
    const s = await startGitHubStandIn({
      ...base,
      // GitHub's stand-in asks for the ref as given and as `heads/x`, `tags/x`: only branches are served.
      ...(resolveBranch
        ? { resolveRef: (_o: string, _r: string, ref: string) => (ref.startsWith('tags/') ? undefined : resolveBranch(ref.replace(/^(refs\/)?heads\//, ''))) }
        : {}),
    });
    return {
      kind,
      url: s.url,
      token: s.token,
      setRef: (fullName, branch, sha) => s.setRef(fullName, `refs/heads/${branch}`, sha),
      statuses: (fullName, sha) => s.statuses(fullName, sha),
      pulls: (fullName) => s.pulls(fullName),
      comments: (fullName, issueNumber) => s.comments(fullName, issueNumber),
      requests: () => s.requests(),
      violations: () => s.violations(),
      close: () => s.close(),
    };
  }
  const s = await startGiteaStandIn({
    ...base,
    ...(resolveBranch ? { resolveRef: (_o: string, _r: string, branch: string) => resolveBranch(branch) } : {}),
  });
  return {
    kind,
    url: s.url,
    token: s.token,
    setRef: (fullName, branch, sha) => s.setRef(fullName, branch, sha),
    statuses: (fullName, sha) =>
      s.statuses(fullName, sha).map((x) => ({ ...x, description: x.description === '' ? null : x.description, target_url: x.target_url === '' ? null : x.target_url })),
    pulls: (fullName) => s.pulls(fullName),
    comments: (fullName, issueNumber) => s.comments(fullName, issueNumber),
    requests: () => s.requests(),
    violations: () => s.violations(),
    close: () => s.close(),
  };
}
