// The plan as ONE sticky pull-request comment, found again by its hidden marker and
// updated in place: never a second copy, and no edit when nothing changed. The forge
// (GitHub, GHE, Gitea, Forgejo) does the finding and writing: core/forge.ts.
import { SettingError } from '../core/errors.js';
import type { Forge, StickyCommentResult } from '../core/forge.js';
import type { RepoRef } from '../core/github.js';
import { GITHUB_COMMENT_LIMIT, PLAN_COMMENT_MARKER } from './plan-markdown.js';

export type { StickyCommentResult } from '../core/forge.js';

export interface StickyCommentInput extends RepoRef {
  issueNumber: number;
  body: string;
  marker?: string;
}

/**
 * Creates the comment carrying `marker`, or updates the oldest one that does.
 * An identical body is left alone (no notification, no edit history noise).
 */
export async function upsertStickyComment(forge: Forge, input: StickyCommentInput): Promise<StickyCommentResult> {
  const marker = input.marker ?? PLAN_COMMENT_MARKER;
  const body = input.body.includes(marker) ? input.body : `${marker}\n${input.body}`;
  if (body.length > GITHUB_COMMENT_LIMIT)
    throw new SettingError('comment body', `${body.length} characters is over GitHub's ${GITHUB_COMMENT_LIMIT}-character limit`);
  return forge.upsertStickyComment({ owner: input.owner, repo: input.repo, issueNumber: input.issueNumber, marker, body });
}
