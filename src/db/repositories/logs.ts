import type { AsyncDb } from '../query.js';

export type LogStream = 'stdout' | 'stderr' | 'system';
export interface LogRow {
  id: number;
  task_id: number;
  ts: string;
  stream: LogStream;
  line: string;
}
export interface NewLog {
  task_id: number;
  ts: string;
  stream: LogStream;
  line: string;
}

export class LogsRepo {
  constructor(private readonly db: AsyncDb) {}

  /** Writes a batch in one statement (one round trip, one commit). */
  async appendMany(rows: NewLog[]): Promise<void> {
    // At most 4 parameters a row: 200 rows stay far below both engines' parameter limits.
    for (let i = 0; i < rows.length; i += 200) {
      const batch = rows.slice(i, i + 200);
      await this.db.run(
        `INSERT INTO task_logs (task_id, ts, stream, line) VALUES ${batch.map(() => '(?, ?, ?, ?)').join(', ')}`,
        batch.flatMap((r) => [r.task_id, r.ts, r.stream, r.line]),
      );
    }
  }

  /** Lines after `sinceId` (exclusive) oldest first; without it, the newest `limit` lines, oldest first. */
  async list(taskId: number, opts: { sinceId?: number; sinceTs?: string; limit: number }): Promise<LogRow[]> {
    if (opts.sinceId !== undefined) {
      return (await this.db.all(
        'SELECT * FROM task_logs WHERE task_id = ? AND id > ? ORDER BY id LIMIT ?',
        taskId,
        opts.sinceId,
        opts.limit,
      )) as LogRow[];
    }
    if (opts.sinceTs !== undefined) {
      return (await this.db.all(
        'SELECT * FROM task_logs WHERE task_id = ? AND ts > ? ORDER BY id LIMIT ?',
        taskId,
        opts.sinceTs,
        opts.limit,
      )) as LogRow[];
    }
    return (
      (await this.db.all('SELECT * FROM task_logs WHERE task_id = ? ORDER BY id DESC LIMIT ?', taskId, opts.limit)) as LogRow[]
    ).reverse();
  }

  /** Deletes the log lines of tasks that ended before `cutoffIso`; returns how many went. */
  async purgeEnded(cutoffIso: string): Promise<number> {
    return (
      await this.db.run(
        `DELETE FROM task_logs WHERE task_id IN (
      SELECT id FROM tasks WHERE status IN ('done', 'failed', 'cancelled', 'in_review') AND completed_at IS NOT NULL AND completed_at < ?)`,
        cutoffIso,
      )
    ).changes;
  }

  /** The latest non-stderr line of each task, for `last_output`, in one query. */
  async lastLines(taskIds: number[]): Promise<Map<number, string>> {
    const out = new Map<number, string>();
    if (!taskIds.length) return out;
    const ids = JSON.stringify(taskIds);
    // The id list travels as one JSON parameter on both engines.
    const list =
      this.db.dialect === 'postgres'
        ? 'SELECT value::bigint AS value FROM jsonb_array_elements_text(?::jsonb) AS t(value)'
        : 'SELECT value FROM json_each(?)';
    const rows = (await this.db.all(
      `SELECT l.task_id, l.line FROM task_logs l JOIN (
        SELECT (SELECT id FROM task_logs WHERE task_id = t.value AND stream <> 'stderr' ORDER BY id DESC LIMIT 1) AS id
        FROM (${list}) t
      ) m ON m.id = l.id`,
      ids,
    )) as { task_id: number; line: string }[];
    for (const r of rows) out.set(r.task_id, r.line);
    return out;
  }
}
