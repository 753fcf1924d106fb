// The Kysely instance under SQLite (query.ts builds the repositories' interface on it): the
// better-sqlite3 handle, behind Kysely's one-connection mutex. PostgreSQL's is in pg-pool.ts, which
// only a postgres:// database loads (pg is never imported on SQLite).
import { Kysely, SqliteDialect } from 'kysely';
import type Database from 'better-sqlite3';
import type { Tables } from './schema.js';

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
