// `flotilla comment --pr N`: the plan as ONE sticky comment on the pull request
// (plan/pr-comment.ts), and written to $GITHUB_STEP_SUMMARY when that is set.
import { appendFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { SettingError } from '../core/errors.js';
import { addPlanOptions, fleetRoot, readInputFile, type CliIo, type PlanCliOptions } from '../cli.js';
import { forgeFromEnv, resolveRepo } from '../forge-settings.js';
import { tagCheckFailure } from '../plan/plan.js';
import { renderPlanMarkdown } from '../plan/plan-markdown.js';
import { planRepo, type PlanRepoOptions } from '../plan/plan-revisions.js';
import { upsertStickyComment } from '../plan/pr-comment.js';
import { registryCheckFor } from '../plan/registry.js';

interface CommentCliOptions extends Omit<PlanCliOptions, 'format' | 'out'> {
  pr: string;
  repo?: string;
  file?: string;
}

export function registerComment(program: Command, io: CliIo): void {
  addPlanOptions(
    program
      .command('comment')
      .description('post the plan as one sticky pull-request comment (updated in place), and to $GITHUB_STEP_SUMMARY')
      .requiredOption('--pr <number>', 'pull request number')
      .option('--repo <owner/name>', 'repository on the forge (GitHub, GHE, Gitea, Forgejo; default: GITHUB_REPOSITORY or the origin URL)')
      .option('--file <path>', 'post this markdown (from `flotilla plan --out`) instead of planning here'),
    false,
  ).action(async (opts: CommentCliOptions) => {
    const root = fleetRoot(program, io);
    const pr = Number(opts.pr);
    if (!Number.isInteger(pr) || pr <= 0) throw new SettingError('--pr', `must be a pull request number, got ${JSON.stringify(opts.pr)}`);
    if (!opts.file && !opts.base) throw new SettingError('--base', 'is required unless --file gives the plan to post');
    const forge = forgeFromEnv(io.env);
    const repo = await resolveRepo(opts.repo, io.env, root);

    let body: string;
    let failure: Error | undefined;
    if (opts.file) {
      body = await readInputFile(io, '--file', opts.file);
    } else {
      const planOpts: PlanRepoOptions = { root, base: opts.base! };
      if (opts.head) planOpts.head = opts.head;
      if (opts.registryCheck) planOpts.registryCheck = registryCheckFor(io.env);
      const report = await planRepo(planOpts);
      body = renderPlanMarkdown(report);
      failure = tagCheckFailure(report);
    }
    const summary = io.env.GITHUB_STEP_SUMMARY;
    if (summary) await appendFile(summary, body.endsWith('\n') ? body : `${body}\n`);
    const result = await upsertStickyComment(forge, { ...repo, issueNumber: pr, body });
    io.stdout(`${result.action} plan comment ${result.id} on ${repo.owner}/${repo.repo}#${pr}: ${result.url}\n`);
    // The comment is posted first: the reason for the failure is in it.
    if (failure) throw failure;
  });
}
