// The task list reads `last_output` from the task row (one query); the log writer keeps it. It must
// always be what the log itself says: the latest stdout or system line, at most 500 characters.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, tempDir, type TestEnv } from './helpers.js';
import { LogWriter } from '../src/orchestrator/log-writer.js';
import { LogsRepo } from '../src/db/repositories/logs.js';
import { listMigrations, migrate, openDb } from '../src/db/connection.js';

interface LogLine {
  stream: string;
  message: string;
}

describe('last_output', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await createTestEnv();
  });
  afterAll(async () => {
    await env.close();
  });

  const create = async (title: string) =>
    (await env.app.inject({ method: 'POST', url: '/api/tasks', payload: { title, repo: 'acme/web' } })).json() as { id: number };
  const listed = async (id: number) =>
    ((await env.app.inject({ url: '/api/tasks?limit=100' })).json() as Array<{ id: number; last_output: string | null }>).find(
      (t) => t.id === id,
    )!.last_output;
  /** The latest line of the task's log that is not stderr, as the logs route returns it. */
  const lastLogged = async (id: number) => {
    const logs = ((await env.app.inject({ url: `/api/tasks/${id}/logs?limit=1000` })).json() as { logs: LogLine[] }).logs;
    return logs.filter((l) => l.stream !== 'stderr').at(-1)?.message ?? null;
  };

  it('equals the last line of the log after every batch the writer stores', async () => {
    const t = await create('Talkative');
    expect(await listed(t.id)).toBeNull();
    const w = new LogWriter(env.services.repos.logs, t.id, (err) => {
      throw err;
    });
    w.write('stdout', 'first line');
    w.system('a system line');
    await w.flush();
    expect(await listed(t.id)).toBe('a system line');
    expect(await listed(t.id)).toBe(await lastLogged(t.id));
    // stderr lines after it are not the task's output.
    w.write('stderr', 'a warning');
    await w.flush();
    expect(await listed(t.id)).toBe('a system line');
    expect(await listed(t.id)).toBe(await lastLogged(t.id));
    // Many lines in one batch: the last one wins; the single-task route says the same.
    for (let i = 0; i < 700; i++) w.write('stdout', `line ${i}`);
    await w.flush();
    expect(await listed(t.id)).toBe('line 699');
    expect(await listed(t.id)).toBe(await lastLogged(t.id));
    expect((await env.app.inject({ url: `/api/tasks/${t.id}` })).json().last_output).toBe('line 699');
  });

  it('keeps the first 500 characters of a long last line', async () => {
    const t = await create('Long line');
    const long = `${'a'.repeat(400)}${'b'.repeat(400)}`;
    await env.services.repos.logs.appendMany([{ task_id: t.id, ts: new Date().toISOString(), stream: 'stdout', line: long }]);
    expect(await lastLogged(t.id)).toBe(long);
    expect(await listed(t.id)).toBe(long.slice(0, 500));
  });

  it('is cleared with the log when old logs are purged', async () => {
    const t = await create('Purged');
    await env.services.repos.logs.appendMany([{ task_id: t.id, ts: new Date().toISOString(), stream: 'stdout', line: 'soon gone' }]);
    await env.services.repos.tasks.transition(t.id, ['queued'], 'done', { completed_at: '2020-01-01T00:00:00.000Z' });
    expect(await listed(t.id)).toBe('soon gone');
    expect(await env.services.repos.logs.purgeEnded('2021-01-01T00:00:00.000Z')).toBe(1);
    expect(await lastLogged(t.id)).toBeNull();
    expect(await listed(t.id)).toBeNull();
  });
});

describe('the last_output migration', () => {
  it('fills last_output of tasks logged before it from their logs', async () => {
    const file = path.join(tempDir('factory-lastout-'), 'factory.db');
    const db = await openDb(file, { migrate: false });
    try {
      const all = listMigrations('sqlite');
      await migrate(
        db,
        all.filter((m) => m.version < 8),
      );
      const now = new Date().toISOString();
      await db.run(
        `INSERT INTO tasks (id, title, description, repo, agent_type, status, created_at, updated_at) VALUES (1, 't', '', 'acme/web', 'coder', 'done', ?, ?), (2, 'quiet', '', 'acme/web', 'coder', 'queued', ?, ?)`,
        now,
        now,
        now,
        now,
      );
      const logs = new LogsRepo(db);
      // Written the old way (no last_output column yet).
      for (const [stream, line] of [
        ['stdout', 'older'],
        ['system', 'newest output'],
        ['stderr', 'noise'],
      ])
        await db.run('INSERT INTO task_logs (task_id, ts, stream, line) VALUES (1, ?, ?, ?)', now, stream, line);
      expect(await migrate(db, all)).toContain(8);
      const rows = await db.all<{ id: number; last_output: string | null }>('SELECT id, last_output FROM tasks ORDER BY id');
      expect(rows).toEqual([
        { id: 1, last_output: 'newest output' },
        { id: 2, last_output: null },
      ]);
      // And from then on the repository keeps it.
      await logs.appendMany([{ task_id: 2, ts: now, stream: 'stdout', line: 'hello' }]);
      expect((await db.get<{ last_output: string }>('SELECT last_output FROM tasks WHERE id = 2'))?.last_output).toBe('hello');
    } finally {
      await db.close();
    }
  });
});
