import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Db, Dialect } from './sql.js';
import { SqliteDb } from './sqlite.js';
import { PgSyncDb, type PgOptions } from './pg-sync.js';

export type { Db, Dialect } from './sql.js';

const MIGRATIONS_ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'migrations');

export class SchemaTooNewError extends Error {
  override name = 'SchemaTooNewError';
}

export function isPostgresUrl(target: string): boolean {
  return /^postgres(ql)?:\/\//i.test(target);
}

/** Opens a SQLite file (the default) or a postgres:// URL, then applies pending migrations. */
export function openDb(target: string, opts: PgOptions & { migrate?: boolean } = {}): Db {
  const db: Db = isPostgresUrl(target) ? new PgSyncDb(target, opts) : new SqliteDb(target.replace(/^sqlite:/, ''));
  try {
    if (opts.migrate !== false) migrate(db);
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

interface Migration {
  version: number;
  name: string;
  sql: string;
}

export function listMigrations(dialect: Dialect = 'sqlite', dir = path.join(MIGRATIONS_ROOT, dialect)): Migration[] {
  return readdirSync(dir)
    .filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((f) => ({ version: Number(f.slice(0, 4)), name: f.replace(/\.sql$/, ''), sql: readFileSync(path.join(dir, f), 'utf8') }));
}

// Any number on PostgreSQL: it only has to be the same in every Factory process.
const MIGRATE_LOCK = 7_140_301;

/** The schema version applied to this database (0 for a new one). */
export function schemaVersion(db: Db): number {
  ensureTable(db);
  return (db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number | null }).v ?? 0;
}

function ensureTable(db: Db): void {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`);
}

// Applies each pending migration in its own transaction; refuses a database newer than this code.
// On PostgreSQL several processes may start at once: an advisory lock lets one of them migrate.
export function migrate(db: Db, migrations = listMigrations(db.dialect)): number[] {
  if (db.dialect === 'postgres') db.prepare('SELECT pg_advisory_lock(?)').get(MIGRATE_LOCK);
  try {
    ensureTable(db);
    const applied = new Set((db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]).map((r) => r.version));
    const newest = Math.max(0, ...applied);
    const known = Math.max(0, ...migrations.map((m) => m.version));
    if (newest > known) {
      throw new SchemaTooNewError(
        `database schema version ${newest} is newer than this Factory build knows (${known}); upgrade Factory or restore a backup of the database`,
      );
    }
    const done: number[] = [];
    for (const m of migrations) {
      if (applied.has(m.version)) continue;
      db.transaction(() => {
        db.exec(m.sql);
        db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(
          m.version,
          m.name,
          new Date().toISOString(),
        );
      })();
      done.push(m.version);
    }
    return done;
  } finally {
    if (db.dialect === 'postgres') db.prepare('SELECT pg_advisory_unlock(?)').get(MIGRATE_LOCK);
  }
}
