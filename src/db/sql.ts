// The one database interface the repositories use, whatever the engine underneath.
//
// It is the synchronous subset of better-sqlite3 that Factory needs: prepare → get/all/run, exec and
// transaction. SQLite (the embedded default) implements it directly; PostgreSQL implements it through
// a worker thread that holds the connection (see pg-sync.ts), so the orchestrator, the queue and the
// routes never know which engine they run on. SQL text is shared where both engines accept it;
// repositories branch on `dialect` only for the few statements that must differ.

import type { AsyncDb } from './async.js';

export type Dialect = 'sqlite' | 'postgres';

export interface RunResult {
  changes: number;
}

export interface Statement {
  /** The first row, or undefined. Parameters: positional (`?`) values, or one object for `@name`. */
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
  run(...params: unknown[]): RunResult;
}

export interface Db {
  readonly dialect: Dialect;
  prepare(sql: string): Statement;
  /** Runs one or more statements without parameters (migrations, DDL). */
  exec(sql: string): void;
  /** Wraps fn so that it runs in one transaction (nested calls become savepoints). */
  transaction<F extends (...args: any[]) => any>(fn: F): F;
  close(): void;
  /** The same database behind the asynchronous query builder (see async.ts). */
  readonly async: AsyncDb;
  /** Where the data lives, for messages; never carries a password. */
  readonly describe: string;
}
