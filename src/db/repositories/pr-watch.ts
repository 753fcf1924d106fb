import type { AsyncDb } from '../query.js';
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
  constructor(private readonly db: AsyncDb) {}

  async upsert(taskId: number, owner: string, repo: string, prNumber: number): Promise<PrWatchRow> {
    await this.db.run(
      `INSERT INTO pr_watch (task_id, owner, repo, pr_number, updated_at) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT(task_id) DO UPDATE SET pr_number = excluded.pr_number`,
      taskId,
      owner,
      repo,
      prNumber,
      nowIso(),
    );
    return (await this.get(taskId))!;
  }

  async get(taskId: number): Promise<PrWatchRow | undefined> {
    return (await this.db.get('SELECT * FROM pr_watch WHERE task_id = ?', taskId)) as PrWatchRow | undefined;
  }

  async byPr(owner: string, repo: string, prNumber: number): Promise<PrWatchRow | undefined> {
    return (await this.db.get('SELECT * FROM pr_watch WHERE owner = ? AND repo = ? AND pr_number = ?', owner, repo, prNumber)) as
      PrWatchRow | undefined;
  }

  async open(): Promise<PrWatchRow[]> {
    return (await this.db.all(`SELECT * FROM pr_watch WHERE state = 'open' ORDER BY task_id`)) as PrWatchRow[];
  }

  async update(taskId: number, patch: Partial<PrWatchRow>): Promise<void> {
    const entries = Object.entries(patch).filter(([k, v]) => v !== undefined && COLS.has(k));
    if (!entries.length) return;
    await this.db.run(`UPDATE pr_watch SET ${entries.map(([k]) => `${k} = @${k}`).join(', ')}, updated_at = @now WHERE task_id = @id`, {
      ...Object.fromEntries(entries),
      now: nowIso(),
      id: taskId,
    });
  }
}
