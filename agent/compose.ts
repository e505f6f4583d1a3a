// The ComposeRunner on the real binaries: `docker compose` (v2 plugin) or Debian's
// `docker-compose` 1.29. Compose runs with a minimal environment built here: a
// variable set in compose's environment overrides the stack's .env, and the
// agent's own settings (tokens above all) must never reach a container.

import { ComposeStepError, SettingError } from '../renderer/core/errors.js';
import type { ComposeRunner, ComposeTarget, ServiceState } from './compose-runner.js';
import { runCommand, type RunResult } from './exec.js';

/** The only variables compose and docker get from the agent's environment. */
export const COMPOSE_ENV_ALLOWLIST = [
  'PATH',
  'HOME',
  'DOCKER_HOST',
  'DOCKER_CONFIG',
  'DOCKER_CONTEXT',
  'DOCKER_CERT_PATH',
  'DOCKER_TLS_VERIFY',
  'XDG_RUNTIME_DIR',
  'TMPDIR',
  'LANG',
  'LC_ALL',
] as const;

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const OUTPUT_TAIL_LINES = 10;

export interface ComposeRunnerOptions {
  /** The compose command, e.g. ['docker', 'compose'] or ['docker-compose']; detected on first use when absent. */
  command?: string[];
  /** The docker CLI, for `inspect`. Default 'docker'. */
  dockerCommand?: string;
  /** DOCKER_HOST for compose and docker; default the one in `env`. */
  dockerHost?: string;
  /** Environment the allow-listed variables are taken from; default process.env. Nothing else passes. */
  env?: Record<string, string | undefined>;
  /** Per-step time limits in milliseconds. */
  timeouts?: Partial<Record<'config' | 'pull' | 'up' | 'ps' | 'down', number>>;
}

const DEFAULT_TIMEOUTS = { config: 60_000, pull: 15 * 60_000, up: 10 * 60_000, ps: 60_000, down: 5 * 60_000 };

/** The environment compose runs with: only allow-listed names, PATH always set. */
export function composeEnv(source: Record<string, string | undefined>, dockerHost?: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of COMPOSE_ENV_ALLOWLIST) {
    const value = source[name];
    if (value !== undefined && value !== '') env[name] = value;
  }
  env.PATH ??= DEFAULT_PATH;
  if (dockerHost) env.DOCKER_HOST = dockerHost;
  return env;
}

/** The last lines of a command's output, stderr after stdout (compose writes errors to stderr). */
export function outputTail(result: Pick<RunResult, 'stdout' | 'stderr'>, lines = OUTPUT_TAIL_LINES): string {
  const all = `${result.stdout}\n${result.stderr}`
    .split(/\r?\n/)
    .map((line) => line.trimEnd())
    .filter((line) => line.length > 0);
  return all.slice(-lines).join('\n');
}

/**
 * `docker compose` when the v2 plugin answers, else `docker-compose`.
 * Throws SettingError('FLOTILLA_COMPOSE') when neither runs.
 */
export async function detectComposeCommand(
  opts: { env?: Record<string, string | undefined>; dockerCommand?: string } = {},
): Promise<string[]> {
  const env = composeEnv(opts.env ?? process.env);
  const candidates = [[opts.dockerCommand ?? 'docker', 'compose'], ['docker-compose']];
  for (const candidate of candidates) {
    const result = await runCommand([...candidate, 'version'], { env, timeoutMs: 30_000 });
    if (result.code === 0) return candidate;
  }
  throw new SettingError(
    'FLOTILLA_COMPOSE',
    'neither `docker compose` (v2 plugin) nor `docker-compose` runs on this host; install one or set FLOTILLA_COMPOSE',
  );
}

interface InspectedContainer {
  Id: string;
  Name: string;
  Config: { Image: string; Labels: Record<string, string> | null };
  State: { Status: string; Health?: { Status: string } | null };
}

/** ServiceStates from `docker inspect` output, without one-off (`compose run`) containers. */
export function parseInspect(json: string): ServiceState[] {
  const containers = JSON.parse(json) as InspectedContainer[];
  return containers
    .filter((c) => (c.Config.Labels ?? {})['com.docker.compose.oneoff'] !== 'True')
    .map((c) => {
      const health = c.State.Health?.Status;
      const state: ServiceState = {
        service: (c.Config.Labels ?? {})['com.docker.compose.service'] ?? c.Name.replace(/^\//, ''),
        container: c.Name.replace(/^\//, ''),
        state: c.State.Status,
        image: c.Config.Image,
      };
      if (health === 'starting' || health === 'healthy' || health === 'unhealthy') state.health = health;
      return state;
    })
    .sort((a, b) => a.service.localeCompare(b.service) || a.container.localeCompare(b.container));
}

export function createComposeRunner(opts: ComposeRunnerOptions = {}): ComposeRunner {
  const env = composeEnv(opts.env ?? process.env, opts.dockerHost);
  const timeouts = { ...DEFAULT_TIMEOUTS, ...opts.timeouts };
  const docker = opts.dockerCommand ?? 'docker';
  let command: Promise<string[]> | undefined = opts.command ? Promise.resolve(opts.command) : undefined;

  const composeCommand = (): Promise<string[]> => {
    command ??= detectComposeCommand({ env, dockerCommand: docker });
    return command;
  };

  const compose = async (
    step: keyof typeof DEFAULT_TIMEOUTS,
    target: ComposeTarget,
    args: string[],
  ): Promise<RunResult> => {
    const base = await composeCommand();
    const result = await runCommand([...base, '--project-name', target.project, ...args], {
      cwd: target.dir,
      env,
      timeoutMs: timeouts[step],
    });
    if (result.code !== 0) {
      const tail = outputTail(result);
      throw new ComposeStepError(
        step,
        result.timedOut ? `timed out after ${formatDuration(timeouts[step])}\n${tail}` : tail,
      );
    }
    return result;
  };

  return {
    async config(target) {
      await compose('config', target, ['config', '--quiet']);
    },
    async pull(target) {
      await compose('pull', target, ['pull']);
    },
    async up(target) {
      await compose('up', target, ['up', '--detach', '--remove-orphans']);
    },
    async down(target) {
      await compose('down', target, ['down', '--remove-orphans']);
    },
    async services(target) {
      // --all: a crashed container must show up as exited, not vanish from the list.
      const ps = await compose('ps', target, ['ps', '--all', '--quiet']);
      const ids = ps.stdout.split(/\s+/).filter((id) => /^[0-9a-f]{12,64}$/.test(id));
      if (ids.length === 0) return [];
      const inspected = await runCommand([docker, 'inspect', ...ids], { env, timeoutMs: timeouts.ps });
      if (inspected.code !== 0) throw new ComposeStepError('ps', outputTail(inspected));
      return parseInspect(inspected.stdout);
    },
  };
}

export interface HealthResult {
  ok: boolean;
  services: ServiceState[];
  /** One line for logs and commit statuses: "2/2 healthy" or what is wrong. */
  detail: string;
}

export interface WaitHealthyOptions {
  timeoutMs: number;
  pollMs?: number;
  /** Services the stack must have (from its compose file); a missing one is not ok. */
  expectedServices?: string[];
}

/** Whether a stack is up: every service running, and healthy where it has a healthcheck. */
export function assessHealth(services: ServiceState[], expectedServices: string[] = []): HealthResult {
  const present = new Set(services.map((s) => s.service));
  const missing = expectedServices.filter((name) => !present.has(name));
  const unwell = services.filter((s) => s.state !== 'running' || (s.health !== undefined && s.health !== 'healthy'));
  if (services.length === 0 && missing.length === 0) {
    return { ok: false, services, detail: 'no containers running' };
  }
  const total = services.length + missing.length;
  const counts = `${services.length - unwell.length}/${total} healthy`;
  const problems = [
    ...missing.map((name) => `${name} has no container`),
    ...unwell.map((s) => `${s.service} ${s.state === 'running' ? s.health : s.state}`),
  ];
  if (problems.length === 0) return { ok: true, services, detail: counts };
  return { ok: false, services, detail: `${counts}; ${problems.join(', ')}` };
}

/** A state that will not get better by waiting (no restart is coming). */
function hopeless(s: ServiceState): boolean {
  return s.health === 'unhealthy' || s.state === 'dead' || s.state === 'exited';
}

/**
 * Polls `services()` until the stack is healthy, a service is unhealthy, exited or
 * dead on two polls in a row, or the timeout passes.
 */
export async function waitHealthy(
  runner: Pick<ComposeRunner, 'services'>,
  target: ComposeTarget,
  opts: WaitHealthyOptions,
): Promise<HealthResult> {
  const pollMs = opts.pollMs ?? 1_000;
  const deadline = Date.now() + opts.timeoutMs;
  let hopelessBefore = new Set<string>();
  for (;;) {
    const services = await runner.services(target);
    const result = assessHealth(services, opts.expectedServices);
    if (result.ok) return result;
    const hopelessNow = new Set(services.filter(hopeless).map((s) => s.container));
    if ([...hopelessNow].some((c) => hopelessBefore.has(c))) return result;
    hopelessBefore = hopelessNow;
    if (Date.now() >= deadline) {
      return { ...result, detail: `${result.detail} (after ${formatDuration(opts.timeoutMs)})` };
    }
    await new Promise((r) => setTimeout(r, Math.min(pollMs, Math.max(0, deadline - Date.now()))));
  }
}

function formatDuration(ms: number): string {
  return ms < 1_000 ? `${ms} ms` : `${Math.round(ms / 1000)} s`;
}
