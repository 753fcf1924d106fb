import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Db } from './sql.js';
import { sqliteKysely } from './async.js';
import { KyselyDb } from './query.js';

/**
 * SQLite (the embedded default): better-sqlite3 under Kysely's SQLite driver. Its calls are
 * synchronous disk I/O on a local file, as short as a system call; Kysely's one-connection mutex
 * keeps a transaction's statements together while others wait their turn.
 */
export class SqliteDb extends KyselyDb implements Db {
  readonly describe: string;
  private readonly raw: Database.Database;

  constructor(file: string) {
    if (file !== ':memory:') mkdirSync(path.dirname(file), { recursive: true });
    const raw = new Database(file);
    raw.pragma('journal_mode = WAL');
    raw.pragma('foreign_keys = ON');
    raw.pragma('busy_timeout = 5000');
    raw.pragma('synchronous = NORMAL');
    super(sqliteKysely(raw), 'sqlite', (script) => raw.exec(script));
    this.raw = raw;
    this.describe = `sqlite:${file}`;
  }

  async close(): Promise<void> {
    // Not kysely.destroy() first: it waits for nothing that the handle's close does not end too.
    if (this.raw.open) this.raw.close();
  }
}
