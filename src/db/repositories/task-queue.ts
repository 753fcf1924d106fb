// The queue's SQL: atomic claims, lease renewal and takeover, cancels by row, and when the next
// delayed task becomes runnable. The queue backends (src/queue/backend.ts) are its only users.
import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { AsyncDb } from '../query.js';
import type { Tables } from '../schema.js';
import type { LeaseGuard, TaskRow } from './tasks.js';

/** Advisory lock key (PostgreSQL) that serialises claims while a global limit is set. */
const CLAIM_LOCK = 7_140_302;

export class TaskQueueRepo {
  constructor(private readonly db: AsyncDb) {}

  /**
   * Atomically takes the oldest runnable task and leases it to `owner`. With `globalLimit` > 0 no
   * claim happens while that many tasks run anywhere (all worker hosts together).
   * SQLite has one writer, so the UPDATE … RETURNING alone is atomic. PostgreSQL has many: the
   * candidate row is locked with FOR UPDATE SKIP LOCKED (two workers never wait on, or take, the
   * same task), and the global limit is counted under a transaction-scoped advisory lock.
   */
  async claimNext(
    owner: string,
    leaseMs: number,
    now = new Date(),
    globalLimit = 0,
    exclude: readonly number[] = [],
  ): Promise<TaskRow | undefined> {
    const iso = now.toISOString();
    const pg = this.db.dialect === 'postgres';
    const clock = pg ? this.clock() : sql`${now.getTime()}`;
    const notMine = exclude.length ? sql` AND id NOT IN (${sql.join(exclude)})` : sql``;
    const claim = async (q: Kysely<Tables>): Promise<TaskRow | undefined> => {
      if (globalLimit > 0) {
        const { rows } = await sql<{ n: number }>`SELECT COUNT(*) AS n FROM tasks WHERE status = 'in_progress'`.execute(q);
        if (Number(rows[0]?.n ?? 0) >= globalLimit) return undefined;
      }
      const set = sql`status = 'in_progress', lease_owner = ${owner}, lease_expires_at = ${clock} + ${leaseMs},
          attempts = attempts + 1, started_at = COALESCE(started_at, ${iso}), updated_at = ${iso}`;
      const runnable = sql`status = 'queued' AND run_requested_at IS NOT NULL AND cancel_requested = 0
            AND (not_before IS NULL OR not_before <= ${iso})${notMine}`;
      // PostgreSQL: the row is locked by the CTE (SKIP LOCKED keeps claimers apart, and a locked row's
      // conditions are checked again on its latest version); the join updates it by primary key,
      // which the planner cannot mistake for a scan of every queued task when statistics are stale.
      const { rows } = pg
        ? await sql<TaskRow>`
        WITH next AS (SELECT id FROM tasks WHERE ${runnable} ORDER BY run_requested_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
        UPDATE tasks SET ${set} FROM next WHERE tasks.id = next.id RETURNING tasks.*`.execute(q)
        : await sql<TaskRow>`
        UPDATE tasks SET ${set}
        WHERE id = (SELECT id FROM tasks WHERE ${runnable} ORDER BY run_requested_at, id LIMIT 1) AND status = 'queued'
        RETURNING *`.execute(q);
      return rows[0];
    };
    // One statement is atomic on its own (SKIP LOCKED keeps claimers apart); only the global limit
    // needs a transaction, for its advisory lock and count.
    if (!pg || globalLimit <= 0) return claim(this.db.kysely);
    return this.db.transaction(async (tx) => {
      if (globalLimit > 0) await sql`SELECT pg_advisory_xact_lock(${CLAIM_LOCK})`.execute(tx.kysely);
      return claim(tx.kysely);
    });
  }

  /**
   * Lease times: on PostgreSQL from the database's clock, so hosts whose clocks disagree still agree
   * on when a lease lapses; SQLite serves one host, whose clock it is.
   */
  private clock(): RawBuilder<number> {
    return this.db.dialect === 'postgres'
      ? sql<number>`(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint`
      : sql<number>`${Date.now()}`;
  }

  /** Extends the lease of one claim; false when that claim no longer holds the task. */
  async renewLease(id: number, lease: LeaseGuard, leaseMs: number): Promise<boolean> {
    const r = await sql`UPDATE tasks SET lease_expires_at = ${this.clock()} + ${leaseMs}
      WHERE id = ${id} AND lease_owner = ${lease.owner} AND attempts = ${lease.attempts} AND status = 'in_progress'`.execute(
      this.db.kysely,
    );
    return Number(r.numAffectedRows ?? 0) === 1;
  }

  /**
   * Several workers (PostgreSQL): takes over the lease of every in_progress task whose lease has
   * lapsed (its worker died or lost the database), so exactly one process recovers each. Returns
   * the rows with the owner they had before.
   */
  async takeOverExpired(
    owner: string,
    leaseMs: number,
    running: readonly number[] = [],
  ): Promise<Array<TaskRow & { previous_owner: string | null }>> {
    // Never a task this process still runs: that copy finds out at its next renewal and stops
    // itself; taking it over here would run the task twice in one process. One of ours that no
    // longer runs (its result could not be recorded) is recovered like anyone's.
    const stillMine = running.length ? sql` AND NOT (lease_owner = ${owner} AND id IN (${sql.join(running)}))` : sql``;
    const clock = this.clock();
    const { rows } = await sql<TaskRow & { previous_owner: string | null }>`
      UPDATE tasks SET lease_owner = ${owner}, lease_expires_at = ${clock} + ${leaseMs}
      FROM (SELECT id AS expired_id, lease_owner AS previous_owner FROM tasks
            WHERE status = 'in_progress' AND (lease_expires_at IS NULL OR lease_expires_at < ${clock})${stillMine}
            ORDER BY id FOR UPDATE SKIP LOCKED) expired
      WHERE tasks.id = expired.expired_id
      RETURNING tasks.*, expired.previous_owner`.execute(this.db.kysely);
    return rows;
  }

  /** Running tasks of `owner` that someone asked to cancel (another process took the request). */
  async cancelRequested(owner: string): Promise<number[]> {
    const { rows } = await sql<{ id: number }>`SELECT id FROM tasks
      WHERE status = 'in_progress' AND lease_owner = ${owner} AND cancel_requested = 1`.execute(this.db.kysely);
    return rows.map((r) => Number(r.id));
  }

  /** Tasks marked in_progress whose lease is not held by `owner`. */
  orphans(owner: string): Promise<TaskRow[]> {
    return this.db.all<TaskRow>(
      `SELECT * FROM tasks WHERE status = 'in_progress' AND (lease_owner IS NULL OR lease_owner <> ?) ORDER BY id`,
      owner,
    );
  }

  /** When the next delayed task becomes runnable (ISO), if any. */
  async nextNotBefore(): Promise<string | undefined> {
    const { rows } = await sql<{ t: string | null }>`SELECT MIN(not_before) AS t FROM tasks
      WHERE status = 'queued' AND run_requested_at IS NOT NULL AND not_before IS NOT NULL`.execute(this.db.kysely);
    return rows[0]?.t ?? undefined;
  }
}
