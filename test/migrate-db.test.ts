// `factory migrate-db` end to end: a real SQLite database filled through the repositories, copied by
// the real bin/factory.js in a child process into a fresh PostgreSQL database, then compared row by
// row. Also: refusing a non-empty target, never printing a password, and the way back to SQLite.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDb, type Db } from '../src/db/connection.js';
import { EnvironmentsRepo } from '../src/db/repositories/environments.js';
import { EventsRepo } from '../src/db/repositories/events.js';
import { KvRepo } from '../src/db/repositories/kv.js';
import { LogsRepo, type NewLog } from '../src/db/repositories/logs.js';
import { MessagesRepo } from '../src/db/repositories/messages.js';
import { OutboxRepo } from '../src/db/repositories/outbox.js';
import { PrWatchRepo } from '../src/db/repositories/pr-watch.js';
import { RunsRepo } from '../src/db/repositories/runs.js';
import { SeenRepo } from '../src/db/repositories/seen.js';
import { TasksRepo } from '../src/db/repositories/tasks.js';
import { WorkersRepo } from '../src/db/repositories/workers.js';
import { HandoffsRepo, WorkflowsRepo } from '../src/db/repositories/workflows.js';
import { ROOT, removeDir, tempDir } from './helpers.js';
import { freshDatabase, hasPg, PG_SKIP_NOTE, PG_URL, type TestDatabase } from './pg.js';

const BIN = path.join(ROOT, 'bin', 'factory.js');
const PASSWORD = 'S3cretPw!';
const LOG_LINES = 2_345; // more than two default batches
const LEASE_MS = 4_102_444_800_123; // 2100-01-01, epoch ms

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  out: string;
}

const dirs: string[] = [];
const dbs: TestDatabase[] = [];

afterAll(async () => {
  for (const d of dbs) await d.drop().catch(() => {});
  for (const d of dirs) removeDir(d);
});

/** A working directory with a minimal config.yml, as an operator would have. */
function workDir(): string {
  const dir = tempDir('factory-migrate-db-');
  dirs.push(dir);
  mkdirSync(path.join(dir, 'home'));
  writeFileSync(path.join(dir, 'config.yml'), `data_dir: ${JSON.stringify(path.join(dir, 'data'))}\nmemory:\n  enabled: false\n`);
  return dir;
}

function factory(dir: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      {
        cwd: dir,
        timeout: 120_000,
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          HOME: path.join(dir, 'home'),
          FACTORY_CONFIG: path.join(dir, 'config.yml'),
          ...env,
        },
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr), out: `${stdout}${stderr}` });
      },
    );
  });
}

/** Fills an SQLite database through the repositories, with awkward values everywhere. */
async function seed(file: string): Promise<void> {
  const db = await openDb(file);
  try {
    const tasks = new TasksRepo(db);
    const workflows = new WorkflowsRepo(db);
    const messages = new MessagesRepo(db);
    const wf = await workflows.create({
      name: 'code_review',
      title: 'Überprüfung „Login“ 🚀',
      description: 'it\'s "quoted"\nand\ttabbed',
      repo: 'acme/app',
      max_iterations: 3,
      plane_issue_id: '',
      definition: JSON.stringify({ steps: ['coder', 'reviewer'], note: 'ß→∑ 中文' }),
      steps: [
        { agent: 'coder', output: 'code' },
        { agent: 'reviewer', input: 'code', condition: "output contains 'APPROVED'", loop_to: 'coder' },
      ],
    });
    await workflows.update(wf.id, { outputs: JSON.stringify({ code: 'line1\nline2 \\ backslash' }), result: 'approved' });
    const t1 = await tasks.create({
      title: 'Fix "login" — naïve façade 👩‍💻',
      description: "Robert'); DROP TABLE tasks;--\n\nsecond paragraph",
      repo: 'acme/app',
      run: true,
    });
    const t2 = await tasks.create({
      title: 'step 1',
      workflow_id: wf.id,
      workflow_step: 0,
      parent_task_id: t1.id,
      plane_sequence_id: 42,
      pr_number: 7,
    });
    const t3 = await tasks.create({ title: 'no description', agent_type: 'reviewer', base_branch: 'main' });
    // A parent with a higher id than its child: the copy must set it after both rows exist.
    await tasks.setParent(t1.id, t3.id);
    await tasks.transition(t1.id, ['queued'], 'in_progress', {
      lease_owner: 'host-a:1234',
      lease_expires_at: LEASE_MS,
      cost_usd: 0.123456789,
      input_tokens: 9_007_199_254_740,
      clarification_context: '',
      session_id: 'sess-ünïcode',
      attempts: 1,
    });
    await tasks.transition(t3.id, ['queued'], 'done', {
      result_summary: 'ok\r\nwindows line',
      completed_at: new Date().toISOString(),
      pr_state: 'merged',
      ci_conclusion: 'success',
    });
    for (let i = 0; i < 5; i++) await tasks.create({ title: `filler ${i}`, description: i % 2 ? '' : 'x'.repeat(10_000) });
    await workflows.updateStep(wf.id, 0, { task_id: t2.id, status: 'running', started_at: new Date().toISOString() });

    const logs: NewLog[] = [];
    for (let i = 0; i < LOG_LINES; i++) {
      logs.push({
        task_id: i % 3 === 0 ? t1.id : t2.id,
        ts: new Date(1_700_000_000_000 + i).toISOString(),
        stream: i % 7 === 0 ? 'stderr' : 'stdout',
        line: `line ${i} ${'é'.repeat(i % 5)} "q" 'q'`,
      });
    }
    logs.push({ task_id: t1.id, ts: new Date().toISOString(), stream: 'system', line: 'binary\u0000output' });
    await new LogsRepo(db).appendMany(logs);

    const runs = new RunsRepo(db);
    const r1 = await runs.start(t1.id, 1, 'run', 'host-ä');
    await runs.update(r1.id, {
      ended_at: new Date().toISOString(),
      outcome: 'failed',
      error: 'usage limit\nreset at 5pm',
      pid: 4_194_303,
      cost_usd: 1.5,
      duration_ms: 86_400_000,
    });
    await runs.start(t1.id, 2, 'resume');

    const m1 = await messages.create({
      sender: 'task-1:coder',
      recipient: 'user',
      task_id: t1.id,
      message: 'Authentifizierung fehlgeschlagen: token "abc" expired',
      message_type: 'question',
    });
    const m2 = await messages.create({
      sender: 'user',
      recipient: 'task-1:coder',
      task_id: t1.id,
      message: 'Use the refresh token\nthen retry',
      reply_to: m1.id,
    });
    await messages.create({
      sender: 'task-1:coder',
      recipient: null,
      workflow_id: wf.id,
      message: 'Done 👍',
      message_type: 'status',
      reply_to: m2.id,
    });
    await messages.create({ sender: 'system', message: "it's fine", message_type: 'error' });
    await new HandoffsRepo(db).create({
      from_task_id: t2.id,
      to_task_id: null,
      workflow_id: wf.id,
      output_type: 'code',
      content: 'diff --git a/x b/x\n+ü',
      summary: '',
    });

    const events = new EventsRepo(db);
    for (let i = 0; i < 5; i++) await events.append('task.updated', i === 4 ? null : t1.id, { i, text: 'ünïcode "json"' });
    // The newest event is gone: its id must still not be handed out again by the target.
    await db.run('DELETE FROM events WHERE id = (SELECT MAX(id) FROM events)');

    const outbox = new OutboxRepo(db);
    await outbox.enqueue('telegram', { text: 'Hallo 👋' }, { orderKey: 'chat:1', dedupeKey: 'tg:1' });
    const dead = await outbox.enqueue('plane', { comment: "it's" }, { notBefore: 1_900_000_000_000 });
    await outbox.markDead(dead.row.id, 'HTTP 400: bad request');
    const kv = new KvRepo(db);
    await kv.set('queue.paused', { paused: true, reason: 'Wartung „heute“', until: null });
    await kv.set('budget', 12.5);
    await new SeenRepo(db).mark('plane:comment:ä-1', true);
    await new PrWatchRepo(db).upsert(t1.id, 'acme', 'app', 7);
    await new WorkersRepo(db).heartbeat({ id: 'host-a:1234', host: 'host-a', pid: 1234, role: 'all', max_concurrent: 2, running: [t1.id] });
    await new EnvironmentsRepo(db).upsertLive({
      task_id: t1.id,
      repo: 'acme/app',
      project: `factory-task-${t1.id}`,
      env_type: 'preview',
      service: 'web',
      port: 41_234,
      host: '127.0.0.1',
      url: 'http://127.0.0.1:41234',
      pr_number: null,
      compose_file: 'docker-compose.yml',
      override_file: '/tmp/o.yml',
      worktree: '/tmp/wt',
      machine: 'host-a',
    });
  } finally {
    await db.close();
  }
}

/** The data tables of an SQLite file, as migrate-db sees them. */
function sqliteTables(raw: Database.Database): string[] {
  return (
    raw
      .prepare(
        `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
    AND name NOT LIKE 'messages_fts%' AND name <> 'schema_migrations' ORDER BY name`,
      )
      .all() as { name: string }[]
  ).map((r) => r.name);
}

const orderBy = (table: string) => (['kv', 'external_seen'].includes(table) ? 'key' : table === 'pr_watch' ? 'task_id' : 'id');

/** NUL cannot be stored in PostgreSQL text: migrate-db writes U+FFFD instead. */
const norm = (v: unknown, nul: boolean) => {
  if (v === null || v === undefined) return null;
  if (typeof v === 'number' || typeof v === 'bigint') return String(v);
  if (typeof v === 'string' && nul) return v.replace(/\u0000/g, '\uFFFD');
  return v;
};

/** Every row of every table equal, column by column (PostgreSQL int8 arrives as a string here). */
function expectSameRows(table: string, want: Record<string, unknown>[], got: Record<string, unknown>[], nul: boolean): void {
  expect(got.length, `${table}: row count`).toBe(want.length);
  want.forEach((row, i) => {
    for (const [col, v] of Object.entries(row)) {
      expect(got[i]!, `${table} row ${i}: column ${col} missing`).toHaveProperty(col);
      expect(norm(got[i]![col], nul), `${table} row ${i} (id ${String(row.id ?? row.key ?? row.task_id)}), column ${col}`).toEqual(
        norm(v, nul),
      );
    }
  });
}

describe('factory migrate-db', () => {
  let dir: string;
  let sourceFile: string;
  let target: TestDatabase | undefined;
  let first: Run | undefined;

  beforeAll(async () => {
    dir = workDir();
    sourceFile = path.join(dir, 'data', 'factory.db');
    await seed(sourceFile);
  });

  it.skipIf(!hasPg)(`copies every row of an SQLite database into an empty PostgreSQL database${PG_SKIP_NOTE}`, async () => {
    target = await freshDatabase('factory_mdb');
    dbs.push(target);
    first = await factory(dir, ['migrate-db', '--from', `sqlite:${sourceFile}`, '--to', target.url]);
    expect(first.code, first.out).toBe(0);
    expect(first.stdout).toMatch(new RegExp(`^task_logs: ${LOG_LINES + 1} rows$`, 'm'));
    expect(first.stdout).toMatch(/^tasks: 8 rows$/m);
    expect(first.stdout).toMatch(/^messages: 4 rows$/m);
    expect(first.stdout).toMatch(/^done: .*row counts verified$/m);
    // The line with NUL, and the task's last_output that repeats it.
    expect(first.stdout).toMatch(/2 text value\(s\) contained NUL/);
    // Parents before children.
    const order = [...first.stdout.matchAll(/^(\w+): \d+ rows$/gm)].map((m) => m[1]!);
    expect(order.indexOf('workflows')).toBeLessThan(order.indexOf('tasks'));
    expect(order.indexOf('tasks')).toBeLessThan(order.indexOf('task_logs'));
    expect(order.indexOf('tasks')).toBeLessThan(order.indexOf('messages'));
    expect(order).not.toContain('messages_fts');
    expect(order).not.toContain('schema_migrations');

    const raw = new Database(sourceFile, { readonly: true });
    try {
      const tables = sqliteTables(raw);
      expect(tables).toEqual(
        expect.arrayContaining([
          'tasks',
          'task_logs',
          'task_runs',
          'messages',
          'workflows',
          'workflow_steps',
          'handoffs',
          'events',
          'outbox',
          'kv',
          'external_seen',
          'pr_watch',
          'workers',
          'environments',
        ]),
      );
      for (const t of tables) {
        const want = raw.prepare(`SELECT * FROM ${t} ORDER BY ${orderBy(t)}`).all() as Record<string, unknown>[];
        expect(want.length, `${t} has test data`).toBeGreaterThan(0);
        const got = await target.query(`SELECT * FROM ${t} ORDER BY ${orderBy(t)}`);
        expectSameRows(t, want, got, true);
      }
      const nulLine = await target.query<{ line: string }>(`SELECT line FROM task_logs WHERE stream = 'system'`);
      expect(nulLine.map((r) => r.line)).toEqual(['binary\uFFFDoutput']);

      // New rows continue after the copied ids; a deleted newest id is not handed out again.
      const maxTask = (raw.prepare('SELECT MAX(id) AS m FROM tasks').get() as { m: number }).m;
      const eventsHigh = (raw.prepare(`SELECT seq FROM sqlite_sequence WHERE name = 'events'`).get() as { seq: number }).seq;
      expect(eventsHigh).toBeGreaterThan((raw.prepare('SELECT MAX(id) AS m FROM events').get() as { m: number }).m);
      const maxMessage = (raw.prepare('SELECT MAX(id) AS m FROM messages').get() as { m: number }).m;
      const db: Db = await openDb(target.url);
      try {
        expect((await new TasksRepo(db).create({ title: 'after the move' })).id).toBe(maxTask + 1);
        expect((await new EventsRepo(db).append('task.created', null, {})).id).toBe(eventsHigh + 1);
        const messages = new MessagesRepo(db);
        expect((await messages.create({ sender: 'user', message: 'new one', reply_to: 1 })).id).toBe(maxMessage + 1);
        // Full-text search works on the copied rows (PostgreSQL's expression index, not FTS5).
        expect((await messages.list({ search: 'Authentifizierung' })).map((m) => m.message)).toEqual([
          'Authentifizierung fehlgeschlagen: token "abc" expired',
        ]);
        expect((await messages.list({ search: 'refresh tok' })).map((m) => m.reply_to)).toEqual([1]);
        expect((await messages.thread(1)).map((m) => m.id)).toEqual([1, 2, 3, maxMessage + 1]);
      } finally {
        await db.close();
      }
    } finally {
      raw.close();
    }
  });

  it.skipIf(!hasPg)(`refuses a target that already holds data and changes nothing${PG_SKIP_NOTE}`, async () => {
    expect(target, 'the first test ran').toBeDefined();
    const snapshot = async () => {
      const out: Record<string, unknown> = {};
      for (const t of ['tasks', 'task_logs', 'messages', 'workflows', 'events', 'kv', 'outbox']) {
        out[t] = await target!.query(`SELECT COUNT(*)::int AS n, MAX(${orderBy(t)})::text AS m FROM ${t}`);
      }
      out.seq = await target!.query(`SELECT last_value::text AS v FROM tasks_id_seq`);
      out.migrations = await target!.query('SELECT version, applied_at FROM schema_migrations ORDER BY version');
      return out;
    };
    const before = await snapshot();
    const again = await factory(dir, ['migrate-db', '--from', `sqlite:${sourceFile}`, '--to', target!.url]);
    expect(again.code, again.out).toBe(1);
    expect(again.stderr).toMatch(/already holds data \(.*tasks: 9 rows.*\).*never merges/);
    expect(again.stderr).toMatch(/Nothing was copied/);
    expect(again.stdout).not.toMatch(/rows$/m);
    expect(await snapshot()).toEqual(before);
  });

  it.skipIf(!hasPg)(`never prints the password of a database URL${PG_SKIP_NOTE}`, async () => {
    const role = `factory_mdb_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    const db = await freshDatabase('factory_mdbpw');
    dbs.push(db);
    try {
      await admin.query(`CREATE ROLE ${role} LOGIN PASSWORD '${PASSWORD}'`);
      await admin.query(`ALTER DATABASE ${db.name} OWNER TO ${role}`);
      const u = new URL(db.url);
      u.username = role;
      u.password = PASSWORD;
      const url = u.toString();
      const env = { FACTORY_DATABASE_URL: url };

      const copy = await factory(dir, ['migrate-db', '--from', `sqlite:${sourceFile}`, '--to', url]);
      expect(copy.code, copy.out).toBe(0);
      const refused = await factory(dir, ['migrate-db', '--from', `sqlite:${sourceFile}`, '--to', url]);
      expect(refused.code, refused.out).toBe(1);
      const migrate = await factory(dir, ['migrate'], env);
      expect(migrate.code, migrate.out).toBe(0);
      expect(migrate.stdout).toMatch(/schema version \d+ \(up to date\)/);
      expect(migrate.stdout).toContain(`${u.hostname}:${u.port}/${db.name}`);
      const config = await factory(dir, ['config', '--json'], env);
      expect(config.code, config.out).toBe(0);
      const shown = (JSON.parse(config.stdout) as { database: { url: string; dialect: string } }).database;
      expect(shown.dialect).toBe('postgres');
      expect(shown.url).toContain(`${u.hostname}:${u.port}/${db.name}`);
      // Another password in the URL (trust authentication lets it in; the target is refused as not empty).
      const bad = new URL(url);
      bad.password = 'Wr0ngPassw0rd';
      const badRun = await factory(dir, ['migrate-db', '--from', `sqlite:${sourceFile}`, '--to', bad.toString()]);

      for (const r of [copy, refused, migrate, config, badRun]) {
        expect(r.out).not.toContain(PASSWORD);
        expect(r.out).not.toContain(encodeURIComponent(PASSWORD));
        expect(r.out).not.toContain('Wr0ngPassw0rd');
      }
      expect(copy.stdout).toContain(`${u.hostname}:${u.port}/${db.name}`);
      expect(copy.stdout).toMatch(/\*\*\*|\[REDACTED\]/);
    } finally {
      await db.drop();
      await admin.query(`DROP ROLE IF EXISTS ${role}`).catch(() => {});
      await admin.end();
    }
  });

  it.skipIf(!hasPg)(`copies back from PostgreSQL into a new SQLite file, FTS included${PG_SKIP_NOTE}`, async () => {
    const pgDb = await freshDatabase('factory_mdbrt');
    dbs.push(pgDb);
    const there = await factory(dir, ['migrate-db', '--from', sourceFile, '--to', pgDb.url, '--batch', '97']);
    expect(there.code, there.out).toBe(0);
    // Relative path: resolved against the directory the command was started in.
    const back = await factory(dir, ['migrate-db', '--from', pgDb.url, '--to', 'sqlite:copy/factory.db', '--batch=500']);
    expect(back.code, back.out).toBe(0);
    const copyFile = path.join(dir, 'copy', 'factory.db');
    const a = new Database(sourceFile, { readonly: true });
    const b = new Database(copyFile, { readonly: true });
    try {
      expect(sqliteTables(b)).toEqual(sqliteTables(a));
      for (const t of sqliteTables(a)) {
        const want = a.prepare(`SELECT * FROM ${t} ORDER BY ${orderBy(t)}`).all() as Record<string, unknown>[];
        const got = b.prepare(`SELECT * FROM ${t} ORDER BY ${orderBy(t)}`).all() as Record<string, unknown>[];
        expectSameRows(t, want, got, true);
      }
      // The id high-water mark travelled both ways.
      const seq = (db: Database.Database) =>
        (db.prepare(`SELECT seq FROM sqlite_sequence WHERE name = 'events'`).get() as { seq: number }).seq;
      expect(seq(b)).toBe(seq(a));
    } finally {
      a.close();
      b.close();
    }
    const db = await openDb(copyFile);
    try {
      expect(await new MessagesRepo(db).list({ search: 'fehlgeschl' })).toHaveLength(1);
    } finally {
      await db.close();
    }
  });

  it('refuses while the data directory of the source is in use', async () => {
    // A live pid (this test process) in factory.lock, as a running server leaves it.
    const lock = path.join(dir, 'data', 'factory.lock');
    writeFileSync(lock, String(process.pid));
    try {
      const r = await factory(dir, ['migrate-db', '--from', `sqlite:${sourceFile}`, '--to', 'postgres://nobody@127.0.0.1:1/none']);
      expect(r.code, r.out).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`in use by Factory process ${process.pid}.*must be stopped`));
    } finally {
      removeDir(lock);
    }
  });

  it('explains its usage and rejects bad arguments', async () => {
    const noTarget = await factory(dir, ['migrate-db', '--from', sourceFile]);
    expect(noTarget.code).toBe(2);
    expect(noTarget.stderr).toMatch(/--to is required\nusage: factory migrate-db --from/);
    const badBatch = await factory(dir, ['migrate-db', '--from', sourceFile, '--to', 'sqlite:x.db', '--batch', '0']);
    expect(badBatch.code).toBe(2);
    const missing = await factory(dir, ['migrate-db', '--from', path.join(dir, 'nope.db'), '--to', 'sqlite:x.db']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/nope\.db does not exist/);
    const help = await factory(dir, ['help']);
    expect(help.stdout).toMatch(/migrate-db --from <db> --to <db>/);
    expect(help.stdout).toMatch(/serve \[--role all\|api\|worker\]/);
  });

  it('serve --role accepts only all, api or worker', async () => {
    const r = await factory(dir, ['serve', '--role', 'boss']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--role must be all, api or worker, not "boss"/);
    const none = await factory(dir, ['serve', '--role']);
    expect(none.code).toBe(2);
    // A valid role reaches the config (FACTORY_ROLE), which refuses a worker on SQLite before anything starts.
    const worker = await factory(dir, ['serve', '--role=worker']);
    expect(worker.code, worker.out).toBe(78);
    expect(worker.stderr).toMatch(/role: "worker" needs database\.url = postgres/);
  });
});
