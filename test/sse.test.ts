import { messageRoutes } from '../src/server/routes/messages.js';
import net from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBoard, type Board } from '../src/board/index.js';
import { buildApp } from '../src/server/app.js';
import { createTestEnv, waitFor, type TestEnv } from './helpers.js';
import { SseClient } from './sse-client.js';

describe('SSE stream', () => {
  let env: TestEnv;
  let board: Board;
  let app: FastifyInstance;
  let base: string;
  const clients: SseClient[] = [];

  beforeAll(async () => {
    env = await createTestEnv({
      wire: false,
      executor: async () => ({ status: 'done' }),
      overrides: { message_board: { telegram_forward: false, max_message_chars: 50_000 }, default_org: 'acme' },
    });
    board = createBoard(env.services, { sse: { heartbeatMs: 100, replayLimit: 50, maxBufferBytes: 256 * 1024 } });
    app = await buildApp(env.services, { plugins: [messageRoutes(board)] });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const addr = app.server.address() as net.AddressInfo;
    base = `http://127.0.0.1:${addr.port}`;
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    // Node's fetch (undici) opens spare connections after an aborted stream and never sends a request on
    // them; server.close() would wait for its 4 s keep-alive to drop them. They are test-client
    // artefacts, so cut them here; closing with live streams is tested separately below.
    const closing = app.close();
    app.server.closeAllConnections();
    await closing;
    await env.close();
  });

  const open = async (path: string, headers: Record<string, string> = {}) => {
    const c = await new SseClient(`${base}${path}`, headers).open();
    clients.push(c);
    await c.waitFor((x) => x.of('connected').length > 0, 'connected event');
    return c;
  };
  const post = async (body: Record<string, unknown>) => {
    const res = await app.inject({ method: 'POST', url: '/api/messages', payload: body });
    expect(res.statusCode).toBe(201);
    return res.json() as { id: number; message: string };
  };

  it('sends the right headers, retry first, and the message to every client', async () => {
    const a = await open('/api/messages/stream/sse');
    const b = await open('/api/messages/stream/sse');
    expect(a.status).toBe(200);
    expect(a.headers!.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(a.headers!.get('cache-control')).toBe('no-cache');
    expect(a.headers!.get('x-accel-buffering')).toBe('no');
    const m = await post({ sender: 'alice', message: 'fan out' });
    for (const c of [a, b]) {
      const got = await c.waitFor((x) => x.messages().find((e) => e.id === m.id), 'message on both');
      expect(got).toEqual(m);
      const ev = c.of('message').find((e) => JSON.parse(e.data).id === m.id)!;
      expect(Number(ev.id)).toBeGreaterThan(0);
    }
    a.close();
    b.close();
  });

  it('sends a heartbeat comment', async () => {
    const c = await open('/api/messages/stream/sse');
    await c.waitFor((x) => x.comments.includes(': ping'), 'heartbeat');
    c.close();
  });

  it('replays what a reconnecting client missed (Last-Event-ID header or query), without duplicates', async () => {
    const c = await open('/api/messages/stream/sse');
    const m1 = await post({ sender: 'a', message: 'before drop' });
    await c.waitFor((x) => x.messages().some((e) => e.id === m1.id), 'm1');
    const lastId = c.of('message').at(-1)!.id!;
    c.close();
    await waitFor(() => board.sse.clientCount === 0, { what: 'client gone' });
    const m2 = await post({ sender: 'a', message: 'missed one' });
    const m3 = await post({ sender: 'a', message: 'missed two' });
    const again = await open('/api/messages/stream/sse', { 'Last-Event-ID': lastId });
    await again.waitFor((x) => x.messages().length >= 2, 'replay');
    expect(again.messages().map((e) => e.id)).toEqual([m2.id, m3.id]);
    const viaQuery = await open(`/api/messages/stream/sse?last_event_id=${lastId}`);
    await viaQuery.waitFor((x) => x.messages().length >= 2, 'replay by query');
    expect(viaQuery.messages().map((e) => e.id)).toEqual([m2.id, m3.id]);
    // Live events continue after the replay.
    const m4 = await post({ sender: 'a', message: 'live again' });
    await again.waitFor((x) => x.messages().some((e) => e.id === m4.id), 'live after replay');
    expect(again.messages().map((e) => e.id)).toEqual([m2.id, m3.id, m4.id]);
    again.close();
    viaQuery.close();
  });

  it('sends reset when the client is too far behind or its id is unknown', async () => {
    const c = await open('/api/messages/stream/sse');
    await post({ sender: 'a', message: 'marker' });
    await c.waitFor((x) => x.messages().length > 0, 'marker');
    const lastId = c.of('message').at(-1)!.id!;
    c.close();
    for (let i = 0; i < 60; i++) await post({ sender: 'a', message: `flood ${i}` });
    const behind = await open('/api/messages/stream/sse', { 'Last-Event-ID': lastId });
    const reset = await behind.waitFor((x) => x.of('reset')[0], 'reset');
    expect(JSON.parse(reset.data).reason).toBe('too_far_behind');
    expect(Number(reset.id)).toBe(await env.services.repos.events.lastId());
    expect(behind.messages()).toEqual([]);
    const future = await open('/api/messages/stream/sse', { 'Last-Event-ID': '99999999' });
    await future.waitFor((x) => x.of('reset').length === 1, 'reset for unknown id');
    behind.close();
    future.close();
  });

  it('filters by task, message type and event kind', async () => {
    const t1 = (await env.services.tasks.create({ title: 'one', repo: 'acme/a' })).id;
    const t2 = (await env.services.tasks.create({ title: 'two', repo: 'acme/b' })).id;
    const byTask = await open(`/api/messages/stream/sse?task_id=${t1}`);
    const byType = await open('/api/messages/stream/sse?message_type=error');
    const all = await open('/api/events/stream');
    const statusOnly = await open(`/api/events/stream?types=task_status&task_id=${t2}`);
    const a = await post({ sender: 'x', message: 'for t1', task_id: t1 });
    const b = await post({ sender: 'x', message: 'for t2 error', task_id: t2, message_type: 'error' });
    const t3 = (await env.services.tasks.create({ title: 'three', repo: 'acme/c' })).id;
    await env.services.tasks.transition(t2, ['queued'], 'cancelled');
    const end = await post({ sender: 'x', message: 'end', task_id: t1, message_type: 'error' });
    await all.waitFor((x) => x.messages().some((e) => e.id === end.id), 'end on all');
    await byTask.waitFor((x) => x.messages().some((e) => e.id === end.id), 'end on byTask');
    await byType.waitFor((x) => x.messages().some((e) => e.id === end.id), 'end on byType');
    await statusOnly.waitFor((x) => x.of('task_status').length > 0, 'status event');
    expect(byTask.messages().map((e) => e.id)).toEqual([a.id, end.id]);
    expect(byType.messages().map((e) => e.id)).toEqual([b.id, end.id]);
    expect(all.messages().map((e) => e.id)).toEqual([a.id, b.id, end.id]);
    expect(all.of('task_status').map((e) => JSON.parse(e.data).id)).toEqual([t3, t2]);
    expect(statusOnly.events.filter((e) => e.event !== 'connected').map((e) => [e.event, JSON.parse(e.data).status])).toEqual([
      ['task_status', 'cancelled'],
    ]);
    expect(byTask.of('task_status')).toEqual([]); // the upstream path only carries messages
    // Bad filter values are 400s, not silent empty streams.
    expect((await fetch(`${base}/api/messages/stream/sse?message_type=shout`)).status).toBe(400);
    expect((await fetch(`${base}/api/events/stream?types=${encodeURIComponent('<x>')}`)).status).toBe(400);
    for (const c of [byTask, byType, all, statusOnly]) c.close();
  });

  it('drops a client that never reads while the others keep receiving', async () => {
    await waitFor(() => board.sse.clientCount === 0, { what: 'no clients left from earlier tests' });
    const fast1 = await open('/api/messages/stream/sse');
    const fast2 = await open('/api/messages/stream/sse');
    const port = (app.server.address() as net.AddressInfo).port;
    // A raw socket that sends the request and then never reads a byte.
    const slow = net.connect(port, '127.0.0.1');
    slow.on('error', () => {});
    slow.write('GET /api/messages/stream/sse HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n');
    await waitFor(() => board.sse.clientCount === 3, { what: 'slow client registered' });
    const dropsBefore = board.sse.stats.dropped_slow;
    const big = 'x'.repeat(40_000);
    let posted = 0;
    // Bounded loop: stop as soon as the hub has given up on the slow socket (at most ~80 MB).
    while (board.sse.stats.dropped_slow === dropsBefore && posted < 2000) {
      const m = await post({ sender: 'flood', message: `${posted} ${big}` });
      posted++;
      // The fast clients read each message before the next: on a loaded machine a reader in this same
      // process could otherwise fall 1 MiB behind too and be dropped for it.
      for (const c of [fast1, fast2]) await c.waitFor((x) => x.messages().some((e) => e.id === m.id), 'fast client keeping up');
    }
    expect(board.sse.stats.dropped_slow).toBe(dropsBefore + 1);
    expect(board.sse.clientCount).toBe(2);
    const last = await post({ sender: 'flood', message: 'after the drop' });
    for (const c of [fast1, fast2]) {
      await c.waitFor((x) => x.messages().some((e) => e.id === last.id), 'fast client still live', 30_000);
      expect(c.messages().filter((e) => e.message.startsWith(String(posted - 1)) || e.id === last.id).length).toBe(2);
      expect(c.ended).toBe(false);
    }
    slow.destroy();
    fast1.close();
    fast2.close();
  });

  it('ends open streams when the app closes, without waiting for the clients', async () => {
    const app2 = await buildApp(env.services, { plugins: [messageRoutes(board)] });
    await app2.listen({ port: 0, host: '127.0.0.1' });
    const port = (app2.server.address() as net.AddressInfo).port;
    const c = await new SseClient(`http://127.0.0.1:${port}/api/messages/stream/sse`).open();
    await c.waitFor((x) => x.of('connected').length > 0, 'connected');
    const started = Date.now();
    await app2.close();
    expect(Date.now() - started).toBeLessThan(1000);
    await c.waitFor((x) => x.ended, 'stream ended by the server');
  });
});
