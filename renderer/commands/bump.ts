// `flotilla bump SLUG... --tag TAG [--all] [--open-pr] [--no-push]`: edit the tenant
// files (or the fleet default), commit on a new branch, push it to origin when there is
// one, optionally open a PR (rollout/bump-branch.ts does the work).
import type { Command } from 'commander';
import { SettingError } from '../core/errors.js';
import type { GitAuth } from '../core/git.js';
import { noOpMessage } from '../fleet/bump.js';
import { fleetRoot, type CliIo } from '../cli.js';
import { forgeFromEnv, githubToken, resolveRepo, type Env } from '../forge-settings.js';
import { bumpRepo, openBumpPullRequest, type BumpRepoOptions, type OpenPullRequestOptions } from '../rollout/bump-branch.js';

interface BumpCliOptions {
  tag: string;
  all?: boolean;
  openPr?: boolean;
  from?: string;
  base?: string;
  repo?: string;
  push: boolean;
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
    .option('--no-push', 'commit the branch in this checkout only (the default when there is no origin remote)')
    .option('--from <ref>', 'commit the branch starts from', 'HEAD')
    .option('--base <branch>', 'base branch of the pull request (default: the repository default branch)')
    .option('--repo <owner/name>', 'repository on the forge (GitHub, GHE, Gitea, Forgejo; default: GITHUB_REPOSITORY or the origin URL)')
    .action(async (slugs: string[], opts: BumpCliOptions) => {
      const root = fleetRoot(program, io);
      if (opts.all && slugs.length > 0) throw new SettingError('--all', 'bumps the fleet default; do not name tenants with it');
      if (opts.openPr && !opts.push) throw new SettingError('--open-pr', 'a pull request needs the branch pushed; drop --no-push');
      // Fail before committing anything when the PR cannot be opened afterwards.
      const forge = opts.openPr ? forgeFromEnv(io.env) : undefined;
      const repo = opts.openPr ? await resolveRepo(opts.repo, io.env, root) : undefined;
      const bumpOpts: BumpRepoOptions = { root, slugs, all: opts.all ?? false, tag: opts.tag };
      if (opts.from) bumpOpts.from = opts.from;
      if (!opts.push) bumpOpts.push = false;
      else if (opts.openPr) bumpOpts.push = true;
      const auth = pushAuth(io.env);
      if (auth) bumpOpts.auth = auth;
      const result = await bumpRepo(bumpOpts);
      if (!result.branch) {
        io.stdout(`${noOpMessage(result.plan)}\n`);
        return;
      }
      for (const m of result.plan.moves) io.stdout(`${m.slug}: ${m.from} -> ${m.to}\n`);
      if (result.plan.alreadyThere.length > 0) io.stdout(`already on ${opts.tag}: ${result.plan.alreadyThere.join(', ')}\n`);
      io.stdout(
        result.pushed
          ? `committed ${result.commit!.slice(0, 12)} on ${result.branch} and pushed it to origin\n`
          : `committed ${result.commit!.slice(0, 12)} on ${result.branch} in this checkout (not pushed${opts.push ? ': no origin remote' : ''}); push it with: git push origin ${result.branch}\n`,
      );
      if (forge && repo) {
        const prOpts: OpenPullRequestOptions = { ...repo, plan: result.plan, branch: result.branch };
        if (opts.base) prOpts.base = opts.base;
        const pr = await openBumpPullRequest(forge, prOpts);
        io.stdout(`opened pull request #${pr.number}: ${pr.url}\n`);
      }
    });
}
