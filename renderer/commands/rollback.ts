// `flotilla rollback SLUG... [--to SHA]`: a branch (and with --open-pr a pull request)
// giving the named tenants back the settings they had at an earlier commit, so a
// rollback goes through the same review and the same publish as any change.
import type { Command } from 'commander';
import { fleetRoot, type CliIo } from '../cli.js';
import { forgeFromEnv, githubToken, resolveRepo } from '../forge-settings.js';
import { openRollbackPullRequest, rollbackRepo, type RollbackRepoOptions } from '../rollout/rollback-branch.js';

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
    .option('--repo <owner/name>', 'repository on the forge (GitHub, GHE, Gitea, Forgejo; default: GITHUB_REPOSITORY or the origin URL)')
    .action(async (slugs: string[], opts: RollbackCliOptions) => {
      const root = fleetRoot(program, io);
      const forge = opts.openPr ? forgeFromEnv(io.env) : undefined;
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
      if (forge && repo) {
        const pr = await openRollbackPullRequest(forge, { ...repo, branch: result.branch, title: result.title, body: result.body, ...(opts.base ? { base: opts.base } : {}) });
        io.stdout(`${pr.existed ? 'pull request already exists' : 'opened pull request'} #${pr.number}: ${pr.url}\n`);
      }
    });
}
