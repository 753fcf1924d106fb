import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Db, Dialect } from './sql.js';
import type { AsyncDb } from './query.js';
import { SqliteDb } from './sqlite.js';
import { PostgresDb, type PgOptions } from './postgres.js';

export type { Db, Dialect } from './sql.js';

const MIGRATIONS_ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'migrations');

export class SchemaTooNewError extends Error {
  override name = 'SchemaTooNewError';
}

export function isPostgresUrl(target: string): boolean {
  return /^postgres(ql)?:\/\//i.test(target);
}

/** Opens a SQLite file (the default) or a postgres:// URL, then applies pending migrations. */
export async function openDb(target: string, opts: PgOptions & { migrate?: boolean } = {}): Promise<Db> {
  const db: Db = isPostgresUrl(target) ? await PostgresDb.open(target, opts) : new SqliteDb(target.replace(/^sqlite:/, ''));
  try {
    if (opts.migrate !== false) await migrate(db);
  } catch (err) {
    await db.close();
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
export async function schemaVersion(db: Db): Promise<number> {
  await ensureTable(db);
  return (await db.get<{ v: number | null }>('SELECT MAX(version) AS v FROM schema_migrations'))?.v ?? 0;
}

async function ensureTable(db: AsyncDb): Promise<void> {
  await db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`);
}

// Applies each pending migration in its own transaction (SQLite) or all of them in one (PostgreSQL,
// where DDL is transactional: an upgrade lands whole or not at all); refuses a database newer than
// this code. On PostgreSQL several processes may start at once: the transaction's advisory lock lets
// one of them migrate while the others wait, then find nothing left to do.
export async function migrate(db: Db, migrations = listMigrations(db.dialect)): Promise<number[]> {
  if (db.dialect === 'sqlite') return migrateOn(db, migrations);
  return db.transaction(async (tx) => {
    await tx.get('SELECT pg_advisory_xact_lock(?)', MIGRATE_LOCK);
    return migrateOn(tx, migrations);
  });
}

async function migrateOn(db: AsyncDb, migrations: Migration[]): Promise<number[]> {
  await ensureTable(db);
  const applied = new Set((await db.all<{ version: number }>('SELECT version FROM schema_migrations')).map((r) => Number(r.version)));
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
    await db.transaction(async (tx) => {
      await tx.exec(m.sql);
      await tx.run(
        'INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)',
        m.version,
        m.name,
        new Date().toISOString(),
      );
    });
    done.push(m.version);
  }
  return done;
}
