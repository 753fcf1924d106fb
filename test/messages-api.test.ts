import { messageRoutes } from '../src/server/routes/messages.js';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBoard, type Board } from '../src/board/index.js';
import { ftsQuery } from '../src/db/repositories/messages.js';
import { buildApp } from '../src/server/app.js';
import { createTestEnv, type TestEnv } from './helpers.js';

describe('messages API', () => {
  let env: TestEnv;
  let board: Board;
  let app: FastifyInstance;
  let taskId: number;

  beforeAll(async () => {
    env = await createTestEnv({
      wire: false,
      executor: async () => ({ status: 'done' }),
      overrides: { message_board: { max_message_chars: 5000, telegram_forward: false }, default_org: 'acme' },
    });
    board = createBoard(env.services);
    app = await buildApp(env.services, { plugins: [messageRoutes(board)] });
    await app.ready();
    taskId = (await env.services.tasks.create({ title: 'board test', repo: 'acme/web' })).id;
  });
  afterAll(async () => {
    await app.close();
    await env.close();
  });

  const post = (payload: unknown) => app.inject({ method: 'POST', url: '/api/messages', payload: payload as object });
  const get = (url: string) => app.inject({ url });

  it('creates a message with defaults and returns the upstream shape', async () => {
    const res = await post({ sender: 'alice', message: 'hello board', extra: 'ignored' });
    expect(res.statusCode).toBe(201);
    const m = res.json();
    expect(Object.keys(m)).toEqual([
      'id',
      'sender',
      'recipient',
      'task_id',
      'workflow_id',
      'message',
      'message_type',
      'reply_to',
      'created_at',
    ]);
    expect(m).toMatchObject({
      sender: 'alice',
      recipient: null,
      task_id: null,
      workflow_id: null,
      message: 'hello board',
      message_type: 'info',
      reply_to: null,
    });
    expect(m.created_at).toMatch(/^\d{4}-\d\d-\d\dT.*Z$/);
    const got = await get(`/api/messages/${m.id}`);
    expect(got.statusCode).toBe(200);
    expect(got.json()).toEqual(m);
  });

  it('rejects bad input with 400 naming the field, 413 for oversize text, and stores nothing', async () => {
    const before = (await get('/api/messages?limit=500')).json().length;
    const cases: Array<[unknown, number, string]> = [
      [{ sender: 'a', message: 'x', message_type: 'shout' }, 400, 'message_type'],
      [{ sender: 'a', message: '' }, 400, 'message'],
      [{ sender: 'a', message: '   \n ' }, 400, 'message'],
      [{ sender: 'a' }, 400, 'message'],
      [{ message: 'x' }, 400, 'sender'],
      [{ sender: '', message: 'x' }, 400, 'sender'],
      [{ sender: 'a', message: 42 }, 400, 'message'],
      [{ sender: 'a', message: 'x', task_id: 'seven' }, 400, 'task_id'],
      [{ sender: 'a', message: 'x', task_id: 999_999 }, 400, 'task_id'],
      [{ sender: 'a', message: 'x', workflow_id: 123 }, 400, 'workflow_id'],
      [{ sender: 'a', message: 'x', reply_to: 999_999 }, 400, 'reply_to'],
      [{ sender: 'a', message: 'x', reply_to: -1 }, 400, 'reply_to'],
      [{ sender: 'a', message: 'x'.repeat(5001) }, 413, 'message'],
    ];
    for (const [body, status, field] of cases) {
      const res = await post(body);
      expect(res.statusCode, JSON.stringify(body).slice(0, 80)).toBe(status);
      expect(res.json().error.field).toBe(field);
      expect(typeof res.json().detail).toBe('string');
    }
    expect((await post({ sender: 'a', message: 'x'.repeat(5001) })).json().error.code).toBe('payload_too_large');
    // Not JSON at all
    const bad = await app.inject({
      method: 'POST',
      url: '/api/messages',
      headers: { 'content-type': 'application/json' },
      payload: '{nope',
    });
    expect(bad.statusCode).toBe(400);
    expect((await get('/api/messages?limit=500')).json().length).toBe(before);
  });

  it('answers bad ids with 400 and unknown ones with 404', async () => {
    expect((await get('/api/messages/abc')).statusCode).toBe(400);
    expect((await get('/api/messages/0')).statusCode).toBe(400);
    expect((await get('/api/messages/1.5')).statusCode).toBe(400);
    const missing = await get('/api/messages/987654');
    expect(missing.statusCode).toBe(404);
    expect(missing.json().detail).toBe('Message not found');
    expect((await get('/api/messages/987654/thread')).statusCode).toBe(404);
    expect((await get('/api/messages/x/thread')).statusCode).toBe(400);
  });

  it('filters by task, type, sender/from, recipient/to, cursors and time; newest first', async () => {
    const a = (
      await post({ sender: 'coder', recipient: 'reviewer', message: 'ready for review', message_type: 'handoff', task_id: taskId })
    ).json();
    const b = (
      await post({ sender: 'reviewer', recipient: 'coder', message: 'why this cache?', message_type: 'question', task_id: taskId })
    ).json();
    const c = (await post({ sender: 'orchestrator', message: 'unrelated', message_type: 'status' })).json();
    const ids = (url: string) =>
      get(url).then((r) => {
        expect(r.statusCode, url).toBe(200);
        return (r.json() as Array<{ id: number }>).map((m) => m.id);
      });

    expect(await ids(`/api/messages?task_id=${taskId}`)).toEqual([b.id, a.id]);
    expect(await ids(`/api/messages?task_id=${taskId}&message_type=question`)).toEqual([b.id]);
    expect(await ids('/api/messages?sender=coder')).toEqual([a.id]);
    expect(await ids('/api/messages?from=reviewer')).toEqual([b.id]);
    expect(await ids('/api/messages?to=coder')).toEqual([b.id]);
    expect(await ids('/api/messages?recipient=reviewer')).toEqual([a.id]);
    expect(await ids(`/api/messages?after_id=${a.id}`)).toEqual([c.id, b.id]);
    expect(await ids(`/api/messages?before_id=${c.id}&limit=1`)).toEqual([b.id]);
    expect(await ids(`/api/messages?task_id=${taskId}&limit=1&offset=1`)).toEqual([a.id]);
    expect(await ids(`/api/messages?since=${encodeURIComponent(c.created_at)}`)).toContain(c.id);
    expect(await ids('/api/messages?before=2000-01-01T00:00:00Z')).toEqual([]);
    expect(await ids('/api/messages?task_id=&message_type=')).toContain(c.id); // blank = unset

    for (const [q, field] of [
      ['message_type=shout', 'message_type'],
      ['limit=0', 'limit'],
      ['limit=501', 'limit'],
      ['offset=-1', 'offset'],
      ['task_id=x', 'task_id'],
      ['since=yesterday', 'since'],
      ['before_id=0', 'before_id'],
    ]) {
      const r = await get(`/api/messages?${q}`);
      expect(r.statusCode, q).toBe(400);
      expect(r.json().error.field).toBe(field);
    }
  });

  it('matches agent senders by their upstream task-<id> name too', async () => {
    const m = await board.board.postFromAgent(
      { id: taskId, agent_type: 'coder' },
      { type: 'message', to: 'reviewer', content: 'agent note', message_type: 'info' },
    );
    expect(m).toMatchObject({ sender: `task-${taskId}:coder`, recipient: 'reviewer', task_id: taskId, message: 'agent note' });
    const ids = (await get(`/api/messages?sender=task-${taskId}`)).json().map((x: { id: number }) => x.id);
    expect(ids).toEqual([m!.id]);
    // Invalid agent objects are dropped without throwing; an unknown type is kept as info.
    expect(await board.board.postFromAgent({ id: taskId, agent_type: 'coder' }, { type: 'message', content: '' })).toBeNull();
    expect(await board.board.postFromAgent({ id: taskId, agent_type: 'coder' }, 'nope')).toBeNull();
    expect(
      (await board.board.postFromAgent({ id: taskId, agent_type: 'coder' }, { content: 'x', message_type: 'shout' }))?.message_type,
    ).toBe('info');
    expect(
      (await board.board.postFromAgent({ id: taskId, agent_type: 'coder' }, { content: 'y'.repeat(9000) }))?.message.length,
    ).toBeLessThanOrEqual(5000);
  });

  it('searches with FTS, combined with other filters, and never errors on FTS syntax', async () => {
    const x = (await post({ sender: 'coder', message: 'Authentication uses JWT (RS256) or "sessions"', task_id: taskId })).json();
    const y = (await post({ sender: 'coder', message: 'authentication elsewhere' })).json();
    const search = (q: string, extra = '') => get(`/api/messages?search=${encodeURIComponent(q)}${extra}`);
    const ids = async (q: string, extra = '') => {
      const r = await search(q, extra);
      expect(r.statusCode, q).toBe(200);
      return r.json().map((m: { id: number }) => m.id);
    };
    expect(await ids('authentication')).toEqual([y.id, x.id]);
    expect(await ids('auth')).toEqual([y.id, x.id]); // prefix match, like upstream's substring search
    expect(await ids('authentication', `&task_id=${taskId}`)).toEqual([x.id]);
    expect(await ids('JWT rs256')).toEqual([x.id]);
    for (const nasty of [
      '"',
      '*',
      'OR',
      '(',
      ')',
      'AND NOT',
      'NEAR(a b)',
      '"unbalanced',
      'jwt OR',
      'col:jwt',
      '^jwt',
      '-',
      '\\',
      "'; DROP TABLE messages; --",
      '💥',
      '%_',
    ]) {
      const r = await search(nasty);
      expect(r.statusCode, nasty).toBe(200);
      expect(Array.isArray(r.json())).toBe(true);
    }
    expect(await ids('"sessions"')).toEqual([x.id]);
    expect(await ids('jwt OR nothing')).toEqual([]); // OR is a word here, not an operator
    expect(ftsQuery('a "b" *')).toBe('"a"* """b"""*');
    expect(ftsQuery('* ( )')).toBeNull();
  });

  it('returns the whole thread (all depths) oldest first', async () => {
    const root = (await post({ sender: 'coder', message: 'root question', message_type: 'question' })).json();
    const r1 = (await post({ sender: 'reviewer', message: 'first reply', reply_to: root.id })).json();
    const r2 = (await post({ sender: 'human', message: 'second reply', reply_to: root.id })).json();
    const r11 = (await post({ sender: 'coder', message: 'reply to reply', reply_to: r1.id })).json();
    const r111 = (await post({ sender: 'reviewer', message: 'deeper', reply_to: r11.id })).json();
    await post({ sender: 'x', message: 'unrelated' });
    const t = await get(`/api/messages/${root.id}/thread`);
    expect(t.statusCode).toBe(200);
    expect(t.json().map((m: { id: number }) => m.id)).toEqual([root.id, r1.id, r2.id, r11.id, r111.id]);
    const sub = (await get(`/api/messages/${r1.id}/thread`)).json().map((m: { id: number }) => m.id);
    expect(sub).toEqual([r1.id, r11.id, r111.id]);
  });

  it('serves the page and its assets', async () => {
    const page = await get('/messages');
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toContain('text/html');
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect(page.body).toContain('/static/messages.js');
    const js = await get('/static/messages.js');
    expect(js.statusCode).toBe(200);
    expect(js.headers['content-type']).toContain('javascript');
    expect((await get('/static/app.css')).statusCode).toBe(200);
    expect((await get('/static/../package.json')).statusCode).toBe(404);
  });

  it('reports the outbox in /health', async () => {
    const h = (await get('/health')).json();
    expect(h.outbox).toMatchObject({ pending: 0, dead: 0 });
    expect(h.sse).toMatchObject({ clients: 0 });
  });
});

describe('messages API with an auth token', () => {
  it('requires the bearer token on every /api route but not on the page', async () => {
    const env = await createTestEnv({
      wire: false,
      executor: async () => ({ status: 'done' }),
      env: { FACTORY_AUTH_TOKEN: 'sekrit-token-123' },
    });
    const board = createBoard(env.services);
    const app = await buildApp(env.services, { plugins: [messageRoutes(board)] });
    try {
      expect((await app.inject({ url: '/api/messages' })).statusCode).toBe(401);
      expect((await app.inject({ url: '/api/messages/stream/sse' })).statusCode).toBe(401);
      expect((await app.inject({ url: '/api/events/stream' })).statusCode).toBe(401);
      expect((await app.inject({ url: '/api/messages', headers: { authorization: 'Bearer sekrit-token-123' } })).statusCode).toBe(200);
      expect((await app.inject({ url: '/messages' })).statusCode).toBe(200);
    } finally {
      await app.close();
      await env.close();
    }
  });
});
