import type { Db } from '../connection.js';
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

/** ` AND o.id NOT IN (?, …)` for `ids`, or nothing; the ids are bound as parameters. */
function notIn(ids: readonly number[]): string {
  return ids.length === 0 ? '' : ` AND o.id NOT IN (${ids.map(() => '?').join(',')})`;
}

/** SQL for the durable outbox; the delivery policy lives in src/integrations/outbox.ts. */
export class OutboxRepo {
  constructor(private readonly db: Db) {}

  enqueue(channel: string, payload: unknown, opts: EnqueueOptions = {}): { row: OutboxRow; created: boolean } {
    const row = this.db
      .prepare(
        `INSERT INTO outbox (channel, order_key, dedupe_key, payload, next_attempt_at, created_at)
       VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (dedupe_key) DO NOTHING RETURNING *`,
      )
      .get(
        channel,
        opts.orderKey ?? '',
        opts.dedupeKey ?? null,
        JSON.stringify(payload),
        Math.round(opts.notBefore ?? Date.now()),
        nowIso(),
      ) as OutboxRow | undefined;
    if (row) {
      // Other processes deliver too (PostgreSQL): wake them (see PgEventFeed).
      if (this.db.dialect === 'postgres') this.db.prepare('SELECT pg_notify(?, ?)').get(OUTBOX_CHANNEL, String(row.id));
      return { row, created: true };
    }
    return { row: this.byDedupeKey(opts.dedupeKey!)!, created: false };
  }

  get(id: number): OutboxRow | undefined {
    return this.db.prepare('SELECT * FROM outbox WHERE id = ?').get(id) as OutboxRow | undefined;
  }

  byDedupeKey(key: string): OutboxRow | undefined {
    return this.db.prepare('SELECT * FROM outbox WHERE dedupe_key = ?').get(key) as OutboxRow | undefined;
  }

  /**
   * Rows that may be attempted now, oldest first: due, pending, on one of `channels`, and with no
   * older pending row of the same (channel, order_key). So a batch holds at most one row per key,
   * and a failing head row holds back its successors until it is delivered or dead. `skip` names rows
   * being delivered right now; they stay pending, so they keep holding back their successors too.
   */
  due(channels: readonly string[], now: number, limit: number, skip: readonly number[] = []): OutboxRow[] {
    if (channels.length === 0 || limit <= 0) return [];
    const marks = channels.map(() => '?').join(',');
    return this.db
      .prepare(
        `SELECT o.* FROM outbox o
       WHERE o.channel IN (${marks}) AND o.delivered_at IS NULL AND o.next_attempt_at <= ?${notIn(skip)}
         AND (o.order_key = '' OR NOT EXISTS (
           SELECT 1 FROM outbox p
           WHERE p.channel = o.channel AND p.order_key = o.order_key AND p.id < o.id
             AND p.delivered_at IS NULL AND p.next_attempt_at < ?))
       ORDER BY o.id LIMIT ?`,
      )
      .all(...channels, now, ...skip, DEAD_AT, limit) as OutboxRow[];
  }

  /**
   * When the next row can go: the earliest next_attempt_at among head rows (pending rows with no
   * older pending row of their order key), the same rule as due(). A row waiting behind a failing
   * head has a time long past, but it cannot go before the head, so it must not count. Rows in
   * `skip` (in flight) do not count either: their completion wakes the loop.
   */
  nextDueAt(channels: readonly string[], skip: readonly number[] = []): number | undefined {
    if (channels.length === 0) return undefined;
    const marks = channels.map(() => '?').join(',');
    const r = this.db
      .prepare(
        `SELECT MIN(o.next_attempt_at) AS t FROM outbox o
       WHERE o.channel IN (${marks}) AND o.delivered_at IS NULL AND o.next_attempt_at < ?${notIn(skip)}
         AND (o.order_key = '' OR NOT EXISTS (
           SELECT 1 FROM outbox p
           WHERE p.channel = o.channel AND p.order_key = o.order_key AND p.id < o.id
             AND p.delivered_at IS NULL AND p.next_attempt_at < ?))`,
      )
      .get(...channels, DEAD_AT, ...skip, DEAD_AT) as { t: number | string | null };
    return r.t === null ? undefined : Number(r.t);
  }

  markDelivered(id: number, result: string): void {
    this.db
      .prepare("UPDATE outbox SET delivered_at = ?, result = ?, attempts = attempts + 1, last_error = '' WHERE id = ?")
      .run(nowIso(), result, id);
  }

  markFailed(id: number, error: string, nextAttemptAt: number): void {
    // Epoch ms are whole numbers (BIGINT on PostgreSQL); a computed delay may not be.
    this.db
      .prepare('UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE id = ?')
      .run(error, Math.round(nextAttemptAt), id);
  }

  markDead(id: number, error: string): void {
    this.db.prepare('UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE id = ?').run(error, DEAD_AT, id);
  }

  /** Pending (not delivered, not dead) rows, optionally of one channel. */
  pending(channel?: string): number {
    const sql = `SELECT COUNT(*) AS n FROM outbox WHERE delivered_at IS NULL AND next_attempt_at < ?${channel ? ' AND channel = ?' : ''}`;
    return (this.db.prepare(sql).get(...(channel ? [DEAD_AT, channel] : [DEAD_AT])) as { n: number }).n;
  }

  dead(channel?: string): number {
    const sql = `SELECT COUNT(*) AS n FROM outbox WHERE delivered_at IS NULL AND next_attempt_at = ?${channel ? ' AND channel = ?' : ''}`;
    return (this.db.prepare(sql).get(...(channel ? [DEAD_AT, channel] : [DEAD_AT])) as { n: number }).n;
  }

  /** Created time of the oldest pending row (for /health), or null. */
  oldestPendingAt(): string | null {
    const r = this.db
      .prepare('SELECT MIN(created_at) AS t FROM outbox WHERE delivered_at IS NULL AND next_attempt_at < ?')
      .get(DEAD_AT) as { t: string | null };
    return r.t;
  }

  /** Deletes delivered and dead rows created before `beforeIso`; pending rows are never removed. */
  purge(beforeIso: string): number {
    return this.db
      .prepare('DELETE FROM outbox WHERE created_at < ? AND (delivered_at IS NOT NULL OR next_attempt_at = ?)')
      .run(beforeIso, DEAD_AT).changes;
  }
}
