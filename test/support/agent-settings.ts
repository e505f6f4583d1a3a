// The settings (environment) of an agent run against the private test engine: the
// process's PATH and HOME, the engine's DOCKER_HOST and DOCKER_CONFIG, the tenant's
// repository, folders and compose command, and the GitHub stand-in when statuses go to one.

export interface AgentSettingsOptions {
  /** FLOTILLA_REPO: the fleet repository the agent pulls. */
  repoUrl: string;
  /** FLOTILLA_TENANT. */
  tenant: string;
  /** FLOTILLA_DIR. */
  installDir: string;
  /** FLOTILLA_STATE_DIR. */
  stateDir: string;
  /** The stand-in statuses go to and the repository on it (FLOTILLA_GITHUB_API, _TOKEN, _REPO); none leaves them out. */
  github?: { standIn: { url: string; token: string }; repo: string };
  /** FLOTILLA_COMPOSE; default `docker-compose`. */
  compose?: string;
}

/** The agent's settings on the test engine; `overrides` add settings or replace any of these. */
export function agentSettings(
  // Structural, not global-setup-docker's type: that file is vitest's and stays out of the build.
  engine: { host: string; dockerConfig: string },
  opts: AgentSettingsOptions,
  overrides: Record<string, string> = {},
): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: process.env.HOME ?? '/root',
    DOCKER_HOST: engine.host,
    DOCKER_CONFIG: engine.dockerConfig,
    FLOTILLA_REPO: opts.repoUrl,
    FLOTILLA_TENANT: opts.tenant,
    FLOTILLA_DIR: opts.installDir,
    FLOTILLA_STATE_DIR: opts.stateDir,
    ...(opts.github
      ? { FLOTILLA_GITHUB_API: opts.github.standIn.url, FLOTILLA_GITHUB_TOKEN: opts.github.standIn.token, FLOTILLA_GITHUB_REPO: opts.github.repo }
      : {}),
    FLOTILLA_COMPOSE: opts.compose ?? 'docker-compose',
    FLOTILLA_HEALTH_TIMEOUT: '30',
    ...overrides,
  };
}
