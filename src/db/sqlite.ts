import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Db, Statement } from './sql.js';
import { sqliteKysely, type AsyncDb } from './async.js';

/** better-sqlite3 behind the Db interface: statements are the native ones, nothing is copied. */
export class SqliteDb implements Db {
  readonly dialect = 'sqlite' as const;
  readonly raw: Database.Database;
  readonly describe: string;

  constructor(file: string) {
    if (file !== ':memory:') mkdirSync(path.dirname(file), { recursive: true });
    this.raw = new Database(file);
    this.describe = `sqlite:${file}`;
    this.raw.pragma('journal_mode = WAL');
    this.raw.pragma('foreign_keys = ON');
    this.raw.pragma('busy_timeout = 5000');
    this.raw.pragma('synchronous = NORMAL');
  }

  prepare(sql: string): Statement {
    return this.raw.prepare(sql) as unknown as Statement;
  }

  exec(sql: string): void {
    this.raw.exec(sql);
  }

  transaction<F extends (...args: any[]) => any>(fn: F): F {
    return this.raw.transaction(fn) as unknown as F;
  }

  private kysely: AsyncDb | null = null;

  get async(): AsyncDb {
    this.kysely ??= sqliteKysely(this.raw);
    return this.kysely;
  }

  close(): void {
    // Not kysely.destroy(): the handle is this object's, and closing it is enough.
    if (this.raw.open) this.raw.close();
  }
}
