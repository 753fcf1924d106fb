import type { Db } from '../connection.js';

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
  private readonly insert;
  constructor(private readonly db: Db) {
    this.insert = db.prepare('INSERT INTO task_logs (task_id, ts, stream, line) VALUES (@task_id, @ts, @stream, @line)');
  }

  /** Writes a batch in one transaction. */
  appendMany(rows: NewLog[]): void {
    if (rows.length === 0) return;
    this.db.transaction((batch: NewLog[]) => {
      for (const r of batch) this.insert.run(r);
    })(rows);
  }

  /** Lines after `sinceId` (exclusive) oldest first; without it, the newest `limit` lines, oldest first. */
  list(taskId: number, opts: { sinceId?: number; sinceTs?: string; limit: number }): LogRow[] {
    if (opts.sinceId !== undefined) {
      return this.db
        .prepare('SELECT * FROM task_logs WHERE task_id = ? AND id > ? ORDER BY id LIMIT ?')
        .all(taskId, opts.sinceId, opts.limit) as LogRow[];
    }
    if (opts.sinceTs !== undefined) {
      return this.db
        .prepare('SELECT * FROM task_logs WHERE task_id = ? AND ts > ? ORDER BY id LIMIT ?')
        .all(taskId, opts.sinceTs, opts.limit) as LogRow[];
    }
    return (
      this.db.prepare('SELECT * FROM task_logs WHERE task_id = ? ORDER BY id DESC LIMIT ?').all(taskId, opts.limit) as LogRow[]
    ).reverse();
  }

  /** Deletes the log lines of tasks that ended before `cutoffIso`; returns how many went. */
  purgeEnded(cutoffIso: string): number {
    return this.db
      .prepare(
        `DELETE FROM task_logs WHERE task_id IN (
      SELECT id FROM tasks WHERE status IN ('done', 'failed', 'cancelled', 'in_review') AND completed_at IS NOT NULL AND completed_at < ?)`,
      )
      .run(cutoffIso).changes;
  }

  /** The latest non-stderr line of each task, for `last_output`, in one query. */
  lastLines(taskIds: number[]): Map<number, string> {
    const out = new Map<number, string>();
    if (!taskIds.length) return out;
    const ids = JSON.stringify(taskIds);
    // The id list travels as one JSON parameter on both engines.
    const list =
      this.db.dialect === 'postgres'
        ? 'SELECT value::bigint AS value FROM jsonb_array_elements_text(?::jsonb) AS t(value)'
        : 'SELECT value FROM json_each(?)';
    const rows = this.db
      .prepare(
        `SELECT l.task_id, l.line FROM task_logs l JOIN (
        SELECT (SELECT id FROM task_logs WHERE task_id = t.value AND stream <> 'stderr' ORDER BY id DESC LIMIT 1) AS id
        FROM (${list}) t
      ) m ON m.id = l.id`,
      )
      .all(ids) as { task_id: number; line: string }[];
    for (const r of rows) out.set(r.task_id, r.line);
    return out;
  }
}
