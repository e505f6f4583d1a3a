// A bump as a reviewable change: the edits of fleet/bump.ts committed on a `bump/...`
// branch of the fleet checkout, pushed when there is a remote, and its pull request.
import { GitError, SettingError } from '../core/errors.js';
import type { GitAuth } from '../core/git.js';
import type { Forge } from '../core/forge.js';
import type { RepoRef } from '../core/github.js';
import { bumpBody, bumpBranchName, bumpTitle, planBump, type BumpPlan } from '../fleet/bump.js';
import { loadFleetFromFiles } from '../fleet/fleet.js';
import { commitOnNewBranch, deleteLocalBranch, gitAuthor, pushLocalBranch, readFleetFilesAtRef, remoteUrl, type Author } from '../repo.js';

export interface BumpRepoOptions {
  root: string;
  slugs: string[];
  all: boolean;
  tag: string;
  /** Ref the branch starts from (default HEAD). */
  from?: string;
  /** Remote to push to (default origin); its URL is read from the repo config. */
  remote?: string;
  /** Push the branch: default when the checkout has the remote; false keeps it local (`--no-push`). */
  push?: boolean;
  /** Token for the push (GitHub takes it as the basic-auth password). */
  auth?: GitAuth;
  author?: Author;
}

export interface BumpResult {
  plan: BumpPlan;
  /** Undefined when nothing moved (no branch, no push). */
  branch?: string;
  commit?: string;
  /** The branch went to the remote (false: it is only in the local checkout). */
  pushed?: boolean;
}

/**
 * Edits and commits on a new `bump/...` branch, then pushes it unless told not to (or
 * the checkout has no such remote). A bump that moves nothing does nothing, and a push
 * that fails takes the local branch away again, so running the same bump once more works.
 */
export async function bumpRepo(opts: BumpRepoOptions): Promise<BumpResult> {
  const inputs = await readFleetFilesAtRef(opts.root, opts.from ?? 'HEAD');
  const fleet = loadFleetFromFiles(inputs.files);
  const plan = planBump(inputs.files, fleet, { slugs: opts.slugs, all: opts.all, tag: opts.tag });
  if (plan.edits.size === 0) return { plan };

  const remote = opts.remote ?? 'origin';
  const url = await remoteUrl(opts.root, remote);
  if (opts.push === true && url === undefined) throw new SettingError('--push', `the repository at ${opts.root} has no remote "${remote}" to push to`);
  const branch = bumpBranchName(plan);
  const commit = await commitOnNewBranch({
    dir: opts.root,
    parent: inputs.commit,
    branch,
    edits: plan.edits,
    message: `${bumpTitle(plan)}\n\n${plan.moves.map((m) => `${m.slug}: ${m.from} -> ${m.to}`).join('\n')}\n`,
    author: opts.author ?? (await gitAuthor(opts.root)),
  });
  if (opts.push === false || url === undefined) return { plan, branch, commit, pushed: false };
  let pushed: 'pushed' | 'rejected';
  try {
    pushed = await pushLocalBranch(opts.root, url, branch, opts.auth);
  } catch (e) {
    await deleteLocalBranch(opts.root, branch);
    throw e;
  }
  if (pushed === 'rejected') {
    await deleteLocalBranch(opts.root, branch);
    throw new GitError(`push ${branch}`, url, `the remote already has a branch ${branch} with other commits; delete it or bump to another tag`);
  }
  return { plan, branch, commit, pushed: true };
}

export interface OpenPullRequestOptions extends RepoRef {
  plan: BumpPlan;
  branch: string;
  /** Base branch; the repository's default branch when undefined. */
  base?: string;
}

/** Opens the bump PR (on GitHub, GHE, Gitea or Forgejo); returns its number and URL. */
export async function openBumpPullRequest(forge: Forge, opts: OpenPullRequestOptions): Promise<{ number: number; url: string }> {
  const pr = await forge.openPullRequest({
    owner: opts.owner,
    repo: opts.repo,
    head: opts.branch,
    ...(opts.base ? { base: opts.base } : {}),
    title: bumpTitle(opts.plan),
    body: bumpBody(opts.plan),
  });
  return { number: pr.number, url: pr.url };
}
