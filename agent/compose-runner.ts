// The one interface the agent uses to drive Docker Compose. `compose.ts` runs the
// real binary (v2 plugin or v1 docker-compose); unit tests use a recording runner.

/** Where and as what compose runs: the directory holding docker-compose.yml and .env, and the project name. */
export interface ComposeTarget {
  dir: string;
  project: string;
}

export interface ServiceState {
  service: string;
  container: string;
  /** docker's State.Status: running, exited, restarting, created... */
  state: string;
  /** docker's State.Health.Status when the service has a healthcheck. */
  health?: 'starting' | 'healthy' | 'unhealthy';
  image: string;
}

export interface ComposeRunner {
  /** `compose config -q`: validates the file with its .env. Throws ComposeStepError('config', tail). */
  config(target: ComposeTarget): Promise<void>;
  /** `compose pull`. Throws ComposeStepError('pull', tail). */
  pull(target: ComposeTarget): Promise<void>;
  /** `compose up -d --remove-orphans`. Throws ComposeStepError('up', tail). */
  up(target: ComposeTarget): Promise<void>;
  /** State of every container of the project (ps + inspect). */
  services(target: ComposeTarget): Promise<ServiceState[]>;
  /** `compose down`; used by tests and uninstall, never by an apply. */
  down(target: ComposeTarget): Promise<void>;
}
