import type { Db } from '../connection.js';
import { nowIso } from '../time.js';

export interface PrWatchRow {
  task_id: number;
  owner: string;
  repo: string;
  pr_number: number;
  state: string;
  head_sha: string;
  ci_handled_sha: string;
  ci_fix_attempts: number;
  last_failure_signature: string;
  gave_up: string;
  updated_at: string;
}

const COLS = new Set(['state', 'head_sha', 'ci_handled_sha', 'ci_fix_attempts', 'last_failure_signature', 'gave_up']);

export class PrWatchRepo {
  constructor(private readonly db: Db) {}

  upsert(taskId: number, owner: string, repo: string, prNumber: number): PrWatchRow {
    this.db
      .prepare(
        `INSERT INTO pr_watch (task_id, owner, repo, pr_number, updated_at) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT(task_id) DO UPDATE SET pr_number = excluded.pr_number`,
      )
      .run(taskId, owner, repo, prNumber, nowIso());
    return this.get(taskId)!;
  }

  get(taskId: number): PrWatchRow | undefined {
    return this.db.prepare('SELECT * FROM pr_watch WHERE task_id = ?').get(taskId) as PrWatchRow | undefined;
  }

  byPr(owner: string, repo: string, prNumber: number): PrWatchRow | undefined {
    return this.db.prepare('SELECT * FROM pr_watch WHERE owner = ? AND repo = ? AND pr_number = ?').get(owner, repo, prNumber) as
      PrWatchRow | undefined;
  }

  open(): PrWatchRow[] {
    return this.db.prepare(`SELECT * FROM pr_watch WHERE state = 'open' ORDER BY task_id`).all() as PrWatchRow[];
  }

  update(taskId: number, patch: Partial<PrWatchRow>): void {
    const entries = Object.entries(patch).filter(([k, v]) => v !== undefined && COLS.has(k));
    if (!entries.length) return;
    this.db
      .prepare(`UPDATE pr_watch SET ${entries.map(([k]) => `${k} = @${k}`).join(', ')}, updated_at = @now WHERE task_id = @id`)
      .run({ ...Object.fromEntries(entries), now: nowIso(), id: taskId });
  }
}
