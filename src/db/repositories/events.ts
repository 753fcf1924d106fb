import type { Db } from '../connection.js';
import { nowIso } from '../time.js';

export interface EventRow { id: number; kind: string; task_id: number | null; payload: string; created_at: string }

/** The persisted event log behind the live stream (ids are SSE ids). */
export class EventsRepo {
  constructor(private readonly db: Db) {}

  append(kind: string, taskId: number | null, payload: unknown): EventRow {
    return this.db.prepare('INSERT INTO events (kind, task_id, payload, created_at) VALUES (?, ?, ?, ?) RETURNING *')
      .get(kind, taskId, JSON.stringify(payload), nowIso()) as EventRow;
  }

  after(id: number, limit: number): EventRow[] {
    return this.db.prepare('SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?').all(id, limit) as EventRow[];
  }

  lastId(): number {
    return (this.db.prepare('SELECT COALESCE(MAX(id), 0) AS id FROM events').get() as { id: number }).id;
  }

  /** Keeps the newest `keep` events. */
  trim(keep: number): void {
    this.db.prepare('DELETE FROM events WHERE id <= (SELECT COALESCE(MAX(id), 0) FROM events) - ?').run(keep);
  }
}
