// PostgreSQL behind the synchronous Db interface.
//
// Why synchronous: every repository, the queue and the routes are written against better-sqlite3's
// synchronous statements, and their correctness leans on it (a claim, a guarded transition and the
// event it publishes happen without anything interleaving). Rather than fork every caller into an
// async twin, one worker thread holds a node-postgres connection; the main thread posts a request
// and blocks on Atomics.wait until the answer is there, exactly as it blocks on SQLite's disk I/O.
// The price is the round trip (about 0.1–0.3 ms on loopback, see bench/), paid on the main thread;
// a statement timeout and a wait deadline bound how long a sick server can stall the process.
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import type { Db, RunResult, Statement } from './sql.js';
import { redactDbUrl } from '../config.js';

export interface PgOptions {
  /** How long one statement may run on the server (statement_timeout). */
  statementTimeoutMs?: number;
  applicationName?: string;
}

interface Reply { id: number; rows?: Record<string, unknown>[]; changes?: number; error?: { message: string; code: string } }

export class PgError extends Error {
  override name = 'PgError';
  constructor(message: string, readonly code: string) { super(message); }
}

interface Translated { text: string; names: string[] | null; positional: number }

/**
 * Rewrites SQLite-style parameters for PostgreSQL: `?` becomes `$1, $2, …` in order, `@name`
 * becomes one `$n` per distinct name. Quoted strings, quoted identifiers, comments and the `@@`
 * operator are left alone.
 */
export function translateParams(sql: string): Translated {
  let out = '';
  let positional = 0;
  const names: string[] = [];
  const index = new Map<string, number>();
  let i = 0;
  while (i < sql.length) {
    const ch = sql[i]!;
    if (ch === "'" || ch === '"') {
      let j = i + 1;
      while (j < sql.length) {
        if (sql[j] === ch) {
          if (sql[j + 1] === ch) { j += 2; continue; }
          break;
        }
        j++;
      }
      out += sql.slice(i, j + 1);
      i = j + 1;
    } else if (ch === '-' && sql[i + 1] === '-') {
      const end = sql.indexOf('\n', i);
      const j = end === -1 ? sql.length : end;
      out += sql.slice(i, j);
      i = j;
    } else if (ch === '@' && sql[i + 1] === '@') {
      out += '@@';
      i += 2;
    } else if (ch === '@' && /[A-Za-z_]/.test(sql[i + 1] ?? '')) {
      let j = i + 1;
      while (j < sql.length && /\w/.test(sql[j]!)) j++;
      const name = sql.slice(i + 1, j);
      let n = index.get(name);
      if (n === undefined) {
        names.push(name);
        n = names.length;
        index.set(name, n);
      }
      out += `$${n}`;
      i = j;
    } else if (ch === '?') {
      out += `$${++positional}`;
      i++;
    } else {
      out += ch;
      i++;
    }
  }
  if (names.length && positional) throw new Error('a statement may use ? or @name parameters, not both');
  return { text: out, names: names.length ? names : null, positional };
}

// PostgreSQL text cannot hold U+0000 (SQLite can). Agent output and user text may contain it, and
// a write must not fail for it: it is stored as U+FFFD, the replacement character.
const NUL = /\u0000/g;

function bindValue(v: unknown): unknown {
  if (v === undefined) return null;
  if (typeof v === 'string') return v.includes('\u0000') ? v.replace(NUL, '\uFFFD') : v;
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'boolean') return v ? 1 : 0;
  return v;
}

class PgStatement implements Statement {
  constructor(private readonly db: PgSyncDb, private readonly sql: Translated) {}

  private values(params: unknown[]): unknown[] {
    const { names, positional } = this.sql;
    if (names) {
      const obj = params[0];
      if (params.length !== 1 || !obj || typeof obj !== 'object') throw new TypeError('named parameters need one object argument');
      return names.map((n) => {
        if (!(n in obj)) throw new RangeError(`Missing named parameter "${n}"`);
        return bindValue((obj as Record<string, unknown>)[n]);
      });
    }
    const flat = params.length === 1 && Array.isArray(params[0]) ? params[0] as unknown[] : params;
    if (flat.length !== positional) throw new RangeError(`Too ${flat.length < positional ? 'few' : 'many'} parameter values were provided`);
    return flat.map(bindValue);
  }

  get(...params: unknown[]): unknown {
    return this.db.query(this.sql.text, this.values(params)).rows?.[0];
  }

  all(...params: unknown[]): unknown[] {
    return this.db.query(this.sql.text, this.values(params)).rows ?? [];
  }

  run(...params: unknown[]): RunResult {
    return { changes: this.db.query(this.sql.text, this.values(params)).changes ?? 0 };
  }
}

export class PgSyncDb implements Db {
  readonly dialect = 'postgres' as const;
  readonly describe: string;
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private readonly signal: Int32Array;
  private readonly waitMs: number;
  private readonly cache = new Map<string, Translated>();
  private seq = 0;
  private depth = 0;
  private closed = false;

  constructor(readonly url: string, opts: PgOptions = {}) {
    this.describe = redactDbUrl(url);
    const statementTimeoutMs = opts.statementTimeoutMs ?? 30_000;
    this.waitMs = statementTimeoutMs + 15_000;
    const flag = new SharedArrayBuffer(4);
    this.signal = new Int32Array(flag);
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.worker = new Worker(new URL('./pg-worker.mjs', import.meta.url), {
      workerData: { url, flag, port: port2, statementTimeoutMs, applicationName: opts.applicationName ?? 'factory' },
      transferList: [port2],
    });
    // The thread must not keep a finished process alive; close() ends it properly.
    this.worker.unref();
    this.worker.on('error', () => { /* surfaced as a wait timeout on the next call */ });
    this.query('SELECT 1', []);
  }

  /** One round trip to the worker. Throws PgError for server errors, Error for an unreachable database. */
  query(text: string, values: unknown[] | null, kind: 'query' | 'exec' = 'query'): Reply {
    if (this.closed) throw new Error('the database connection is closed');
    const id = ++this.seq;
    Atomics.store(this.signal, 0, 0);
    this.port.postMessage({ id, kind, sql: text, params: values });
    const deadline = Date.now() + this.waitMs;
    for (;;) {
      const got = receiveMessageOnPort(this.port);
      if (got) {
        const r = got.message as Reply;
        if (r.id !== id) continue; // the late answer to a request that already timed out
        if (r.error) throw new PgError(r.error.message, r.error.code);
        return r;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`PostgreSQL did not answer within ${Math.round(this.waitMs / 1000)} s (${this.describe})`);
      Atomics.wait(this.signal, 0, 0, left);
      Atomics.store(this.signal, 0, 0);
    }
  }

  prepare(sql: string): Statement {
    let t = this.cache.get(sql);
    if (!t) {
      t = translateParams(sql);
      if (this.cache.size > 2000) this.cache.clear();
      this.cache.set(sql, t);
    }
    return new PgStatement(this, t);
  }

  exec(sql: string): void {
    this.query(sql, null, 'exec');
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  transaction<F extends (...args: any[]) => any>(fn: F): F {
    const wrapped = (...args: unknown[]) => {
      const sp = `sp_${this.depth}`;
      this.exec(this.depth === 0 ? 'BEGIN' : `SAVEPOINT ${sp}`);
      this.depth++;
      try {
        const result = fn(...args);
        this.depth--;
        this.exec(this.depth === 0 ? 'COMMIT' : `RELEASE SAVEPOINT ${sp}`);
        return result;
      } catch (err) {
        this.depth--;
        try {
          this.exec(this.depth === 0 ? 'ROLLBACK' : `ROLLBACK TO SAVEPOINT ${sp}; RELEASE SAVEPOINT ${sp}`);
        } catch { /* the connection is gone; the server rolled back */ }
        throw err;
      }
    };
    return wrapped as unknown as F;
  }

  close(): void {
    if (this.closed) return;
    try {
      this.query('', null, 'close' as never);
    } catch { /* closing anyway */ }
    this.closed = true;
    void this.worker.terminate();
  }
}
