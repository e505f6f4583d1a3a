// `flotilla rollback SLUG... [--to SHA]`: a branch (and with --open-pr a pull request)
// giving the named tenants back the settings they had at an earlier commit, so a
// rollback goes through the same review and the same publish as any change.
import * as nodeFs from 'node:fs';
import { join } from 'node:path';
import git from 'isomorphic-git';
import type { Command } from 'commander';
import { GitError, SettingError } from '../core/errors.js';
import { pushBranch, remoteBranchHead, type GitAuth } from '../core/git.js';
import { githubCall, type GitHubClient, type RepoRef } from '../core/github.js';
import { commitBump } from '../fleet/bump.js';
import { fleetRoot, type CliIo } from '../cli.js';
import { readFleetFilesAtRef, resolveCommit } from '../plan/plan.js';
import { planRollback, rollbackBody, rollbackBranchName, rollbackTitle, type RollbackPlan } from '../rollout/rollback.js';
import { githubClientFromEnv, githubToken, resolveRepo } from './github-env.js';

export interface RollbackRepoOptions {
  root: string;
  slugs: string[];
  /** Commit whose settings to restore (default: the first parent of `from`). */
  to?: string;
  /** Ref the branch starts from (default HEAD). */
  from?: string;
  remote?: string;
  auth?: GitAuth;
  author?: { name: string; email: string };
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

async function remoteUrl(root: string, remote: string): Promise<string> {
  const url = (await git.getConfig({ fs: nodeFs, dir: root, path: `remote.${remote}.url` })) as string | undefined;
  if (!url) throw new SettingError('remote', `the repository at ${root} has no remote "${remote}"`);
  return url;
}

async function gitAuthor(root: string): Promise<{ name: string; email: string }> {
  const get = (path: string) => git.getConfig({ fs: nodeFs, dir: root, path }).catch(() => undefined) as Promise<string | undefined>;
  return { name: (await get('user.name')) ?? 'Flotilla', email: (await get('user.email')) ?? 'flotilla@localhost' };
}

/** The first parent of `commit`; a root commit has nothing to roll back to. */
export async function parentOf(root: string, commit: string): Promise<string> {
  const { commit: c } = await git.readCommit({ fs: nodeFs, dir: root, oid: commit });
  const parent = c.parent[0];
  if (!parent) throw new SettingError('--to', `${commit.slice(0, 12)} has no parent; name the commit to roll back to with --to`);
  return parent;
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

  const url = await remoteUrl(opts.root, opts.remote ?? 'origin');
  if (await remoteBranchHead(url, branch, opts.auth)) return { ...result, existed: true };
  const localExists = await git
    .resolveRef({ fs: nodeFs, dir: opts.root, ref: `refs/heads/${branch}` })
    .then(() => true, () => false);
  // A local branch left by a run whose push failed is replaced: the remote has none.
  if (localExists) await git.deleteRef({ fs: nodeFs, dir: opts.root, ref: `refs/heads/${branch}` });
  result.commit = await commitBump({
    dir: opts.root,
    parent: current.commit,
    branch,
    edits: plan.edits,
    message: `${title}\n\n${plan.slugs.map((s) => `${s}: settings as of ${to}`).join('\n')}\n`,
    author: opts.author ?? (await gitAuthor(opts.root)),
  });
  if ((await pushBranch(join(opts.root, '.git'), url, branch, opts.auth)) === 'rejected')
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
  client: GitHubClient,
  opts: RepoRef & { branch: string; title: string; body: string; base?: string },
): Promise<RollbackPullRequest> {
  const where = `${opts.owner}/${opts.repo}`;
  const { data: found } = await githubCall(client, `list pull requests for ${opts.branch} on ${where}`, (o) =>
    o.rest.pulls.list({ owner: opts.owner, repo: opts.repo, head: `${opts.owner}:${opts.branch}`, state: 'all', per_page: 10 }),
  );
  const existing = found.find((p) => p.head.ref === opts.branch);
  if (existing) return { number: existing.number, url: existing.html_url, existed: true };
  const base =
    opts.base ?? (await githubCall(client, `get ${where}`, (o) => o.rest.repos.get({ owner: opts.owner, repo: opts.repo }))).data.default_branch;
  const { data } = await githubCall(client, `open pull request ${opts.branch} -> ${base} on ${where}`, (o) =>
    o.rest.pulls.create({ owner: opts.owner, repo: opts.repo, head: opts.branch, base, title: opts.title, body: opts.body }),
  );
  return { number: data.number, url: data.html_url, existed: false };
}

interface RollbackCliOptions {
  to?: string;
  from?: string;
  openPr?: boolean;
  base?: string;
  repo?: string;
}

export function registerRollback(program: Command, io: CliIo): void {
  program
    .command('rollback')
    .description("open a change giving tenants back their settings as of an earlier commit (default: HEAD's parent)")
    .argument('<slugs...>', 'tenants to roll back')
    .option('--to <sha>', 'commit whose settings to restore (default: the parent of --from)')
    .option('--from <ref>', 'commit the branch starts from', 'HEAD')
    .option('--open-pr', 'open a pull request for the branch (needs FLOTILLA_GITHUB_TOKEN or GITHUB_TOKEN)')
    .option('--base <branch>', 'base branch of the pull request (default: the repository default branch)')
    .option('--repo <owner/name>', 'GitHub repository (default: GITHUB_REPOSITORY or the origin URL)')
    .action(async (slugs: string[], opts: RollbackCliOptions) => {
      const root = fleetRoot(program, io);
      const client = opts.openPr ? githubClientFromEnv(io.env) : undefined;
      const repo = opts.openPr ? await resolveRepo(opts.repo, io.env, root) : undefined;
      const token = githubToken(io.env);
      const rollbackOpts: RollbackRepoOptions = { root, slugs };
      if (opts.to) rollbackOpts.to = opts.to;
      if (opts.from) rollbackOpts.from = opts.from;
      if (token) rollbackOpts.auth = { token };
      const result = await rollbackRepo(rollbackOpts);
      if (result.plan.edits.size === 0) {
        io.stdout(`nothing to roll back: ${result.plan.slugs.join(', ')} already have the settings of ${result.to.slice(0, 12)}\n`);
        return;
      }
      for (const p of result.plan.pinned) io.stdout(`${p.slug}: pinned ${p.key}: ${String(p.value)}\n`);
      for (const i of result.plan.inexact) io.stderr(`warning: ${i.slug}: a tenant file cannot restore ${i.files.join(', ')}\n`);
      io.stdout(
        result.existed
          ? `branch ${result.branch} is already on origin; left as it is\n`
          : `committed ${result.commit!.slice(0, 12)} on ${result.branch} and pushed it to origin\n`,
      );
      if (client && repo) {
        const pr = await openRollbackPullRequest(client, { ...repo, branch: result.branch, title: result.title, body: result.body, ...(opts.base ? { base: opts.base } : {}) });
        io.stdout(`${pr.existed ? 'pull request already exists' : 'opened pull request'} #${pr.number}: ${pr.url}\n`);
      }
    });
}
