// The ComposeRunner on the real binaries: `docker compose` (v2 plugin) or Debian's
// `docker-compose` 1.29. Compose runs with a minimal environment built here: a
// variable set in compose's environment overrides the stack's .env, and the
// agent's own settings (tokens above all) must never reach a container.

import yaml from 'js-yaml';
import { parseEnvText } from '../renderer/core/env-file.js';
import { ComposeStepError, SettingError } from '../renderer/core/errors.js';
import type { ComposeRunner, ComposeTarget, ServiceState } from './compose-runner.js';
import { runCommand, type RunResult } from './exec.js';
import { readManaged } from './local-files.js';

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
  State: { Status: string; ExitCode?: number; Health?: { Status: string } | null };
  HostConfig?: { RestartPolicy?: { Name?: string } | null } | null;
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
      if (typeof c.State.ExitCode === 'number') state.exitCode = c.State.ExitCode;
      if (c.HostConfig) state.restartPolicy = c.HostConfig.RestartPolicy?.Name || 'no';
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

  let major: Promise<number | undefined> | undefined;
  /** The compose major version (1 for docker-compose 1.29), undefined when it does not say. */
  const composeMajor = (): Promise<number | undefined> => {
    major ??= composeCommand().then(async (base) => {
      const result = await runCommand([...base, 'version', '--short'], { env, timeoutMs: timeouts.config });
      const match = /^v?(\d+)\./.exec(result.stdout.trim());
      return result.code === 0 && match ? Number(match[1]) : undefined;
    });
    return major;
  };

  const runner: ComposeRunner = {
    async config(target) {
      await compose('config', target, ['config', '--quiet']);
    },
    async pull(target) {
      await compose('pull', target, ['pull']);
    },
    async up(target) {
      try {
        await compose('up', target, ['up', '--detach']);
      } catch (err) {
        // Compose 1.29 names a failed service_completed_successfully dependency by its
        // container id under the service waiting for it ("ERROR: for app  Container
        // \"3f2a…\" exited with code 1."): the containers say which service it was.
        if (!(err instanceof ComposeStepError)) throw err;
        const failed = failedContainers(await runner.services(target).catch(() => [])).map((f) => f.why);
        if (failed.length === 0) throw err;
        throw new ComposeStepError('up', `${err.outputTail}\n${failed.join(', ')}`);
      }
    },
    async down(target) {
      await compose('down', target, ['down']);
    },
    async declaredServices(target) {
      const listed = await compose('config', target, ['config', '--services']);
      return listed.stdout.split(/\r?\n/).map((l) => l.trim()).filter(Boolean).sort();
    },
    async removeServiceContainers(target, services) {
      const project = composeProjectLabel(target.project);
      const removed: string[] = [];
      for (const service of services) {
        const listed = await runCommand(
          [docker, 'ps', '--all', '--quiet', '--no-trunc', '--filter', `label=com.docker.compose.project=${project}`, '--filter', `label=com.docker.compose.service=${service}`],
          { env, timeoutMs: timeouts.ps },
        );
        if (listed.code !== 0) throw new ComposeStepError('remove', outputTail(listed));
        const ids = listed.stdout.split(/\s+/).filter((id) => /^[0-9a-f]{12,64}$/.test(id));
        if (ids.length === 0) continue;
        const names = parseInspect((await runCommand([docker, 'inspect', ...ids], { env, timeoutMs: timeouts.ps })).stdout || '[]').map((c) => c.container);
        // Stopped first, as compose stops an orphan: the process gets its SIGTERM and grace period.
        for (const step of [['stop', ...ids], ['rm', ...ids]]) {
          const result = await runCommand([docker, ...step], { env, timeoutMs: timeouts.down });
          if (result.code !== 0) throw new ComposeStepError('remove', outputTail(result));
        }
        removed.push(...names);
      }
      return removed;
    },
    async expectedServices(target) {
      const resolved = await compose('config', target, ['config']);
      // v2 leaves services of inactive profiles out of `config`; 1.29 prints them all
      // (and `config --services` lists them all too), so its profile rule is applied here.
      if ((await composeMajor()) !== 1) return activeServices(resolved.stdout);
      return activeServices(resolved.stdout, await v1Profiles(target, env));
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
  return runner;
}

/** The project name as compose writes it into com.docker.compose.project (both versions lower-case it and drop other characters). */
export function composeProjectLabel(project: string): string {
  return project.toLowerCase().replace(/[^a-z0-9_-]/g, '');
}

/**
 * COMPOSE_PROFILES as compose 1.29 reads it: its environment over the project's .env,
 * split on commas (cli/command.py get_profiles_from_options). The agent never passes
 * COMPOSE_PROFILES (COMPOSE_ENV_ALLOWLIST), so on a host it is the .env's.
 */
async function v1Profiles(target: ComposeTarget, env: Record<string, string>): Promise<string[]> {
  let value = env.COMPOSE_PROFILES;
  if (value === undefined) {
    const file = await readManaged(target.dir, '.env');
    if (file) value = parseEnvText(file.content.toString('utf8'), '.env').values.get('COMPOSE_PROFILES');
  }
  return value ? value.split(',') : [];
}

interface ResolvedService {
  profiles?: unknown;
  scale?: unknown;
  deploy?: { mode?: unknown; replicas?: unknown } | null;
}

/**
 * The services of a resolved compose file (`compose config` output) that `up` gives
 * containers. A service scaled to 0 (`deploy.replicas: 0` or `scale: 0`, compose v2's
 * GetScale and 1.29's get_service_scale; 1 when neither is set) gets none. With `profiles` given, compose 1.29's rule (Service.enabled_for_profiles):
 * a service without `profiles` is enabled, one with them when any is active. Without
 * it, the file is taken as already filtered, as compose v2 prints it.
 */
export function activeServices(configText: string, profiles?: string[]): string[] {
  const doc = yaml.load(configText) as { services?: Record<string, ResolvedService | null> } | null;
  return Object.entries(doc?.services ?? {})
    .filter(([, service]) => {
      // 1.29 reads replicas only in replicated mode; both versions refuse a file setting scale and replicas apart.
      const deploy = service?.deploy;
      const replicas = deploy && (deploy.mode ?? 'replicated') === 'replicated' ? deploy.replicas : undefined;
      const scale = replicas ?? service?.scale;
      if (scale !== undefined && scale !== null && Number(scale) === 0) return false;
      if (profiles === undefined || !Array.isArray(service?.profiles)) return true;
      return (service.profiles as unknown[]).some((p) => typeof p === 'string' && profiles.includes(p));
    })
    .map(([name]) => name)
    .sort();
}

export interface HealthResult {
  ok: boolean;
  services: ServiceState[];
  /** One line for logs and commit statuses: "2/2 healthy", "1/1 healthy, 2 done (init, migrate)" or what is wrong. */
  detail: string;
}

export interface WaitHealthyOptions {
  timeoutMs: number;
  pollMs?: number;
  /**
   * Services the stack must have (from its compose file, see ComposeRunner.expectedServices):
   * one without a container is not ok, and containers of other services (an inactive
   * profile's leftovers) are not judged, as `compose up --wait` judges only the project's services.
   */
  expectedServices?: string[] | undefined;
}

/**
 * One container's verdict. `done` is a one-shot that finished: exited 0 under a restart
 * policy that will not start it again (`no`, or `on-failure`, which docker leaves alone
 * after exit 0). `failed` will not get better by waiting (no restart is coming, or
 * docker is already restarting a crash). `waiting` may still become healthy.
 */
type Verdict = { kind: 'healthy' } | { kind: 'done' } | { kind: 'waiting' | 'failed'; why: string };

function judge(s: ServiceState): Verdict {
  switch (s.state) {
    case 'running':
      if (s.health === undefined || s.health === 'healthy') return { kind: 'healthy' };
      return s.health === 'unhealthy' ? { kind: 'failed', why: 'unhealthy' } : { kind: 'waiting', why: s.health };
    case 'exited': {
      // An exit code docker did not report is no proof of success.
      if (s.exitCode === undefined) return { kind: 'failed', why: 'exited' };
      if (s.exitCode === 0 && (s.restartPolicy === undefined || s.restartPolicy === 'no' || s.restartPolicy === 'on-failure'))
        return { kind: 'done' };
      return { kind: 'failed', why: `exited (${s.exitCode})` };
    }
    case 'restarting':
      return { kind: 'failed', why: s.exitCode === undefined ? 'restarting' : `restarting (exit ${s.exitCode})` };
    case 'dead':
      return { kind: 'failed', why: 'dead' };
    default:
      return { kind: 'waiting', why: s.state };
  }
}

/**
 * Whether a stack is up: every container running (and healthy where it has a
 * healthcheck) or a one-shot that exited 0, and every expected service with a container.
 *
 * Compose v2's `up --wait` accepts an exited container only when another service names
 * it in `depends_on: {condition: service_completed_successfully}`, and fails a
 * stand-alone init container that exited 0 (docker/compose#10596). Flotilla reads the
 * restart policy instead, as the issue asks: with `no` or `on-failure`, exit 0 is the
 * end compose and docker leave the container at, so it is done, not down. Where the two
 * agree (a completed dependency is done; a non-zero exit, a restart loop or an unhealthy
 * container fails) the answer is compose's. Compose v1 (1.29) has no `--wait`; its `up`
 * itself fails when a service_completed_successfully dependency exits non-zero.
 */
export function assessHealth(services: ServiceState[], expectedServices?: string[]): HealthResult {
  const expected = expectedServices === undefined ? undefined : new Set(expectedServices);
  const judged = expected ? services.filter((s) => expected.has(s.service)) : services;
  const present = new Set(judged.map((s) => s.service));
  const missing = (expectedServices ?? []).filter((name) => !present.has(name));
  if (judged.length === 0 && missing.length === 0) {
    return { ok: false, services, detail: 'no containers running' };
  }
  const verdicts = judged.map((s) => ({ s, v: judge(s) }));
  const done = [...new Set(verdicts.filter(({ v }) => v.kind === 'done').map(({ s }) => s.service))];
  const doneCount = verdicts.filter(({ v }) => v.kind === 'done').length;
  const healthy = verdicts.filter(({ v }) => v.kind === 'healthy').length;
  const total = judged.length - doneCount + missing.length;
  const counts = `${healthy}/${total} healthy${done.length > 0 ? `, ${doneCount} done (${done.join(', ')})` : ''}`;
  const problems = [
    ...missing.map((name) => `${name} has no container`),
    ...verdicts.flatMap(({ s, v }) => (v.kind === 'waiting' || v.kind === 'failed' ? [`${s.service} ${v.why}`] : [])),
  ];
  if (problems.length === 0) return { ok: true, services, detail: counts };
  return { ok: false, services, detail: `${counts}; ${problems.join(', ')}` };
}

/** The containers that will not get better by waiting, with why: "migrate exited (1)". */
export function failedContainers(services: ServiceState[]): { state: ServiceState; why: string }[] {
  return services.flatMap((state) => {
    const v = judge(state);
    return v.kind === 'failed' ? [{ state, why: `${state.service} ${v.why}` }] : [];
  });
}

/**
 * Polls `services()` until the stack is healthy, a container has failed (unhealthy,
 * exited other than a finished one-shot, restarting, dead) or an expected service has
 * no container on two polls in a row, or the timeout passes.
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
    const expected = opts.expectedServices;
    const judged = expected ? services.filter((s) => expected.includes(s.service)) : services;
    // `up` has returned: a service it gave no container will not get one by waiting.
    const present = new Set(services.map((s) => s.service));
    const hopelessNow = new Set([
      ...failedContainers(judged).map((f) => f.state.container),
      ...(expected ?? []).filter((name) => !present.has(name)).map((name) => `missing ${name}`),
    ]);
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
