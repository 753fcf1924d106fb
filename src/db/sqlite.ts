import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Db } from './sql.js';
import { sqliteKysely } from './async.js';
import { KyselyDb } from './query.js';
import { startCheckpointer, type Checkpointer } from './sqlite-checkpointer.js';

/**
 * SQLite (the embedded default): better-sqlite3 under Kysely's SQLite driver. Its calls are
 * synchronous disk I/O on a local file, as short as a system call; Kysely's one-connection mutex
 * keeps a transaction's statements together while others wait their turn.
 */
export class SqliteDb extends KyselyDb implements Db {
  readonly describe: string;
  private readonly raw: Database.Database;
  private readonly checkpointer: Checkpointer | null;

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
    this.checkpointer = file === ':memory:' ? null : this.checkpointOffThread(file);
  }

  /** Checkpoints move to their own thread (see sqlite-checkpointer.ts); on its failure they come back. */
  private checkpointOffThread(file: string): Checkpointer {
    const raw = this.raw;
    raw.pragma('wal_autocheckpoint = 0');
    return startCheckpointer(file, () => {
      if (raw.open) raw.pragma('wal_autocheckpoint = 1000');
    });
  }

  async close(): Promise<void> {
    // Not kysely.destroy() first: it waits for nothing that the handle's close does not end too.
    await this.checkpointer?.close();
    if (this.raw.open) this.raw.close();
  }
}
