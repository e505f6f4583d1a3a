// Forge settings the CLI commands read from the environment, in one place: the token
// (never printed), the API URL (GitHub, GitHub Enterprise at /api/v3, Gitea/Forgejo at
// /api/v1), which forge it is (FLOTILLA_FORGE, else detected from the URL) and the repo.
import { SettingError } from './core/errors.js';
import { createForge, detectForgeKind, type Forge, type ForgeKind } from './core/forge.js';
import { parseRepoSlug, repoSlugFromUrl, type RepoRef } from './core/github.js';
import { remoteUrl } from './repo.js';

export type Env = Record<string, string | undefined>;

/** A forge and the repository on it that holds the statuses, comments and pull requests. */
export interface ForgeRepo {
  forge: Forge;
  repo: RepoRef;
}

/** FLOTILLA_GITHUB_TOKEN, else GITHUB_TOKEN; undefined when neither is set. */
export function githubToken(env: Env): string | undefined {
  return env.FLOTILLA_GITHUB_TOKEN || env.GITHUB_TOKEN || undefined;
}

/**
 * FLOTILLA_GITHUB_API (the name the agent reads too), else FLOTILLA_GITHUB_API_URL, else
 * GITHUB_API_URL (set by Actions, also on GHES and by Gitea/Forgejo Actions), else api.github.com.
 */
export function githubApiUrl(env: Env): string {
  return env.FLOTILLA_GITHUB_API || env.FLOTILLA_GITHUB_API_URL || env.GITHUB_API_URL || 'https://api.github.com';
}

/** FLOTILLA_FORGE (github, gitea, forgejo), else detected from the API URL (`/api/v1` is Gitea). */
export function forgeKind(env: Env): ForgeKind {
  return detectForgeKind(githubApiUrl(env), env.FLOTILLA_FORGE);
}

/** The forge for a command; fails with the setting to fix when no token is set or FLOTILLA_FORGE is not one. */
export function forgeFromEnv(env: Env, options: { fetch?: typeof fetch } = {}): Forge {
  const kind = forgeKind(env);
  const token = githubToken(env);
  if (!token)
    throw new SettingError('FLOTILLA_GITHUB_TOKEN', 'not set (nor GITHUB_TOKEN); export a token that may use this repository');
  return createForge({ token, baseUrl: githubApiUrl(env), kind, ...(options.fetch ? { fetch: options.fetch } : {}) });
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
