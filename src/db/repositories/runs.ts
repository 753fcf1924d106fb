import { hostname } from 'node:os';
import type { AsyncDb } from '../query.js';
import { nowIso } from '../time.js';

export interface RunRow {
  id: number;
  task_id: number;
  attempt: number;
  kind: string;
  started_at: string;
  ended_at: string | null;
  outcome: string;
  error: string;
  session_id: string;
  pid: number | null;
  cost_usd: number;
  input_tokens: number;
  output_tokens: number;
  cache_read_tokens: number;
  cache_creation_tokens: number;
  duration_ms: number;
  num_turns: number;
  host: string;
  /** FACTORY_AGENT_RUN value of the run's processes ('' before it was recorded). */
  proc_mark: string;
}
export type RunPatch = Partial<Omit<RunRow, 'id' | 'task_id' | 'attempt' | 'started_at'>>;

const COLS = new Set([
  'kind',
  'ended_at',
  'outcome',
  'error',
  'session_id',
  'pid',
  'proc_mark',
  'cost_usd',
  'input_tokens',
  'output_tokens',
  'cache_read_tokens',
  'cache_creation_tokens',
  'duration_ms',
  'num_turns',
]);

export class RunsRepo {
  constructor(private readonly db: AsyncDb) {}

  async start(taskId: number, attempt: number, kind: string, host = hostname()): Promise<RunRow> {
    return (await this.db.get(
      'INSERT INTO task_runs (task_id, attempt, kind, started_at, host) VALUES (?, ?, ?, ?, ?) RETURNING *',
      taskId,
      attempt,
      kind,
      nowIso(),
      host,
    )) as RunRow;
  }

  async update(id: number, patch: RunPatch): Promise<void> {
    const entries = Object.entries(patch).filter(([k, v]) => v !== undefined && COLS.has(k));
    if (!entries.length) return;
    await this.db.run(`UPDATE task_runs SET ${entries.map(([k]) => `${k} = @${k}`).join(', ')} WHERE id = @id`, {
      ...Object.fromEntries(entries),
      id,
    });
  }

  /** Runs left open by a crash are closed with the given outcome. */
  async closeOpen(taskId: number, outcome: string, error: string): Promise<void> {
    await this.db.run(
      `UPDATE task_runs SET outcome = ?, error = ?, ended_at = ? WHERE task_id = ? AND ended_at IS NULL`,
      outcome,
      error,
      nowIso(),
      taskId,
    );
  }

  async open(taskId: number): Promise<RunRow[]> {
    return (await this.db.all('SELECT * FROM task_runs WHERE task_id = ? AND ended_at IS NULL ORDER BY id', taskId)) as RunRow[];
  }

  /** Dollars spent by runs started at or after `sinceIso`. */
  async costSince(sinceIso: string): Promise<number> {
    return ((await this.db.get('SELECT COALESCE(SUM(cost_usd), 0) AS c FROM task_runs WHERE started_at >= ?', sinceIso)) as { c: number })
      .c;
  }

  async forTask(taskId: number): Promise<RunRow[]> {
    return (await this.db.all('SELECT * FROM task_runs WHERE task_id = ? ORDER BY id', taskId)) as RunRow[];
  }
}
