// The worker thread behind PgSyncDb: it owns one node-postgres connection and answers each request
// from the main thread on a MessagePort, then wakes the main thread through a shared Int32 flag.
// Plain JavaScript so it loads the same way from src/ (under tsx) and from dist/.
import { workerData } from 'node:worker_threads';
import pg from 'pg';

// 64-bit integers (ids, counts, epoch milliseconds) and numerics arrive as JS numbers, as in SQLite.
pg.types.setTypeParser(20, (v) => Number(v));
pg.types.setTypeParser(1700, (v) => Number(v));

const { url, flag, port, statementTimeoutMs, applicationName } = workerData;
const signal = new Int32Array(flag);
// signal[1] ticks while this thread lives, so a main thread blocked in Atomics.wait (it cannot see
// the 'exit' event then) notices a dead thread within a second or two.
setInterval(() => {
  Atomics.add(signal, 1, 1);
}, 200).unref();
let client = null;
// Every new connection gets a new generation. A transaction belongs to the connection it began on:
// requests inside it carry that generation, and fail rather than run on a replacement connection
// (where they would silently run outside the transaction).
let generation = 0;
// Statements are prepared once per connection and then only bound and executed (pg caches them by name).
let names = new Map();
function statementName(text) {
  let n = names.get(text);
  if (!n) {
    if (names.size >= 500) return undefined; // a flood of distinct texts: run the rest unnamed
    n = `f${names.size + 1}`;
    names.set(text, n);
  }
  return n;
}

// The main thread waits for every answer, so a sick server must fail fast: connecting gives up after
// 5 s, a query the server does not answer (a half-open connection) gives up shortly after the
// statement timeout, keepalive probes find dead peers, and for a second after a failed connection
// attempt requests fail at once instead of trying again.
const CONNECT_TIMEOUT_MS = 5000;
const RETRY_AFTER_MS = 1000;
let failedAt = 0;
let failure = '';

async function connection() {
  if (client) return client;
  if (Date.now() - failedAt < RETRY_AFTER_MS) throw Object.assign(new Error(`database unavailable: ${failure}`), { code: 'ECONNREFUSED' });
  const c = new pg.Client({
    connectionString: url,
    application_name: applicationName,
    statement_timeout: statementTimeoutMs,
    query_timeout: statementTimeoutMs + 5000,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
  });
  // A dropped connection is replaced on the next request; the error reaches the caller of that request.
  c.on('error', () => {
    if (client === c) client = null;
  });
  try {
    await c.connect();
  } catch (err) {
    failedAt = Date.now();
    failure = err instanceof Error ? err.message : String(err);
    c.end().catch(() => {});
    throw err;
  }
  names = new Map();
  generation++;
  client = c;
  return c;
}

function reply(msg) {
  port.postMessage(msg);
  Atomics.store(signal, 0, 1);
  Atomics.notify(signal, 0);
}

function drop() {
  const c = client;
  client = null;
  c?.end().catch(() => {});
}

let chain = Promise.resolve();
port.on('message', (req) => {
  chain = chain.then(() => handle(req));
});

async function handle(req) {
  if (req.kind === 'close') {
    const c = client;
    client = null;
    await c?.end().catch(() => {});
    reply({ id: req.id, rows: [], changes: 0, gen: generation });
    port.close();
    return;
  }
  try {
    if (req.gen !== undefined && (!client || req.gen !== generation)) {
      // The connection this transaction began on is gone, and the server rolled the transaction back.
      throw Object.assign(new Error('the database connection was lost during a transaction; the transaction was rolled back'), {
        code: '08003',
      });
    }
    const c = await connection();
    const r =
      req.kind === 'exec' ? await c.query(req.sql) : await c.query({ name: statementName(req.sql), text: req.sql, values: req.params });
    const last = Array.isArray(r) ? r[r.length - 1] : r;
    reply({ id: req.id, rows: last?.rows ?? [], changes: last?.rowCount ?? 0, gen: generation });
  } catch (err) {
    const code = String(err?.code ?? '');
    // Connection-level failures (no SQLSTATE, class 08 or 57P, a query timeout) leave the client
    // unusable: start afresh next time. 0A000 "cached plan must not change result type" means
    // another process changed the schema under a prepared statement; a fresh connection prepares again.
    if (!/^[0-9A-Z]{5}$/.test(code) || /^(08|57P)/.test(code) || code === '0A000') {
      if (code !== '08003' || req.gen === generation) drop();
    }
    reply({ id: req.id, error: { message: err instanceof Error ? err.message : String(err), code }, gen: generation });
  }
}
