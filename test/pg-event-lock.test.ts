// PostgreSQL waits must not stop the event loop. Another connection holds the advisory lock the
// event writer takes, for 5 s, while tasks are created (each publishes a live event): /health keeps
// answering every 25 ms probe, the API keeps answering, and once the lock is gone every event is
// stored, in the order it was published. With the synchronous bridge the first publish froze the
// whole process until the lock was released.
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { EVENTS_LOCK } from '../src/db/repositories/events.js';
import { expectResponsive, startHealthProbe } from './faults/harness.js';
import { removeDir, tempDir, waitFor } from './helpers.js';
import { freshDatabase, hasPg, PG_SKIP_NOTE, type TestDatabase } from './pg.js';
import { processConfig, startFactory, type FactoryProcess } from './process-harness.js';

/** How long the other connection keeps the lock: the fault's duration, not a wait for an outcome. */
const HOLD_MS = 5000;

describe.skipIf(!hasPg)(`PostgreSQL lock waits${PG_SKIP_NOTE}`, () => {
  let db: TestDatabase | undefined;
  let f: FactoryProcess | undefined;
  let dir = '';
  afterAll(async () => {
    if (f && f.child.exitCode === null) f.child.kill('SIGTERM');
    await f?.exited;
    await db?.drop();
    if (dir) removeDir(dir);
  });

  it('keeps /health and the API answering while another connection holds the event lock for 5 s', async () => {
    db = await freshDatabase('factory_lock');
    dir = tempDir();
    f = await startFactory(dir, processConfig(dir, { role: 'api', database: { url: db.url } }));
    const probe = await startHealthProbe(f.url);
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query('SELECT pg_advisory_lock($1)', [EVENTS_LOCK]);
      const released = new Promise<void>((resolve) => setTimeout(resolve, HOLD_MS));
      const ids: number[] = [];
      for (let i = 0; i < 5; i++) {
        const r = await f.api('POST', '/api/tasks', {
          title: `Locked ${i}`,
          description: 'while the event lock is held',
          repo: 'acme/web',
        });
        expect(r.status, JSON.stringify(r.json)).toBe(201);
        ids.push(r.json.id);
      }
      // Everything above answered while the lock was still held, and nothing is stored yet.
      const during = await db.query<{ n: number }>("SELECT COUNT(*)::int AS n FROM events WHERE kind = 'task_status'");
      expect(during[0]!.n).toBe(0);
      await released;
      await holder.query('SELECT pg_advisory_unlock($1)', [EVENTS_LOCK]);
      const rows = await waitFor(
        async () => {
          const r = await db!.query<{ id: number; task_id: number }>(
            "SELECT id::int, task_id::int FROM events WHERE kind = 'task_status' ORDER BY id",
          );
          return r.length >= ids.length ? r : undefined;
        },
        { what: 'the events published during the lock' },
      );
      expect(rows.map((r) => r.task_id)).toEqual(ids);
    } finally {
      await holder.end();
    }
    expectResponsive(await probe.stop());
  });
});
