import type { Db } from '../connection.js';

export interface StatRow {
  key: string;
  runs: number;
  tasks: number;
  cost_usd: number;
  input_tokens: number;
  output_tokens: number;
  cache_read_tokens: number;
  cache_creation_tokens: number;
  duration_ms: number;
}

const SUMS = `COUNT(*) AS runs, COUNT(DISTINCT r.task_id) AS tasks, COALESCE(SUM(r.cost_usd), 0) AS cost_usd,
  COALESCE(SUM(r.input_tokens), 0) AS input_tokens, COALESCE(SUM(r.output_tokens), 0) AS output_tokens,
  COALESCE(SUM(r.cache_read_tokens), 0) AS cache_read_tokens, COALESCE(SUM(r.cache_creation_tokens), 0) AS cache_creation_tokens,
  COALESCE(SUM(r.duration_ms), 0) AS duration_ms`;

/** Cost and usage of agent runs, grouped (GET /api/stats). */
export class StatsRepo {
  constructor(private readonly db: Db) {}

  private grouped(expr: string, since: string): StatRow[] {
    return this.db
      .prepare(
        `SELECT ${expr} AS key, ${SUMS} FROM task_runs r JOIN tasks t ON t.id = r.task_id
      WHERE r.started_at >= ? GROUP BY key ORDER BY key`,
      )
      .all(since) as StatRow[];
  }

  summary(since: string) {
    const totals = this.db.prepare(`SELECT 'all' AS key, ${SUMS} FROM task_runs r WHERE r.started_at >= ?`).get(since) as StatRow;
    return {
      totals,
      by_day: this.grouped('substr(r.started_at, 1, 10)', since),
      by_repo: this.grouped('t.repo', since),
      by_agent_type: this.grouped('t.agent_type', since),
      by_outcome: this.grouped('r.outcome', since),
    };
  }
}
