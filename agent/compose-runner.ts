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
  /** docker's State.ExitCode: the last exit of the container (0 while it has never exited). */
  exitCode?: number;
  /** docker's HostConfig.RestartPolicy.Name, '' read as 'no': whether an exited container comes back. */
  restartPolicy?: string;
}

export interface ComposeRunner {
  /** `compose config -q`: validates the file with its .env. Throws ComposeStepError('config', tail). */
  config(target: ComposeTarget): Promise<void>;
  /** `compose pull`. Throws ComposeStepError('pull', tail). */
  pull(target: ComposeTarget): Promise<void>;
  /**
   * `compose up -d`, without `--remove-orphans`: containers of the project's other
   * services (an operator's hand-added sidecar) are not Flotilla's to remove; those
   * Flotilla once deployed go through removeServiceContainers. Throws ComposeStepError('up', tail).
   */
  up(target: ComposeTarget): Promise<void>;
  /** State of every container of the project (ps + inspect). */
  services(target: ComposeTarget): Promise<ServiceState[]>;
  /**
   * The services `up` gives containers, as compose resolves the file and its .env
   * (active profiles, scale above 0). Runners without it (test doubles, the demo's
   * dry run) leave the has-a-container check off.
   */
  expectedServices?(target: ComposeTarget): Promise<string[]>;
  /** `compose down` of the file's services only; tests, and taking a failed first release down again. */
  down(target: ComposeTarget): Promise<void>;
  /**
   * Every service the compose file declares (`config --services`), whatever its scale.
   * Runners without it (test doubles) leave dropped services' containers alone.
   */
  declaredServices?(target: ComposeTarget): Promise<string[]>;
  /**
   * Stops and removes the containers of the project labelled with one of these services
   * (com.docker.compose.project / com.docker.compose.service), and no others. Returns
   * the names of the containers removed. Throws ComposeStepError('remove', tail).
   */
  removeServiceContainers?(target: ComposeTarget, services: string[]): Promise<string[]>;
}
