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
import type pg from 'pg';
import { postgresKysely, type AsyncDb } from './async.js';

export interface PgOptions {
  /** How long one statement may run on the server (statement_timeout). */
  statementTimeoutMs?: number;
  applicationName?: string;
}

interface Reply {
  id: number;
  rows?: Record<string, unknown>[];
  changes?: number;
  gen?: number;
  error?: { message: string; code: string };
}

export class PgError extends Error {
  override name = 'PgError';
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

interface Translated {
  text: string;
  names: string[] | null;
  positional: number;
}

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
          if (sql[j + 1] === ch) {
            j += 2;
            continue;
          }
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
  constructor(
    private readonly db: PgSyncDb,
    private readonly sql: Translated,
  ) {}

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
    const flat = params.length === 1 && Array.isArray(params[0]) ? (params[0] as unknown[]) : params;
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
  private worker!: Worker;
  private port!: MessagePort;
  private signal!: Int32Array;
  private exited = false;
  private readonly statementTimeoutMs: number;
  private readonly applicationName: string;
  private readonly waitMs: number;
  private readonly cache = new Map<string, Translated>();
  private seq = 0;
  private depth = 0;
  /** The connection generation the open transaction began on (see pg-worker.mjs), and on which thread. */
  private txGen: number | undefined;
  private txThread = 0;
  private thread = 0;
  private closed = false;

  constructor(
    readonly url: string,
    opts: PgOptions = {},
  ) {
    this.describe = redactDbUrl(url);
    this.statementTimeoutMs = opts.statementTimeoutMs ?? 10_000;
    this.applicationName = opts.applicationName ?? 'factory';
    // The worker gives up on a query 5 s after the statement timeout; this is only a backstop.
    this.waitMs = this.statementTimeoutMs + 15_000;
    this.spawn();
    this.query('SELECT 1', []);
  }

  private spawn(): void {
    // [0]: the reply flag; [1]: the thread's liveness tick.
    const flag = new SharedArrayBuffer(8);
    this.signal = new Int32Array(flag);
    this.thread++;
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.exited = false;
    const worker = new Worker(new URL('./pg-worker.mjs', import.meta.url), {
      workerData: { url: this.url, flag, port: port2, statementTimeoutMs: this.statementTimeoutMs, applicationName: this.applicationName },
      transferList: [port2],
    });
    // The thread must not keep a finished process alive; close() ends it properly.
    worker.unref();
    worker.on('error', () => {
      /* followed by exit */
    });
    // A thread that died is replaced at the next query (its transaction, if any, is lost).
    worker.on('exit', () => {
      if (this.worker !== worker) return;
      this.exited = true;
      // Wake a caller that is waiting for this thread.
      Atomics.store(this.signal, 0, 1);
      Atomics.notify(this.signal, 0);
    });
    this.worker = worker;
  }

  /** One round trip to the worker. Throws PgError for server errors, Error for an unreachable database. */
  query(text: string, values: unknown[] | null, kind: 'query' | 'exec' = 'query'): Reply {
    if (this.closed) throw new Error('the database connection is closed');
    // A transaction lives on one thread's connection: after that thread is gone, nothing of the
    // transaction (COMMIT included) may run on a new one.
    if (this.txGen !== undefined && this.txThread !== this.thread)
      throw new PgError('the database connection was lost during a transaction; the transaction was rolled back', '08003');
    if (this.exited) {
      if (this.txGen !== undefined) {
        this.txThread = -1;
        throw new PgError('the database connection thread stopped during a transaction', '08003');
      }
      this.spawn();
    }
    const id = ++this.seq;
    Atomics.store(this.signal, 0, 0);
    this.port.postMessage({ id, kind, sql: text, params: values, ...(this.txGen !== undefined ? { gen: this.txGen } : {}) });
    const deadline = Date.now() + this.waitMs;
    let silent = 0;
    for (;;) {
      const got = receiveMessageOnPort(this.port);
      if (got) {
        const r = got.message as Reply;
        if (r.id !== id) continue; // the late answer to a request that already timed out
        if (r.error) throw new PgError(r.error.message, r.error.code);
        return r;
      }
      if (this.exited) throw new Error(`the PostgreSQL connection thread stopped (${this.describe})`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`PostgreSQL did not answer within ${Math.round(this.waitMs / 1000)} s (${this.describe})`);
      // One-second slices: a thread that has not ticked for two of them is dead (or hung).
      const tick = Atomics.load(this.signal, 1);
      const waited = Atomics.wait(this.signal, 0, 0, Math.min(left, 1000));
      if (waited === 'timed-out' && Atomics.load(this.signal, 1) === tick) {
        if (++silent >= 2) {
          this.exited = true;
          void this.worker.terminate();
          throw new Error(`the PostgreSQL connection thread stopped answering (${this.describe})`);
        }
      } else {
        silent = 0;
      }
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

  transaction<F extends (...args: any[]) => any>(fn: F): F {
    const wrapped = (...args: unknown[]) => {
      const outer = this.depth === 0;
      const sp = `sp_${this.depth}`;
      if (outer) {
        this.txGen = this.query('BEGIN', null, 'exec').gen;
        this.txThread = this.thread;
      } else {
        this.exec(`SAVEPOINT ${sp}`);
      }
      this.depth++;
      let result: unknown;
      try {
        result = fn(...args);
      } catch (err) {
        this.depth--;
        try {
          this.exec(outer ? 'ROLLBACK' : `ROLLBACK TO SAVEPOINT ${sp}; RELEASE SAVEPOINT ${sp}`);
        } catch {
          /* the connection is gone; the server rolled back */
        }
        if (outer) this.txGen = undefined;
        throw err;
      }
      this.depth--;
      try {
        this.exec(outer ? 'COMMIT' : `RELEASE SAVEPOINT ${sp}`);
      } catch (err) {
        // The outer transaction is not committed: end it (a failed savepoint release is the outer one's to roll back).
        if (outer) {
          try {
            this.exec('ROLLBACK');
          } catch {
            /* gone */
          }
        }
        throw err;
      } finally {
        if (outer) this.txGen = undefined;
      }
      return result;
    };
    return wrapped as unknown as F;
  }

  private pooled: { db: AsyncDb; pool: pg.Pool } | null = null;

  /** The pool opens on first use: a process that never runs an asynchronous query holds none. */
  get async(): AsyncDb {
    this.pooled ??= postgresKysely(this.url, { statementTimeoutMs: this.statementTimeoutMs, applicationName: this.applicationName });
    return this.pooled.db;
  }

  close(): void {
    if (this.closed) return;
    // Ends the pool's connections in the background; queries still running on it fail.
    if (this.pooled) void this.pooled.pool.end().catch(() => {});
    try {
      if (!this.exited) this.query('', null, 'close' as never);
    } catch {
      /* closing anyway */
    }
    this.closed = true;
    void this.worker.terminate();
  }
}
