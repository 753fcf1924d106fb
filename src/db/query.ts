// The asynchronous database interface every repository uses, on either engine.
//
// Repositories write plain SQL with SQLite-style parameters (`?` in order, or `@name` with one
// object) and get promises back; Kysely underneath owns the connections: a pg.Pool on PostgreSQL,
// the better-sqlite3 handle (behind Kysely's one-connection mutex) on SQLite. Typed queries and
// sql`` templates use `kysely` directly. A transaction holds one connection for its whole callback,
// so nothing else runs inside it, on either engine.
import { endedBeforeRunning } from './pg-prepared.js';
import { CompiledQuery, sql, type Kysely } from 'kysely';
import type { Tables } from './schema.js';

export type Dialect = 'sqlite' | 'postgres';

export interface RunResult {
  changes: number;
}

export interface AsyncDb {
  readonly dialect: Dialect;
  /** The query builder on the same connection (inside a transaction: the transaction's). */
  readonly kysely: Kysely<Tables>;
  /** The first row, or undefined. Parameters: positional (`?`) values, or one object for `@name`. */
  get<T = Record<string, unknown>>(text: string, ...params: unknown[]): Promise<T | undefined>;
  all<T = Record<string, unknown>>(text: string, ...params: unknown[]): Promise<T[]>;
  run(text: string, ...params: unknown[]): Promise<RunResult>;
  /**
   * Runs fn in one transaction on one connection: committed when it resolves, rolled back when it
   * throws. Inside a transaction, a nested call joins the outer one.
   */
  transaction<T>(fn: (tx: AsyncDb) => Promise<T>): Promise<T>;
  /** Runs a script of statements without parameters (migrations, DDL). */
  exec(script: string): Promise<void>;
}

interface Compiled {
  text: string;
  /** Per placeholder of `text`: an index into positional values, or a parameter name. */
  slots: Array<number | string>;
  named: boolean;
}

/**
 * Rewrites SQLite-style parameters for the engine: on PostgreSQL `?` becomes `$1, $2, …` and each
 * distinct `@name` one `$n`; on SQLite every parameter becomes `?` (Kysely's SQLite driver binds an
 * array). Quoted strings, quoted identifiers, comments and the `@@` operator are left alone.
 * Hand-written because neither driver accepts both parameter styles, and the repositories' SQL is
 * shared by the two engines.
 */
export function compileParams(text: string, dialect: Dialect): Compiled {
  let out = '';
  let positional = 0;
  const slots: Array<number | string> = [];
  const pgIndex = new Map<string, number>();
  let hasNamed = false;
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === "'" || ch === '"') {
      const j = closingQuote(text, i);
      out += text.slice(i, j + 1);
      i = j + 1;
    } else if (ch === '-' && text[i + 1] === '-') {
      const end = text.indexOf('\n', i);
      const j = end === -1 ? text.length : end;
      out += text.slice(i, j);
      i = j;
    } else if (ch === '@' && text[i + 1] === '@') {
      out += '@@';
      i += 2;
    } else if (ch === '@' && /[A-Za-z_]/.test(text[i + 1] ?? '')) {
      let j = i + 1;
      while (j < text.length && /\w/.test(text[j]!)) j++;
      const name = text.slice(i + 1, j);
      hasNamed = true;
      out += placeholder(dialect, name, slots, pgIndex);
      i = j;
    } else if (ch === '?') {
      out += placeholder(dialect, positional++, slots, pgIndex);
      i++;
    } else {
      out += ch;
      i++;
    }
  }
  if (hasNamed && positional) throw new Error('a statement may use ? or @name parameters, not both');
  return { text: out, slots, named: hasNamed };
}

function closingQuote(text: string, start: number): number {
  const q = text[start];
  let j = start + 1;
  while (j < text.length) {
    if (text[j] === q) {
      if (text[j + 1] === q) {
        j += 2;
        continue;
      }
      return j;
    }
    j++;
  }
  return j;
}

function placeholder(dialect: Dialect, slot: number | string, slots: Array<number | string>, pgIndex: Map<string, number>): string {
  if (dialect === 'sqlite') {
    slots.push(slot);
    return '?';
  }
  if (typeof slot === 'number') {
    slots.push(slot);
    return `$${slots.length}`;
  }
  let n = pgIndex.get(slot);
  if (n === undefined) {
    slots.push(slot);
    n = slots.length;
    pgIndex.set(slot, n);
  }
  return `$${n}`;
}

// PostgreSQL text cannot hold U+0000 (SQLite can). Agent output and user text may contain it, and
// a write must not fail for it: it is stored as U+FFFD, the replacement character.
const NUL = /\u0000/g;

function bindValue(v: unknown, dialect: Dialect): unknown {
  if (v === undefined) return null;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (dialect === 'postgres') {
    if (typeof v === 'string') return v.includes('\u0000') ? v.replace(NUL, '\uFFFD') : v;
    if (typeof v === 'bigint') return v.toString();
  }
  return v;
}

function isPlainObject(v: unknown): boolean {
  return typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype;
}

function bindValues(c: Compiled, params: unknown[], dialect: Dialect): unknown[] {
  if (c.named) {
    const obj = params[0];
    if (params.length !== 1 || !obj || typeof obj !== 'object') throw new TypeError('named parameters need one object argument');
    return c.slots.map((name) => {
      if (!(name in obj)) throw new RangeError(`Missing named parameter "${String(name)}"`);
      return bindValue((obj as Record<string, unknown>)[name], dialect);
    });
  }
  // One object for a statement without @names binds nothing (a query builder's empty parameter set).
  const flat =
    params.length === 1 && Array.isArray(params[0])
      ? (params[0] as unknown[])
      : params.length === 1 && isPlainObject(params[0])
        ? []
        : params;
  const wanted = c.slots.length;
  if (flat.length !== wanted) throw new RangeError(`Too ${flat.length < wanted ? 'few' : 'many'} parameter values were provided`);
  return c.slots.map((i) => bindValue(flat[i as number], dialect));
}

// Compiled statements per engine, shared by every KyselyDb (a transaction's too): the SQL texts
// are the repositories' own, a bounded set, except where a list of ids is spelled out.
const COMPILED: Record<Dialect, Map<string, Compiled>> = { sqlite: new Map(), postgres: new Map() };

/** AsyncDb over a Kysely instance (or one connection of it, inside a transaction). */
export class KyselyDb implements AsyncDb {
  constructor(
    readonly kysely: Kysely<Tables>,
    readonly dialect: Dialect,
    /** SQLite: runs a multi-statement script on the handle (Kysely prepares one statement at a time). */
    private readonly execScript?: (script: string) => void,
    private readonly inTransaction = false,
  ) {}

  private compile(text: string): Compiled {
    const cache = COMPILED[this.dialect];
    let c = cache.get(text);
    if (!c) {
      c = compileParams(text, this.dialect);
      if (cache.size > 2000) cache.clear();
      cache.set(text, c);
    }
    return c;
  }

  private async query<T>(text: string, params: unknown[]): Promise<{ rows: T[]; changes: number }> {
    const c = this.compile(text);
    const q = CompiledQuery.raw(c.text, bindValues(c, params, this.dialect));
    let r;
    try {
      r = await this.kysely.executeQuery<T>(q);
    } catch (err) {
      // A pooled connection the server had ended (an administrator, a restart): the statement did not
      // run, or was rolled back with the session, and that connection is not handed out again, so
      // the statement goes once more on another. Never inside a transaction, whose earlier
      // statements died with the connection.
      if (this.inTransaction || !endedBeforeRunning(err)) throw err;
      r = await this.kysely.executeQuery<T>(q);
    }
    return { rows: r.rows, changes: Number(r.numAffectedRows ?? 0) };
  }

  async get<T>(text: string, ...params: unknown[]): Promise<T | undefined> {
    return (await this.query<T>(text, params)).rows[0];
  }

  async all<T>(text: string, ...params: unknown[]): Promise<T[]> {
    return (await this.query<T>(text, params)).rows;
  }

  async run(text: string, ...params: unknown[]): Promise<RunResult> {
    return { changes: (await this.query(text, params)).changes };
  }

  async exec(script: string): Promise<void> {
    if (this.execScript) {
      const run = this.execScript;
      // Outside a transaction the connection is taken first, so the script never lands inside another's.
      if (this.inTransaction) run(script);
      else await this.kysely.connection().execute(async () => run(script));
      return;
    }
    // No parameters: node-postgres sends it as one simple query, which may hold several statements.
    await sql.raw(script).execute(this.kysely);
  }

  async transaction<T>(fn: (tx: AsyncDb) => Promise<T>): Promise<T> {
    if (this.inTransaction) return fn(this);
    // One connection for the whole callback. SQLite takes the write lock at BEGIN (IMMEDIATE), so a
    // transaction that reads before it writes cannot fail halfway on another process's write.
    return this.kysely.connection().execute(async (conn) => {
      await sql.raw(this.dialect === 'sqlite' ? 'BEGIN IMMEDIATE' : 'BEGIN').execute(conn);
      let result: T;
      try {
        result = await fn(new KyselyDb(conn, this.dialect, this.execScript, true));
        await sql.raw('COMMIT').execute(conn);
      } catch (err) {
        // Also after a failed COMMIT: SQLite keeps the transaction open (a busy database), and on
        // PostgreSQL a connection the server dropped fails this ROLLBACK, which marks it unusable,
        // so the pool discards it instead of handing it to the next query.
        await sql
          .raw('ROLLBACK')
          .execute(conn)
          .catch(() => {
            /* nothing open any more, or the connection is gone (the server rolled back) */
          });
        throw err;
      }
      return result;
    });
  }
}
