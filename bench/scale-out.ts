// `npm run bench:scale`: scale-out over PostgreSQL against the single-process SQLite figure.
//
// 1. Claims per second. A queue pre-filled with N runnable tasks (one transaction) is drained by K
//    small claimer processes (this file run with `--claimer`: openDb + TasksRepo.claimNext + an
//    immediate guarded transition to done, in a loop), K = 1, 2, 4 on PostgreSQL. The bare baseline
//    is the same claimer, one process, on a SQLite file in a temp dir. Every claimer has opened its
//    database before the clock starts (a ready/go barrier); the clock stops when the last one has
//    found the queue empty. Checked: every task claimed once (attempts = 1, none > 1), total = N.
// 2. End-to-end fake tasks per minute. M tasks ([fake:slow ms=20 lines=3]: a few git operations
//    and a ~60 ms fake agent) POSTed to the API one after the other; measured from the first POST to
//    the last task's completed_at (set when it reaches in_review). Baseline: one `role: all` process
//    on SQLite. Scale-out: one `role: api` process + 1, 2, 4 `role: worker` processes on PostgreSQL.
//    Every Factory process is a real child (`node --import tsx src/main.ts`) with the fake claude and
//    a fake GitHub, max_concurrent_agents 2 each (the `all` baseline too, so ratios are per worker).
//    Checked: every task in_review, attempts = 1, exactly one agent run per task. A last reference
//    row gives one `all` process as many agent slots as the largest scale-out (8), which separates
//    "more processes" from "more concurrency".
// 3. Sleeping agents ([fake:slow ms=1500 lines=3], about 4.5 s each): 24 tasks on API + 1, 2, 4 workers,
//    as 2, but the agent's time dominates, as it does with real agents; reported against 1 worker.
// Also printed: the median round trip of one `SELECT 1` on SQLite, through Factory's PostgreSQL pool
// (src/db/postgres.ts) and through a plain async node-postgres client.
//
// PostgreSQL: FACTORY_BENCH_PG_URL if set (a database is created and dropped per scenario on it),
// else a throwaway server from scripts/pg-temp.sh on a free port, stopped at the end, also on error
// or Ctrl-C. BENCH_QUICK=1 shrinks N and M. A watchdog bounds the whole run.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
// Only what a claimer child needs is imported statically; the parent loads the rest on demand.
import { openDb } from '../src/db/connection.js';
import { TasksRepo } from '../src/db/repositories/tasks.js';
import { TaskQueueRepo } from '../src/db/repositories/task-queue.js';
import { rawClaimOps, type ClaimOps } from './raw-claimer.js';
import { startFactory, type FactoryProcess } from '../test/process-harness.js';
import { freshDatabase, type TestDatabase } from '../test/pg.js';

const SELF = fileURLToPath(import.meta.url);
const ROOT = path.resolve(path.dirname(SELF), '..');
const QUICK = process.env.BENCH_QUICK === '1' || process.env.BENCH_QUICK === 'true';
const N_CLAIMS = QUICK ? 500 : 2000;
const CLAIMERS = [1, 2, 4];
const GLOBAL_LIMIT = 8;
const M_TASKS = QUICK ? 12 : 40;
const WORKERS = [1, 2, 4];
const PER_PROCESS = 2;
const TASK_DESCRIPTION = '[fake:slow ms=20 lines=3]';
const M_SLEEPING = QUICK ? 8 : 24;
const SLEEPING_DESCRIPTION = '[fake:slow ms=1500 lines=3]';
const WATCHDOG_MS = 10 * 60_000;
const GITHUB_TOKEN = 'ghp_BENCHTOKEN_abcdef1234567890';

const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);
const nowMs = () => performance.now();
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- claimer child

/** Factory's own claim and settle, through its data layer. */
async function factoryClaimOps(target: string, owner: string, globalLimit: number): Promise<ClaimOps> {
  const db = await openDb(target, { migrate: false });
  const repo = new TasksRepo(db);
  const queue = new TaskQueueRepo(db);
  return {
    claim: () => queue.claimNext(owner, 60_000, new Date(), globalLimit),
    settle: async (task) =>
      (await repo.transition(
        task.id,
        ['in_progress'],
        'done',
        { completed_at: new Date().toISOString(), run_requested_at: null, lease_owner: null, lease_expires_at: null },
        { owner, attempts: task.attempts },
      )) !== undefined,
    close: () => db.close(),
  };
}

/** Child mode: open the queue, say ready, wait for "go", drain it, report, exit. */
async function claimerMain(target: string, owner: string, globalLimit: number, raw: boolean): Promise<void> {
  const ops = raw ? await rawClaimOps(target, owner) : await factoryClaimOps(target, owner, globalLimit);
  const send = (msg: unknown) => process.stdout.write(`${JSON.stringify(msg)}\n`);
  const lines = createInterface({ input: process.stdin });
  const go = new Promise<void>((resolve) =>
    lines.on('line', (l) => {
      if (l.trim() === 'go') resolve();
    }),
  );
  send({ ready: true });
  await go;
  const t0 = nowMs();
  let claimed = 0;
  for (;;) {
    const task = await ops.claim();
    if (!task) break;
    if (!(await ops.settle(task)))
      throw new Error(`task ${task.id}: claimed by ${owner} but the transition to done lost (someone else holds it?)`);
    claimed++;
  }
  send({ claimed, ms: nowMs() - t0 });
  lines.close();
  await ops.close();
  process.exit(0);
}

// ---------------------------------------------------------------- child process bookkeeping

const children = new Set<ChildProcess>();

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => child.once('exit', () => r()));
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
async function stopChild(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited(child);
  clearTimeout(timer);
}

const tempDirs = new Set<string>();

function makeTemp(prefix: string): string {
  const d = mkdtempSync(path.join(tmpdir(), prefix));
  tempDirs.add(d);
  return d;
}

function removeTemp(d: string): void {
  rmSync(d, { recursive: true, force: true });
  tempDirs.delete(d);
}

function killAllNow(): void {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
}

// ---------------------------------------------------------------- PostgreSQL

interface PgServer {
  url: string;
  stop(): void;
}

let pgServer: PgServer | null = null;

async function startPg(freePort: () => Promise<number>): Promise<PgServer> {
  const given = process.env.FACTORY_BENCH_PG_URL;
  if (given) {
    log('using FACTORY_BENCH_PG_URL');
    return {
      url: given,
      stop() {
        /* not ours */
      },
    };
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'factory-bench-pg-'));
  const port = await freePort();
  const script = path.join(ROOT, 'scripts', 'pg-temp.sh');
  let stopped = false;
  const server: PgServer = {
    url: '',
    stop() {
      if (stopped) return;
      stopped = true;
      try {
        execFileSync('bash', [script, 'stop', dir], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 60_000 });
        log('PostgreSQL stopped');
      } catch (err) {
        process.stderr.write(`[bench] warning: stopping PostgreSQL in ${dir} failed: ${(err as Error).message}\n`);
      }
    },
  };
  // Registered before it starts: a half-started server is stopped too.
  pgServer = server;
  log(`starting PostgreSQL on 127.0.0.1:${port} (scripts/pg-temp.sh)`);
  const url = await new Promise<string>((resolve, reject) => {
    execFile('bash', [script, 'start', dir, String(port)], { encoding: 'utf8', timeout: 180_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`pg-temp.sh start failed: ${stderr || err.message}`));
      else resolve(stdout.trim());
    });
  });
  server.url = url;
  return server;
}

// ---------------------------------------------------------------- CPU

/** Busy and total jiffies of all CPUs together (Linux /proc/stat); undefined elsewhere. */
function cpuTimes(): { busy: number; total: number } | undefined {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const idle = (f[3] ?? 0) + (f[4] ?? 0);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

/** Call at the start; the returned function gives "CPU n% busy" for the span since then. */
function cpuMeter(): () => string {
  const a = cpuTimes();
  return () => {
    const b = cpuTimes();
    if (!a || !b || b.total === a.total) return '';
    return `, CPU ${Math.round((100 * (b.busy - a.busy)) / (b.total - a.total))}% busy`;
  };
}

// ---------------------------------------------------------------- results

interface Result {
  /** Rows of a kind are compared with the first row of that kind (the baseline). */
  kind: 'claims' | 'e2e' | 'sleep';
  scenario: string;
  processes: string;
  value: number;
  unit: string;
  check: string;
  ok: boolean;
}

const fmt = (x: number) =>
  !Number.isFinite(x) ? String(x) : Math.abs(x) >= 1000 ? x.toFixed(0) : Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(2);

function formatTable(rows: Result[]): string {
  const base = (kind: Result['kind']) => rows.find((r) => r.kind === kind)?.value ?? NaN;
  const head = ['scenario', 'processes', 'throughput', 'vs baseline', 'check'];
  const body = rows.map((r) => {
    const b = base(r.kind);
    const ratio = Number.isFinite(r.value) && Number.isFinite(b) && b > 0 ? `${(r.value / b).toFixed(2)}x` : '-';
    return [r.scenario, r.processes, `${fmt(r.value)} ${r.unit}`, ratio, r.check];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n');
}

// ---------------------------------------------------------------- 0. one statement's round trip

/** Median µs of `SELECT 1` through the Db interface (SQLite in-process; PostgreSQL through the pool). */
async function roundTripUs(target: string, n = 2000): Promise<number> {
  const db = await openDb(target, { migrate: false });
  try {
    for (let i = 0; i < 200; i++) await db.get('SELECT 1 AS one');
    const xs: number[] = [];
    for (let i = 0; i < n; i++) {
      const t = nowMs();
      await db.get('SELECT 1 AS one');
      xs.push(nowMs() - t);
    }
    xs.sort((a, b) => a - b);
    return xs[Math.floor(xs.length / 2)]! * 1000;
  } finally {
    await db.close();
  }
}

/** The same through a plain async node-postgres client (no worker thread), for comparison. */
async function asyncPgRoundTripUs(url: string, n = 2000): Promise<number> {
  const { default: pg } = await import('pg');
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const q = { name: 'bench_rt', text: 'SELECT 1 AS one' };
    for (let i = 0; i < 200; i++) await c.query(q);
    const xs: number[] = [];
    for (let i = 0; i < n; i++) {
      const t = nowMs();
      await c.query(q);
      xs.push(nowMs() - t);
    }
    xs.sort((a, b) => a - b);
    return xs[Math.floor(xs.length / 2)]! * 1000;
  } finally {
    await c.end();
  }
}

// ---------------------------------------------------------------- 1. claims per second

interface Claimer {
  child: ChildProcess;
  ready: Promise<void>;
  result: Promise<{ claimed: number; ms: number }>;
  go(): void;
}

function spawnClaimer(target: string, owner: string, globalLimit: number, raw: boolean): Claimer {
  const child = track(
    spawn(process.execPath, ['--import', 'tsx', SELF, '--claimer', target, owner, String(globalLimit), raw ? 'raw' : 'factory'], {
      cwd: ROOT,
      stdio: ['pipe', 'pipe', 'inherit'],
    }),
  );
  const messages: Array<Record<string, unknown>> = [];
  const waiters = new Set<() => void>();
  createInterface({ input: child.stdout! }).on('line', (l) => {
    try {
      messages.push(JSON.parse(l) as Record<string, unknown>);
    } catch {
      return;
    }
    for (const w of [...waiters]) w();
  });
  const until = <T>(pick: (m: Record<string, unknown>) => T | undefined, what: string) =>
    new Promise<T>((resolve, reject) => {
      const check = () => {
        for (const m of messages) {
          const v = pick(m);
          if (v !== undefined) {
            waiters.delete(check);
            resolve(v);
            return;
          }
        }
      };
      waiters.add(check);
      child.once('exit', (code) => {
        waiters.delete(check);
        reject(new Error(`claimer ${owner} exited ${code} before ${what}`));
      });
      check();
    });
  const ready = until((m) => (m.ready ? true : undefined), 'it was ready').then(() => undefined);
  const result = until((m) => (typeof m.claimed === 'number' ? { claimed: m.claimed, ms: Number(m.ms) } : undefined), 'it reported');
  ready.catch(() => undefined);
  result.catch(() => undefined);
  return { child, ready, result, go: () => child.stdin!.write('go\n') };
}

async function claimScenario(label: string, target: string, k: number, globalLimit = 0, raw = false): Promise<Result> {
  const db = await openDb(target);
  try {
    await db.transaction(async (tx) => {
      const repo = new TasksRepo(tx);
      for (let i = 0; i < N_CLAIMS; i++) await repo.create({ title: `claim ${i}`, repo: 'acme/web', description: 'bench', run: true });
    });
    const kids = Array.from({ length: k }, (_, i) => spawnClaimer(target, `bench-claimer-${i + 1}`, globalLimit, raw));
    try {
      await Promise.all(kids.map((c) => c.ready));
      const cpu = cpuMeter();
      const t0 = nowMs();
      for (const c of kids) c.go();
      const got = await Promise.all(kids.map((c) => c.result));
      const ms = nowMs() - t0;
      const busy = cpu();
      const claimed = got.reduce((s, g) => s + g.claimed, 0);
      const row = (await db.get(`SELECT COUNT(*) AS total,
          COALESCE(SUM(CASE WHEN attempts > 1 THEN 1 ELSE 0 END), 0) AS twice,
          COALESCE(SUM(CASE WHEN status = 'done' AND attempts = 1 THEN 1 ELSE 0 END), 0) AS once
        FROM tasks`)) as { total: number; twice: number; once: number };
      const ok = claimed === N_CLAIMS && Number(row.twice) === 0 && Number(row.once) === N_CLAIMS && Number(row.total) === N_CLAIMS;
      const split = k > 1 ? ` (split ${got.map((g) => g.claimed).join('/')})` : '';
      log(`${label}: ${claimed} claims in ${ms.toFixed(0)} ms${split}; attempts>1: ${row.twice}`);
      return {
        kind: 'claims',
        scenario: label,
        processes: String(k),
        value: N_CLAIMS / (ms / 1000),
        unit: 'claims/s',
        ok,
        check: `${claimed}/${N_CLAIMS} claimed, ${row.twice} twice${split}${busy}${ok ? '' : ' FAILED'}`,
      };
    } finally {
      for (const c of kids) await stopChild(c.child, 2000);
    }
  } finally {
    await db.close();
  }
}

// ---------------------------------------------------------------- 2. end-to-end fake tasks

interface Proc extends FactoryProcess {
  name: string;
}

/** Tracked from spawn, so a process that never comes up is still killed at the end. */
async function startProcess(name: string, dir: string, config: Record<string, unknown>): Promise<Proc> {
  return { name, ...(await startFactory(dir, config, { GITHUB_TOKEN }, { onSpawn: track, timeoutMs: 60_000 })) };
}

interface TaskJson {
  id: number;
  status: string;
  attempts: number;
  completed_at: string | null;
  error: string;
}

interface E2eOptions {
  slots?: number;
  tasks?: number;
  description?: string;
}

async function e2eScenario(label: string, workers: number, pgUrl: string | null, opts: E2eOptions = {}): Promise<Result> {
  const { slots = PER_PROCESS, tasks: count = M_TASKS, description = TASK_DESCRIPTION } = opts;
  const { makeOrigin } = await import('../test/agent-harness.js');
  const { FakeGitHub } = await import('../test/fakes/http/index.js');
  const { FAKE_CLAUDE_PATH, readFakeClaudeLog } = await import('../test/fakes/claude-helpers.js');
  const dir = makeTemp('factory-bench-scale-');
  const github = new FakeGitHub({ validToken: GITHUB_TOKEN });
  let db: TestDatabase | null = null;
  const procs: Proc[] = [];
  try {
    const origins = path.join(dir, 'origins');
    makeOrigin(origins, 'acme', 'web');
    const githubUrl = await github.start();
    if (pgUrl) db = await freshDatabase('factory_bench', pgUrl);
    const claudeLog = (who: string) => path.join(dir, who, 'claude.jsonl');
    const config = (who: string, extra: Record<string, unknown>) => ({
      ...(db ? { database: { url: db.url } } : {}),
      github: { clone_base: origins, api_url: githubUrl },
      agent: {
        command: FAKE_CLAUDE_PATH,
        kill_grace_seconds: 1,
        sandbox: 'off',
        env: { FAKE_CLAUDE_LOG: claudeLog(who), FAKE_CLAUDE_STATE_DIR: path.join(dir, who, 'claude-state') },
      },
      queue: { poll_interval_ms: 200 },
      max_concurrent_agents: slots,
      default_org: 'acme',
      memory: { enabled: false },
      pr_loop: { enabled: false },
      log_level: 'warn',
      ...extra,
    });
    const names: string[] = [];
    let front: Proc;
    if (!pgUrl) {
      front = await startProcess('all', path.join(dir, 'all'), config('all', { role: 'all' }));
      procs.push(front);
      names.push('all');
    } else {
      front = await startProcess('api', path.join(dir, 'api'), config('api', { role: 'api' }));
      procs.push(front);
      const ws = Array.from({ length: workers }, (_, i) => `w${i + 1}`);
      const started = await Promise.allSettled(
        ws.map((w) => startProcess(w, path.join(dir, w), config(w, { role: 'worker', public_url: front.url }))),
      );
      for (const s of started) if (s.status === 'fulfilled') procs.push(s.value);
      const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
      if (failed) throw failed.reason;
      names.push(...ws);
    }

    const cpu = cpuMeter();
    const t0 = Date.now();
    const ids: number[] = [];
    for (let i = 0; i < count; i++) {
      const r = await front.api<{ id: number }>('POST', '/api/tasks?auto_run=true', {
        title: `Bench ${i}`,
        description,
        repo: 'acme/web',
      });
      if (r.status !== 201) throw new Error(`${label}: POST /api/tasks: HTTP ${r.status} ${JSON.stringify(r.json)}`);
      ids.push(r.json.id);
    }
    const deadline = Date.now() + 150_000;
    let tasks: TaskJson[] = [];
    for (;;) {
      const all = (await front.api<TaskJson[]>('GET', '/api/tasks?limit=500')).json;
      tasks = all.filter((t) => ids.includes(t.id));
      if (tasks.length === count && tasks.every((t) => ['in_review', 'done', 'failed', 'cancelled'].includes(t.status))) break;
      if (Date.now() > deadline) {
        const by = tasks.reduce<Record<string, number>>((a, t) => ({ ...a, [t.status]: (a[t.status] ?? 0) + 1 }), {});
        throw new Error(
          `${label}: tasks not finished after 150 s: ${JSON.stringify(by)}\n${procs.map((p) => `--- ${p.name}\n${p.output().slice(-2000)}`).join('\n')}`,
        );
      }
      await sleep(100);
    }
    const end = Math.max(...tasks.map((t) => Date.parse(t.completed_at ?? '')));
    const ms = end - t0;
    // Sampled when completion was seen (up to one 100 ms poll after `end`).
    const busy = cpu();

    const notReview = tasks.filter((t) => t.status !== 'in_review');
    const notOnce = tasks.filter((t) => t.attempts !== 1);
    const runsPer = names.map((n) => readFakeClaudeLog(claudeLog(n)).filter((c) => ids.includes(Number(c.env.FACTORY_TASK_ID))));
    const runs = runsPer.flat();
    const distinct = new Set(runs.map((c) => c.env.FACTORY_TASK_ID)).size;
    const ok = Number.isFinite(ms) && notReview.length === 0 && notOnce.length === 0 && runs.length === count && distinct === count;
    const split = names.length > 1 ? ` (runs ${runsPer.map((r) => r.length).join('/')})` : '';
    if (notReview.length)
      log(
        `${label}: not in_review: ${notReview
          .map((t) => `#${t.id} ${t.status} ${t.error}`)
          .join('; ')
          .slice(0, 500)}`,
      );
    log(`${label}: ${count} tasks in ${ms} ms${split}`);
    return {
      kind: 'e2e',
      scenario: label,
      processes: pgUrl ? `${workers + 1} (API + ${workers})` : '1',
      value: count / (ms / 60_000),
      unit: 'tasks/min',
      ok,
      check: `${count - notReview.length}/${count} in_review, ${notOnce.length} with attempts≠1, ${runs.length} agent runs${split}${busy}${ok ? '' : ' FAILED'}`,
    };
  } finally {
    await Promise.all(procs.map((p) => stopChild(p.child)));
    await github.stop().catch(() => undefined);
    await db?.drop().catch((err: unknown) => log(`dropping the database failed: ${(err as Error).message}`));
    removeTemp(dir);
  }
}

// ---------------------------------------------------------------- main

function machine(): string {
  let model = cpus()[0]?.model ?? 'unknown';
  try {
    model = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? model;
  } catch {
    /* not Linux */
  }
  return `${cpus().length} CPUs (${model}), Node ${process.version}, ${process.platform}/${process.arch}`;
}

function pgVersion(): string {
  try {
    const bins = execFileSync('bash', ['-c', 'ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1'], {
      encoding: 'utf8',
    }).trim();
    return bins ? execFileSync(path.join(bins, 'postgres'), ['--version'], { encoding: 'utf8' }).trim() : 'unknown';
  } catch {
    return 'unknown';
  }
}

let cleaning = false;
function emergencyCleanup(why: string, code: number): void {
  if (cleaning) return;
  cleaning = true;
  process.stderr.write(`[bench] ${why}: stopping children and PostgreSQL\n`);
  killAllNow();
  pgServer?.stop();
  for (const d of [...tempDirs]) {
    try {
      removeTemp(d);
    } catch {
      /* best effort */
    }
  }
  process.exit(code);
}

async function main(): Promise<void> {
  const watchdog = setTimeout(() => emergencyCleanup(`watchdog fired after ${WATCHDOG_MS / 1000} s`, 2), WATCHDOG_MS);
  watchdog.unref();
  process.once('SIGINT', () => emergencyCleanup('SIGINT', 130));
  process.once('SIGTERM', () => emergencyCleanup('SIGTERM', 143));

  const { freePort } = await import('../test/process-harness.js');
  const t0 = nowMs();
  const loadAtStart = loadavg()[0]!;
  const rows: Result[] = [];
  const sqliteDir = makeTemp('factory-bench-sqlite-');
  let roundTrip: { sqlite: number; pg: number; pgAsync: number } | null = null;
  let failed = false;
  try {
    const pg = await startPg(freePort);
    log(`PostgreSQL at ${pg.url.replace(/:[^:@/]*@/, ':***@')}`);

    roundTrip = {
      sqlite: await roundTripUs(path.join(sqliteDir, 'rt.db')),
      pg: await roundTripUs(pg.url),
      pgAsync: await asyncPgRoundTripUs(pg.url),
    };
    log(
      `SELECT 1 round trip, median: SQLite ${roundTrip.sqlite.toFixed(1)} µs, PostgreSQL (Factory's pool) ${roundTrip.pg.toFixed(1)} µs, plain async pg ${roundTrip.pgAsync.toFixed(1)} µs`,
    );
    log(`claims: N=${N_CLAIMS}`);
    rows.push(await claimScenario('claims: SQLite file, 1 process (bare baseline)', path.join(sqliteDir, 'claims.db'), 1));
    // The last row: the same with queue.global_max_concurrent set, which serialises claims under an
    // advisory lock and counts the running tasks on every claim (never reached here: each claim is
    // settled at once, so it measures only the price of the check).
    // The floor: one plain node-postgres client sending the same two statements, prepared.
    {
      const db = await freshDatabase('factory_bench', pg.url);
      try {
        rows.push(await claimScenario('claims: PostgreSQL, plain pg client, same SQL (floor)', db.url, 1, 0, true));
      } finally {
        await db.drop();
      }
    }
    for (const [k, limit] of [...CLAIMERS.map((c) => [c, 0] as const), [2, GLOBAL_LIMIT] as const]) {
      const db = await freshDatabase('factory_bench', pg.url);
      try {
        const label = `claims: PostgreSQL, ${k} claimer process${k > 1 ? 'es' : ''}${limit ? `, global_max_concurrent ${limit}` : ''}`;
        rows.push(await claimScenario(label, db.url, k, limit));
      } finally {
        await db.drop();
      }
    }

    log(`end-to-end: M=${M_TASKS} tasks "${TASK_DESCRIPTION}", max_concurrent_agents ${PER_PROCESS} per process`);
    rows.push(await e2eScenario('fake tasks: SQLite, role all (bare baseline)', 1, null));
    for (const w of WORKERS) rows.push(await e2eScenario(`fake tasks: PostgreSQL, API + ${w} worker${w > 1 ? 's' : ''}`, w, pg.url));
    // Reference: as many agent slots as the largest scale-out, in one process. Tells extra processes
    // apart from extra concurrency.
    const slots = PER_PROCESS * Math.max(...WORKERS);
    rows.push(await e2eScenario(`fake tasks: SQLite, role all, max_concurrent_agents ${slots} (reference)`, 1, null, { slots }));

    // Sleeping agents: the agent's time dominates, as with real agents; this is what more workers buy.
    log(`sleeping agents: M=${M_SLEEPING} tasks "${SLEEPING_DESCRIPTION}"`);
    const sleepRows: Result[] = [];
    for (const w of WORKERS) {
      const label = `sleeping agents (~4.5 s): PostgreSQL, API + ${w} worker${w > 1 ? 's' : ''}`;
      sleepRows.push(await e2eScenario(label, w, pg.url, { tasks: M_SLEEPING, description: SLEEPING_DESCRIPTION }));
    }
    for (const r of sleepRows) r.kind = 'sleep';
    rows.push(...sleepRows);
  } catch (err) {
    failed = true;
    console.error('bench scale-out failed:', err);
  } finally {
    killAllNow();
    pgServer?.stop();
    removeTemp(sqliteDir);
  }

  console.log(`\n## Scale-out (PostgreSQL)${QUICK ? ' (BENCH_QUICK=1)' : ''}\n`);
  console.log(`Machine: ${machine()}; ${pgVersion()} (pg-temp.sh: fsync=off, synchronous_commit=off)`);
  console.log(`Load average (1 min) at start ${loadAtStart.toFixed(2)}, at end ${loadavg()[0]!.toFixed(2)}`);
  console.log(
    `Ratio = throughput / the first row of its kind, measured in this run: SQLite in one process for claims and fake tasks, one worker for sleeping agents; higher is better.\n`,
  );
  console.log(formatTable(rows));
  const cores = cpus().length;
  const rt = roundTrip
    ? `\n- One statement (SELECT 1), median: SQLite ${roundTrip.sqlite.toFixed(1)} µs; PostgreSQL through Factory's
  pool ${roundTrip.pg.toFixed(1)} µs; a plain async node-postgres client ${roundTrip.pgAsync.toFixed(1)} µs. A claim + settle is
  2 statements on either engine (the SKIP LOCKED UPDATE, the guarded UPDATE), and 6 round trips on
  PostgreSQL with global_max_concurrent (BEGIN, advisory lock, COUNT, the claim, COMMIT, the settle).`
    : '';
  console.log(`\nNotes:
- This machine has ${cores} core${cores === 1 ? '' : 's'} (os.cpus().length). PostgreSQL, the API and every worker/claimer share
  them, so more processes than cores mostly measures contention, not what separate hosts would give.
- Claims: N=${N_CLAIMS} runnable tasks, each claimNext + guarded transition to done; the clock runs from "go"
  (every claimer has its database open) until the last claimer finds the queue empty. The "floor" row
  sends the same two statements from one plain node-postgres client, prepared, with no pool or query
  builder: what any Node program pays for them on this machine (bench/raw-claimer.ts).
- Fake tasks: M=${M_TASKS} x "${TASK_DESCRIPTION}", max_concurrent_agents ${PER_PROCESS} per process unless stated; from the first POST to
  the last task's completed_at (in_review). The fake agent does no real work (about 60 ms of sleeps), so
  the figure is Factory's own per-task cost (git, processes, database), not agent throughput.${rt}
- "processes" counts Factory and claimer processes; the PostgreSQL server comes on top.
- "CPU n% busy" is the whole machine (/proc/stat) during the measured span, other load included.`);
  console.log(`\nTotal ${((nowMs() - t0) / 1000).toFixed(1)} s`);
  process.exit(failed || rows.some((r) => !r.ok) ? 1 : 0);
}

if (process.argv[2] === '--claimer') {
  claimerMain(process.argv[3]!, process.argv[4]!, Number(process.argv[5] ?? 0), process.argv[6] === 'raw').catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
} else {
  void main();
}
