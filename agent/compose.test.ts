import { describe, expect, it } from 'vitest';
import type { ComposeTarget, ServiceState } from './compose-runner.js';
import { assessHealth, composeEnv, outputTail, parseInspect, waitHealthy } from './compose.js';

const svc = (service: string, state: string, health?: ServiceState['health']): ServiceState => ({
  service,
  container: `p-${service}-1`,
  state,
  image: 'img:v1',
  ...(health ? { health } : {}),
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
        State: { Status: 'running', Health: { Status: 'healthy' } },
      },
      {
        Id: 'b',
        Name: '/p_db_1',
        Config: { Image: 'r/db:1', Labels: { 'com.docker.compose.service': 'db' } },
        State: { Status: 'exited' },
      },
      {
        Id: 'c',
        Name: '/p_web_run_1',
        Config: { Image: 'r/web:v2', Labels: { 'com.docker.compose.service': 'web', 'com.docker.compose.oneoff': 'True' } },
        State: { Status: 'running' },
      },
    ]);
    expect(parseInspect(json)).toEqual([
      { service: 'db', container: 'p_db_1', state: 'exited', image: 'r/db:1' },
      { service: 'web', container: 'p-web-1', state: 'running', health: 'healthy', image: 'r/web:v2' },
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
      'cache',
    ]);
    expect(result.ok).toBe(false);
    expect(result.detail).toBe('1/4 healthy; cache has no container, web starting, db exited');
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

  it('reports a stack still starting at the timeout as not ok', async () => {
    const runner = scripted([[svc('web', 'running', 'starting')]]);
    const result = await waitHealthy(runner, target, { timeoutMs: 30, pollMs: 5 });
    expect(result.ok).toBe(false);
    expect(result.detail).toBe('0/1 healthy; web starting (after 30 ms)');
  });
});
