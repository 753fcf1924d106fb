// PostgreSQL misbehaving under a running Factory (PostgreSQL mode): another connection holds the
// lock event writers take, and every round trip is slow. /health, probed from its own process every
// 25 ms, must stay responsive: a database that waits slows only the work that needs it.
import { afterEach, describe, expect, it } from 'vitest';
import pg from 'pg';
import { EVENTS_LOCK } from '../../src/db/repositories/events.js';
import { DelayProxy } from '../fakes/tcp-delay.js';
import { freshDatabase, hasPg, PG_SKIP_NOTE } from '../pg.js';
import { expectResponsive, expectStandardOutcome, startFaultFactory, startHealthProbe, startStandardTasks } from './harness.js';

let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => undefined);
  cleanup = [];
});

const LOCK_HELD_MS = 5000;

describe.skipIf(!hasPg)(`fault: PostgreSQL${PG_SKIP_NOTE}`, () => {
  it('another connection holds the event writers lock for 5 s: /health answers, creates wait and then land in order', async () => {
    const db = await freshDatabase('factory_lock');
    cleanup.push(() => db.drop());
    const f = await startFaultFactory({ database: { url: db.url } });
    cleanup.push(() => f.stop());
    const probe = await startHealthProbe(f.url);
    cleanup.push(() => probe.stop().then(() => undefined));

    const locker = new pg.Client({ connectionString: db.url });
    await locker.connect();
    cleanup.push(() => locker.end());
    await locker.query('SELECT pg_advisory_lock($1)', [EVENTS_LOCK]);
    const lockedAt = Date.now();
    const answeredAt: number[] = [];
    const creates = [1, 2, 3].map((i) =>
      f.api('POST', '/api/tasks', { title: `made while locked ${i}`, repo: 'acme/web' }).then((r) => {
        answeredAt.push(Date.now());
        return r;
      }),
    );
    // The fault lasts this long by definition; the probe measures /health meanwhile.
    await new Promise((r) => setTimeout(r, LOCK_HELD_MS));
    expect(answeredAt, 'a create waits for the lock (its event commits with it)').toEqual([]);
    await locker.query('SELECT pg_advisory_unlock($1)', [EVENTS_LOCK]);

    const answers = await Promise.all(creates);
    for (const a of answers) expect(a.status, JSON.stringify(a.json)).toBe(201);
    expect(Math.min(...answeredAt) - lockedAt).toBeGreaterThanOrEqual(LOCK_HELD_MS);
    const ids = answers.map((a) => (a.json as { id: number }).id);
    expect(new Set(ids).size).toBe(3);
    // Each task's creation event is stored, ids in commit order.
    const events = await db.query<{ id: number; task_id: number }>(
      `SELECT id, task_id FROM events WHERE kind = 'task_status' AND task_id = ANY($1::bigint[]) ORDER BY id`,
      [ids],
    );
    expect(events.map((e) => Number(e.task_id)).sort()).toEqual([...ids].sort());
    expectResponsive(await probe.stop());
  });

  it('every database round trip takes 20 ms longer: /health answers and tasks still run to their ends', async () => {
    const db = await freshDatabase('factory_slow');
    cleanup.push(() => db.drop());
    const target = new URL(db.url);
    const proxy = new DelayProxy(target.hostname, Number(target.port), 20);
    const port = await proxy.start();
    cleanup.push(() => proxy.stop());
    const slow = new URL(db.url);
    slow.port = String(port);
    const f = await startFaultFactory({ database: { url: slow.toString() } });
    cleanup.push(() => f.stop());

    const probe = await startHealthProbe(f.url);
    cleanup.push(() => probe.stop().then(() => undefined));
    const tasks = await startStandardTasks(f);
    await expectStandardOutcome(f, tasks);
    const summary = await probe.stop();
    expect(proxy.chunks, 'Factory talked to the database through the slow proxy').toBeGreaterThan(100);
    expectResponsive(summary);
  });
});
