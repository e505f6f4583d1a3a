// Status delivery: every status is queued in the on-disk outbox first and then
// flushed, so an unreachable forge delays statuses but never loses or reorders them.
// The forge is GitHub (api.github.com, GHES's /api/v3) or Gitea/Forgejo (an
// FLOTILLA_GITHUB_API ending in /api/v1, or FLOTILLA_FORGE=gitea|forgejo whatever the
// URL), see renderer/core/forge.ts.
import type { StatusOutbox } from './status-outbox.js';
import { forgeStatusAccepted, forgeStatusSend, logStatusSend } from './status-outbox.js';
import { parseRepoSlug, type GitHubClientOptions } from '../renderer/core/github.js';
import { createForge } from '../renderer/core/forge.js';
import type { AgentConfig } from './config.js';
import type { StatusUpdate } from './reconcile.js';

export interface StatusReporter {
  report(update: StatusUpdate): Promise<void>;
  /** Sends what is still queued (called on every poll). */
  flush(): Promise<void>;
}

export function statusContext(config: Pick<AgentConfig, 'tenant'>, prefix = 'flotilla/'): string {
  return `${prefix}${config.tenant}`;
}

/**
 * How the agent's status client retries and waits; tests make the waits short. `forge`
 * (github, gitea, forgejo) overrides what the API URL says.
 */
export type StatusClientOptions = Pick<GitHubClientOptions, 'fetch' | 'retry' | 'throttle' | 'timeoutMs'> & { forge?: string };

/**
 * The outbox is the agent's real retry (every poll flushes it), and an apply waits for
 * each report, so a GitHub outage must cost seconds, not the client's default minutes.
 */
export const AGENT_STATUS_CLIENT: StatusClientOptions = { retry: { retries: 1, baseDelayMs: 500 }, timeoutMs: 10_000 };

export function createStatusReporter(
  config: AgentConfig,
  outbox: StatusOutbox,
  log: (line: string) => void,
  clientOptions: StatusClientOptions = {},
): StatusReporter {
  const context = statusContext(config);
  const repo = config.githubRepo ? parseRepoSlug(config.githubRepo, 'FLOTILLA_GITHUB_REPO') : undefined;
  let send = logStatusSend(log);
  let accepted: ReturnType<typeof forgeStatusAccepted> | undefined;
  if (config.githubToken && repo) {
    // A test's (or a caller's) `forge` wins over FLOTILLA_FORGE, which wins over the URL.
    const { forge: given, ...client } = clientOptions;
    const kind = given ?? config.forge;
    const forge = createForge({
      ...AGENT_STATUS_CLIENT,
      ...client,
      ...(kind ? { kind } : {}),
      token: config.githubToken,
      baseUrl: config.githubApi,
      log: { debug: () => undefined, info: () => undefined, warn: log, error: log },
    });
    send = forgeStatusSend(forge);
    accepted = forgeStatusAccepted(forge);
  } else if (config.githubToken) {
    log('statuses: FLOTILLA_GITHUB_REPO is not set and cannot be derived from FLOTILLA_REPO; statuses go to the log only');
  }
  const owner = repo?.owner ?? 'local';
  const name = repo?.repo ?? 'local';

  const flush = async () => {
    const result = await outbox.flush(send, accepted ? { isAlreadyAccepted: accepted } : {});
    if (result.stopped) {
      const why = result.stopped.reason === 'budget' ? `rate budget, retry in ${Math.ceil(result.stopped.retryInMs / 1000)} s` : (result.stopped.error as Error).message;
      log(`statuses: ${result.pending} waiting in the outbox (${why})`);
    }
  };
  return {
    flush,
    async report(update) {
      const shas = [update.tenantCommit, ...(update.sourceCommit && update.sourceCommit !== update.tenantCommit ? [update.sourceCommit] : [])];
      for (const sha of shas) {
        await outbox.enqueue({ owner, repo: name, sha, state: update.state, context: update.context ? `${context}/${update.context}` : context, description: update.description });
      }
      await flush();
    },
  };
}
