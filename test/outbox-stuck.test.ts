// One outside service that accepts a request and never answers must hold back only its own rows:
// other channels (and other order keys of the same channel) keep being delivered meanwhile.
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { openDb } from '../src/db/connection.js';
import { OutboxRepo } from '../src/db/repositories/outbox.js';
import { OutboxWorker } from '../src/integrations/outbox.js';
import { tempDir, waitFor } from './helpers.js';

function stuckHandler(): {
  started: number[];
  release(): void;
  handler: (p: unknown, ctx: { id: number; signal: AbortSignal }) => Promise<void>;
} {
  const started: number[] = [];
  let release = (): void => {};
  const gate = new Promise<void>((r) => {
    release = r;
  });
  return {
    started,
    release: () => release(),
    handler: async (_p, ctx) => {
      started.push(ctx.id);
      await Promise.race([gate, new Promise((_r, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('aborted'))))]);
    },
  };
}

describe('outbox with a delivery that never answers', () => {
  it('keeps delivering other channels and other order keys while one request hangs', async () => {
    const db = await openDb(`${tempDir()}/outbox.db`);
    const repo = new OutboxRepo(db);
    const worker = new OutboxWorker(repo, pino({ level: 'silent' }), { idleMs: 30_000, stopGraceMs: 200 });
    const stuck = stuckHandler();
    const plane: string[] = [];
    worker.register('telegram', stuck.handler);
    worker.register('plane', async (p: { n: string }) => {
      plane.push(p.n);
    });
    worker.start();
    try {
      const head = await worker.enqueue('telegram', { text: 'first' }, { orderKey: 'chat:1' });
      const behind = await worker.enqueue('telegram', { text: 'second' }, { orderKey: 'chat:1' });
      await waitFor(() => stuck.started.includes(head.id), { what: 'the stuck delivery to start' });
      // Enqueued after the stuck request began: a loop that waits for its whole batch never gets here.
      for (const n of ['a', 'b', 'c']) await worker.enqueue('plane', { n }, { orderKey: 'issue:7' });
      await waitFor(() => plane.length === 3, { what: 'the Plane rows delivered while Telegram hangs', timeoutMs: 5000 });
      expect(plane).toEqual(['a', 'b', 'c']);
      // The row behind the stuck head keeps its place: not attempted, still pending.
      expect(stuck.started).toEqual([head.id]);
      expect((await repo.get(behind.id))!.attempts).toBe(0);
      stuck.release();
      await waitFor(() => stuck.started.length === 2, { what: 'the second Telegram row after the head' });
      await waitFor(async () => (await repo.pending()) === 0, { what: 'everything delivered' });
      expect(stuck.started).toEqual([head.id, behind.id]);
    } finally {
      stuck.release();
      await worker.stop();
      await db.close();
    }
  });

  it('stop() aborts a delivery that outlives the grace and records it for a retry', async () => {
    const db = await openDb(`${tempDir()}/outbox.db`);
    const repo = new OutboxRepo(db);
    const worker = new OutboxWorker(repo, pino({ level: 'silent' }), { stopGraceMs: 100 });
    const stuck = stuckHandler();
    worker.register('telegram', stuck.handler);
    worker.start();
    const row = await worker.enqueue('telegram', { text: 'hangs' });
    await waitFor(() => stuck.started.length === 1, { what: 'the stuck delivery to start' });
    await worker.stop();
    const after = (await repo.get(row.id))!;
    expect(after.delivered_at).toBeNull();
    expect(after.attempts).toBe(1);
    expect(after.last_error).toMatch(/aborted/);
    await db.close();
  });
});
