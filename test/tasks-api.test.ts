import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, gatedExecutor, waitFor, type TestEnv } from './helpers.js';

describe('tasks API', () => {
  let env: TestEnv;
  const gate = gatedExecutor();
  beforeAll(async () => {
    env = await createTestEnv({ executor: gate.executor, overrides: { default_org: 'acme', max_concurrent_agents: 2 } });
  });
  afterAll(async () => {
    gate.releaseAll();
    await env.close();
  });

  const post = (url: string, payload?: unknown) => env.app.inject({ method: 'POST', url, payload: payload as object });

  it('creates a task with defaults and reads it back', async () => {
    const res = await post('/api/tasks', { title: 'Add auth', description: 'JWT', repo: 'acme/web', extra: 'ignored' });
    expect(res.statusCode).toBe(201);
    const t = res.json();
    expect(t).toMatchObject({
      title: 'Add auth',
      description: 'JWT',
      repo: 'acme/web',
      agent_type: 'coder',
      status: 'queued',
      plane_issue_id: '',
      pr_url: '',
      run_requested: false,
      last_output: null,
    });
    expect(t.created_at).toMatch(/Z$/);
    const got = await env.app.inject({ url: `/api/tasks/${t.id}` });
    expect(got.statusCode).toBe(200);
    expect(got.json().id).toBe(t.id);
    // a queued task that was not asked to run stays put
    expect(gate.started).not.toContain(t.id);
  });

  it('rejects bad input with 400 naming the field, and stores nothing', async () => {
    const before = (await env.app.inject({ url: '/api/tasks?limit=500' })).json().length;
    const cases: Array<[unknown, string]> = [
      [{}, 'title'],
      [{ title: '' }, 'title'],
      [{ title: 42 }, 'title'],
      [{ title: 'x', agent_type: 'wizard' }, 'agent_type'],
      [{ title: 'x', repo: '../etc' }, 'repo'],
      [{ title: 'x', repo: '/abs/path' }, 'repo'],
      [{ title: 'x', repo: 'https://evil.example/x/y' }, 'repo'],
      [{ title: 'x', repo: 'a/b/c' }, 'repo'],
      [{ title: 'x', description: ['no'] }, 'description'],
      [{ title: 'x', plane_sequence_id: 'seven' }, 'plane_sequence_id'],
      [{ title: 'x', base_branch: '--upload-pack=evil' }, 'base_branch'],
      [{ title: 'x', base_branch: 'main:refs/heads/other' }, 'base_branch'],
      [{ title: 'x', base_branch: '../main' }, 'base_branch'],
      [{ title: 'x', base_branch: 'has space' }, 'base_branch'],
      [{ title: 'x', base_branch: 7 }, 'base_branch'],
      [[1, 2], 'body'],
    ];
    for (const [payload, field] of cases) {
      const res = await post('/api/tasks', payload);
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      const body = res.json();
      expect(body.error.field, JSON.stringify(payload)).toBe(field);
      expect(typeof body.detail).toBe('string');
      expect(body.error.code).toBe('invalid_input');
    }
    // no repo and no plane.default_repo to fall back on
    const noRepo = await post('/api/tasks', { title: 'x' });
    expect(noRepo.statusCode).toBe(400);
    expect(noRepo.json().error.field).toBe('repo');
    const after = (await env.app.inject({ url: '/api/tasks?limit=500' })).json().length;
    expect(after).toBe(before);
  });

  it('answers invalid JSON, non-JSON and oversized bodies with 4xx JSON', async () => {
    const bad = await env.app.inject({
      method: 'POST',
      url: '/api/tasks',
      headers: { 'content-type': 'application/json' },
      payload: '{"title":',
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.code).toBe('invalid_json');
    const text = await env.app.inject({ method: 'POST', url: '/api/tasks', headers: { 'content-type': 'text/csv' }, payload: 'a,b' });
    expect(text.statusCode).toBe(415);
    expect(text.json().error.code).toBe('unsupported_media_type');
    const huge = await post('/api/tasks', { title: 'x', description: 'y'.repeat(2_000_000) });
    expect(huge.statusCode).toBe(413);
    expect(huge.json().detail).toBeTypeOf('string');
    const empty = await env.app.inject({ method: 'POST', url: '/api/tasks' });
    expect(empty.statusCode).toBe(400);
  });

  it('404s and 400s on ids and routes', async () => {
    expect((await env.app.inject({ url: '/api/tasks/999999' })).json()).toMatchObject({
      error: { code: 'not_found' },
      detail: 'Task not found',
    });
    const nonInt = await env.app.inject({ url: '/api/tasks/abc' });
    expect(nonInt.statusCode).toBe(400);
    expect(nonInt.json().error.field).toBe('id');
    expect((await env.app.inject({ url: '/api/tasks/-1' })).statusCode).toBe(400);
    expect((await env.app.inject({ url: '/api/tasks/1.5' })).statusCode).toBe(400);
    expect((await post('/api/tasks/999999/run')).statusCode).toBe(404);
    expect((await post('/api/tasks/999999/cancel')).statusCode).toBe(404);
    expect((await env.app.inject({ url: '/api/tasks/999999/logs' })).statusCode).toBe(404);
    const nowhere = await env.app.inject({ url: '/api/nowhere' });
    expect(nowhere.statusCode).toBe(404);
    expect(nowhere.json().error.code).toBe('not_found');
    expect((await env.app.inject({ url: '/api/tasks/' })).statusCode).toBe(200);
  });

  it('lists with status, repo, limit and offset filters', async () => {
    for (let i = 0; i < 3; i++) await post('/api/tasks', { title: `list ${i}`, repo: 'acme/listing' });
    const all = (await env.app.inject({ url: '/api/tasks?repo=acme/listing' })).json();
    expect(all.map((t: { title: string }) => t.title)).toEqual(['list 2', 'list 1', 'list 0']);
    const page = (await env.app.inject({ url: '/api/tasks?repo=acme/listing&limit=1&offset=1' })).json();
    expect(page.map((t: { title: string }) => t.title)).toEqual(['list 1']);
    const queued = (await env.app.inject({ url: '/api/tasks?status=queued' })).json();
    expect(queued.every((t: { status: string }) => t.status === 'queued')).toBe(true);
    for (const q of ['status=bogus', 'limit=0', 'limit=501', 'limit=x', 'offset=-1', 'before_id=0', 'before_id=x']) {
      const res = await env.app.inject({ url: `/api/tasks?${q}` });
      expect(res.statusCode, q).toBe(400);
      expect(res.json().error.field, q).toBe(q.split('=')[0]);
    }
  });

  it('lists each task exactly as the single-task route shows it (without its runs)', async () => {
    const created = await post('/api/tasks', { title: 'Same everywhere', description: 'Both routes', repo: 'acme/same' });
    const listed = (await env.app.inject({ url: '/api/tasks?repo=acme/same' })).json()[0];
    const { runs, ...single } = (await env.app.inject({ url: `/api/tasks/${created.json().id}` })).json();
    expect(runs).toEqual([]);
    expect(listed).toEqual(single);
    expect(Object.keys(listed)).toEqual(Object.keys(single));
  });

  it('pages by before_id: each page starts below the last id seen, every task exactly once', async () => {
    for (let i = 0; i < 5; i++) await post('/api/tasks', { title: `keyset ${i}`, repo: 'acme/keyset' });
    const titles: string[] = [];
    let before: number | undefined;
    for (let pages = 0; pages < 10; pages++) {
      const url = `/api/tasks?repo=acme/keyset&limit=2${before ? `&before_id=${before}` : ''}`;
      const page = (await env.app.inject({ url })).json() as Array<{ id: number; title: string }>;
      if (!page.length) break;
      titles.push(...page.map((t) => t.title));
      before = page.at(-1)!.id;
    }
    expect(titles).toEqual(['keyset 4', 'keyset 3', 'keyset 2', 'keyset 1', 'keyset 0']);
  });

  it('runs a queued task, refuses to run it twice, cancels it when running', async () => {
    const t = (await post('/api/tasks', { title: 'run me', repo: 'acme/web' })).json();
    const run = await post(`/api/tasks/${t.id}/run`);
    expect(run.statusCode).toBe(200);
    await waitFor(() => gate.isWaiting(t.id), { what: 'executor start' });
    expect((await env.app.inject({ url: `/api/tasks/${t.id}` })).json().status).toBe('in_progress');
    const agents = (await env.app.inject({ url: '/api/agents' })).json();
    expect(agents.find((a: { task_id: number }) => a.task_id === t.id)).toMatchObject({
      status: 'running',
      agent_type: 'coder',
      repo: 'acme/web',
    });
    const again = await post(`/api/tasks/${t.id}/run`);
    expect(again.statusCode).toBe(409);
    expect(again.json().detail).toBe('Task is in_progress, must be queued');
    const cancel = await post(`/api/tasks/${t.id}/cancel`);
    expect(cancel.statusCode).toBe(200);
    expect(cancel.json().status).toBe('cancelled');
    expect((await post(`/api/tasks/${t.id}/cancel`)).statusCode).toBe(409);
  });

  it('cancels a queued task so it never runs', async () => {
    const t = (await post('/api/tasks', { title: 'never', repo: 'acme/web' })).json();
    const res = await post(`/api/tasks/${t.id}/cancel`);
    expect(res.json().status).toBe('cancelled');
    expect((await post(`/api/tasks/${t.id}/run`)).statusCode).toBe(409);
    expect(gate.started).not.toContain(t.id);
  });

  it('auto_run queues the task for the scheduler', async () => {
    const res = await post('/api/tasks?auto_run=true', { title: 'auto', repo: 'acme/web' });
    expect(res.statusCode).toBe(201);
    const id = res.json().id;
    await waitFor(() => gate.isWaiting(id), { what: 'auto-run start' });
    gate.release(id);
    await waitFor(async () => (await env.app.inject({ url: `/api/tasks/${id}` })).json().status === 'done', { what: 'done' });
    expect((await env.app.inject({ url: '/api/tasks?auto_run=maybe' })).statusCode).toBe(200); // ignored on GET
    expect((await post('/api/tasks?auto_run=maybe', { title: 'x', repo: 'acme/web' })).statusCode).toBe(400);
  });

  it('returns logs oldest first, paged by id or time', async () => {
    const t = (await post('/api/tasks', { title: 'logs', repo: 'acme/web' })).json();
    const base = Date.parse('2026-01-01T00:00:00Z');
    await env.services.repos.logs.appendMany(
      Array.from({ length: 5 }, (_, i) => ({
        task_id: t.id,
        ts: new Date(base + i * 1000).toISOString(),
        stream: 'stdout' as const,
        line: `line ${i}`,
      })),
    );
    const tail = (await env.app.inject({ url: `/api/tasks/${t.id}/logs?limit=2` })).json();
    expect(tail.logs.map((l: { message: string }) => l.message)).toEqual(['line 3', 'line 4']);
    const first = (await env.app.inject({ url: `/api/tasks/${t.id}/logs?since=0&limit=2` })).json();
    expect(first.logs.map((l: { message: string }) => l.message)).toEqual(['line 0', 'line 1']);
    const next = (await env.app.inject({ url: `/api/tasks/${t.id}/logs?since=${first.next_since}&limit=10` })).json();
    expect(next.logs.map((l: { message: string }) => l.message)).toEqual(['line 2', 'line 3', 'line 4']);
    const byTime = (await env.app.inject({ url: `/api/tasks/${t.id}/logs?since=2026-01-01T00:00:02Z` })).json();
    expect(byTime.logs.map((l: { message: string }) => l.message)).toEqual(['line 3', 'line 4']);
    expect((await env.app.inject({ url: `/api/tasks/${t.id}/logs?since=yesterday` })).statusCode).toBe(400);
    expect((await env.app.inject({ url: `/api/tasks/${t.id}/logs?limit=0` })).statusCode).toBe(400);
    const got = (await env.app.inject({ url: `/api/tasks/${t.id}` })).json();
    expect(got.last_output).toBe('line 4');
  });

  it('serves the upstream analytics and settings shapes', async () => {
    const a = (await env.app.inject({ url: '/api/analytics' })).json();
    expect(Object.keys(a)).toEqual(['summary', 'status_breakdown', 'duration', 'agent_performance', 'daily_trends', 'workflows']);
    expect(a.daily_trends).toHaveLength(30);
    expect(a.daily_trends.at(-1).date).toBe(new Date().toISOString().slice(0, 10));
    expect(a.summary.total_tasks).toBeGreaterThan(0);
    expect(a.status_breakdown.done).toBeGreaterThanOrEqual(1);
    expect(a.daily_trends.at(-1).created).toBe(a.summary.total_tasks);
    expect((await env.app.inject({ url: '/api/settings' })).json()).toEqual({
      plane_base_url: '',
      plane_workspace_slug: '',
      plane_project_id: '',
    });
  });

  it('deletes the logs of tasks that ended longer ago than retention.task_logs_days', async () => {
    const tasks = env.services.repos.tasks;
    const old = (await post('/api/tasks', { title: 'old', repo: 'acme/web' })).json();
    const recent = (await post('/api/tasks', { title: 'recent', repo: 'acme/web' })).json();
    const running = (await post('/api/tasks', { title: 'still queued', repo: 'acme/web' })).json();
    await tasks.transition(old.id, ['queued'], 'failed', { completed_at: '2020-01-01T00:00:00.000Z' });
    await tasks.transition(recent.id, ['queued'], 'failed', { completed_at: new Date().toISOString() });
    const line = (id: number) => ({ task_id: id, ts: '2020-01-01T00:00:00.000Z', stream: 'stdout' as const, line: 'x' });
    await env.services.repos.logs.appendMany([line(old.id), line(recent.id), line(running.id)]);
    const removed = await env.services.repos.logs.purgeEnded(new Date(Date.now() - 30 * 86_400_000).toISOString());
    expect(removed).toBe(1);
    const count = async (id: number) => (await env.services.repos.logs.list(id, { limit: 10 })).length;
    expect([await count(old.id), await count(recent.id), await count(running.id)]).toEqual([0, 1, 1]);
  });

  it('reports health with queue numbers', async () => {
    const res = await env.app.inject({ url: '/health' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: 'ok', db: 'ok', queue: { max_concurrent: 2 } });
    expect(res.json().version).toMatch(/^\d+\.\d+\.\d+/);
  });
});
