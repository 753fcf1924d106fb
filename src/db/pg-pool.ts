// The Kysely instance under PostgreSQL: a real connection pool (pg.Pool). A statement that waits on
// a lock or a slow network waits on a socket, and the event loop keeps serving HTTP, SSE and timers
// meanwhile. Loaded only for a postgres:// database (connection.ts imports it on demand).
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { preparingPool } from './pg-prepared.js';
import type { Tables } from './schema.js';

// BIGINT and NUMERIC arrive as strings by default; Factory's ids, counts and costs fit a double.
pg.types.setTypeParser(20, (v) => Number(v));
pg.types.setTypeParser(1700, (v) => Number(v));

export interface PgPoolOptions {
  statementTimeoutMs: number;
  applicationName: string;
  /** Connections at most (default 6: Factory's queries are short; a lock wait holds one, see StreamPublisher). */
  max?: number;
}

export function postgresKysely(url: string, opts: PgPoolOptions): { db: Kysely<Tables>; pool: pg.Pool } {
  const pool = new pg.Pool({
    connectionString: url,
    application_name: opts.applicationName,
    statement_timeout: opts.statementTimeoutMs,
    max: opts.max ?? 6,
    // Kept open while idle: opening one costs several round trips, which a slow network makes
    // long, and a request (/health) should not pay for it.
    min: opts.max ?? 6,
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
  });
  // An idle connection the server dropped: the pool discards it and opens another on demand.
  pool.on('error', () => {});
  // One that drops while checked out (between a transaction's statements) must not become an
  // uncaught 'error' event: its next query fails instead, and the pool discards it on release.
  pool.on('connect', (client) => client.on('error', () => {}));
  return { db: new Kysely<Tables>({ dialect: new PostgresDialect({ pool: preparingPool(pool) }) }), pool };
}
