import { describe, expect, it } from 'vitest';
import type { ComposeTarget, ServiceState } from './compose-runner.js';
import { activeServices, assessHealth, composeEnv, outputTail, parseInspect, waitHealthy } from './compose.js';

const svc = (service: string, state: string, health?: ServiceState['health']): ServiceState => ({
  service,
  container: `p-${service}-1`,
  state,
  image: 'img:v1',
  ...(health ? { health } : {}),
});

/** A container that has exited (or is being restarted) with `exitCode` under `restartPolicy`. */
const ended = (service: string, exitCode: number, restartPolicy: string, state = 'exited'): ServiceState => ({
  ...svc(service, state),
  exitCode,
  restartPolicy,
});

describe('composeEnv', () => {
  it('passes only what docker needs, never the agent settings or stack variables', () => {
    const env = composeEnv(
      {
        PATH: '/usr/bin',
        HOME: '/root',
        DOCKER_CONFIG: '/etc/docker-cfg',
        FLOTILLA_GITHUB_TOKEN: 'ghp_x',
        FLOTILLA_GIT_TOKEN: 'y',
        IMAGE_TAG: 'v9',
        COMPOSE_PROJECT_NAME: 'other',
      },
      'unix:///run/d.sock',
    );
    expect(env).toEqual({
      PATH: '/usr/bin',
      HOME: '/root',
      DOCKER_CONFIG: '/etc/docker-cfg',
      DOCKER_HOST: 'unix:///run/d.sock',
    });
  });

  it('always sets a PATH', () => {
    expect(composeEnv({}).PATH).toContain('/usr/bin');
  });
});

describe('outputTail', () => {
  it('keeps the last ten non-empty lines, stderr after stdout', () => {
    const stdout = Array.from({ length: 8 }, (_, i) => `out ${i}`).join('\n');
    const stderr = '\nERROR: for app  manifest unknown\r\n\n';
    const tail = outputTail({ stdout, stderr });
    expect(tail.split('\n')).toHaveLength(9);
    expect(tail.endsWith('out 7\nERROR: for app  manifest unknown')).toBe(true);
    expect(outputTail({ stdout: Array.from({ length: 30 }, (_, i) => `l${i}`).join('\n'), stderr: '' })).toBe(
      Array.from({ length: 10 }, (_, i) => `l${i + 20}`).join('\n'),
    );
  });
});

describe('parseInspect', () => {
  it('maps docker inspect output to service states and drops one-off containers', () => {
    const json = JSON.stringify([
      {
        Id: 'a',
        Name: '/p-web-1',
        Config: { Image: 'r/web:v2', Labels: { 'com.docker.compose.service': 'web', 'com.docker.compose.oneoff': 'False' } },
        State: { Status: 'running', ExitCode: 0, Health: { Status: 'healthy' } },
        HostConfig: { RestartPolicy: { Name: 'unless-stopped', MaximumRetryCount: 0 } },
      },
      {
        Id: 'b',
        Name: '/p_db_1',
        Config: { Image: 'r/db:1', Labels: { 'com.docker.compose.service': 'db' } },
        State: { Status: 'exited', ExitCode: 3 },
        HostConfig: { RestartPolicy: { Name: '', MaximumRetryCount: 0 } },
      },
      {
        Id: 'c',
        Name: '/p_web_run_1',
        Config: { Image: 'r/web:v2', Labels: { 'com.docker.compose.service': 'web', 'com.docker.compose.oneoff': 'True' } },
        State: { Status: 'running' },
      },
    ]);
    expect(parseInspect(json)).toEqual([
      { service: 'db', container: 'p_db_1', state: 'exited', image: 'r/db:1', exitCode: 3, restartPolicy: 'no' },
      {
        service: 'web',
        container: 'p-web-1',
        state: 'running',
        health: 'healthy',
        image: 'r/web:v2',
        exitCode: 0,
        restartPolicy: 'unless-stopped',
      },
    ]);
  });
});

describe('assessHealth', () => {
  it('is ok when every service runs and those with a healthcheck are healthy', () => {
    expect(assessHealth([svc('web', 'running', 'healthy'), svc('worker', 'running')])).toMatchObject({
      ok: true,
      detail: '2/2 healthy',
    });
  });

  it('names what is wrong, including expected services without a container', () => {
    const result = assessHealth([svc('web', 'running', 'starting'), svc('db', 'exited'), svc('x', 'running')], [
      'web',
      'db',
      'x',
      'cache',
    ]);
    expect(result.ok).toBe(false);
    expect(result.detail).toBe('1/4 healthy; cache has no container, web starting, db exited');
  });

  it('counts a one-shot that exited 0 under restart no or on-failure as done', () => {
    const result = assessHealth(
      [ended('init', 0, 'no'), ended('migrate', 0, 'on-failure'), svc('app', 'running')],
      ['app', 'init', 'migrate'],
    );
    expect(result).toMatchObject({ ok: true, detail: '1/1 healthy, 2 done (init, migrate)' });
  });

  it('fails a one-shot that exited non-zero, naming it and its exit code', () => {
    const result = assessHealth([ended('init', 0, 'no'), ended('migrate', 1, 'no'), svc('app', 'running')]);
    expect(result).toMatchObject({ ok: false, detail: '1/2 healthy, 1 done (init); migrate exited (1)' });
  });

  it('fails a container that exited 0 under a policy that restarts it, and one docker is restarting', () => {
    const result = assessHealth([ended('web', 0, 'always'), ended('worker', 137, 'on-failure', 'restarting')]);
    expect(result).toMatchObject({ ok: false, detail: '0/2 healthy; web exited (0), worker restarting (exit 137)' });
  });

  it('fails an expected service without a container even when every container is well', () => {
    const result = assessHealth([svc('app', 'running')], ['app', 'worker']);
    expect(result).toMatchObject({ ok: false, detail: '1/2 healthy; worker has no container' });
  });

  it('judges only the expected services: a leftover of an inactive profile is not the stack', () => {
    const result = assessHealth([svc('app', 'running'), ended('debug', 1, 'no')], ['app']);
    expect(result).toMatchObject({ ok: true, detail: '1/1 healthy' });
    expect(assessHealth([svc('app', 'running'), ended('debug', 1, 'no')]).ok).toBe(false);
  });

  it('is not ok with no containers at all', () => {
    expect(assessHealth([])).toMatchObject({ ok: false, detail: 'no containers running' });
  });
});

describe('waitHealthy', () => {
  const target: ComposeTarget = { dir: '/nowhere', project: 'p' };
  const scripted = (polls: ServiceState[][]) => {
    let i = 0;
    return {
      calls: () => i,
      services: async () => polls[Math.min(i++, polls.length - 1)]!,
    };
  };

  it('waits through starting until healthy', async () => {
    const runner = scripted([[svc('web', 'created')], [svc('web', 'running', 'starting')], [svc('web', 'running', 'healthy')]]);
    const result = await waitHealthy(runner, target, { timeoutMs: 10_000, pollMs: 1 });
    expect(result).toMatchObject({ ok: true, detail: '1/1 healthy' });
    expect(runner.calls()).toBe(3);
  });

  it('gives up before the timeout once a service stays unhealthy', async () => {
    const runner = scripted([[svc('web', 'running', 'starting')], [svc('web', 'running', 'unhealthy')]]);
    const result = await waitHealthy(runner, target, { timeoutMs: 60_000, pollMs: 1 });
    expect(result).toMatchObject({ ok: false, detail: '0/1 healthy; web unhealthy' });
    expect(runner.calls()).toBe(3);
  });

  it('gives up before the timeout on a container docker keeps restarting', async () => {
    const runner = scripted([[ended('web', 1, 'always', 'restarting')], [ended('web', 1, 'always', 'restarting')]]);
    const result = await waitHealthy(runner, target, { timeoutMs: 60_000, pollMs: 1 });
    expect(result).toMatchObject({ ok: false, detail: '0/1 healthy; web restarting (exit 1)' });
    expect(runner.calls()).toBe(2);
  });

  it('gives up before the timeout on an expected service that stays without a container', async () => {
    const runner = scripted([[svc('app', 'running')]]);
    const result = await waitHealthy(runner, target, { timeoutMs: 60_000, pollMs: 1, expectedServices: ['app', 'worker'] });
    expect(result).toMatchObject({ ok: false, detail: '1/2 healthy; worker has no container' });
    expect(runner.calls()).toBe(2);
  });

  it('does not wait on a failed leftover of a service the stack does not expect', async () => {
    const runner = scripted([[svc('app', 'running', 'starting'), ended('debug', 1, 'no')], [svc('app', 'running', 'healthy'), ended('debug', 1, 'no')]]);
    const result = await waitHealthy(runner, target, { timeoutMs: 60_000, pollMs: 1, expectedServices: ['app'] });
    expect(result).toMatchObject({ ok: true, detail: '1/1 healthy' });
  });

  it('reports a stack still starting at the timeout as not ok', async () => {
    const runner = scripted([[svc('web', 'running', 'starting')]]);
    const result = await waitHealthy(runner, target, { timeoutMs: 30, pollMs: 5 });
    expect(result.ok).toBe(false);
    expect(result.detail).toBe('0/1 healthy; web starting (after 30 ms)');
  });
});

describe('activeServices', () => {
  // As docker-compose 1.29 prints `config`: every service, profiles and scale as written.
  const resolved = [
    'services:',
    '  app:',
    '    image: r/app:v1',
    '  debug:',
    '    image: r/app:v1',
    '    profiles:',
    '    - debug',
    '  init:',
    '    image: r/app:v1',
    '  spare:',
    '    image: r/app:v1',
    '    scale: 0',
    '  standby:',
    '    deploy:',
    '      replicas: 0',
    '    image: r/app:v1',
    '  tools:',
    '    image: r/app:v1',
    '    profiles:',
    '    - ops',
    '    - debug',
    "version: '3.9'",
    '',
  ].join('\n');

  it('leaves out services scaled to 0 and, by compose 1.29\'s rule, those of inactive profiles', () => {
    expect(activeServices(resolved, [])).toEqual(['app', 'init']);
    expect(activeServices(resolved, ['debug'])).toEqual(['app', 'debug', 'init', 'tools']);
    expect(activeServices(resolved, ['ops'])).toEqual(['app', 'init', 'tools']);
  });

  it('takes the file as compose v2 filtered it when no profiles are given', () => {
    expect(activeServices(resolved)).toEqual(['app', 'debug', 'init', 'tools']);
  });

  it('reads replicas only for a replicated service, as compose 1.29 does', () => {
    const text = 'services:\n  a:\n    image: x\n    deploy:\n      mode: global\n      replicas: 0\n  b:\n    image: x\n    deploy:\n      replicas: 0\n';
    expect(activeServices(text, [])).toEqual(['a']);
  });
});
