import type pg from 'pg';
import type { Db } from './sql.js';
import { postgresKysely } from './pg-pool.js';
import { KyselyDb } from './query.js';
import { redactDbUrl } from '../config.js';

export interface PgOptions {
  /** How long one statement may run on the server (statement_timeout). */
  statementTimeoutMs?: number;
  applicationName?: string;
  /** Connections at most in this process's pool. */
  maxConnections?: number;
}

/**
 * PostgreSQL through a pg.Pool: a statement that waits on a lock or a slow network waits on a
 * socket, and the event loop keeps serving HTTP, SSE and timers meanwhile.
 */
export class PostgresDb extends KyselyDb implements Db {
  readonly describe: string;
  private closing: Promise<void> | null = null;

  private constructor(
    url: string,
    private readonly pool: pg.Pool,
    kysely: ConstructorParameters<typeof KyselyDb>[0],
  ) {
    super(kysely, 'postgres');
    this.describe = redactDbUrl(url);
  }

  /** Opens the pool and proves the server answers; an unreachable one fails here, with the reason. */
  static async open(url: string, opts: PgOptions = {}): Promise<PostgresDb> {
    const { db, pool } = postgresKysely(url, {
      statementTimeoutMs: opts.statementTimeoutMs ?? 10_000,
      applicationName: opts.applicationName ?? 'factory',
      max: opts.maxConnections,
    });
    const pgDb = new PostgresDb(url, pool, db);
    try {
      await pgDb.get('SELECT 1 AS one');
      await pgDb.warm();
    } catch (err) {
      await pgDb.close();
      const reason = err instanceof Error ? err.message : String(err);
      throw new Error(`cannot reach PostgreSQL at ${pgDb.describe}: ${reason}`, { cause: err });
    }
    return pgDb;
  }

  /** Opens every connection of the pool now, so none is opened while a request waits. */
  private async warm(): Promise<void> {
    const clients = await Promise.all(Array.from({ length: this.pool.options.max }, () => this.pool.connect()));
    for (const c of clients) c.release();
  }

  close(): Promise<void> {
    this.closing ??= this.pool.end().catch(() => {});
    return this.closing;
  }
}
