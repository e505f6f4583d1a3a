import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['renderer/**/*.test.ts', 'agent/**/*.test.ts', 'test/**/*.test.ts', 'scripts/**/*.test.ts'],
    // Integration tests start real servers (git, dockerd, registry) on a 2-core machine.
    testTimeout: 120_000,
    hookTimeout: 180_000,
  },
});
