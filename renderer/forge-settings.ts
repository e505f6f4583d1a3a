// GitHub settings the CLI commands read from the environment, in one place:
// the token (never printed), the API URL (GitHub Enterprise, Gitea) and the repo.
import { SettingError } from './core/errors.js';
import { createGitHubClient, parseRepoSlug, repoSlugFromUrl, type GitHubClient, type RepoRef } from './core/github.js';
import { remoteUrl } from './repo.js';

export type Env = Record<string, string | undefined>;

/** FLOTILLA_GITHUB_TOKEN, else GITHUB_TOKEN; undefined when neither is set. */
export function githubToken(env: Env): string | undefined {
  return env.FLOTILLA_GITHUB_TOKEN || env.GITHUB_TOKEN || undefined;
}

/**
 * FLOTILLA_GITHUB_API (the name the agent reads too), else FLOTILLA_GITHUB_API_URL, else
 * GITHUB_API_URL (set by Actions, also on GHES), else api.github.com.
 */
export function githubApiUrl(env: Env): string {
  return env.FLOTILLA_GITHUB_API || env.FLOTILLA_GITHUB_API_URL || env.GITHUB_API_URL || 'https://api.github.com';
}

/** The Octokit for a command; fails with the setting to fix when no token is set. */
export function githubClientFromEnv(env: Env, options: { fetch?: typeof fetch } = {}): GitHubClient {
  const token = githubToken(env);
  if (!token)
    throw new SettingError('FLOTILLA_GITHUB_TOKEN', 'not set (nor GITHUB_TOKEN); export a token that may use this repository');
  return createGitHubClient({ token, baseUrl: githubApiUrl(env), ...(options.fetch ? { fetch: options.fetch } : {}) });
}

/** `--repo owner/name`, else GITHUB_REPOSITORY, else the owner/name in the origin URL of `root`. */
export async function resolveRepo(given: string | undefined, env: Env, root: string): Promise<RepoRef> {
  if (given) return parseRepoSlug(given, '--repo');
  if (env.GITHUB_REPOSITORY) return parseRepoSlug(env.GITHUB_REPOSITORY, 'GITHUB_REPOSITORY');
  const url = await remoteUrl(root);
  const fromUrl = url ? repoSlugFromUrl(url) : undefined;
  if (!fromUrl) throw new SettingError('--repo', 'give the GitHub repository as owner/name (it cannot be read from the origin URL)');
  return fromUrl;
}
