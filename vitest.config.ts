import { defineConfig } from 'vitest/config';

// Files that also run against PostgreSQL (project "postgres", when FACTORY_TEST_PG_URL is set, as
// .ci/run does): the API, the board and the agent and workflow flows, on a fresh database each.
const onPostgres = [
  'test/tasks-api.test.ts',
  'test/last-output.test.ts',
  'test/messages-api.test.ts',
  'test/sse.test.ts',
  'test/agent-e2e.test.ts',
  'test/workflows-e2e.test.ts',
];

// Every run also writes a JSON report; .ci/run reads its totals.
export default defineConfig({
  test: {
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results/vitest.json' },
    maxWorkers: 2,
    projects: [
      { extends: true, test: { name: 'sqlite', include: ['test/**/*.test.ts'] } },
      ...(process.env.FACTORY_TEST_PG_URL
        ? [{ extends: true as const, test: { name: 'postgres', include: onPostgres, env: { FACTORY_TEST_DIALECT: 'postgres' } } }]
        : []),
    ],
  },
});
