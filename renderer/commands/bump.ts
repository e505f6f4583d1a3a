// `flotilla bump SLUG... --tag TAG [--all] [--open-pr]`: edit the tenant files (or
// the fleet default), commit on a new branch, push it to origin, optionally open a PR.
import * as nodeFs from 'node:fs';
import { join } from 'node:path';
import git from 'isomorphic-git';
import type { Command } from 'commander';
import { GitError, SettingError } from '../core/errors.js';
import { pushBranch, type GitAuth } from '../core/git.js';
import { githubCall, type GitHubClient, type RepoRef } from '../core/github.js';
import { bumpBody, bumpBranchName, bumpTitle, commitBump, noOpMessage, planBump, type BumpPlan } from '../fleet/bump.js';
import { loadFleetFromFiles } from '../fleet/fleet.js';
import { fleetRoot, type CliIo } from '../cli.js';
import { readFleetFilesAtRef } from '../plan/plan.js';
import { githubClientFromEnv, githubToken, resolveRepo, type Env } from './github-env.js';

export interface BumpRepoOptions {
  root: string;
  slugs: string[];
  all: boolean;
  tag: string;
  /** Ref the branch starts from (default HEAD). */
  from?: string;
  /** Remote to push to (default origin); its URL is read from the repo config. */
  remote?: string;
  /** Token for the push (GitHub takes it as the basic-auth password). */
  auth?: GitAuth;
  author?: { name: string; email: string };
}

export interface BumpResult {
  plan: BumpPlan;
  /** Undefined when nothing moved (no branch, no push). */
  branch?: string;
  commit?: string;
}

async function remoteUrl(root: string, remote: string): Promise<string> {
  const url = (await git.getConfig({ fs: nodeFs, dir: root, path: `remote.${remote}.url` })) as string | undefined;
  if (!url) throw new SettingError('remote', `the repository at ${root} has no remote "${remote}"`);
  return url;
}

/** Edits, commits on `bump/...` and pushes; a bump that moves nothing does nothing. */
export async function bumpRepo(opts: BumpRepoOptions): Promise<BumpResult> {
  const inputs = await readFleetFilesAtRef(opts.root, opts.from ?? 'HEAD');
  const fleet = loadFleetFromFiles(inputs.files);
  const plan = planBump(inputs.files, fleet, { slugs: opts.slugs, all: opts.all, tag: opts.tag });
  if (plan.edits.size === 0) return { plan };

  const branch = bumpBranchName(plan);
  const url = await remoteUrl(opts.root, opts.remote ?? 'origin');
  const commit = await commitBump({
    dir: opts.root,
    parent: inputs.commit,
    branch,
    edits: plan.edits,
    message: `${bumpTitle(plan)}\n\n${plan.moves.map((m) => `${m.slug}: ${m.from} -> ${m.to}`).join('\n')}\n`,
    author: opts.author ?? (await gitAuthor(opts.root)),
  });
  const pushed = await pushBranch(join(opts.root, '.git'), url, branch, opts.auth);
  if (pushed === 'rejected')
    throw new GitError(`push ${branch}`, url, `the remote already has a branch ${branch} with other commits; delete it or bump to another tag`);
  return { plan, branch, commit };
}

async function gitAuthor(root: string): Promise<{ name: string; email: string }> {
  const get = async (path: string) => {
    try {
      return (await git.getConfig({ fs: nodeFs, dir: root, path })) as string | undefined;
    } catch {
      return undefined;
    }
  };
  return { name: (await get('user.name')) ?? 'Flotilla', email: (await get('user.email')) ?? 'flotilla@localhost' };
}

export interface OpenPullRequestOptions extends RepoRef {
  plan: BumpPlan;
  branch: string;
  /** Base branch; the repository's default branch when undefined. */
  base?: string;
}

/** Opens the bump PR; returns its number and URL. */
export async function openBumpPullRequest(client: GitHubClient, opts: OpenPullRequestOptions): Promise<{ number: number; url: string }> {
  const where = `${opts.owner}/${opts.repo}`;
  const base =
    opts.base ??
    (await githubCall(client, `get ${where}`, (o) => o.rest.repos.get({ owner: opts.owner, repo: opts.repo }))).data.default_branch;
  const { data } = await githubCall(client, `open pull request ${opts.branch} -> ${base} on ${where}`, (o) =>
    o.rest.pulls.create({
      owner: opts.owner,
      repo: opts.repo,
      head: opts.branch,
      base,
      title: bumpTitle(opts.plan),
      body: bumpBody(opts.plan),
    }),
  );
  return { number: data.number, url: data.html_url };
}

interface BumpCliOptions {
  tag: string;
  all?: boolean;
  openPr?: boolean;
  from?: string;
  base?: string;
  repo?: string;
}

function pushAuth(env: Env): GitAuth | undefined {
  const token = githubToken(env);
  return token ? { token } : undefined;
}

export function registerBump(program: Command, io: CliIo): void {
  program
    .command('bump')
    .description('move tenants (or with --all the fleet default) to an image tag on a new branch, pushed to origin')
    .argument('[slugs...]', 'tenants to bump')
    .requiredOption('--tag <tag>', 'the image tag to move to')
    .option('--all', 'change the fleet default in fleet/fleet.yaml (tenants pinning their own tag stay)')
    .option('--open-pr', 'open a pull request for the branch (needs FLOTILLA_GITHUB_TOKEN or GITHUB_TOKEN)')
    .option('--from <ref>', 'commit the branch starts from', 'HEAD')
    .option('--base <branch>', 'base branch of the pull request (default: the repository default branch)')
    .option('--repo <owner/name>', 'GitHub repository (default: GITHUB_REPOSITORY or the origin URL)')
    .action(async (slugs: string[], opts: BumpCliOptions) => {
      const root = fleetRoot(program, io);
      if (opts.all && slugs.length > 0) throw new SettingError('--all', 'bumps the fleet default; do not name tenants with it');
      // Fail before committing anything when the PR cannot be opened afterwards.
      const client = opts.openPr ? githubClientFromEnv(io.env) : undefined;
      const repo = opts.openPr ? await resolveRepo(opts.repo, io.env, root) : undefined;
      const bumpOpts: BumpRepoOptions = { root, slugs, all: opts.all ?? false, tag: opts.tag };
      if (opts.from) bumpOpts.from = opts.from;
      const auth = pushAuth(io.env);
      if (auth) bumpOpts.auth = auth;
      const result = await bumpRepo(bumpOpts);
      if (!result.branch) {
        io.stdout(`${noOpMessage(result.plan)}\n`);
        return;
      }
      for (const m of result.plan.moves) io.stdout(`${m.slug}: ${m.from} -> ${m.to}\n`);
      if (result.plan.alreadyThere.length > 0) io.stdout(`already on ${opts.tag}: ${result.plan.alreadyThere.join(', ')}\n`);
      io.stdout(`committed ${result.commit!.slice(0, 12)} on ${result.branch} and pushed it to origin\n`);
      if (client && repo) {
        const prOpts: OpenPullRequestOptions = { ...repo, plan: result.plan, branch: result.branch };
        if (opts.base) prOpts.base = opts.base;
        const pr = await openBumpPullRequest(client, prOpts);
        io.stdout(`opened pull request #${pr.number}: ${pr.url}\n`);
      }
    });
}
