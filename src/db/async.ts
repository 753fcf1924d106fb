// The Kysely instance under each engine (query.ts builds the repositories' interface on it).
//
// PostgreSQL gets a real connection pool (pg.Pool): a statement that waits on a lock or a slow
// network waits on a socket, and the event loop keeps serving HTTP, SSE and timers meanwhile.
// SQLite gets the better-sqlite3 handle, behind Kysely's one-connection mutex.
import { Kysely, PostgresDialect, SqliteDialect } from 'kysely';
import type Database from 'better-sqlite3';
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

export function sqliteKysely(raw: Database.Database): Kysely<Tables> {
  // Kysely prepares every statement again; better-sqlite3 statements are reusable, and preparing
  // costs more than running most of Factory's. Kept per SQL text (bounded: text built from lists
  // of ids varies).
  const cache = new Map<string, Database.Statement>();
  const database = {
    close: () => raw.close(),
    prepare(text: string): Database.Statement {
      let st = cache.get(text);
      if (!st) {
        st = raw.prepare(text);
        if (cache.size >= 500) cache.clear();
        cache.set(text, st);
      }
      return st;
    },
  };
  return new Kysely<Tables>({ dialect: new SqliteDialect({ database }) });
}
