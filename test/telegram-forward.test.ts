import { messageRoutes } from '../src/server/routes/messages.js';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBoard, type Board } from '../src/board/index.js';
import { openDb } from '../src/db/connection.js';
import { OutboxRepo } from '../src/db/repositories/outbox.js';
import { DeliveryError, OutboxWorker } from '../src/integrations/outbox.js';
import { escapeAndTruncate, TELEGRAM_MAX_CHARS } from '../src/integrations/telegram.js';
import { buildApp } from '../src/server/app.js';
import { FakeTelegram } from './fakes/http/telegram.js';
import { createTestEnv, removeDir, tempDir, waitFor, type TestEnv } from './helpers.js';

describe('Telegram forwarding of board messages', () => {
  const fake = new FakeTelegram();
  let env: TestEnv;
  let board: Board;
  let app: FastifyInstance;

  beforeAll(async () => {
    const root = await fake.start();
    env = await createTestEnv({
      wire: false,
      executor: async () => ({ status: 'done' }),
      env: { TELEGRAM_BOT_TOKEN: fake.token },
      overrides: {
        telegram: { api_root: root, chat_id: '42' },
        message_board: { telegram_forward: true, telegram_chat_id: '', forward_types: ['error', 'question', 'handoff'] },
      },
    });
    board = createBoard(env.services, { outbox: { baseDelayMs: 30, maxDelayMs: 150 }, telegramTimeoutMs: 2000 });
    app = await buildApp(env.services, { plugins: [messageRoutes(board)] });
    await app.ready();
  });
  afterAll(async () => {
    await app.close();
    await env.close();
    await fake.stop();
  });

  const post = async (body: Record<string, unknown>) => {
    const res = await app.inject({ method: 'POST', url: '/api/messages', payload: body });
    expect(res.statusCode).toBe(201);
    return res.json() as { id: number };
  };
  const sentWith = (needle: string) => fake.sent.filter((s) => s.text.includes(needle));

  it('forwards the configured types only, as escaped HTML without link previews', async () => {
    await post({ sender: 'coder', message: 'just info [info-1]', message_type: 'info' });
    await post({ sender: 'coder', message: 'status [status-1]', message_type: 'status' });
    const q = await post({
      sender: 'task-1:coder',
      recipient: 'human',
      message: 'Use <b>Redis</b> & "memcached"? [q-1]',
      message_type: 'question',
    });
    await post({ sender: 'coder', message: 'boom [err-1]', message_type: 'error' });
    await fake.waitForSent((s) => s.text.includes('[err-1]'));
    expect(sentWith('[info-1]')).toEqual([]);
    expect(sentWith('[status-1]')).toEqual([]);
    const [msg] = sentWith('[q-1]');
    expect(msg!.chat_id).toBe(42);
    expect(msg!.parse_mode).toBe('HTML');
    expect(msg!.text).toContain('Use &lt;b&gt;Redis&lt;/b&gt; &amp; "memcached"? [q-1]');
    expect(msg!.text).not.toContain('<b>Redis');
    expect(msg!.text).toContain('<b>question</b>');
    expect(msg!.params.link_preview_options).toEqual({ is_disabled: true });
    // Delivered in the order they were posted (one order key per chat).
    expect(fake.sent.findIndex((s) => s.text.includes('[q-1]'))).toBeLessThan(fake.sent.findIndex((s) => s.text.includes('[err-1]')));
    // The Telegram message id is kept for matching replies later.
    await waitFor(() => board.telegram.sentMessageId(`board-message:${q.id}`), { what: 'stored message id' });
    expect(await board.telegram.sentMessageId(`board-message:${q.id}`)).toBe(msg!.message_id);
    // The fake answers before the outbox records the delivery; wait for the record.
    await waitFor(async () => (await board.outbox.pending()) === 0, { what: 'outbox drained' });
  });

  it('truncates long messages under the Telegram limit', async () => {
    await post({ sender: 'coder', message: `[long-1] ${'<&>'.repeat(5000)}`, message_type: 'error' });
    const m = await fake.waitForSent((s) => s.text.includes('[long-1]'));
    expect(m.text.length).toBeLessThanOrEqual(TELEGRAM_MAX_CHARS);
    expect(m.text).toMatch(/…$/);
    expect(m.text).not.toMatch(/&(a|am|l|g|lt|gt)?…$/); // never cut inside an entity
    expect(escapeAndTruncate('a&b', 4)).toBe('a…');
  });

  it('delivers a message exactly once after Telegram comes back', async () => {
    fake.setDown(true);
    const failedBefore = fake.requests.filter((r) => r.failed).length;
    await post({ sender: 'coder', message: 'during outage [down-1]', message_type: 'error' });
    await post({ sender: 'coder', message: 'second during outage [down-2]', message_type: 'handoff' });
    // Retried with backoff while down...
    await waitFor(() => fake.requests.filter((r) => r.failed).length >= failedBefore + 3, { what: 'several failed attempts' });
    expect(sentWith('[down-1]')).toEqual([]);
    expect(await board.outbox.pending()).toBe(2);
    const row = (await env.services.db.get<{ attempts: number; last_error: string }>(
      "SELECT attempts, last_error FROM outbox WHERE payload LIKE '%[down-1]%'",
    ))!;
    expect(row.attempts).toBeGreaterThan(0);
    expect(row.last_error).toContain('500');
    expect(row.last_error).not.toContain(fake.token);
    // ...and delivered once it is back, in order.
    fake.setDown(false);
    await fake.waitForSent((s) => s.text.includes('[down-2]'));
    await post({ sender: 'coder', message: 'after recovery [after-1]', message_type: 'error' });
    await fake.waitForSent((s) => s.text.includes('[after-1]'));
    expect(sentWith('[down-1]').length).toBe(1);
    expect(sentWith('[down-2]').length).toBe(1);
    const order = ['[down-1]', '[down-2]', '[after-1]'].map((k) => fake.sent.findIndex((s) => s.text.includes(k)));
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(await board.outbox.pending()).toBe(0);
  });

  it('honours a 429 retry_after and keeps the message', async () => {
    fake.failNext(1, 429);
    await post({ sender: 'coder', message: 'rate limited [rl-1]', message_type: 'error' });
    await fake.waitForSent((s) => s.text.includes('[rl-1]'), 10_000);
    expect(sentWith('[rl-1]').length).toBe(1);
  });
});

describe('outbox worker', () => {
  it('parks permanent failures as dead after a few attempts and keeps order per key', async () => {
    const dir = tempDir();
    const db = await openDb(`${dir}/outbox.db`);
    const repo = new OutboxRepo(db);
    const worker = new OutboxWorker(repo, pino({ level: 'silent' }), { baseDelayMs: 5, maxDelayMs: 20, maxPermanentAttempts: 3 });
    const seen: string[] = [];
    const attempts = new Map<string, number>();
    worker.register('test', async (p: { name: string }) => {
      attempts.set(p.name, (attempts.get(p.name) ?? 0) + 1);
      if (p.name === 'bad') throw new DeliveryError('400 chat not found', { permanent: true, status: 400 });
      if (p.name === 'flaky' && attempts.get('flaky')! < 3) throw new Error('503 try later');
      seen.push(p.name);
      return { ok: p.name };
    });
    try {
      worker.start();
      worker.start(); // idempotent
      await worker.enqueue('test', { name: 'bad' }, { orderKey: 'k' });
      await worker.enqueue('test', { name: 'flaky' }, { orderKey: 'k2' });
      await worker.enqueue('test', { name: 'after-bad' }, { orderKey: 'k' });
      const dup1 = await worker.enqueue('test', { name: 'once' }, { dedupeKey: 'same' });
      const dup2 = await worker.enqueue('test', { name: 'once' }, { dedupeKey: 'same' });
      expect(dup2.id).toBe(dup1.id);
      await waitFor(() => seen.includes('after-bad') && seen.includes('flaky') && seen.includes('once'), { what: 'deliveries' });
      expect(attempts.get('bad')).toBe(3); // dead after 3, then its successor went out
      expect(seen.filter((s) => s === 'once').length).toBe(1);
      expect(attempts.get('flaky')).toBe(3);
      expect((await repo.stats()).dead).toBe(1);
      expect(await worker.pending()).toBe(0);
      expect(JSON.parse((await repo.byDedupeKey('same'))!.result)).toEqual({ ok: 'once' });
    } finally {
      await worker.stop();
      await worker.stop();
      await db.close();
      removeDir(dir);
    }
  });
});
