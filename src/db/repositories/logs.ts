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

/** How much of the latest line a task row keeps (the API's `last_output` is at most this long). */
export const LAST_OUTPUT_CHARS = 500;

export class LogsRepo {
  constructor(private readonly db: AsyncDb) {}

  /**
   * Writes a batch in one transaction: the lines, and each task's `last_output` (its latest stdout
   * or system line), so the task list never has to look into the log.
   */
  async appendMany(rows: NewLog[]): Promise<void> {
    if (!rows.length) return;
    const last = new Map<number, string>();
    for (const r of rows) if (r.stream !== 'stderr') last.set(r.task_id, r.line.slice(0, LAST_OUTPUT_CHARS));
    await this.db.transaction(async (tx) => {
      // At most 4 parameters a row: 200 rows stay far below both engines' parameter limits.
      for (let i = 0; i < rows.length; i += 200) {
        const batch = rows.slice(i, i + 200);
        await tx.run(
          `INSERT INTO task_logs (task_id, ts, stream, line) VALUES ${batch.map(() => '(?, ?, ?, ?)').join(', ')}`,
          batch.flatMap((r) => [r.task_id, r.ts, r.stream, r.line]),
        );
      }
      for (const [taskId, line] of last) await tx.run('UPDATE tasks SET last_output = ? WHERE id = ?', line, taskId);
    });
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

  /** Deletes the log lines of tasks that ended before `cutoffIso` (and so their last_output); returns how many lines went. */
  async purgeEnded(cutoffIso: string): Promise<number> {
    // Through the completed_at index (only tasks that ended before the cutoff). `status || ''` keeps
    // SQLite's planner off the status index, which would walk every finished task ever.
    const ended = `SELECT id FROM tasks WHERE completed_at < ? AND completed_at IS NOT NULL AND status || '' IN ('done', 'failed', 'cancelled', 'in_review')`;
    return this.db.transaction(async (tx) => {
      const gone = (await tx.run(`DELETE FROM task_logs WHERE task_id IN (${ended})`, cutoffIso)).changes;
      if (gone) await tx.run(`UPDATE tasks SET last_output = NULL WHERE last_output IS NOT NULL AND id IN (${ended})`, cutoffIso);
      return gone;
    });
  }
}
