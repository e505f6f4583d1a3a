// The compose runner on the real engine: a private dockerd and a loopback registry
// started once per run by test/support/global-setup-docker.ts.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { ComposeStepError } from '../renderer/core/errors.js';
import { docker } from '../test/support/images.js';
import type { ComposeTarget } from './compose-runner.js';
import { createComposeRunner, detectComposeCommand, waitHealthy } from './compose.js';

const ctx = inject('docker');
const client = { host: ctx.host, dockerConfig: ctx.dockerConfig };
const image = ctx.testImage.repository;

function composeFile(opts: { healthcheck?: string[]; extraEnv?: string } = {}): string {
  return [
    'services:',
    '  app:',
    `    image: ${image}:\${IMAGE_TAG}`,
    '    init: true',
    '    network_mode: none',
    '    command: ["sleep", "3600"]',
    '    environment:',
    '      TOKEN_SEEN: ${FLOTILLA_GITHUB_TOKEN:-absent}',
    '    healthcheck:',
    `      test: ${JSON.stringify(opts.healthcheck ?? ['CMD', 'test', '-f', '/VERSION'])}`,
    '      interval: 1s',
    '      timeout: 2s',
    '      retries: 2',
    '',
  ].join('\n');
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A stack folder with docker-compose.yml and .env, brought down and removed after the test. */
async function stack(files: { compose: string; env: string }): Promise<ComposeTarget> {
  const dir = await mkdtemp(join(process.env.FLOTILLA_TEST_RUN_DIR ?? tmpdir(), 'stack-'));
  await writeFile(join(dir, 'docker-compose.yml'), files.compose);
  await writeFile(join(dir, '.env'), files.env);
  const target = { dir, project: `flotilla-t${Math.random().toString(36).slice(2, 8)}` };
  cleanups.push(async () => {
    await createComposeRunner({ dockerHost: ctx.host, env: { ...process.env, DOCKER_CONFIG: ctx.dockerConfig } })
      .down(target)
      .catch(() => {});
    await rm(dir, { recursive: true, force: true });
  });
  return target;
}

function runnerWith(env: Record<string, string | undefined>) {
  return createComposeRunner({ dockerHost: ctx.host, env: { ...env, DOCKER_CONFIG: ctx.dockerConfig } });
}

async function runningVersion(container: string): Promise<string> {
  return (await docker(['exec', container, 'cat', '/VERSION'], client)).trim();
}

describe('compose runner on the real engine', () => {
  beforeAll(async () => {
    // The shared test image holds both tags in the loopback registry.
    expect(ctx.testImage.tags).toEqual(['v1', 'v2']);
  });

  it('detects a compose command that this host can run', async () => {
    const command = await detectComposeCommand({ env: { ...process.env, DOCKER_HOST: ctx.host } });
    expect([['docker', 'compose'], ['docker-compose']]).toContainEqual(command);
  });

  it('pulls, brings up and waits for a healthy one-service stack running the tag from .env', async () => {
    const target = await stack({ compose: composeFile(), env: 'IMAGE_TAG=v2\n' });
    const runner = runnerWith(process.env);

    await runner.config(target);
    await runner.pull(target);
    await runner.up(target);
    const health = await waitHealthy(runner, target, { timeoutMs: 60_000, pollMs: 250, expectedServices: ['app'] });

    expect(health.ok).toBe(true);
    expect(health.detail).toBe('1/1 healthy');
    expect(health.services).toHaveLength(1);
    const [app] = health.services;
    expect(app).toMatchObject({ service: 'app', state: 'running', health: 'healthy', image: `${image}:v2` });
    expect(await runningVersion(app!.container)).toBe('v2');
  });

  it('fails at pull, naming the problem, when the tag is not in the registry', async () => {
    const target = await stack({ compose: composeFile(), env: 'IMAGE_TAG=v9-missing\n' });
    const runner = runnerWith(process.env);

    const error = await runner.pull(target).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(ComposeStepError);
    const stepError = error as ComposeStepError;
    expect(stepError.step).toBe('pull');
    expect(stepError.outputTail).toMatch(/manifest unknown|not found/i);
    expect(stepError.outputTail).toContain('v9-missing');
    expect(stepError.outputTail.split('\n').length).toBeLessThanOrEqual(10);
  });

  it('reports an invalid compose file at the config step', async () => {
    const target = await stack({ compose: 'services:\n  app:\n    image: [not, a, string]\n', env: '' });
    await expect(runnerWith(process.env).config(target)).rejects.toMatchObject({ step: 'config' });
  });

  it("keeps the agent's variables away from compose and the container", async () => {
    const target = await stack({ compose: composeFile(), env: 'IMAGE_TAG=v1\n' });
    // Both would win over .env and the compose defaults if they reached compose.
    const agentEnv = { ...process.env, FLOTILLA_GITHUB_TOKEN: 'ghp_must_not_leak_0123456789', IMAGE_TAG: 'v2' };
    const runner = runnerWith(agentEnv);

    await runner.up(target);
    const health = await waitHealthy(runner, target, { timeoutMs: 60_000, pollMs: 250 });
    expect(health.ok).toBe(true);
    const container = health.services[0]!.container;

    expect(await runningVersion(container)).toBe('v1');
    expect((await docker(['exec', container, 'sh', '-c', 'echo "$TOKEN_SEEN"'], client)).trim()).toBe('absent');
    const inspected = await docker(['inspect', '--format', '{{json .Config.Env}}', container], client);
    expect(inspected).not.toContain('ghp_must_not_leak');
  });

  it('reports a stack whose healthcheck fails as not ok, naming the unhealthy service', async () => {
    const target = await stack({ compose: composeFile({ healthcheck: ['CMD', 'false'] }), env: 'IMAGE_TAG=v1\n' });
    const runner = runnerWith(process.env);

    await runner.up(target);
    const health = await waitHealthy(runner, target, { timeoutMs: 60_000, pollMs: 250 });

    expect(health.ok).toBe(false);
    expect(health.services[0]).toMatchObject({ service: 'app', state: 'running', health: 'unhealthy' });
    expect(health.detail).toBe('0/1 healthy; app unhealthy');
  });
});
