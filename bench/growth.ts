// "Flat as it grows": the production bundle booted on databases of 1k, 10k and 100k tasks (quick:
// 1k and 10k), each task with 10 log lines and one board message, all tasks finished (done,
// in_review, failed, cancelled) so the booted service starts no agents. Per size: boot to GET
// /health 200, p50 of the hot reads (task list, one task's log, board search, /health itself) over
// sequential keep-alive requests, and the idle RSS of the process.
//
// Baseline: the same measurement on the 1k database; factory is the largest size. A route whose SQL
// is bounded by an index should stay flat (target ≤ 1.3×); one that grows with the table shows it.
// The EXPLAIN QUERY PLAN of the SQL the repositories build for these routes (captured from the
// repositories themselves, not copied) is logged for the largest database and summarised in notes.
//
// Seeding is set-based SQL (recursive CTEs) on the migrated schema, so 100k tasks, 1M log lines and
// 100k messages (FTS5 kept by the schema's own trigger) take seconds; no repository call per row.
import { readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { openDb, type Db } from '../src/db/connection.js';
import type { AsyncDb } from '../src/db/query.js';
import { LogsRepo } from '../src/db/repositories/logs.js';
import { MessagesRepo } from '../src/db/repositories/messages.js';
import { TasksRepo } from '../src/db/repositories/tasks.js';
import { bootFactory, buildBundle, prepareBootRoot, stopFactory, type BootedFactory } from './boot-lib.js';
import { ROOT, isMain, log, median, nowMs, pick, removeTemp, round, runStandalone, sleep, tempDir, timedGet, type Row } from './lib.js';

const SIZES = pick([1_000, 10_000, 100_000], [1_000, 10_000]);
const LOGS_PER_TASK = 10;
const BOOTS = pick(3, 1);
const REQUESTS = pick(200, 50);
const WARMUP_REQUESTS = 20;
const IDLE_MS = pick(2000, 1000);
// A word in exactly SEARCH_HITS messages at every size, so the answer (and its bytes) stays the
// same and only the lookup can grow.
const SEARCH_WORD = 'kumquat';
const SEARCH_HITS = 5;

const ROUTES = {
  tasks: '/api/tasks',
  logs: (id: number) => `/api/tasks/${id}/logs`,
  search: `/api/messages?search=${SEARCH_WORD}`,
  health: '/health',
};

// ---------------------------------------------------------------- seeding

/** SQL for the i-th number 1..@n, `n(i)`. */
const NUMBERS = 'WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < @n)';
/** Task i was created (n - i) seconds ago: ordered like real history, all inside the 30-day log retention. */
const taskTime = (i: string) => `strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-' || (@n - (${i})) || ' seconds')`;
/** A stream-json assistant line, the shape the agent writes (bench/boot.ts seeds the same text). */
const logLine = (task: string, step: string) =>
  `json_object('type', 'assistant', 'message', json_object('content', json_array(json_object('type', 'text', 'text', ` +
  `'working on step ' || (${step}) || ' of task ' || (${task})))))`;

async function seed(db: Db, n: number): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.run(
      `${NUMBERS}
      INSERT INTO tasks (id, title, description, repo, agent_type, status, result_summary, attempts, last_output,
        created_at, started_at, completed_at, updated_at)
      SELECT i, 'Historic task ' || i, 'Do thing number ' || i || ' in the web app.', 'acme/web', 'coder',
        CASE i % 6 WHEN 0 THEN 'in_review' WHEN 1 THEN 'failed' WHEN 2 THEN 'cancelled' ELSE 'done' END,
        'Implemented the change.', 1, substr(${logLine('i', String(LOGS_PER_TASK - 1))}, 1, 500),
        ${taskTime('i')}, ${taskTime('i')}, ${taskTime('i')}, ${taskTime('i')}
      FROM n`,
      { n },
    );
    // Line j belongs to task (j - 1) / 10 + 1, step (j - 1) % 10: each task's lines in id order.
    const task = `((i - 1) / ${LOGS_PER_TASK} + 1)`;
    await tx.run(
      `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < @lines)
      INSERT INTO task_logs (task_id, ts, stream, line)
      SELECT ${task}, ${taskTime(task)}, 'stdout', ${logLine(task, `(i - 1) % ${LOGS_PER_TASK}`)} FROM n`,
      { lines: n * LOGS_PER_TASK, n },
    );
    await tx.run(
      `${NUMBERS}
      INSERT INTO messages (sender, recipient, task_id, message, message_type, created_at)
      SELECT 'task-' || i || ':coder', CASE WHEN i % 3 = 0 THEN 'human' END, i,
        'Task ' || i || ': ' || CASE i % 4 WHEN 0 THEN 'opened a pull request for the widget list'
          WHEN 1 THEN 'tests pass after fixing the date parser' WHEN 2 THEN 'which branch should the change target?'
          ELSE 'finished refactoring the settings page' END
        || CASE WHEN i % (@n / ${SEARCH_HITS}) = 0 THEN ' (${SEARCH_WORD} flavour)' ELSE '' END,
        CASE WHEN i % 4 = 2 THEN 'question' ELSE 'status' END, ${taskTime('i')}
      FROM n`,
      { n },
    );
  });
}

// ---------------------------------------------------------------- query plans

interface Query {
  text: string;
  params: unknown[];
}

/**
 * Hands the repositories' reads through to `db` and keeps their SQL, to explain exactly that: plain
 * SQL from get/all, and what Kysely compiles for sql`` templates and typed queries.
 */
class RecordingDb implements AsyncDb {
  readonly queries: Query[] = [];
  constructor(private readonly db: AsyncDb) {}
  get dialect() {
    return this.db.dialect;
  }
  get kysely() {
    const inner = this.db.kysely;
    return inner.withPlugin({
      transformQuery: ({ node, queryId }) => {
        const compiled = inner.getExecutor().compileQuery(node, queryId);
        this.queries.push({ text: compiled.sql, params: [...compiled.parameters] });
        return node;
      },
      transformResult: ({ result }) => Promise.resolve(result),
    });
  }
  get<T>(text: string, ...params: unknown[]) {
    this.queries.push({ text, params });
    return this.db.get<T>(text, ...params);
  }
  all<T>(text: string, ...params: unknown[]) {
    this.queries.push({ text, params });
    return this.db.all<T>(text, ...params);
  }
  run(text: string, ...params: unknown[]) {
    return this.db.run(text, ...params);
  }
  transaction<T>(fn: (tx: AsyncDb) => Promise<T>) {
    return this.db.transaction(fn);
  }
  exec(script: string) {
    return this.db.exec(script);
  }
}

/** The plan as an indented tree, and a one-line summary that leads with any SCAN or temp b-tree. */
async function explain(db: AsyncDb, q: Query): Promise<{ tree: string; summary: string }> {
  const rows = await db.all<{ id: number; parent: number; detail: string }>(`EXPLAIN QUERY PLAN ${q.text}`, ...q.params);
  const depth = new Map<number, number>([[0, 0]]);
  const lines = rows.map((r) => {
    const d = (depth.get(r.parent) ?? 0) + 1;
    depth.set(r.id, d);
    return `${'  '.repeat(d)}${r.detail}`;
  });
  // "SCAN x VIRTUAL TABLE INDEX …" is the FTS5 index answering MATCH, not a walk over every row; a
  // lone SCAN under ORDER BY id DESC LIMIT walks the primary key newest first and stops at the limit.
  const newestFirst = /ORDER BY id DESC LIMIT/.test(q.text) && rows.length === 1 && /^SCAN /.test(rows[0]!.detail);
  const worrying = rows.filter(
    (r) => (/^SCAN /.test(r.detail) && !/VIRTUAL TABLE/.test(r.detail) && !newestFirst) || /TEMP B-TREE/.test(r.detail),
  );
  const plain = rows.map((r) => r.detail).join(' + ') + (newestFirst ? ' (primary key newest first, stops at LIMIT)' : '');
  const summary = (worrying.length ? `⚠ ${worrying.map((r) => r.detail).join(' + ')}` : plain).trim();
  return { tree: lines.join('\n'), summary };
}

type Hot = 'tasks' | 'logs' | 'search' | 'health';

/** Runs each hot route's repository read once and explains the SQL it sent (the last one it ran). */
async function explainHotQueries(db: Db, n: number): Promise<Record<Hot, string>> {
  const reads: Record<Hot, (rec: RecordingDb) => Promise<unknown>> = {
    tasks: (rec) => new TasksRepo(rec).list({ limit: 100, offset: 0 }),
    logs: (rec) => new LogsRepo(rec).list(middleTask(n), { limit: 100 }),
    search: (rec) => new MessagesRepo(rec).list({ search: SEARCH_WORD, limit: 100, offset: 0 }),
    health: (rec) => new TasksRepo(rec).counts(),
  };
  const out = {} as Record<Hot, string>;
  for (const [hot, read] of Object.entries(reads) as Array<[Hot, (rec: RecordingDb) => Promise<unknown>]>) {
    const rec = new RecordingDb(db);
    await read(rec);
    const q = rec.queries.at(-1)!;
    const { tree, summary } = await explain(db, q);
    log(`growth: EXPLAIN QUERY PLAN (${kilo(n)} tasks) for ${hot}:\n  ${q.text.replace(/\s+/g, ' ').trim()}\n${tree}`);
    out[hot] = summary;
  }
  return out;
}

// ---------------------------------------------------------------- measuring the booted service

const middleTask = (n: number) => Math.floor(n / 2);
const kilo = (n: number) => `${n / 1000}k`;

const get = (agent: http.Agent, port: number, urlPath: string) => timedGet(agent, `http://127.0.0.1:${port}${urlPath}`);

/** Sequential requests on one keep-alive connection after a warm-up; the median latency. */
async function p50(agent: http.Agent, port: number, urlPath: string): Promise<number> {
  for (let i = 0; i < WARMUP_REQUESTS; i++) await get(agent, port, urlPath);
  const ms: number[] = [];
  for (let i = 0; i < REQUESTS; i++) ms.push((await get(agent, port, urlPath)).ms);
  return median(ms);
}

/** Fails the run if a route answers something else than the seeded data (a fast wrong answer is no result). */
async function checkAnswers(agent: http.Agent, port: number, n: number): Promise<void> {
  const json = async (p: string) => JSON.parse((await get(agent, port, p)).body) as unknown;
  const tasks = (await json(ROUTES.tasks)) as Array<{ id: number }>;
  const logs = (await json(ROUTES.logs(middleTask(n)))) as { logs: unknown[] };
  const hits = (await json(ROUTES.search)) as unknown[];
  if (tasks.length !== 100 || tasks[0]?.id !== n) throw new Error(`/api/tasks: ${tasks.length} tasks, first ${tasks[0]?.id}`);
  if (logs.logs.length !== LOGS_PER_TASK) throw new Error(`logs of task ${middleTask(n)}: ${logs.logs.length} lines`);
  if (hits.length !== SEARCH_HITS) throw new Error(`search "${SEARCH_WORD}": ${hits.length} messages, want ${SEARCH_HITS}`);
}

function rssMiB(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return kb ? Number(kb) / 1024 : NaN;
}

type Metric = 'boot' | Hot | 'rss';
type Sample = Record<Metric, number>;

async function measureRequests(f: BootedFactory, n: number): Promise<Omit<Sample, 'boot'>> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    await checkAnswers(agent, f.port, n);
    const tasks = await p50(agent, f.port, ROUTES.tasks);
    const logs = await p50(agent, f.port, ROUTES.logs(middleTask(n)));
    const search = await p50(agent, f.port, ROUTES.search);
    const health = await p50(agent, f.port, ROUTES.health);
    await sleep(IDLE_MS);
    return { tasks, logs, search, health, rss: rssMiB(f.child.pid!) };
  } finally {
    agent.destroy();
  }
}

/** BOOTS boots on `dataDir`; the requests run against the last one. */
async function measureSize(root: string, dataDir: string, nodeArgs: string[], n: number): Promise<Sample> {
  const boots: number[] = [];
  for (let b = 0; b < BOOTS; b++) {
    const booted = await bootFactory(root, dataDir, nodeArgs);
    try {
      boots.push(booted.bootMs);
      if (b === BOOTS - 1) return { boot: median(boots), ...(await measureRequests(booted, n)) };
    } finally {
      await stopFactory(booted);
    }
  }
  throw new Error('unreachable: BOOTS must be at least 1');
}

// ---------------------------------------------------------------- rows

const METRICS: Array<{ key: Metric; name: string; unit: string; hot?: Hot }> = [
  { key: 'boot', name: 'boot to /health 200', unit: `ms, median of ${BOOTS}` },
  { key: 'tasks', name: 'GET /api/tasks (default page) p50', unit: 'ms', hot: 'tasks' },
  { key: 'logs', name: 'GET /api/tasks/:id/logs (middle task) p50', unit: 'ms', hot: 'logs' },
  { key: 'search', name: `GET /api/messages?search= p50 (${SEARCH_HITS} hits)`, unit: 'ms', hot: 'search' },
  { key: 'health', name: 'GET /health p50 (queue counts)', unit: 'ms', hot: 'health' },
  { key: 'rss', name: 'idle RSS after the requests', unit: 'MiB, VmRSS' },
];

function toRows(samples: Map<number, Sample>, plans: Record<Hot, string>): Row[] {
  const largest = SIZES.at(-1)!;
  const perSize = (key: Metric) => SIZES.map((n) => `${kilo(n)} ${round(samples.get(n)![key], 2)}`).join(', ');
  return METRICS.map(({ key, name, unit, hot }) => ({
    name: `growth: ${name} (${kilo(largest)} vs 1k tasks)`,
    factory: samples.get(largest)![key],
    baseline: samples.get(1_000)![key],
    unit,
    target: '≤ 1.3×',
    notes: [`10k ${round(samples.get(10_000)![key], 2)}`, `sizes: ${perSize(key)}`, hot ? `plan@${kilo(largest)}: ${plans[hot]}` : '']
      .filter(Boolean)
      .join('; '),
  }));
}

export async function run(): Promise<Row[]> {
  const root = tempDir('factory-bench-growth-');
  const bundleDir = path.join(ROOT, 'dist', `bundle-bench-growth-${process.pid}`);
  try {
    prepareBootRoot(root);
    const nodeArgs = await buildBundle(bundleDir);
    const samples = new Map<number, Sample>();
    let plans = {} as Record<Hot, string>;
    for (const n of SIZES) {
      const dataDir = path.join(root, `data-${kilo(n)}`);
      const t0 = nowMs();
      const db = await openDb(path.join(dataDir, 'factory.db'));
      try {
        await seed(db, n);
        log(`growth: ${n} tasks, ${n * LOGS_PER_TASK} log lines, ${n} messages seeded in ${round(nowMs() - t0)} ms`);
        if (n === SIZES.at(-1)) plans = await explainHotQueries(db, n);
      } finally {
        await db.close();
      }
      // One unmeasured boot first: the bundle and node_modules come from disk once, not in the 1k sample.
      if (samples.size === 0) await stopFactory(await bootFactory(root, dataDir, nodeArgs));
      samples.set(n, await measureSize(root, dataDir, nodeArgs, n));
      log(`growth: ${kilo(n)}: ${JSON.stringify(samples.get(n), (_, v: unknown) => (typeof v === 'number' ? round(v, 2) : v))}`);
      // The data dir of a measured size is no longer needed; 100k tasks with their logs are ~200 MB.
      rmSync(dataDir, { recursive: true, force: true });
    }
    return toRows(samples, plans);
  } finally {
    removeTemp(root);
    rmSync(bundleDir, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) runStandalone(run);
