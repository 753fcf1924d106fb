// `factory migrate-db --from <source> --to <target> [--batch N]`: copies every row of one Factory
// database into another, empty one. The usual case is moving an SQLite installation to PostgreSQL;
// any direction works (sqlite:<file> or postgres://… on either side).
//
// Both ends are first brought to the current schema by openDb, so their tables and columns match.
// Tables and columns are discovered from the databases themselves (not hard-coded), copied parents
// before children with their ids, and the whole copy is one transaction on the target: a failure
// leaves the target as empty as it was, so the command can simply be run again. Before the commit
// the row counts of every table are compared; afterwards PostgreSQL identity sequences continue
// after the copied ids (or after the source's high-water mark, so deleted ids are not reused).
import { parseOptions } from './args.js';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { redactDbUrl } from '../config.js';
import { isPostgresUrl, openDb, schemaVersion, SchemaTooNewError, type Db, type Dialect } from '../db/connection.js';
import type { AsyncDb } from '../db/query.js';
import { DataDirLockedError, lockDataDir } from '../lock.js';
import { registerSecrets, scrub } from '../secrets.js';
import { Catalog, copyOrder, q, type ForeignKey, type TablePlan } from './db-catalog.js';

export const MIGRATE_DB_USAGE =
  'usage: factory migrate-db --from <sqlite:FILE | postgres://…> --to <sqlite:FILE | postgres://…> [--batch N]';

const DEFAULT_BATCH = 1000;
/** Bound parameters per INSERT: SQLite builds may cap at 999, PostgreSQL at 65535. */
const MAX_PARAMS: Record<Dialect, number> = { sqlite: 999, postgres: 30_000 };

export interface MigrateDbArgs {
  from: string;
  to: string;
  batch: number;
}

/** Parses `--from X --to Y [--batch N]` (also `--from=X`); a string is the usage error. */
export function parseMigrateDbArgs(args: string[]): MigrateDbArgs | string {
  const parsed = parseOptions(args, { from: { type: 'string' }, to: { type: 'string' }, batch: { type: 'string' } });
  if (typeof parsed === 'string') return parsed;
  const values = parsed as { from?: string; to?: string; batch?: string };
  if (!values.from) return '--from is required';
  if (!values.to) return '--to is required';
  let batch = DEFAULT_BATCH;
  if (values.batch !== undefined) {
    batch = Number(values.batch);
    if (!/^\d+$/.test(values.batch) || batch < 1 || batch > 100_000)
      return `--batch must be a whole number from 1 to 100000, got "${values.batch}"`;
  }
  return { from: values.from, to: values.to, batch };
}

interface Endpoint {
  target: string;
  dialect: Dialect;
  describe: string;
  file?: string;
}

/** sqlite:<file>, a bare file path (relative to `cwd`) or a postgres:// URL. */
function endpoint(spec: string, cwd: string): Endpoint | string {
  if (isPostgresUrl(spec)) return { target: spec, dialect: 'postgres', describe: redactDbUrl(spec) };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(spec) && !/^sqlite:/i.test(spec)) {
    return `unsupported database "${scrub(spec.replace(/\/\/[^@/]*@/, '//***@'))}": expected sqlite:<file> or postgres://…`;
  }
  const file = path.resolve(cwd, spec.replace(/^sqlite:/i, ''));
  return { target: file, dialect: 'sqlite', describe: `sqlite:${file}`, file };
}

function passwordOf(url: string): string {
  try {
    return decodeURIComponent(new URL(url).password);
  } catch {
    return '';
  }
}

interface Fixup {
  table: string;
  key: string;
  keyValue: unknown;
  column: string;
  value: unknown;
}

class CopyError extends Error {}

const isNumeric = (v: unknown): v is number | bigint => typeof v === 'number' || typeof v === 'bigint';

export interface MigrateDbIo {
  out: (line: string) => void;
  err: (line: string) => void;
  /** Relative file paths are resolved against this directory (the caller's, before any chdir). */
  cwd?: string;
}

export async function migrateDbCommand(args: string[], io: MigrateDbIo): Promise<number> {
  const { out, err } = io;
  const fail = (msg: string) => {
    err(`factory migrate-db: ${scrub(msg)}`);
    return 1;
  };
  const parsed = parseMigrateDbArgs(args);
  if (typeof parsed === 'string') {
    err(`factory migrate-db: ${scrub(parsed)}\n${MIGRATE_DB_USAGE}`);
    return 2;
  }
  registerSecrets([parsed.from, parsed.to].filter(isPostgresUrl).map(passwordOf));
  const cwd = io.cwd ?? process.cwd();
  const src = endpoint(parsed.from, cwd);
  const dst = endpoint(parsed.to, cwd);
  for (const e of [src, dst]) {
    if (typeof e === 'string') {
      err(`factory migrate-db: ${e}\n${MIGRATE_DB_USAGE}`);
      return 2;
    }
  }
  const source = src as Endpoint;
  const target = dst as Endpoint;

  if (source.file) {
    if (!existsSync(source.file)) return fail(`the source ${source.describe} does not exist`);
    if (!statSync(source.file).isFile()) return fail(`the source ${source.describe} is not a file`);
  }
  if (source.dialect === target.dialect && source.target === target.target) return fail('--from and --to name the same database');

  // The SQLite file of a data directory belongs to the server using it: copy it only while stopped.
  const unlocks: Array<() => void> = [];
  const lockDirs = [...new Set([source.file, target.file].filter((f): f is string => !!f).map((f) => path.dirname(f)))];
  let sourceDb: Db | undefined;
  let targetDb: Db | undefined;
  try {
    for (const dir of lockDirs) {
      try {
        unlocks.push(lockDataDir(dir));
      } catch (e) {
        if (e instanceof DataDirLockedError) {
          return fail(`${e.message} (the service must be stopped while its database is copied: systemctl stop factory)`);
        }
        return fail(`could not lock ${dir}: ${(e as Error).message}`);
      }
    }
    const pgOpts = { applicationName: 'factory migrate-db', statementTimeoutMs: 300_000 };
    try {
      sourceDb = await openDb(source.target, pgOpts);
    } catch (e) {
      if (e instanceof SchemaTooNewError) return fail(`the source ${source.describe}: ${e.message}`);
      return fail(`could not open the source ${source.describe}: ${(e as Error).message}`);
    }
    try {
      targetDb = await openDb(target.target, pgOpts);
    } catch (e) {
      if (e instanceof SchemaTooNewError) return fail(`the target ${target.describe}: ${e.message}`);
      return fail(`could not open the target ${target.describe}: ${(e as Error).message}`);
    }
    return await copyDatabase(sourceDb, targetDb, source, target, parsed.batch, out, err);
  } catch (e) {
    return fail(e instanceof Error ? e.message : String(e));
  } finally {
    await targetDb?.close();
    await sourceDb?.close();
    for (const u of unlocks.reverse()) u();
  }
}

async function copyDatabase(
  sdb: Db,
  tdb: Db,
  source: Endpoint,
  target: Endpoint,
  batch: number,
  out: (l: string) => void,
  err: (l: string) => void,
): Promise<number> {
  const fail = (msg: string) => {
    err(`factory migrate-db: ${scrub(msg)}`);
    return 1;
  };
  const sc = new Catalog(sdb);
  const tc = new Catalog(tdb);
  const sourceTables = await sc.tables();
  const targetTables = await tc.tables();

  // Never merge: ids would collide and a live database would end up with two histories.
  const used: Array<{ t: string; n: number }> = [];
  for (const t of targetTables) {
    const n = await tc.count(t);
    if (n > 0) used.push({ t, n });
  }
  if (used.length) {
    return fail(
      `the target ${target.describe} already holds data (${used.map((r) => `${r.t}: ${r.n} rows`).join(', ')}); ` +
        'migrate-db only fills an empty database and never merges. Nothing was copied. Create a new, empty database and run it again.',
    );
  }
  const missing = sourceTables.filter((t) => !targetTables.includes(t));
  if (missing.length)
    return fail(`the target ${target.describe} has no table ${missing.join(', ')} (source ${source.describe}); nothing was copied`);

  // Dangling references (possible in an SQLite file written with foreign keys off) would abort the copy midway.
  if (sdb.dialect === 'sqlite') {
    const broken = await sdb.all<{ table: string; rowid: number; parent: string }>('PRAGMA foreign_key_check');
    if (broken.length) {
      const sample = broken
        .slice(0, 5)
        .map((b) => `${b.table} rowid ${b.rowid} -> ${b.parent}`)
        .join(', ');
      return fail(
        `the source has ${broken.length} row(s) that reference missing rows (${sample}); repair them (sqlite3 ${source.file} 'PRAGMA foreign_key_check') and run again. Nothing was copied.`,
      );
    }
  }

  const fks = new Map<string, ForeignKey[]>();
  for (const t of sourceTables) fks.set(t, await tc.foreignKeys(t));
  const { order, later } = copyOrder(sourceTables, fks);
  const plans: TablePlan[] = [];
  for (const name of order) {
    const targetCols = await tc.columns(name);
    const targetNames = new Set(targetCols.map((c) => c.name));
    const sourceCols = (await sc.columns(name)).map((c) => c.name);
    const onlySource = sourceCols.filter((c) => !targetNames.has(c));
    if (onlySource.length)
      err(
        `factory migrate-db: note: ${onlySource.map((c) => `${name}.${c}`).join(', ')} exist(s) only in the source and will not be copied`,
      );
    const columns = sourceCols.filter((c) => targetNames.has(c));
    const pk = await sc.primaryKey(name);
    const key = pk.length === 1 && columns.includes(pk[0]!) ? pk[0] : undefined;
    const nullable = new Set(targetCols.filter((c) => !c.notNull).map((c) => c.name));
    const usable = (f: ForeignKey) => key !== undefined && columns.includes(f.column) && nullable.has(f.column);
    plans.push({
      name,
      columns,
      key,
      nullable,
      selfRefs: (fks.get(name) ?? []).filter((f) => f.parent === name && usable(f)),
      laterRefs: (later.get(name) ?? []).filter(usable),
    });
  }

  const version = await schemaVersion(sdb);
  out(`copying ${source.describe} (schema ${version}) to ${target.describe}`);

  const stats = { nul: 0 };
  const counts = new Map<string, number>();
  const copy: { begun: boolean; failure?: string } = { begun: false };
  try {
    // One snapshot of the source for the whole copy (SQLite: one transaction; PostgreSQL: repeatable
    // read, read only). Inside it every source query goes through stx, every target query through tx.
    await sdb.transaction(async (stx) => {
      if (stx.dialect === 'postgres') await stx.run('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY');
      copy.begun = true;
      const ssc = new Catalog(stx);
      try {
        await tdb.transaction(async (tx) => {
          const ttc = new Catalog(tx);
          const fixups: Fixup[] = [];
          for (const plan of plans) {
            let n: number;
            try {
              n = await copyTable(stx, tx, plan, batch, fixups, stats);
            } catch (e) {
              throw new CopyError(`copying ${plan.name} failed: ${(e as Error).message}`);
            }
            counts.set(plan.name, n);
            out(`${plan.name}: ${n} rows`);
          }
          for (const f of fixups) {
            await tx.run(`UPDATE ${q(f.table)} SET ${q(f.column)} = ? WHERE ${q(f.key)} = ?`, f.value, f.keyValue);
          }
          if (tx.dialect === 'postgres') await resetSequences(tx, plans, ssc);
          else await raiseSqliteSequences(tx, plans, ssc);
          // Verified before the commit: a mismatch leaves the target empty.
          const wrong: Array<{ t: string; s: number; d: number }> = [];
          for (const p of plans) {
            const s = await ssc.count(p.name);
            const d = await ttc.count(p.name);
            if (s !== d) wrong.push({ t: p.name, s, d });
          }
          if (wrong.length) {
            throw new CopyError(`row counts differ after copying (${wrong.map((r) => `${r.t}: source ${r.s}, target ${r.d}`).join('; ')})`);
          }
        });
      } catch (e) {
        copy.failure = `${(e as Error).message}; the copy was rolled back, the target is unchanged`;
      }
    });
  } catch (e) {
    // The snapshot could not begin: nothing was tried. Ending it failed: it ends with the connection.
    if (!copy.begun) throw e;
  }
  if (copy.failure !== undefined) return fail(copy.failure);

  // Once more after the commit, as another connection would see it.
  const after: Array<{ t: string; want: number; got: number }> = [];
  for (const p of plans) {
    const want = counts.get(p.name) ?? -1;
    const got = await tc.count(p.name);
    if (want !== got) after.push({ t: p.name, want, got });
  }
  if (after.length)
    return fail(`row counts differ after the commit (${after.map((r) => `${r.t}: copied ${r.want}, target has ${r.got}`).join('; ')})`);
  if (stats.nul) {
    out(`note: ${stats.nul} text value(s) contained NUL characters, which PostgreSQL cannot store; each was replaced with U+FFFD`);
  }
  const total = [...counts.values()].reduce((a, b) => a + b, 0);
  out(`done: ${total} rows in ${plans.length} tables copied from ${source.describe} to ${target.describe}; row counts verified`);
  if (target.dialect === 'postgres') out('next: set FACTORY_DATABASE_URL (or database.url in config.yml) to the target and start Factory');
  return 0;
}

/**
 * SQLite source: a 64-bit integer beyond 2^53 is read as its decimal text, so it is not rounded to a
 * double on the way; the target stores it as the integer again (PostgreSQL parses the text into
 * int8, SQLite's INTEGER affinity converts it back). Every other value is read as it is.
 */
const exactSqlite = (column: string, alias: string) =>
  `CASE WHEN typeof(${column}) = 'integer' AND ${column} NOT BETWEEN -9007199254740991 AND 9007199254740991 ` +
  `THEN CAST(${column} AS TEXT) ELSE ${column} END AS ${alias}`;

/** Copies one table in key order, `batch` rows per read; returns the number of rows written. */
async function copyTable(
  sdb: AsyncDb,
  tdb: AsyncDb,
  plan: TablePlan,
  batch: number,
  fixups: Fixup[],
  stats: { nul: number },
): Promise<number> {
  const cols = plan.columns;
  if (cols.length === 0) return 0;
  const list = cols.map(q).join(', ');
  const t = q(plan.name);
  // Qualified, so ORDER BY and WHERE mean the table's column, not the select list's expression of the same name.
  const selected = sdb.dialect === 'sqlite' ? cols.map((c) => exactSqlite(`${t}.${q(c)}`, q(c))).join(', ') : list;
  const key = plan.key;
  const keyCol = key ? `${t}.${q(key)}` : '';
  const first = key
    ? `SELECT ${selected} FROM ${t} ORDER BY ${keyCol} LIMIT ?`
    : `SELECT ${selected} FROM ${t} ORDER BY ${cols.map((_, i) => i + 1).join(', ')} LIMIT ? OFFSET ?`;
  const next = key ? `SELECT ${selected} FROM ${t} WHERE ${keyCol} > ? ORDER BY ${keyCol} LIMIT ?` : '';

  const perStatement = Math.max(1, Math.min(batch, Math.floor(MAX_PARAMS[tdb.dialect] / cols.length)));
  const inserts = new Map<number, string>();
  const insert = (n: number) => {
    let s = inserts.get(n);
    if (!s) {
      const row = `(${cols.map(() => '?').join(', ')})`;
      s = `INSERT INTO ${t} (${list}) VALUES ${Array.from({ length: n }, () => row).join(', ')}`;
      inserts.set(n, s);
    }
    return s;
  };
  // PostgreSQL text cannot hold NUL: replaced here as the database layer would, but counted for the report.
  const toPg = tdb.dialect === 'postgres';
  const value = (v: unknown) => {
    if (toPg && typeof v === 'string' && v.includes('\u0000')) {
      stats.nul++;
      return v.replace(/\u0000/g, '\uFFFD');
    }
    return v;
  };

  let copied = 0;
  let last: unknown;
  for (;;) {
    const rows = key
      ? copied === 0
        ? await sdb.all(first, batch)
        : await sdb.all(next, last, batch)
      : await sdb.all(first, batch, copied);
    if (rows.length === 0) break;
    for (let i = 0; i < rows.length; i += perStatement) {
      const chunk = rows.slice(i, i + perStatement);
      const values: unknown[] = [];
      for (const row of chunk) {
        const keyValue = key ? row[key] : undefined;
        for (const c of cols) {
          let v = row[c];
          if (v !== null && v !== undefined && key) {
            // A reference to a row of the same table with a higher key, or to a table copied later,
            // is written as NULL first and set once every row exists.
            const self = plan.selfRefs.find((f) => f.column === c);
            const own = self ? row[self.ref] : undefined;
            const deferSelf = self && !(isNumeric(v) && isNumeric(own) && v <= own);
            if (deferSelf || plan.laterRefs.some((f) => f.column === c)) {
              fixups.push({ table: plan.name, key, keyValue: value(keyValue), column: c, value: value(v) });
              v = null;
            }
          }
          values.push(value(v));
        }
      }
      await tdb.run(insert(chunk.length), values);
    }
    copied += rows.length;
    if (key) last = rows[rows.length - 1]![key];
    if (rows.length < batch) break;
  }
  return copied;
}

/** PostgreSQL: every identity/serial id continues after the copied ids (and the source's high-water mark). */
async function resetSequences(tdb: AsyncDb, plans: TablePlan[], sc: Catalog): Promise<void> {
  for (const p of plans) {
    if (!p.key) continue;
    const seq = (await tdb.get<{ s: string | null }>('SELECT pg_get_serial_sequence(?, ?) AS s', p.name, p.key))!.s;
    if (!seq) continue;
    const max = Number((await tdb.get<{ m: number }>(`SELECT COALESCE(MAX(${q(p.key)}), 0) AS m FROM ${q(p.name)}`))!.m);
    const next = Math.max(max, await sc.highWater(p.name, p.key));
    if (next > 0) await tdb.get('SELECT setval(?::regclass, ?, true)', seq, next);
    else await tdb.get('SELECT setval(?::regclass, 1, false)', seq);
  }
}

/** SQLite target: AUTOINCREMENT already follows the explicit ids; only a higher source high-water mark is carried over. */
async function raiseSqliteSequences(tdb: AsyncDb, plans: TablePlan[], sc: Catalog): Promise<void> {
  const auto = new Set(
    (await tdb.all<{ name: string }>(`SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE '%AUTOINCREMENT%'`)).map(
      (r) => r.name,
    ),
  );
  for (const p of plans) {
    if (!p.key || !auto.has(p.name)) continue;
    const hw = await sc.highWater(p.name, p.key);
    if (hw <= 0) continue;
    const changed = (await tdb.run('UPDATE sqlite_sequence SET seq = ? WHERE name = ? AND seq < ?', hw, p.name, hw)).changes;
    if (changed === 0 && !(await tdb.get('SELECT 1 FROM sqlite_sequence WHERE name = ?', p.name))) {
      await tdb.run('INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)', p.name, hw);
    }
  }
}
