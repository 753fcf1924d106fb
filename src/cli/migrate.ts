// `factory migrate`: applies pending database migrations now (Factory also does it at every start).
import { existsSync, statSync } from 'node:fs';
import { loadConfig, secretValues } from '../config.js';
import { listMigrations, openDb, SchemaTooNewError, type Db } from '../db/connection.js';
import { DataDirLockedError, lockDataDir } from '../lock.js';
import { registerSecrets } from '../secrets.js';

export async function migrateCommand(print: (line: string) => void, opts: { asRoot?: boolean } = {}): Promise<number> {
  const config = loadConfig();
  // Error messages go through the scrubber in runCli; it must know the database password.
  registerSecrets(secretValues(config));
  const dir = config.data_dir;
  // Files created by root would be unreadable for the service afterwards.
  if (process.getuid?.() === 0 && !opts.asRoot && existsSync(dir) && statSync(dir).uid !== 0) {
    print(
      `factory migrate: ${dir} belongs to uid ${statSync(dir).uid}; run this as the service user (sudo -u factory factory migrate), or pass --as-root`,
    );
    return 1;
  }
  let unlock: () => void;
  try {
    // Never migrate under a running server: it would keep using the schema it started with. (With
    // PostgreSQL this sees only the server of this data directory, not those on other hosts.)
    unlock = lockDataDir(dir);
  } catch (err) {
    if (err instanceof DataDirLockedError) {
      print(
        `factory migrate: ${err.message}. The running server applied migrations when it started; stop it (systemctl stop factory) to migrate by hand.`,
      );
      return 1;
    }
    throw err;
  }
  try {
    // SQLite file or postgres:// URL; only `describe` (never carrying a password) is printed.
    const { url, dialect, describe, statement_timeout_seconds: timeout } = config.database;
    let db: Db;
    try {
      db = await openDb(url, { applicationName: 'factory migrate', statementTimeoutMs: timeout * 1000 });
    } catch (err) {
      if (err instanceof SchemaTooNewError) throw err;
      throw new Error(`could not open ${describe}: ${(err as Error).message}`, { cause: err });
    }
    try {
      const rows = await db.all<{ version: number; name: string; applied_at: string }>(
        'SELECT version, name, applied_at FROM schema_migrations ORDER BY version',
      );
      const known = Math.max(0, ...listMigrations(dialect).map((m) => m.version));
      const current = rows.length ? rows[rows.length - 1]!.version : 0;
      for (const r of rows) print(`  ${String(r.version).padStart(4, '0')} ${r.name.replace(/^\d+_/, '')} (applied ${r.applied_at})`);
      print(`${describe}: schema version ${current}${current === known ? ' (up to date)' : ` (this build knows ${known})`}`);
    } finally {
      await db.close();
    }
  } finally {
    unlock();
  }
  return 0;
}
