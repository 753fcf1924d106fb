import { defineConfig } from 'vitest/config';

// Every run also writes a JSON report; .ci/run reads its totals.
export default defineConfig({
  test: {
    pool: 'forks',
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results/vitest.json' },
    maxWorkers: 2,
  },
});
