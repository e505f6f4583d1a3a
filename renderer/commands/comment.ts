// `flotilla comment --pr N`: the plan as ONE sticky comment on the pull request,
// found again by its hidden marker and updated in place (never a second copy),
// and written to $GITHUB_STEP_SUMMARY when that is set.
import { appendFile, readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { SettingError } from '../core/errors.js';
import { githubCall, type GitHubClient, type RepoRef } from '../core/github.js';
import { fleetRoot, type CliIo } from '../cli.js';
import { GITHUB_COMMENT_LIMIT, PLAN_COMMENT_MARKER, renderPlanMarkdown } from '../plan/plan-markdown.js';
import { githubClientFromEnv, resolveRepo } from './github-env.js';
import { addPlanOptions, planRepo, registryCheckFor, tagCheckFailure, type PlanCliOptions, type PlanRepoOptions } from './plan.js';

export interface StickyCommentInput extends RepoRef {
  issueNumber: number;
  body: string;
  marker?: string;
}

export interface StickyCommentResult {
  action: 'created' | 'updated' | 'unchanged';
  id: number;
  url: string;
}

/**
 * Creates the comment carrying `marker`, or updates the oldest one that does.
 * An identical body is left alone (no notification, no edit history noise).
 */
export async function upsertStickyComment(client: GitHubClient, input: StickyCommentInput): Promise<StickyCommentResult> {
  const marker = input.marker ?? PLAN_COMMENT_MARKER;
  const body = input.body.includes(marker) ? input.body : `${marker}\n${input.body}`;
  if (body.length > GITHUB_COMMENT_LIMIT)
    throw new SettingError('comment body', `${body.length} characters is over GitHub's ${GITHUB_COMMENT_LIMIT}-character limit`);
  const { owner, repo, issueNumber } = input;
  const where = `${owner}/${repo}#${issueNumber}`;
  const comments = await githubCall(client, `list comments of ${where}`, (o) =>
    o.paginate(o.rest.issues.listComments, { owner, repo, issue_number: issueNumber, per_page: 100 }),
  );
  const existing = comments.find((c) => (c.body ?? '').includes(marker));
  if (existing) {
    if (existing.body === body) return { action: 'unchanged', id: existing.id, url: existing.html_url };
    const { data } = await githubCall(client, `update plan comment on ${where}`, (o) =>
      o.rest.issues.updateComment({ owner, repo, comment_id: existing.id, body }),
    );
    return { action: 'updated', id: data.id, url: data.html_url };
  }
  const { data } = await githubCall(client, `comment on ${where}`, (o) =>
    o.rest.issues.createComment({ owner, repo, issue_number: issueNumber, body }),
  );
  return { action: 'created', id: data.id, url: data.html_url };
}

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
      .option('--repo <owner/name>', 'GitHub repository (default: GITHUB_REPOSITORY or the origin URL)')
      .option('--file <path>', 'post this markdown (from `flotilla plan --out`) instead of planning here'),
    false,
  ).action(async (opts: CommentCliOptions) => {
    const root = fleetRoot(program, io);
    const pr = Number(opts.pr);
    if (!Number.isInteger(pr) || pr <= 0) throw new SettingError('--pr', `must be a pull request number, got ${JSON.stringify(opts.pr)}`);
    if (!opts.file && !opts.base) throw new SettingError('--base', 'is required unless --file gives the plan to post');
    const client = githubClientFromEnv(io.env);
    const repo = await resolveRepo(opts.repo, io.env, root);

    let body: string;
    let failure: Error | undefined;
    if (opts.file) {
      body = await readFile(resolve(io.cwd, opts.file), 'utf8');
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
    const result = await upsertStickyComment(client, { ...repo, issueNumber: pr, body });
    io.stdout(`${result.action} plan comment ${result.id} on ${repo.owner}/${repo.repo}#${pr}: ${result.url}\n`);
    // The comment is posted first: the reason for the failure is in it.
    if (failure) throw failure;
  });
}
