// A rollback as a reviewable change: the plan of rollback.ts committed on a
// `rollback/...` branch of the fleet checkout, pushed, and its pull request opened
// (never two for the same branch). `flotilla rollback` and a halted promote use it.
import { GitError } from '../core/errors.js';
import { remoteBranchHead, type GitAuth } from '../core/git.js';
import type { Forge } from '../core/forge.js';
import type { RepoRef } from '../core/github.js';
import {
  commitOnNewBranch,
  deleteLocalBranch,
  gitAuthor,
  localBranchExists,
  parentOf,
  pushLocalBranch,
  readFleetFilesAtRef,
  requireRemoteUrl,
  resolveCommit,
  type Author,
} from '../repo.js';
import { planRollback, rollbackBody, rollbackBranchName, rollbackTitle, type RollbackPlan } from './rollback.js';

export interface RollbackRepoOptions {
  root: string;
  slugs: string[];
  /** Commit whose settings to restore (default: the first parent of `from`). */
  to?: string;
  /** Ref the branch starts from (default HEAD). */
  from?: string;
  remote?: string;
  auth?: GitAuth;
  author?: Author;
  /** Said at the top of the PR body (promote names the halt). */
  reason?: string;
}

export interface RollbackResult {
  plan: RollbackPlan;
  to: string;
  branch: string;
  /** Undefined when nothing needed to change (the tenants already have those settings). */
  commit?: string;
  /** The branch was already on the remote (an earlier run made it); nothing was pushed. */
  existed: boolean;
  title: string;
  body: string;
}

/** Plans, commits on `rollback/...` and pushes; a branch already on the remote is left as it is. */
export async function rollbackRepo(opts: RollbackRepoOptions): Promise<RollbackResult> {
  const current = await readFleetFilesAtRef(opts.root, opts.from ?? 'HEAD');
  const to = opts.to ? await resolveCommit(opts.root, opts.to) : await parentOf(opts.root, current.commit);
  const previous = await readFleetFilesAtRef(opts.root, to);
  const plan = planRollback(current, previous, opts.slugs);
  const branch = rollbackBranchName(plan.slugs, to);
  const title = rollbackTitle(plan, to);
  const body = rollbackBody(plan, to, opts.reason);
  const result: RollbackResult = { plan, to, branch, existed: false, title, body };
  if (plan.edits.size === 0) return result;

  const url = await requireRemoteUrl(opts.root, opts.remote ?? 'origin');
  if (await remoteBranchHead(url, branch, opts.auth)) return { ...result, existed: true };
  // A local branch left by a run whose push failed is replaced: the remote has none.
  if (await localBranchExists(opts.root, branch)) await deleteLocalBranch(opts.root, branch);
  result.commit = await commitOnNewBranch({
    dir: opts.root,
    parent: current.commit,
    branch,
    edits: plan.edits,
    message: `${title}\n\n${plan.slugs.map((s) => `${s}: settings as of ${to}`).join('\n')}\n`,
    author: opts.author ?? (await gitAuthor(opts.root)),
  });
  if ((await pushLocalBranch(opts.root, url, branch, opts.auth)) === 'rejected')
    throw new GitError(`push ${branch}`, url, `the remote already has a branch ${branch}`);
  return result;
}

export interface RollbackPullRequest {
  number: number;
  url: string;
  /** An open or closed PR for the branch existed; none was opened. */
  existed: boolean;
}

/** The PR for `branch` (any state), or a new one. Never two for the same branch. */
export async function openRollbackPullRequest(
  forge: Forge,
  opts: RepoRef & { branch: string; title: string; body: string; base?: string },
): Promise<RollbackPullRequest> {
  const [existing] = await forge.findPullRequests({ owner: opts.owner, repo: opts.repo, head: opts.branch, state: 'all' });
  if (existing) return { number: existing.number, url: existing.url, existed: true };
  const pr = await forge.openPullRequest({
    owner: opts.owner,
    repo: opts.repo,
    head: opts.branch,
    ...(opts.base ? { base: opts.base } : {}),
    title: opts.title,
    body: opts.body,
  });
  return { number: pr.number, url: pr.url, existed: false };
}
