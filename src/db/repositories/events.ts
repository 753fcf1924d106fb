import { sql, type Transaction } from 'kysely';
import type { AsyncDb } from '../async.js';
import type { Db } from '../connection.js';
import type { Tables } from '../schema.js';
import { nowIso } from '../time.js';

export interface EventRow {
  id: number;
  kind: string;
  task_id: number | null;
  payload: string;
  created_at: string;
}

/** PostgreSQL channel on which every new event id is announced to the other Factory processes. */
export const EVENTS_CHANNEL = 'factory_events';
export const EVENTS_LOCK = 7_140_303;

/** The persisted event log behind the live stream (ids are SSE ids). */
export class EventsRepo {
  constructor(private readonly db: Db) {}

  /**
   * Asynchronous: on PostgreSQL the insert may wait for the lock below while another process holds
   * it, and that wait must not stop this process's event loop.
   */
  async append(kind: string, taskId: number | null, payload: unknown): Promise<EventRow> {
    const values = { kind, task_id: taskId, payload: JSON.stringify(payload), created_at: nowIso() };
    const insert = (q: AsyncDb | Transaction<Tables>) => q.insertInto('events').values(values).returningAll().executeTakeFirstOrThrow();
    if (this.db.dialect === 'sqlite') return insert(this.db.async);
    // PostgreSQL: with several writers, ids could otherwise become visible out of order and a
    // reader replaying "after id N" would skip the late one for good. Taking the id under a
    // transaction lock makes commit order equal id order. The NOTIFY goes out at commit.
    return this.db.async.transaction().execute(async (tx) => {
      await sql`SELECT pg_advisory_xact_lock(${EVENTS_LOCK})`.execute(tx);
      const row = await insert(tx);
      await sql`SELECT pg_notify(${EVENTS_CHANNEL}, ${String(row.id)})`.execute(tx);
      return row;
    });
  }

  after(id: number, limit: number): EventRow[] {
    return this.db.prepare('SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?').all(id, limit) as EventRow[];
  }

  /** The oldest event still kept (0 when there is none). */
  firstId(): number {
    return (this.db.prepare('SELECT COALESCE(MIN(id), 0) AS id FROM events').get() as { id: number }).id;
  }

  lastId(): number {
    return (this.db.prepare('SELECT COALESCE(MAX(id), 0) AS id FROM events').get() as { id: number }).id;
  }

  /** Keeps the newest `keep` events. */
  trim(keep: number): void {
    this.db.prepare('DELETE FROM events WHERE id <= (SELECT COALESCE(MAX(id), 0) FROM events) - ?').run(keep);
  }
}
