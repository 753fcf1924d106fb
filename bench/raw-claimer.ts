// The floor under Factory's PostgreSQL claims: the same two statements Factory sends for a claim
// and its settle (the locking CTE claim, the lease-guarded transition to done), from one plain
// node-postgres client with named (prepared) statements, no pool and no query builder.
import pg from 'pg';

const CLAIM = `WITH next AS (
    SELECT id FROM tasks WHERE status = 'queued' AND run_requested_at IS NOT NULL AND cancel_requested = 0
      AND (not_before IS NULL OR not_before <= $1) ORDER BY run_requested_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
  UPDATE tasks SET status = 'in_progress', lease_owner = $2,
    lease_expires_at = (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint + $3,
    attempts = attempts + 1, started_at = COALESCE(started_at, $1), updated_at = $1
  FROM next WHERE tasks.id = next.id RETURNING tasks.*`;
const SETTLE = `UPDATE tasks SET status = 'done', completed_at = $1, run_requested_at = NULL, lease_owner = NULL,
    lease_expires_at = NULL, updated_at = $1
  WHERE id = $2 AND status IN ('in_progress') AND lease_owner = $3 AND attempts = $4 RETURNING *`;

export interface ClaimOps {
  claim(): Promise<{ id: number; attempts: number } | undefined>;
  settle(task: { id: number; attempts: number }): Promise<boolean>;
  close(): Promise<void>;
}

export async function rawClaimOps(url: string, owner: string): Promise<ClaimOps> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  return {
    async claim() {
      const now = new Date().toISOString();
      const r = await client.query<{ id: number; attempts: number }>({ name: 'claim', text: CLAIM, values: [now, owner, 60_000] });
      return r.rows[0];
    },
    async settle(t) {
      const now = new Date().toISOString();
      const r = await client.query({ name: 'settle', text: SETTLE, values: [now, t.id, owner, t.attempts] });
      return r.rowCount === 1;
    },
    close: () => client.end(),
  };
}
