// A row waiting behind a failing head row of its order key must not make the delivery loop spin:
// the process stays responsive, and the rows go out once each, in order, when the head does.
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { openDb } from '../src/db/connection.js';
import { OutboxRepo } from '../src/db/repositories/outbox.js';
import { DeliveryError, OutboxWorker } from '../src/integrations/outbox.js';
import { tempDir, waitFor } from './helpers.js';

describe('outbox with a blocked order key', () => {
  it('sleeps until the head row is due instead of spinning, then delivers in order', async () => {
    const db = await openDb(`${tempDir()}/outbox.db`);
    const repo = new OutboxRepo(db);
    let dueCalls = 0;
    const due = repo.due.bind(repo);
    repo.due = (...args) => {
      dueCalls++;
      return due(...args);
    };
    const worker = new OutboxWorker(repo, pino({ level: 'silent' }), { idleMs: 30_000 });
    let rateLimited = true;
    const delivered: string[] = [];
    worker.register('tg', async (p: { text: string }) => {
      // Like Telegram: 429 with retry_after for the whole chat.
      if (rateLimited) throw new DeliveryError('429 Too Many Requests: retry after 1', { retryAfterMs: 1000, status: 429 });
      delivered.push(p.text);
    });
    for (const text of ['one', 'two', 'three']) await worker.enqueue('tg', { text }, { orderKey: 'chat:42' });
    worker.start();
    try {
      await waitFor(async () => (await repo.get(1))!.attempts >= 1, { what: 'the first failed attempt' });
      // A timer must fire while the head waits out its retry_after: a spinning loop starves it.
      const before = dueCalls;
      await new Promise((r) => setTimeout(r, 300));
      expect(dueCalls - before).toBeLessThanOrEqual(2);
      rateLimited = false;
      await waitFor(() => delivered.length === 3, { what: 'all three delivered', timeoutMs: 10_000 });
      expect(delivered).toEqual(['one', 'two', 'three']);
      expect(await repo.pending()).toBe(0);
    } finally {
      await worker.stop();
      await db.close();
    }
  });

  it('computes the next wake-up from head rows only', async () => {
    const db = await openDb(`${tempDir()}/outbox.db`);
    const repo = new OutboxRepo(db);
    const head = (await repo.enqueue('tg', { n: 1 }, { orderKey: 'k' })).row;
    await repo.enqueue('tg', { n: 2 }, { orderKey: 'k', notBefore: 1000 });
    await repo.markFailed(head.id, 'rate limited', 5_000_000_000_000);
    // The successor's own time (1000, long past) must not count: it cannot go before the head.
    expect(await repo.nextDueAt(['tg'])).toBe(5_000_000_000_000);
    await db.close();
  });
});
