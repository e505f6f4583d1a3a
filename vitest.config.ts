import { configDefaults, defineConfig } from 'vitest/config';

// Where test files live; `*.docker.test.ts` files need the real Docker engine.
const testFiles = ['renderer/**/*.test.ts', 'agent/**/*.test.ts', 'test/**/*.test.ts', 'scripts/**/*.test.ts'];
const dockerTestFiles = testFiles.map((glob) => glob.replace(/\*\.test\.ts$/, '*.docker.test.ts'));

export default defineConfig({
  test: {
    // Integration tests start real servers (git, dockerd, registry) on a 2-core machine.
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // Stopping the private dockerd stops its containers first.
    teardownTimeout: 60_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: testFiles,
          exclude: [...configDefaults.exclude, '**/*.docker.test.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'docker',
          include: dockerTestFiles,
          // One engine per run (started by the globalSetup, only when a docker file is selected);
          // files take turns on it so compose projects and timings do not interfere.
          globalSetup: ['test/support/global-setup-docker.ts'],
          fileParallelism: false,
        },
      },
    ],
  },
});
