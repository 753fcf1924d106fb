import { sql, type RawBuilder } from 'kysely';
import type { AsyncDb } from '../query.js';
import { nowIso } from '../time.js';

export interface OutboxRow {
  id: number;
  channel: string;
  order_key: string;
  dedupe_key: string | null;
  payload: string;
  attempts: number;
  next_attempt_at: number;
  last_error: string;
  result: string;
  created_at: string;
  delivered_at: string | null;
}

/**
 * The schema has no dead-letter column, so a row that will never be retried is parked with this
 * next_attempt_at (the largest valid Date, year 275760). "Pending" everywhere means
 * `delivered_at IS NULL AND next_attempt_at < DEAD_AT`.
 */
export const DEAD_AT = 8_640_000_000_000_000;

/** PostgreSQL channel announcing new outbox rows to the process that delivers them. */
export const OUTBOX_CHANNEL = 'factory_outbox';

export interface EnqueueOptions {
  /** Rows with the same non-empty key (per channel) are delivered strictly one after another. */
  orderKey?: string;
  /** UNIQUE: a second enqueue with the same key returns the existing row instead of adding one. */
  dedupeKey?: string;
  /** Earliest delivery time, epoch ms (default now). */
  notBefore?: number;
}

/** ` AND o.id NOT IN (…)` for `ids`, or nothing; the ids are bound as parameters. */
function notIn(ids: readonly number[]): RawBuilder<unknown> {
  return ids.length === 0 ? sql`` : sql` AND o.id NOT IN (${sql.join(ids)})`;
}

/** Row `o` is the head of its order key: no older pending row with the same (channel, order_key). */
function isHead(): RawBuilder<unknown> {
  return sql`(o.order_key = '' OR NOT EXISTS (
           SELECT 1 FROM outbox p
           WHERE p.channel = o.channel AND p.order_key = o.order_key AND p.id < o.id
             AND p.delivered_at IS NULL AND p.next_attempt_at < ${DEAD_AT}))`;
}

/** SQL for the durable outbox; the delivery policy lives in src/integrations/outbox.ts. */
export class OutboxRepo {
  constructor(private readonly db: AsyncDb) {}

  async enqueue(channel: string, payload: unknown, opts: EnqueueOptions = {}): Promise<{ row: OutboxRow; created: boolean }> {
    const row = (await this.db.get(
      `INSERT INTO outbox (channel, order_key, dedupe_key, payload, next_attempt_at, created_at)
       VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (dedupe_key) DO NOTHING RETURNING *`,
      channel,
      opts.orderKey ?? '',
      opts.dedupeKey ?? null,
      JSON.stringify(payload),
      Math.round(opts.notBefore ?? Date.now()),
      nowIso(),
    )) as OutboxRow | undefined;
    if (row) {
      // Other processes deliver too (PostgreSQL): wake them (see PgEventFeed).
      if (this.db.dialect === 'postgres') await this.db.get('SELECT pg_notify(?, ?)', OUTBOX_CHANNEL, String(row.id));
      return { row, created: true };
    }
    return { row: (await this.byDedupeKey(opts.dedupeKey!))!, created: false };
  }

  async get(id: number): Promise<OutboxRow | undefined> {
    return (await this.db.get('SELECT * FROM outbox WHERE id = ?', id)) as OutboxRow | undefined;
  }

  async byDedupeKey(key: string): Promise<OutboxRow | undefined> {
    return (await this.db.get('SELECT * FROM outbox WHERE dedupe_key = ?', key)) as OutboxRow | undefined;
  }

  /**
   * Rows that may be attempted now, oldest first: due, pending, on one of `channels`, and with no
   * older pending row of the same (channel, order_key). So a batch holds at most one row per key,
   * and a failing head row holds back its successors until it is delivered or dead. `skip` names rows
   * being delivered right now; they stay pending, so they keep holding back their successors too.
   */
  async due(channels: readonly string[], now: number, limit: number, skip: readonly number[] = []): Promise<OutboxRow[]> {
    if (channels.length === 0 || limit <= 0) return [];
    const { rows } = await sql<OutboxRow>`SELECT o.* FROM outbox o
       WHERE o.channel IN (${sql.join(channels)}) AND o.delivered_at IS NULL AND o.next_attempt_at <= ${now}${notIn(skip)}
         AND ${isHead()}
       ORDER BY o.id LIMIT ${limit}`.execute(this.db.kysely);
    return rows;
  }

  /**
   * When the next row can go: the earliest next_attempt_at among head rows (pending rows with no
   * older pending row of their order key), the same rule as due(). A row waiting behind a failing
   * head has a time long past, but it cannot go before the head, so it must not count. Rows in
   * `skip` (in flight) do not count either: their completion wakes the loop.
   */
  async nextDueAt(channels: readonly string[], skip: readonly number[] = []): Promise<number | undefined> {
    if (channels.length === 0) return undefined;
    const { rows } = await sql<{ t: number | string | null }>`SELECT MIN(o.next_attempt_at) AS t FROM outbox o
       WHERE o.channel IN (${sql.join(channels)}) AND o.delivered_at IS NULL AND o.next_attempt_at < ${DEAD_AT}${notIn(skip)}
         AND ${isHead()}`.execute(this.db.kysely);
    const t = rows[0]?.t ?? null;
    return t === null ? undefined : Number(t);
  }

  async markDelivered(id: number, result: string): Promise<void> {
    await sql`UPDATE outbox SET delivered_at = ${nowIso()}, result = ${result}, attempts = attempts + 1, last_error = ''
      WHERE id = ${id}`.execute(this.db.kysely);
  }

  async markFailed(id: number, error: string, nextAttemptAt: number): Promise<void> {
    // Epoch ms are whole numbers (BIGINT on PostgreSQL); a computed delay may not be.
    await sql`UPDATE outbox SET attempts = attempts + 1, last_error = ${error}, next_attempt_at = ${Math.round(nextAttemptAt)}
      WHERE id = ${id}`.execute(this.db.kysely);
  }

  async markDead(id: number, error: string): Promise<void> {
    await sql`UPDATE outbox SET attempts = attempts + 1, last_error = ${error}, next_attempt_at = ${DEAD_AT} WHERE id = ${id}`.execute(
      this.db.kysely,
    );
  }

  /** Pending and dead rows and the oldest pending row's created time, in one query (for /health). */
  async stats(): Promise<{ pending: number; dead: number; oldest_pending_at: string | null }> {
    const { rows } = await sql<{ pending: number | null; dead: number | null; oldest: string | null }>`SELECT
        SUM(CASE WHEN next_attempt_at < ${DEAD_AT} THEN 1 ELSE 0 END) AS pending,
        SUM(CASE WHEN next_attempt_at = ${DEAD_AT} THEN 1 ELSE 0 END) AS dead,
        MIN(CASE WHEN next_attempt_at < ${DEAD_AT} THEN created_at END) AS oldest
      FROM outbox WHERE delivered_at IS NULL`.execute(this.db.kysely);
    const r = rows[0];
    return { pending: Number(r?.pending ?? 0), dead: Number(r?.dead ?? 0), oldest_pending_at: r?.oldest ?? null };
  }

  /** Pending (not delivered, not dead) rows, optionally of one channel. */
  async pending(channel?: string): Promise<number> {
    const sql = `SELECT COUNT(*) AS n FROM outbox WHERE delivered_at IS NULL AND next_attempt_at < ?${channel ? ' AND channel = ?' : ''}`;
    return ((await this.db.get(sql, ...(channel ? [DEAD_AT, channel] : [DEAD_AT]))) as { n: number }).n;
  }

  /** Deletes delivered and dead rows created before `beforeIso`; pending rows are never removed. */
  async purge(beforeIso: string): Promise<number> {
    const r =
      await sql`DELETE FROM outbox WHERE created_at < ${beforeIso} AND (delivered_at IS NOT NULL OR next_attempt_at = ${DEAD_AT})`.execute(
        this.db.kysely,
      );
    return Number(r.numAffectedRows ?? 0);
  }
}
