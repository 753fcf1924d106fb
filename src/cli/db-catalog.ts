// The schema of a Factory database as the copy in migrate-db.ts needs it: tables, columns, foreign
// keys and sequences read through each engine's own catalog, and the order that copies parents
// before children.
import type { AsyncDb } from '../db/query.js';

/** Never copied: bookkeeping that each database keeps for itself. */
const SKIPPED_TABLES = new Set(['schema_migrations', 'sqlite_sequence']);

export const q = (name: string) => `"${name.replace(/"/g, '""')}"`;

export interface Column {
  name: string;
  notNull: boolean;
}
export interface ForeignKey {
  column: string;
  parent: string;
  ref: string;
}

/** Reads the schema of one database through the engine's own catalog. */
export class Catalog {
  constructor(private readonly db: AsyncDb) {}

  /** Plain data tables; FTS virtual tables, their shadow tables and bookkeeping tables are left out. */
  async tables(): Promise<string[]> {
    if (this.db.dialect === 'postgres') {
      return (
        await this.db.all<{ name: string }>(
          `SELECT table_name AS name FROM information_schema.tables
        WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name`,
        )
      )
        .map((r) => r.name)
        .filter((n) => !SKIPPED_TABLES.has(n));
    }
    const rows = await this.db.all<{ name: string; sql: string | null }>(
      `SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name`,
    );
    const virtual = rows.filter((r) => /^\s*CREATE\s+VIRTUAL\s+TABLE/i.test(r.sql ?? '')).map((r) => r.name);
    return rows
      .map((r) => r.name)
      .filter((n) => !SKIPPED_TABLES.has(n) && !n.startsWith('sqlite_') && !virtual.some((v) => n === v || n.startsWith(`${v}_`)));
  }

  async columns(table: string): Promise<Column[]> {
    if (this.db.dialect === 'postgres') {
      return (
        await this.db.all<{ name: string; nullable: string }>(
          `SELECT column_name AS name, is_nullable AS nullable FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position`,
          table,
        )
      ).map((r) => ({ name: r.name, notNull: r.nullable === 'NO' }));
    }
    return (
      await this.db.all<{ name: string; nn: number; pk: number }>(
        'SELECT name, "notnull" AS nn, pk FROM pragma_table_info(?) ORDER BY cid',
        table,
      )
    ).map((r) => ({ name: r.name, notNull: r.nn === 1 }));
  }

  async primaryKey(table: string): Promise<string[]> {
    if (this.db.dialect === 'postgres') {
      return (
        await this.db.all<{ name: string }>(
          `SELECT a.attname AS name FROM pg_index i
        JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
        WHERE i.indisprimary AND n.nspname = current_schema() AND c.relname = ? ORDER BY k.ord`,
          table,
        )
      ).map((r) => r.name);
    }
    return (await this.db.all<{ name: string }>('SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk', table)).map(
      (r) => r.name,
    );
  }

  /** Single-column foreign keys of `table` (the only kind Factory's schema has). */
  async foreignKeys(table: string): Promise<ForeignKey[]> {
    if (this.db.dialect === 'postgres') {
      return this.db.all<ForeignKey>(
        `SELECT a.attname AS "column", pc.relname AS parent, pa.attname AS ref
        FROM pg_constraint c
        JOIN pg_class cc ON cc.oid = c.conrelid JOIN pg_namespace n ON n.oid = cc.relnamespace
        JOIN pg_class pc ON pc.oid = c.confrelid
        JOIN LATERAL unnest(c.conkey, c.confkey) AS k(src, dst) ON true
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.src
        JOIN pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = k.dst
        WHERE c.contype = 'f' AND n.nspname = current_schema() AND cc.relname = ?`,
        table,
      );
    }
    const rows = await this.db.all<{ parent: string; column: string; ref: string | null }>(
      'SELECT "table" AS parent, "from" AS "column", "to" AS ref FROM pragma_foreign_key_list(?)',
      table,
    );
    const fks: ForeignKey[] = [];
    for (const r of rows) fks.push({ column: r.column, parent: r.parent, ref: r.ref ?? (await this.primaryKey(r.parent))[0] ?? 'rowid' });
    return fks;
  }

  async count(table: string): Promise<number> {
    return Number((await this.db.get<{ n: number | bigint }>(`SELECT COUNT(*) AS n FROM ${q(table)}`))!.n);
  }

  /**
   * The highest id the table's id generator has handed out (it can exceed MAX(id) when the newest
   * rows were deleted), or 0 when unknown.
   */
  async highWater(table: string, column: string): Promise<number> {
    if (this.db.dialect === 'postgres') {
      const seq = (await this.db.get<{ s: string | null }>('SELECT pg_get_serial_sequence(?, ?) AS s', table, column))!.s;
      if (!seq) return 0;
      const r = await this.db.get<{ v: number }>(`SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END AS v FROM ${seq}`);
      return Number(r?.v ?? 0);
    }
    const has = await this.db.get(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'`);
    if (!has) return 0;
    const r = await this.db.get<{ seq: number }>('SELECT seq FROM sqlite_sequence WHERE name = ?', table);
    return Number(r?.seq ?? 0);
  }
}

export interface TablePlan {
  name: string;
  columns: string[];
  /** The single-column primary key used to page through the source, if the table has one. */
  key?: string;
  /** FK columns to the table itself: a reference to a row not copied yet is set afterwards. */
  selfRefs: ForeignKey[];
  /** FK columns to a table copied later (only when tables reference each other in a cycle). */
  laterRefs: ForeignKey[];
  nullable: Set<string>;
}

/** Parents before children (Kahn's algorithm, ties by name); a cycle is broken by deferring columns. */
export function copyOrder(tables: string[], fks: Map<string, ForeignKey[]>): { order: string[]; later: Map<string, ForeignKey[]> } {
  const done = new Set<string>();
  const order: string[] = [];
  const later = new Map<string, ForeignKey[]>();
  const remaining = [...tables].sort();
  const parents = (t: string) => (fks.get(t) ?? []).filter((f) => f.parent !== t && tables.includes(f.parent));
  while (remaining.length) {
    let i = remaining.findIndex((t) => parents(t).every((f) => done.has(f.parent)));
    if (i === -1) {
      i = 0;
      later.set(
        remaining[0]!,
        parents(remaining[0]!).filter((f) => !done.has(f.parent)),
      );
    }
    const [t] = remaining.splice(i, 1);
    done.add(t!);
    order.push(t!);
  }
  return { order, later };
}
