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
const EVENTS_LOCK = 7_140_303;

/** The persisted event log behind the live stream (ids are SSE ids). */
export class EventsRepo {
  constructor(private readonly db: Db) {}

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
