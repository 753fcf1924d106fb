import type { AsyncDb } from '../query.js';

const round1 = (n: number) => Math.round(n * 10) / 10;
const pct = (part: number, total: number) => (total ? round1((part / total) * 100) : 0);

/**
 * The upstream /api/analytics shape. Deliberate fix: a success is `done` or `in_review` (a
 * standalone task that opened a PR ends in_review), so success rates and durations count it.
 */
export async function analytics(db: AsyncDb, now = new Date()) {
  // Minutes between two ISO timestamps stored as text.
  const minutes =
    db.dialect === 'postgres'
      ? 'EXTRACT(EPOCH FROM (completed_at::timestamptz - started_at::timestamptz)) / 60'
      : '(julianday(completed_at) - julianday(started_at)) * 1440';
  const counts = Object.fromEntries(
    ((await db.all('SELECT status, COUNT(*) AS n FROM tasks GROUP BY status')) as { status: string; n: number }[]).map((r) => [
      r.status,
      r.n,
    ]),
  );
  const c = (s: string) => counts[s] ?? 0;
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  const ok = c('done') + c('in_review');
  const durations = (
    (await db.all(`SELECT ${minutes} AS m FROM tasks
    WHERE status IN ('done','in_review') AND started_at IS NOT NULL AND completed_at IS NOT NULL ORDER BY m`)) as { m: number }[]
  ).map((r) => r.m);
  const median = durations.length
    ? durations.length % 2
      ? durations[(durations.length - 1) / 2]!
      : (durations[durations.length / 2 - 1]! + durations[durations.length / 2]!) / 2
    : 0;
  const agents = (await db.all(`SELECT CASE WHEN agent_type = '' THEN 'default' ELSE agent_type END AS agent_type, COUNT(*) AS total,
      SUM(CASE WHEN status IN ('done','in_review') THEN 1 ELSE 0 END) AS done, SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS failed,
      AVG(CASE WHEN status IN ('done','in_review') AND completed_at IS NOT NULL AND started_at IS NOT NULL THEN ${minutes} END) AS avg_duration
    FROM tasks GROUP BY 1 ORDER BY 1`)) as {
    agent_type: string;
    total: number;
    done: number;
    failed: number;
    avg_duration: number | null;
  }[];
  const start = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() - 29));
  const day = async (col: string, where = '') =>
    Object.fromEntries(
      (
        (await db.all(
          `SELECT substr(${col}, 1, 10) AS d, COUNT(*) AS n FROM tasks WHERE ${col} >= ? ${where} GROUP BY d`,
          start.toISOString(),
        )) as { d: string; n: number }[]
      ).map((r) => [r.d, r.n]),
    );
  const created = await day('created_at');
  const completed = await day('completed_at', "AND status IN ('done','in_review')");
  const failed = await day('completed_at', "AND status = 'failed'");
  const wf = Object.fromEntries(
    ((await db.all('SELECT status, COUNT(*) AS n FROM workflows GROUP BY status')) as { status: string; n: number }[]).map((r) => [
      r.status,
      r.n,
    ]),
  );
  const wfTotal = Object.values(wf).reduce((a, b) => a + b, 0);
  return {
    summary: {
      total_tasks: total,
      success_rate: pct(ok, total),
      failure_rate: pct(c('failed'), total),
      done: c('done'),
      in_review: c('in_review'),
      failed: c('failed'),
      cancelled: c('cancelled'),
      in_progress: c('in_progress'),
      queued: c('queued'),
    },
    status_breakdown: {
      done: c('done'),
      failed: c('failed'),
      cancelled: c('cancelled'),
      in_progress: c('in_progress'),
      queued: c('queued'),
      waiting_for_input: c('waiting_for_input'),
      in_review: c('in_review'),
    },
    duration: {
      avg_minutes: durations.length ? round1(durations.reduce((a, b) => a + b, 0) / durations.length) : 0,
      min_minutes: durations.length ? round1(durations[0]!) : 0,
      max_minutes: durations.length ? round1(durations.at(-1)!) : 0,
      median_minutes: round1(median),
      sample_count: durations.length,
    },
    agent_performance: agents.map((a) => ({
      agent_type: a.agent_type,
      total: a.total,
      done: a.done,
      failed: a.failed,
      avg_duration: round1(a.avg_duration ?? 0),
      success_rate: pct(a.done, a.total),
    })),
    daily_trends: Array.from({ length: 30 }, (_, i) => {
      const d = new Date(start.getTime() + i * 86_400_000).toISOString().slice(0, 10);
      return { date: d, created: created[d] ?? 0, completed: completed[d] ?? 0, failed: failed[d] ?? 0 };
    }),
    workflows: {
      total: wfTotal,
      completed: wf.completed ?? 0,
      failed: wf.failed ?? 0,
      running: wf.running ?? 0,
      success_rate: pct(wf.completed ?? 0, wfTotal),
    },
  };
}
