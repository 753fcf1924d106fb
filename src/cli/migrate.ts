// `factory migrate`: applies pending database migrations now (Factory also does it at every start).
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../config.js';
import { listMigrations, openDb } from '../db/connection.js';
import { DataDirLockedError, lockDataDir } from '../lock.js';

export function migrateCommand(print: (line: string) => void, opts: { asRoot?: boolean } = {}): number {
  const config = loadConfig();
  const dir = config.data_dir;
  // Files created by root would be unreadable for the service afterwards.
  if (process.getuid?.() === 0 && !opts.asRoot && existsSync(dir) && statSync(dir).uid !== 0) {
    print(`factory migrate: ${dir} belongs to uid ${statSync(dir).uid}; run this as the service user (sudo -u factory factory migrate), or pass --as-root`);
    return 1;
  }
  let unlock: () => void;
  try {
    // Never migrate under a running server: it would keep using the schema it started with.
    unlock = lockDataDir(dir);
  } catch (err) {
    if (err instanceof DataDirLockedError) {
      print(`factory migrate: ${err.message}. The running server applied migrations when it started; stop it (systemctl stop factory) to migrate by hand.`);
      return 1;
    }
    throw err;
  }
  try {
    const file = path.join(dir, 'factory.db');
    const db = openDb(file);
    try {
      const rows = db.prepare('SELECT version, name, applied_at FROM schema_migrations ORDER BY version').all() as Array<{ version: number; name: string; applied_at: string }>;
      const known = Math.max(0, ...listMigrations().map((m) => m.version));
      const current = rows.length ? rows[rows.length - 1]!.version : 0;
      for (const r of rows) print(`  ${String(r.version).padStart(4, '0')} ${r.name.replace(/^\d+_/, '')} (applied ${r.applied_at})`);
      print(`${file}: schema version ${current}${current === known ? ' (up to date)' : ` (this build knows ${known})`}`);
    } finally {
      db.close();
    }
  } finally {
    unlock();
  }
  return 0;
}
