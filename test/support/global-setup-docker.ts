// globalSetup of the `docker` vitest project: one private dockerd and one loopback
// registry per test run, shared by every *.docker.test.ts file (they run one file
// at a time). Tests read the addresses with `inject('docker')`.

import type { TestProject } from 'vitest/node';
import { startDockerEngine, stopDockerEngine, type DockerEngine } from './docker-engine.js';
import { pushTestImage } from './images.js';
import { startRegistry, stopRegistry, type Registry } from './registry.js';

export interface DockerTestContext {
  /** `unix://...`: the private engine's DOCKER_HOST. */
  host: string;
  dockerConfig: string;
  /** `127.0.0.1:PORT` of the loopback registry. */
  registry: string;
  /** A busybox image pushed under two tags, `/VERSION` holding the tag. */
  testImage: { repository: string; tags: string[] };
}

declare module 'vitest' {
  export interface ProvidedContext {
    docker: DockerTestContext;
  }
}

export const TEST_IMAGE_NAME = 'flotilla-test/app';
export const TEST_IMAGE_TAGS = ['v1', 'v2'];

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let engine: DockerEngine | undefined;
  let registry: Registry | undefined;
  const teardown = async (): Promise<void> => {
    if (registry) await stopRegistry(registry);
    if (engine) await stopDockerEngine(engine);
  };
  try {
    engine = await startDockerEngine();
    registry = await startRegistry();
    await pushTestImage(registry.address, TEST_IMAGE_NAME, TEST_IMAGE_TAGS, {
      host: engine.host,
      dockerConfig: engine.dockerConfig,
    });
  } catch (err) {
    await teardown();
    throw err;
  }
  project.provide('docker', {
    host: engine.host,
    dockerConfig: engine.dockerConfig,
    registry: registry.address,
    testImage: { repository: `${registry.address}/${TEST_IMAGE_NAME}`, tags: TEST_IMAGE_TAGS },
  });
  return teardown;
}
