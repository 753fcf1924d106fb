// PostgreSQL for the scale-out tests. .ci/run starts a throwaway server (scripts/pg-temp.sh) and
// exports FACTORY_TEST_PG_URL; without it these tests are skipped with a note. Every test file gets
// its own database, dropped at the end, so files can run in parallel.
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const PG_URL = process.env.FACTORY_TEST_PG_URL ?? '';
export const hasPg = PG_URL !== '';
export const PG_SKIP_NOTE = hasPg ? '' : ' (skipped: set FACTORY_TEST_PG_URL, as .ci/run does, to run it against PostgreSQL)';

export interface TestDatabase {
  url: string;
  name: string;
  /** Runs one query on the test database (for assertions). */
  query<T extends pg.QueryResultRow = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  drop(): Promise<void>;
}

/** A new empty database on `serverUrl` (default the test server), for one test file or benchmark scenario. */
export async function freshDatabase(prefix = 'factory_t', serverUrl = PG_URL): Promise<TestDatabase> {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const u = new URL(serverUrl);
  u.pathname = `/${name}`;
  const url = u.toString();
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  return {
    url,
    name,
    async query<T extends pg.QueryResultRow>(sql: string, params: unknown[] = []) {
      return (await client.query<T>(sql, params)).rows;
    },
    async drop() {
      await client.end().catch(() => {});
      const a = new pg.Client({ connectionString: serverUrl });
      await a.connect();
      try {
        await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await a.end();
      }
    },
  };
}
