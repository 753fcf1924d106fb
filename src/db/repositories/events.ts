import { sql } from 'kysely';
import type { Db } from '../connection.js';
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
   * Synchronous on purpose: the event must be stored in the same turn as the state change it
   * reports, or another process acting on the new state (a worker claiming a new task) can store its
   * own event first and readers see them out of order. It moves to the asynchronous layer together
   * with the state changes, in one transaction with them.
   */
  append(kind: string, taskId: number | null, payload: unknown): EventRow {
    const insert = () =>
      this.db
        .prepare('INSERT INTO events (kind, task_id, payload, created_at) VALUES (?, ?, ?, ?) RETURNING *')
        .get(kind, taskId, JSON.stringify(payload), nowIso()) as EventRow;
    if (this.db.dialect === 'sqlite') return insert();
    // PostgreSQL: with several writers, ids could otherwise become visible out of order and a
    // reader replaying "after id N" would skip the late one for good. Taking the id under a
    // transaction lock makes commit order equal id order. The NOTIFY goes out at commit.
    return this.db.transaction(() => {
      this.db.prepare('SELECT pg_advisory_xact_lock(?)').get(EVENTS_LOCK);
      const row = insert();
      this.db.prepare('SELECT pg_notify(?, ?)').get(EVENTS_CHANNEL, String(row.id));
      return row;
    })();
  }

  after(id: number, limit: number): Promise<EventRow[]> {
    return this.db.async.selectFrom('events').selectAll().where('id', '>', id).orderBy('id').limit(limit).execute();
  }

  /** The oldest event still kept (0 when there is none). */
  async firstId(): Promise<number> {
    const row = await this.db.async
      .selectFrom('events')
      .select(sql<number>`COALESCE(MIN(id), 0)`.as('id'))
      .executeTakeFirst();
    return Number(row?.id ?? 0);
  }

  async lastId(): Promise<number> {
    const row = await this.db.async
      .selectFrom('events')
      .select(sql<number>`COALESCE(MAX(id), 0)`.as('id'))
      .executeTakeFirst();
    return Number(row?.id ?? 0);
  }

  /** Keeps the newest `keep` events. */
  async trim(keep: number): Promise<void> {
    await sql`DELETE FROM events WHERE id <= (SELECT COALESCE(MAX(id), 0) FROM events) - ${keep}`.execute(this.db.async);
  }
}
