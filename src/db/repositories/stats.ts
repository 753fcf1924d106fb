import type { AsyncDb } from '../query.js';

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
  constructor(private readonly db: AsyncDb) {}

  private async grouped(expr: string, since: string): Promise<StatRow[]> {
    return (await this.db.all(
      `SELECT ${expr} AS key, ${SUMS} FROM task_runs r JOIN tasks t ON t.id = r.task_id
      WHERE r.started_at >= ? GROUP BY key ORDER BY key`,
      since,
    )) as StatRow[];
  }

  async summary(since: string) {
    const totals = (await this.db.get(`SELECT 'all' AS key, ${SUMS} FROM task_runs r WHERE r.started_at >= ?`, since)) as StatRow;
    return {
      totals,
      by_day: await this.grouped('substr(r.started_at, 1, 10)', since),
      by_repo: await this.grouped('t.repo', since),
      by_agent_type: await this.grouped('t.agent_type', since),
      by_outcome: await this.grouped('r.outcome', since),
    };
  }
}
