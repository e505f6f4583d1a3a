// The plan as ONE sticky pull-request comment, found again by its hidden marker and
// updated in place: never a second copy, and no edit when nothing changed.
import { SettingError } from '../core/errors.js';
import { githubCall, type GitHubClient, type RepoRef } from '../core/github.js';
import { GITHUB_COMMENT_LIMIT, PLAN_COMMENT_MARKER } from './plan-markdown.js';

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

