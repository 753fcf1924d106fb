// The queue's rules when several processes share it (PostgreSQL): lease takeover, stale claims, cancels.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, gatedExecutor, waitFor, type TestEnv } from './helpers.js';
import { freshDatabase, hasPg, PG_SKIP_NOTE, type TestDatabase } from './pg.js';

describe.skipIf(!hasPg)(`the shared queue${PG_SKIP_NOTE}`, () => {
  let db: TestDatabase;
  let env: TestEnv;
  let gate: ReturnType<typeof gatedExecutor>;
  const lapsed = async (id: number, owner: string, extra = '') =>
    db.query(`UPDATE tasks SET status = 'in_progress', lease_owner = $1, lease_expires_at = 1, attempts = 1${extra} WHERE id = $2`, [
      owner,
      id,
    ]);

  beforeAll(async () => {
    db = await freshDatabase();
    gate = gatedExecutor();
    env = await createTestEnv({
      executor: gate.executor,
      overrides: { database: { url: db.url }, queue: { lease_seconds: 2, poll_interval_ms: 50 } },
    });
  });
  afterAll(async () => {
    gate?.releaseAll();
    await env?.close();
    await db?.drop();
  });

  it('takes over lapsed leases (also its own when nothing of it runs any more) and honours a cancel asked meanwhile', async () => {
    const s = env.services;
    // No new claims meanwhile: the running scheduler would otherwise take a requeued task straight
    // back (correctly) before the checks below see it queued. Recovery goes on while paused.
    await s.queue.pause(null, 'recovery test', 'test');
    try {
      const [a, b, c] = [
        (await s.tasks.create({ title: 't1', repo: 'acme/web' })).id,
        (await s.tasks.create({ title: 't2', repo: 'acme/web' })).id,
        (await s.tasks.create({ title: 't3', repo: 'acme/web' })).id,
      ];
      await lapsed(a, 'dead-host:1:aaaaaa');
      await lapsed(b, s.scheduler.owner);
      await lapsed(c, 'dead-host:1:aaaaaa', ', cancel_requested = 1');
      await s.scheduler.recover();
      expect(await s.repos.tasks.get(a)).toMatchObject({ status: 'queued', lease_owner: null });
      // Ours, but not running here any more (say its result could not be recorded): recovered too.
      expect(await s.repos.tasks.get(b)).toMatchObject({ status: 'queued', lease_owner: null });
      expect(await s.repos.tasks.get(c)).toMatchObject({ status: 'cancelled', error: 'Cancelled by request' });
      await db.query(`UPDATE tasks SET status = 'cancelled' WHERE id = ANY($1)`, [[a, b]]);
    } finally {
      await s.queue.resume('test');
    }
  });

  it('never takes over a task it still runs, even when the lease looks lapsed', async () => {
    const s = env.services;
    const t = await s.tasks.create({ title: 'still mine', repo: 'acme/web', run: true });
    s.running.notify();
    await waitFor(() => gate.isWaiting(t.id), { what: 'the task running' });
    await db.query('UPDATE tasks SET lease_expires_at = 1 WHERE id = $1', [t.id]);
    await s.scheduler.recover();
    expect(await s.repos.tasks.get(t.id)).toMatchObject({ status: 'in_progress', lease_owner: s.scheduler.owner, attempts: 1 });
    expect(s.running.isRunning(t.id)).toBe(true);
    gate.release(t.id);
    await waitFor(async () => (await s.repos.tasks.get(t.id))?.status === 'done', { what: 'the run recorded' });
  });

  it('hands a task back, without counting the attempt, when its lease cannot be renewed for most of a lease period', async () => {
    const s = env.services;
    const repo = s.repos.tasks;
    const leases = s.repos.queue;
    const renew = leases.renewLease;
    leases.renewLease = async () => {
      throw new Error('database unreachable');
    };
    try {
      const t = await s.tasks.create({ title: 'cut off', repo: 'acme/web', run: true });
      s.running.notify();
      await waitFor(() => gate.isWaiting(t.id), { what: 'the task running' });
      // Stopped after 80 % of the 2 s lease, handed back, and claimed again.
      await waitFor(() => gate.started.filter((id) => id === t.id).length === 2, { what: 'the task started again', timeoutMs: 10_000 });
      leases.renewLease = renew;
      expect(await repo.get(t.id)).toMatchObject({ status: 'in_progress', attempts: 1 });
      await waitFor(() => gate.isWaiting(t.id), { what: 'the second run waiting' });
      gate.release(t.id);
      await waitFor(async () => (await repo.get(t.id))?.status === 'done', { what: 'the second run recorded' });
    } finally {
      leases.renewLease = renew;
    }
  });

  it('records a result only for the claim that holds the lease', async () => {
    const s = env.services;
    const t = await s.tasks.create({ title: 'stale claim', repo: 'acme/web', run: true });
    s.running.notify();
    await waitFor(() => gate.isWaiting(t.id), { what: 'the task running' });
    // Meanwhile the lease lapsed and the task was claimed again (a later attempt, same owner name).
    await db.query('UPDATE tasks SET attempts = attempts + 1 WHERE id = $1', [t.id]);
    gate.release(t.id);
    await waitFor(() => !s.running.isRunning(t.id), { what: 'the run over' });
    expect(await s.repos.tasks.get(t.id)).toMatchObject({ status: 'in_progress', attempts: 2 });
    await db.query(`UPDATE tasks SET status = 'cancelled' WHERE id = $1`, [t.id]);
  });

  it('a cancel for a task running in another process flags it and waits; a queued one is cancelled at once', async () => {
    const s = env.services;
    const remote = (await s.tasks.create({ title: 'elsewhere', repo: 'acme/web' })).id;
    await db.query(
      `UPDATE tasks SET status = 'in_progress', lease_owner = 'other:2:bbbbbb', lease_expires_at = $1, attempts = 1 WHERE id = $2`,
      [Date.now() + 60_000, remote],
    );
    const pending = s.running.cancel(remote, 5_000);
    // The other process stops it and records the cancel (here: by hand).
    await waitFor(async () => (await s.repos.tasks.get(remote))?.cancel_requested === 1, { what: 'the cancel flag' });
    await db.query(`UPDATE tasks SET status = 'cancelled', error = 'Cancelled by request' WHERE id = $1`, [remote]);
    expect((await pending)?.status).toBe('cancelled');
    const queued = (await s.tasks.create({ title: 'not started', repo: 'acme/web' })).id;
    expect((await s.running.cancel(queued, 5_000))?.status).toBe('cancelled');
  });
});
