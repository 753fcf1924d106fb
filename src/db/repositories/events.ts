import { sql } from 'kysely';
import type { AsyncDb } from '../query.js';
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
  constructor(private readonly db: AsyncDb) {}

  /** The same repository inside a transaction (see AsyncDb.transaction). */
  in(tx: AsyncDb): EventsRepo {
    return new EventsRepo(tx);
  }

  /**
   * Stores one event. Callers that change state store its event in the same transaction (see
   * TaskService), so no process can act on the new state, and store its own event, before this one.
   */
  async append(kind: string, taskId: number | null, payload: unknown): Promise<EventRow> {
    const insert = async (q: AsyncDb) =>
      (await q.get<EventRow>(
        'INSERT INTO events (kind, task_id, payload, created_at) VALUES (?, ?, ?, ?) RETURNING *',
        kind,
        taskId,
        JSON.stringify(payload),
        nowIso(),
      ))!;
    if (this.db.dialect === 'sqlite') return insert(this.db);
    // PostgreSQL: with several writers, ids could otherwise become visible out of order and a
    // reader replaying "after id N" would skip the late one for good. Taking the id under a
    // transaction lock makes commit order equal id order. The NOTIFY goes out at commit.
    return this.db.transaction(async (tx) => {
      await tx.get('SELECT pg_advisory_xact_lock(?)', EVENTS_LOCK);
      const row = await insert(tx);
      await tx.get('SELECT pg_notify(?, ?)', EVENTS_CHANNEL, String(row.id));
      return row;
    });
  }

  after(id: number, limit: number): Promise<EventRow[]> {
    return this.db.kysely.selectFrom('events').selectAll().where('id', '>', id).orderBy('id').limit(limit).execute();
  }

  /** The oldest event still kept (0 when there is none). */
  async firstId(): Promise<number> {
    const row = await this.db.kysely
      .selectFrom('events')
      .select(sql<number>`COALESCE(MIN(id), 0)`.as('id'))
      .executeTakeFirst();
    return Number(row?.id ?? 0);
  }

  async lastId(): Promise<number> {
    const row = await this.db.kysely
      .selectFrom('events')
      .select(sql<number>`COALESCE(MAX(id), 0)`.as('id'))
      .executeTakeFirst();
    return Number(row?.id ?? 0);
  }

  /** Keeps the newest `keep` events. */
  async trim(keep: number): Promise<void> {
    await sql`DELETE FROM events WHERE id <= (SELECT COALESCE(MAX(id), 0) FROM events) - ${keep}`.execute(this.db.kysely);
  }
}
